#!/usr/bin/env bash
# Build the npm package into pkg/dist: the wasm engine (cargo → wasm-bindgen → wasm-opt) and
# the TypeScript API (tsc). Run from anywhere: `npm run build` in pkg/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/.."
cd "$root"
cargo build --release --target wasm32-unknown-unknown -p confidant-web
rm -rf "$here/dist"
mkdir -p "$here/src/wasm" "$here/dist/wasm"
wasm-bindgen --target web --out-dir "$here/dist/wasm" target/wasm32-unknown-unknown/release/confidant_web.wasm
cd "$here"
[ -d node_modules/typescript ] || npm ci --no-audit --no-fund
# wasm-opt from the npm package binaryen (Debian's is too old for wasm-bindgen's externref
# table). WASM_OPT=0 skips it for quicker local builds.
if [ "${WASM_OPT:-1}" = 1 ]; then
  npx wasm-opt -O2 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    dist/wasm/confidant_web_bg.wasm -o dist/wasm/confidant_web_bg.wasm
fi
# tsc resolves ./wasm/confidant_web.js through its declaration file.
cp dist/wasm/confidant_web.d.ts src/wasm/confidant_web.d.ts
npx tsc -p .
ls -l dist dist/wasm
