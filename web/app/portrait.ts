// Portraits drawn on this device from what a character's card says about them: DiceBear's
// "Lorelei" style (design by Lisa Wischofsky, CC0 1.0; DiceBear's code MIT), as SVG so it is
// crisp at every size. The same character always gets the same face: every choice the card does
// not settle (hair style, features, colours) is drawn from a generator seeded by the character.
// No network: the library is vendored into the site by scripts/build-site.sh.

import { createAvatar, type StyleOptions } from '@dicebear/core';
import * as lorelei from '@dicebear/lorelei';

/** What a portrait is drawn from. */
export interface PortraitSubject {
  /** Stable per character: the demo id for demo characters, else the stored id. */
  seed: string;
  description?: string;
  personality?: string;
  /** The profile's mood, −100 (gloomy) to 100 (cheerful). */
  mood?: number;
}

type Hair = NonNullable<lorelei.Options['hair']>[number];
type Mouth = NonNullable<lorelei.Options['mouth']>[number];

const v = (...n: number[]) => n.map((i) => `variant${String(i).padStart(2, '0')}` as Hair);

/** Lorelei's hair styles by kind (looked at one by one). */
const HAIR = {
  short: v(1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 20, 22, 36, 43, 47),
  long: v(10, 13, 15, 16, 17, 19, 21, 23, 24, 32, 33, 35, 37, 40, 48),
  // Braids and ponytails (41 and 42 hide an eye: left out).
  tied: v(29, 30, 31, 46),
  bun: v(14, 26, 38, 45),
  curly: v(5, 18, 24, 35, 39),
  bald: v(25, 28, 34, 44),
};

// Mouths and brows that read as friendly; grimaces, fangs and tongues are left out.
const HAPPY = ['happy01', 'happy02', 'happy03', 'happy05', 'happy06', 'happy10', 'happy13'] as Mouth[];
const CALM = ['happy04', 'happy11', 'happy14', 'happy15'] as Mouth[];
const WORRIED = ['happy04', 'happy11', 'happy14', 'sad03', 'sad05'] as Mouth[];
const SAD = ['sad02', 'sad03', 'sad04', 'sad05', 'sad09'] as Mouth[];
type Brows = NonNullable<lorelei.Options['eyebrows']>[number];
const b = (...n: number[]) => n.map((i) => `variant${String(i).padStart(2, '0')}` as Brows);
const BROWS = { friendly: b(1, 2, 3, 5, 7, 8, 9, 10, 11), worried: b(1, 10, 11), stern: b(12, 13) };

const SKIN = ['f9e1d0', 'f2d3b1', 'e8bd95', 'd49e73', 'b97a4f', '8d5a36', '6b4126'];
const HAIR_COLOUR: [RegExp, string][] = [
  [/\b(silver|white)[- ](hair|braid|beard|curls?)|\bwhite-haired|silver-haired/, 'e4e4e4'],
  [/\b(grey|gray)[- ]?(hair|braid|beard|curls?|haired)/, 'a7a7a7'],
  [/\b(red|ginger|copper|auburn)[- ]?(hair|braid|curls?|haired)|\bredhead/, 'b5532c'],
  [/\b(blonde?|golden|fair)[- ]?(hair|braid|curls?|haired)/, 'e1b865'],
  [/\b(black|jet|raven)[- ]?(hair|braid|curls?|haired)/, '231a18'],
  [/\b(brown|chestnut|brunette)[- ]?(hair|braid|curls?|haired)|\bbrunette/, '6a4430'],
  [/\bpink[- ]?(hair|haired)/, 'e6799b'],
  [/\bblue[- ]?(hair|haired)/, '4a79c8'],
  [/\bgreen[- ]?(hair|haired)/, '4f9a6c'],
  [/\bpurple[- ]?(hair|haired)/, '8a5bc4'],
];
const NATURAL_HAIR = ['231a18', '3b2620', '6a4430', '8a5a36', 'b5532c', 'e1b865'];
const BACKGROUND = ['cfe8dc', 'd6e4f5', 'e9dcf2', 'f6dfd2', 'f3e6c4', 'd9eef0', 'f2d9e0'];

