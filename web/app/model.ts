// The language model's life in the app: absent → (consent, when it must be downloaded) →
// loading, with progress → ready. The app opens the package's storage first, so characters,
// chats, the editor and backups work before any download and without WebGPU; the models load
// at the first message, or earlier when the person asks.

import { Confidant, ConfidantError } from 'confidant';
import type { EngineInfo, LoadModelOptions, Progress } from 'confidant';
import { h, openDialog } from './dom.js';
import { bytes, duration } from './format.js';
import { builtinOf, type BuiltinModel } from './models.js';
import { DEFAULT_MODEL_URL, EMBEDDER_BYTES, saveSettings, type ModelChoice, type Settings } from './settings.js';

export type ModelStatus =
  | { state: 'absent'; cached: boolean }
  | { state: 'loading'; text: string; fraction: number | null }
  | { state: 'ready'; info: EngineInfo }
  | { state: 'failed'; message: string };

/** "98.4 MB and 91.3 MB" for a built-in model, "the model file and …" for others. */
export function downloadSize(settings: Settings, catalogue: BuiltinModel[]): string {
  const size = builtinOf(settings.model, catalogue)?.bytes;
  return size ? `${bytes(size)} and ${bytes(EMBEDDER_BYTES)}` : 'the model file and ' + bytes(EMBEDDER_BYTES);
}

export class ModelLoader {
  status: ModelStatus = { state: 'absent', cached: false };
  /** Every stage seen, in order, as `what:stage` (the tests read it from the page). */
  readonly seen: string[] = [];
  private readonly listeners = new Set<(status: ModelStatus) => void>();
  private loading: Promise<boolean> | null = null;
  /** When each file's stage began, for the time left. */
  private readonly started = new Map<string, { time: number; loaded: number }>();

  constructor(
    private readonly engine: Confidant,
    private readonly settings: Settings,
    /** The site's built-in models (models.json). */
    readonly catalogue: BuiltinModel[],
  ) {}

  /** Whether the default (or chosen) model file is already in this browser. */
  async checkCache(): Promise<boolean> {
    const url = this.modelUrl();
    const cached = url !== null && (await Confidant.cache.list().catch(() => [])).some((m) => m.url === new URL(url, location.href).href);
    if (this.status.state === 'absent') this.set({ state: 'absent', cached });
    return cached;
  }

  get ready(): boolean {
    return this.status.state === 'ready';
  }

  /** Call `listener` now and on every change; returns the unsubscribe. */
  subscribe(listener: (status: ModelStatus) => void): () => void {
    this.listeners.add(listener);
    listener(this.status);
    return () => this.listeners.delete(listener);
  }

  /**
   * Make `choice` the model (remembered in the settings): loaded now when a model was loaded or
   * loading, else at the first message. True unless loading it failed.
   */
  async switchTo(choice: ModelChoice): Promise<boolean> {
    const wasLoaded = this.ready || this.loading !== null;
    await this.loading;
    this.settings.model = choice;
    saveSettings(this.settings);
    this.set({ state: 'absent', cached: false });
    await this.checkCache();
    return wasLoaded ? this.ensure() : true;
  }

  /**
   * Render chats with the chosen model through `source` instead of its own template (null: its
   * own again), remembered per model; a loaded model is loaded again with it. A template the
   * engine refuses is forgotten (the model comes back with its own): resolves to why, or null.
   */
  async setTemplate(source: string | null): Promise<string | null> {
    const url = this.modelUrl();
    if (url === null) return 'The model has no address to remember its template by.';
    if (source === null) delete this.settings.templates[url];
    else this.settings.templates[url] = source;
    if (await this.switchTo(this.settings.model)) return null;
    const why = this.status.state === 'failed' ? this.status.message : 'the model did not load';
    if (source !== null) {
      delete this.settings.templates[url];
      saveSettings(this.settings);
      await this.ensure();
    }
    return why;
  }

  /**
   * Load the models unless they are loaded: first ask, when they would be downloaded and the
   * person has not agreed before. True once ready; false when declined or failed.
   */
  ensure(): Promise<boolean> {
    if (this.ready) return Promise.resolve(true);
    this.loading ??= this.load().finally(() => (this.loading = null));
    return this.loading;
  }

  private async load(): Promise<boolean> {
    const cached = await this.checkCache();
    if (!cached && !this.settings.welcomed && this.settings.model.kind !== 'file') {
      if (!(await this.askConsent())) return false;
      this.settings.welcomed = true;
      saveSettings(this.settings);
    }
    const model = await this.modelSource();
    this.set({ state: 'loading', text: 'Starting…', fraction: null });
    try {
      const url = this.modelUrl();
      const chatTemplate = url !== null ? this.settings.templates[url] : undefined;
      await this.engine.loadModel({ model, chatTemplate, onProgress: (p) => this.report(p) });
      // The memory model too, so the first reply does not wait for it.
      await this.engine.memory.load();
    } catch (e) {
      this.set({ state: 'failed', message: describeError(e) });
      return false;
    }
    this.set({ state: 'ready', info: this.engine.info() });
    return true;
  }

