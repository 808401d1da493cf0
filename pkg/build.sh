#!/usr/bin/env bash
# Build the npm package into pkg/dist: the two wasm engines (cargo → wasm-bindgen → wasm-opt) and
# the TypeScript API (tsc). Run from anywhere: `npm run build` in pkg/.
#
#   dist/wasm/          single-threaded: WebGPU and the CPU (SIMD128); runs on any page.
#   dist/wasm-threads/  multi-threaded: the CPU only, rayon on Web Workers over shared memory;
#                       needs a cross-origin isolated page. The package picks one at run time.
#
# THREADS=0 skips the multi-threaded build (quicker local builds); WASM_OPT=0 skips wasm-opt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/.."
cd "$root"
wasm_target=wasm32-unknown-unknown

cargo build --release --target "$wasm_target" -p confidant-web
rm -rf "$here/dist"
mkdir -p "$here/src/wasm" "$here/src/wasm-threads" "$here/dist/wasm"
wasm-bindgen --target web --out-dir "$here/dist/wasm" "target/$wasm_target/release/confidant_web.wasm"

if [ "${THREADS:-1}" = 1 ]; then
  # Shared memory needs std rebuilt with atomics (build-std: the rust-src component, and
  # RUSTC_BOOTSTRAP for -Z on a stable toolchain). Its own target directory, so the two builds
  # never invalidate each other's artifacts. RUSTFLAGS replaces .cargo/config.toml's flags, so
  # they are repeated here.
  threads_flags='--cfg getrandom_backend="wasm_js" -C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals'
  threads_flags+=' -C link-arg=--shared-memory -C link-arg=--max-memory=4294967296 -C link-arg=--import-memory'
  threads_flags+=' -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base'
  RUSTC_BOOTSTRAP=1 RUSTFLAGS="$threads_flags" cargo build --release --target "$wasm_target" -p confidant-web \
    --no-default-features --features threads -Z build-std=panic_abort,std --target-dir target/wasm-threads
  mkdir -p "$here/dist/wasm-threads"
  wasm-bindgen --target web --out-dir "$here/dist/wasm-threads" "target/wasm-threads/$wasm_target/release/confidant_web.wasm"
  # wasm-bindgen-rayon's worker imports the main module as '../../..', which only bundlers
  # resolve; name the file so plain browsers (the demo site, no bundler) load it too.
  sed -i "s#import('../../..')#import('../../../confidant_web.js')#" "$here"/dist/wasm-threads/snippets/wasm-bindgen-rayon-*/src/workerHelpers.js
fi

cd "$here"
[ -d node_modules/typescript ] || npm ci --no-audit --no-fund
# wasm-opt from the npm package binaryen (Debian's is too old for wasm-bindgen's externref
# table).
# It takes minutes, so its output is kept by the input's hash: a rebuild with no engine change
# (a TypeScript edit, `make demo` again) skips it.
if [ "${WASM_OPT:-1}" = 1 ]; then
  opt_cache="$root/target/wasm-opt-cache"
  mkdir -p "$opt_cache"
  for wasm in dist/wasm/confidant_web_bg.wasm dist/wasm-threads/confidant_web_bg.wasm; do
    [ -f "$wasm" ] || continue
    cached="$opt_cache/$(sha256sum "$wasm" | cut -c1-32).wasm"
    if [ -f "$cached" ]; then
      cp "$cached" "$wasm"
      continue
    fi
    npx wasm-opt -O2 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-simd --enable-threads \
      "$wasm" -o "$wasm"
    cp "$wasm" "$cached.tmp" && mv "$cached.tmp" "$cached"
  done
  # Keep the latest few.
  ls -t "$opt_cache"/*.wasm 2>/dev/null | tail -n +7 | xargs -r rm -f
fi
# tsc resolves ./wasm/confidant_web.js (and the threads build, same API plus initThreadPool)
# through their declaration files.
cp dist/wasm/confidant_web.d.ts src/wasm/confidant_web.d.ts
cp dist/wasm/confidant_web.d.ts src/wasm-threads/confidant_web.d.ts
npx tsc -p .
ls -l dist dist/wasm dist/wasm-threads 2>/dev/null || true
for wasm in dist/wasm*/confidant_web_bg.wasm; do
  echo "$wasm: $(stat -c %s "$wasm") bytes, $(gzip -9 -c "$wasm" | wc -c) gzipped"
done
