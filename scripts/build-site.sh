#!/usr/bin/env bash
# Build the demo site into web/dist: a folder of static files for any static host.
# Needs the npm package built first (pkg/dist; scripts/build-web.sh does both).
# The app is plain TypeScript compiled by tsc (no bundler): it imports the package and its
# libraries by name and the build points those imports at their copies inside the site.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f pkg/dist/index.js ] || { echo "pkg/dist is missing: run scripts/build-web.sh" >&2; exit 1; }
out=web/dist
rm -rf "$out"
pkg/node_modules/.bin/tsc -p web/tsconfig.json
sed -i "s#from 'confidant'#from '../confidant/index.js'#" "$out"/app/*.js
# The app's own libraries (web/package.json: DiceBear for the portraits), as files of the site.
node scripts/site-vendor.mjs "$out"
mkdir -p "$out/confidant" "$out/cards"
(cd pkg/dist && find . -name '*.js' -o -name '*.wasm' | grep -v '\.d\.ts$' | while read -r f; do mkdir -p "../../$out/confidant/$(dirname "$f")"; cp "$f" "../../$out/confidant/$f"; done)
cp web/index.html web/styles.css web/icon.svg web/manifest.webmanifest "$out/"
cp web/cards/*.png web/cards/index.json "$out/cards/"
# The built-in models this site serves (the demo's model picker lists them).
node scripts/site-models.mjs "$out"
node scripts/site-sw.mjs "$out"
echo "site built in $out ($(du -sh "$out" | cut -f1))"
