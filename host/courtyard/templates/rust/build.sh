#!/usr/bin/env bash
# Builds the component and puts it beside manifest.json as plugin.wasm.
set -euo pipefail
cd "$(dirname "$0")"
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2
target_dir=${CARGO_TARGET_DIR:-target}
cp "$target_dir/wasm32-wasip2/release/{{crate}}.wasm" plugin.wasm
echo "built $(pwd)/plugin.wasm"
