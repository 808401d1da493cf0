// The gallery: the built-in demo characters, the person's own, and importing a card file.

import type { Character } from 'confidant';
import type { App } from './app.js';
import { h, replace } from './dom.js';
import { type PortraitSubject, portraitUrl } from './portrait.js';
import { downloadSize } from './model.js';

/** A demo character as cards/index.json lists it. */
export interface DemoCard {
  id: string;
  file: string;
  name: string;
  tagline: string;
  spec: string;
  tags: string[];
  /** What its portrait is drawn from (the card's description, personality and mood). */
  portrait: Omit<PortraitSubject, 'seed'>;
}

/** The demo marker kept in a demo card's `extensions.confidant.demo`. */
export function demoId(c: Character): string | null {
  const ext = c.extensions as { confidant?: { demo?: unknown } } | undefined;
  return typeof ext?.confidant?.demo === 'string' ? ext.confidant.demo : null;
}

/** What a character's portrait is drawn from: the demo id (the same face before and after it is picked) or the stored id, and the card. */
export function portraitOf(c: Character): PortraitSubject {
  return { seed: demoId(c) ?? c.id, description: c.description ?? '', personality: c.personality ?? '', mood: c.profile?.mood };
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
    // "Talk to Ilse", not "Talk to Captain".
    const firstName = demo.name.split(' ').find((w) => !/^(captain|doctor|dr\.?|mr\.?|mrs\.?|ms\.?|professor|sir|lady|lord)$/i.test(w)) ?? demo.name;
    const button = h('button', { type: 'button', class: 'primary' }, `Talk to ${firstName}`);
    button.addEventListener('click', () => void pickDemo(demo, button));
    return h(
      'li',
      { class: 'card', 'data-demo': demo.id },
      h('img', { src: portraitUrl({ seed: demo.id, ...demo.portrait }), alt: `Portrait of ${demo.name}`, width: 256, height: 256 }),
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

  // Until the model is here, say what the first message will do, and offer to do it now.
  let intro: HTMLElement | null = null;
  /** Set once the view is on screen: after that, a gallery no longer shown stops listening. */
  let shown = false;
  if (!app.model.ready) {
    const state = h('p', { 'aria-live': 'polite' });
    const section = h('section', { class: 'intro', 'aria-label': 'About Confidant' }, h('p', { class: 'lead' }, 'Private companions that live in your browser.'), state);
    intro = section;
    let unsubscribe: (() => void) | null = null;
    unsubscribe = app.model.subscribe((status) => {
      if (shown && !section.isConnected) return unsubscribe?.();
      const about = 'Pick someone and say hello. Their replies are written on this device by a small language model, and what they remember stays in this browser. ';
      if (status.state === 'absent' && status.cached) replace(state, about, 'The models are already here: they load with your first message.');
      else if (status.state === 'absent') replace(state, about, `The models (${downloadSize(app.settings, app.model.catalogue)}) download from this site with your first message, once; or `, h('button', { type: 'button', class: 'link inline', onclick: () => void app.model.ensure() }, 'download them now'), '.');
      else if (status.state === 'loading') replace(state, h('progress', { max: 1, value: status.fraction ?? undefined, 'aria-label': 'Loading the model' }), ' ', status.text);
      else if (status.state === 'ready') replace(state, 'The model is ready: pick someone and say hello.');
      else replace(state, `The model could not be loaded: ${status.message} `, h('button', { type: 'button', class: 'link inline', onclick: () => void app.model.ensure() }, 'Try again'));
    });
  }

  replace(
    view,
    h('header', { class: 'view-head' }, menu, h('h1', {}, 'Choose someone to talk to')),
    intro,
    h('section', { 'aria-labelledby': 'demo-heading' }, h('h2', { id: 'demo-heading' }, 'Demo characters'), h('ul', { class: 'cards' }, demoCards)),
    h(
      'section',
      { 'aria-labelledby': 'own-heading' },
      h('h2', { id: 'own-heading' }, 'Your characters'),
      ownCards.length ? h('ul', { class: 'cards' }, ownCards) : h('p', { class: 'muted' }, 'Characters you import or create appear here.'),
      importZone(app),
      h('button', { type: 'button', onclick: () => app.editCharacter(null) }, 'Create a character'),
    ),
    h('p', { class: 'muted small credits' }, 'Portraits are drawn on this device from each card with DiceBear’s “Lorelei” style by Lisa Wischofsky (CC0 1.0).'),
  );
  shown = true;
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
