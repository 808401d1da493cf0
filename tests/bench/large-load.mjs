// Loading a model larger than the engine's wasm memory, timed (the CI test of the same load,
// with its assertions, is tests/browser/large-load.test.mjs; both use tests/browser/large-model.mjs).
// A synthetic llama of `--blocks` blocks (crates/llm/examples/synth_llama --large: 2048 wide,
// `--type` q4_0, about 34 MB a block, 44 blocks make 1.5 GB; or q8_0, 64 MB a block; kept under
// models/.cache/large/ for the next run) is downloaded by the npm package into the browser's private storage (OPFS), then loaded
// from there on `--backend` (default webgpu) a tensor at a time, and one token generated after
// `--prompt`. Printed: the file's size, the download and load times, the engine's wasm memory
// after loading (its high-water mark: a wasm memory never shrinks) and the time of the token,
// as a markdown row for BENCHMARKS.md (or JSON with --json).
//
//   node tests/bench/large-load.mjs [--blocks 44] [--type q4_0|q8_0] [--backend webgpu|cpu] [--prompt a] [--json]

import { parseArgs } from 'node:util';
import { loadLargeModel, writeLargeModel } from '../browser/large-model.mjs';

const { values: opt } = parseArgs({
  options: {
    blocks: { type: 'string', default: '44' },
    type: { type: 'string', default: 'q4_0' },
    backend: { type: 'string', default: 'webgpu' },
    prompt: { type: 'string', default: 'a' },
    json: { type: 'boolean', default: false },
  },
});
const blocks = Number(opt.blocks);
if (!Number.isInteger(blocks) || blocks < 1) throw new Error('--blocks takes a positive integer');
if (!['webgpu', 'cpu'].includes(opt.backend)) throw new Error('--backend is webgpu or cpu');
if (!['q4_0', 'q8_0'].includes(opt.type)) throw new Error('--type is q4_0 or q8_0');

const r = await loadLargeModel(writeLargeModel(blocks, opt.type), { backend: opt.backend, prompt: opt.prompt });
const mb = (n) => `${(n / 1e6).toFixed(0)} MB`;
const row = {
  file: r.file,
  backend: r.info.backend,
  adapter: r.info.gpu?.name ?? r.info.adapter.name,
  weights: r.info.memory.weights,
  largestTensor: r.info.memory.largestTensor,
  wasm: r.info.memory.wasm,
  promptTokens: r.usage.prompt_tokens,
  downloadS: r.downloadS,
  loadS: r.loadS,
  tokenS: r.tokenS,
};
if (opt.json) console.log(JSON.stringify(row));
else {
  console.log('| file | backend (adapter) | largest tensor | wasm memory after load | download to OPFS | load from OPFS | first token (prompt tokens) |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  console.log(`| ${mb(row.file)} | ${row.backend} (${row.adapter}) | ${mb(row.largestTensor)} | ${mb(row.wasm)} | ${row.downloadS.toFixed(1)} s | ${row.loadS.toFixed(1)} s | ${row.tokenS.toFixed(1)} s (${row.promptTokens}) |`);
}
