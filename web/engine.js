// The engine check page: load the GGUF from this origin, generate greedily on WebGPU (or on the
// CPU with `?backend=cpu`, single-threaded: this page loads the single-threaded build).
// `?model=PATH` loads another GGUF under /models/ (the tests' synthetic models).
// `window.confidantCheck` exposes the same steps to the browser tests.
import init, { Engine, inspectModel } from './pkg/confidant_web.js';

const params = new URLSearchParams(location.search);
const requested = params.get('model');
// A path inside /models/ only: no scheme, no parent directories.
const MODEL_URL = `/models/${requested && /^[\w.-]+(\/[\w.-]+)*\.gguf$/.test(requested) && !requested.includes('..') ? requested : 'SmolLM2-135M-Instruct-Q4_1.gguf'}`;
const status = document.getElementById('status');
const output = document.getElementById('output');

const backend = params.get('backend') === 'cpu' ? 'cpu' : 'webgpu';

async function loadEngine() {
  await init();
  if (backend === 'webgpu' && !navigator.gpu) {
    throw Object.assign(new Error('This browser has no WebGPU (Chrome and Edge 113+, Safari 26+, Firefox 141+ on Windows have it); try ?backend=cpu.'), { code: 'webgpu_unavailable' });
  }
  status.textContent = 'Downloading the model…';
  const response = await fetch(MODEL_URL);
  if (!response.ok) throw new Error(`model download failed: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  // The whole file is here already; Gemma's 262144-token vocabulary makes a header over 4 MiB.
  const info = inspectModel(bytes, bytes.length);
  status.textContent = `Loading ${info.name} (${info.quant}) onto the ${backend === 'cpu' ? 'CPU' : 'GPU'}…`;
  return Engine.load(bytes, 2048, backend);
}

// `sampling`: begin()'s sampling options (temperature, top_k, seed…) in place of greedy.
async function generate(engine, prompt, { raw = true, maxTokens = 24, onText, sampling } = {}) {
  const ids = raw ? engine.encodeRaw(prompt) : engine.encodeChat([{ role: 'user', content: prompt }]);
  engine.begin(Uint32Array.from(ids), { max_tokens: maxTokens, temperature: 0, cache_prompt: false, ...sampling });
  const tokens = [];
  let text = '';
  for (;;) {
    const step = await engine.step();
    if (!step) break;
    tokens.push(step.token);
    text += step.text;
    onText?.(text);
  }
  const { usage, timings } = engine.stats();
  return { prompt_tokens: Array.from(ids), tokens, text, completion_tokens: usage.completion_tokens, prefillTokS: timings.prefill_tok_s, decodeTokS: timings.decode_tok_s, decodeWork: timings.decode_work };
}

const ready = loadEngine().then((engine) => {
  const info = engine.info();
  status.textContent = `Ready: ${info.model.name} on ${info.adapter.name} (${info.backend}).`;
  document.getElementById('go').disabled = false;
  return engine;
});
ready.catch((e) => { status.textContent = `Error [${e.code ?? 'error'}]: ${e.message}`; });

document.getElementById('form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const engine = await ready;
  const button = document.getElementById('go');
  button.disabled = true;
  try {
    const r = await generate(engine, document.getElementById('prompt').value, {
      raw: document.getElementById('raw').checked,
      maxTokens: Number(document.getElementById('max').value) || 24,
      onText: (t) => { output.textContent = t; },
    });
    status.textContent = `${r.completion_tokens} tokens, prefill ${r.prefillTokS.toFixed(1)} tok/s, decode ${r.decodeTokS.toFixed(1)} tok/s`;
  } catch (e) {
    status.textContent = `Error [${e.code ?? 'error'}]: ${e.message}`;
  } finally {
    button.disabled = false;
  }
});

window.confidantCheck = { ready, generate, inspectModel };
