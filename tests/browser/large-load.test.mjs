// A model larger than the engine's wasm memory could hold loads from the browser's private
// storage (OPFS) on WebGPU a tensor at a time: a synthetic llama of 1.5 GB (synth_llama --large;
// tests/browser/large-model.mjs) is downloaded into OPFS by the npm package, loaded from there
// and made to generate a token, while the engine's wasm memory stays under 512 MB. Its cost is
// kept low: Q8_0 matrices (half the values of Q4_0 for the same bytes, so half the unpacking and
// arithmetic on SwiftShader), a one-token prompt and one generated token (SwiftShader's speed is
// not what is tested); the file and its OPFS copy are deleted afterwards.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { largeModelPath, loadLargeModel, writeLargeModel } from './large-model.mjs';

// 24 blocks of Q8_0 matrices: 1.56 GB.
const BLOCKS = 24;
const TYPE = 'q8_0';

after(() => rmSync(largeModelPath(BLOCKS, TYPE), { force: true }));

test('a 1.5 GB model loads from OPFS on WebGPU and generates a token with the wasm memory under 512 MB', async () => {
  const r = await loadLargeModel(writeLargeModel(BLOCKS, TYPE), { backend: 'webgpu', prompt: 'a' });
  console.log(`file ${r.file} bytes; download ${r.downloadS.toFixed(1)} s, load ${r.loadS.toFixed(1)} s, token ${r.tokenS.toFixed(1)} s; wasm memory ${r.info.memory.wasm} bytes`);
  assert.ok(r.file >= 1.5e9, `the file is ${r.file} bytes`);
  assert.equal(r.cachedBytes, r.file, 'the whole file was stored in OPFS before it was loaded from there');
  assert.equal(r.info.backend, 'webgpu');
  // The wasm memory's size after the load is its high-water mark during it (it never shrinks).
  assert.ok(r.info.memory.wasm < 512 * 2 ** 20, `wasm memory after the load ${r.info.memory.wasm} bytes`);
  assert.equal(r.usage.prompt_tokens, 1);
  assert.equal(r.usage.completion_tokens, 1);
});
