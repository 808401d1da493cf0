// No data lost: the npm package's storage in headless Chromium on the CPU (real IndexedDB, the
// model from OPFS), under the faults a person meets: a reload while a reply streams or
// regenerates, two tabs on one chat, a memory forgotten in one tab while the other answers, the
// browser refusing to store more (quota, through CDP) during a send and an import, a corrupt
// record in each object store, and a newer version of the site upgrading the database
// while an older tab is open; and a wasm trap, after which the worker restarts and the chat goes
// on. Each test checks that no message, character or memory was lost or duplicated. Replies are
// a few tokens; one page (and a second tab where needed) serves all. The page is cross-origin
// isolated, as the demo is, so the engine runs its multi-threaded build: the one whose futures
// resume a task after IndexedDB answers (the harder case for transactions).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createPkgEngine, inPage, isolation, launch, okInPage, root } from './harness.mjs';

const MODEL_URL = '/models/SmolLM2-135M-Instruct-Q4_1.gguf';
const CARD = {
  spec: 'chara_card_v2',
  spec_version: '2.0',
  data: {
    name: 'Orla',
    description: '{{char}} keeps a lighthouse and tells long stories about the sea.',
    personality: 'calm, talkative',
    scenario: '',
    first_mes: 'Hello {{user}}, come in from the wind.',
    mes_example: '',
    alternate_greetings: [],
  },
};

let h;
/** Paths the server was asked for. */
const served = [];
/** The character and session every test uses. */
let ids;

const ok = (fn, arg) => okInPage(h.page, fn, arg);
const createEngine = (page = h.page) => createPkgEngine({ ...h, page }, MODEL_URL, { contextLength: 1024, backend: 'cpu' });

/** The session as IndexedDB holds it, read by the page itself (not through the engine). */
function storedSession(page, sessionId) {
  return page.evaluate(async (id) => {
    const db = await new Promise((ok, no) => {
      const r = indexedDB.open('confidant');
      r.onsuccess = () => ok(r.result);
      r.onerror = () => no(r.error);
    });
    try {
      return await new Promise((ok, no) => {
        const r = db.transaction('sessions').objectStore('sessions').get(id);
        r.onsuccess = () => ok(r.result ?? null);
        r.onerror = () => no(r.error);
      });
    } finally {
      db.close();
    }
  }, sessionId);
}

/**
 * Poll the stored session until `test(session)` holds (the engine saves every 2 s while it
 * writes); null if the reply under way ended first.
 */
