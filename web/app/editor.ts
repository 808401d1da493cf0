// Creating and editing a character: every card field, the psychological profile with sliders,
// the lorebook and the inner-thoughts option. A new character is imported as a V3 card;
// an existing one is changed with characters.update (fields the form does not show are kept).

import type { Character, CharacterPatch, Profile } from 'confidant';
import type { App } from './app.js';
import { download, field, h, replace } from './dom.js';

type LoreEntry = Record<string, unknown> & { keys?: string[]; content?: string; enabled?: boolean; constant?: boolean };
type Book = Record<string, unknown> & { entries?: LoreEntry[] };

const TEXT_FIELDS: [key: string, label: string, rows: number, hint?: string][] = [
  ['description', 'Description', 5, 'Who they are: looks, history, situation. {{char}} and {{user}} are replaced by the names.'],
  ['personality', 'Personality', 2, 'A few words or a sentence.'],
  ['scenario', 'Scenario', 3, 'Where and when the conversation starts.'],
  ['first_mes', 'First message', 4, 'The greeting that opens every new chat.'],
  ['mes_example', 'Example dialogue', 4, 'Lines starting with <START>, then {{user}}: and {{char}}: turns.'],
  ['system_prompt', 'System prompt', 2, 'Replaces the default instructions when set.'],
  ['post_history_instructions', 'Instructions after the chat history', 2],
  ['creator_notes', 'Creator notes', 2, 'For people reading the card; not shown to the model.'],
];

const TRAITS: [key: keyof Profile, label: string, low: string, high: string, min: number, max: number][] = [
  ['openness', 'Openness', 'conventional', 'curious', 0, 100],
  ['conscientiousness', 'Conscientiousness', 'spontaneous', 'organised', 0, 100],
  ['extraversion', 'Extraversion', 'reserved', 'outgoing', 0, 100],
  ['agreeableness', 'Agreeableness', 'blunt', 'warm', 0, 100],
  ['neuroticism', 'Neuroticism', 'calm', 'anxious', 0, 100],
  ['mood', 'Mood', 'gloomy', 'cheerful', -100, 100],
  ['formality', 'Formality', 'casual', 'formal', 0, 100],
  ['verbosity', 'Verbosity', 'terse', 'talkative', 0, 100],
  ['honesty', 'Honesty', 'lies, boasts', 'honest, modest', 0, 100],
  ['empathy', 'Empathy', 'oblivious', 'empathetic', 0, 100],
  ['self_esteem', 'Self-esteem', 'self-doubting', 'confident', 0, 100],
  ['impulsivity', 'Impulsivity', 'deliberate', 'impulsive', 0, 100],
  ['trust', 'Trust', 'suspicious', 'trusting', 0, 100],
  ['assertiveness', 'Assertiveness', 'yielding', 'forceful', 0, 100],
  ['optimism', 'Optimism', 'pessimist', 'optimist', 0, 100],
  ['expressiveness', 'Expressiveness', 'hides feelings', 'shows feelings', 0, 100],
  ['patience', 'Patience', 'impatient', 'patient', 0, 100],
  ['ambition', 'Ambition', 'content', 'driven', 0, 100],
  ['spirituality', 'Spirituality', 'sceptical', 'devout', 0, 100],
  ['principles', 'Principles', 'anything goes', 'principled', 0, 100],
  ['energy', 'Energy', 'tired', 'energetic', 0, 100],
  ['closeness', 'Closeness to you', 'stranger', 'attached', 0, 100],
];

const list = (text: string) => text.split(',').map((s) => s.trim()).filter(Boolean);

export function showEditor(app: App, view: HTMLElement, id: string | null, menu: HTMLElement): void {
  replace(view, h('header', { class: 'view-head' }, menu, h('h1', {}, id ? 'Edit character' : 'New character')), h('p', { class: 'muted' }, 'Loading…'));
  const load = id ? app.engine.characters.get(id) : Promise.resolve(null);
  load.then(
    (character) => render(app, view, character, menu),
    (e) => app.toast(app.describe(e), 'error'),
  );
}

