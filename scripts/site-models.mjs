// Writes web/dist/models.json: the built-in models of web/models.json that this build has in
// models/ (the folder a host places beside the site), each with its size, so the demo's picker
// offers only what the site can serve. The default model is always listed (a host must serve it).
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const out = process.argv[2];
const here = new URL('..', import.meta.url).pathname;
const { models } = JSON.parse(readFileSync(join(here, 'web/models.json'), 'utf8'));
const size = (file) => {
  try {
    return statSync(join(here, 'models', file)).size;
  } catch {
    return null;
  }
};
const served = models.map((m) => ({ ...m, url: `models/${m.file}`, bytes: size(m.file) })).filter((m) => m.default || m.bytes !== null);
writeFileSync(join(out, 'models.json'), JSON.stringify({ models: served }, null, 1) + '\n');
console.log(`models.json: ${served.map((m) => m.id).join(', ')}`);
