// The demo site (web/dist) as a person uses it, in headless Chromium, served as `make demo`
// serves it (cross-origin isolated). The only WebGPU adapter here is SwiftShader, a software
// renderer, so the site runs on the CPU (threads): first visit (the characters at once, no model
// until the first message, then consent and progress), a demo character, three short turns (one
// stopped), regenerate, forgetting a memory, reload, export → wipe → import; every network
// request recorded (none to models/ before the first send, none after the assets while chatting,
// none to another origin); offline start through the service worker; a card made of HTML and
// script tags shown as text; the phone layout; a browser without WebGPU, where the gallery,
// editor, import and export work with no model. Screenshots of the main screens go to
// tests/out/site/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
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

/** The app is on screen (its storage open; the model may not be loaded). */
async function waitReady(page = h.page) {
  await page.waitForFunction(() => window.confidantDemo?.ready === true, null, { timeout: 600_000 });
}

/** Load the models through the app, agreeing to the download if it asks; wait until they are ready. */
async function loadModel(page = h.page) {
  await page.evaluate(() => void window.confidantDemo.app.model.ensure());
  await page.waitForFunction(() => window.confidantDemo.app.model.ready || document.querySelector('dialog[open] button.primary')?.textContent === 'Download and continue', null, { timeout: 600_000 });
  if (!(await page.evaluate(() => window.confidantDemo.app.model.ready))) await page.getByRole('button', { name: 'Download and continue' }).click();
  await page.waitForFunction(() => window.confidantDemo.app.model.ready, null, { timeout: 600_000 });
}

/** Open the site and load the model unless an earlier test did (so a test can run alone). */
async function ensureApp() {
  if (!(await h.page.evaluate(() => window.confidantDemo?.ready === true).catch(() => false))) {
    await h.page.goto(`${h.base}/`);
    await waitReady();
  }
  await loadModel();
}

/** The card JSON in a PNG's tEXt chunk `keyword` (base64, as character cards store it). */
function cardInPng(png, keyword) {
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + length);
    if (type === 'tEXt' && data.toString('latin1').startsWith(`${keyword}\0`)) return JSON.parse(Buffer.from(data.toString('latin1').slice(keyword.length + 1), 'base64').toString('utf8'));
    at += 12 + length;
  }
  return null;
}

/** Paths the server was asked for under /models/, from `since` (ms) on. */
const modelRequests = (since = 0) => served.filter(([t, p]) => t >= since && p.startsWith('/models/')).map(([, p]) => p);

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
  await h.page.click('.sidebar-foot .nav-button');
  await h.page.waitForSelector('dialog[open] .storage');
}
const closeDialog = () => h.page.click('dialog[open] .panel-head button');

/** Set generation settings through the settings panel; resolves to the values they replaced. */
async function setSettings(values, screenshot) {
  await openSettings();
  const before = {};
  for (const [key, value] of Object.entries(values)) {
    const input = `[data-setting="${key}"]`;
    before[key] = Number(await h.page.inputValue(input));
    await h.page.fill(input, String(value));
    await h.page.press(input, 'Tab');
  }
  if (screenshot) await shot(screenshot);
  await closeDialog();
  return before;
}

/** Replies of at most `n` tokens keep the tests quick. */
const setMaxTokens = (n, screenshot) => setSettings({ max_tokens: n }, screenshot);

/** Import a card (an object) through the gallery and wait for its chat. */
async function importCard(card, file) {
  await h.page.click('.sidebar .nav-button');
  await h.page.setInputFiles('#card-file', { name: file, mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(card)) });
  await h.page.waitForSelector(`.chat-head h1:has-text("${card.data.name}")`);
}

