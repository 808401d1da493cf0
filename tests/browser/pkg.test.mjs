// The npm package (pkg/dist, built by `npm run build` in pkg/) in headless Chromium: loading with
// progress and caching, the OpenAI-style API, streaming, aborts, queueing, errors, resumable
// downloads. The page is cross-origin isolated and the only WebGPU adapter is SwiftShader (a
// software renderer), so `backend: 'auto'` runs the multi-threaded CPU build; one test asks for
// WebGPU, one runs without WebGPU and without isolation (the single-threaded CPU build).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agreedSteps, isolation, launch, modelPath, nativeGreedy, root } from './harness.mjs';

const MODEL_URL = '/models/SmolLM2-135M-Instruct-Q4_1.gguf';
const MODEL_SHA256 = readFileSync(join(root, 'models/checksums.sha256'), 'utf8')
  .split('\n')
  .find((l) => l.endsWith(' SmolLM2-135M-Instruct-Q4_1.gguf'))
  .split(' ')[0];
const PROMPT = 'The capital of France is';
// Greedy tokens the CPU builds must agree on (5: the reference's sixth is a near-tie).
const AGREED = agreedSteps(PROMPT);

let h;
let fixtures;
const requests = [];
let cutNext = null;

function patchArchitecture(bytes, from, to) {
  // The value of general.architecture: key, type 8 (string), length, text.
  const key = Buffer.from('general.architecture');
  const at = bytes.indexOf(key);
  const valueAt = at + key.length + 4 + 8;
  assert.equal(bytes.subarray(valueAt, valueAt + from.length).toString(), from);
  Buffer.from(to).copy(bytes, valueAt);
}

before(async () => {
  fixtures = mkdtempSync(join(tmpdir(), 'confidant-pkg-'));
  const model = readFileSync(modelPath);
  writeFileSync(join(fixtures, 'truncated.gguf'), model.subarray(0, 3 << 20));
  writeFileSync(join(fixtures, 'not-a-model.gguf'), 'This is a text file, not a GGUF model.\n'.repeat(100));
  const unsupported = Buffer.from(model);
  patchArchitecture(unsupported, 'llama', 'mamba');
  writeFileSync(join(fixtures, 'unsupported.gguf'), unsupported);
  copyFileSync(modelPath, join(fixtures, 'copy.gguf'));

  h = await launch({
    needs: ['pkg/dist/wasm/confidant_web_bg.wasm', 'pkg/dist/index.js'],
    serverOptions: {
      roots: [
        ['/confidant/', join(root, 'pkg/dist')],
        ['/models/', join(root, 'models')],
        ['/fixtures/', fixtures],
        ['/', join(root, 'tests/browser/pages')],
      ],
      headers: isolation,
      onRequest: (req) => requests.push({ method: req.method, url: req.url, range: req.headers.range ?? null }),
      // Break the connection once, where a test asks for it.
      cutAfter: (req) => {
        if (cutNext && req.url === cutNext.url && !req.headers.range) {
          const bytes = cutNext.bytes;
          cutNext = null;
          return bytes;
        }
        return null;
      },
    },
  });
  await h.page.goto(`${h.base}/pkg.html`);
  await h.page.waitForFunction(() => window.pkgReady === true);
});

after(async () => {
  if (h) await h.close();
  if (fixtures) rmSync(fixtures, { recursive: true, force: true });
});

/** Create an engine in the page, returning the error's code and message when it fails. */
async function tryCreate(model, extra = {}) {
  return h.page.evaluate(
    async ({ model, extra }) => {
      const progress = [];
      try {
        const engine = await window.pkg.Confidant.create({ model, ...extra, onProgress: (p) => progress.push(p) });
        await engine.dispose();
        return { ok: true, progress };
      } catch (e) {
        return { ok: false, code: e.code, message: e.message, isConfidantError: e instanceof window.pkg.ConfidantError, progress };
      }
    },
    { model, extra },
  );
}

