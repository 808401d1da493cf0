// Characters, sessions and the chat turn through the npm package in headless Chromium
// (WebGPU/SwiftShader, real IndexedDB): import a PNG card, chat three short turns (the last one
// stopped mid-reply), reload and find the session and its memories; export all → wipe →
// import all gives the same state. Replies are a few tokens: SwiftShader is slow.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { join } from 'node:path';
import { chunk } from '../../web/cards/png-chunks.mjs';
import { launch, root, inPage as inPageOf, okInPage, createPkgEngine } from './harness.mjs';

const MODEL_URL = '/models/SmolLM2-135M-Instruct-Q4_1.gguf';

// ---- a PNG card written here, independently of the engine's own PNG writer ----------------

function pngCard(card) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(2, 0); // 2×2 pixels
  header.writeUInt32BE(2, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const pixels = deflateSync(Buffer.from([0, 200, 120, 40, 200, 120, 40, 0, 40, 120, 200, 40, 120, 200]));
  const text = Buffer.concat([Buffer.from('chara\0', 'latin1'), Buffer.from(Buffer.from(JSON.stringify(card)).toString('base64'), 'latin1')]);
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', header), chunk('tEXt', text), chunk('IDAT', pixels), chunk('IEND', Buffer.alloc(0))]);
}

const CARD = {
  spec: 'chara_card_v2',
  spec_version: '2.0',
  data: {
    name: 'Orla',
    description: '{{char}} keeps a lighthouse and loves the sea.',
    personality: 'calm, kind',
    scenario: '',
    first_mes: 'Hello {{user}}, come in from the wind.',
    mes_example: '',
    alternate_greetings: ['Ahoy, {{user}}!'],
    character_book: { entries: [{ keys: ['storm'], content: 'A storm wrecked the pier last winter.', enabled: true, insertion_order: 1 }] },
    extensions: { another_tool: { x: 1 } },
  },
};

let h;

const inPage = (fn, arg) => inPageOf(h.page, fn, arg);
const ok = (fn, arg) => okInPage(h.page, fn, arg);

const createEngine = () => createPkgEngine(h, MODEL_URL, { contextLength: 1024 });

before(async () => {
  h = await launch({
    needs: ['pkg/dist/wasm/confidant_web_bg.wasm', 'pkg/dist/index.js', 'models/all-MiniLM-L6-v2/model.safetensors'],
    serverOptions: { roots: [['/confidant/', join(root, 'pkg/dist')], ['/models/', join(root, 'models')], ['/', join(root, 'tests/browser/pages')]] },
  });
  await createEngine();
});

after(async () => {
  await h?.page.evaluate(() => window.engine?.dispose()).catch(() => {});
  await h?.close();
});

let state = {};

