// Shared set-up for the browser tests: the static server, headless Debian Chromium with WebGPU
// through SwiftShader, and the native CLI for comparisons.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from '../../web/serve.mjs';

export const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const modelPath = join(root, 'models/SmolLM2-135M-Instruct-Q4_1.gguf');

// SwiftShader's WebGPU adapter; the network flags keep Chromium from calling home.
export const chromiumArgs = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** The headers that make a page cross-origin isolated, so the package runs its multi-threaded build. */
export { isolation } from '../../web/serve.mjs';

/**
 * Start a server (`serverOptions` as web/serve.mjs takes them) and headless Chromium with
 * WebGPU (`webgpu: false` leaves WebGPU off, as in browsers without it).
 */
export async function launch({ needs = ['web/pkg/confidant_web_bg.wasm'], serverOptions = {}, webgpu = true } = {}) {
  for (const needed of [modelPath, ...needs.map((n) => join(root, n))]) {
    if (!existsSync(needed)) throw new Error(`${needed} is missing: run \`make test\` (it builds and fetches everything)`);
  }
  const server = await startServer({ port: 0, ...serverOptions });
  const { port } = server.address();
  const args = webgpu ? chromiumArgs : chromiumArgs.filter((a) => !/webgpu|vulkan/i.test(a)).concat(['--disable-features=WebGPU']);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args });
  // An explicit context, so a test can open a second tab on the same storage.
  const context = await browser.newContext();
  const page = await context.newPage();
  const console = [];
  page.on('console', (m) => console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.push(`pageerror: ${e.message}`));
  return {
    base: `http://127.0.0.1:${port}`,
    page,
    browser,
    console,
    async close() {
      await browser.close();
      await new Promise((ok) => server.close(ok));
    },
  };
}

/// The native CLI's greedy output for the same prompt, as JSON, on `backend` ('gpu' or 'cpu':
/// compare a browser backend with the native one of the same arithmetic).
export function nativeGreedy(prompt, maxTokens, { raw = true, backend = 'cpu', sampling } = {}) {
  const cli = join(root, 'target/release/confidant');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`cargo build --release -p confidant-cli\``);
  // `sampling`: begin()'s option names (top_k, seed…) as the CLI's flags, in place of greedy.
  const flags = sampling ? Object.entries(sampling).flatMap(([k, v]) => [`--${k.replaceAll('_', '-')}`, String(v)]) : ['--temperature', '0'];
  // The KV cache in f32 as on SwiftShader, which has no shader-f16 (lavapipe would keep f16).
  const args = ['generate', '--model', modelPath, '--backend', backend, '--prompt', prompt, '--max-tokens', String(maxTokens), ...flags, '--kv-f32', '--json'];
  if (raw) args.push('--raw');
  const out = execFileSync(cli, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return JSON.parse(out.trim().split('\n').pop());
}

export function reference() {
  return JSON.parse(readFileSync(join(root, 'tests/fixtures/llama_reference.json'), 'utf8'));
}

/**
 * How many greedy tokens of llama.cpp's Q4_1 run of `prompt` come before its first near-tie
 * (top-2 gap under 0.5, as in crates/llm/tests/llama_cpp_reference.rs): beyond it two CPU
 * builds that sum in another order (wasm SIMD128, native AVX2) may rightly pick different tokens.
 */
export function agreedSteps(prompt) {
  const run = reference().runs.q4_1.find((r) => r.prompt === prompt);
  if (!run) throw new Error(`no Q4_1 reference run for ${JSON.stringify(prompt)}`);
  const tie = run.steps.findIndex((s) => s.gap < 0.5);
  return tie < 0 ? run.steps.length : tie;
}

/**
 * Run `fn(window.engine, arg)` in the page. Resolves `{ ok: value }` or `{ error: { code,
 * message, name } }` (a ConfidantError's fields), so tests can assert on either.
 */
export function inPage(page, fn, arg) {
  return page.evaluate(
    async ([source, arg]) => {
      const f = new Function(`return (${source})`)();
      try {
        return { ok: await f(window.engine, arg) };
      } catch (e) {
        return { error: { code: e.code, message: e.message, name: e.name } };
      }
    },
    [fn.toString(), arg],
  );
}

/** As inPage, failing the test on an error; the value. */
export async function okInPage(page, fn, arg) {
  const r = await inPage(page, fn, arg);
  if (r.error) throw new Error(`page call failed: ${JSON.stringify(r.error)}`);
  return r.ok;
}

/**
 * Open the test page that loads the npm package and create `window.engine` there (model from
 * `modelUrl`). `contextLength` and `backend` are passed on when given; `recordProgress` collects
 * the progress events in `window.progress`.
 */
export async function createPkgEngine(h, modelUrl, { contextLength, backend, recordProgress = false } = {}) {
  await h.page.goto(`${h.base}/pkg.html`);
  await h.page.waitForFunction(() => window.pkgReady === true);
  await h.page.evaluate(
    async ({ url, contextLength, backend, recordProgress }) => {
      window.progress = [];
      const options = { model: { url } };
      if (contextLength) options.contextLength = contextLength;
      if (backend) options.backend = backend;
      if (recordProgress) options.onProgress = (p) => window.progress.push(p);
      window.engine = await window.pkg.Confidant.create(options);
    },
    { url: modelUrl, contextLength, backend, recordProgress },
  );
}