test('loads with progress; greedy text equals the native CLI; the main thread keeps running', async () => {
  const native = nativeGreedy(PROMPT, AGREED);
  const r = await h.page.evaluate(
    async ({ url, prompt, agreed }) => {
      const { Confidant } = window.pkg;
      const stages = [];
      const engine = await Confidant.create({ model: { url }, onProgress: (p) => stages.push(p.stage) });
      window.engine = engine;
      const framesBefore = window.pkg.frames();
      const started = performance.now();
      const c = await engine.completions.create({ prompt, max_tokens: agreed, temperature: 0 });
      const frames = window.pkg.frames() - framesBefore;
      return { stages: [...new Set(stages)], info: engine.info(), c, frames, ms: performance.now() - started, cores: navigator.hardwareConcurrency };
    },
    { url: MODEL_URL, prompt: PROMPT, agreed: AGREED },
  );
  assert.deepEqual(r.stages, ['compile', 'download', 'cache', 'load']);
  // SwiftShader is a software renderer: 'auto' takes the CPU, on threads (the page is isolated).
  assert.equal(r.info.backend, 'cpu');
  assert.match(r.info.backendReason, /^the only WebGPU adapter, SwiftShader, is a software renderer/);
  // The adapter it did not use is named for people, and said to be a software one.
  assert.deepEqual(r.info.gpu, { name: 'SwiftShader (software)', software: true });
  assert.equal(r.info.model.displayName, 'SmolLM2 135M Instruct');
  // Speed measured after loading, on a short warm-up.
  assert.ok(r.info.speed.decodeTokS > 1 && r.info.speed.prefillTokS > 1, JSON.stringify(r.info.speed));
  console.log(`measured at load: ${r.info.speed.prefillTokS.toFixed(0)} tok/s reading, ${r.info.speed.decodeTokS.toFixed(1)} tok/s writing; this generation: ${r.c.timings.decode_tok_s.toFixed(1)}`);
  assert.equal(r.info.threads, Math.min(8, r.cores));
  assert.equal(r.info.adapter.deviceType, 'cpu');
  assert.equal(r.info.model.arch, 'llama');
  assert.equal(r.info.model.quant, 'Q4_1');
  assert.equal(r.info.model.contextLength, 8192);
  assert.ok(r.info.model.params > 100e6 && r.info.model.params < 200e6, `params ${r.info.model.params}`);
  assert.equal(r.c.object, 'text_completion');
  assert.equal(r.c.choices[0].text, native.text);
  assert.equal(r.c.choices[0].finish_reason, 'length');
  const { cached_tokens } = r.c.usage;
  assert.deepEqual(r.c.usage, { prompt_tokens: native.prompt_tokens.length, cached_tokens, completion_tokens: AGREED, total_tokens: native.prompt_tokens.length + AGREED });
  assert.ok(r.c.timings.decode_tok_s > 0);
  // The load's warm-up prompt shares at most its first tokens with this one: the rest was run.
  assert.ok(cached_tokens < native.prompt_tokens.length);
  assert.equal(r.c.timings.prefilled_tokens + cached_tokens, native.prompt_tokens.length);
  assert.ok(r.c.timings.prefill_seconds > 0 && r.c.timings.decode_seconds > 0, JSON.stringify(r.c.timings));
  // requestAnimationFrame kept firing while the worker computed (several frames a second).
  assert.ok(r.frames >= (r.ms / 1000) * 5, `${r.frames} frames in ${Math.round(r.ms)} ms`);
  console.log(`greedy ${JSON.stringify(r.c.choices[0].text)} in ${Math.round(r.ms)} ms, ${r.frames} frames meanwhile`);
});

test('streaming gives the same text as non-streaming, for completions and chat', async () => {
  const r = await h.page.evaluate(async (prompt) => {
    const engine = window.engine;
    const plain = await engine.completions.create({ prompt, max_tokens: 4, temperature: 0 });
    const chunks = [];
    for await (const chunk of await engine.completions.create({ prompt, max_tokens: 4, temperature: 0, stream: true })) chunks.push(chunk);
    const messages = [{ role: 'user', content: 'Say hello.' }];
    const chat = await engine.chat.completions.create({ messages, max_tokens: 3, temperature: 0 });
    const deltas = [];
    for await (const chunk of await engine.chat.completions.create({ messages, max_tokens: 3, temperature: 0, stream: true })) deltas.push(chunk);
    return { plain, chunks, chat, deltas };
  }, PROMPT);
  assert.equal(r.chunks.map((c) => c.choices[0].text).join(''), r.plain.choices[0].text);
  const last = r.chunks.at(-1);
  assert.equal(last.choices[0].finish_reason, 'length');
  assert.equal(last.usage.completion_tokens, 4);
  assert.ok(r.chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null));
  assert.equal(r.chat.object, 'chat.completion');
  assert.equal(r.chat.choices[0].message.role, 'assistant');
  assert.equal(r.deltas.map((c) => c.choices[0].delta.content ?? '').join(''), r.chat.choices[0].message.content);
  assert.equal(r.deltas[0].choices[0].delta.role, 'assistant');
  assert.equal(r.deltas[0].object, 'chat.completion.chunk');
});

