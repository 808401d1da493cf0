// Loading a model larger than the engine's wasm memory (not a test; CI never runs it: it writes
// a 1.5 GB file and loads it on SwiftShader, minutes on two cores). A synthetic llama of
// `--blocks` blocks (crates/llm/examples/synth_llama --large: 2048 wide, Q4_0, about 35 MB a
// block; 44 blocks make 1.5 GB) is downloaded by the npm package into the browser's private
// storage (OPFS), then loaded from there on `--backend` (default webgpu) a tensor at a time, and
// one token generated. Printed: the file's size, the download and load times, the engine's
// wasm memory after loading (its high-water mark: a wasm memory never shrinks) and the time of
// the token, as a markdown row for BENCHMARKS.md (or JSON with --json).
//
//   node tests/bench/large-load.mjs [--blocks 44] [--backend webgpu|cpu] [--json]

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { chromiumArgs, isolation, root } from '../browser/harness.mjs';
import { startServer } from '../../web/serve.mjs';

const { values: opt } = parseArgs({
  options: {
    blocks: { type: 'string', default: '44' },
    backend: { type: 'string', default: 'webgpu' },
    json: { type: 'boolean', default: false },
  },
});
const blocks = Number(opt.blocks);
if (!Number.isInteger(blocks) || blocks < 1) throw new Error('--blocks takes a positive integer');
if (!['webgpu', 'cpu'].includes(opt.backend)) throw new Error('--backend is webgpu or cpu');

const example = join(root, 'target/release/examples/synth_llama');
if (!existsSync(example)) throw new Error(`${example} is missing: run cargo build --release --all-targets`);
const dir = join(root, 'models/.cache/large');
mkdirSync(dir, { recursive: true });
const name = `large-${blocks}.gguf`;
const path = join(dir, name);
if (!existsSync(path)) execFileSync(example, ['--large', path, String(blocks)], { stdio: 'inherit' });
const fileBytes = statSync(path).size;

// A profile on disk: a fresh (incognito-like) context caps the origin's storage well below 1.5 GB.
const server = await startServer({
  port: 0,
  roots: [
    ['/confidant/', join(root, 'pkg/dist')],
    ['/models/', dir],
    ['/', join(root, 'tests/browser/pages')],
  ],
  headers: isolation,
});
const profile = mkdtempSync(join(tmpdir(), 'confidant-large-'));
const context = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', headless: true, args: chromiumArgs });
const h = {
  base: `http://127.0.0.1:${server.address().port}`,
  page: context.pages()[0] ?? (await context.newPage()),
  async close() {
    await context.close();
    await new Promise((ok) => server.close(ok));
    rmSync(profile, { recursive: true, force: true });
  },
};
try {
  h.page.setDefaultTimeout(1_800_000);
  await h.page.goto(`${h.base}/pkg.html`);
  await h.page.waitForFunction(() => window.pkgReady === true);
  const r = await h.page.evaluate(
    async ({ url, backend }) => {
      const { Confidant } = window.pkg;
      const engine = await Confidant.open({ backend, database: 'large-load' });
      // First the download into OPFS, then (timed alone) the load from there.
      let downloaded = null;
      const started = performance.now();
      const info = await engine.loadModel({
        model: { url },
        measureSpeed: false,
        contextLength: 256,
        onProgress: (p) => {
          if (p.stage === 'load' && downloaded === null) downloaded = performance.now();
        },
      });
      const loaded = performance.now();
      const c = await engine.completions.create({ prompt: 'a b c', max_tokens: 1, temperature: 0, ignore_eos: true });
      const token = performance.now();
      await engine.dispose();
      await Confidant.cache.delete(url);
      return { info, downloadS: (downloaded - started) / 1000, loadS: (loaded - downloaded) / 1000, tokenS: (token - loaded) / 1000, tokens: c.usage.completion_tokens };
    },
    { url: `/models/${name}`, backend: opt.backend },
  );
  const mb = (n) => `${(n / 1e6).toFixed(0)} MB`;
  const row = {
    file: fileBytes,
    backend: r.info.backend,
    adapter: r.info.gpu?.name ?? r.info.adapter.name,
    weights: r.info.memory.weights,
    largestTensor: r.info.memory.largestTensor,
    wasm: r.info.memory.wasm,
    downloadS: r.downloadS,
    loadS: r.loadS,
    tokenS: r.tokenS,
  };
  if (opt.json) console.log(JSON.stringify(row));
  else {
    console.log('| file | backend (adapter) | largest tensor | wasm memory after load | download to OPFS | load from OPFS | first token |');
    console.log('| --- | --- | --- | --- | --- | --- | --- |');
    console.log(`| ${mb(row.file)} | ${row.backend} (${row.adapter}) | ${mb(row.largestTensor)} | ${mb(row.wasm)} | ${row.downloadS.toFixed(1)} s | ${row.loadS.toFixed(1)} s | ${row.tokenS.toFixed(1)} s |`);
  }
} finally {
  await h.close();
}
