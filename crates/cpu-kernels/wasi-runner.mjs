// Runs a wasm32-wasip1 program (a test binary or the benchmark) in Node's WASI:
//   node wasi-runner.mjs program.wasm [args…]
// Cargo uses it as the target runner; see README.md for the command.
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { argv, env, execArgv, execPath, exit } from 'node:process';
import { WASI } from 'node:wasi';

// Node 20 sometimes crashes (SIGSEGV) as it exits after a wasm program has finished, while
// V8's background threads still compile or collect; with --single-threaded it does not, and
// the program's own speed is the same (it runs on the main thread either way).
if (!execArgv.includes('--single-threaded')) {
  const child = spawnSync(execPath, ['--single-threaded', '--no-warnings', ...execArgv, ...argv.slice(1)], { stdio: 'inherit' });
  exit(child.status ?? 1);
}

const [file, ...args] = argv.slice(2);
if (!file) {
  console.error('usage: node wasi-runner.mjs program.wasm [args…]');
  exit(2);
}
const wasi = new WASI({ version: 'preview1', args: [file, ...args], env, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
