// CPU benchmark (not a test; CI never runs it): Confidant's CPU backend against its peers on
// this machine, with the same model and prompt everywhere, printed as a markdown table for
// BENCHMARKS.md (or JSON with --json).
//
//   node tests/bench/cpu-bench.mjs [--prompt-tokens 500] [--decode-tokens 128] [--repeats 3]
//       [--only wllama,confidant,native,llamacpp] [--threads 1,2] [--python PYTHON] [--json]
//
// Rows:
//   wllama      wllama (llama.cpp compiled to wasm) in headless Chromium, one row per --threads
//   confidant   the npm package in the same Chromium page, Confidant.create({ backend: 'cpu' })
//   native      target/release/confidant bench --backend cpu
//   llamacpp    llama.cpp natively through llama-cpp-python (tests/bench/llamacpp_bench.py),
//               one row per --threads; --python names an interpreter that has it
//               (default: $LLAMACPP_PYTHON, else python3)
// A Confidant row that cannot run yet (no CPU backend in this build) says "not available" and
// why; it is never filled in from another backend.
//
// The prompt: natively, the token ids `confidant bench` builds (BENCH_TEXT tokenized, repeated,
// cut to --prompt-tokens); in the browser both engines take text only, so they get the same
// text, cut to tokenize to --prompt-tokens as a whole (found with llama.cpp's tokenizer), and
// each row reports the prompt length its engine counted. Every run starts from an empty KV
// cache and decodes --decode-tokens tokens with EOS ignored; one warm-up run, then the median
// of --repeats. Each engine measures itself: llama.cpp's own timings for wllama, Confidant's
// `timings`, and llama_decode wall time in llamacpp_bench.py.
//
// Two cores are easily disturbed: each row reports how much CPU other processes (and the
// hypervisor, as steal) took while it ran; a row marked ⚠ was measured beside other work
// (a build, say) and is a floor, not a measurement.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { launch, modelPath, root } from '../browser/harness.mjs';

const { values: opt } = parseArgs({
  options: {
    'prompt-tokens': { type: 'string', default: '500' },
    'decode-tokens': { type: 'string', default: '128' },
    repeats: { type: 'string', default: '3' },
    only: { type: 'string', default: 'wllama,confidant,native,llamacpp' },
    threads: { type: 'string', default: '1,2' },
    python: { type: 'string', default: process.env.LLAMACPP_PYTHON || 'python3' },
    json: { type: 'boolean', default: false },
  },
});
const promptTokens = Number(opt['prompt-tokens']);
const decodeTokens = Number(opt['decode-tokens']);
const repeats = Number(opt.repeats);
const threadCounts = opt.threads.split(',').map(Number);
const only = new Set(opt.only.split(',').map((s) => s.trim()));
for (const name of only) {
  if (!['wllama', 'confidant', 'native', 'llamacpp'].includes(name)) throw new Error(`--only: unknown row ${name}`);
}
if (![promptTokens, decodeTokens, repeats, ...threadCounts].every((n) => Number.isInteger(n) && n > 0)) {
  throw new Error('--prompt-tokens, --decode-tokens, --repeats and --threads take positive integers');
}
if (!existsSync(modelPath)) throw new Error(`${modelPath} is missing: run models/fetch.sh`);

// Must stay identical to BENCH_TEXT in crates/cli/src/main.rs (and llamacpp_bench.py).
const BENCH_TEXT =
  'The lighthouse keeper climbed the spiral stairs every evening at dusk, counting the ' +
  'steps as his father had taught him. Below, the harbour filled with fishing boats returning from the ' +
  'grey water, their lanterns swaying like fireflies. He trimmed the wick, polished the great lens, and ' +
  'watched the beam sweep across the rocks where, fifty years before, a schooner had broken apart in a ' +
  'winter storm. ';
