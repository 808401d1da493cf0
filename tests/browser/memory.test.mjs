// engine.memory in headless Chromium: all-MiniLM-L6-v2 on the CPU (wasm SIMD128, what 'auto'
// picks beside SwiftShader) and on WebGPU against the sentence-transformers fixture, records in
// real IndexedDB through add / search / list / update / forget / stats, persistence across a
// reload, and a quota refusal that loses nothing.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch, root, inPage as inPageOf, okInPage, createPkgEngine } from './harness.mjs';

const MODEL_URL = '/models/SmolLM2-135M-Instruct-Q4_1.gguf';
const reference = JSON.parse(readFileSync(join(root, 'crates/memory/tests/fixtures/embedding_reference.json'), 'utf8'));

let h;

/** Run `fn` in the page with the live engine as `window.engine`; errors come back as { code, message }. */
const inPage = (fn, arg) => inPageOf(h.page, fn, arg);
const ok = (fn, arg) => okInPage(h.page, fn, arg);

const createEngine = () => createPkgEngine(h, MODEL_URL, { recordProgress: true });

before(async () => {
  h = await launch({
    needs: ['pkg/dist/wasm/confidant_web_bg.wasm', 'pkg/dist/index.js', 'models/all-MiniLM-L6-v2/model.safetensors'],
    serverOptions: {
      roots: [
        ['/confidant/', join(root, 'pkg/dist')],
        ['/models/', join(root, 'models')],
        ['/', join(root, 'tests/browser/pages')],
      ],
    },
  });
  await createEngine();
});

after(async () => {
  await h?.page.evaluate(() => window.engine?.dispose()).catch(() => {});
  await h?.close();
});

const cosine = (a, b) => {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
};

test('embeddings on the CPU match sentence-transformers, loaded with progress on first use', async () => {
  assert.equal(await h.page.evaluate(() => window.engine.info().backend), 'cpu');
  const sentences = reference.sentences;
  const vectors = await ok((engine, texts) => engine.memory.embed(texts).then((vs) => vs.map((v) => [v.constructor.name, Array.from(v)])), sentences.map((s) => s.text));
  assert.equal(vectors.length, sentences.length);
  sentences.forEach((s, i) => {
    const [type, v] = vectors[i];
    assert.equal(type, 'Float32Array');
    assert.equal(v.length, 384);
    const c = cosine(v, s.embedding);
    assert.ok(c >= 0.999, `${JSON.stringify(s.text)}: cosine ${c}`);
  });
  const progress = await h.page.evaluate(() => window.progress);
  const embedder = progress.filter((p) => p.what === 'embedder');
  assert.ok(embedder.some((p) => p.file === 'model.safetensors' && p.stage === 'download'), JSON.stringify(embedder.slice(0, 5)));
  assert.ok(embedder.some((p) => p.stage === 'load' && p.loaded === p.total && p.total > 80e6));
});

test('embeddings on WebGPU match sentence-transformers', async () => {
  const sentences = reference.sentences.slice(0, 2);
  const vectors = await h.page.evaluate(
    async ({ url, texts }) => {
      const engine = await window.pkg.Confidant.create({ model: { url }, backend: 'webgpu', database: 'webgpu-embeddings' });
      const vs = await engine.memory.embed(texts);
      const backend = engine.info().backend;
      await engine.dispose();
      return { backend, vs: vs.map((v) => Array.from(v)) };
    },
    { url: MODEL_URL, texts: sentences.map((s) => s.text) },
  );
  assert.equal(vectors.backend, 'webgpu');
  sentences.forEach((s, i) => {
    const c = cosine(vectors.vs[i], s.embedding);
    assert.ok(c >= 0.999, `${JSON.stringify(s.text)}: cosine ${c}`);
  });
});

const FACTS = [
  { text: 'I finally adopted a grey kitten last weekend and named her Mochi.', kind: 'user_fact', importance: 0.7 },
  { text: 'I cannot eat peanuts at all, I am seriously allergic to them.', kind: 'user_fact', importance: 0.9 },
  { text: 'The weather has been so grey all week.', kind: 'message' },
  { text: 'I tried baking bread yesterday and it came out flat.', kind: 'message' },
  { text: 'Always answer in English.', kind: 'pinned_note' },
];