test('import a PNG card, chat three turns, stop one mid-reply', async () => {
  const png = [...pngCard(CARD)];
  const character = await ok((engine, bytes) => engine.characters.import(new Blob([new Uint8Array(bytes)], { type: 'image/png' })), png);
  assert.equal(character.name, 'Orla');
  assert.equal(character.importedSpec, 'v2');
  assert.equal(character.hasAvatar, true);
  assert.deepEqual(character.extensions.another_tool, { x: 1 }, 'unknown extensions are kept');

  const bad = await inPage((engine) => engine.characters.import(new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10, 0, 0])));
  assert.equal(bad.error?.code, 'card_format', JSON.stringify(bad));

  const turns = await ok(
    async (engine, characterId) => {
      const s = await engine.sessions.create({ characterId, userName: 'Sam' });
      const greeting = (await s.history())[0];
      const out = { sessionId: s.id, greeting, turns: [] };
      for (const text of ['Hi Orla! My dog is called Rex.', 'Was there a storm here?']) {
        const types = [];
        const progress = [];
        let done = null;
        let heard = 0;
        const stream = s.send(text, { max_tokens: 3, temperature: 0 });
        stream.addEventListener('progress', () => heard++);
        for await (const ev of stream) {
          types.push(ev.type);
          if (ev.type === 'done') done = ev;
          if (ev.type === 'progress') progress.push([ev.done, ev.total]);
        }
        out.turns.push({ types, done, progress, heard, prompt: await engine.debug.prompt(s.id) });
      }
      // Stop the third reply at its first piece of text; what was written is kept.
      const controller = new AbortController();
      const types = [];
      const stream = s.send('Tell me about the sea.', { max_tokens: 12, temperature: 0, signal: controller.signal });
      for await (const ev of stream) {
        types.push(ev.type);
        if (ev.type === 'text' || ev.type === 'action' || ev.type === 'thought') controller.abort();
      }
      out.turns.push({ types, done: await stream });
      out.history = await s.history();
      return out;
    },
    character.id,
  );
  assert.equal(turns.greeting.text, 'Hello Sam, come in from the wind.');
  assert.equal(turns.greeting.greeting, true);
  for (const t of turns.turns) {
    assert.equal(t.types[0], 'user');
    assert.equal(t.types[1], 'memory');
    assert.equal(t.types.at(-1), 'done');
  }
  const [first, second, third] = turns.turns;
  // The first prompt is read in chunks of 64, reported from 0, before the reply's first piece.
  const total = first.done.usage.prompt_tokens;
  assert.ok(total > 64, `the first prompt has ${total} tokens`);
  assert.deepEqual(first.progress, Array.from({ length: Math.floor((total - 1) / 64) + 1 }, (_, i) => [64 * i, total]));
  assert.equal(first.heard, first.progress.length, 'the same reports reach progress listeners');
  const lastProgress = first.types.lastIndexOf('progress');
  assert.ok(first.types.slice(0, lastProgress).every((t) => ['user', 'memory', 'progress'].includes(t)), first.types.join(' '));
  assert.equal(second.prompt.sections.some((s) => s.kind === 'lore' && s.text.includes('storm')), true, 'the lore entry is in the prompt when its key is mentioned');
  assert.equal(first.prompt.sections.some((s) => s.kind === 'lore'), false, 'and not before');
  assert.ok(second.done.usage.cached_tokens > 0, `the second turn reuses the cached prefix: ${JSON.stringify(second.done.usage)}`);
  assert.equal(third.done.finishReason, 'abort');
  assert.ok(third.done.usage.completion_tokens < 12);
  assert.equal(turns.history.length, 7, 'greeting + 3 × (user, reply)');
  assert.equal(turns.history[1].text, 'Hi Orla! My dog is called Rex.');

  const facts = await ok((engine, characterId) => engine.memory.list({ characterId, kind: 'user_fact' }), character.id);
  assert.equal(facts.length, 1);
  assert.match(facts[0].text, /My dog is called Rex/);
  state = { characterId: character.id, sessionId: turns.sessionId, history: turns.history };
});

test('after a reload the session and its memories are there, nothing re-embedded', async () => {
  await h.page.evaluate(() => window.engine.dispose());
  await createEngine();
  const after = await ok(
    async (engine, { characterId, sessionId }) => {
      const sessions = await engine.sessions.list({ characterId });
      const s = await engine.sessions.get(sessionId);
      const hits = await engine.memory.search({ characterId, query: "What is my dog's name?", k: 3 });
      const stats = await engine.memory.stats({ characterId });
      return { sessions: sessions.map((x) => ({ id: x.id, messageCount: x.messageCount })), history: await s.history(), hits, stats };
    },
    state,
  );
  assert.deepEqual(after.sessions, [{ id: state.sessionId, messageCount: 7 }]);
  assert.deepEqual(after.history, state.history);
  assert.match(after.hits[0].record.text, /Rex/);
  assert.equal(after.stats.embeddedTexts, 1, 'only the query was embedded');
});

test('export all → wipe → import all restores the same state', async () => {
  const result = await ok(async (engine) => {
    const backup = await (await engine.exportAll()).text();
    await engine.wipe();
    const empty = { characters: await engine.characters.list(), sessions: await engine.sessions.list(), memories: await engine.memory.list() };
    const counts = await engine.importAll(backup);
    const again = await (await engine.exportAll()).text();
    const card = await engine.characters.export((await engine.characters.list())[0].id, { format: 'png', spec: 'v3' });
    return { backup: JSON.parse(backup), again: JSON.parse(again), empty, counts, cardType: card.type, cardSize: card.size };
  });
  assert.deepEqual(result.empty, { characters: [], sessions: [], memories: [] });
  assert.equal(result.counts.characters, 1);
  assert.equal(result.counts.sessions, 1);
  assert.ok(result.counts.memories >= 4, JSON.stringify(result.counts));
  delete result.backup.exportedAt;
  delete result.again.exportedAt;
  assert.deepEqual(result.again, result.backup);
  assert.equal(result.cardType, 'image/png');
  assert.ok(result.cardSize > 100);
  const bad = await inPage((engine) => engine.importAll('{"format":"something-else"}'));
  assert.equal(bad.error?.code, 'bad_request');
});
