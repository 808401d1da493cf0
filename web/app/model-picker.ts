// The settings' Model section: what runs now, the built-in models of this site, the person's
// own GGUF files kept in this browser (added here, copied into the package's cache so a reload
// does not ask for them again), a GGUF at a URL of this site; switching and deleting.

import { Confidant } from 'confidant';
import type { CachedModel } from 'confidant';
import type { App } from './app.js';
import { h, replace } from './dom.js';
import { bytes } from './format.js';
import { expectations } from './device.js';
import { downloadSize, type ModelStatus } from './model.js';
import { builtinOf } from './models.js';
import type { ModelChoice } from './settings.js';

/** A split model's part (`NAME-00002-of-00003.gguf`: part 2 of 3), or null for a whole file. */
function splitPartOf(name: string): { no: number; count: number } | null {
  const match = /-(\d{5})-of-(\d{5})\.gguf$/.exec(name);
  return match && Number(match[2]) > 1 ? { no: Number(match[1]), count: Number(match[2]) } : null;
}

function nameOf(m: CachedModel): string {
  return m.name ?? decodeURIComponent(m.url.slice(m.url.lastIndexOf('/') + 1));
}

/** A radio's value for a choice: `builtin:<id>`, `stored:<url>` or `url`. */
function valueOf(choice: ModelChoice, app: App): string {
  if (choice.kind === 'stored') return `stored:${choice.url}`;
  if (choice.kind === 'url') return 'url';
  const builtin = builtinOf(choice, app.model.catalogue);
  return builtin ? `builtin:${builtin.id}` : '';
}

