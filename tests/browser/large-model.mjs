// Loading a model larger than the engine's wasm memory, shared by the browser test
// (large-load.test.mjs) and the benchmark (tests/bench/large-load.mjs). A synthetic llama of
// `blocks` blocks (crates/llm/examples/synth_llama --large: 2048 wide, random weights; Q4_0,
// about 34 MB a block, or Q8_0, about 64 MB) is written under models/.cache/large/, downloaded
// by the npm package into the browser's private storage (OPFS), loaded from there on `backend`
// a tensor at a time, and one token generated.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer } from '../../web/serve.mjs';
import { chromiumArgs, isolation, root } from './harness.mjs';

/** Where the synthetic file of `blocks` blocks of `type` matrices is written (models/.cache/ is gitignored). */
export function largeModelPath(blocks, type = 'q4_0') {
  return join(root, 'models/.cache/large', `large-${blocks}${type === 'q4_0' ? '' : `-${type}`}.gguf`);
}

/** Write the synthetic model of `blocks` blocks of `type` ('q4_0' or 'q8_0') matrices unless it is there; its path. */
export function writeLargeModel(blocks, type = 'q4_0') {
  const example = join(root, 'target/release/examples/synth_llama');
  if (!existsSync(example)) throw new Error(`${example} is missing: run cargo build --release --all-targets`);
  const path = largeModelPath(blocks, type);
  mkdirSync(join(path, '..'), { recursive: true });
  if (!existsSync(path)) execFileSync(example, ['--large', path, String(blocks), type], { stdio: 'ignore' });
  return path;
}

/**
 * Download the model at `path` into OPFS with the npm package, load it from there on `backend`
 * and generate one greedy token after `prompt`. Chromium runs on a profile on disk (a fresh,
 * incognito-like context caps the origin's storage near 740 MB), deleted afterwards with the
 * cached copy. Resolves the file's size, what `info()` says after the load (its `memory.wasm`
 * is the wasm memory's high-water mark: a wasm memory never shrinks, so it covers the whole
 * load), the size of the copy in OPFS, the tokens of the prompt and the reply, and the times of
 * the download, the load and the token in seconds.
 */
export async function loadLargeModel(path, { backend = 'webgpu', prompt = 'a' } = {}) {
  const name = path.split('/').pop();
  const server = await startServer({
    port: 0,
    roots: [
      ['/confidant/', join(root, 'pkg/dist')],
      ['/models/', join(path, '..')],
      ['/', join(root, 'tests/browser/pages')],
    ],
    headers: isolation,
  });
  const profile = mkdtempSync(join(tmpdir(), 'confidant-large-'));
  let context = null;
  try {
    context = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', headless: true, args: chromiumArgs });
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(1_800_000);
    await page.goto(`http://127.0.0.1:${server.address().port}/pkg.html`);
    await page.waitForFunction(() => window.pkgReady === true);
    const r = await page.evaluate(
      async ({ url, backend, prompt }) => {
        const { Confidant } = window.pkg;
        const engine = await Confidant.open({ backend, database: 'large-load' });
        // The download into OPFS first, then (timed alone) the load from there.
        let downloaded = null;
        const started = performance.now();
        const info = await engine.loadModel({
          model: { url },
          measureSpeed: false,
          contextLength: 64,
          onProgress: (p) => {
            if (p.stage === 'load' && downloaded === null) downloaded = performance.now();
          },
        });
        const loaded = performance.now();
        const cached = (await Confidant.cache.list()).find((m) => m.url.endsWith(url));
        const c = await engine.completions.create({ prompt, max_tokens: 1, temperature: 0, ignore_eos: true });
        const token = performance.now();
        await engine.dispose();
        await Confidant.cache.delete(url);
        return {
          info,
          cachedBytes: cached?.size ?? null,
          usage: c.usage,
          downloadS: (downloaded - started) / 1000,
          loadS: (loaded - downloaded) / 1000,
          tokenS: (token - loaded) / 1000,
        };
      },
      { url: `/models/${name}`, backend, prompt },
    );
    return { file: statSync(path).size, ...r };
  } finally {
    if (context) await context.close();
    await new Promise((ok) => server.close(ok));
    rmSync(profile, { recursive: true, force: true });
  }
}