test('journey: first visit, demo character, three turns, stop, regenerate, forget, reload, export → wipe → import', async () => {
  const { page, base } = h;
  // First visit: the characters at once, and nothing from models/ until the first message.
  await page.goto(`${base}/`);
  await waitReady();
  await page.waitForSelector('[data-demo="wren"] img');
  assert.match(await page.textContent('.intro'), /download from this site with your first message/);
  await page.evaluate(() => navigator.serviceWorker.ready);
  await shot('gallery');

  // Short replies keep the test quick (12 tokens: SmolLM2 often spends the first few on writing
  // "Wren Okafor:", which the engine drops). The settings say no model is loaded yet.
  await setMaxTokens(12, 'settings-before');
  await page.click('[data-demo="wren"] button');
  await page.waitForSelector('.message.assistant .text');
  const greeting = await history();
  assert.equal(greeting.length, 1);
  assert.match(greeting[0].text, /Rain drums on the glass roof/);
  // Alternate greetings: next, and back.
  const toasts = () => page.$$eval('.toast', (ts) => ts.map((t) => t.textContent).join(' | '));
  const counter = (text) => page.waitForFunction((t) => document.querySelector('.counter')?.textContent === t, text).catch(async (e) => assert.fail(`${e.message}; toasts: ${await toasts()}`));
  await page.getByRole('button', { name: 'Next greeting' }).click();
  await counter('2 / 3');
  assert.match((await history())[0].text, /ladder/);
  await page.getByRole('button', { name: 'Previous greeting' }).click();
  await counter('1 / 3');
  assert.deepEqual(modelRequests(), [], 'no request to models/ before the first send');

  // The first message: it shows at once, the download is asked for, then the models load with
  // their progress in the typing bubble, then the reply.
  const sentAt = Date.now();
  await page.fill('.composer textarea', 'My name is Sam and I have a dog called Biscuit.');
  await page.press('.composer textarea', 'Enter');
  await page.waitForSelector('dialog[open] >> text=Download the language model?');
  assert.ok(await page.isVisible('.message.user.pending'), 'the message waits on screen');
  // Every line the typing bubble shows while the models load.
  await page.evaluate(() => {
    window.loadingLines = [];
    new MutationObserver(() => {
      const line = document.querySelector('.message.typing .status')?.textContent;
      if (line && line !== window.loadingLines.at(-1)) window.loadingLines.push(line);
    }).observe(document.querySelector('.messages'), { subtree: true, childList: true, characterData: true });
  });
  await page.getByRole('button', { name: 'Download and continue' }).click();
  await waitIdle();
  const lines = await page.evaluate(() => window.loadingLines);
  assert.ok(lines.some((l) => /^Downloading the language model · [\d.]+ (kB|MB) of 98\.4 MB · \d+ %/.test(l)), `download progress in decimal MB: ${lines.join(' | ')}`);
  assert.ok(lines.some((l) => /^Setting up the language model on this device…$/.test(l)), `the set-up step says what it does: ${lines.join(' | ')}`);
  assert.ok(!lines.some((l) => /Setting up.*0 B of/.test(l)), 'no byte count frozen at 0 while setting up');
  const stages = await page.evaluate(() => window.confidantDemo.stages);
  for (const s of ['model:download', 'model:cache', 'model:load', 'embedder:download']) assert.ok(stages.includes(s), `stage ${s} reported: ${stages}`);
  assert.ok(served.filter(([, p]) => p.startsWith('/models/')).every(([t]) => t >= sentAt), 'models/ fetched only after the first send');
  assert.equal((await history()).length, 3);

  // The settings say plainly which backend runs the model, why, and how fast it measured.
  await openSettings();
  await shot('settings');
  const about = await page.textContent('dialog[open] fieldset');
  assert.match(about, /SmolLM2 135M Instruct runs on the processor \(\d+ threads?\): the only WebGPU adapter, SwiftShader, is a software renderer, slower than the CPU/);
  assert.match(about, /Measured when it loaded: it writes about [\d.]+ tokens a second \(a reply of 100 tokens, some 75 words, in about \d+/);
  assert.match(about, /default, 98\.4 MB/, 'sizes in decimal MB, as on the progress line');
  assert.doesNotMatch(about, /Smollm2 135M 8k/, 'not the raw name from the file');
  await closeDialog();
  assert.match(await page.textContent('.stats'), /^[\d.]+ tok\/s · context \d+ \/ 4096/);

  const quietFrom = Date.now();
  // Back to the chat: where the model runs and how fast, until the next reply's numbers.
  await page.click('.character-list button');
  await page.waitForFunction(() => /^SmolLM2/.test(document.querySelector('.stats')?.textContent ?? ''));
  assert.match(await page.textContent('.stats'), /^SmolLM2 135M Instruct on the processor \(\d+ threads?\) · about [\d.]+ tok\/s$/);
  await send('Tell me about the Glasshouse.');
  let messages = await history();
  assert.equal(messages.length, 5, await page.$$eval('.toast', (ts) => ts.map((t) => t.textContent).join(' | ')));
  assert.deepEqual(messages.map((m) => m.role), ['assistant', 'user', 'assistant', 'user', 'assistant']);
  assert.match(await page.textContent('.stats'), /tok\/s · context \d+ \/ 4096/);

  // Third message, stopped as soon as the reply starts: allowed to run long and sampled hot
  // (temperature 2, no cuts: a babble that almost never picks the end token), so it is still
  // streaming when the click lands (the CPU path writes a natural reply in about a second).
  const usual = await setSettings({ max_tokens: 400, temperature: 2, top_p: 1, top_k: 0, min_p: 0 });
  await page.fill('.composer textarea', 'What is your favourite plant? Tell me everything about it.');
  await page.press('.composer textarea', 'Enter');
  await page.waitForSelector('.message.streaming .body p');
  await page.click('.composer .send.stop');
  await waitIdle();
  await setSettings({ ...usual, max_tokens: 12 });
  assert.match(await page.textContent('.stats'), /stopped/);
  messages = await history();
  assert.equal(messages.length, 7);
  await shot('chat');

  // A note to always keep in mind (as the memory panel adds one): every prompt carries it from now on.
  const note = 'Sam is allergic to lilies.';
  await page.evaluate(async (text) => {
    const { engine } = window.confidantDemo.app;
    const [character] = await engine.characters.list();
    await engine.memory.add({ characterId: character.id, kind: 'pinned_note', text, importance: 0.8 });
  }, note);

  // Regenerate the last reply: a new message in its place.
  const lastId = messages[6].id;
  await page.getByRole('button', { name: 'Regenerate' }).click();
  await page.waitForSelector('.composer .send.stop');
  await waitIdle();
  messages = await history();
  assert.equal(messages.length, 7);
  assert.notEqual(messages[6].id, lastId);
  // The old reply is kept as another version of the message: back to it, and forward again.
  const lastShown = (id) => page.waitForFunction((id) => [...document.querySelectorAll('.messages .message')].at(-1)?.dataset.id === id, id);
  const versionCounter = () => page.textContent('.messages .message:last-child .counter');
  assert.equal(await versionCounter(), '2 / 2');
  await page.getByRole('button', { name: 'Previous version' }).click();
  await lastShown(lastId);
  assert.equal(await versionCounter(), '1 / 2');
  await page.getByRole('button', { name: 'Next version' }).click();
  await lastShown(messages[6].id);
  assert.deepEqual(await history(), messages);
  // Continue: the same last reply goes on (its id and place kept, its text extended or, if the
  // model stops at once, unchanged); nothing else in the history moves.
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.waitForSelector('.composer .send.stop');
  await waitIdle();
  const continued = await history();
  assert.equal(continued.length, 7);
  assert.deepEqual(continued.slice(0, 6), messages.slice(0, 6));
  assert.equal(continued[6].id, messages[6].id);
  assert.ok(continued[6].text.startsWith(messages[6].text.trimEnd()), `${JSON.stringify(continued[6].text)} continues ${JSON.stringify(messages[6].text)}`);
  messages = continued;

  // What the last reply knew: its citations list the memories its prompt used, as stored.
  await page.click('.messages .message:last-child .cites summary');
  await page.waitForSelector('.messages .message:last-child .cites li');
  const cited = await page.$$eval('.messages .message:last-child .cites li', (lis) => lis.map((li) => li.textContent.replace(/^Pinned/, '')));
  const stored = await page.evaluate(async () => {
    const { engine } = window.confidantDemo.app;
    const [session] = await engine.sessions.list();
    const last = (await session.history()).at(-1);
    const records = await engine.memory.list({});
    return last.usedMemoryIds.map((id) => records.find((r) => r.id === id)?.text ?? null);
  });
  assert.ok(cited.includes(note), `the pinned note among the citations: ${JSON.stringify(cited)}`);
  assert.deepEqual(cited, stored);
  await shot('chat-citations');

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
  // The profile editor, from the memory panel: share it with Wren, add a home city, then a
  // newer one, which replaces it (the old one is kept under Replaced); no new page load.
  await page.getByRole('button', { name: 'Your profile…' }).click();
  await page.waitForSelector('dialog[open] .profile-facts li');
  await page.getByLabel('Wren Okafor knows your profile').check();
  await page.waitForSelector('dialog[open] [role=status]:has-text("now knows your profile")');
  for (const city of ['Paris', 'Rome']) {
    await page.fill('dialog[open] .profile-add [aria-label=Subject]', 'home city');
    await page.fill('dialog[open] .profile-add [aria-label=Fact]', city);
    await page.click('dialog[open] .profile-add button[type=submit]');
    await page.waitForFunction((c) => [...document.querySelectorAll('dialog[open] .profile-facts .memory p')].some((p) => p.textContent === c), city);
  }
  assert.deepEqual(await page.$$eval('dialog[open] .profile-facts .memory p', (ps) => ps.map((p) => p.textContent)), ['Rome']);
  assert.deepEqual(await page.$$eval('dialog[open] .profile-history del', (ds) => ds.map((d) => d.textContent)), ['Paris']);
  assert.equal((await page.evaluate(() => window.confidantDemo.app.engine.characters.list()))[0].userProfile, true);
  await closeDialog();

  // Nothing went to the network while chatting.
  const during = served.filter(([t]) => t >= quietFrom);
  assert.deepEqual(during, [], 'no requests while choosing a character, chatting and using memory');

  // Reload: the same chat comes back, the forgotten memory stays forgotten, no model download.
  const reloadFrom = Date.now();
  await page.reload();
  await waitReady();
  await page.waitForSelector('.message.user');
  // A returning visitor's models load from this browser at once.
  await page.waitForFunction(() => window.confidantDemo.app.model.ready, null, { timeout: 600_000 });
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
  assert.deepEqual(backup.userProfile.map((f) => [f.value, Boolean(f.supersededBy)]).sort(), [['Paris', true], ['Rome', false]]);
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

// The model picker: the site's built-in models (Gemma only where the build found its file), a
// person's own GGUF copied into the browser, chosen, kept across a reload, switched back from and
// deleted. The file is a small synthetic model (crates/llm/tests/synth), so this adds two loads
// of under a megabyte and one of SmolLM2 from the browser's cache; then Gemma 3 270M (where
// models/fetch.sh fetched it) is chosen, downloaded and gives a reply of 6 tokens on the CPU
// (about 14 s more, most of it the reply's prompt), and SmolLM2 comes back.
test('model picker: built-in models, a GGUF of ones own kept in the browser across a reload with its own chat template, switch back, delete', async () => {
  const { page } = h;
  await ensureApp();
  const example = join(root, 'target/release/examples/synth_llama');
  assert.ok(existsSync(example), `${example} is missing: run cargo build --release --all-targets`);
  const file = join(shots, 'phi3_fused.gguf');
  execFileSync(example, ['phi3_fused', file], { stdio: 'ignore' });

  await openSettings();
  const choices = () => page.textContent('dialog[open] .model-choices');
  assert.match(await choices(), /SmolLM2 135M Instruct \(default, 98\.4 MB\)/);
  if (existsSync(join(root, 'models/gemma-3-270m-Q4_K_M.gguf'))) assert.match(await choices(), /Gemma 3 270M \(253\.1 MB\).*base model, with no instruction tuning/);
  else assert.doesNotMatch(await choices(), /Gemma/, 'a model the site does not serve is not offered');
  await page.setInputFiles('#model-file', file);
  await page.waitForSelector('dialog[open] .model-choices input[value^="stored:"]:checked');
  assert.match(await choices(), /phi3_fused\.gguf \(\d+ kB, your file\)/);
  await shot('settings-models');
  await page.getByRole('button', { name: 'Use this model' }).click();
  const arch = () => page.evaluate(() => window.confidantDemo.app.model.status.info?.model.arch ?? null);
  await page.waitForFunction(() => window.confidantDemo.app.model.status.info?.model.arch === 'phi3');
  await page.waitForFunction(() => /phi3, \d+M weights/.test(document.querySelector('dialog[open] .model-loaded')?.textContent ?? ''));
  const stored = await page.evaluate(async () => (await window.confidantDemo.app.engine.constructor.cache.list()).filter((m) => m.url.startsWith('confidant-file:')));
  assert.deepEqual(stored.map((m) => [m.name, m.size]), [['phi3_fused.gguf', readFileSync(file).length]]);

  // Its chat template (the ChatML stand-in: the file has none) replaced by one of the person's,
  // kept for this model; one that does not compile is refused and the model keeps its own.
  const template = () => page.evaluate(() => window.confidantDemo.app.model.status.info?.model.chatTemplate ?? null);
  await page.click('dialog[open] .template-override summary');
  assert.match(await page.inputValue('dialog[open] .template-source'), /<\|im_start\|>/);
  await page.fill('dialog[open] .template-source', '{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}');
  await page.getByRole('button', { name: 'Use this template' }).click();
  await page.waitForFunction(() => window.confidantDemo.app.model.status.info?.model.chatTemplate === 'custom');
  await page.fill('dialog[open] .template-source', '{% for m in messages %}');
  await page.getByRole('button', { name: 'Use this template' }).click();
  await page.waitForSelector('.toast.error:has-text("That template cannot be used")');
  await page.waitForFunction(() => window.confidantDemo.app.model.ready);
  assert.equal(await template(), 'chatml', 'a refused template leaves the model its own');
  await page.fill('dialog[open] .template-source', '{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}');
  await page.getByRole('button', { name: 'Use this template' }).click();
  await page.waitForFunction(() => window.confidantDemo.app.model.status.info?.model.chatTemplate === 'custom');
  await closeDialog();

  // Reloaded: the choice is remembered and the file loads from the browser, not asked for again.
  const reloadFrom = Date.now();
  await page.reload();
  await waitReady();
  await page.waitForFunction(() => window.confidantDemo.app.model.ready, null, { timeout: 600_000 });
  assert.equal(await arch(), 'phi3');
  assert.equal(await template(), 'custom', 'the template is kept for this model across a reload');
  assert.deepEqual(modelRequests(reloadFrom), [], 'nothing fetched from models/');

  // Back to SmolLM2, then delete the file.
  await openSettings();
  assert.ok(await page.$('dialog[open] .model-choices input[value^="stored:"]:checked'), 'the stored file is the choice');
  await page.check('dialog[open] .model-choices input[value="builtin:smollm2-135m"]');
  await page.getByRole('button', { name: 'Use this model' }).click();
  await page.waitForFunction(() => window.confidantDemo.app.model.status.info?.model.arch === 'llama');
  assert.equal(await template(), 'own', "SmolLM2 keeps its own template: the other was the phi3 file's");
  assert.equal(JSON.parse(await page.evaluate(() => localStorage.getItem('confidant.settings'))).model.kind, 'default');
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Delete phi3_fused.gguf from this browser' }).click();
  await page.waitForFunction(() => !document.querySelector('dialog[open] .model-choices input[value^="stored:"]'));
  assert.deepEqual(await page.evaluate(async () => (await window.confidantDemo.app.engine.constructor.cache.list()).filter((m) => m.url.startsWith('confidant-file:'))), []);
  assert.match(await choices(), /SmolLM2 135M Instruct.*In this browser/, 'the built-in model stays cached');
  await closeDialog();
  assert.deepEqual(modelRequests(reloadFrom), [], 'SmolLM2 came back from the browser');

  // Gemma 3 270M, where the site serves it: downloaded when chosen, a reply of a few tokens in a
  // chat with its family's turn markers (the file has no template), then SmolLM2 again.
  if (existsSync(join(root, 'models/gemma-3-270m-Q4_K_M.gguf'))) {
    const maxTokens = (await setMaxTokens(6)).max_tokens;
    await openSettings();
    await page.check('dialog[open] .model-choices input[value="builtin:gemma-3-270m"]');
    await page.getByRole('button', { name: 'Use this model' }).click();
    await page.waitForFunction(() => window.confidantDemo.app.model.ready || document.querySelector('dialog[open] button.primary')?.textContent === 'Download and continue', null, { timeout: 300_000 });
    if (!(await page.evaluate(() => window.confidantDemo.app.model.ready))) await page.getByRole('button', { name: 'Download and continue' }).click();
    await page.waitForFunction(() => window.confidantDemo.app.model.ready && window.confidantDemo.app.model.status.info?.model.arch === 'gemma3', null, { timeout: 300_000 });
    assert.equal(await template(), 'gemma', "Gemma's turn markers stand in for the template the file lacks");
    assert.ok(modelRequests(reloadFrom).includes('/models/gemma-3-270m-Q4_K_M.gguf'), 'Gemma was downloaded when chosen');
    await closeDialog();
    await page.click('.sidebar .nav-button');
    await page.click('[data-demo="wren"] button');
    await page.waitForSelector('.message.assistant .text');
    const before = (await history()).length;
    await send('Hello, who are you?');
    const after = await history();
    assert.equal(after.length, before + 2, 'a message and its reply');
    assert.equal(after.at(-1).role, 'assistant');
    await openSettings();
    await page.check('dialog[open] .model-choices input[value="builtin:smollm2-135m"]');
    await page.getByRole('button', { name: 'Use this model' }).click();
    await page.waitForFunction(() => window.confidantDemo.app.model.ready && window.confidantDemo.app.model.status.info?.model.arch === 'llama');
    await closeDialog();
    await setMaxTokens(maxTokens);
  }
});

test('mobile width and dark theme screenshots; a character with inner thoughts', async () => {
  const { page } = h;
  await page.emulateMedia({ colorScheme: 'dark', reducedMotion: 'reduce' });
  await page.setViewportSize({ width: 390, height: 844 });
  await shot('mobile-chat');
  // Every toolbar action is on screen, uncovered, and takes a click (Delete chat asks first: no).
  // Toasts lie over the top of a phone's screen for a few seconds: dismissed first.
  for (const dismiss of await page.$$('.toast button')) await dismiss.click();
  const actions = await page.$$eval('.chat-head button:not([hidden]), .composer button', (buttons) =>
    buttons.map((b) => {
      const r = b.getBoundingClientRect();
      const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
      return { name: b.getAttribute('aria-label') ?? b.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom, uncovered: b === hit || b.contains(hit) };
    }),
  );
  assert.deepEqual(actions.map((a) => a.name), ['Menu', 'New chat', 'Continue', 'Write for me', 'Memory', 'Edit', 'Delete chat', 'Send']);
  for (const a of actions) assert.ok(a.left >= 0 && a.right <= 390 && a.top >= 0 && a.bottom <= 844 && a.uncovered, `${a.name} reachable at 390×844: ${JSON.stringify(a)}`);
  const asked = new Promise((resolve) => page.once('dialog', (d) => { resolve(d.message()); void d.dismiss(); }));
  await page.getByRole('button', { name: 'Delete chat' }).click();
  assert.match(await asked, /Delete this chat/);
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

test('without WebGPU and before any model: gallery, import, editor, card and backup export, wipe, import, and no request to models/', async () => {
  // A plain static host: no isolation headers (the service worker adds them from the next load).
  const paths = [];
  const plain = await launch({ needs: ['web/dist/index.html'], serverOptions: { roots: siteRoots, onRequest: (req) => paths.push(new URL(req.url, 'http://x').pathname) }, webgpu: false });
  try {
    const { page } = plain;
    page.setDefaultTimeout(120_000);
    await page.goto(`${plain.base}/`);
    await waitReady(page);
    await page.waitForSelector('[data-demo="juno"] img');
    assert.equal(await page.evaluate(() => window.confidantDemo.app.engine.modelLoaded), false);

    // A card file: imported, its chat opens on the greeting, with a portrait drawn here.
    const card = {
      spec: 'chara_card_v2',
      spec_version: '2.0',
      data: { name: 'Moss Ferrant', description: 'A 70-year-old lock-keeper with a grey beard and round glasses. He tells stories about the canal.', personality: 'gruff, kind', scenario: '', first_mes: 'Mind the gap, {{user}}.', mes_example: '', alternate_greetings: [] },
    };
    await page.click('.sidebar .nav-button');
    await page.setInputFiles('#card-file', { name: 'moss.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(card)) });
    await page.waitForSelector('.chat-head h1:has-text("Moss Ferrant")');
    assert.equal(await page.textContent('.message.assistant .text'), 'Mind the gap, User.');
    assert.match(await page.getAttribute('.chat-head img.avatar', 'src'), /^data:image\/svg\+xml/);
    assert.match(await page.textContent('.stats'), /Your first message downloads the models \(98\.4 MB and 91\.3 MB\), once\./);

    // The editor: the mood's value rides above the slider's thumb (−100..100); a change is saved.
    await page.getByRole('button', { name: 'Edit', exact: true }).first().click();
    await page.waitForSelector('form.editor');
    await page.locator('#trait-mood').fill('45');
    const mood = await page.evaluate(() => {
      const input = document.querySelector('#trait-mood');
      const output = input.parentElement.querySelector('output');
      const i = input.getBoundingClientRect();
      const o = output.getBoundingClientRect();
      return { text: output.textContent, at: o.left + o.width / 2, thumb: i.left + 8 + (145 / 200) * (i.width - 16) };
    });
    assert.equal(mood.text, '+45');
    assert.ok(Math.abs(mood.at - mood.thumb) < 3, `the value is above the thumb: ${JSON.stringify(mood)}`);
    await page.locator('#trait-mood').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shots, 'editor-profile.png') });
    await page.getByLabel('Personality').fill('gruff, kind, patient');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.waitForSelector('.chat-head h1:has-text("Moss Ferrant")');

    // The card as a PNG file, from the editor.
    await page.getByRole('button', { name: 'Edit', exact: true }).first().click();
    const [cardDownload] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export card (PNG)' }).click()]);
    const png = readFileSync(await cardDownload.path());
    assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
    assert.equal(cardInPng(png, 'ccv3').data.personality, 'gruff, kind, patient', 'the saved change is in the card');

    // Everything out, wiped, back in.
    await page.click('.sidebar-foot .nav-button');
    await page.waitForSelector('dialog[open] .storage');
    assert.match(await page.textContent('dialog[open] fieldset'), /No model is loaded yet: it downloads \(98\.4 MB and 91\.3 MB\) with your first message\./);
    const [backupDownload] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export everything' }).click()]);
    const backup = JSON.parse(readFileSync(await backupDownload.path(), 'utf8'));
    assert.deepEqual(backup.characters.map((c) => c.card.data.name), ['Moss Ferrant']);
    assert.equal(backup.sessions.length, 1);
    page.once('dialog', (d) => d.accept());
    await page.getByRole('button', { name: 'Delete everything' }).click();
    await page.waitForSelector('.character-list >> text=No characters yet.');
    await page.click('.sidebar-foot .nav-button');
    await page.setInputFiles('#backup-file', { name: 'backup.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(backup)) });
    await page.waitForSelector('.toast:has-text("Imported 1 character,")');
    await page.click('dialog[open] .panel-head button');
    await page.click('.character-list button');
    await page.waitForSelector('.message.assistant .text');
    assert.equal(await page.textContent('.message.assistant .text'), 'Mind the gap, User.');
    await page.screenshot({ path: join(shots, 'no-model-chat.png') });
    assert.deepEqual(paths.filter((p) => p.startsWith('/models/')), [], 'nothing asked of models/ without a message sent');
  } finally {
    await plain.close();
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
    // Settings that ask for WebGPU, written before the app's first start (an app that started
    // with other settings saves its own when it shows the gallery, and could overwrite these).
    await page.evaluate(() => localStorage.setItem('confidant.settings', JSON.stringify({ backend: 'webgpu', welcomed: true })));
    await page.goto(`${origin}/`);
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
    await waitReady(page);
    await loadModel(page);
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
    await page.click('.sidebar-foot .nav-button');
    await page.waitForSelector('dialog[open] .storage');
    assert.match(await page.textContent('dialog[open]'), /on the processor/);
    await page.screenshot({ path: join(shots, 'settings-cpu.png') });

    // A stored character that cannot be read: set aside when the list is read, and the settings
    // say so.
    await page.evaluate(
      () =>
        new Promise((ok, no) => {
          const r = indexedDB.open('confidant');
          r.onerror = () => no(r.error);
          r.onsuccess = () => {
            const t = r.result.transaction('characters', 'readwrite');
            t.objectStore('characters').put({ id: 'unreadable-character', card: 7 });
            t.oncomplete = () => {
              r.result.close();
              ok();
            };
            t.onerror = () => no(t.error);
          };
        }),
    );
    await page.reload();
    await page.waitForFunction(() => window.confidantDemo?.ready === true);
    await page.click('.sidebar-foot .nav-button');
    await page.waitForFunction(() => /1 record could not be read/.test(document.querySelector('dialog[open] .storage')?.textContent ?? ''));
  } finally {
    await plain.close();
  }
});
