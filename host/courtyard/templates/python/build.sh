#!/usr/bin/env bash
# Builds the component with the Courtyard repository's pinned componentize-py and puts it
# beside manifest.json as plugin.wasm.
set -euo pipefail
cd "$(dirname "$0")"
repo="{{repo}}"
"$repo/scripts/ensure-plugin-tools"
"$repo/plugins/python/.venv/bin/componentize-py" -d "$repo/wit" -w plugin \
    componentize app -p . -p "$repo/plugins/python/sdk" -o plugin.wasm
echo "built $(pwd)/plugin.wasm"