  /** The chosen model's URL: of this site, or a stored file's `confidant-file:` URL. */
  modelUrl(): string | null {
    const choice = this.settings.model;
    if (choice.kind === 'file') return null;
    if (choice.kind === 'url' || choice.kind === 'stored') return choice.url || DEFAULT_MODEL_URL;
    return builtinOf(choice, this.catalogue)?.url ?? DEFAULT_MODEL_URL;
  }

  /** The model's source: the chosen URL, or (settings from before files were kept) a file the
   * person picks now, which is then stored so it is not asked for again. */
  private async modelSource(): Promise<LoadModelOptions['model']> {
    const url = this.modelUrl();
    if (url !== null) return { url };
    const file = await chooseModelFile();
    if (!file) return { url: DEFAULT_MODEL_URL };
    try {
      const stored = await Confidant.cache.add(file, { onProgress: (p) => this.report(p) });
      this.settings.model = { kind: 'stored', url: stored.url, name: stored.name ?? file.name };
      saveSettings(this.settings);
      return { url: stored.url };
    } catch {
      return { file };
    }
  }

  private askConsent(): Promise<boolean> {
    return new Promise((resolve) => {
      let answer = false;
      const yes = h('button', { type: 'button', class: 'primary', onclick: () => ((answer = true), dialog.close()) }, 'Download and continue');
      const no = h('button', { type: 'button', onclick: () => dialog.close() }, 'Not now');
      const dialog = openDialog(
        'Download the language model?',
        [
          h('p', {}, `Replies are written on this device by a small language model, with a second one for memory: ${downloadSize(this.settings, this.catalogue)} from this site, once. They stay in this browser, so later visits start at once, offline too.`),
          h('p', { class: 'muted small' }, 'Nothing you write is sent anywhere.'),
          h('div', { class: 'row' }, yes, no),
        ],
        { onClose: () => resolve(answer) },
      );
      yes.focus();
    });
  }

  /** Turn a package progress event into a line for people and a fraction (null: no measure). */
  private report(p: Progress): void {
    const label = `${p.what ?? 'model'}:${p.stage}`;
    if (this.seen[this.seen.length - 1] !== label) this.seen.push(label);
    const what = p.what === 'embedder' ? 'the memory model' : 'the language model';
    if (p.stage === 'blocked') {
      this.set({ state: 'loading', text: 'Waiting for another tab of Confidant, from an older version, to close or reload…', fraction: null });
      return;
    }
    if (p.stage === 'load') {
      // One step with no measure of its own: say what happens rather than show "0 B of …".
      this.set({ state: 'loading', text: `Setting up ${what} on this device…`, fraction: null });
      return;
    }
    const action = { download: `Downloading ${what}`, cache: `Saving ${what} in this browser`, compile: 'Loading the engine' }[p.stage] ?? p.stage;
    if (!(p.total > 0)) {
      this.set({ state: 'loading', text: `${action}…`, fraction: null });
      return;
    }
    const key = `${label}:${p.file ?? ''}`;
    const now = performance.now();
    if (!this.started.has(key)) this.started.set(key, { time: now, loaded: p.loaded });
    const start = this.started.get(key)!;
    const fraction = Math.min(1, p.loaded / p.total);
    const parts = [action, `${bytes(p.loaded)} of ${bytes(p.total)}`, `${Math.floor(fraction * 100)} %`];
    const elapsed = (now - start.time) / 1000;
    const rate = (p.loaded - start.loaded) / Math.max(elapsed, 1e-3);
    if (p.loaded < p.total && elapsed > 0.5 && rate > 0) parts.push(`about ${duration((p.total - p.loaded) / rate)} left`);
    this.set({ state: 'loading', text: parts.join(' · '), fraction });
  }

  private set(status: ModelStatus): void {
    this.status = status;
    for (const listener of this.listeners) listener(status);
  }
}

export function describeError(error: unknown): string {
  if (error instanceof ConfidantError) return `${error.message} (${error.code})`;
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Ask for a GGUF file when the settings say the model is a local file (a File cannot be kept). */
function chooseModelFile(): Promise<File | null> {
  return new Promise((resolve) => {
    let chosen: File | null = null;
    const input = h('input', { type: 'file', accept: '.gguf', 'aria-label': 'GGUF model file' });
    input.addEventListener('change', () => {
      chosen = input.files?.[0] ?? null;
      if (chosen) dialog.close();
    });
    const dialog = openDialog(
      'Choose your model',
      [
        h('p', {}, 'Your settings say the language model is a GGUF file on this computer. Choose it once more: it is then kept in this browser, so it is not asked for again.'),
        input,
        h('div', { class: 'row' }, h('button', { type: 'button', onclick: () => dialog.close() }, 'Use the default model instead')),
      ],
      { onClose: () => resolve(chosen) },
    );
    input.focus();
  });
}
