#!/usr/bin/env bash
# Builds the component with the Courtyard repository's pinned componentize-js and puts it
# beside manifest.json as plugin.wasm.
set -euo pipefail
cd "$(dirname "$0")"
repo="{{repo}}"
"$repo/scripts/ensure-plugin-tools"
node "$repo/plugins/js/build.mjs" . plugin.wasm "$repo/wit"
echo "built $(pwd)/plugin.wasm"