test('add, search, list, update, forget and stats on IndexedDB', async () => {
  const added = await ok(
    async (engine, facts) => {
      const out = [];
      for (const f of facts) out.push(await engine.memory.add({ characterId: 'ada', sessionId: 's1', ...f }));
      out.push(await engine.memory.add({ characterId: 'bob', kind: 'user_fact', text: 'My cat is called Mochi too.' }));
      return out;
    },
    FACTS,
  );
  assert.equal(added.length, FACTS.length + 1);
  const [kitten, peanuts, , , note] = added;
  assert.equal(kitten.characterId, 'ada');
  assert.equal(kitten.kind, 'user_fact');
  assert.equal(kitten.embedding.length, 384);
  assert.equal(kitten.importance, 0.7);
  assert.equal(note.pinned, true, 'pinned notes are pinned by default');
  assert.equal(peanuts.pinned, false);
  assert.ok(kitten.createdAt > 1.7e12 && kitten.lastAccessed >= kitten.createdAt);

  const hits = await ok((engine) => engine.memory.search({ characterId: 'ada', query: 'What is my pet called?', k: 3 }));
  assert.equal(hits[0].record.id, kitten.id, JSON.stringify(hits.map((x) => x.record.text)));
  for (const hit of hits) {
    assert.equal(hit.record.characterId, 'ada', 'another character’s memory came back');
    for (const key of ['score', 'relevance', 'recency', 'importance']) assert.equal(typeof hit[key], 'number');
  }
  assert.ok(hits.some((x) => x.record.id === note.id), 'pinned memories are always eligible');
  assert.ok(hits[0].record.lastAccessed >= kitten.lastAccessed);

  const listed = await ok((engine) => engine.memory.list({ characterId: 'ada' }));
  assert.equal(listed.length, FACTS.length);
  const facts = await ok((engine) => engine.memory.list({ characterId: 'ada', kind: 'user_fact' }));
  assert.deepEqual(facts.map((r) => r.id).sort(), [kitten.id, peanuts.id].sort());
  const page = await ok((engine) => engine.memory.list({ characterId: 'ada', limit: 2, offset: 1 }));
  assert.deepEqual(page.map((r) => r.id), listed.slice(1, 3).map((r) => r.id));

  // A new text is embedded again: the old wording no longer finds it first, the new one does.
  const updated = await ok((engine, id) => engine.memory.update(id, { text: 'My favourite way to relax is playing the cello after dinner.', pinned: true }), kitten.id);
  assert.equal(updated.pinned, true);
  assert.ok(cosine(updated.embedding, kitten.embedding) < 0.9, 'the embedding did not change with the text');
  const music = await ok((engine) => engine.memory.search({ characterId: 'ada', query: 'Which musical instrument do I play?', k: 1 }));
  assert.equal(music[0].record.id, kitten.id);

  assert.equal(await ok((engine, id) => engine.memory.forget(id), peanuts.id), true);
  assert.equal(await ok((engine, id) => engine.memory.forget(id), peanuts.id), false);
  const food = await ok((engine) => engine.memory.search({ characterId: 'ada', query: 'What food am I allergic to?', k: 5 }));
  assert.ok(!food.some((x) => x.record.id === peanuts.id), 'a forgotten memory came back');

  const stats = await ok((engine) => engine.memory.stats({ characterId: 'ada' }));
  assert.equal(stats.records, FACTS.length - 1);
  assert.equal(stats.byKind.user_fact, 1);
  assert.equal(stats.pinned, 2);
  assert.ok(stats.bytesUsed > 4 * 2000, `bytesUsed ${stats.bytesUsed}`);
  assert.ok(stats.index && stats.index.fresh + stats.index.hnsw === FACTS.length - 1);
  assert.ok(stats.storage.persisted === null || typeof stats.storage.persisted === 'boolean');
  assert.ok(stats.storage.quota > 0);
});

test('bad requests fail with a code and change nothing', async () => {
  const before = await ok((engine) => engine.memory.stats({ characterId: 'ada' }));
  const badImportance = await inPage((engine) => engine.memory.add({ characterId: 'ada', kind: 'message', text: 'x', importance: 3 }));
  assert.equal(badImportance.error?.code, 'bad_request');
  const badKind = await inPage((engine) => engine.memory.add({ characterId: 'ada', kind: 'gossip', text: 'x' }));
  assert.equal(badKind.error?.code, 'bad_request');
  const noCharacter = await inPage((engine) => engine.memory.search({ query: 'x' }));
  assert.equal(noCharacter.error?.code, 'bad_request');
  const missing = await inPage((engine) => engine.memory.update('no-such-id', { pinned: true }));
  assert.equal(missing.error?.code, 'not_found');
  assert.equal(missing.error?.name, 'ConfidantError');
  const after = await ok((engine) => engine.memory.stats({ characterId: 'ada' }));
  assert.equal(after.records, before.records);
});