// Characters per token of BENCH_TEXT repeated, with SmolLM2's vocabulary: sizes the browser
// prompt only when llama-cpp-python is missing (the rows still report the real count).
const CHARS_PER_TOKEN = 5.0;
const modelUrl = '/models/SmolLM2-135M-Instruct-Q4_1.gguf';
const wllamaDir = join(root, 'tests/node_modules/@wllama/wllama');
const log = (line) => process.stderr.write(`${line}\n`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const lastLine = (s) => (s ?? '').trim().split('\n').filter(Boolean).pop() ?? '';
const errorLine = (s) => (s ?? '').split('\n').find((l) => /^error/i.test(l)) ?? lastLine(s);
// Confidant names its CPU adapter "CPU, N threads".
const adapterThreads = (name) => Number(/(\d+) threads?/.exec(name ?? '')?.[1]) || 'default';

function machineInfo() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const field = (name) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(cpuinfo)?.[1] ?? '';
  const flags = new Set(field('flags').split(/\s+/));
  return {
    cpu: field('model name') || 'unknown',
    cores: cpus().length,
    simd: ['avx2', 'fma', 'avx512f', 'avx512_vnni', 'amx_int8'].filter((f) => flags.has(f)),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    loadStart: loadavg()[0],
  };
}

// CPU time in clock ticks: the whole machine from /proc/stat, this process and its descendants
// (Chromium, python, the CLI) from /proc/PID/stat, so the rest is other processes' work.
function cpuTicks() {
  const [, ...f] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const procs = new Map();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // ppid; utime + stime + cutime + cstime (children already waited for count in the parent)
      procs.set(Number(pid), { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]) });
    } catch {
      // gone meanwhile
    }
  }
  const mine = new Set([process.pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of procs) if (!mine.has(pid) && mine.has(p.ppid)) mine.add(pid), (grew = true);
  }
  let own = 0;
  for (const pid of mine) own += procs.get(pid)?.ticks ?? 0;
  return { busy: user + nice + system + irq + softirq, steal, total: user + nice + system + idle + iowait + irq + softirq + steal, own };
}
/** Start watching; the returned function gives { others, steal } in cores, averaged since. */
function watchCpu() {
  const a = cpuTicks();
  return () => {
    const b = cpuTicks();
    const cores = (ticks) => (Math.max(0, ticks) / Math.max(1, b.total - a.total)) * cpus().length;
    return { others: cores(b.busy - a.busy - (b.own - a.own)), steal: cores(b.steal - a.steal) };
  };
}
const DISTURBED = 0.1; // cores taken by others above which a row is marked

// Rows are { engine, where, threads, available, reason?, prompt_tokens, prefill_tok_s, decode_tok_s, ... }.
const unavailable = (base, reason) => ({ ...base, available: false, reason });
/** A row from the counted runs (warm-up already dropped), each { prompt_tokens, decode_tokens, prefill_tok_s, decode_tok_s }. */
function summarize(base, counted, extra = {}) {
  return {
    ...base,
    available: true,
    prompt_tokens: counted[0].prompt_tokens,
    decode_tokens: counted[0].decode_tokens,
    prefill_tok_s: median(counted.map((r) => r.prefill_tok_s)),
    decode_tok_s: median(counted.map((r) => r.decode_tok_s)),
    runs: counted,
    ...extra,
  };
}

