// Every real model on every adapter of this machine, in one table for BENCHMARKS.md (not a test):
// load time, prefill and decode speed and memory, from the existing tools run one after another:
// `confidant bench --json` natively on the CPU and on the GPU wgpu finds (lavapipe here), and
// tests/bench/browser-bench.mjs in headless Chromium on the CPU path with 1 and 2 threads and on
// WebGPU (SwiftShader here). Same decoded tokens and repeats everywhere; the prompt is
// `--prompt-tokens` ids natively, and in the browser the bench text repeated until it tokenizes to
// at least that many (each row says how many).
//
//   node tests/bench/models-bench.mjs [--prompt-tokens 128] [--decode-tokens 16] [--repeats 1] [--json]
//   node tests/bench/models-bench.mjs --table saved.json     # the table of a saved --json run
//
// Memory: natively the device memory the engine's allocator reserved at its peak (on the CPU,
// the weights and the cache as the engine holds them); in the browser the weights and the cache
// at the run's context (as the file states them) and the wasm memory's high-water mark.
// Rows run one at a time on a shared machine: the load average before and after is printed.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { root } from '../browser/harness.mjs';

const { values: opt } = parseArgs({
  options: {
    'prompt-tokens': { type: 'string', default: '128' },
    'decode-tokens': { type: 'string', default: '16' },
    repeats: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    table: { type: 'string' },
  },
});
const counts = ['--prompt-tokens', opt['prompt-tokens'], '--decode-tokens', opt['decode-tokens'], '--repeats', opt.repeats];
const MODELS = [
  ['SmolLM2 135M Instruct Q4_1', 'SmolLM2-135M-Instruct-Q4_1.gguf'],
  ['Gemma 3 270M Q4_K_M', 'gemma-3-270m-Q4_K_M.gguf'],
].filter(([, file]) => existsSync(join(root, 'models', file)));
const log = (line) => process.stderr.write(`${line}\n`);
const lastLine = (s) => (s ?? '').trim().split('\n').filter(Boolean).pop() ?? '';

function native(file, backend) {
  const out = spawnSync(join(root, 'target/release/confidant'), ['bench', '--model', join(root, 'models', file), '--backend', backend, ...counts, '--json'], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (out.status !== 0) return { failed: lastLine(out.stderr) || `exit ${out.status}` };
  const r = JSON.parse(lastLine(out.stdout));
  const held = r.weights_device_bytes + r.kv_cache_device_bytes;
  return { adapter: r.adapter, prompt_tokens: r.prompt_tokens, load_s: r.load_seconds, prefill_tok_s: r.prefill_tok_s, decode_tok_s: r.decode_tok_s, memory: backend === 'gpu' ? `${mb(r.peak_device_bytes)} device (peak reserved)` : `${mb(held)} weights + cache` };
}

function browser(file, backend, threads) {
  const args = [join(root, 'tests/bench/browser-bench.mjs'), '--model', file, '--backend', backend, ...counts];
  if (threads) args.push('--threads', String(threads));
  const out = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (out.status !== 0) return { failed: lastLine(out.stderr) || `exit ${out.status}` };
  const r = JSON.parse(out.stdout.slice(out.stdout.indexOf('{')));
  if (r.backend !== backend) return { failed: `it ran on ${r.backend}, not ${backend}` };
  const m = r.memory;
  // The browser names no WebGPU adapter to the engine; the package's description of it does.
  return { adapter: backend === 'webgpu' ? (r.gpu?.name ?? 'unnamed') : r.adapter.name, prompt_tokens: r.promptTokens, load_s: r.loadSeconds, prefill_tok_s: r.prefill_tok_s, decode_tok_s: r.decode_tok_s, memory: `${mb(m.weights + m.kvCache)} weights + cache, ${mb(m.wasm)} wasm`, browser: r.browser };
}

const mb = (n) => `${(n / 1e6).toFixed(0)} MB`;
const ADAPTERS = [
  ['native, CPU', (f) => native(f, 'cpu')],
  ['native, GPU (wgpu)', (f) => native(f, 'gpu')],
  ['Chromium, CPU path, 1 thread', (f) => browser(f, 'cpu', 1)],
  ['Chromium, CPU path, 2 threads', (f) => browser(f, 'cpu', 2)],
  ['Chromium, WebGPU', (f) => browser(f, 'webgpu')],
];

/** The markdown table of a run (what --json prints). */
function table({ date, machine, options, rows }) {
  const f1 = (x) => (x == null ? 'n/a' : x.toFixed(1));
  const browserVersion = rows.find((r) => r.browser)?.browser ?? 'not run';
  return [
    `${options['prompt-tokens']}-token prompt, ${options['decode-tokens']} decoded tokens (EOS ignored), median of ${options.repeats} after a warm-up; ${date.slice(0, 10)}.`,
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB; Chromium ${browserVersion}; load average ${machine.loadStart.toFixed(2)} before, ${machine.loadEnd.toFixed(2)} after.`,
    '',
    '| model | where | adapter | load | prompt tokens | prefill tok/s | decode tok/s | memory | load average after |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) =>
      r.failed
        ? `| ${r.model} | ${r.where} | failed: ${r.failed} | | | | | | ${r.load.toFixed(1)} |`
        : `| ${r.model} | ${r.where} | ${r.adapter} | ${r.load_s.toFixed(1)} s | ${r.prompt_tokens} | ${f1(r.prefill_tok_s)} | ${f1(r.decode_tok_s)} | ${r.memory} | ${r.load.toFixed(1)} |`,
    ),
  ].join('\n');
}

if (opt.table) {
  console.log(table(JSON.parse(readFileSync(opt.table, 'utf8'))));
  process.exit(0);
}

const cpuName = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
const machine = { cpu: cpuName, cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), loadStart: loadavg()[0] };
const rows = [];
for (const [name, file] of MODELS) {
  for (const [where, run] of ADAPTERS) {
    log(`${name}, ${where}…`);
    const started = Date.now();
    rows.push({ model: name, where, ...run(file), load: loadavg()[0], seconds: (Date.now() - started) / 1000 });
  }
}
machine.loadEnd = loadavg()[0];
const result = { date: new Date().toISOString(), machine, options: opt, rows };
console.log(opt.json ? JSON.stringify(result, null, 2) : table(result));
