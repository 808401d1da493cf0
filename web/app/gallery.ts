// The gallery: the built-in demo characters, the person's own, and importing a card file.

import type { Character } from 'confidant';
import type { App } from './app.js';
import { h, replace } from './dom.js';

interface DemoCard {
  id: string;
  file: string;
  name: string;
  tagline: string;
  spec: string;
  tags: string[];
}

/** The demo marker kept in a demo card's `extensions.confidant.demo`. */
export function demoId(c: Character): string | null {
  const ext = c.extensions as { confidant?: { demo?: unknown } } | undefined;
  return typeof ext?.confidant?.demo === 'string' ? ext.confidant.demo : null;
}

export async function showGalleryView(app: App, view: HTMLElement, menu: HTMLElement): Promise<void> {
  let demos: DemoCard[] = [];
  try {
    demos = (await (await fetch('cards/index.json')).json()) as DemoCard[];
  } catch {
    app.toast('The demo characters could not be loaded.', 'error');
  }

  const pickDemo = async (demo: DemoCard, button: HTMLButtonElement) => {
    const existing = app.characters.find((c) => demoId(c) === demo.id);
    if (existing) return app.openCharacter(existing.id);
    button.disabled = true;
    try {
      const blob = await (await fetch(`cards/${demo.file}`)).blob();
      const character = await app.engine.characters.import(blob);
      await app.refreshCharacters();
      await app.openCharacter(character.id);
    } catch (e) {
      app.toast(app.describe(e), 'error');
      button.disabled = false;
    }
  };

  const demoCards = demos.map((demo) => {
    const button = h('button', { type: 'button', class: 'primary' }, `Talk to ${demo.name.split(' ')[0]}`);
    button.addEventListener('click', () => void pickDemo(demo, button));
    return h(
      'li',
      { class: 'card', 'data-demo': demo.id },
      h('img', { src: `cards/${demo.file}`, alt: `Portrait of ${demo.name}`, width: 256, height: 256 }),
      h('div', { class: 'card-body' }, h('h3', {}, demo.name), h('p', {}, demo.tagline), h('p', { class: 'tags' }, demo.tags.map((t) => h('span', { class: 'tag' }, t))), button),
    );
  });

  const own = app.characters.filter((c) => demoId(c) === null);
  const ownCards = await Promise.all(
    own.map(async (c) =>
      h(
        'li',
        { class: 'card small-card' },
        await app.avatar(c, 'large'),
        h(
          'div',
          { class: 'card-body' },
          h('h3', {}, c.name),
          h('p', { class: 'clamp' }, String(c.description ?? '')),
          h('div', { class: 'row' }, h('button', { type: 'button', class: 'primary', onclick: () => void app.openCharacter(c.id) }, 'Chat'), h('button', { type: 'button', onclick: () => app.editCharacter(c.id) }, 'Edit')),
        ),
      ),
    ),
  );

  replace(
    view,
    h('header', { class: 'view-head' }, menu, h('h1', {}, 'Choose someone to talk to')),
    h('section', { 'aria-labelledby': 'demo-heading' }, h('h2', { id: 'demo-heading' }, 'Demo characters'), h('ul', { class: 'cards' }, demoCards)),
    h(
      'section',
      { 'aria-labelledby': 'own-heading' },
      h('h2', { id: 'own-heading' }, 'Your characters'),
      ownCards.length ? h('ul', { class: 'cards' }, ownCards) : h('p', { class: 'muted' }, 'Characters you import or create appear here.'),
      importZone(app),
      h('button', { type: 'button', onclick: () => app.editCharacter(null) }, 'Create a character'),
    ),
  );
}

/** Drop a PNG / JSON / CHARX card here, or choose one. */
function importZone(app: App): HTMLElement {
  const input = h('input', { type: 'file', accept: '.png,.json,.charx,image/png,application/json', class: 'visually-hidden', id: 'card-file' });
  const zone = h(
    'div',
    { class: 'dropzone' },
    h('p', {}, 'Drop a character card here (PNG, JSON or CHARX; V1, V2 or V3)'),
    h('label', { for: 'card-file', class: 'button', tabindex: 0 }, 'Choose a card file'),
    input,
  );
  const importFile = async (file: File) => {
    try {
      const character = await app.engine.characters.import(file);
      app.toast(`Imported ${character.name}.`);
      await app.refreshCharacters();
      await app.openCharacter(character.id);
    } catch (e) {
      app.toast(`${file.name}: ${app.describe(e)}`, 'error');
    }
  };
  input.addEventListener('change', () => {
    const file = input.files?.[0];
    if (file) void importFile(file);
    input.value = '';
  });
  zone.querySelector('label')!.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      input.click();
    }
  });
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const file = e.dataTransfer?.files?.[0];
    if (file) void importFile(file);
  });
  return zone;
}
