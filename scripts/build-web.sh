#!/usr/bin/env bash
# Build the wasm engine and its JS bindings into web/pkg/ (git-ignored).
# WASM_OPT=1 also runs wasm-opt (smaller download, slower build).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --target wasm32-unknown-unknown -p confidant-web
wasm-bindgen --target web --out-dir web/pkg target/wasm32-unknown-unknown/release/confidant_web.wasm
if [ "${WASM_OPT:-0}" = 1 ]; then
  wasm-opt -O2 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
    web/pkg/confidant_web_bg.wasm -o web/pkg/confidant_web_bg.wasm
fi
ls -l web/pkg/confidant_web_bg.wasm
