// The person's profile, shared by the characters that opt in: the facts they know about you
// (taken from what you tell them, or added here), edited and deleted; older facts a newer one
// replaced are kept as history below. Opened from a character's memory panel, which also turns
// sharing on or off for that character.

import type { Character, UserFact } from 'confidant';
import type { App } from './app.js';
import { h, openDialog, replace } from './dom.js';
import { when } from './format.js';

export function openProfileView(app: App, character: Character | null): void {
  const current = h('ul', { class: 'memories profile-facts', 'aria-label': 'What they know about you' });
  const history = h('ul', { class: 'memories compact profile-history', 'aria-label': 'Replaced facts' });
  const status = h('p', { class: 'muted small', role: 'status' });
  const subject = h('input', { type: 'text', placeholder: 'diet, home city, job…', 'aria-label': 'Subject', maxlength: 60, required: true });
  const value = h('input', { type: 'text', placeholder: 'vegetarian', 'aria-label': 'Fact', maxlength: 300, required: true });

  // Adding or changing a fact embeds it (to spot the same fact said twice): that needs the
  // memory model, which loads with the language model.
  const ready = async () => app.model.ensure();

  const source = (fact: UserFact): string => {
    const from = fact.characterId ? app.characters.find((c) => c.id === fact.characterId)?.name : null;
    return fact.statement ? `You said${from ? ` to ${from}` : ''}: “${fact.statement}”` : 'Added by you';
  };

  const item = (fact: UserFact): HTMLLIElement => {
    const li = h('li', { class: 'memory user-fact', 'data-id': fact.id });
    const show = () =>
      replace(
        li,
        h('div', { class: 'meta' }, h('span', { class: 'tag' }, fact.subject), h('time', {}, when(fact.createdAt)), h('span', {}, source(fact))),
        h('p', {}, fact.value),
        h(
          'div',
          { class: 'tools' },
          h('button', { type: 'button', class: 'link', onclick: () => edit() }, 'Edit'),
          h('button', { type: 'button', class: 'link danger', onclick: () => void remove(fact) }, 'Delete'),
        ),
      );
    const edit = () => {
      const subjectInput = h('input', { type: 'text', value: fact.subject, 'aria-label': 'Subject', maxlength: 60 });
      const valueInput = h('input', { type: 'text', value: fact.value, 'aria-label': 'Fact', maxlength: 300 });
      const form = h('form', { class: 'edit-form' }, subjectInput, valueInput, h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Save'), h('button', { type: 'button', onclick: show }, 'Cancel')));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        if (!subjectInput.value.trim() || !valueInput.value.trim() || !(await ready())) return;
        try {
          await app.engine.userProfile.update(fact.id, { subject: subjectInput.value, value: valueInput.value });
          status.textContent = 'Saved.';
          await refresh();
        } catch (err) {
          app.toast(app.describe(err), 'error');
        }
      });
      replace(li, form);
      valueInput.focus();
    };
    show();
    return li;
  };

  const past = (fact: UserFact): HTMLLIElement =>
    h(
      'li',
      { class: 'memory user-fact replaced', 'data-id': fact.id },
      h('span', { class: 'tag' }, fact.subject),
      ' ',
      h('del', {}, fact.value),
      ' ',
      h('span', { class: 'muted small' }, `until ${when(fact.supersededAt ?? fact.updatedAt)}`),
      ' ',
      h('button', { type: 'button', class: 'link danger', onclick: () => void remove(fact) }, 'Delete'),
    );

  const remove = async (fact: UserFact) => {
    try {
      await app.engine.userProfile.remove(fact.id);
      status.textContent = 'Deleted.';
      await refresh();
    } catch (err) {
      app.toast(app.describe(err), 'error');
    }
  };

  const refresh = async () => {
    try {
      const facts = await app.engine.userProfile.list();
      const now = facts.filter((f) => !f.supersededBy);
      const before = facts.filter((f) => f.supersededBy);
      replace(current, now.length ? now.map(item) : h('li', { class: 'muted' }, 'Nothing yet. Facts you state about yourself (“I’m vegetarian”, “I moved to Rome”) in chats with characters that share your profile appear here.'));
      replace(history, before.length ? before.map(past) : h('li', { class: 'muted' }, 'Nothing replaced yet.'));
    } catch (err) {
      app.toast(app.describe(err), 'error');
    }
  };

  const addForm = h('form', { class: 'note-form profile-add' }, subject, value, h('button', { type: 'submit' }, 'Add fact'));
  addForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!subject.value.trim() || !value.value.trim() || !(await ready())) return;
    try {
      await app.engine.userProfile.add({ subject: subject.value, value: value.value });
      subject.value = '';
      value.value = '';
      status.textContent = 'Added.';
      await refresh();
    } catch (err) {
      app.toast(app.describe(err), 'error');
    }
  });

  let sharing: HTMLElement | null = null;
  if (character) {
    const box = h('input', { type: 'checkbox', checked: character.userProfile === true });
    box.addEventListener('change', async () => {
      try {
        const updated = await app.engine.characters.update(character.id, { userProfile: box.checked });
        character.userProfile = updated.userProfile;
        status.textContent = updated.userProfile ? `${character.name} now knows your profile.` : `${character.name} no longer sees your profile.`;
        await app.refreshCharacters();
      } catch (err) {
        box.checked = !box.checked;
        app.toast(app.describe(err), 'error');
      }
    });
    sharing = h(
      'label',
      { class: 'check' },
      box,
      ` ${character.name} knows your profile`,
      h('small', { class: 'hint' }, ' (what you tell them adds to it, and they keep it in mind)'),
    );
  }

  openDialog('Your profile', [
    h('p', { class: 'muted small' }, 'One profile of you, shared by the characters you choose. Each fact is dated; a newer one replaces the old, which stays below.'),
    sharing,
    status,
    current,
    h('h3', {}, 'Add a fact'),
    addForm,
    h('h3', {}, 'Replaced'),
    history,
  ], { wide: true });
  void refresh();
}
