// Settings: the model (model-picker.ts), how replies are sampled, the person's name, the theme, storage, and
// export / import / wipe of everything.

import type { App } from './app.js';
import { download, field, h, openDialog, replace } from './dom.js';
import { bytes, plural } from './format.js';
import { applyTheme, defaultSampling, type Sampling } from './settings.js';
import { modelSection as buildModelSection } from './model-picker.js';

const SAMPLING: [key: keyof Sampling, label: string, min: number, max: number, step: number, hint: string][] = [
  ['temperature', 'Temperature', 0, 2, 0.05, '0 always picks the likeliest word; higher is more varied.'],
  ['top_p', 'Top-p', 0.05, 1, 0.05, 'Sample from the smallest set of words covering this probability.'],
  ['top_k', 'Top-k', 0, 200, 1, 'Sample from this many likeliest words (0: all).'],
  ['min_p', 'Min-p', 0, 1, 0.01, 'Drop words less likely than this fraction of the likeliest.'],
  ['repeat_penalty', 'Repeat penalty', 1, 2, 0.01, '1 is off; higher discourages repeating recent words.'],
  ['presence_penalty', 'Presence penalty', -2, 2, 0.05, '0 is off; higher discourages any word already used recently.'],
  ['frequency_penalty', 'Frequency penalty', -2, 2, 0.05, '0 is off; higher discourages words the more often they were used recently.'],
  ['dry_multiplier', 'Anti-echo (DRY) strength', 0, 3, 0.05, '0 is off; stops the character copying its greeting or earlier replies. 0.8 is usual.'],
  ['dry_base', 'Anti-echo growth', 1, 4, 0.05, 'How fast the penalty grows with each copied word.'],
  ['dry_allowed_length', 'Anti-echo free length (tokens)', 1, 20, 1, 'Repeats this short are not penalised.'],
  ['max_tokens', 'Longest reply (tokens)', 1, 1024, 1, 'Replies stop here at the latest.'],
];

