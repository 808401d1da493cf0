// Writes web/dist/sw.js: the service worker source with the list of the site's files, a version
// taken from their contents (a changed file makes a new cache) and the page's
// Content-Security-Policy (from index.html's <meta>, the one place it is written), which the
// worker sends as a header.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const out = process.argv[2];
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else files.push(path);
  }
})(out);
const hash = createHash('sha256');
for (const f of files) hash.update(relative(out, f)).update(readFileSync(f));
const assets = ['./', ...files.map((f) => relative(out, f).split('\\').join('/'))].filter((f) => f !== 'sw.js');
const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(readFileSync(join(out, 'index.html'), 'utf8'))?.[1];
if (!csp) throw new Error('index.html has no Content-Security-Policy <meta>');
const source = readFileSync(new URL('../web/sw.js', import.meta.url), 'utf8');
writeFileSync(
  join(out, 'sw.js'),
  `const VERSION = '${hash.digest('hex').slice(0, 16)}';\nconst CSP = ${JSON.stringify(csp)};\nconst ASSETS = ${JSON.stringify(assets, null, 1)};\n${source}`,
);
