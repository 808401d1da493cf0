// The site's portraits (web/app/portrait.ts, as built into web/dist with DiceBear vendored):
// the same character always gets the same face, different characters get different ones, and
// what a card says about looks and mood is drawn. Plain Node, no browser: milliseconds.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './harness.mjs';

const built = join(root, 'web/dist/app/portrait.js');
if (!existsSync(built)) throw new Error(`${built} is missing: run \`make test\` (it builds the site)`);
const { portraitOptions, portraitSvg, portraitUrl } = await import(built);

const moss = { seed: 'moss', description: '{{char}} is a 70-year-old lock-keeper with a grey beard and round glasses. He tells stories.', personality: 'gruff', mood: 10 };

test('a portrait is stable per character and differs between characters', () => {
  assert.equal(portraitSvg(moss), portraitSvg({ ...moss }));
  assert.notEqual(portraitSvg(moss), portraitSvg({ ...moss, seed: 'someone-else' }));
  const svg = portraitSvg(moss);
  assert.match(svg, /^<svg [^>]*viewBox="0 0 980 980"/, 'a scalable SVG');
  assert.doesNotMatch(svg, /<script|href="http/, 'nothing to run or fetch');
  assert.match(portraitUrl(moss), /^data:image\/svg\+xml;/);
});

test('what the card says is drawn: age, hair colour, glasses, beard, flowers, mood', () => {
  const o = portraitOptions(moss);
  assert.equal(o.glassesProbability, 100);
  assert.equal(o.beardProbability, 100);
  assert.deepEqual(o.hairColor, ['a7a7a7'], 'grey, as written');
  assert.equal(o.hairAccessoriesProbability, 0);
  assert.ok(o.hair.every((h) => !['variant29', 'variant14'].includes(h)), 'he: short hair, not braids or buns');

  const wren = portraitOptions({ seed: 'wren', description: 'She runs a café in a rooftop greenhouse and talks to her plants.', mood: 45 });
  assert.equal(wren.glassesProbability, 0);
  assert.equal(wren.beardProbability, 0);
  assert.equal(wren.hairAccessoriesProbability, 100, 'a flower for the botanist');
  assert.ok(wren.mouth.every((m) => m.startsWith('happy')), 'a cheerful mood smiles');

  const ilse = portraitOptions({ seed: 'ilse', description: 'A 63-year-old retired navigator with a silver braid.' });
  assert.deepEqual(ilse.hairColor, ['e4e4e4']);
  assert.ok(ilse.hair.includes('variant29') && !ilse.hair.includes('variant01'), 'a braid');

  const gloomy = portraitOptions({ seed: 'g', description: 'They keep to themselves.', mood: -80 });
  assert.ok(gloomy.mouth.every((m) => m.startsWith('sad')));
});
