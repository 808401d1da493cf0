// Copies the site's npm dependencies (web/package.json: DiceBear for the portraits) into the
// built site as plain ES modules under vendor/, with their licences, and points every bare
// import (`from '@dicebear/core'`) in the app and in those modules at the copy by a relative
// path. The site has no bundler and its CSP allows scripts from itself only, so this is how a
// library reaches the browser: no network at run time, no import map.
//   node scripts/site-vendor.mjs web/dist

import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const out = process.argv[2];
if (!out) throw new Error('usage: node scripts/site-vendor.mjs OUT_DIR');
const web = new URL('../web/', import.meta.url).pathname;
const site = JSON.parse(readFileSync(join(web, 'package.json'), 'utf8'));
const packages = Object.keys(site.dependencies ?? {});

function walk(dir, files = []) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, files);
    else files.push(path);
  }
  return files;
}

/** Where each package's entry module lands in the site. */
const entries = new Map();
for (const name of packages) {
  const from = join(web, 'node_modules', name);
  if (!existsSync(from)) throw new Error(`${from} is missing: run \`npm ci\` in web/ (scripts/setup.sh does)`);
  const manifest = JSON.parse(readFileSync(join(from, 'package.json'), 'utf8'));
  const main = typeof manifest.exports === 'string' ? manifest.exports : manifest.module ?? manifest.main;
  if (typeof main !== 'string') throw new Error(`${name}: no single ES module entry in its package.json`);
  const to = join(out, 'vendor', name);
  // Only the code and the licence: no type declarations, maps or sources.
  for (const file of walk(from)) {
    const rel = relative(from, file);
    if (!(/\.js$/.test(rel) && !rel.startsWith('node_modules')) && !/^(LICENSE|README\.md)$/.test(rel)) continue;
    mkdirSync(dirname(join(to, rel)), { recursive: true });
    copyFileSync(file, join(to, rel));
  }
  entries.set(name, join(to, main));
}

// Bare imports → relative paths, in the app and in the vendored modules.
const specifier = /(\bfrom\s*|\bimport\s*\(?\s*)(['"])([^'"]+)\2/g;
for (const file of [...walk(join(out, 'app')), ...walk(join(out, 'vendor'))].filter((f) => f.endsWith('.js'))) {
  const source = readFileSync(file, 'utf8');
  const rewritten = source.replace(specifier, (whole, head, quote, name) => {
    const entry = entries.get(name);
    if (!entry) return whole;
    let path = relative(dirname(file), entry).split('\\').join('/');
    if (!path.startsWith('.')) path = `./${path}`;
    return `${head}${quote}${path}${quote}`;
  });
  if (rewritten !== source) writeFileSync(file, rewritten);
}
console.log(`vendored ${packages.join(', ')}`);