async function waitStored(page, sessionId, test) {
  for (;;) {
    const ended = await page.evaluate(() => window.streamEnded);
    const session = await storedSession(page, sessionId);
    if (session && test(session)) return session;
    if (ended) return null;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Start a long reply in the page (not awaited there); resolves once its first piece arrived. */
function startLongReply(page, op) {
  return page.evaluate(
    async ({ op, sessionId }) => {
      const s = await window.engine.sessions.get(sessionId);
      // Sampled hot (temperature 2, no top-k, top-p or min-p cut): the CPU path writes a
      // natural reply in well under the 2 s between saves, and this babble almost never picks
      // the end token or a stop string, so it is still being written when saved.
      const hot = { max_tokens: 400, temperature: 2, top_p: 1, min_p: 0, top_k: 0, seed: 3 };
      const stream = op === 'send' ? s.send('Tell me the longest story you know about the sea and the lighthouse.', hot) : s.regenerate(hot);
      window.streaming = stream;
      window.streamed = '';
      window.streamEnded = false;
      const iterator = stream[Symbol.asyncIterator]();
      for (;;) {
        const { value, done } = await iterator.next();
        if (done || value.type === 'done') {
          window.streamEnded = true;
          return false;
        }
        if (value.type === 'text' || value.type === 'thought' || value.type === 'action') {
          window.streamed += value.text;
          // Keep reading in the background, as the app would.
          (async () => {
            for (;;) {
              const next = await iterator.next().catch(() => ({ done: true }));
              if (next.done) break;
              if (next.value.text) window.streamed += next.value.text;
            }
            window.streamEnded = true;
          })();
          return true;
        }
      }
    },
    { op, sessionId: ids.sessionId },
  );
}

async function reloadEngine(page = h.page) {
  await page.reload();
  await createEngine(page);
}

before(async () => {
  h = await launch({
    needs: ['pkg/dist/wasm/confidant_web_bg.wasm', 'pkg/dist/index.js', 'models/all-MiniLM-L6-v2/model.safetensors'],
    serverOptions: {
      roots: [['/confidant/', join(root, 'pkg/dist')], ['/models/', join(root, 'models')], ['/', join(root, 'tests/browser/pages')]],
      headers: isolation,
      onRequest: (req) => served.push(new URL(req.url, 'http://x').pathname),
    },
    webgpu: false,
  });
  h.page.setDefaultTimeout(120_000);
  await createEngine();
  assert.match(await h.page.evaluate(() => window.engine.info().backendReason), /\d+ threads/, 'the multi-threaded build runs');
  ids = await ok(async (engine, card) => {
    const character = await engine.characters.import(card);
    const s = await engine.sessions.create({ characterId: character.id, userName: 'Sam' });
    // A first turn: a fact to remember, and a reply.
    await s.send('My dog is called Rex and he loves the beach.', { max_tokens: 4, temperature: 0 });
    return { characterId: character.id, sessionId: s.id };
  }, CARD);
});

after(async () => {
  if (process.env.STORAGE_LOG) console.log(h?.console.join('\n'));
  await h?.close();
});

test('a reload while a reply streams: the partial reply is there, marked unfinished', async () => {
  const before = await ok((engine, id) => engine.sessions.get(id).then((s) => s.history()), ids.sessionId);
  let saved = null;
  // A reply that ends (a stop string, the end token) before its first save is tried again.
  for (let attempt = 0; attempt < 3 && !saved; attempt++) {
    if (!(await startLongReply(h.page, 'send'))) continue;
    saved = await waitStored(h.page, ids.sessionId, (s) => s.messages.at(-1).unfinished === true);
  }
  assert.ok(saved, 'a partial reply was saved while it streamed');
  const partial = saved.messages.at(-1);
  await reloadEngine();
  const history = await ok((engine, id) => engine.sessions.get(id).then((s) => s.history()), ids.sessionId);
  const last = history.at(-1);
  assert.equal(last.role, 'assistant');
  assert.equal(last.unfinished, true);
  assert.equal(last.id, partial.id);
  // What was saved last before the page went away: the text seen saved, or more of it.
  assert.ok(partial.text.length > 0 && last.text.startsWith(partial.text), `the saved text: ${JSON.stringify(last.text)} after ${JSON.stringify(partial.text)}`);
  // Nothing before it lost or doubled: the earlier history, then the messages of the turn.
  assert.deepEqual(history.slice(0, before.length), before);
  const ids_ = history.map((m) => m.id);
  assert.equal(new Set(ids_).size, ids_.length, 'no message twice');
  assert.equal(history.at(-2).role, 'user');
});

test('a reload while a reply is regenerated: both versions are kept', async () => {
  let old = null;
  let saved = null;
  for (let attempt = 0; attempt < 3 && !saved; attempt++) {
    old = (await ok((engine, id) => engine.sessions.get(id).then((s) => s.history()), ids.sessionId)).at(-1);
    const versions = old.swipes?.length ?? 1;
    if (!(await startLongReply(h.page, 'regenerate'))) continue;
    saved = await waitStored(h.page, ids.sessionId, (s) => {
      const last = s.messages.at(-1);
      return last.id === old.id && (last.swipes?.length ?? 1) === versions + 1 && last.swipes.at(-1).unfinished === true;
    });
  }
  assert.ok(saved, 'the new version was saved beside the old one while it streamed');
  await reloadEngine();
  const history = await ok((engine, id) => engine.sessions.get(id).then((s) => s.history()), ids.sessionId);
  const last = history.at(-1);
  assert.equal(last.id, old.id, 'the old reply is still the one shown');
  assert.equal(last.text, old.text);
  assert.equal(last.swipes[last.swipe ?? 0].id, old.id, 'and is the version marked shown');
  assert.equal(last.swipes.at(-1).unfinished, true);
  assert.ok(last.swipes.at(-1).text.length > 0);
  const before = saved.messages.at(-1).swipes.at(-1);
  assert.equal(last.swipes.at(-1).id, before.id, 'the version saved before the reload');
  assert.ok(last.swipes.at(-1).text.startsWith(before.text));
  // The new version can be shown, and the old one again; the choice is stored.
  const newest = last.swipes.length - 1;
  const shown = await ok((engine, { sessionId, messageId, newest }) => engine.sessions.get(sessionId).then((s) => s.chooseSwipe(messageId, newest)), { sessionId: ids.sessionId, messageId: old.id, newest });
  assert.equal(shown.id, last.swipes[newest].id);
  assert.equal(shown.swipe, newest);
  const back = await ok((engine, { sessionId, messageId, index }) => engine.sessions.get(sessionId).then((s) => s.chooseSwipe(messageId, index)), { sessionId: ids.sessionId, messageId: shown.id, index: last.swipe ?? 0 });
  assert.equal(back.id, old.id);
  assert.equal((await storedSession(h.page, ids.sessionId)).messages.at(-1).id, old.id);
});

test('two tabs send to the same chat at once: every message of both is stored, in order', async () => {
  const other = await h.page.context().newPage();
  try {
    await createEngine(other);
    const before = (await storedSession(h.page, ids.sessionId)).messages.length;
    const send = (page, text) => page.evaluate(async ({ id, text }) => (await (await window.engine.sessions.get(id)).send(text, { max_tokens: 4, temperature: 0 })).message?.id ?? null, { id: ids.sessionId, text });
    const [replyA, replyB] = await Promise.all([send(h.page, 'A message from the first tab.'), send(other, 'A message from the second tab.')]);
    const messages = (await storedSession(h.page, ids.sessionId)).messages;
    const texts = messages.map((m) => m.text);
    assert.equal(texts.filter((t) => t === 'A message from the first tab.').length, 1, JSON.stringify(texts));
    assert.equal(texts.filter((t) => t === 'A message from the second tab.').length, 1, JSON.stringify(texts));
    const at = (id) => messages.findIndex((m) => m.id === id);
    for (const [text, reply] of [['A message from the first tab.', replyA], ['A message from the second tab.', replyB]]) {
      if (reply) assert.ok(texts.indexOf(text) < at(reply), `each reply after its message: ${JSON.stringify(texts)}`);
    }
    assert.equal(messages.length, before + 2 + [replyA, replyB].filter(Boolean).length, 'nothing lost, nothing doubled');
    assert.equal(new Set(messages.map((m) => m.id)).size, messages.length);
  } finally {
    await other.close();
  }
});

test('a memory forgotten in one tab while the other answers stays forgotten', async () => {
  const other = await h.page.context().newPage();
  try {
    await createEngine(other);
    const fact = (await ok((engine, characterId) => engine.memory.list({ characterId, kind: 'user_fact' }), ids.characterId)).find((r) => /Rex/.test(r.text));
    assert.ok(fact, 'the fact from the first message');
    // This tab asks about it (the fact is retrieved, and its lastAccessed noted); the other
    // forgets it as soon as the reply starts.
    await h.page.exposeFunction('forgetInOtherTab', (id) => other.evaluate((id) => window.engine.memory.forget(id), id));
    const turn = await ok(
      async (engine, { sessionId, factId }) => {
        const s = await engine.sessions.get(sessionId);
        let retrieved = false;
        let forgot = null;
        for await (const ev of s.send('What is my dog called?', { max_tokens: 6, temperature: 0 })) {
          if (ev.type === 'memory') {
            retrieved = ev.records.some((r) => r.record.id === factId);
            forgot = await window.forgetInOtherTab(factId);
          }
        }
        return { retrieved, forgot };
      },
      { sessionId: ids.sessionId, factId: fact.id },
    );
    assert.equal(turn.forgot, true, 'the other tab forgot it');
    const here = await ok((engine, characterId) => engine.memory.list({ characterId }), ids.characterId);
    const there = await okInPage(other, (engine, characterId) => engine.memory.list({ characterId }), ids.characterId);
    assert.ok(!here.some((r) => r.id === fact.id), 'gone in the tab that answered');
    assert.ok(!there.some((r) => r.id === fact.id), 'gone in the tab that forgot it');
    await reloadEngine();
    const reloaded = await ok((engine, characterId) => engine.memory.list({ characterId }), ids.characterId);
    assert.ok(!reloaded.some((r) => r.id === fact.id), 'gone after a reload');
  } finally {
    await other.close();
  }
});

test('quota refused during a send and an import: nothing half-applied, a clear error', async () => {
  // A fresh profile, its quota held close to its usage before any write: Chromium's IndexedDB
  // keeps the room it found at its first write, and refuses a transaction larger than that room.
  // (A refusal in the middle of a reply is tested natively: crates/engine/tests/storage.rs.)
  const context = await h.browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  const ask = (fn, arg) => inPage(page, fn, arg);
  try {
    await createEngine(page);
    // The embedding model is stored (OPFS) and the database opened before the quota is set.
    await okInPage(page, (engine) => engine.memory.embed(['the embedder, loaded first']));
    const { usage } = await page.evaluate(() => navigator.storage.estimate());
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: h.base, quotaSize: usage + 10_000 });
    const setup = await okInPage(page, async (engine, card) => {
      const character = await engine.characters.import(card);
      const s = await engine.sessions.create({ characterId: character.id, userName: 'Sam' });
      return { characterId: character.id, sessionId: s.id, history: await s.history() };
    }, CARD);
    // A send larger than the room: refused, the chat unchanged.
    const sent = await ask(async (engine, id) => (await engine.sessions.get(id)).send('x'.repeat(15_000), { max_tokens: 4 }), setup.sessionId);
    assert.equal(sent.error?.code, 'storage_quota', JSON.stringify(sent));
    assert.deepEqual(await okInPage(page, async (engine, id) => (await engine.sessions.get(id)).history(), setup.sessionId), setup.history);
    // An import larger than the room: refused as a whole, none of it stored.
    const backup = await okInPage(page, async (engine) => JSON.parse(await (await engine.exportAll()).text()));
    const character = { ...structuredClone(backup.characters[0]), id: 'imported-character' };
    const session = { ...structuredClone(backup.sessions[0]), id: 'imported-session', characterId: 'imported-character' };
    session.messages = session.messages.map((m, i) => ({ ...m, id: `imported-${i}`, text: m.text + ' …'.repeat(10_000), memoryIds: [] }));
    backup.characters.push(character);
    backup.sessions.push(session);
    const imported = await ask((engine, backup) => engine.importAll(backup), backup);
    assert.equal(imported.error?.code, 'storage_quota', JSON.stringify(imported));
    const after = await okInPage(page, async (engine) => ({ characters: (await engine.characters.list()).map((c) => c.id), sessions: (await engine.sessions.list()).map((s) => s.id) }));
    assert.deepEqual(after, { characters: [setup.characterId], sessions: [setup.sessionId] });
    // Room again: the same import and the same message go through.
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: h.base });
    const counts = await okInPage(page, (engine, backup) => engine.importAll(backup), backup);
    assert.deepEqual([counts.characters, counts.sessions], [2, 2]);
    await page.evaluate(() => window.engine.dispose());
  } finally {
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: h.base }).catch(() => {});
    await context.close();
  }
});