function render(app: App, view: HTMLElement, character: Character | null, menu: HTMLElement): void {
  const c = (character ?? {}) as Record<string, unknown>;
  const text = (key: string) => (typeof c[key] === 'string' ? (c[key] as string) : '');

  const name = h('input', { type: 'text', required: true, value: text('name'), autocomplete: 'off' });
  const nickname = h('input', { type: 'text', value: text('nickname'), autocomplete: 'off' });
  const areas = new Map(TEXT_FIELDS.map(([key, , rows]) => [key, h('textarea', { rows, value: text(key) })]));
  const tags = h('input', { type: 'text', value: Array.isArray(c.tags) ? (c.tags as string[]).join(', ') : '' });
  const creator = h('input', { type: 'text', value: text('creator') });
  const version = h('input', { type: 'text', value: text('character_version') });

  // Alternate greetings: one textarea each.
  const greetingList = h('ol', { class: 'greetings' });
  const addGreeting = (value = '') => {
    const area = h('textarea', { rows: 3, value, 'aria-label': 'Alternate greeting' });
    const li = h('li', {}, area, h('button', { type: 'button', class: 'link danger', onclick: () => li.remove() }, 'Remove'));
    greetingList.append(li);
    return area;
  };
  for (const g of (c.alternate_greetings as string[] | undefined) ?? []) addGreeting(g);

  // Profile.
  const profile = (character?.profile ?? {}) as Profile;
  const sliders = TRAITS.map(([key, label, low, high, min, max]) => {
    const value = typeof profile[key] === 'number' ? (profile[key] as number) : (min + max) / 2;
    const input = h('input', { type: 'range', min, max, step: 1, value: String(value), 'data-trait': key, id: `trait-${key}` });
    const output = h('output', { for: input.id });
    // The value rides above the thumb, so −100..100 (mood) reads as plainly as 0..100.
    const track = h('div', { class: 'track' }, input, output);
    const place = () => {
      const n = Number(input.value);
      output.textContent = min < 0 && n > 0 ? `+${n}` : String(n);
      track.style.setProperty('--at', String((n - min) / (max - min)));
    };
    input.addEventListener('input', place);
    place();
    return { key, input, el: h('div', { class: 'slider' }, h('label', { for: input.id }, label), h('span', { class: 'scale' }, low), track, h('span', { class: 'scale' }, high)) };
  });
  const select = (options: string[], value: unknown, label: string) =>
    h('select', { 'aria-label': label }, h('option', { value: '' }, '(not set)'), options.map((o) => h('option', { value: o, selected: o === value }, o)));
  const attachment = select(['secure', 'anxious', 'avoidant', 'fearful'], profile.attachment, 'Attachment');
  const humor = select(['serious', 'dry', 'playful', 'sarcastic', 'dark', 'gentle'], profile.humor, 'Humour');
  const values = h('input', { type: 'text', value: (profile.values ?? []).join(', ') });
  const quirks = h('input', { type: 'text', value: (profile.quirks ?? []).join(', ') });

  // Lorebook.
  const book: Book = (c.character_book as Book | undefined) ?? {};
  const loreList = h('ol', { class: 'lore' });
  const loreRows: { entry: LoreEntry; keys: HTMLInputElement; content: HTMLTextAreaElement; enabled: HTMLInputElement; constant: HTMLInputElement; li: HTMLElement }[] = [];
  const addLore = (entry: LoreEntry = { enabled: true }) => {
    const keys = h('input', { type: 'text', value: (entry.keys ?? []).join(', '), placeholder: 'storm, pier' });
    const content = h('textarea', { rows: 3, value: entry.content ?? '' });
    const enabled = h('input', { type: 'checkbox', checked: entry.enabled !== false });
    const constant = h('input', { type: 'checkbox', checked: entry.constant === true });
    const row = { entry, keys, content, enabled, constant, li: h('li', {}) };
    replace(
      row.li,
      field('Keywords (comma separated)', keys),
      field('Text added to the prompt when a keyword appears', content),
      h('div', { class: 'row' }, h('label', {}, enabled, ' Enabled'), h('label', {}, constant, ' Always included'), h('button', { type: 'button', class: 'link danger', onclick: () => { row.li.remove(); loreRows.splice(loreRows.indexOf(row), 1); } }, 'Remove entry')),
    );
    loreRows.push(row);
    loreList.append(row.li);
    return keys;
  };
  for (const entry of book.entries ?? []) addLore(entry);

  const thoughts = h('input', { type: 'checkbox', checked: character?.innerThoughts?.enabled === true });
  const stripThoughts = h('input', { type: 'checkbox', checked: character?.innerThoughts?.strip_from_history !== false });

  const status = h('p', { class: 'form-status', role: 'status' });
  const save = h('button', { type: 'submit', class: 'primary' }, character ? 'Save changes' : 'Create character');

  const collect = () => {
    const fields: Record<string, unknown> = { name: name.value.trim(), nickname: nickname.value.trim(), tags: list(tags.value), creator: creator.value, character_version: version.value };
    for (const [key, area] of areas) fields[key] = area.value;
    fields.alternate_greetings = [...greetingList.querySelectorAll('textarea')].map((t) => t.value).filter((t) => t.trim());
    const nextProfile: Profile = { ...profile };
    for (const s of sliders) nextProfile[s.key] = Number(s.input.value);
    nextProfile.attachment = (attachment.value || undefined) as Profile['attachment'];
    nextProfile.humor = humor.value || undefined;
    nextProfile.values = list(values.value);
    nextProfile.quirks = list(quirks.value);
    for (const key of Object.keys(nextProfile)) if (nextProfile[key] === undefined) delete nextProfile[key];
    const entries = loreRows.map((r, i) => ({ insertion_order: i + 1, ...r.entry, keys: list(r.keys.value), content: r.content.value, enabled: r.enabled.checked, constant: r.constant.checked }));
    const nextBook = entries.length || book.entries ? { ...book, entries } : undefined;
    return { fields, profile: nextProfile, book: nextBook, innerThoughts: { enabled: thoughts.checked, strip_from_history: stripThoughts.checked } };
  };

  const form = h(
    'form',
    { class: 'editor', novalidate: true },
    h(
      'fieldset',
      {},
      h('legend', {}, 'Card'),
      field('Name', name),
      field('Nickname', nickname, 'Used in place of the name in the text when set.'),
      TEXT_FIELDS.map(([key, label, , hint]) => field(label, areas.get(key)!, hint)),
      h('div', { class: 'field' }, h('span', { class: 'label' }, 'Alternate greetings'), greetingList, h('button', { type: 'button', onclick: () => addGreeting().focus() }, 'Add a greeting')),
      field('Tags', tags, 'Comma separated.'),
      h('div', { class: 'row' }, field('Creator', creator), field('Version', version)),
    ),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Psychological profile'),
      h('p', { class: 'muted small' }, 'Turned into a few plain sentences in the prompt; values near the middle add nothing.'),
      sliders.map((s) => s.el),
      h('div', { class: 'row' }, field('Attachment', attachment), field('Humour', humor)),
      field('Values', values, 'What they care about most, comma separated.'),
      field('Quirks', quirks, 'Speech habits or catchphrases, comma separated.'),
    ),
    h('fieldset', {}, h('legend', {}, 'Lorebook'), h('p', { class: 'muted small' }, 'Facts about their world, added to the prompt only when a keyword comes up.'), loreList, h('button', { type: 'button', onclick: () => addLore().focus() }, 'Add an entry')),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Inner thoughts'),
      h('label', { class: 'check' }, thoughts, ' Show what they think: replies are written as [thought] (action) speech'),
      h('label', { class: 'check' }, stripThoughts, ' Leave old thoughts out of what the model reads later'),
    ),
    h('div', { class: 'row sticky-actions' }, save, h('button', { type: 'button', onclick: () => (character ? void app.openCharacter(character.id) : app.showGallery()) }, 'Cancel'), status),
  );

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const { fields, profile: p, book: b, innerThoughts } = collect();
    if (!fields.name) {
      status.textContent = 'A character needs a name.';
      name.focus();
      return;
    }
    save.disabled = true;
    try {
      let saved: Character;
      if (character) {
        const patch: CharacterPatch = { ...fields, profile: p, innerThoughts } as CharacterPatch;
        if (b) (patch as Record<string, unknown>).character_book = b;
        saved = await app.engine.characters.update(character.id, patch);
      } else {
        const data: Record<string, unknown> = { ...fields, group_only_greetings: [], extensions: { confidant: { profile: p, inner_thoughts: innerThoughts } } };
        if (b) data.character_book = b;
        saved = await app.engine.characters.import({ spec: 'chara_card_v3', spec_version: '3.0', data });
      }
      await app.refreshCharacters();
      app.toast(`Saved ${saved.name}.`);
      await app.openCharacter(saved.id);
    } catch (err) {
      status.textContent = app.describe(err);
      save.disabled = false;
    }
  });

  const extra = character
    ? h(
        'section',
        { class: 'danger-zone', 'aria-label': 'Card file and removal' },
        h('button', { type: 'button', onclick: async () => download(await app.engine.characters.export(character.id, { format: 'png', spec: 'v3' }), `${character.name}.png`) }, 'Export card (PNG)'),
        h('button', { type: 'button', onclick: async () => download(await app.engine.characters.export(character.id, { format: 'json', spec: 'v3' }), `${character.name}.json`) }, 'Export card (JSON)'),
        h(
          'button',
          {
            type: 'button',
            class: 'danger',
            onclick: async () => {
              if (!confirm(`Delete ${character.name}, every chat with them and everything they remember?`)) return;
              await app.engine.characters.remove(character.id);
              await app.refreshCharacters();
              app.showGallery();
            },
          },
          'Delete character',
        ),
      )
    : null;

  replace(view, h('header', { class: 'view-head' }, menu, h('h1', {}, character ? `Edit ${character.name}` : 'New character')), form, extra);
  name.focus();
}
