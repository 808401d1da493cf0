// The built-in models this site serves: models.json, written by the site's build from
// web/models.json with the files it found in models/ (so a model the host lacks is not offered).

import { DEFAULT_MODEL_BYTES, DEFAULT_MODEL_URL, type ModelChoice } from './settings.js';

export interface BuiltinModel {
  id: string;
  name: string;
  description: string;
  /** Relative to the site. */
  url: string;
  /** Null when the build did not have the file (only the default is listed then). */
  bytes: number | null;
  default?: boolean;
}

const FALLBACK: BuiltinModel = {
  id: 'smollm2-135m',
  name: 'SmolLM2 135M Instruct',
  description: 'A small chat model, quick on any device; its replies are short and simple.',
  url: DEFAULT_MODEL_URL,
  bytes: DEFAULT_MODEL_BYTES,
  default: true,
};

function isBuiltin(value: unknown): value is BuiltinModel {
  const m = value as BuiltinModel;
  return typeof m?.id === 'string' && typeof m.name === 'string' && typeof m.description === 'string' && typeof m.url === 'string' && (m.bytes === null || typeof m.bytes === 'number');
}

/** The site's built-in models, the default first; just the default when the list is unreadable. */
export async function loadCatalogue(): Promise<BuiltinModel[]> {
  try {
    const response = await fetch('models.json');
    const listed = ((await response.json()) as { models?: unknown[] }).models?.filter(isBuiltin) ?? [];
    const models = listed.map((m) => (m.default ? { ...m, bytes: m.bytes ?? DEFAULT_MODEL_BYTES } : m));
    if (!models.some((m) => m.default)) models.unshift(FALLBACK);
    return models.sort((a, b) => Number(!!b.default) - Number(!!a.default));
  } catch {
    return [FALLBACK];
  }
}

/** The built-in model a choice names (the default for `default`), or null for other choices. */
export function builtinOf(choice: ModelChoice, catalogue: BuiltinModel[]): BuiltinModel | null {
  if (choice.kind === 'default') return catalogue.find((m) => m.default) ?? FALLBACK;
  if (choice.kind === 'builtin') return catalogue.find((m) => m.id === choice.id) ?? null;
  return null;
}