test('anti-repetition options reach the sampler: DRY refuses to extend a copied run, bad values are refused', async () => {
  const r = await h.page.evaluate(async () => {
    const engine = window.engine;
    // The model continues the count by copying it: " eight" follows " seven" once already.
    const prompt = 'one two three four five six seven eight nine ten. one two three four five six seven';
    const plain = await engine.completions.create({ prompt, max_tokens: 1, temperature: 0 });
    const neutral = await engine.completions.create({ prompt, max_tokens: 1, temperature: 0, dry_multiplier: 0, presence_penalty: 0 });
    const dry = await engine.completions.create({ prompt, max_tokens: 1, temperature: 0, dry_multiplier: 2, dry_sequence_breakers: ['\n'] });
    const presence = await engine.completions.create({ prompt, max_tokens: 1, temperature: 0, presence_penalty: 30 });
    const codes = [];
    for (const bad of [{ dry_base: 0.5, dry_multiplier: 1 }, { presence_penalty: Number.NaN }, { dry_penalty_last_n: -2, dry_multiplier: 1 }]) {
      await engine.completions.create({ prompt, max_tokens: 1, ...bad }).catch((e) => codes.push(e.code));
    }
    return { plain: plain.choices[0].text, neutral: neutral.choices[0].text, dry: dry.choices[0].text, presence: presence.choices[0].text, codes };
  });
  assert.equal(r.plain, ' eight', 'without penalties the model copies the count');
  assert.equal(r.neutral, r.plain, 'completions default to no penalties');
  assert.notEqual(r.dry, ' eight', 'DRY penalises extending the copied run');
  assert.notEqual(r.presence, ' eight', 'a large presence penalty rules out a token already in the prompt');
  assert.deepEqual(r.codes, ['bad_request', 'bad_request', 'bad_request']);
});

test('abort stops a stream within a token and the next call succeeds', async () => {
  const r = await h.page.evaluate(async (prompt) => {
    const engine = window.engine;
    const controller = new AbortController();
    const seen = [];
    let error = null;
    try {
      for await (const chunk of await engine.completions.create({ prompt, max_tokens: 40, temperature: 0, stream: true, signal: controller.signal })) {
        seen.push(chunk.choices[0].text);
        if (seen.length === 2) controller.abort();
      }
    } catch (e) {
      error = { code: e.code, message: e.message };
    }
    // A non-streaming call aborted by its signal rejects the same way (long enough that even
    // the CPU path is still generating when the abort arrives).
    const second = new AbortController();
    const pending = engine.completions.create({ prompt, max_tokens: 400, ignore_eos: true, temperature: 0, signal: second.signal });
    setTimeout(() => second.abort(), 20);
    let secondError = null;
    await pending.catch((e) => (secondError = e.code));
    const after = await engine.completions.create({ prompt, max_tokens: 2, temperature: 0 });
    return { seen, error, secondError, after: after.choices[0].text };
  }, PROMPT);
  assert.equal(r.error?.code, 'aborted');
  assert.ok(r.seen.length <= 3, `${r.seen.length} chunks arrived after aborting at 2`);
  assert.equal(r.secondError, 'aborted');
  assert.ok(r.after.startsWith(' Paris'), r.after);
});