test('a corrupt record in each object store: list, export and wipe work, the bad records are reported', async () => {
  const corrupt = await h.page.evaluate(async (characterId) => {
    const db = await new Promise((ok, no) => {
      const r = indexedDB.open('confidant');
      r.onsuccess = () => ok(r.result);
      r.onerror = () => no(r.error);
    });
    const stores = ['characters', 'sessions', 'records', 'indexes', 'meta'];
    const t = db.transaction(stores, 'readwrite');
    t.objectStore('characters').put({ id: 'bad-character', card: 42 });
    t.objectStore('sessions').put({ id: 'bad-session', characterId, messages: 'not a list' });
    t.objectStore('records').put({ id: 'bad-memory', character_id: characterId, text: 7 });
    t.objectStore('indexes').put('not bytes', characterId);
    t.objectStore('meta').put('eleven', 'schema_version');
    await new Promise((ok, no) => {
      t.oncomplete = ok;
      t.onerror = () => no(t.error);
    });
    db.close();
    return stores;
  }, ids.characterId);
  // A fresh engine reads everything again (the schema version at once).
  await reloadEngine();
  const read = await ok(async (engine, characterId) => {
    const characters = await engine.characters.list();
    const sessions = await engine.sessions.list();
    const memories = await engine.memory.list({ characterId });
    const backup = JSON.parse(await (await engine.exportAll()).text());
    const unreadable = await engine.unreadableRecords();
    return { characters: characters.map((c) => c.id), sessions: sessions.map((s) => s.id), memories: memories.length, backup, unreadable };
  }, ids.characterId);
  assert.ok(read.characters.includes(ids.characterId) && !read.characters.includes('bad-character'));
  assert.ok(read.sessions.includes(ids.sessionId) && !read.sessions.includes('bad-session'));
  assert.ok(read.memories > 0, 'the good memories are listed');
  assert.deepEqual(read.unreadable.map((r) => r.store).sort(), [...corrupt].sort(), JSON.stringify(read.unreadable));
  assert.ok(read.unreadable.every((r) => r.error.length > 0 && r.foundAt > 0));
  assert.equal(read.unreadable.find((r) => r.store === 'sessions').key, 'bad-session');
  assert.deepEqual(JSON.parse(read.unreadable.find((r) => r.store === 'characters').value), { id: 'bad-character', card: 42 }, 'kept as stored');
  assert.equal(read.backup.unreadable.length, corrupt.length, 'the export says so, and carries them');
  assert.ok(read.backup.sessions.some((s) => s.id === ids.sessionId), 'and everything readable');
  // Searching still works (the index is rebuilt from the records).
  const hits = await ok((engine, characterId) => engine.memory.search({ characterId, query: 'the sea', k: 2 }), ids.characterId);
  assert.ok(hits.length > 0);
  const wiped = await ok(async (engine) => {
    await engine.wipe();
    return { characters: await engine.characters.list(), sessions: await engine.sessions.list(), memories: await engine.memory.list(), unreadable: await engine.unreadableRecords() };
  });
  assert.deepEqual(wiped, { characters: [], sessions: [], memories: [], unreadable: [] });
});

