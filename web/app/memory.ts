// The memory panel: what a character remembers about the person (facts, summaries, notes),
// searched, pinned, edited and forgotten; and the memories behind the last reply.

import type { Character, MemoryHit, MemoryKind, MemoryRecord } from 'confidant';
import type { App } from './app.js';
import { h, openDialog, replace } from './dom.js';
import { when } from './format.js';
import { openProfileView } from './profile-view.js';

const KIND_LABEL: Record<MemoryKind, string> = {
  user_fact: 'About you',
  character_fact: 'About them',
  event_summary: 'Summary',
  pinned_note: 'Note',
  message: 'Message',
};
const REMEMBERED: MemoryKind[] = ['user_fact', 'character_fact', 'event_summary', 'pinned_note'];

export function openMemoryPanel(app: App, character: Character, lastUsed: MemoryHit[] | null): void {
  const results = h('ul', { class: 'memories', 'aria-label': 'Memories' });
  const search = h('input', { type: 'search', placeholder: `Search what ${character.name} remembers`, 'aria-label': 'Search memories' });
  const withMessages = h('input', { type: 'checkbox' });
  const note = h('textarea', { rows: 2, placeholder: 'Something they should always keep in mind', 'aria-label': 'New note' });
  const status = h('p', { class: 'muted small', role: 'status' });

  const item = (record: MemoryRecord, score?: number): HTMLLIElement => {
    const li = h('li', { class: `memory ${record.kind}`, 'data-id': record.id });
    const show = () =>
      replace(
        li,
        h('div', { class: 'meta' }, h('span', { class: 'tag' }, KIND_LABEL[record.kind]), record.pinned ? h('span', { class: 'tag pinned' }, 'Pinned') : null, h('time', {}, when(record.createdAt)), score !== undefined ? h('span', { class: 'muted' }, `score ${score.toFixed(2)}`) : null),
        h('p', {}, record.text),
        h(
          'div',
          { class: 'tools' },
          h('button', { type: 'button', class: 'link', 'aria-pressed': String(record.pinned), onclick: () => void change(record, { pinned: !record.pinned }) }, record.pinned ? 'Unpin' : 'Pin'),
          h('button', { type: 'button', class: 'link', onclick: () => edit() }, 'Edit'),
          h('button', { type: 'button', class: 'link danger', onclick: () => void forget(record, li) }, 'Forget'),
        ),
      );
    const edit = () => {
      const area = h('textarea', { rows: 3, value: record.text, 'aria-label': 'Memory text' });
      const form = h('form', { class: 'edit-form' }, area, h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Save'), h('button', { type: 'button', onclick: show }, 'Cancel')));
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        if (area.value.trim()) void change(record, { text: area.value.trim() });
      });
      replace(li, form);
      area.focus();
    };
    show();
    return li;
  };

  const change = async (record: MemoryRecord, patch: { pinned?: boolean; text?: string }) => {
    // A new text is embedded, which needs the memory model.
    if (patch.text !== undefined && !(await app.model.ensure())) return;
    try {
      await app.engine.memory.update(record.id, patch);
      await refresh();
    } catch (e) {
      app.toast(app.describe(e), 'error');
    }
  };
  const forget = async (record: MemoryRecord, li: HTMLElement) => {
    try {
      await app.engine.memory.forget(record.id);
      li.remove();
      status.textContent = 'Forgotten.';
    } catch (e) {
      app.toast(app.describe(e), 'error');
    }
  };

  const kinds = () => (withMessages.checked ? undefined : REMEMBERED);
  const refresh = async () => {
    const query = search.value.trim();
    try {
      if (query) {
        const hits = await app.engine.memory.search({ characterId: character.id, query, k: 12, kinds: kinds() });
        replace(results, hits.length ? hits.map((hit) => item(hit.record, hit.score)) : h('li', { class: 'muted' }, 'Nothing matches.'));
      } else {
        const records = (await app.engine.memory.list({ characterId: character.id, limit: 300 })).filter((r) => withMessages.checked || r.kind !== 'message');
        replace(results, records.length ? records.map((r) => item(r)) : h('li', { class: 'muted' }, `${character.name} remembers nothing about you yet. Facts you tell them appear here.`));
      }
    } catch (e) {
      app.toast(app.describe(e), 'error');
    }
  };

  let timer = 0;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = window.setTimeout(() => void refresh(), 300);
  });
  withMessages.addEventListener('change', () => void refresh());
  const noteForm = h('form', { class: 'note-form' }, note, h('button', { type: 'submit' }, 'Add note'));
  noteForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = note.value.trim();
    if (!text || !(await app.model.ensure())) return;
    try {
      await app.engine.memory.add({ characterId: character.id, kind: 'pinned_note', text, importance: 0.8 });
      note.value = '';
      await refresh();
    } catch (err) {
      app.toast(app.describe(err), 'error');
    }
  });

  const used = h(
    'section',
    { class: 'used', 'aria-labelledby': 'used-heading' },
    h('h3', { id: 'used-heading' }, 'Used for the last reply'),
    lastUsed === null
      ? h('p', { class: 'muted small' }, 'Send a message to see which memories the reply drew on.')
      : lastUsed.length
        ? h('ul', { class: 'memories compact' }, lastUsed.map((hit) => h('li', { class: 'memory' }, h('span', { class: 'tag' }, KIND_LABEL[hit.record.kind]), ' ', hit.record.text)))
        : h('p', { class: 'muted small' }, 'None: nothing stored was relevant.'),
  );

  // Searching embeds the query: until the models are loaded, lists only (no download unasked).
  let searchNote: HTMLElement | null = null;
  if (!app.model.ready) {
    search.disabled = true;
    searchNote = h(
      'p',
      { class: 'muted small' },
      'Searching and adding notes need the memory model, which loads with the language model. ',
      h('button', { type: 'button', class: 'link inline', onclick: () => void app.model.ensure().then((ok) => ok && (search.disabled = false)) }, 'Load them now'),
    );
  }

  const profile = h(
    'p',
    { class: 'small profile-link' },
    character.userProfile ? `${character.name} shares your profile. ` : `${character.name} does not share your profile. `,
    h('button', { type: 'button', class: 'link inline', onclick: () => { dialog.close(); openProfileView(app, character); } }, 'Your profile…'),
  );

  // The character's own notes (one after each summary): rewritten or deleted by the person.
  const notesList = h('ul', { class: 'memories compact persona-notes', 'aria-label': `${character.name}'s notes` });
  const saveNotes = async (notes: { id?: string; text: string }[]) => {
    try {
      const updated = await app.engine.characters.update(character.id, { notes });
      character.notes = updated.notes;
      showNotes();
    } catch (e) {
      app.toast(app.describe(e), 'error');
    }
  };
  const showNotes = () => {
    const notes = character.notes ?? [];
    const others = (id: string) => notes.filter((n) => n.id !== id).map((n) => ({ id: n.id, text: n.text }));
    replace(
      notesList,
      notes.length
        ? notes.map((note) => {
            const li = h('li', { class: 'memory', 'data-id': note.id });
            const show = () =>
              replace(
                li,
                h('p', {}, note.text),
                h('div', { class: 'tools' }, h('time', { class: 'muted small' }, when(note.createdAt)), h('button', { type: 'button', class: 'link', onclick: () => edit() }, 'Edit'), h('button', { type: 'button', class: 'link danger', onclick: () => void saveNotes(others(note.id)) }, 'Delete')),
              );
            const edit = () => {
              const area = h('textarea', { rows: 2, value: note.text, 'aria-label': 'Note text' });
              const form = h('form', { class: 'edit-form' }, area, h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Save'), h('button', { type: 'button', onclick: show }, 'Cancel')));
              form.addEventListener('submit', (e) => {
                e.preventDefault();
                if (area.value.trim()) void saveNotes(notes.map((n) => ({ id: n.id, text: n.id === note.id ? area.value.trim() : n.text })));
              });
              replace(li, form);
              area.focus();
            };
            show();
            return li;
          })
        : h('li', { class: 'muted' }, `After every few messages ${character.name} writes down how things stand with you; those notes appear here.`),
    );
  };
  showNotes();

  const dialog = openDialog(`What ${character.name} remembers`, [
    profile,
    used,
    h('h3', {}, `${character.name}'s own notes`),
    notesList,
    h('div', { class: 'row search-row' }, search, h('label', { class: 'check small' }, withMessages, ' Include messages')),
    searchNote,
    status,
    results,
    h('h3', {}, 'Add a pinned note'),
    noteForm,
  ], { wide: true });
  void refresh();
  if (!search.disabled) search.focus();
}