const haveLlamaCpp = () => spawnSync(opt.python, ['-c', 'import llama_cpp']).status === 0;
/** llamacpp_bench.py: the prompt (ids and text) and, for `threads` ('' for none), llama.cpp's timings. */
function runLlamaCpp(threads) {
  const script = join(root, 'tests/bench/llamacpp_bench.py');
  const args = [script, '--model', modelPath, '--prompt-tokens', String(promptTokens), '--decode-tokens', String(decodeTokens), '--repeats', String(repeats), '--threads', threads];
  const out = spawnSync(opt.python, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
  if (out.status !== 0) throw new Error(`${script} failed (exit ${out.status})`);
  return JSON.parse(lastLine(out.stdout));
}

const llamaCppMissing =
  `llama-cpp-python is not importable by ${opt.python}; install it (a few minutes), e.g. in a venv:\n` +
  '  python3 -m venv ~/.venvs/llamacpp && CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON ' +
  '-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" ~/.venvs/llamacpp/bin/pip install llama-cpp-python\n' +
  'then pass --python ~/.venvs/llamacpp/bin/python (or set LLAMACPP_PYTHON)';

/** `confidant bench --backend cpu`: its own warm-up and median. */
function runNative() {
  const base = { engine: 'Confidant CPU (`confidant bench --backend cpu`)', where: 'native', threads: 'default' };
  const cli = join(root, 'target/release/confidant');
  if (!existsSync(cli)) return unavailable(base, `${cli} is not built (cargo build --release -p confidant-cli)`);
  log('Confidant (native CLI, --backend cpu)…');
  const args = ['bench', '--model', modelPath, '--backend', 'cpu', '--prompt-tokens', String(promptTokens), '--decode-tokens', String(decodeTokens), '--repeats', String(repeats), '--json'];
  const watch = watchCpu();
  const out = spawnSync(cli, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  const cpu = watch();
  if (out.status !== 0) {
    // A CLI without the flag (or without the value) is "not yet"; any other error is a failure.
    if (/unexpected argument '--backend'/.test(out.stderr)) return unavailable(base, '`confidant bench` has no `--backend` flag yet');
    if (/--backend/.test(out.stderr)) return unavailable(base, errorLine(out.stderr));
    return unavailable({ ...base, failed: true }, errorLine(out.stderr) || `exit ${out.status}`);
  }
  const r = JSON.parse(lastLine(out.stdout));
  // Guard against a GPU adapter (lavapipe counts as one) ending up in a CPU row.
  if (r.backend !== undefined && !/cpu/i.test(String(r.backend))) return unavailable(base, `it ran on backend ${r.backend} (${r.adapter}), not the CPU`);
  return { ...base, threads: adapterThreads(r.adapter), available: true, prompt_tokens: r.prompt_tokens, decode_tokens: r.decode_tokens, prefill_tok_s: r.prefill_tok_s, decode_tok_s: r.decode_tok_s, cpu, report: r };
}

/** wllama and the npm package in one cross-origin isolated Chromium page. */
async function runBrowser(prompt) {
  const rows = [];
  const h = await launch({
    needs: [],
    webgpu: false,
    serverOptions: {
      roots: [
        ['/wllama/', join(wllamaDir, 'esm')],
        ['/confidant/', join(root, 'pkg/dist')],
        ['/models/', join(root, 'models')],
        ['/', join(root, 'tests/bench/pages')],
      ],
      // Shared memory (threads) needs a cross-origin isolated page.
      headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
    },
  });
  try {
    const browser = h.browser.version();
    await h.page.goto(`${h.base}/cpu-bench.html`);
    await h.page.waitForFunction(() => window.benchReady === true);
    if ((await h.page.evaluate(() => globalThis.crossOriginIsolated)) !== true) {
      throw new Error('the bench page is not cross-origin isolated (COOP/COEP headers missing?): threads cannot run, refusing to measure');
    }
    const nCtx = promptTokens + decodeTokens + 64; // the browser prompt may tokenize a few tokens longer
    const pageRun = async (fn, args) => {
      const watch = watchCpu();
      try {
        return { ...(await h.page.evaluate(([fn, args]) => window.bench[fn](args), [fn, args])), cpu: watch() };
      } catch (e) {
        log(h.console.slice(-10).join('\n'));
        return { failed: e.message.split('\n')[0] };
      }
    };
    if (only.has('wllama')) {
      const version = JSON.parse(readFileSync(join(wllamaDir, 'package.json'), 'utf8')).version;
      for (const threads of threadCounts) {
        const base = { engine: `wllama ${version}`, where: 'Chromium (wasm)', threads };
        log(`wllama, ${threads} thread${threads > 1 ? 's' : ''}…`);
        const r = await pageRun('runWllama', { modelUrl, threads, prompt, decodeTokens, nCtx, runs: repeats + 1 });
        // timings[0] is the warm-up.
        rows.push(r.failed ? unavailable({ ...base, failed: true }, r.failed) : summarize(base, r.timings.slice(1), { libllama: r.libllama, load_s: r.loadSeconds, cpu: r.cpu }));
      }
    }
    if (only.has('confidant')) {
      const base = { engine: 'Confidant CPU (npm package)', where: 'Chromium (wasm)', threads: 'default' };
      if (!existsSync(join(root, 'pkg/dist/index.js'))) {
        rows.push(unavailable(base, 'pkg/dist is not built (make build)'));
      } else {
        log('Confidant (npm package, backend cpu)…');
        const r = await pageRun('runConfidant', { modelUrl, prompt, decodeTokens, nCtx, runs: repeats + 1 });
        if (r.failed) rows.push(unavailable({ ...base, failed: true }, r.failed));
        else if (r.unavailable) rows.push(unavailable(base, r.unavailable));
        else if (r.info?.backend !== 'cpu') rows.push(unavailable(base, `it ran on backend ${r.info?.backend}, not the CPU`));
        else rows.push(summarize({ ...base, threads: adapterThreads(r.info.adapter?.name) }, r.timings.slice(1), { load_s: r.loadSeconds, cpu: r.cpu }));
      }
    }
    return { browser, rows };
  } finally {
    await h.close();
  }
}

// --- run -------------------------------------------------------------------------------------

const machine = machineInfo();
const rows = [];
let prompt = null;

const llamaCpp = haveLlamaCpp() ? runLlamaCpp('') : null;
if (llamaCpp) {
  prompt = { text: llamaCpp.text, text_tokens: llamaCpp.text_tokens, ids: llamaCpp.ids };
  // One call per thread count, so that each row has its own CPU watch.
  for (const threads of only.has('llamacpp') ? threadCounts : []) {
    log(`llama.cpp (native), ${threads} thread${threads > 1 ? 's' : ''}…`);
    const watch = watchCpu();
    const [r] = runLlamaCpp(String(threads)).results;
    const base = { engine: `llama.cpp (llama-cpp-python ${llamaCpp.llama_cpp_python})`, where: 'native', threads };
    rows.push(summarize(base, r.runs.map((x) => ({ ...x, prompt_tokens: r.prompt_tokens, decode_tokens: r.decode_tokens })), { cpu: watch() }));
  }
} else {
  if (only.has('llamacpp')) {
    log(llamaCppMissing);
    for (const threads of threadCounts) rows.push(unavailable({ engine: 'llama.cpp (llama-cpp-python)', where: 'native', threads }, 'llama-cpp-python is not installed (see above)'));
  }
  const long = BENCH_TEXT.repeat(Math.ceil((promptTokens * CHARS_PER_TOKEN) / BENCH_TEXT.length) + 1);
  prompt = { text: long.slice(0, Math.round(promptTokens * CHARS_PER_TOKEN)), text_tokens: null, ids: null };
}
if (only.has('native')) rows.push(runNative());
let browser = 'not run';
if (only.has('wllama') || only.has('confidant')) {
  const b = await runBrowser(prompt.text);
  browser = b.browser;
  rows.push(...b.rows);
}
machine.loadEnd = loadavg()[0];

// Browser rows first, then native, peers before Confidant within each.
const order = (r) => (r.where === 'native' ? 2 : 0) + (r.engine.startsWith('Confidant') ? 1 : 0);
rows.sort((a, b) => order(a) - order(b));

// Ratios: Confidant in the browser against wllama's best per column; natively against
// llama.cpp with 2 threads.
const ok = (r) => r?.available;
const wllamaRows = rows.filter((r) => r.engine.startsWith('wllama') && ok(r));
const best = (key) => (wllamaRows.length ? Math.max(...wllamaRows.map((r) => r[key])) : null);
const llamaCpp2 = rows.find((r) => r.engine.startsWith('llama.cpp') && r.threads === 2 && ok(r));
for (const r of rows) {
  if (!r.engine.startsWith('Confidant')) continue;
  const peer = r.where === 'native' ? { prefill_tok_s: llamaCpp2?.prefill_tok_s, decode_tok_s: llamaCpp2?.decode_tok_s } : { prefill_tok_s: best('prefill_tok_s'), decode_tok_s: best('decode_tok_s') };
  r.ratio = {};
  for (const key of ['prefill_tok_s', 'decode_tok_s']) r.ratio[key] = ok(r) && peer[key] ? r[key] / peer[key] : null;
}

// What each peer was built with: SIMD decides most of these numbers.
const builds = [];
const wllamaBuild = rows.find((r) => r.libllama);
if (wllamaBuild) builds.push(`${wllamaBuild.engine}: llama.cpp ${wllamaBuild.libllama}, wasm SIMD128`);
if (llamaCpp) {
  const features = [...llamaCpp.system_info.matchAll(/(\w+) = 1/g)].map((m) => m[1]);
  builds.push(`llama-cpp-python ${llamaCpp.llama_cpp_python}: ${features.join(', ')}`);
}

if (opt.json) {
  console.log(JSON.stringify({ date: new Date().toISOString(), machine, browser, builds, promptTokens, decodeTokens, repeats, prompt, rows }, null, 2));
} else {
  const f1 = (x) => (x == null ? 'n/a' : x.toFixed(1));
  const missing = (r) => (r.failed ? 'failed' : 'not available');
  const ratio = (r, key) => (!r.engine.startsWith('Confidant') ? '—' : r.ratio[key] == null ? 'n/a' : `${r.ratio[key].toFixed(2)}×`);
  const others = ({ cpu }) => {
    if (!cpu) return '—';
    const steal = cpu.steal > DISTURBED ? ` + ${cpu.steal.toFixed(2)} steal` : '';
    return `${cpu.others.toFixed(2)}${steal}${cpu.others > DISTURBED || cpu.steal > DISTURBED ? ' ⚠' : ''}`;
  };
  const lines = [
    `CPU, SmolLM2-135M-Instruct Q4_1, ${promptTokens}-token prompt, ${decodeTokens} decoded tokens (EOS ignored), median of ${repeats} after a warm-up; ${new Date().toISOString().slice(0, 10)}.`,
    `Machine: ${machine.cpu}, ${machine.cores} cores (${machine.simd.join(', ') || 'no AVX2'}), ${machine.memoryGiB} GiB; Chromium ${browser}; load average ${machine.loadStart.toFixed(2)} before, ${machine.loadEnd.toFixed(2)} after.`,
    '',
    '| engine | where | threads | prompt tokens | prefill tok/s | decode tok/s | prefill vs peer | decode vs peer | other processes (cores) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.engine} | ${r.where} | ${r.threads} | ${r.available ? r.prompt_tokens : 'n/a'} | ${r.available ? f1(r.prefill_tok_s) : missing(r)} | ${r.available ? f1(r.decode_tok_s) : missing(r)} | ${ratio(r, 'prefill_tok_s')} | ${ratio(r, 'decode_tok_s')} | ${others(r)} |`),
    '',
    "Peers: Confidant in Chromium ÷ wllama's best thread count per column; native Confidant ÷ llama.cpp with 2 threads.",
    `Other processes: CPU that processes outside this benchmark took while the row ran, in cores; ⚠ above ${DISTURBED} (then the row is a floor).`,
    ...(builds.length ? [`Builds: ${builds.join('; ')}.`] : []),
    ...rows.filter((r) => !r.available).map((r) => `- ${r.engine}, ${r.where}, threads ${r.threads}: ${missing(r)}: ${r.reason}`),
  ];
  console.log(lines.join('\n'));
}
// A run that fails is a broken benchmark; "not available" is not a failure.
if (rows.some((r) => r.failed)) process.exitCode = 1;