export function openSettingsPanel(app: App): void {
  const s = app.settings;
  const { section: modelSection, unsubscribe } = buildModelSection(app);

  // Where the model runs.
  const backendChoice = (value: string, label: string) =>
    h('label', { class: 'check' }, h('input', { type: 'radio', name: 'backend', value, checked: s.backend === value }), ` ${label}`);
  const applyBackend = h('button', { type: 'button' }, 'Use this (reloads)');
  const backendSection = h(
    'fieldset',
    {},
    h('legend', {}, 'Where the model runs'),
    backendChoice('auto', 'Automatic: the graphics card when it is a real one, else the processor'),
    backendChoice('webgpu', 'The graphics card, through WebGPU'),
    backendChoice('cpu', 'The processor'),
    applyBackend,
  );
  applyBackend.addEventListener('click', () => {
    const value = (backendSection.querySelector('input[name=backend]:checked') as HTMLInputElement | null)?.value;
    s.backend = value === 'webgpu' || value === 'cpu' ? value : 'auto';
    app.saveSettings();
    location.reload();
  });

  // Replies.
  const inputs = SAMPLING.map(([key, label, min, max, step, hint]) => {
    const input = h('input', { type: 'number', min, max, step, value: String(s.sampling[key]), 'data-setting': key });
    input.addEventListener('change', () => {
      const value = Number(input.value);
      if (input.value === '' || !Number.isFinite(value) || value < min || value > max) {
        input.setCustomValidity(`Between ${min} and ${max}.`);
        input.reportValidity();
        return;
      }
      input.setCustomValidity('');
      s.sampling[key] = key === 'max_tokens' || key === 'top_k' || key === 'dry_allowed_length' ? Math.round(value) : value;
      app.saveSettings();
    });
    return field(label, input, hint);
  });
  const resetSampling = h('button', { type: 'button', class: 'link' }, 'Back to the defaults');
  resetSampling.addEventListener('click', () => {
    s.sampling = { ...defaultSampling };
    app.saveSettings();
    dialog.close();
    openSettingsPanel(app);
  });

  // You and the look.
  const userName = h('input', { type: 'text', value: s.userName, autocomplete: 'nickname' });
  userName.addEventListener('change', () => {
    if (userName.value.trim()) {
      s.userName = userName.value.trim();
      app.saveSettings();
    }
  });
  const theme = h('select', {}, ['system', 'light', 'dark'].map((t) => h('option', { value: t, selected: s.theme === t }, { system: 'As the system', light: 'Light', dark: 'Dark' }[t]!)));
  theme.addEventListener('change', () => {
    s.theme = theme.value as typeof s.theme;
    applyTheme(s.theme);
    app.saveSettings();
  });

  // Storage and data.
  const storage = h('p', { class: 'storage', role: 'status' }, 'Measuring…');
  const persist = h('button', { type: 'button' }, 'Ask the browser to keep this data');
  const showStorage = async () => {
    const stats = await app.engine.memory.stats({});
    const { usage, quota, persisted } = stats.storage;
    const unreadable = await app.engine.unreadableRecords();
    storage.textContent = [
      usage !== null ? `Using ${bytes(usage)}${quota ? ` of ${bytes(quota)} available` : ''} (models included).` : 'The browser does not say how much storage is used.',
      `${stats.records} memories.`,
      persisted === true ? 'Storage is persistent: the browser will not clear it to free space.' : persisted === false ? 'Storage is not persistent: the browser may clear it when space runs low.' : 'The browser does not say whether storage is persistent.',
      unreadable.length > 0 ? `${plural(unreadable.length, 'record', 'records')} could not be read: set aside, kept in exports, removed by Delete everything.` : '',
    ]
      .filter(Boolean)
      .join(' ');
    persist.hidden = persisted === true;
  };
  persist.addEventListener('click', async () => {
    const granted = await navigator.storage?.persist?.().catch(() => false);
    app.toast(granted ? 'Storage is now persistent.' : 'The browser declined (it often grants this to sites you use often or install).');
    void showStorage();
  });
  const importInput = h('input', { type: 'file', accept: '.json,application/json', class: 'visually-hidden', id: 'backup-file' });
  importInput.addEventListener('change', async () => {
    const file = importInput.files?.[0];
    importInput.value = '';
    if (!file) return;
    try {
      let counts;
      try {
        counts = await app.engine.importAll(file);
      } catch (e) {
        // Chats changed here since the backup was made: replaced only if the person says so.
        if ((e as { code?: string }).code !== 'newer_data' || !confirm(`${app.describe(e)}\n\nReplace them with the backup's older copies?`)) throw e;
        counts = await app.engine.importAll(file, { replaceNewer: true });
      }
      app.toast(`Imported ${plural(counts.characters, 'character', 'characters')}, ${plural(counts.sessions, 'chat', 'chats')} and ${plural(counts.memories, 'memory', 'memories')}.`);
      await app.refreshCharacters();
      void showStorage();
    } catch (e) {
      app.toast(`${file.name}: ${app.describe(e)}`, 'error');
    }
  });
  const importLabel = h('label', { for: 'backup-file', class: 'button', tabindex: 0 }, 'Import a backup');
  importLabel.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      importInput.click();
    }
  });

  const dialog = openDialog('Settings', [
    modelSection,
    backendSection,
    h('fieldset', {}, h('legend', {}, 'Replies'), h('div', { class: 'grid2' }, inputs), resetSampling),
    h('fieldset', {}, h('legend', {}, 'You'), field('Your name in new chats', userName), field('Theme', theme)),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Your data'),
      storage,
      persist,
      h('p', { class: 'muted small' }, 'Characters, chats and memories stay in this browser. A backup file holds all of them.'),
      h(
        'div',
        { class: 'row' },
        h(
          'button',
          {
            type: 'button',
            onclick: async () => {
              try {
                download(await app.engine.exportAll(), `confidant-backup-${new Date().toISOString().slice(0, 10)}.json`);
              } catch (e) {
                app.toast(app.describe(e), 'error');
              }
            },
          },
          'Export everything',
        ),
        importLabel,
        importInput,
        h(
          'button',
          {
            type: 'button',
            class: 'danger',
            onclick: async () => {
              if (!confirm('Delete every character, chat and memory in this browser? Export a backup first if you may want them back.')) return;
              try {
                await app.engine.wipe();
                app.settings.characterId = null;
                app.settings.sessionId = null;
                app.saveSettings();
                dialog.close();
                await app.refreshCharacters();
                app.showGallery();
                app.toast('Everything was deleted.');
              } catch (e) {
                app.toast(app.describe(e), 'error');
              }
            },
          },
          'Delete everything',
        ),
      ),
    ),
  ], { wide: true, onClose: unsubscribe });
  void showStorage().catch(() => (storage.textContent = 'Storage use is unavailable.'));
}