test('a wasm trap: the call fails with code internal, the worker restarts from the cached model, the chat continues', async () => {
  await h.page.evaluate(() => window.engine.dispose());
  await h.page.evaluate(async (url) => {
    window.restarts = [];
    window.engine = await window.pkg.Confidant.create({ model: { url }, contextLength: 1024, backend: 'cpu', onRestart: (cause) => window.restarts.push(cause.code) });
  }, MODEL_URL);
  const session = await ok(async (engine, card) => {
    const character = await engine.characters.import(card);
    const s = await engine.sessions.create({ characterId: character.id, userName: 'Sam' });
    return s.id;
  }, CARD);
  const worker = h.page.workers().filter((w) => /worker\.js/.test(w.url())).at(-1);
  assert.ok(worker, 'the engine worker');
  const downloadsBefore = served.filter((p) => p.endsWith('.gguf')).length;
  await worker.evaluate(() => {
    self.__confidantTrapNext = true;
  });
  const trapped = await inPage(h.page, (engine) => engine.characters.list());
  assert.equal(trapped.error?.code, 'internal', JSON.stringify(trapped));
  // Asked at once, while the new worker loads: it waits for it, then is answered.
  const turn = await ok(async (engine, id) => {
    const s = await engine.sessions.get(id);
    const done = await s.send('Are you still there?', { max_tokens: 4, temperature: 0 });
    return { done, history: await s.history(), restarts: window.restarts };
  }, session);
  assert.deepEqual(turn.restarts, ['internal']);
  assert.deepEqual(turn.history.map((m) => m.role).slice(0, 2), ['assistant', 'user']);
  assert.equal(turn.history.filter((m) => m.text === 'Are you still there?').length, 1);
  assert.equal(served.filter((p) => p.endsWith('.gguf')).length, downloadsBefore, 'the model came from the cache');
});

