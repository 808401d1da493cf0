#!/usr/bin/env bash
# Build the npm package (wasm engine + TypeScript API) into pkg/dist, give the engine check page
# (web/engine.html) its copy of the wasm bindings in web/pkg/, and build the demo site into
# web/dist. All three are git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd pkg && bash build.sh)
rm -rf web/pkg
cp -r pkg/dist/wasm web/pkg
# The demo site (web/dist), built on the package.
bash scripts/build-site.sh
