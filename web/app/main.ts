// The demo's entry point: check WebGPU, explain on the first visit, load the models with
// progress, then the app shell (character list, the current screen, toasts).

import { Confidant, ConfidantError } from 'confidant';
import type { Character, Progress } from 'confidant';
import type { App } from './app.js';
import { h, replace } from './dom.js';
import { initials } from './format.js';
import { hasWebGpu, ProgressView, showNoWebGpu, showWelcome } from './loading.js';
import { applyTheme, DEFAULT_MODEL_URL, EMBEDDER_URL, loadSettings, saveSettings, type Settings } from './settings.js';
import { showGalleryView } from './gallery.js';
import { showEditor } from './editor.js';
import { ChatView } from './chat.js';
import { openMemoryPanel } from './memory.js';
import { openSettingsPanel } from './settings-view.js';

const root = document.getElementById('app')!;

/** For the browser tests and the curious: the loading stages seen and the app once ready. */
declare global {
  interface Window {
    confidantDemo?: { stages: string[]; ready: boolean; app?: App };
  }
}

/**
 * The service worker keeps the site for offline starts and adds the headers that make the page
 * cross-origin isolated (for the engine's threads) where the host does not send them. Returns
 * true when this page should load once more to get those headers: it is controlled by the
 * worker but came without them (the first visit's page came from the network before the worker
 * existed, and runs single-threaded).
 */
function registerServiceWorker(): boolean {
  if (!('serviceWorker' in navigator)) return false;
  // Offline start and threads are conveniences; the app works without them.
  navigator.serviceWorker.register('sw.js').catch((e) => console.warn('service worker not registered', e));
  if (crossOriginIsolated || !navigator.serviceWorker.controller) return false;
  // Once per tab session, so a browser that ignores the headers cannot loop.
  if (sessionStorage.getItem('confidant.isolationReload') === '1') return false;
  sessionStorage.setItem('confidant.isolationReload', '1');
  return true;
}

/** Ask for a GGUF file when the settings say the model is a local file (a File cannot be kept). */
function chooseModelFile(): Promise<File | null> {
  return new Promise((resolve) => {
    const input = h('input', { type: 'file', accept: '.gguf', 'aria-label': 'GGUF model file' });
    const useDefault = h('button', { type: 'button', onclick: () => resolve(null) }, 'Use the default model instead');
    input.addEventListener('change', () => input.files?.[0] && resolve(input.files[0]));
    replace(
      root,
      h('main', { class: 'splash' }, h('h1', {}, 'Choose your model'), h('p', {}, 'Your settings say the language model is a GGUF file on this computer. Choose it (browsers do not let a page keep access to a file between visits).'), input, useDefault),
    );
    input.focus();
  });
}

async function start(): Promise<void> {
  const settings = loadSettings();
  applyTheme(settings.theme);
  window.confidantDemo = { stages: [], ready: false };
  if (registerServiceWorker()) {
    location.reload();
    return;
  }
  if (settings.backend === 'webgpu' && !(await hasWebGpu())) {
    showNoWebGpu(root, () => {
      settings.backend = 'auto';
      saveSettings(settings);
      void start();
    });
    return;
  }
  let model: Parameters<typeof Confidant.create>[0]['model'] = { url: DEFAULT_MODEL_URL };
  if (settings.model.kind === 'url' && settings.model.url) model = { url: settings.model.url };
  if (settings.model.kind === 'file') {
    const file = await chooseModelFile();
    if (file) model = { file };
  }
  if (!settings.welcomed) {
    const cached = 'url' in model && (await Confidant.cache.list().catch(() => [])).some((m) => m.url === new URL(model.url, location.href).href);
    await showWelcome(root, { cached });
    settings.welcomed = true;
    saveSettings(settings);
  }
  await load(settings, model);
}

async function load(settings: Settings, model: Parameters<typeof Confidant.create>[0]['model']): Promise<void> {
  const progress = new ProgressView();
  window.confidantDemo!.stages = progress.seen;
  replace(root, progress.element);
  const onProgress = (p: Progress) => progress.report(p);
  // A fault in the engine (a wasm trap, a lost GPU) restarts it; say so in one line.
  const onRestart = (cause: ConfidantError) =>
    window.confidantDemo?.app?.toast(`The engine stopped (${cause.code === 'device_lost' ? 'the GPU was lost' : 'an internal error'}) and was restarted; your chats are safe. A reply cut short can be regenerated.`, 'error');
  let engine: Confidant;
  try {
    engine = await Confidant.create({ model, backend: settings.backend, onProgress, embedder: { url: EMBEDDER_URL }, onRestart });
    // Open memory now (it loads the embedding model), so the first message does not wait.
    await engine.memory.stats({});
  } catch (e) {
    progress.failed(describe(e), () => void load(settings, model));
    return;
  }
  progress.ready();
  const shell = new Shell(engine, settings);
  window.confidantDemo!.app = shell;
  await shell.start();
  window.confidantDemo!.ready = true;
}

function describe(error: unknown): string {
  if (error instanceof ConfidantError) return `${error.message} (${error.code})`;
  if (error instanceof Error) return error.message;
  return String(error);
}

class Shell implements App {
  characters: Character[] = [];
  private readonly avatars = new Map<string, Promise<string | null>>();
  private readonly list = h('ul', { class: 'character-list', 'aria-label': 'Your characters' });
  private readonly content = h('main', { class: 'content', id: 'content', tabindex: -1 });
  private readonly toasts = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
  private readonly layout: HTMLElement;
  private chat: ChatView | null = null;

