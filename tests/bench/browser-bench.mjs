// Browser benchmark (not a test): load the npm package in headless Chromium and time prefill
// and decode with the same prompt construction as `confidant bench`, printing JSON.
//
//   node tests/bench/browser-bench.mjs [--prompt-tokens 128] [--decode-tokens 32] [--repeats 3] [--backend webgpu]
//       [--threads N] [--model SmolLM2-135M-Instruct-Q4_1.gguf] [--gpu-prefill auto|rows|tiled]
//
// `--model` is a file in models/. The page is cross-origin isolated, so the CPU runs on
// `--threads` threads (default: the package's, one per core). The model is downloaded into the
// browser's storage first; the load timed (`loadSeconds`) is the one from there, as a returning
// visitor's. `memory` is what `info()` says after it (weights, key/value cache, wasm memory).
//
// `--backend` is the package's option (default 'auto', which takes the CPU on a software
// adapter); `webgpu` measures SwiftShader here (the only adapter on CI machines); on a desktop
// with a GPU, point a real Chrome at the same page to measure that instead. The output has the
// device work per token of the last run (timings.prefill_work / decode_work). `--gpu-prefill` is
// the package's option of that name (which WebGPU kernels run the prompt; default 'auto', the tiled ones).

import { join } from 'node:path';
import { isolation, launch, root } from '../browser/harness.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const promptTokens = arg('--prompt-tokens', 128);
const decodeTokens = arg('--decode-tokens', 32);
const repeats = arg('--repeats', 3);
const backendAt = process.argv.indexOf('--backend');
const backend = backendAt > 0 ? process.argv[backendAt + 1] : 'auto';
const threads = arg('--threads', undefined);
const modelAt = process.argv.indexOf('--model');
const model = modelAt > 0 ? process.argv[modelAt + 1] : 'SmolLM2-135M-Instruct-Q4_1.gguf';
const prefillAt = process.argv.indexOf('--gpu-prefill');
const gpuPrefill = prefillAt > 0 ? process.argv[prefillAt + 1] : undefined;

const text =
  'The lighthouse keeper climbed the spiral stairs every evening at dusk, counting the steps as his father had taught him. ' +
  'Below, the harbour filled with fishing boats returning from the grey water, their lanterns swaying like fireflies. ';

const h = await launch({
  needs: ['pkg/dist/index.js'],
  serverOptions: { roots: [['/confidant/', join(root, 'pkg/dist')], ['/models/', join(root, 'models')], ['/', join(root, 'tests/browser/pages')]], headers: isolation },
});
try {
  await h.page.goto(`${h.base}/pkg.html`);
  await h.page.waitForFunction(() => window.pkgReady === true);
  const result = await h.page.evaluate(
    async ({ text, promptTokens, decodeTokens, repeats, backend, threads, model, gpuPrefill }) => {
      const options = { model: { url: `/models/${model}` }, backend, threads, gpuPrefill, contextLength: promptTokens + decodeTokens + 64, measureSpeed: false };
      // Into the browser's storage first; then the load timed is the one from there.
      await (await window.pkg.Confidant.create(options)).dispose();
      const t0 = performance.now();
      const engine = await window.pkg.Confidant.create(options);
      const loadSeconds = (performance.now() - t0) / 1000;
      // Grow the prompt until it tokenizes to at least promptTokens, then run exactly that many.
      let prompt = text;
      // Each count prefills only what the last one did not (the prompt grows at its end).
      const count = async (p) => (await engine.completions.create({ prompt: p, max_tokens: 1, temperature: 0, cache_prompt: true })).usage.prompt_tokens;
      let used = await count(prompt);
      while (used < promptTokens) {
        prompt += text;
        used = await count(prompt);
      }
      const runs = [];
      for (let i = 0; i <= repeats; i++) {
        const r = await engine.completions.create({ prompt, max_tokens: decodeTokens, temperature: 0, ignore_eos: true, cache_prompt: false });
        if (i > 0) runs.push(r.timings);
      }
      const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const info = engine.info();
      await engine.dispose();
      await window.pkg.Confidant.cache.delete(options.model.url);
      return {
        adapter: info.adapter,
        gpu: info.gpu,
        threads: info.threads,
        memory: info.memory,
        loadSeconds,
        promptTokens: used,
        decodeTokens,
        backend: info.backend,
        gpuPrefill: gpuPrefill ?? 'auto',
        prefill_tok_s: median(runs.map((r) => r.prefill_tok_s)),
        decode_tok_s: median(runs.map((r) => r.decode_tok_s)),
        prefill_work_per_token: runs[runs.length - 1].prefill_work,
        decode_work_per_token: runs[runs.length - 1].decode_work,
      };
    },
    { text, promptTokens, decodeTokens, repeats, backend, threads, model, gpuPrefill },
  );
  console.log(JSON.stringify({ browser: (await h.browser.version()), ...result }, null, 2));
} finally {
  await h.close();
}