/** A small seeded generator (FNV-1a of the seed, then xorshift), for choices DiceBear leaves to us. */
function seeded(seed: string): () => number {
  let x = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) x = Math.imul(x ^ seed.charCodeAt(i), 0x01000193);
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** DiceBear's options for a subject: what the text says, the rest seeded. */
export function portraitOptions(subject: PortraitSubject): StyleOptions<lorelei.Options> {
  const text = `${subject.description ?? ''} ${subject.personality ?? ''}`.replace(/\{\{char\}\}/gi, 'they').toLowerCase();
  const random = seeded(subject.seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)];
  const has = (pattern: RegExp) => pattern.test(text);

  const she = (text.match(/\b(she|her|hers|herself)\b/g) ?? []).length;
  const he = (text.match(/\b(he|him|his|himself)\b/g) ?? []).length;
  let hair: Hair[];
  if (has(/\bbald\b|shaved head/)) hair = HAIR.bald;
  else if (has(/\bbraid|ponytail|plait/)) hair = HAIR.tied;
  else if (has(/\bbun\b|topknot/)) hair = HAIR.bun;
  else if (has(/\bcurl|afro/)) hair = HAIR.curly;
  else if (has(/\blong[- ]hair|long-haired/)) hair = HAIR.long;
  else if (has(/\bshort[- ]hair|cropped|crew cut/)) hair = HAIR.short;
  else if (she > he) hair = [...HAIR.long, ...HAIR.tied, ...HAIR.bun];
  else if (he > she) hair = HAIR.short;
  else hair = [...HAIR.short, ...HAIR.long];

  const age = Number(/(\d{2})[- ]year[- ]old/.exec(text)?.[1] ?? NaN);
  const old = (Number.isFinite(age) && age >= 55) || has(/\b(elderly|old (wo)?man|grandmother|grandfather|retired)\b/);
  const stated = HAIR_COLOUR.find(([pattern]) => pattern.test(text))?.[1];
  const hairColor = stated ?? (old ? 'c9c9c9' : pick(NATURAL_HAIR));

  const mood = subject.mood ?? 0;
  const anxious = has(/\b(anxious|nervous|shy|timid|worried)\b/);
  const stern = has(/\b(gruff|stern|grumpy|severe|blunt)\b/);
  const mouth = mood <= -30 ? SAD : mood >= 25 ? HAPPY : anxious ? WORRIED : [...HAPPY, ...CALM];
  const eyebrows = anxious ? BROWS.worried : stern ? BROWS.stern : BROWS.friendly;

  const always = (pattern: RegExp) => (has(pattern) ? 100 : 0);
  return {
    seed: subject.seed,
    hair,
    hairColor: [hairColor],
    skinColor: [pick(SKIN)],
    mouth,
    eyebrows,
    glassesProbability: always(/\b(glasses|spectacles|monocle|goggles)\b/),
    beardProbability: always(/\b(beard|bearded|stubble|moustache|mustache)\b/),
    frecklesProbability: has(/\bfreckle/) ? 100 : 8,
    earringsProbability: has(/\bearring/) ? 100 : 12,
    hairAccessoriesProbability: always(/\b(flowers?|botan\w*|garden\w*|florist|greenhouse|plants?)\b/),
    hairAccessoriesColor: [pick(['e86a92', 'f2b134', 'ffffff', 'b388eb'])],
    backgroundColor: [pick(BACKGROUND)],
  };
}

/** The portrait as SVG text. */
export function portraitSvg(subject: PortraitSubject): string {
  return createAvatar(lorelei, portraitOptions(subject)).toString();
}

/** The portrait as a `data:` URL for an <img> (allowed by the page's CSP). */
export function portraitUrl(subject: PortraitSubject): string {
  return createAvatar(lorelei, portraitOptions(subject)).toDataUri();
}