test('a newer version upgrading the database while this tab is open is not blocked; this tab then says to reload', async () => {
  const upgraded = await h.page.evaluate(
    () =>
      new Promise((ok) => {
        // What a newer release of the site does in another tab: open with a higher version.
        const r = indexedDB.open('confidant', 1000);
        r.onupgradeneeded = () => r.result.createObjectStore('from-the-future');
        r.onsuccess = () => {
          r.result.close();
          ok('upgraded');
        };
        r.onblocked = () => ok('blocked');
        r.onerror = () => ok(`error: ${r.error}`);
      }),
  );
  assert.equal(upgraded, 'upgraded');
  const after = await inPage(h.page, (engine) => engine.characters.list());
  assert.equal(after.error?.code, 'storage');
  assert.match(after.error.message, /reload/);
});

test('an older tab that keeps the database open blocks the upgrade: the page is told (blocked), and storage goes on once it closes', async () => {
  const result = await h.page.evaluate(async () => {
    const name = 'held-by-an-older-tab';
    // What a release without the versionchange handler does: hold the database at an older version.
    const old = await new Promise((ok, no) => {
      const r = indexedDB.open(name, 1);
      r.onsuccess = () => ok(r.result);
      r.onerror = () => no(r.error);
    });
    const stages = [];
    const engine = await window.pkg.Confidant.open({ database: name, backend: 'cpu', onProgress: (p) => stages.push(p.stage) });
    const listed = engine.characters.list();
    for (let i = 0; i < 100 && !stages.includes('blocked'); i++) await new Promise((r) => setTimeout(r, 50));
    const toldBeforeClose = stages.includes('blocked');
    old.close();
    const characters = await listed;
    await engine.dispose();
    return { toldBeforeClose, characters: characters.length };
  });
  assert.deepEqual(result, { toldBeforeClose: true, characters: 0 });
});