test('a long prompt is read in chunks: progress events before the first chunk, and an abort lands between them', async () => {
  const r = await h.page.evaluate(async () => {
    const engine = window.engine;
    const prompt = 'The lighthouse keeper climbed the stairs every evening to light the lamp. '.repeat(30);
    const stream = await engine.completions.create({ prompt, max_tokens: 3, temperature: 0, cache_prompt: false, stream: true });
    // Everything in arrival order: progress events and chunks.
    const order = [];
    const listener = (e) => order.push({ done: e.done, total: e.total, isEvent: e instanceof window.pkg.PromptProgressEvent });
    stream.addEventListener('progress', listener);
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      order.push({ chunk: chunk.choices[0].text });
      text += chunk.choices[0].text;
      usage = chunk.usage ?? usage;
    }
    const plain = await engine.completions.create({ prompt, max_tokens: 3, temperature: 0, cache_prompt: false });

    // Aborted after the second report: no chunk comes, and the engine goes on working.
    const controller = new AbortController();
    const aborted = await engine.completions.create({ prompt, max_tokens: 3, temperature: 0, cache_prompt: false, stream: true, signal: controller.signal });
    let reports = 0;
    aborted.addEventListener('progress', () => ++reports === 2 && controller.abort());
    const chunks = [];
    let error = null;
    try {
      for await (const chunk of aborted) chunks.push(chunk);
    } catch (e) {
      error = e.code;
    }
    // What the aborted call left in the cache: the chunks read before the abort, not the prompt.
    const resumed = await engine.completions.create({ prompt, max_tokens: 1, temperature: 0 });
    const kept = resumed.usage.prompt_tokens - resumed.timings.prefilled_tokens;
    const after = await engine.completions.create({ prompt: 'The capital of France is', max_tokens: 2, temperature: 0 });
    return { order, text, usage, plain: plain.choices[0].text, reports, chunks: chunks.length, error, kept, after: after.choices[0].text };
  });
  const progress = r.order.filter((o) => 'done' in o);
  const firstChunk = r.order.findIndex((o) => 'chunk' in o);
  const total = r.usage.prompt_tokens;
  assert.ok(total > 5 * 64, `a prompt of ${total} tokens`);
  // From 0, one report per chunk of 64 but the last (read together with the first token).
  assert.deepEqual(progress.map((p) => [p.done, p.total]), Array.from({ length: Math.floor((total - 1) / 64) + 1 }, (_, i) => [64 * i, total]));
  assert.ok(progress.every((p) => p.isEvent));
  assert.equal(firstChunk, progress.length, 'every report comes before the first chunk');
  assert.equal(r.text, r.plain, 'reading in chunks changes nothing in the text');
  assert.equal(r.error, 'aborted');
  assert.equal(r.chunks, 0, 'the abort landed before the first token');
  assert.equal(r.reports, 2, 'no report after the abort');
  assert.ok(r.kept % 64 === 0 && r.kept >= 64 && r.kept < total - 64, `the engine stopped between chunks: ${r.kept} of ${total} tokens read`);
  assert.ok(r.after.startsWith(' Paris'), r.after);
});

test('calls made while one runs wait their turn', async () => {
  const r = await h.page.evaluate(async () => {
    const engine = window.engine;
    const opts = { max_tokens: 3, temperature: 0, cache_prompt: false };
    const [a, b] = await Promise.all([
      engine.completions.create({ prompt: 'Once upon a time', ...opts }),
      engine.completions.create({ prompt: 'The capital of France is', ...opts }),
    ]);
    const aAlone = await engine.completions.create({ prompt: 'Once upon a time', ...opts });
    const bAlone = await engine.completions.create({ prompt: 'The capital of France is', ...opts });
    return [a, b, aAlone, bAlone].map((c) => c.choices[0].text);
  });
  assert.equal(r[0], r[2]);
  assert.equal(r[1], r[3]);
});

test('bad requests are ConfidantErrors with code bad_request', async () => {
  const r = await h.page.evaluate(async () => {
    const engine = window.engine;
    const codes = [];
    for (const request of [{ prompt: 5 }, { prompt: 'x', max_tokens: -1 }, { prompt: 'x', top_p: 3 }]) {
      try {
        await engine.completions.create(request);
        codes.push('no error');
      } catch (e) {
        codes.push(e instanceof window.pkg.ConfidantError ? e.code : `not a ConfidantError: ${e}`);
      }
    }
    try {
      await engine.chat.completions.create({ messages: [] });
    } catch (e) {
      codes.push(e.code);
    }
    try {
      await window.pkg.Confidant.create({ model: {} });
    } catch (e) {
      codes.push(e.code);
    }
    // Refused before anything is sent: the loaded model stays.
    try {
      await engine.loadModel({ model: { url: '/models/none.gguf' }, gpuPrefill: 'fast' });
    } catch (e) {
      codes.push(e.code);
    }
    return codes;
  });
  assert.deepEqual(r, ['bad_request', 'bad_request', 'bad_request', 'bad_request', 'bad_request', 'bad_request']);
});

test('broken files fail with model_format, unknown architectures with unsupported_model, and the page stays usable', async () => {
  const truncated = await tryCreate({ url: '/fixtures/truncated.gguf' });
  assert.equal(truncated.code, 'model_format', truncated.message);
  assert.ok(truncated.isConfidantError);
  const text = await tryCreate({ url: '/fixtures/not-a-model.gguf' });
  assert.equal(text.code, 'model_format', text.message);
  const bytes = await h.page.evaluate(async () => {
    try {
      await window.pkg.Confidant.create({ model: { bytes: new Uint8Array(64) } });
    } catch (e) {
      return e.code;
    }
  });
  assert.equal(bytes, 'model_format');

  const unsupported = await tryCreate({ url: '/fixtures/unsupported.gguf' });
  assert.equal(unsupported.code, 'unsupported_model', unsupported.message);
  assert.match(unsupported.message, /architecture "mamba"/);
  // Refused from the header: the download stopped long before the end of the file.
  const downloaded = Math.max(0, ...unsupported.progress.filter((p) => p.stage === 'download').map((p) => p.loaded));
  const size = statSync(join(fixtures, 'unsupported.gguf')).size;
  assert.ok(downloaded < size / 4, `read ${downloaded} of ${size} bytes before refusing`);

  const after = await h.page.evaluate(async () => (await window.engine.completions.create({ prompt: 'Hi', max_tokens: 1, temperature: 0 })).usage.completion_tokens);
  assert.equal(after, 1);
});

