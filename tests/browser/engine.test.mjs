// The engine in headless Chromium, on both backends of the single-threaded wasm build:
// - WebGPU (SwiftShader): every GPU kernel, checked against the native GPU build and against
//   llama.cpp's F32 run. SwiftShader is slow, so token counts stay small.
// - the CPU (wasm SIMD128): the same kernels' CPU versions, checked against llama.cpp's Q4_1 run
//   with the tolerances of crates/llm/tests/llama_cpp_reference.rs (8-bit activations).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, nativeGreedy, reference } from './harness.mjs';

// Same tolerances and rules as crates/llm/tests/llama_cpp_reference.rs (reasons there).
const TOLERANCE = 0.01;
const CPU_TOLERANCE = 1.0;
const CPU_MEAN_TOLERANCE = 0.3;
const CPU_TIE = 0.5;
let h;

before(async () => {
  h = await launch();
});

after(async () => {
  if (h) await h.close();
});

/** Open the engine check page on `backend` and wait for the model. */
async function open(backend) {
  await h.page.goto(`${h.base}/engine.html?backend=${backend}`);
  const info = await h.page.evaluate(async () => (await window.confidantCheck.ready).info());
  console.log(`${backend}: adapter ${info.adapter.name} (${info.backend}), model ${info.model.name}`);
  assert.equal(info.backend, backend);
}

/** Teacher-forced steps of `run` in the page: the greedy token and the logits of the reference's top 5 at each. */
function stepsInPage(run, count) {
  return h.page.evaluate(
    async ({ prompt, steps, count }) => {
      const engine = await window.confidantCheck.ready;
      const ids = engine.encodeRaw(prompt);
      const out = [];
      let input = Array.from(ids);
      // One request per step with the reference's previous token appended: the prefix stays in
      // the KV cache, so each request runs one new token.
      for (let i = 0; i < count; i++) {
        engine.begin(Uint32Array.from(input), { max_tokens: 1, temperature: 0, cache_prompt: true, ignore_eos: true });
        const step = await engine.step();
        const wanted = steps[i].top5.map(([id]) => id);
        out.push({ token: step.token, logits: Array.from(engine.lastLogits(Uint32Array.from(wanted))) });
        input.push(steps[i].token);
      }
      return { ids: Array.from(ids), out };
    },
    { prompt: run.prompt, steps: run.steps, count },
  );
}

test('WebGPU: greedy text in Chromium equals the native GPU build', async () => {
  await open('webgpu');
  const prompt = 'The capital of France is';
  const native = nativeGreedy(prompt, 6, { backend: 'gpu' });
  const web = await h.page.evaluate(async (p) => {
    const engine = await window.confidantCheck.ready;
    return window.confidantCheck.generate(engine, p, { raw: true, maxTokens: 6 });
  }, prompt);
  console.log(`native: ${JSON.stringify(native.text)} browser: ${JSON.stringify(web.text)} (decode ${web.decodeTokS.toFixed(2)} tok/s)`);
  assert.deepEqual(web.prompt_tokens, native.prompt_tokens);
  assert.deepEqual(web.tokens, native.tokens);
  assert.equal(web.text, native.text);
});

test('WebGPU: logits and greedy tokens match llama.cpp (F32) in Chromium', async () => {
  await open('webgpu');
  const ref = reference();
  for (const run of ref.runs.f32) {
    const steps = run.steps;
    let mustAgree = steps.findIndex((s) => s.gap < 2 * TOLERANCE);
    if (mustAgree < 0) mustAgree = steps.length;
    assert.ok(mustAgree >= 8, `${run.name}: near-tie at step ${mustAgree}`);
    const checked = Math.min(mustAgree, 8);
    const result = await stepsInPage(run, checked);
    assert.deepEqual(result.ids, run.prompt_tokens, `${run.name}: prompt token ids`);
    result.out.forEach((step, i) => {
      steps[i].top5.forEach(([id, want], j) => {
        const diff = Math.abs(step.logits[j] - want);
        assert.ok(diff <= TOLERANCE, `${run.name} step ${i}: token ${id} logit ${step.logits[j]} vs llama.cpp ${want}`);
      });
      assert.equal(step.token, steps[i].token, `${run.name} step ${i}: greedy token`);
    });
    console.log(`${run.name}: ${checked} greedy steps match, logits within ${TOLERANCE}`);
  }
});

test('CPU (wasm SIMD128): logits and greedy tokens match llama.cpp (Q4_1) in Chromium', async () => {
  await open('cpu');
  const ref = reference();
  let [worst, total, count] = [0, 0, 0];
  for (const run of ref.runs.q4_1) {
    const result = await stepsInPage(run, run.steps.length);
    assert.deepEqual(result.ids, run.prompt_tokens, `${run.name}: prompt token ids`);
    let checked = 0;
    result.out.forEach((step, i) => {
      run.steps[i].top5.forEach(([id, want], j) => {
        const diff = Math.abs(step.logits[j] - want);
        assert.ok(diff <= CPU_TOLERANCE, `${run.name} step ${i}: token ${id} logit ${step.logits[j]} vs llama.cpp ${want}`);
        [worst, total, count] = [Math.max(worst, diff), total + diff, count + 1];
      });
      if (run.steps[i].gap >= CPU_TIE) {
        assert.equal(step.token, run.steps[i].token, `${run.name} step ${i}: greedy token`);
        checked += 1;
      }
    });
    console.log(`${run.name}: ${checked} greedy tokens checked (gap ≥ ${CPU_TIE})`);
  }
  console.log(`CPU in Chromium vs llama.cpp Q4_1: top-5 logits differ by ${worst.toFixed(3)} at most, ${(total / count).toFixed(3)} on average`);
  assert.ok(total / count <= CPU_MEAN_TOLERANCE, `top-5 logits differ by ${total / count} on average`);
});
