// The in-page half of tests/bench/cpu-bench.mjs: runs one engine configuration at a time and
// returns the per-run timings; the Node side takes medians and prints the table.
// wllama is served at /wllama/ (its esm/ folder), the npm package at /confidant/.

const quiet = { debug() {}, log() {}, warn: console.warn, error: console.error };

/**
 * wllama (llama.cpp in wasm) through its llama-server-style completion API, which reports
 * llama.cpp's own prompt and generation timings. `prompt` is token ids (or text).
 */
async function runWllama({ modelUrl, threads, prompt, decodeTokens, nCtx, runs }) {
  const { Wllama } = await import('/wllama/index.js');
  const wllama = new Wllama({ default: '/wllama/wasm/wllama.wasm' }, { suppressNativeLog: true, logger: quiet });
  // Straight from the server into memory: no OPFS/Cache API copy to warm or to wipe.
  const blob = await (await fetch(modelUrl)).blob();
  const t0 = performance.now();
  await wllama.loadModel([blob], { n_threads: threads, n_ctx: nCtx, n_gpu_layers: 0 });
  const loadSeconds = (performance.now() - t0) / 1000;
  try {
    const used = wllama.getNumThreads();
    if (used !== threads) throw new Error(`wllama runs ${used} threads, not ${threads} (multithread: ${wllama.isMultithread()})`);
    const timings = [];
    for (let i = 0; i < runs; i++) {
      const r = await wllama.createCompletion({
        prompt,
        max_tokens: decodeTokens,
        temperature: 0,
        ignore_eos: true,
        cache_prompt: false,
      });
      const t = r.timings;
      if (!t) throw new Error('wllama returned no timings');
      if (t.cache_n !== 0) throw new Error(`wllama reused ${t.cache_n} cached prompt tokens`);
      // llama-server starts the generation clock when the first token is sampled, so
      // predicted_ms spans predicted_n - 1 forward passes (as Confidant counts decode steps).
      timings.push({
        prompt_tokens: t.prompt_n,
        decode_tokens: t.predicted_n,
        prefill_tok_s: t.prompt_per_second,
        decode_tok_s: (t.predicted_n - 1) / (t.predicted_ms / 1000),
      });
    }
    return { loadSeconds, libllama: Wllama.getLibllamaVersion(), timings };
  } finally {
    await wllama.exit();
  }
}

/** Confidant through the npm package, on its CPU backend. `prompt` is text. */
async function runConfidant({ modelUrl, prompt, decodeTokens, nCtx, runs }) {
  const { Confidant } = await import('/confidant/index.js');
  const t0 = performance.now();
  let engine;
  try {
    engine = await Confidant.create({ model: { url: modelUrl }, backend: 'cpu', contextLength: nCtx });
  } catch (e) {
    // bad_request is how a build without the CPU backend refuses it; anything else is a failure.
    if (e.code === 'bad_request') return { unavailable: `${e.code}: ${e.message}` };
    throw e;
  }
  const loadSeconds = (performance.now() - t0) / 1000;
  try {
    const timings = [];
    for (let i = 0; i < runs; i++) {
      const r = await engine.completions.create({ prompt, max_tokens: decodeTokens, temperature: 0, ignore_eos: true, cache_prompt: false });
      timings.push({
        prompt_tokens: r.usage.prompt_tokens,
        decode_tokens: r.usage.completion_tokens,
        prefill_tok_s: r.timings.prefill_tok_s,
        decode_tok_s: r.timings.decode_tok_s,
      });
    }
    return { loadSeconds, info: engine.info(), timings };
  } finally {
    await engine.dispose();
  }
}

window.bench = { runWllama, runConfidant };
window.benchReady = true;
