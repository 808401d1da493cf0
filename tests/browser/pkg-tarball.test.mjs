// `npm pack` of pkg/ installs into a scratch project, and the README's example runs there in
// headless Chromium, importing the package by name through an import map.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, nativeGreedy, root } from './harness.mjs';

let scratch;
let h;

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'confidant-scratch-'));
  execFileSync('npm', ['pack', '--pack-destination', scratch], { cwd: join(root, 'pkg'), stdio: 'ignore' });
  const tarball = readdirSync(scratch).find((f) => f.endsWith('.tgz'));
  assert.ok(tarball, 'npm pack produced a tarball');
  const app = join(scratch, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch-app', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', join(scratch, tarball)], { cwd: app, stdio: 'ignore' });
  writeFileSync(
    join(app, 'index.html'),
    `<!doctype html><meta charset="utf-8"><title>scratch</title>
<script type="importmap">{ "imports": { "confidant": "./node_modules/confidant/dist/index.js" } }</script>
<pre id="out">…</pre>
<script type="module" src="main.js"></script>`,
  );
  // The README's first example, as a user would paste it.
  writeFileSync(
    join(app, 'main.js'),
    `import { Confidant } from 'confidant';
const engine = await Confidant.create({
  model: { url: '/models/SmolLM2-135M-Instruct-Q4_1.gguf' },
  onProgress: (p) => console.log(p.stage, p.loaded, p.total),
});
const r = await engine.completions.create({ prompt: 'The capital of France is', max_tokens: 4, temperature: 0 });
document.getElementById('out').textContent = JSON.stringify({ text: r.choices[0].text, info: engine.info() });
await engine.dispose();
`,
  );
  h = await launch({
    needs: ['pkg/dist/index.js'],
    serverOptions: { roots: [['/models/', join(root, 'models')], ['/', app]], csp: false },
  });
});

after(async () => {
  if (h) await h.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

test('the packed package installs and the README example runs', async () => {
  const native = nativeGreedy('The capital of France is', 4);
  await h.page.goto(`${h.base}/index.html`);
  await h.page.waitForFunction(() => document.getElementById('out').textContent.startsWith('{'), null, { timeout: 600_000 });
  const out = JSON.parse(await h.page.textContent('#out'));
  assert.equal(out.text, native.text);
  assert.equal(out.info.model.arch, 'llama');
});