test('a reload loads the model from the browser cache with no request for it', async () => {
  await h.page.evaluate(() => window.engine.dispose());
  await h.page.reload();
  await h.page.waitForFunction(() => window.pkgReady === true);
  const before = requests.length;
  const r = await h.page.evaluate(async (url) => {
    const stages = [];
    const engine = await window.pkg.Confidant.create({ model: { url }, onProgress: (p) => stages.push(p.stage) });
    window.engine = engine;
    const c = await engine.completions.create({ prompt: 'The capital of France is', max_tokens: 2, temperature: 0 });
    return { stages: [...new Set(stages)], text: c.choices[0].text, cached: await window.pkg.Confidant.cache.list() };
  }, MODEL_URL);
  const modelRequests = requests.slice(before).filter((q) => q.url === MODEL_URL);
  assert.deepEqual(modelRequests, []);
  assert.ok(!r.stages.includes('download'), r.stages.join());
  assert.ok(r.text.startsWith(' Paris'));
  const entry = r.cached.find((c) => c.url.endsWith(MODEL_URL));
  assert.equal(entry.sha256, MODEL_SHA256);
  assert.equal(entry.size, statSync(modelPath).size);
});

test('an interrupted download resumes with a Range request', async () => {
  const url = '/fixtures/copy.gguf';
  cutNext = { url, bytes: 40 << 20 };
  const before = requests.length;
  const first = await tryCreate({ url });
  assert.equal(first.code, 'model_fetch', first.message);
  const second = await tryCreate({ url });
  assert.ok(second.ok, second.message);
  const gets = requests.slice(before).filter((q) => q.url === url && q.method === 'GET');
  assert.equal(gets.length, 2);
  const resumedFrom = Number(/^bytes=(\d+)-$/.exec(gets[1].range ?? '')?.[1]);
  // Bytes are stored in 8 MiB batches; how many of the 40 MiB sent arrive before the broken
  // connection is noticed varies, but at least one batch was kept.
  assert.ok(resumedFrom >= 8 << 20 && resumedFrom <= 40 << 20, `resumed from ${gets[1].range}`);
  const resumedProgress = second.progress.find((p) => p.stage === 'download');
  assert.ok(resumedProgress.loaded > resumedFrom, 'progress counts the bytes already stored');
});

test('a changed file is detected: revalidate re-downloads it, a wrong sha256 is refused', async () => {
  const url = '/fixtures/copy.gguf';
  const count = () => requests.filter((q) => q.url === url && q.method === 'GET').length;
  let before = count();
  assert.ok((await tryCreate({ url, revalidate: true })).ok);
  assert.equal(count() - before, 0, 'unchanged: served from the cache');
  const later = new Date(Date.now() + 5000);
  utimesSync(join(fixtures, 'copy.gguf'), later, later);
  before = count();
  assert.ok((await tryCreate({ url, revalidate: true })).ok);
  assert.equal(count() - before, 1, 'changed on the server: downloaded again');

  const wrong = await tryCreate({ url: '/fixtures/copy.gguf', sha256: '0'.repeat(64) });
  assert.equal(wrong.code, 'model_fetch');
  assert.match(wrong.message, /SHA-256/);

  const deleted = await h.page.evaluate(async (u) => {
    const removed = await window.pkg.Confidant.cache.delete(u);
    return { removed, left: (await window.pkg.Confidant.cache.list()).map((c) => new URL(c.url).pathname) };
  }, url);
  assert.equal(deleted.removed, false, 'the refused download already removed its copy');
  assert.ok(!deleted.left.includes(url));
});

