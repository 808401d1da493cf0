// What the person chose, kept in localStorage (small, synchronous, read before the engine loads).

/**
 * Which language model: the default (SmolLM2), another built-in model of the site (models.json),
 * a file the person stored in this browser (its `confidant-file:` URL in the package's cache), a
 * GGUF at a URL of this site, or (settings from before files were stored) a file asked for at
 * each start.
 */
export type ModelChoice =
  | { kind: 'default' }
  | { kind: 'builtin'; id: string }
  | { kind: 'stored'; url: string; name: string }
  | { kind: 'url'; url: string }
  | { kind: 'file' };

export interface Sampling {
  temperature: number;
  top_p: number;
  top_k: number;
  min_p: number;
  repeat_penalty: number;
  presence_penalty: number;
  frequency_penalty: number;
  dry_multiplier: number;
  dry_base: number;
  dry_allowed_length: number;
  max_tokens: number;
}

/** Where the model runs: 'auto' is a real GPU through WebGPU, else the CPU. */
export type BackendChoice = 'auto' | 'webgpu' | 'cpu';

export interface Settings {
  model: ModelChoice;
  backend: BackendChoice;
  sampling: Sampling;
  userName: string;
  theme: 'system' | 'light' | 'dark';
  showThoughts: boolean;
  /** Where the person was, so a reload returns there. */
  characterId: string | null;
  sessionId: string | null;
  /** The person agreed to download the models (asked at the first message that needs them). */
  welcomed: boolean;
  /** Chat templates used instead of a model's own, by the model's URL. */
  templates: Record<string, string>;
}

const KEY = 'confidant.settings';

export const DEFAULT_MODEL_URL = 'models/SmolLM2-135M-Instruct-Q4_1.gguf';
export const EMBEDDER_URL = 'models/all-MiniLM-L6-v2/';
/** What the default models weigh (the files models/fetch.sh checks), for the consent question. */
export const DEFAULT_MODEL_BYTES = 98_362_432;
export const EMBEDDER_BYTES = 91_335_235;

// The engine's role-play defaults (crates/engine ReplyOptions): a little warmer than SmolLM2's card,
// with DRY on so replies do not copy the greeting or earlier replies (EVAL.md measures it).
export const defaultSampling: Sampling = {
  temperature: 0.5,
  top_p: 0.9,
  top_k: 40,
  min_p: 0.05,
  repeat_penalty: 1.1,
  presence_penalty: 0,
  frequency_penalty: 0,
  dry_multiplier: 0.8,
  dry_base: 1.75,
  dry_allowed_length: 2,
  max_tokens: 200,
};

export function defaults(): Settings {
  return { model: { kind: 'default' }, backend: 'auto', sampling: { ...defaultSampling }, userName: 'User', theme: 'system', showThoughts: true, characterId: null, sessionId: null, welcomed: false, templates: {} };
}

export function loadSettings(): Settings {
  const base = defaults();
  try {
    const stored = JSON.parse(localStorage.getItem(KEY) ?? 'null') as Partial<Settings> | null;
    if (!stored || typeof stored !== 'object') return base;
    const templates = stored.templates && typeof stored.templates === 'object' ? stored.templates : {};
    return { ...base, ...stored, sampling: { ...base.sampling, ...(stored.sampling ?? {}) }, templates };
  } catch {
    // A damaged entry is replaced by the defaults rather than stopping the app.
    return base;
  }
}

export function saveSettings(settings: Settings): void {
  localStorage.setItem(KEY, JSON.stringify(settings));
}

export function applyTheme(theme: Settings['theme']): void {
  if (theme === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
}