  constructor(
    readonly engine: Confidant,
    readonly settings: Settings,
  ) {
    const sidebar = h(
      'nav',
      { class: 'sidebar', 'aria-label': 'Characters' },
      h('div', { class: 'brand' }, h('img', { src: 'icon.svg', alt: '', width: 28, height: 28 }), h('span', {}, 'Confidant')),
      h('button', { type: 'button', class: 'nav-button', onclick: () => this.showGallery() }, '✦ Gallery'),
      h('button', { type: 'button', class: 'nav-button', onclick: () => this.editCharacter(null) }, '+ New character'),
      h('h2', { class: 'nav-heading' }, 'Chats'),
      this.list,
      h('div', { class: 'sidebar-foot' }, h('button', { type: 'button', class: 'nav-button', onclick: () => this.openSettings() }, '⚙ Settings'), h('p', { class: 'muted small' }, 'Runs on this device. Nothing leaves it.')),
    );
    this.layout = h('div', { class: 'layout' }, sidebar, this.content, this.toasts);
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.layout.classList.remove('menu-open');
    });
    // A click on the dimmed area beside the open menu closes it.
    this.layout.addEventListener('click', (e) => {
      if (e.target === this.layout) this.layout.classList.remove('menu-open');
    });
  }

  async start(): Promise<void> {
    replace(root, this.layout);
    await this.refreshCharacters();
    const last = this.settings.characterId && this.characters.find((c) => c.id === this.settings.characterId);
    if (last) await this.openCharacter(last.id, this.settings.sessionId);
    else this.showGallery();
  }

  saveSettings(): void {
    saveSettings(this.settings);
  }

  async refreshCharacters(): Promise<void> {
    this.characters = (await this.engine.characters.list()).sort((a, b) => b.updatedAt - a.updatedAt);
    const items = await Promise.all(
      this.characters.map(async (c) => {
        const button = h('button', { type: 'button', class: 'character-link', 'aria-current': c.id === this.settings.characterId ? 'true' : undefined, onclick: () => void this.openCharacter(c.id) }, await this.avatar(c, 'small'), h('span', {}, c.name));
        return h('li', {}, button);
      }),
    );
    replace(this.list, items.length ? items : h('li', { class: 'muted small' }, 'No characters yet.'));
  }

  /** The avatar image, or the initials when the card has none. */
  async avatar(c: Character, size: 'small' | 'large'): Promise<HTMLElement> {
    const url = await this.avatarUrl(c);
    if (url) return h('img', { class: `avatar ${size}`, src: url, alt: '' });
    return h('span', { class: `avatar ${size} initials`, 'aria-hidden': 'true' }, initials(c.name));
  }

  avatarUrl(c: Character): Promise<string | null> {
    if (!c.hasAvatar) return Promise.resolve(null);
    const key = `${c.id}:${c.updatedAt}`;
    let url = this.avatars.get(key);
    if (!url) {
      url = this.engine.characters.export(c.id, { format: 'png' }).then(
        (blob) => URL.createObjectURL(blob),
        () => null,
      );
      this.avatars.set(key, url);
    }
    return url;
  }

  private show(view: HTMLElement): void {
    this.chat?.detach();
    this.chat = null;
    this.layout.classList.remove('menu-open');
    replace(this.content, view);
  }

  /** The menu button small screens show in place of the sidebar. */
  menuButton(): HTMLElement {
    return h('button', { type: 'button', class: 'icon menu-button', 'aria-label': 'Menu', onclick: () => this.layout.classList.toggle('menu-open') }, '☰');
  }

  showGallery(): void {
    this.settings.characterId = null;
    this.saveSettings();
    const view = h('div', { class: 'view' });
    this.show(view);
    void showGalleryView(this, view, this.menuButton());
    void this.refreshCharacters();
  }

  editCharacter(id: string | null): void {
    const view = h('div', { class: 'view' });
    this.show(view);
    showEditor(this, view, id, this.menuButton());
  }

  async openCharacter(id: string, sessionId: string | null = null): Promise<void> {
    try {
      const character = await this.engine.characters.get(id);
      let session = null;
      if (sessionId) session = await this.engine.sessions.get(sessionId).catch(() => null);
      if (!session || session.characterId !== id) session = (await this.engine.sessions.list({ characterId: id }))[0] ?? null;
      session ??= await this.engine.sessions.create({ characterId: id, userName: this.settings.userName });
      this.settings.characterId = id;
      this.settings.sessionId = session.id;
      this.saveSettings();
      const view = h('div', { class: 'view chat-view' });
      this.show(view);
      this.chat = new ChatView(this, view, character, session, this.menuButton(), await this.avatar(character, 'large'));
      await this.chat.render();
      void this.refreshCharacters();
    } catch (e) {
      this.toast(this.describe(e), 'error');
      this.showGallery();
    }
  }

  openMemory(): void {
    if (!this.settings.characterId) return;
    const character = this.characters.find((c) => c.id === this.settings.characterId);
    if (character) openMemoryPanel(this, character, this.chat?.lastMemories ?? null);
  }

  openSettings(): void {
    openSettingsPanel(this);
  }

  toast(message: string, kind: 'error' | 'info' = 'info'): void {
    const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : undefined }, message, h('button', { type: 'button', class: 'icon', 'aria-label': 'Dismiss', onclick: () => el.remove() }, '✕'));
    this.toasts.append(el);
    setTimeout(() => el.remove(), kind === 'error' ? 12_000 : 5_000);
  }

  describe(error: unknown): string {
    return describe(error);
  }
}

void start().catch((e) => {
  replace(root, h('main', { class: 'splash' }, h('h1', {}, 'Something went wrong'), h('p', {}, describe(e))));
});