test("backend: 'webgpu' runs on the GPU adapter even when it is a software one; a lost device restarts the engine", async () => {
  await h.page.evaluate(
    async ({ url, prompt }) => {
      window.restarts = [];
      // No warm-up timing: on SwiftShader it costs ~15 s per load, and this test loads twice.
      window.gpuEngine = await window.pkg.Confidant.create({ model: { url }, backend: 'webgpu', measureSpeed: false, onRestart: (cause) => window.restarts.push(cause.code) });
      window.gpuFirst = await window.gpuEngine.completions.create({ prompt, max_tokens: 2, temperature: 0 });
    },
    { url: MODEL_URL, prompt: PROMPT },
  );
  // The device goes away, as after a driver reset or a GPU unplugged.
  const worker = h.page.workers().filter((w) => /worker\.js/.test(w.url())).at(-1);
  assert.equal(await worker.evaluate(() => self.__confidantDevices.map((d) => d.destroy()).length), 1);
  // A call already sent would fail with device_lost; the page learns of the loss and restarts.
  await h.page.waitForFunction(() => window.restarts.length > 0, null, { timeout: 300_000 });
  const r = await h.page.evaluate(
    async (prompt) => {
      const engine = window.gpuEngine;
      // The restarted engine (the model from the cache) answers the next request.
      const again = await engine.completions.create({ prompt, max_tokens: 2, temperature: 0 });
      const info = engine.info();
      await engine.dispose();
      return { info, text: window.gpuFirst.choices[0].text, again: again.choices[0].text, restarts: window.restarts };
    },
    PROMPT,
  );
  assert.deepEqual(r.restarts, ['device_lost']);
  assert.equal(r.again, r.text, 'the same reply after the restart');
  assert.equal(r.info.backend, 'webgpu');
  assert.equal(r.info.threads, 1);
  assert.equal(r.info.backendReason, 'asked for WebGPU, on SwiftShader (software)');
  assert.deepEqual(r.info.gpu, { name: 'SwiftShader (software)', software: true });
  assert.equal(r.info.speed, null, 'measureSpeed: false skips the warm-up');
  assert.equal(r.text, nativeGreedy(PROMPT, 2, { backend: 'gpu' }).text);
  // Read from the browser's cache a tensor at a time onto the GPU: the file never passed
  // through wasm memory whole (its high-water mark, with the engine's code, tokenizer and
  // working buffers, stays under the file's size; read whole it was the file and all of those).
  const fileBytes = statSync(modelPath).size;
  assert.ok(r.info.memory.weights > fileBytes * 0.9 && r.info.memory.weights <= fileBytes, JSON.stringify(r.info.memory));
  assert.ok(r.info.memory.wasm < fileBytes, `wasm memory ${r.info.memory.wasm} bytes for a ${fileBytes}-byte model`);
  console.log(`WebGPU load of a ${fileBytes}-byte model: wasm memory ${r.info.memory.wasm} bytes, largest tensor ${r.info.memory.largestTensor}`);
});

test('without WebGPU and without isolation: auto runs single-threaded on the CPU, webgpu fails with webgpu_unavailable', async () => {
  const plain = await launch({ needs: ['pkg/dist/index.js'], webgpu: false, serverOptions: { roots: [['/confidant/', join(root, 'pkg/dist')], ['/models/', join(root, 'models')], ['/', join(root, 'tests/browser/pages')]] } });
  try {
    await plain.page.goto(`${plain.base}/pkg.html`);
    await plain.page.waitForFunction(() => window.pkgReady === true);
    const r = await plain.page.evaluate(
      async ({ url, prompt, agreed }) => {
        let webgpu;
        try {
          await window.pkg.Confidant.create({ model: { url }, backend: 'webgpu' });
          webgpu = { code: 'no error' };
        } catch (e) {
          webgpu = { code: e.code, message: e.message };
        }
        const engine = await window.pkg.Confidant.create({ model: { url } });
        const c = await engine.completions.create({ prompt, max_tokens: agreed, temperature: 0 });
        const info = engine.info();
        await engine.dispose();
        return { webgpu, info, text: c.choices[0].text, isolated: crossOriginIsolated };
      },
      { url: MODEL_URL, prompt: PROMPT, agreed: AGREED },
    );
    assert.equal(r.webgpu.code, 'webgpu_unavailable');
    assert.match(r.webgpu.message, /Chrome/);
    assert.equal(r.isolated, false);
    assert.equal(r.info.backend, 'cpu');
    assert.equal(r.info.threads, 1);
    assert.match(r.info.backendReason, /no WebGPU adapter.*one thread \(the page is not cross-origin isolated\)/);
    assert.equal(r.info.gpu, null);
    assert.equal(r.text, nativeGreedy(PROMPT, AGREED).text);
  } finally {
    await plain.close();
  }
});

