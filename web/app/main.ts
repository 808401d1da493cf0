// The demo's entry point: open the package's storage (no model yet), show the characters, and
// load the models when the first message needs them (model.ts), or earlier if the person asks.

import { Confidant } from 'confidant';
import type { Character, ConfidantError, Progress } from 'confidant';
import type { App } from './app.js';
import { h, replace } from './dom.js';
import { bytes } from './format.js';
import { hasWebGpu, showNoWebGpu } from './loading.js';
import { applyTheme, EMBEDDER_URL, loadSettings, saveSettings, type Settings } from './settings.js';
import { type DemoCard, demoId, portraitOf, showGalleryView } from './gallery.js';
import { showEditor } from './editor.js';
import { ChatView } from './chat.js';
import { openMemoryPanel } from './memory.js';
import { openSettingsPanel } from './settings-view.js';
import { describeError, ModelLoader, type ModelStatus } from './model.js';
import { loadCatalogue } from './models.js';
import { portraitUrl } from './portrait.js';

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
  // Storage only: the engine's code, no model. Nothing is fetched from models/ until needed.
  const starting = h('p', { class: 'progress-detail', 'aria-live': 'polite' }, 'Starting…');
  const faces = h('ul', { class: 'faces', 'aria-label': 'Demo characters' });
  replace(root, h('main', { class: 'splash' }, h('h1', {}, 'Confidant'), h('p', { class: 'lead' }, 'Private companions that live in your browser.'), faces, starting));
  // The demo characters while the engine's code arrives: their faces are drawn here, at once.
  void fetch('cards/index.json')
    .then((r) => r.json() as Promise<DemoCard[]>)
    .then((demos) => replace(faces, demos.map((d) => h('li', {}, h('img', { src: portraitUrl({ seed: d.id, ...d.portrait }), alt: '', width: 88, height: 88 }), h('span', {}, d.name)))))
    .catch(() => {});
  const onProgress = (p: Progress) => {
    if (p.stage === 'blocked') {
      const text = 'Another tab of Confidant, from an older version, keeps your data open: close or reload it to go on.';
      starting.textContent = text;
      window.confidantDemo?.app?.toast(text, 'error');
    }
    if (p.stage === 'compile' && p.total > 0) starting.textContent = `Loading the app · ${bytes(p.loaded)} of ${bytes(p.total)} · ${Math.floor((100 * p.loaded) / p.total)} %`;
  };
  // A fault in the engine (a wasm trap, a lost GPU) restarts it; say so in one line.
  const onRestart = (cause: ConfidantError) =>
    window.confidantDemo?.app?.toast(`The engine stopped (${cause.code === 'device_lost' ? 'the GPU was lost' : 'an internal error'}) and was restarted; your chats are safe. A reply cut short can be regenerated.`, 'error');
  const catalogue = loadCatalogue();
  let engine: Confidant;
  try {
    engine = await Confidant.open({ backend: settings.backend, embedder: { url: EMBEDDER_URL }, onProgress, onRestart });
  } catch (e) {
    replace(root, h('main', { class: 'splash' }, h('h1', {}, 'Confidant could not start'), h('p', {}, describeError(e)), h('button', { type: 'button', class: 'primary', onclick: () => location.reload() }, 'Try again')));
    return;
  }
  const model = new ModelLoader(engine, settings, await catalogue);
  window.confidantDemo!.stages = model.seen;
  const cached = await model.checkCache();
  const shell = new Shell(engine, settings, model);
  window.confidantDemo!.app = shell;
  await shell.start();
  window.confidantDemo!.ready = true;
  // A returning visitor who has the models already gets them loaded now (no download).
  if (settings.welcomed && cached) void model.ensure();
}

class Shell implements App {
  characters: Character[] = [];
  private readonly avatars = new Map<string, Promise<string | null>>();
  private readonly list = h('ul', { class: 'character-list', 'aria-label': 'Your characters' });
  private readonly content = h('main', { class: 'content', id: 'content', tabindex: -1 });
  private readonly toasts = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
  /** The model's state in the sidebar: not loaded (with a button), loading (a bar), ready. */
  private readonly modelLine = h('div', { class: 'model-line', 'aria-live': 'polite' });
  private readonly layout: HTMLElement;
  private chat: ChatView | null = null;

  constructor(
    readonly engine: Confidant,
    readonly settings: Settings,
    readonly model: ModelLoader,
  ) {
    const sidebar = h(
      'nav',
      { class: 'sidebar', 'aria-label': 'Characters' },
      h('div', { class: 'brand' }, h('img', { src: 'icon.svg', alt: '', width: 28, height: 28 }), h('span', {}, 'Confidant')),
      h('button', { type: 'button', class: 'nav-button', onclick: () => this.showGallery() }, '✦ Gallery'),
      h('button', { type: 'button', class: 'nav-button', onclick: () => this.editCharacter(null) }, '+ New character'),
      h('h2', { class: 'nav-heading' }, 'Chats'),
      this.list,
      h('div', { class: 'sidebar-foot' }, this.modelLine, h('button', { type: 'button', class: 'nav-button', onclick: () => this.openSettings() }, '⚙ Settings'), h('p', { class: 'muted small' }, 'Runs on this device. Nothing leaves it.')),
    );
    model.subscribe((status) => this.showModelStatus(status));
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

  /** The card's own picture when it came with one; else a portrait drawn from the card. */
  async avatar(c: Character, size: 'small' | 'large'): Promise<HTMLElement> {
    const url = (await this.avatarUrl(c)) ?? portraitUrl(portraitOf(c));
    return h('img', { class: `avatar ${size}`, src: url, alt: '' });
  }

  avatarUrl(c: Character): Promise<string | null> {
    // The demo cards' pictures are the portraits drawn here; drawing keeps them crisp.
    if (!c.hasAvatar || demoId(c) !== null) return Promise.resolve(null);
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

  private showModelStatus(status: ModelStatus): void {
    if (status.state === 'loading') {
      const bar = h('progress', { max: 1, 'aria-label': 'Loading the model' });
      if (status.fraction !== null) bar.value = status.fraction;
      replace(this.modelLine, bar, h('p', { class: 'small' }, status.text));
    } else if (status.state === 'ready') {
      replace(this.modelLine, h('p', { class: 'small muted' }, `${status.info.model.displayName} is ready.`));
    } else {
      const load = h('button', { type: 'button', class: 'link', onclick: () => void this.model.ensure() }, status.state === 'failed' ? 'Try again' : status.cached ? 'Load it now' : 'Download it now');
      const text = status.state === 'failed' ? `The model could not be loaded: ${status.message}` : status.cached ? 'The model is in this browser; it loads with your first message.' : 'The model downloads with your first message.';
      replace(this.modelLine, h('p', { class: 'small muted' }, text, ' ', load));
    }
  }

  toast(message: string, kind: 'error' | 'info' = 'info'): void {
    const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : undefined }, message, h('button', { type: 'button', class: 'icon', 'aria-label': 'Dismiss', onclick: () => el.remove() }, '✕'));
    this.toasts.append(el);
    setTimeout(() => el.remove(), kind === 'error' ? 12_000 : 5_000);
  }

  describe(error: unknown): string {
    return describeError(error);
  }
}

void start().catch((e) => {
  replace(root, h('main', { class: 'splash' }, h('h1', {}, 'Something went wrong'), h('p', {}, describeError(e))));
});
