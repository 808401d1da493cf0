#!/usr/bin/env bash
# Build the npm package (wasm engine + TypeScript API) into pkg/dist, and give the engine check
# page (web/engine.html) its copy of the wasm bindings in web/pkg/. Both are git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd pkg && bash build.sh)
rm -rf web/pkg
cp -r pkg/dist/wasm web/pkg