test('open without a model: cards, chats and backups work with no request for a model; replies wait for loadModel', async () => {
  await h.page.goto(`${h.base}/pkg.html`);
  await h.page.waitForFunction(() => window.pkgReady === true);
  const from = requests.length;
  const stored = await h.page.evaluate(async () => {
    const { Confidant } = window.pkg;
    const engine = (window.openEngine = await Confidant.open({ database: 'open-without-model' }));
    const card = { spec: 'chara_card_v2', spec_version: '2.0', data: { name: 'Ada', description: 'A clockmaker.', personality: '', scenario: '', first_mes: 'Tick, {{user}}.', mes_example: '', alternate_greetings: [] } };
    const character = await engine.characters.import(card);
    const session = await engine.sessions.create({ characterId: character.id, userName: 'Sam' });
    window.openSession = session;
    const backup = JSON.parse(await (await engine.exportAll()).text());
    const codes = {};
    const attempts = {
      info: () => engine.info(),
      completion: () => engine.completions.create({ prompt: 'Hi', max_tokens: 1 }),
      send: () => session.send('Hello'),
      search: () => engine.memory.search({ characterId: character.id, query: 'clocks' }),
    };
    for (const [name, attempt] of Object.entries(attempts)) {
      try {
        await attempt();
        codes[name] = null;
      } catch (e) {
        codes[name] = e.code;
      }
    }
    return { loaded: engine.modelLoaded, history: (await session.history()).map((m) => m.text), characters: backup.characters.length, sessions: backup.sessions.length, codes };
  });
  assert.deepEqual(stored, {
    loaded: false,
    history: ['Tick, Sam.'],
    characters: 1,
    sessions: 1,
    codes: { info: 'model_not_loaded', completion: 'model_not_loaded', send: 'model_not_loaded', search: 'model_not_loaded' },
  });
  assert.deepEqual(requests.slice(from).filter((r) => r.url.startsWith('/models/')), [], 'nothing asked of models/ before loadModel');

  const loaded = await h.page.evaluate(async (url) => {
    const engine = window.openEngine;
    const info = await engine.loadModel({ model: { url }, measureSpeed: false });
    const completion = await engine.completions.create({ prompt: 'The capital of France is', max_tokens: 1, temperature: 0 });
    const sameInfo = engine.info().model.displayName === info.model.displayName;
    await engine.wipe();
    const left = (await engine.characters.list()).length;
    await engine.dispose();
    return { loaded: engine.modelLoaded, backend: info.backend, threaded: /\d+ threads/.test(info.backendReason), tokens: completion.usage.completion_tokens, sameInfo, left };
  }, MODEL_URL);
  // The page is cross-origin isolated: the storage calls above ran on the multi-threaded build,
  // whose futures resume a task later (IndexedDB requests must not depend on resuming at once).
  assert.deepEqual(loaded, { loaded: true, backend: 'cpu', threaded: true, tokens: 1, sameInfo: true, left: 0 });
});

// A GGUF split in parts by llama.cpp's gguf-split (here a synthetic Gemma 3 written in parts of
// 6 tensors by the synth_llama example) loads as one model: from the URL of its first part (the
// others fetched and cached beside it) and from the parts given as files, in any order; the
// same greedy text as the whole file. cache.delete of the first part removes every part.
test('a GGUF split in parts loads as one model, from the URL of its first part and from its files', async () => {
  const example = join(root, 'target/release/examples/synth_llama');
  execFileSync(example, ['gemma3_swa', join(fixtures, 'synth.gguf')], { stdio: 'ignore' });
  execFileSync(example, ['gemma3_swa', join(fixtures, 'synth-split.gguf'), '--split-tensors', '6'], { stdio: 'ignore' });
  const parts = readdirSync(fixtures).filter((f) => /^synth-split-\d{5}-of-\d{5}\.gguf$/.test(f)).sort();
  assert.ok(parts.length > 2, `${parts.length} parts`);
  const r = await h.page.evaluate(
    async ({ parts }) => {
      const { Confidant } = window.pkg;
      const engine = await Confidant.open({ database: 'split-parts' });
      const greedy = async (model) => {
        const info = await engine.loadModel({ model, measureSpeed: false, contextLength: 64 });
        const c = await engine.completions.create({ prompt: 'a b c', max_tokens: 6, temperature: 0, ignore_eos: true });
        return { arch: info.model.arch, params: info.model.params, text: c.choices[0].text };
      };
      const whole = await greedy({ url: '/fixtures/synth.gguf' });
      const fromUrl = await greedy({ url: `/fixtures/${parts[0]}` });
      const cachedParts = (await Confidant.cache.list()).filter((m) => m.url.includes('/fixtures/synth-split-')).length;
      const blobs = await Promise.all(parts.map(async (name) => new File([await (await fetch(`/fixtures/${name}`)).blob()], name)));
      const fromFiles = await greedy({ files: blobs.reverse() });
      await Confidant.cache.delete(`/fixtures/${parts[0]}`);
      const left = (await Confidant.cache.list()).filter((m) => m.url.includes('/fixtures/synth-split-')).length;
      // One part alone, the first or another, is refused with what it is.
      const alone = [];
      for (const name of [parts[0], parts[1]]) {
        try {
          await engine.loadModel({ model: { file: blobs.find((b) => b.name === name) }, measureSpeed: false });
          alone.push(null);
        } catch (e) {
          alone.push(`${e.code}: ${e.message}`);
        }
      }
      await engine.dispose();
      return { whole, fromUrl, fromFiles, cachedParts, left, alone };
    },
    { parts },
  );
  assert.equal(r.whole.arch, 'gemma3');
  assert.deepEqual(r.fromUrl, r.whole);
  assert.deepEqual(r.fromFiles, r.whole);
  assert.equal(r.cachedParts, parts.length, 'every part cached under its own URL');
  assert.equal(r.left, 0, 'deleting the first part deleted them all');
  assert.match(r.alone[0] ?? '', /^model_format: .*part 1 of \d+ of a split model/, 'the first part alone is refused, named');
  assert.match(r.alone[1] ?? '', /^model_format: .*part 2 of \d+ of a split model/, 'a later part alone is refused, named');
});

