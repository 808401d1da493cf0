// Runs a wasm32-wasip1 program (a test binary or the benchmark) in Node's WASI:
//   node wasi-runner.mjs program.wasm [args…]
// Cargo uses it as the target runner; see README.md for the command.
import { readFile } from 'node:fs/promises';
import { argv, env, exit } from 'node:process';
import { WASI } from 'node:wasi';

const [file, ...args] = argv.slice(2);
if (!file) {
  console.error('usage: node wasi-runner.mjs program.wasm [args…]');
  exit(2);
}
const wasi = new WASI({ version: 'preview1', args: [file, ...args], env, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
