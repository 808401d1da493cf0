// Memory benchmark in the browser (not a test): embeddings/s through the npm package's
// `engine.memory.embed` (all-MiniLM-L6-v2 on `--backend`, default the CPU on every core of a
// cross-origin isolated page; `--no-isolation` for one thread), then the HNSW index in wasm — build time,
// search p50/p99 and recall@10 against an exact scan, index bytes per record — with the same
// workload as the native `memory_bench` example (`memory::bench`). Prints JSON lines.
//
//   node tests/bench/memory-bench.mjs [--sizes 1000,10000,100000] [--queries 200] [--no-embed] [--no-index]
//       [--backend cpu|webgpu|auto] [--no-isolation]
//
// The index part runs in a module worker (a build of 100k records takes minutes and would
// block a page).
//
// On SwiftShader the embedding part alone takes about 15 minutes (≈0.3 embeddings/s). Run it
// without a short `timeout`: a SIGTERM makes Playwright close the browser, and the pending call
// then fails with "Target page, context or browser has been closed" (no crash involved).

import { join } from 'node:path';
import { isolation, launch, root } from '../browser/harness.mjs';

const value = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const sizes = process.argv.includes('--no-index') ? [] : value('--sizes', '1000,10000,100000').split(',').map(Number);
const queries = Number(value('--queries', '200'));
const embed = !process.argv.includes('--no-embed');
const backend = value('--backend', 'cpu');
const headers = process.argv.includes('--no-isolation') ? {} : isolation;

const h = await launch({
  needs: ['pkg/dist/index.js', 'pkg/dist/wasm/confidant_web_bg.wasm', 'models/all-MiniLM-L6-v2/model.safetensors'],
  serverOptions: { headers, roots: [['/confidant/', join(root, 'pkg/dist')], ['/models/', join(root, 'models')], ['/', join(root, 'tests/browser/pages')]] },
});
h.page.setDefaultTimeout(0);
h.page.on('crash', () => console.error('the page crashed'));
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.once(signal, () => console.error(`interrupted by ${signal}: the browser is being closed, so the running step will fail`));
}
try {
  console.log(JSON.stringify({ browser: await h.browser.version() }));
  await h.page.goto(`${h.base}/pkg.html`);
  await h.page.waitForFunction(() => window.pkgReady === true);
  if (embed) {
    const result = await h.page.evaluate(async (backend) => {
      const engine = await window.pkg.Confidant.create({ model: { url: '/models/SmolLM2-135M-Instruct-Q4_1.gguf' }, backend });
      const words = ['I', 'really', 'enjoyed', 'the', 'walk', 'by', 'river', 'this', 'morning', 'and', 'my', 'sister', 'called', 'about', 'dinner', 'plans'];
      let seed = 11;
      const rand = (n) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
      const messages = Array.from({ length: 128 }, () => Array.from({ length: 12 + rand(12) }, () => words[rand(words.length)]).join(' '));
      const t0 = performance.now();
      await engine.memory.embed([messages[0]]); // loads the embedder, compiles its shaders
      const loadSeconds = (performance.now() - t0) / 1000;
      await engine.memory.embed(messages.slice(0, 64));
      let t = performance.now();
      for (let i = 0; i < messages.length; i += 64) await engine.memory.embed(messages.slice(i, i + 64));
      const batched = messages.length / ((performance.now() - t) / 1000);
      t = performance.now();
      for (const m of messages.slice(0, 16)) await engine.memory.embed([m]);
      const single = 16 / ((performance.now() - t) / 1000);
      const info = engine.info();
      await engine.dispose();
      return { backend: info.backend, threads: info.threads, adapter: info.adapter, embedderLoadSeconds: loadSeconds, batchOf64PerSecond: batched, oneAtATimePerSecond: single };
    }, backend);
    console.log(JSON.stringify({ embedder: result }));
  }
  for (const records of sizes) {
    const result = await h.page.evaluate(
      ({ records, queries }) =>
        new Promise((resolve, reject) => {
          const source = `import init, { benchIndex } from '${location.origin}/confidant/wasm/confidant_web.js';
            onmessage = async (e) => { await init(); postMessage(benchIndex(e.data.records, e.data.queries)); };`;
          const worker = new Worker(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })), { type: 'module' });
          worker.onmessage = (e) => {
            worker.terminate();
            resolve(e.data);
          };
          worker.onerror = (e) => reject(new Error(e.message));
          worker.postMessage({ records, queries });
        }),
      { records, queries },
    );
    console.log(JSON.stringify({ index: result }));
  }
} catch (e) {
  console.error(h.console.slice(-20).join('\n'));
  throw e;
} finally {
  await h.close();
}