// On the CPU the weights and the key/value cache live in wasm memory (at most 4 GiB): a model
// that cannot fit is refused before it loads, the message naming the numbers. Here a synthetic
// Gemma 3 whose header claims a context of 2^31 - 1 tokens, asked for all of them. On WebGPU
// the same request needs a key/value buffer per layer larger than the adapter allows in one
// buffer: refused before the device is set up, with the context that would fit.
test('a model whose weights and cache cannot fit in wasm memory, or in one GPU buffer, is refused early, naming the numbers', async () => {
  execFileSync(join(root, 'target/release/examples/synth_llama'), ['gemma3_swa', join(fixtures, 'synth.gguf')], { stdio: 'ignore' });
  const bytes = readFileSync(join(fixtures, 'synth.gguf'));
  const key = Buffer.from('gemma3.context_length');
  const at = bytes.indexOf(key) + key.length;
  assert.equal(bytes.readUInt32LE(at), 4, 'value type u32');
  bytes.writeUInt32LE(2 ** 31 - 1, at + 4);
  writeFileSync(join(fixtures, 'synth-long.gguf'), bytes);
  const r = await h.page.evaluate(async () => {
    const { Confidant } = window.pkg;
    const engine = await Confidant.open({ backend: 'cpu', database: 'too-large' });
    const file = new File([await (await fetch('/fixtures/synth-long.gguf')).blob()], 'synth-long.gguf');
    const attempt = async (contextLength) => {
      try {
        const info = await engine.loadModel({ model: { file }, measureSpeed: false, contextLength });
        return { ok: true, memory: info.memory };
      } catch (e) {
        return { ok: false, code: e.code, message: e.message };
      }
    };
    const huge = await attempt(2 ** 31 - 1);
    const small = await attempt(256);
    await engine.dispose();
    const gpuEngine = await Confidant.open({ backend: 'webgpu', database: 'too-large-gpu' });
    let onGpu;
    try {
      await gpuEngine.loadModel({ model: { file }, measureSpeed: false, contextLength: 2 ** 31 - 1 });
      onGpu = { ok: true };
    } catch (e) {
      onGpu = { ok: false, code: e.code, message: e.message };
    }
    await gpuEngine.dispose();
    const { limits } = await navigator.gpu.requestAdapter();
    return { huge, small, onGpu, bufferLimit: Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize) };
  });
  assert.equal(r.huge.code, 'out_of_memory', JSON.stringify(r.huge));
  assert.match(r.huge.message, /needs \d+ MB for its weights and \d+ MB for its cache at 2147483647 tokens of context, \d+ MB in all; at most 3892 MB is available/);
  // The same file at a sensible context loads, and says what it takes.
  assert.ok(r.small.ok, JSON.stringify(r.small));
  assert.ok(r.small.memory.weights > 0 && r.small.memory.kvCache > 0 && r.small.memory.wasm > r.small.memory.weights, JSON.stringify(r.small.memory));
  // gemma3_swa keeps 1 key/value head of 64 f32 values per position and layer: 256 bytes.
  assert.equal(r.onGpu.code, 'out_of_memory', JSON.stringify(r.onGpu));
  assert.match(r.onGpu.message, /key\/value cache at 2147483647 tokens of context needs \d+ (MB|KB) per layer/);
  assert.ok(r.onGpu.message.includes(`enough for ${Math.floor(r.bufferLimit / 256)} tokens of context`), `${r.onGpu.message} (adapter limit ${r.bufferLimit} bytes)`);
});
