// Writes the demo characters of characters.json as PNG character cards (the portrait the site
// draws for them, rasterised at 512 × 512, with the card in its text chunks: `chara` = V2 JSON
// for every reader, plus `ccv3` = V3 JSON for the V3 ones) and index.json, the gallery's list.
// The PNGs are committed; run this again after editing characters.json, once the site is built
// (it uses the site's portrait module):   bash scripts/build-site.sh && node web/cards/make-cards.mjs

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Resvg } from '@resvg/resvg-js';
import { PNG_SIGNATURE, cardTextChunk as textChunk } from './png-chunks.mjs';
import { portraitSvg } from '../dist/app/portrait.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const characters = JSON.parse(readFileSync(`${here}characters.json`, 'utf8'));

/** The chunks of a PNG file: [type, whole chunk bytes]. */
function chunks(png) {
  const out = [];
  for (let at = PNG_SIGNATURE.length; at < png.length; ) {
    const length = png.readUInt32BE(at);
    out.push([png.toString('latin1', at + 4, at + 8), png.subarray(at, at + 12 + length)]);
    at += 12 + length;
  }
  return out;
}

/** The portrait the site shows for this demo character (seeded by its demo id), as PNG chunks. */
function portrait(c) {
  const profile = c.data.extensions?.confidant?.profile ?? {};
  const svg = portraitSvg({ seed: c.id, description: c.data.description, personality: c.data.personality, mood: profile.mood });
  return chunks(new Resvg(svg, { fitTo: { mode: 'width', value: 512 } }).render().asPng());
}

function v2(data) {
  const { group_only_greetings: _g, ...rest } = data;
  return { spec: 'chara_card_v2', spec_version: '2.0', data: rest };
}
function v3(data) {
  return { spec: 'chara_card_v3', spec_version: '3.0', data: { group_only_greetings: [], ...data } };
}

const index = [];
for (const c of characters) {
  const image = portrait(c);
  const text = [textChunk('chara', v2(c.data))];
  if (c.spec === 'v3') text.push(textChunk('ccv3', v3(c.data)));
  // The card's text right after the header, the image's own chunks around it.
  const [header, ...rest] = image.map(([, bytes]) => bytes);
  writeFileSync(`${here}${c.file}`, Buffer.concat([PNG_SIGNATURE, header, ...text, ...rest]));
  const profile = c.data.extensions?.confidant?.profile ?? {};
  const portraitFrom = { description: c.data.description, personality: c.data.personality, mood: profile.mood };
  index.push({ id: c.id, file: c.file, name: c.data.name, tagline: c.tagline, spec: c.spec, tags: c.data.tags, portrait: portraitFrom });
}
writeFileSync(`${here}index.json`, `${JSON.stringify(index, null, 2)}\n`);
console.log(`wrote ${index.length} cards`);