/** The Model fieldset; `unsubscribe` stops its status line following the model. */
export function modelSection(app: App): { section: HTMLElement; unsubscribe: () => void } {
  const s = app.settings;
  // The chat template of the loaded model, which the person may replace (kept per model).
  const templateText = h('textarea', { rows: 6, spellcheck: 'false', 'aria-label': 'Chat template', class: 'template-source' });
  const templateNote = h('p', { class: 'muted small' });
  const useTemplate = h('button', { type: 'button' }, 'Use this template');
  const ownTemplate = h('button', { type: 'button', class: 'link' }, "Back to the model's own template");
  const templateSection = h('details', { class: 'template-override' }, h('summary', {}, 'Chat template'), templateNote, templateText, h('div', { class: 'row' }, useTemplate, ownTemplate));
  const applyTemplate = async (source: string | null) => {
    useTemplate.disabled = ownTemplate.disabled = true;
    const refused = await app.model.setTemplate(source);
    if (refused) app.toast(`That template cannot be used: ${refused}`, 'error');
  };
  useTemplate.addEventListener('click', () => void applyTemplate(templateText.value));
  ownTemplate.addEventListener('click', () => void applyTemplate(null));

  function showTemplate(status: ModelStatus): void {
    const ready = status.state === 'ready';
    useTemplate.disabled = ownTemplate.disabled = !ready;
    if (!ready) {
      templateNote.textContent = 'Load the model to see and change the template its chats are written with.';
      return;
    }
    const { chatTemplate, chatTemplateSource } = status.info.model;
    templateText.value = chatTemplateSource ?? '';
    ownTemplate.hidden = chatTemplate !== 'custom';
    templateNote.textContent =
      chatTemplate === 'custom'
        ? 'Your template for this model is in use (Jinja, as in a GGUF).'
        : `The ${chatTemplate === 'own' ? "model's own template" : `template standing in for the model's (${chatTemplate}: the file has none)`}, in Jinja as in a GGUF: change it to change how chats are written for this model.`;
  }

  // Which backend runs the model and how fast, once it is loaded; before, a way to load it now.
  const about = h('div', { 'aria-live': 'polite' });
  const unsubscribe = app.model.subscribe((status) => {
    showTemplate(status);
    if (status.state === 'ready') {
      const info = status.info;
      replace(about, expectations(info).map((line) => h('p', { class: 'device-note' }, line)), h('p', { class: 'muted small model-loaded' }, `${info.model.displayName}: ${info.model.arch}, ${(info.model.params / 1e6).toFixed(0)}M weights, ${info.model.quant}.`));
    } else if (status.state === 'loading') {
      replace(about, h('p', { class: 'device-note' }, status.text));
    } else {
      const text = status.state === 'failed' ? `The model could not be loaded: ${status.message}` : status.cached ? 'No model is loaded yet; it is in this browser and loads with your first message.' : `No model is loaded yet: it downloads (${downloadSize(s, app.model.catalogue)}) with your first message.`;
      replace(about, h('p', { class: 'device-note' }, text), h('button', { type: 'button', onclick: () => void app.model.ensure() }, status.state === 'absent' && status.cached ? 'Load it now' : 'Download it now'));
    }
  });

  const list = h('ul', { class: 'model-choices', 'aria-label': 'Models' });
  const url = h('input', { type: 'text', value: s.model.kind === 'url' ? s.model.url : '', placeholder: 'models/your-model.gguf', 'aria-label': 'Model URL' });
  const note = h('p', { class: 'muted small', 'aria-live': 'polite' });
  // Several files at once: the parts of a split model (NAME-00001-of-00003.gguf, …).
  const adding = h('input', { type: 'file', accept: '.gguf', multiple: true, id: 'model-file', class: 'visually-hidden' });
  const addLabel = h('label', { for: 'model-file', class: 'button', tabindex: 0 }, 'Add a GGUF file from this computer');
  addLabel.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      adding.click();
    }
  });
  const use = h('button', { type: 'button', class: 'primary' }, 'Use this model');


  // The radio checked when the list is drawn: the settings' choice, or one just added.
  let selected = valueOf(s.model, app);
  const radio = (value: string, label: string, ...rest: (HTMLElement | string)[]) =>
    h('li', {}, h('label', { class: 'check' }, h('input', { type: 'radio', name: 'model', value, checked: value === selected, onchange: () => (selected = value) }), ` ${label}`), ...rest);
  const render = async () => {
    const cached = new Map((await Confidant.cache.list().catch(() => [] as CachedModel[])).map((m) => [m.url, m]));
    const forget = (entry: CachedModel, label: string) =>
      h('button', { type: 'button', class: 'link danger', 'aria-label': `Delete ${label} from this browser`, onclick: () => void remove(entry, label) }, 'Delete from this browser');
    const builtins = app.model.catalogue.map((m) => {
      const entry = cached.get(new URL(m.url, location.href).href);
      const size = m.bytes ? bytes(m.bytes) : '';
      return radio(`builtin:${m.id}`, `${m.name} (${[m.default ? 'default' : '', size].filter(Boolean).join(', ')})`, h('p', { class: 'muted small' }, m.description, entry ? ' In this browser. ' : ' ', entry ? forget(entry, m.name) : ''));
    });
    // A person's files, a split model's parts as one (kept under one folder, listed by its first part).
    const stored = [...cached.values()].filter((m) => m.url.startsWith('confidant-file:'));
    const folder = (m: CachedModel) => m.url.slice(0, m.url.lastIndexOf('/'));
    const files = stored
      .filter((m) => (splitPartOf(nameOf(m))?.no ?? 1) === 1)
      .map((m) => {
        const name = nameOf(m);
        const parts = stored.filter((p) => folder(p) === folder(m));
        const size = parts.reduce((n, p) => n + p.size, 0);
        const kind = parts.length > 1 ? `your file, in ${parts.length} parts` : 'your file';
        return radio(`stored:${m.url}`, `${name} (${bytes(size)}, ${kind})`, h('p', { class: 'muted small' }, 'Kept in this browser. ', forget(m, name)));
      });
    replace(list, builtins, files, radio('url', 'A GGUF file on this site:', url));
  };

  const remove = async (entry: CachedModel, label: string) => {
    if (!confirm(`Delete ${label} from this browser? ${entry.url.startsWith('confidant-file:') ? 'To use it again you will add the file again.' : 'It downloads again when it is next used.'}`)) return;
    await Confidant.cache.delete(entry.url);
    // A deleted file of one's own cannot stay the choice.
    if (s.model.kind === 'stored' && s.model.url === entry.url) {
      selected = valueOf({ kind: 'default' }, app);
      await app.model.switchTo({ kind: 'default' });
    }
    note.textContent = `${label} was deleted from this browser.`;
    await render();
  };

  adding.addEventListener('change', async () => {
    const chosen = [...(adding.files ?? [])];
    adding.value = '';
    const file = chosen.find((f) => (splitPartOf(f.name)?.no ?? 1) === 1) ?? chosen[0];
    if (!file) return;
    for (const f of chosen) {
      if ((await f.slice(0, 4).text()) !== 'GGUF') {
        app.toast(`${f.name} is not a GGUF model file.`, 'error');
        return;
      }
    }
    try {
      const entry = await Confidant.cache.add(chosen.length > 1 ? chosen : file, { onProgress: (p) => (note.textContent = `Keeping ${file.name} in this browser · ${bytes(p.loaded)} of ${bytes(p.total)}`) });
      note.textContent = `${file.name} is kept in this browser: choose it and press Use this model.`;
      selected = `stored:${entry.url}`;
      await render();
    } catch (e) {
      note.textContent = '';
      app.toast(`${file.name}: ${app.describe(e)}`, 'error');
    }
  });

  use.addEventListener('click', async () => {
    let choice: ModelChoice;
    if (selected === 'url') {
      const value = url.value.trim();
      let ok = false;
      try {
        ok = value !== '' && new URL(value, location.href).origin === location.origin;
      } catch {
        ok = false;
      }
      if (!ok) {
        app.toast('Give a URL on this site (the page may not fetch from other sites).', 'error');
        url.focus();
        return;
      }
      choice = { kind: 'url', url: value };
    } else if (selected.startsWith('stored:')) {
      const storedUrl = selected.slice('stored:'.length);
      const entry = (await Confidant.cache.list()).find((m) => m.url === storedUrl);
      choice = { kind: 'stored', url: storedUrl, name: entry?.name ?? 'your file' };
    } else {
      const builtin = app.model.catalogue.find((m) => `builtin:${m.id}` === selected);
      choice = !builtin || builtin.default ? { kind: 'default' } : { kind: 'builtin', id: builtin.id };
    }
    use.disabled = true;
    try {
      if (await app.model.switchTo(choice)) note.textContent = app.model.ready ? '' : 'Chosen: it loads with your first message.';
    } finally {
      use.disabled = false;
      await render();
    }
  });

  void render();
  const section = h(
    'fieldset',
    {},
    h('legend', {}, 'Model'),
    about,
    list,
    h('div', { class: 'row' }, use, addLabel, adding),
    note,
    templateSection,
    h('p', { class: 'muted small' }, 'A model split in parts (NAME-00001-of-00003.gguf, …): choose all its parts at once. Any GGUF of the llama (Llama, Mistral, SmolLM), qwen2, qwen3, gemma3 or phi3 architecture. For privacy this page may only fetch from its own site.'),
  );
  return { section, unsubscribe };
}