test('memories survive a reload', async () => {
  const beforeReload = await ok((engine) => engine.memory.list({ characterId: 'ada' }));
  const searchBefore = await ok((engine) => engine.memory.search({ characterId: 'ada', query: 'Which musical instrument do I play?', k: 2 }));
  await h.page.evaluate(() => window.engine.dispose());
  await createEngine();
  const afterReload = await ok((engine) => engine.memory.list({ characterId: 'ada' }));
  assert.deepEqual(
    afterReload.map((r) => [r.id, r.text, r.pinned]),
    beforeReload.map((r) => [r.id, r.text, r.pinned]),
  );
  const searchAfter = await ok((engine) => engine.memory.search({ characterId: 'ada', query: 'Which musical instrument do I play?', k: 2 }));
  assert.deepEqual(searchAfter.map((x) => x.record.id), searchBefore.map((x) => x.record.id));
  // Only the query was embedded since the reload: the memories came back from storage as they were.
  const stats = await ok((engine) => engine.memory.stats({ characterId: 'ada' }));
  assert.equal(stats.embeddedTexts, 1);
  const bob = await ok((engine) => engine.memory.list({ characterId: 'bob' }));
  assert.equal(bob.length, 1);
});

test('two tabs writing at once lose nothing and see each other’s memories', async () => {
  const second = await h.page.context().newPage();
  try {
    await second.goto(`${h.base}/pkg.html`);
    await second.waitForFunction(() => window.pkgReady === true);
    await second.evaluate(async (url) => {
      window.engine = await window.pkg.Confidant.create({ model: { url } });
      await window.engine.memory.list({ characterId: 'carol' }); // load the embedder before the race
    }, MODEL_URL);
    const write = (page, tab) =>
      page.evaluate(
        (tab) => Promise.all([1, 2, 3].map((i) => window.engine.memory.add({ characterId: 'carol', kind: 'message', text: `Message ${i} from tab ${tab}.` }))),
        tab,
      );
    await ok((engine) => engine.memory.list({ characterId: 'carol' }));
    await Promise.all([write(h.page, 'one'), write(second, 'two')]);
    const texts = (records) => records.map((r) => r.text).sort();
    const expected = ['one', 'two'].flatMap((tab) => [1, 2, 3].map((i) => `Message ${i} from tab ${tab}.`)).sort();
    // Each tab hears of the other's writes (BroadcastChannel) and reads them from IndexedDB.
    const eventually = async (read) => {
      let seen = [];
      for (let i = 0; i < 40 && seen.length < expected.length; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 250));
        seen = texts(await read());
      }
      return seen;
    };
    assert.deepEqual(await eventually(() => ok((engine) => engine.memory.list({ characterId: 'carol' }))), expected);
    assert.deepEqual(await eventually(() => second.evaluate(() => window.engine.memory.list({ characterId: 'carol' }))), expected);
    await second.evaluate(() => window.engine.dispose());
  } finally {
    await second.close();
  }
});

test('a write the quota refuses fails with storage_quota and changes nothing', async () => {
  // A fresh profile: Chromium's IndexedDB keeps an estimate of the room left once it has
  // written, so the refusal is checked where no write has happened yet. (That a failed batch
  // leaves earlier records as they were is tested natively: crates/memory/tests/memory.rs.)
  const context = await h.browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  const origin = h.base;
  try {
    await page.goto(`${h.base}/pkg.html`);
    await page.waitForFunction(() => window.pkgReady === true);
    await page.evaluate(async (url) => {
      window.engine = await window.pkg.Confidant.create({ model: { url } });
      await window.engine.memory.embed(['load the embedder first']);
    }, MODEL_URL);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 1024 });
    const refused = await page.evaluate(() =>
      window.engine.memory.add({ characterId: 'dan', kind: 'message', text: 'This one will not fit.' }).then(
        () => null,
        (e) => ({ code: e.code, message: e.message }),
      ),
    );
    assert.equal(refused?.code, 'storage_quota', JSON.stringify(refused));
    await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    assert.deepEqual(await page.evaluate(() => window.engine.memory.list({ characterId: 'dan' })), []);
    // Usable again once there is room.
    const added = await page.evaluate(() => window.engine.memory.add({ characterId: 'dan', kind: 'message', text: 'Room again.' }));
    assert.equal(added.text, 'Room again.');
    assert.equal((await page.evaluate(() => window.engine.memory.list({ characterId: 'dan' }))).length, 1);
    await page.evaluate(() => window.engine.dispose());
  } finally {
    await context.close();
  }
});
