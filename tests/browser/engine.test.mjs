// The engine in headless Chromium on WebGPU (SwiftShader): same tokens as the native CLI and as
// llama.cpp. SwiftShader is slow, so token counts stay small.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, nativeGreedy, reference } from './harness.mjs';

// Same tolerance and rule as crates/llm/tests/llama_cpp_reference.rs (reasons there).
const TOLERANCE = 0.01;
let h;

before(async () => {
  h = await launch();
  await h.page.goto(`${h.base}/engine.html`);
  const info = await h.page.evaluate(async () => (await window.confidantCheck.ready).info());
  console.log(`adapter: ${info.adapter.name} (${info.backend}), model ${info.model.name}`);
  assert.equal(info.backend, 'webgpu');
});

after(async () => {
  if (h) await h.close();
});

test('greedy text in Chromium equals the native CLI', async () => {
  const prompt = 'The capital of France is';
  const native = nativeGreedy(prompt, 6);
  const web = await h.page.evaluate(async (p) => {
    const engine = await window.confidantCheck.ready;
    return window.confidantCheck.generate(engine, p, { raw: true, maxTokens: 6 });
  }, prompt);
  console.log(`native: ${JSON.stringify(native.text)} browser: ${JSON.stringify(web.text)} (decode ${web.decodeTokS.toFixed(2)} tok/s)`);
  assert.deepEqual(web.prompt_tokens, native.prompt_tokens);
  assert.deepEqual(web.tokens, native.tokens);
  assert.equal(web.text, native.text);
});

test('logits and greedy tokens match llama.cpp (F32) in Chromium', async () => {
  const ref = reference();
  for (const run of ref.runs.f32) {
    const steps = run.steps;
    let mustAgree = steps.findIndex((s) => s.gap < 2 * TOLERANCE);
    if (mustAgree < 0) mustAgree = steps.length;
    assert.ok(mustAgree >= 8, `${run.name}: near-tie at step ${mustAgree}`);
    const checked = Math.min(mustAgree, 8);
    const result = await h.page.evaluate(async ({ prompt, steps, checked }) => {
      const engine = await window.confidantCheck.ready;
      const ids = engine.encodeRaw(prompt);
      engine.begin(Uint32Array.from(ids), { max_tokens: checked, temperature: 0, cache_prompt: false, ignore_eos: true });
      const out = [];
      for (let i = 0; i < checked; i++) {
        const step = await engine.step();
        const wanted = steps[i].top5.map(([id]) => id);
        out.push({ token: step.token, logits: Array.from(engine.lastLogits(Uint32Array.from(wanted))) });
      }
      return { ids: Array.from(ids), out };
    }, { prompt: run.prompt, steps, checked });
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
