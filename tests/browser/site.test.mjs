// The demo site (web/dist) as a person uses it, in headless Chromium, served as `make demo`
// serves it (cross-origin isolated). The only WebGPU adapter here is SwiftShader, a software
// renderer, so the site runs on the CPU (threads): first visit with progress, a demo character,
// three short turns (one stopped), regenerate, forgetting a memory, reload, export → wipe →
// import; every network request recorded (none after the assets, none to another origin);
// offline start through the service worker; a card made of HTML and script tags shown as text;
// a browser without WebGPU. Screenshots of the main screens go to tests/out/site/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isolation, launch, root } from './harness.mjs';
import { siteRoots } from '../../web/serve.mjs';

const shots = join(root, 'tests/out/site');
mkdirSync(shots, { recursive: true });

let h;
/** Every request the server saw: [time, path]. */
const served = [];
/** Every request the browser made, from pages, workers and the service worker. */
const requested = [];

before(async () => {
  h = await launch({
    needs: ['web/dist/index.html', 'web/dist/sw.js'],
    serverOptions: { roots: siteRoots, headers: isolation, onRequest: (req) => served.push([Date.now(), new URL(req.url, 'http://x').pathname]) },
  });
  h.page.context().on('request', (r) => requested.push(r.url()));
  h.page.setDefaultTimeout(120_000);
});

after(async () => {
  if (process.env.SITE_LOG) console.log(h?.console.join('\n'));
  await h?.close();
});

const shot = (name) => h.page.screenshot({ path: join(shots, `${name}.png`) });

async function waitReady() {
  await h.page.waitForFunction(() => window.confidantDemo?.ready === true, null, { timeout: 600_000 });
}

/** Open the site and load the model unless an earlier test did (so a test can run alone). */
async function ensureApp() {
  if (await h.page.evaluate(() => window.confidantDemo?.ready === true).catch(() => false)) return;
  await h.page.goto(`${h.base}/`);
  await h.page.waitForFunction(() => window.confidantDemo?.ready || [...document.querySelectorAll('button')].some((b) => /start/i.test(b.textContent)));
  if (!(await h.page.evaluate(() => window.confidantDemo?.ready === true))) await h.page.getByRole('button', { name: /start/i }).click();
  await waitReady();
}

/** Wait until no reply is streaming (the send button says Send again). */
async function waitIdle() {
  await h.page.waitForFunction(() => {
    const b = document.querySelector('.composer .send');
    return b && b.textContent === 'Send' && !document.querySelector('.message.streaming, .message.typing');
  }, null, { timeout: 300_000 });
}

async function send(text) {
  await h.page.fill('.composer textarea', text);
  await h.page.press('.composer textarea', 'Enter');
  await h.page.waitForSelector('.composer .send.stop');
  await waitIdle();
}

const history = () => h.page.$$eval('.messages .message', (els) => els.map((e) => ({ id: e.dataset.id, role: e.classList.contains('user') ? 'user' : 'assistant', text: e.querySelector('.body').textContent })));

async function openSettings() {
  await h.page.click('.sidebar-foot button');
  await h.page.waitForSelector('dialog[open] .storage');
}
const closeDialog = () => h.page.click('dialog[open] .panel-head button');

/** Replies of at most `n` tokens keep the tests quick. */
async function setMaxTokens(n, screenshot) {
  await openSettings();
  await h.page.fill('[data-setting="max_tokens"]', String(n));
  await h.page.press('[data-setting="max_tokens"]', 'Tab');
  if (screenshot) await shot(screenshot);
  await closeDialog();
}

/** Import a card (an object) through the gallery and wait for its chat. */
async function importCard(card, file) {
  await h.page.click('.sidebar .nav-button');
  await h.page.setInputFiles('#card-file', { name: file, mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(card)) });
  await h.page.waitForSelector(`.chat-head h1:has-text("${card.data.name}")`);
}

