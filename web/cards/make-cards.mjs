// Writes the demo characters of characters.json as PNG character cards (a drawn portrait
// with the card in its text chunks: `chara` = V2 JSON for every reader, plus `ccv3` = V3 JSON
// for the V3 ones) and index.json, the gallery's list. The PNGs are committed; run this again
// after editing characters.json:   node web/cards/make-cards.mjs

import { readFileSync, writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { PNG_SIGNATURE, cardTextChunk as textChunk, chunk } from './png-chunks.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const characters = JSON.parse(readFileSync(`${here}characters.json`, 'utf8'));

/** A simple portrait: a gradient sky, a head and shoulders, a few soft dots. */
function portrait(size, [bg, skin, coat], seed) {
  let state = seed;
  const random = () => ((state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const dots = Array.from({ length: 14 }, () => [random() * size, random() * size * 0.6, 2 + random() * 5]);
  const rows = [];
  for (let y = 0; y < size; y++) {
    const row = Buffer.alloc(1 + size * 3);
    for (let x = 0; x < size; x++) {
      const t = y / size;
      let c = bg.map((v) => v * (1.15 - 0.5 * t));
      for (const [dx, dy, r] of dots) if ((x - dx) ** 2 + (y - dy) ** 2 < r * r) c = c.map((v) => v + 40);
      const head = ((x - size / 2) / (size * 0.17)) ** 2 + ((y - size * 0.42) / (size * 0.2)) ** 2;
      const body = ((x - size / 2) / (size * 0.36)) ** 2 + ((y - size * 1.02) / (size * 0.36)) ** 2;
      if (body < 1) c = coat.map((v) => v * (0.8 + 0.2 * (1 - body)));
      else if (head < 1) c = skin.map((v) => v * (0.85 + 0.15 * (1 - head)));
      c.forEach((v, i) => (row[1 + x * 3 + i] = Math.max(0, Math.min(255, Math.round(v)))));
    }
    rows.push(row);
  }
  return deflateSync(Buffer.concat(rows), { level: 9 });
}

function v2(data) {
  const { group_only_greetings: _g, ...rest } = data;
  return { spec: 'chara_card_v2', spec_version: '2.0', data: rest };
}
function v3(data) {
  return { spec: 'chara_card_v3', spec_version: '3.0', data: { group_only_greetings: [], ...data } };
}

const index = [];
for (const [i, c] of characters.entries()) {
  const size = 256;
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const chunks = [chunk('IHDR', header), textChunk('chara', v2(c.data))];
  if (c.spec === 'v3') chunks.push(textChunk('ccv3', v3(c.data)));
  chunks.push(chunk('IDAT', portrait(size, c.palette, 17 + i * 7919)), chunk('IEND', Buffer.alloc(0)));
  writeFileSync(`${here}${c.file}`, Buffer.concat([PNG_SIGNATURE, ...chunks]));
  index.push({ id: c.id, file: c.file, name: c.data.name, tagline: c.tagline, spec: c.spec, tags: c.data.tags });
}
writeFileSync(`${here}index.json`, `${JSON.stringify(index, null, 2)}\n`);
console.log(`wrote ${index.length} cards`);
