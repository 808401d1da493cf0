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
if [ "${WASM_OPT:-1}" = 1 ] && command -v wasm-opt >/dev/null; then
  wasm-opt -O2 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
    --enable-reference-types --enable-multivalue \
    "$here/dist/wasm/confidant_web_bg.wasm" -o "$here/dist/wasm/confidant_web_bg.wasm"
fi
# tsc resolves ./wasm/confidant_web.js through its declaration file.
cp "$here/dist/wasm/confidant_web.d.ts" "$here/src/wasm/confidant_web.d.ts"
cd "$here"
[ -d node_modules/typescript ] || npm ci --no-audit --no-fund
npx tsc -p .
ls -l dist dist/wasm