test('journey: first visit, demo character, three turns, stop, regenerate, forget, reload, export → wipe → import', async () => {
  const { page, base } = h;
  await page.goto(`${base}/`);
  await page.getByRole('button', { name: 'Download and start' }).click();
  await waitReady();
  const stages = await page.evaluate(() => window.confidantDemo.stages);
  for (const s of ['model:download', 'model:cache', 'model:compile', 'embedder:download']) assert.ok(stages.includes(s), `stage ${s} reported: ${stages}`);
  await page.waitForSelector('[data-demo="wren"]');
  await page.evaluate(() => navigator.serviceWorker.ready);
  await shot('gallery');

  // Short replies keep the test quick (12 tokens: SmolLM2 often spends the first few on writing
  // "Wren Okafor:", which the engine drops).
  await setMaxTokens(12, 'settings');
  // The settings say plainly which backend runs the model, why, and how fast it measured.
  await openSettings();
  const about = await page.textContent('dialog[open] fieldset');
  assert.match(about, /SmolLM2 135M Instruct runs on the processor \(\d+ threads?\): the only WebGPU adapter, SwiftShader, is a software renderer, slower than the CPU/);
  assert.match(about, /Measured when it loaded: it writes about [\d.]+ tokens a second \(a reply of 100 tokens, some 75 words, in about \d+/);
  assert.doesNotMatch(about, /Smollm2 135M 8k/, 'not the raw name from the file');
  await closeDialog();

  const quietFrom = Date.now();
  await page.click('[data-demo="wren"] button');
  await page.waitForSelector('.message.assistant .text');
  assert.match(await page.textContent('.stats'), /^SmolLM2 135M Instruct on the processor \(\d+ threads?\) · about [\d.]+ tok\/s$/);
  const greeting = await history();
  assert.equal(greeting.length, 1);
  assert.match(greeting[0].text, /Rain drums on the glass roof/);
  // Alternate greetings: next, and back.
  await page.getByRole('button', { name: 'Next greeting' }).click();
  await page.waitForFunction(() => document.querySelector('.counter')?.textContent === '2 / 3');
  assert.match((await history())[0].text, /ladder/);
  await page.getByRole('button', { name: 'Previous greeting' }).click();
  await page.waitForFunction(() => document.querySelector('.counter')?.textContent === '1 / 3');

  await send('My name is Sam and I have a dog called Biscuit.');
  await send('Tell me about the Glasshouse.');
  let messages = await history();
  assert.equal(messages.length, 5);
  assert.deepEqual(messages.map((m) => m.role), ['assistant', 'user', 'assistant', 'user', 'assistant']);
  assert.match(await page.textContent('.stats'), /tok\/s · context \d+ \/ 4096/);

  // Third message, stopped as soon as the reply starts: allowed to run long, so it is still
  // streaming when the click lands (the CPU path writes tens of tokens a second).
  await setMaxTokens(400);
  await page.fill('.composer textarea', 'What is your favourite plant? Tell me everything about it.');
  await page.press('.composer textarea', 'Enter');
  await page.waitForSelector('.message.streaming .body p');
  await page.click('.composer .send.stop');
  await waitIdle();
  await setMaxTokens(12);
  assert.match(await page.textContent('.stats'), /stopped/);
  messages = await history();
  assert.equal(messages.length, 7);
  await shot('chat');

  // Regenerate the last reply: a new message in its place.
  const lastId = messages[6].id;
  await page.getByRole('button', { name: 'Regenerate' }).click();
  await page.waitForSelector('.composer .send.stop');
  await waitIdle();
  messages = await history();
  assert.equal(messages.length, 7);
  assert.notEqual(messages[6].id, lastId);

  // Memory: the fact from the first message is there; forget it.
  await page.getByRole('button', { name: 'Memory' }).click();
  await page.waitForSelector('dialog[open] .memories .memory');
  const memories = await page.$$eval('dialog[open] .memories .memory p', (ps) => ps.map((p) => p.textContent));
  const fact = memories.find((t) => /Biscuit/.test(t));
  assert.ok(fact, `a memory about Biscuit: ${JSON.stringify(memories)}`);
  assert.ok(await page.$('dialog[open] .used'));
  await shot('memory');
  await page.locator('dialog[open] .memories .memory', { hasText: 'Biscuit' }).first().getByRole('button', { name: 'Forget' }).click();
  await page.waitForFunction((t) => ![...document.querySelectorAll('dialog[open] .memories .memory p')].some((p) => p.textContent === t), fact);
  await closeDialog();

  // Nothing went to the network while chatting.
  const during = served.filter(([t]) => t >= quietFrom);
  assert.deepEqual(during, [], 'no requests while choosing a character, chatting and using memory');

  // Reload: the same chat comes back, the forgotten memory stays forgotten, no model download.
  const reloadFrom = Date.now();
  await page.reload();
  await waitReady();
  await page.waitForSelector('.message.user');
  assert.deepEqual(await history(), messages);
  const afterReload = served.filter(([t]) => t >= reloadFrom).map(([, p]) => p);
  assert.ok(!afterReload.some((p) => p.startsWith('/models/')), `models came from the browser's cache: ${afterReload}`);
  await page.getByRole('button', { name: 'Memory' }).click();
  await page.waitForSelector('dialog[open] .memories li');
  assert.ok(!(await page.$$eval('dialog[open] .memories .memory p', (ps) => ps.some((p) => /Biscuit/.test(p.textContent)))));
  await closeDialog();

  // Export everything, wipe, import: the same chat again.
  await openSettings();
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export everything' }).click()]);
  const backupPath = join(shots, 'backup.json');
  await download.saveAs(backupPath);
  const backup = JSON.parse(readFileSync(backupPath, 'utf8'));
  assert.equal(backup.format, 'confidant-backup');
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Delete everything' }).click();
  await page.waitForSelector('[data-demo="wren"]');
  assert.match(await page.textContent('.character-list'), /No characters yet/);
  await openSettings();
  await page.setInputFiles('#backup-file', backupPath);
  await page.waitForSelector('.toast:has-text("Imported 1 character,")');
  await closeDialog();
  await page.click('.character-list button');
  await page.waitForSelector('.message.user');
  assert.deepEqual(await history(), messages);

  // Privacy: no request ever left this origin.
  const foreign = requested.filter((u) => !u.startsWith(`${base}/`) && !u.startsWith('blob:') && !u.startsWith('data:'));
  assert.deepEqual(foreign, []);
});

test('mobile width and dark theme screenshots; a character with inner thoughts', async () => {
  const { page } = h;
  await page.emulateMedia({ colorScheme: 'dark', reducedMotion: 'reduce' });
  await page.setViewportSize({ width: 390, height: 844 });
  await shot('mobile-chat');
  await page.click('.menu-button');
  await shot('mobile-menu');
  await page.keyboard.press('Escape');
  await page.getByRole('button', { name: 'Memory' }).click();
  await page.waitForSelector('dialog[open] .memories li');
  await shot('mobile-memory');
  await closeDialog();
  await page.setViewportSize({ width: 1280, height: 800 });
  await shot('chat-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  // Juno's greeting has a thought: shown in its own style, hidden by the toggle.
  await page.click('.sidebar .nav-button');
  await page.click('[data-demo="juno"] button');
  await page.waitForSelector('.message.assistant .thought');
  assert.match(await page.textContent('.message.assistant .thought'), /Be professional/);
  await shot('chat-thoughts');
  await page.getByRole('button', { name: 'Thoughts' }).click();
  assert.equal(await page.isVisible('.message.assistant .thought'), false);
  await page.getByRole('button', { name: 'Thoughts' }).click();
  assert.equal(await page.isVisible('.message.assistant .thought'), true);

  // The editor shows the card's profile and lorebook.
  await page.getByRole('button', { name: 'Edit', exact: true }).first().click();
  await page.waitForSelector('form.editor');
  assert.equal(await page.inputValue('#trait-neuroticism'), '78');
  assert.equal(await page.locator('.lore li').count(), 3);
  await shot('editor');
});

test('after Send: the message and a typing bubble at once, reading progress for a long prompt, the right count in the header', async () => {
  const { page } = h;
  await ensureApp();
  await setMaxTokens(8);
  // A long card: its first prompt takes many chunks of 64 tokens to read.
  const lore = Array.from({ length: 40 }, (_, i) => `In her ${i + 1}th year at the observatory {{char}} catalogued comet ${i + 1}, a faint smudge near the star Vega that returned every ${i + 3} winters.`).join(' ');
  const card = { spec: 'chara_card_v2', spec_version: '2.0', data: { name: 'Vesna Long', description: lore, personality: 'patient, precise', scenario: '', first_mes: 'The dome is open. Come and look.', mes_example: '', alternate_greetings: [] } };
  await importCard(card, 'vesna.json');
  const text = 'Which comet do you like best?';
  // Everything is measured in the page, from the click to the DOM change.
  const watched = page.evaluate(
    (text) =>
      new Promise((resolve) => {
        const list = document.querySelector('.messages');
        const log = { shownAt: null, storedAt: null, firstPieceAt: null, statuses: [], count: null, bubbles: null };
        let t0 = 0;
        const check = () => {
          const now = performance.now() - t0;
          const last = [...list.querySelectorAll('.message.user')].at(-1);
          const mine = last?.querySelector('.body').textContent === text;
          if (log.shownAt === null && mine && list.querySelector('.message.typing')) log.shownAt = now;
          if (log.storedAt === null && mine && last.dataset.id) log.storedAt = now;
          const status = list.querySelector('.message.typing .status')?.textContent;
          if (status && status !== log.statuses.at(-1)) log.statuses.push(status);
          if (log.firstPieceAt === null && list.querySelector('.message.streaming .body p')) {
            log.firstPieceAt = now;
            // While the reply streams: the header's count and the messages on screen.
            log.count = document.querySelector('.session-select').selectedOptions[0].textContent;
            log.bubbles = list.querySelectorAll('.message:not(.typing)').length;
          }
          const idle = document.querySelector('.composer .send').textContent === 'Send' && !list.querySelector('.message.typing, .message.streaming');
          if (idle && log.shownAt !== null) {
            observer.disconnect();
            resolve(log);
          }
        };
        const observer = new MutationObserver(check);
        observer.observe(document.querySelector('.chat-view'), { childList: true, subtree: true, characterData: true });
        document.querySelector('.composer textarea').value = text;
        t0 = performance.now();
        document.querySelector('.composer .send').click();
        check();
      }),
    text,
  );
  // A screenshot mid-way through the reading.
  await page.waitForFunction(() => {
    const status = document.querySelector('.message.typing .status');
    return !status || Number(/(\d+) %/.exec(status.textContent)?.[1]) >= 30;
  });
  await shot('chat-prefill');
  const log = await watched;
  console.log(`shown after ${log.shownAt.toFixed(0)} ms, stored after ${log.storedAt?.toFixed(0)} ms, first piece after ${log.firstPieceAt?.toFixed(0)} ms; ${log.statuses.length} reports: ${log.statuses.join(' | ')}`);
  assert.ok(log.shownAt < 1000, `the message and a typing bubble ${log.shownAt} ms after the click`);
  assert.ok(log.storedAt !== null && log.firstPieceAt !== null && log.storedAt < log.firstPieceAt, 'the message was stored before the reply began');
  const percents = log.statuses.map((s) => Number(/reading the conversation… (\d+) %/.exec(s)?.[1]));
  assert.ok(percents.length >= 3 && percents.every((p, i) => Number.isInteger(p) && (i === 0 || p > percents[i - 1])), `progress advances: ${log.statuses.join(' | ')}`);
  assert.ok(log.statuses.slice(1).some((s) => /about .+ left/.test(s)), 'with the time left');
  assert.match(log.count, new RegExp(` ${log.bubbles} messages$`), `the header counts what is on screen (${log.bubbles})`);
  assert.equal(log.bubbles, 3, 'greeting, message, reply');
  const stored = await history();
  assert.deepEqual(stored.map((m) => m.role), ['assistant', 'user', 'assistant']);
  assert.match(await page.textContent('.session-select option:checked'), / 3 messages$/);
});

test('a card made of HTML and script tags is shown as text and runs nothing', async () => {
  const { page } = h;
  await ensureApp();
  const evil = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>';
  const card = {
    spec: 'chara_card_v2',
    spec_version: '2.0',
    data: { name: `Eve ${evil}`, description: `Desc ${evil}`, personality: '', scenario: '', first_mes: `Hello ${evil}`, mes_example: '', alternate_greetings: [] },
  };
  await page.click('.sidebar .nav-button');
  await page.setInputFiles('#card-file', { name: 'eve.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(card)) });
  await page.waitForSelector('.chat-head h1:has-text("Eve")');
  assert.equal(await page.textContent('.chat-head h1'), card.data.name);
  assert.equal(await page.textContent('.message.assistant .text'), card.data.first_mes);
  await page.click('.sidebar .nav-button');
  await page.waitForSelector('.small-card');
  assert.ok((await page.textContent('.small-card')).includes(`Desc ${evil}`));
  const injected = await page.evaluate(() => ({ xss: window.__xss ?? null, imgs: document.querySelectorAll('img[src="x"]').length, scripts: document.querySelectorAll('#app script').length }));
  assert.deepEqual(injected, { xss: null, imgs: 0, scripts: 0 });
});

test('a card dropped on the gallery is imported', async () => {
  const { page } = h;
  await ensureApp();
  await page.click('.sidebar .nav-button');
  await page.waitForSelector('.dropzone');
  const card = { spec: 'chara_card_v2', spec_version: '2.0', data: { name: 'Dropped Dana', description: 'Came in by drag and drop.', personality: '', scenario: '', first_mes: 'Hi, I was dropped here.', mes_example: '', alternate_greetings: [] } };
  await page.evaluate((json) => {
    const data = new DataTransfer();
    data.items.add(new File([json], 'dana.json', { type: 'application/json' }));
    const zone = document.querySelector('.dropzone');
    zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
  }, JSON.stringify(card));
  await page.waitForSelector('.chat-head h1:has-text("Dropped Dana")');
  assert.equal(await page.textContent('.message.assistant .text'), 'Hi, I was dropped here.');
});

test('a character written in the form: fields, profile, lorebook, inner thoughts', async () => {
  const { page } = h;
  await ensureApp();
  await page.getByRole('button', { name: '+ New character' }).click();
  await page.waitForSelector('form.editor');
  await page.getByLabel('Name', { exact: true }).fill('Tamsin Reed');
  await page.getByLabel('Description').fill('{{char}} repairs old clocks in a market stall.');
  await page.getByLabel('First message').fill('Tick, tock, {{user}}. Bring me a broken one?');
  await page.getByRole('button', { name: 'Add a greeting' }).click();
  await page.getByLabel('Alternate greeting').fill('Mind the springs, {{user}}.');
  await page.locator('#trait-extraversion').fill('85');
  await page.getByLabel('Humour').selectOption('dry');
  await page.getByRole('button', { name: 'Add an entry' }).click();
  await page.locator('.lore li input[type=text]').fill('clock, clocks');
  await page.locator('.lore li textarea').fill('The oldest clock on the stall is from 1780.');
  await page.getByText('Show what they think').click();
  await page.getByRole('button', { name: 'Create character' }).click();
  await page.waitForSelector('.chat-head h1:has-text("Tamsin Reed")');
  assert.equal(await page.textContent('.message.assistant .text'), 'Tick, tock, User. Bring me a broken one?');
  const saved = await page.evaluate(async () => {
    const app = window.confidantDemo.app;
    const c = (await app.engine.characters.list()).find((x) => x.name === 'Tamsin Reed');
    return { profile: c.profile, thoughts: c.innerThoughts, book: c.character_book, greetings: c.alternate_greetings };
  });
  assert.equal(saved.profile.extraversion, 85);
  assert.equal(saved.profile.humor, 'dry');
  assert.equal(saved.thoughts.enabled, true);
  assert.deepEqual(saved.greetings, ['Mind the springs, {{user}}.']);
  assert.deepEqual(saved.book.entries.map((e) => [e.keys, e.content]), [[['clock', 'clocks'], 'The oldest clock on the stall is from 1780.']]);

  // Editing keeps what the form does not show and changes what it does.
  await page.getByRole('button', { name: 'Edit', exact: true }).first().click();
  await page.waitForSelector('form.editor');
  await page.getByLabel('Personality').fill('precise, patient');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.waitForSelector('.chat-head h1:has-text("Tamsin Reed")');
  const edited = await page.evaluate(async () => (await window.confidantDemo.app.engine.characters.list()).find((x) => x.name === 'Tamsin Reed'));
  assert.equal(edited.personality, 'precise, patient');
  assert.equal(edited.profile.extraversion, 85);
  assert.equal(edited.character_book.entries.length, 1);
});

test('offline after the first visit: the site loads and chats', async () => {
  const { page } = h;
  const context = page.context();
  // A short card keeps the prompt (all of it prefilled after a reload) small on SwiftShader.
  const card = { spec: 'chara_card_v2', spec_version: '2.0', data: { name: 'Pip', description: 'A cheerful robot.', personality: '', scenario: '', first_mes: 'Beep! Hello.', mes_example: '', alternate_greetings: [] } };
  await page.click('.sidebar .nav-button');
  await page.setInputFiles('#card-file', { name: 'pip.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(card)) });
  await page.waitForSelector('.chat-head h1:has-text("Pip")');
  await context.setOffline(true);
  try {
    await page.reload();
    await waitReady();
    await page.waitForSelector('.chat-head h1:has-text("Pip")');
    await send('Hi Pip.');
    const messages = await history();
    assert.equal(messages.length, 3);
    assert.ok(messages[2].text.trim().length > 0);
  } finally {
    await context.setOffline(false);
  }
});

test('on a plain static host without WebGPU: the service worker sends the policy (worker covered, no framing) and keeps to its own caches; the site runs on the processor; settings that ask for the GPU explain and offer it', async () => {
  // A plain static host: no headers at all, neither isolation nor a Content-Security-Policy (the
  // service worker adds them from the next load).
  const plain = await launch({ needs: ['web/dist/index.html'], serverOptions: { roots: siteRoots, csp: false }, webgpu: false });
  try {
    const { page } = plain;
    page.setDefaultTimeout(120_000);
    // Caches already on the origin: another app's, another copy of the site's (another path),
    // and an older version of this copy's.
    const origin = plain.base;
    const others = ['other-app-v1', `confidant ${origin}/elsewhere/ 0123456789abcdef`];
    await page.goto(`${origin}/icon.svg`);
    await page.evaluate(async (names) => {
      for (const name of names) await caches.open(name);
    }, [...others, `confidant ${origin}/ 0000000000000000`]);
    await page.goto(`${origin}/`);
    await page.evaluate(() => localStorage.setItem('confidant.settings', JSON.stringify({ backend: 'webgpu', welcomed: true })));
    await page.evaluate(() => navigator.serviceWorker.ready);
    const cacheNames = await page.evaluate(() => caches.keys());
    for (const name of others) assert.ok(cacheNames.includes(name), `${name} kept: ${cacheNames}`);
    assert.equal(cacheNames.filter((c) => c.startsWith(`confidant ${origin}/ `)).length, 1, `only this version of this copy: ${cacheNames}`);
    const response = await page.reload();
    assert.ok(response.fromServiceWorker());
    const policy = response.headers()['content-security-policy'] ?? '';
    assert.match(policy, /connect-src 'self'/);
    assert.match(policy, /frame-ancestors 'none'/);
    await page.waitForSelector('h1:has-text("No WebGPU")');
    assert.match(await page.textContent('main'), /Chrome or Edge/);
    await page.screenshot({ path: join(shots, 'no-webgpu.png') });
    await page.getByRole('button', { name: 'Run on the processor' }).click();
    await page.waitForFunction(() => window.confidantDemo?.ready === true, null, { timeout: 300_000 });
    const info = await page.evaluate(() => window.confidantDemo.app.engine.info());
    assert.equal(info.backend, 'cpu');
    // The engine's worker (which makes every fetch) is under the same policy: a request to
    // another origin is refused by it, not merely failed.
    const engineWorker = page.workers().find((w) => /confidant\/worker\.js/.test(w.url()));
    assert.ok(engineWorker, `the engine worker: ${page.workers().map((w) => w.url())}`);
    const violated = await engineWorker.evaluate(
      () =>
        new Promise((resolve) => {
          self.addEventListener('securitypolicyviolation', (e) => resolve(e.effectiveDirective), { once: true });
          fetch('http://127.0.0.1:9/elsewhere').catch(() => {});
          setTimeout(() => resolve('no violation'), 5000);
        }),
    );
    assert.equal(violated, 'connect-src');
    assert.match(info.backendReason, /no WebGPU adapter/);
    assert.equal(JSON.parse(await page.evaluate(() => localStorage.getItem('confidant.settings'))).backend, 'auto');
    await page.click('.sidebar-foot button');
    await page.waitForSelector('dialog[open] .storage');
    assert.match(await page.textContent('dialog[open]'), /on the processor/);
    await page.screenshot({ path: join(shots, 'settings-cpu.png') });
  } finally {
    await plain.close();
  }
});
