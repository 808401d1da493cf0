// The engine host: owns the wasm engine, serves one request at a time. It runs in a dedicated
// Web Worker by default (worker.ts), or on the calling thread when asked.

import type { ChatEngine, Engine, MemoryEngine } from './wasm/confidant_web.js';
import { type BackendChoice, chooseBackend, describeChoice } from './backend.js';
import { ConfidantError, serializeError } from './errors.js';
import { joinParts, orderParts, partName, splitPart } from './split.js';
import { type HeaderCheck, loadModelFile } from './download.js';
import { CHAT_WRITES, MEMORY_WRITES } from './operations.js';
import type { EmbedderPayload, GenerationResult, HostRequest, HostResponse, ModelPayload } from './protocol.js';
import type { Backend, EngineInfo, FinishReason, MeasuredSpeed, Progress, Timings, Usage } from './types.js';

type Post = (message: HostResponse) => void;

/** The wasm engine's bindings: both builds export the same API. */
type Wasm = typeof import('./wasm/confidant_web.js');
/** The multi-threaded build adds the rayon thread pool (Web Workers over shared memory). */
type ThreadedWasm = Wasm & { initThreadPool(threads: number): Promise<void> };

/**
 * Load the wasm build `choice` needs: the multi-threaded one (CPU only) when it runs on
 * threads, else the single-threaded one (WebGPU and CPU). Literal import paths, so bundlers
 * see both.
 */
async function loadWasm(
  choice: BackendChoice,
  urls: { wasmUrl: string; threadsWasmUrl: string },
  onProgress: (p: Progress) => void,
): Promise<{ wasm: Wasm; choice: BackendChoice }> {
  if (choice.threads > 0) {
    try {
      const wasm = (await import('./wasm-threads/confidant_web.js')) as unknown as ThreadedWasm;
      await wasm.default({ module_or_path: await fetchWithProgress(urls.threadsWasmUrl, onProgress) });
      await wasm.initThreadPool(choice.threads);
      return { wasm, choice };
    } catch (e) {
      // A host that drops the threaded files, or a browser that refuses the workers: the
      // single-threaded build still runs.
      choice = { ...choice, threads: 0, noThreads: `the multi-threaded build did not start: ${serializeError(e).message}` };
    }
  }
  const wasm = await import('./wasm/confidant_web.js');
  await wasm.default({ module_or_path: await fetchWithProgress(urls.wasmUrl, onProgress) });
  return { wasm, choice };
}

/** Prompt tokens read per step: a long prompt reports progress, and can be stopped, between chunks. */
const PREFILL_CHUNK = 64;

interface WasmError {
  code?: string;
  needed?: number;
}

/**
 * Let queued messages (aborts, new requests) in between two tokens. On the CPU a step finishes
 * without waiting on anything, so a loop of awaits would never leave the microtask queue; a
 * message to ourselves is a task, behind those already queued, and costs microseconds (unlike
 * setTimeout, which browsers clamp to 4 ms).
 */
const yieldChannel = typeof MessageChannel === 'function' ? new MessageChannel() : null;
function yieldToEvents(): Promise<void> {
  const channel = yieldChannel;
  if (!channel) return new Promise((resolve) => setTimeout(resolve, 0));
  return new Promise((resolve) => {
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
}

/**
 * The most wasm memory a model's weights and cache may take on the CPU: the 4 GiB a wasm32
 * memory can grow to, less what the engine needs besides (its code, the embedding model,
 * activations, the tokenizer).
 */
const CPU_MEMORY_LIMIT = 4 * 2 ** 30 - 384 * 2 ** 20;

/** Workers' synchronous Blob reader (absent on a page's main thread). */
const FileReaderSyncClass = (globalThis as { FileReaderSync?: new () => { readAsArrayBuffer(blob: Blob): ArrayBuffer } }).FileReaderSync;

/** Reads `[start, end)` of Blobs laid end to end, synchronously (FileReaderSync: workers only), reporting the bytes read. */
function rangeReader(blobs: Blob[], onRead: (loaded: number) => void): (start: number, end: number) => Uint8Array {
  if (!FileReaderSyncClass) throw new ConfidantError('internal', 'No synchronous file reads on this thread.');
  const reader = new FileReaderSyncClass();
  const starts = blobs.map((_, i) => blobs.slice(0, i).reduce((n, b) => n + b.size, 0));
  let loaded = 0;
  return (start, end) => {
    let i = starts.length - 1;
    while (i > 0 && starts[i]! > start) i -= 1;
    const blob = blobs[i];
    if (!blob) throw new ConfidantError('model_format', `byte ${start} lies outside the model file`);
    const bytes = new Uint8Array(reader.readAsArrayBuffer(blob.slice(start - starts[i]!, end - starts[i]!)));
    loaded += bytes.byteLength;
    onRead(loaded);
    return bytes;
  };
}

/**
 * Throws for a model the engine cannot run (or that cannot fit in `memoryLimit` at
 * `contextLength`, or needs a GPU buffer over `bufferLimit`); false while the header is still incomplete.
 */
function checkHeader(wasm: Wasm, prefix: Uint8Array, fileLength: number, contextLength?: number, memoryLimit?: number, bufferLimit?: number): boolean {
  try {
    wasm.inspectModel(prefix, fileLength, contextLength, memoryLimit, bufferLimit);
    return true;
  } catch (e) {
    if ((e as WasmError).code === 'need_more_bytes') return false;
    const { code, message } = serializeError(e);
    throw new ConfidantError(code, message);
  }
}

async function fetchWithProgress(url: string, onProgress: (p: Progress) => void): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok || !response.body) {
    throw new ConfidantError('model_fetch', `Could not load the engine (${url}): HTTP ${response.status}`);
  }
  const total = Number(response.headers.get('Content-Length') ?? 0);
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    onProgress({ stage: 'compile', loaded, total });
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return bytes;
}

/**
 * Time a short greedy generation: a prompt of up to 32 tokens, then five more tokens, each timed
 * (the median: the first tokens on a GPU also compile its kernels). Half a second or so on a CPU.
 */
async function measureSpeed(engine: Engine): Promise<MeasuredSpeed | null> {
  const { contextLength } = engine.info() as EngineInfo;
  const ids = engine.encodeRaw('The lighthouse keeper climbed the stairs every evening to light the lamp for the ships. '.repeat(3)).slice(0, Math.min(32, contextLength - 8));
  if (ids.length < 2) return null;
  try {
    engine.begin(ids, { max_tokens: 6, temperature: 0, ignore_eos: true, cache_prompt: false });
    let started = performance.now();
    if (!(await engine.step())) return null;
    const prefillTokS = ids.length / Math.max(1e-3, (performance.now() - started) / 1000);
    const steps: number[] = [];
    for (;;) {
      started = performance.now();
      if (!(await engine.step())) break;
      steps.push(performance.now() - started);
    }
    steps.sort((a, b) => a - b);
    const median = steps[Math.floor(steps.length / 2)];
    return median === undefined ? null : { prefillTokS, decodeTokS: 1000 / Math.max(1e-3, median) };
  } finally {
    engine.abort();
  }
}

/**
 * Every GPU device the engine asks for, watched for loss (burn creates them inside wasm, out of
 * reach otherwise). `self.__confidantDevices` lets a test destroy one, as a driver reset would.
 */
function watchGpuDevices(onLost: (message: string) => void): void {
  const scope = globalThis as unknown as { GPUAdapter?: { prototype: { requestDevice: (...args: unknown[]) => Promise<unknown> } }; __confidantDevices?: unknown[] };
  const proto = scope.GPUAdapter?.prototype;
  if (!proto || scope.__confidantDevices) return;
  const devices: unknown[] = (scope.__confidantDevices = []);
  const requestDevice = proto.requestDevice;
  proto.requestDevice = async function (this: unknown, ...args: unknown[]) {
    const device = (await requestDevice.apply(this, args)) as { lost: Promise<{ reason: string; message: string }> };
    devices.push(device);
    void device.lost.then((info) => onLost(info.message || info.reason || 'no reason given'));
    return device;
  };
}

export class EngineHost {
  private engine: Engine | null = null;
  private memory: MemoryEngine | null = null;
  /** Characters, sessions and the chat turn, over the engine and the memory. */
  private chat: ChatEngine | null = null;
  /** Rolling summaries, written with the model when nothing else waits. */
  private backgroundTimer: ReturnType<typeof setTimeout> | null = null;
  /** Tells the other tabs (their workers) of this origin that stored memories changed. */
  private memoryNews: BroadcastChannel | null = null;
  /** Another tab changed the stored memories: reload what is cached before the next call. */
  private memoryStale = false;
  /** Index upkeep (rebuild when the exact segment grew, save changed indexes) once idle. */
  private maintainTimer: ReturnType<typeof setTimeout> | null = null;
  private wasm: Wasm | null = null;
  /** The backend the engine and the embedder run on, once chosen. */
  private choice: BackendChoice | null = null;
  private readonly queue: HostRequest[] = [];
  private readonly aborted = new Set<number>();
  /** The page is going away: the reply under way is saved before the next token. */
  private flushWanted = false;
  private busy = false;
  private modelName = '';
  /** A trap or a lost device: this host serves nothing more (the page starts a new worker). */
  private dead = false;
  private disposing = false;

  constructor(private readonly post: Post) {
    watchGpuDevices((message) => this.crash({ code: 'device_lost', message: `The GPU was lost (${message}); the engine is restarted.` }));
  }

  /** Tell the page this engine cannot go on; it fails what is pending and restarts the worker. */
  private crash(error: { code: 'internal' | 'device_lost'; message: string }): void {
    if (this.dead || this.disposing) return;
    this.dead = true;
    this.post({ type: 'crashed', id: 0, error });
  }

  /** Take a message from the API. Aborts act at once; everything else waits its turn. */
  receive(request: HostRequest): void {
    if (request.type === 'abort') {
      this.aborted.add(request.id);
      return;
    }
    if (request.type === 'flush') {
      this.flushWanted = true;
      return;
    }
    this.queue.push(request);
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    while (this.queue.length > 0) {
      const request = this.queue.shift()!;
      try {
        if (this.dead) throw new ConfidantError('internal', 'The engine stopped; it is being restarted.');
        if (this.aborted.delete(request.id)) throw new ConfidantError('aborted', 'The request was aborted before it started.');
        // Tests only, set from devtools (no message reaches it): this request traps, as a bug in
        // the wasm engine would.
        const scope = globalThis as { __confidantTrapNext?: boolean };
        if (scope.__confidantTrapNext) {
          scope.__confidantTrapNext = false;
          throw new WebAssembly.RuntimeError('unreachable executed (test trigger)');
        }
        await this.serve(request);
      } catch (e) {
        const error = serializeError(e);
        this.post({ type: 'error', id: request.id, error });
        // After a trap the wasm instance (its borrows, its memory) cannot be trusted; after a lost
        // device neither can the model on it.
        if (e instanceof WebAssembly.RuntimeError || error.code === 'device_lost') this.crash({ code: error.code === 'device_lost' ? 'device_lost' : 'internal', message: error.message });
      }
      this.aborted.delete(request.id);
    }
    this.busy = false;
  }

  private async serve(request: HostRequest): Promise<void> {
    switch (request.type) {
      case 'open':
        await this.openEngine(request, (p) => this.post({ type: 'progress', id: request.id, progress: p }));
        this.post({ type: 'result', id: request.id, value: null });
        return;
      case 'load':
        return this.load(request);
      case 'generate':
        return this.generate(request);
      case 'memory':
        return this.memoryCall(request);
      case 'chat':
        return this.chatCall(request);
      case 'dispose':
        this.disposing = true;
        this.chat?.free();
        this.chat = null;
        if (this.backgroundTimer) clearTimeout(this.backgroundTimer);
        this.backgroundTimer = null;
        this.engine?.free();
        this.engine = null;
        this.memory?.free();
        this.memory = null;
        this.memoryNews?.close();
        this.memoryNews = null;
        if (this.maintainTimer) clearTimeout(this.maintainTimer);
        this.maintainTimer = null;
        this.post({ type: 'disposed', id: request.id });
        return;
      default:
        return;
    }
  }

  /** Load the engine's code: one wasm build per worker, chosen by the first open or load. */
  private async openEngine(
    request: { backend: Backend; threads?: number; wasmUrl: string; threadsWasmUrl: string },
    progress: (p: Progress) => void,
  ): Promise<{ wasm: Wasm; choice: BackendChoice }> {
    if (!this.wasm || !this.choice) {
      const loaded = await loadWasm(await chooseBackend(request.backend, request.threads), request, progress);
      this.wasm = loaded.wasm;
      this.choice = loaded.choice;
    }
    return { wasm: this.wasm, choice: this.choice };
  }

  private async load(request: Extract<HostRequest, { type: 'load' }>): Promise<void> {
    const progress = (p: Progress) => this.post({ type: 'progress', id: request.id, progress: p });
    const { wasm, choice } = await this.openEngine(request, progress);
    // On the CPU the weights live in wasm memory; on a GPU each buffer has a limit (a long
    // context's key/value cache can pass it): a model that cannot fit is refused before its
    // download (from its header) or its load, naming the numbers.
    const memoryLimit = choice.backend === 'cpu' ? CPU_MEMORY_LIMIT : undefined;
    const check = (prefix: Uint8Array, length: number) => checkHeader(wasm, prefix, length, request.contextLength, memoryLimit, choice.bufferLimit);
    const data = await this.modelData(request.model, progress, request.id, check);
    const total = 'bytes' in data ? data.bytes.byteLength : data.blobs.reduce((n, b) => n + b.size, 0);
    progress({ stage: 'load', loaded: 0, total });
    this.engine?.free();
    this.engine = null;
    wasm.setPrefillKernels(request.gpuPrefill ?? 'auto');
    let engine: Engine;
    if ('blobs' in data && FileReaderSyncClass) {
      // A tensor at a time from the file (the browser's cache or the user's): only the header
      // and one tensor's bytes pass through wasm memory, not the whole file.
      const read = rangeReader(data.blobs, (loaded) => progress({ stage: 'load', loaded, total }));
      engine = await wasm.Engine.loadStreamed(read, Float64Array.from(data.blobs.map((b) => b.size)), request.contextLength, choice.backend, memoryLimit);
    } else {
      // No synchronous reads on this thread (the engine runs on the page's): the file whole.
      const parts = 'bytes' in data ? [data.bytes] : await Promise.all(data.blobs.map(async (b) => new Uint8Array(await b.arrayBuffer())));
      const { bytes, lengths } = joinParts(parts);
      engine = await wasm.Engine.load(bytes, request.contextLength, choice.backend, lengths.length > 1 ? Float64Array.from(lengths) : undefined);
    }
    if (request.chatTemplate !== undefined) {
      try {
        engine.setChatTemplate(request.chatTemplate);
      } catch (e) {
        engine.free();
        throw e;
      }
    }
    this.engine = engine;
    const speed = request.measureSpeed ? await measureSpeed(engine) : null;
    const info: EngineInfo = { ...(engine.info() as EngineInfo), backendReason: describeChoice(choice), threads: Math.max(1, choice.threads), gpu: choice.gpu, speed };
    this.modelName = info.model.name;
    // Chats opened before (storage only, or on the previous model) reply with this one now.
    this.chat?.attachModel(engine);
    progress({ stage: 'load', loaded: total, total });
    this.post({ type: 'loaded', id: request.id, info });
  }

  /**
   * Where the model's bytes are: Blobs (the browser's cached copy of a URL, the user's files),
   * read a range at a time while loading, or bytes given. A GGUF split in parts is its parts in
   * order: files (ordered by name), or the URL of the first part, whose siblings are fetched and
   * cached each under its own URL. `check` sees the (first) file's header as soon as it is there.
   */
  private async modelData(model: ModelPayload, progress: (p: Progress) => void, id: number, check: HeaderCheck): Promise<{ blobs: Blob[] } | { bytes: Uint8Array }> {
    if ('bytes' in model) {
      const bytes = new Uint8Array(model.bytes);
      check(bytes, bytes.byteLength);
      return { bytes };
    }
    if ('url' in model) {
      const split = splitPart(new URL(model.url).pathname);
      const urls = split?.no === 1 ? Array.from({ length: split.count }, (_, i) => partName(model.url, i + 1)) : [model.url];
      const blobs: Blob[] = [];
      for (const [i, url] of urls.entries()) {
        const file = urls.length > 1 ? decodeURIComponent(url.slice(url.lastIndexOf('/') + 1)) : undefined;
        // Only the first part holds the metadata the engine checks.
        const source = { ...model, url, sha256: i === 0 ? model.sha256 : undefined };
        blobs.push(await this.withAbort(id, (signal) => loadModelFile(source, (p) => progress(file ? { ...p, file } : p), i === 0 ? check : () => true, signal)));
      }
      return { blobs };
    }
    const blobs = 'file' in model ? [model.file] : orderParts(model.files);
    const total = blobs.reduce((n, b) => n + b.size, 0);
    progress({ stage: 'download', loaded: 0, total });
    // The header, before anything else is read (it may run past the first megabytes).
    const first = blobs[0]!;
    for (let want = Math.min(first.size, 1 << 20); ; want = Math.min(first.size, want * 4)) {
      if (check(new Uint8Array(await first.slice(0, want).arrayBuffer()), first.size) || want >= first.size) break;
    }
    progress({ stage: 'download', loaded: total, total });
    return { blobs };
  }

  /** Run `fn` with a signal that fires when request `id` is aborted. */
  private async withAbort<T>(id: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const watch = setInterval(() => this.aborted.has(id) && controller.abort(), 50);
    try {
      return await fn(controller.signal);
    } finally {
      clearInterval(watch);
    }
  }

  /** The embedding model's files, from the browser's cache or downloaded into it. */
  private async embedderFile(url: string, progress: (p: Progress) => void, id: number): Promise<Uint8Array> {
    const file = await this.withAbort(id, (signal) => loadModelFile({ url }, progress, () => true, signal));
    return new Uint8Array(await file.arrayBuffer());
  }

  private async generate(request: Extract<HostRequest, { type: 'generate' }>): Promise<void> {
    const engine = this.engine;
    if (!engine) throw new ConfidantError('model_not_loaded', 'No model is loaded: call loadModel first.');
    const { prompt, options } = request;
    // A summary being written in the background gives the model up (it resumes later).
    this.chat?.cancelBackground();
    const ids = typeof prompt === 'string' ? engine.encodeRaw(prompt) : engine.encodeChat(prompt);
    engine.begin(ids, options);
    let text = '';
    try {
      const start = engine.prefillProgress() as { done: number; total: number } | null;
      if (start && start.total > PREFILL_CHUNK) this.post({ type: 'prefill', id: request.id, done: start.done, total: start.total });
      for (;;) {
        const read = (await engine.prefill(PREFILL_CHUNK)) as { done: number; total: number } | null;
        await yieldToEvents();
        if (this.aborted.has(request.id)) {
          engine.abort();
          throw new ConfidantError('aborted', 'The generation was aborted.');
        }
        if (!read) break;
        this.post({ type: 'prefill', id: request.id, done: read.done, total: read.total });
      }
      for (;;) {
        // Messages (aborts) are handled while the GPU works on each step.
        const step = (await engine.step()) as { token: number; text: string } | null;
        await yieldToEvents();
        if (this.aborted.has(request.id)) {
          engine.abort();
          throw new ConfidantError('aborted', 'The generation was aborted.');
        }
        if (!step) break;
        text += step.text;
        this.post({ type: 'token', id: request.id, text: step.text, token: step.token });
      }
    } catch (e) {
      engine.abort();
      throw e;
    }
    // The engine's own usage and timings types, the ones a chat reply reports too.
    const stats = engine.stats() as { usage: Usage; timings: Timings; finish_reason: FinishReason | null };
    const result: GenerationResult = { text, finish_reason: stats.finish_reason ?? 'stop', usage: stats.usage, timings: stats.timings };
    this.post({ type: 'done', id: request.id, result });
  }

  /**
   * Open the memory database (no model needed: lists, forgetting, backups), and with `withEmbedder`
   * also load the embedding model (cached like the language model), for anything that embeds text.
   */
  private async openMemory(embedder: EmbedderPayload | null, database: string, progress: (p: Progress) => void, id: number, withEmbedder: boolean): Promise<MemoryEngine> {
    if (!this.wasm || !this.choice) throw new ConfidantError('bad_request', 'The engine is not open (was it disposed?).');
    if (!this.memory) {
      // An older tab that keeps the database open holds the upgrade: the page is told, and this waits.
      this.memory = await this.wasm.MemoryEngine.openStore(database, () => progress({ stage: 'blocked', loaded: 0, total: 0 }));
      if (typeof BroadcastChannel === 'function') {
        this.memoryNews = new BroadcastChannel(`confidant-memory:${database}`);
        this.memoryNews.onmessage = () => {
          this.memoryStale = true;
        };
      }
    }
    if (!withEmbedder || this.memory.hasEmbedder()) return this.memory;
    if (!embedder) {
      throw new ConfidantError('model_not_loaded', 'Embedding text needs the embedding model: load a model first, or pass embedder: { url } to Confidant.open.');
    }
    const folder = embedder.url.endsWith('/') ? embedder.url : `${embedder.url}/`;
    const files: Uint8Array[] = [];
    for (const name of ['model.safetensors', 'tokenizer.json', 'config.json']) {
      const report = (p: Progress) => progress({ ...p, what: 'embedder', file: name });
      files.push(await this.embedderFile(new URL(name, folder).href, report, id));
    }
    const total = files.reduce((n, f) => n + f.byteLength, 0);
    progress({ stage: 'load', loaded: 0, total, what: 'embedder' });
    await this.memory.loadEmbedder(files[0], files[1], files[2], this.choice.backend);
    progress({ stage: 'load', loaded: total, total, what: 'embedder' });
    return this.memory;
  }

  private async memoryCall(request: Extract<HostRequest, { type: 'memory' }>): Promise<void> {
    const progress = (p: Progress) => this.post({ type: 'progress', id: request.id, progress: p });
    const patch = request.args[1] as { text?: unknown } | undefined;
    const embeds = ['add', 'search', 'embed', 'load'].includes(request.op) || (request.op === 'update' && patch?.text !== undefined);
    const memory = await this.openMemory(request.embedder, request.database, progress, request.id, embeds);
    if (this.memoryStale) {
      this.memoryStale = false;
      await memory.unload();
    }
    const [a, b] = request.args;
    let value: unknown;
    switch (request.op) {
      case 'add':
        value = await memory.add(a);
        break;
      case 'search':
        value = await memory.search(a);
        break;
      case 'list':
        value = await memory.list(a);
        break;
      case 'update':
        value = await memory.update(String(a), b);
        break;
      case 'forget':
        value = await memory.forget(String(a));
        break;
      case 'embed':
        value = await memory.embed(a);
        break;
      case 'stats':
        value = await memory.stats(a);
        break;
      case 'maintain':
        value = await memory.maintain();
        break;
      case 'load':
        value = null;
        break;
      default:
        throw new ConfidantError('bad_request', `Unknown memory operation ${String(request.op)}.`);
    }
    if (MEMORY_WRITES[request.op]) {
      this.memoryNews?.postMessage('changed');
      this.scheduleMaintain(request.database);
    }
    this.post({ type: 'result', id: request.id, value });
  }

  private async chatCall(request: Extract<HostRequest, { type: 'chat' }>): Promise<void> {
    const progress = (p: Progress) => this.post({ type: 'progress', id: request.id, progress: p });
    // Replies (and a case-set run) need the model (checked first: no embedder download for a
    // call that must fail); they and edits embed text. Everything else works on storage alone.
    const replies = ['send', 'regenerate', 'continueReply', 'impersonate', 'background', 'evaluate'].includes(request.op);
    if (replies && !this.engine) throw new ConfidantError('model_not_loaded', 'No model is loaded: call loadModel before asking for a reply.');
    const embeds = replies || ['editMessage', 'chooseSwipe', 'addUserFact', 'updateUserFact'].includes(request.op);
    const memory = await this.openMemory(request.embedder, request.database, progress, request.id, embeds);
    if (this.memoryStale) {
      this.memoryStale = false;
      await memory.unload();
    }
    const wasm = this.wasm;
    if (!wasm) throw new ConfidantError('bad_request', 'The engine is not open (was it disposed?).');
    if (!this.chat) {
      this.chat = (await wasm.ChatEngine.openStore(memory, request.database)) as ChatEngine;
      if (this.engine) this.chat.attachModel(this.engine);
    }
    const chat = this.chat;
    const a = request.args as any[];
    let value: unknown = null;
    switch (request.op) {
      case 'importCharacter':
        value = await chat.importCharacter(a[0]);
        break;
      case 'listCharacters':
        value = await chat.listCharacters();
        break;
      case 'getCharacter':
        value = await chat.getCharacter(a[0]);
        break;
      case 'updateCharacter':
        value = await chat.updateCharacter(a[0], a[1]);
        break;
      case 'removeCharacter':
        value = await chat.removeCharacter(a[0]);
        break;
      case 'exportCharacter':
        value = await chat.exportCharacter(a[0], a[1], a[2]);
        break;
      case 'createSession':
        value = await chat.createSession(a[0], a[1], a[2] ?? undefined);
        break;
      case 'listSessions':
        value = await chat.listSessions(a[0] ?? undefined);
        break;
      case 'getSession':
        value = await chat.getSession(a[0]);
        break;
      case 'removeSession':
        value = await chat.removeSession(a[0]);
        break;
      case 'history':
        value = await chat.history(a[0]);
        break;
      case 'send':
      case 'regenerate':
      case 'continueReply':
      case 'impersonate': {
        if (request.op === 'send') {
          const message = await chat.send(a[0], a[1], a[2]);
          this.post({ type: 'event', id: request.id, event: { type: 'user', message } });
        } else if (request.op === 'continueReply') {
          await chat.continueReply(a[0], a[1]);
        } else if (request.op === 'impersonate') {
          await chat.impersonate(a[0], a[1]);
        } else {
          await chat.regenerate(a[0], a[1]);
        }
        for (;;) {
          // An abort ends the reply at the next token; what was written is kept.
          if (this.aborted.delete(request.id)) chat.abort();
          if (this.flushWanted) {
            this.flushWanted = false;
            // Best effort: the reply is saved again when it ends.
            await chat.savePartial().catch(() => {});
          }
          const event = await chat.nextEvent();
          await yieldToEvents();
          if (!event) break;
          this.post({ type: 'event', id: request.id, event });
        }
        break;
      }
      case 'editMessage':
        value = await chat.editMessage(a[0], a[1], a[2]);
        break;
      case 'deleteMessage':
        value = await chat.deleteMessage(a[0], a[1]);
        break;
      case 'setGreeting':
        value = await chat.setGreeting(a[0], a[1]);
        break;
      case 'chooseSwipe':
        value = await chat.chooseSwipe(a[0], a[1], a[2]);
        break;
      case 'unreadable':
        value = await chat.unreadable();
        break;
      case 'userProfile':
        value = await chat.userProfile();
        break;
      case 'addUserFact':
        value = await chat.addUserFact(a[0], a[1]);
        break;
      case 'updateUserFact':
        value = await chat.updateUserFact(a[0], a[1] ?? undefined, a[2] ?? undefined);
        break;
      case 'removeUserFact':
        value = await chat.removeUserFact(a[0]);
        break;
      case 'debugPrompt':
        value = chat.debugPrompt(a[0]);
        break;
      case 'evaluate':
        value = await chat.evaluate(a[0], a[1]);
        break;
      case 'exportAll':
        value = await chat.exportAll();
        break;
      case 'importAll':
        value = await chat.importAll(a[0], a[1] === true);
        break;
      case 'wipe':
        value = await chat.wipe();
        break;
      case 'background':
        // One token at a time, while nothing else is asked for.
        while (this.queue.length === 0 && (await chat.backgroundStep())) {
          await yieldToEvents();
        }
        break;
      default:
        throw new ConfidantError('bad_request', `Unknown chat operation ${String(request.op)}.`);
    }
    if (CHAT_WRITES[request.op]) {
      this.memoryNews?.postMessage('changed');
      this.scheduleMaintain(request.database);
    }
    if (chat.hasBackgroundWork()) this.scheduleBackground(request.database);
    this.post({ type: 'result', id: request.id, value });
  }

  /** Background work (summaries) a second after the worker went idle. */
  private scheduleBackground(database: string): void {
    if (this.backgroundTimer) clearTimeout(this.backgroundTimer);
    this.backgroundTimer = setTimeout(() => {
      this.backgroundTimer = null;
      if (!this.chat || !this.chat.hasBackgroundWork()) return;
      if (this.busy || this.queue.length > 0) return this.scheduleBackground(database);
      this.receive({ type: 'chat', id: 0, op: 'background', args: [], embedder: null, database });
    }, 1000);
  }

  /** Run `maintain` two seconds after the last change, when nothing else waits. */
  private scheduleMaintain(database: string): void {
    if (this.maintainTimer) clearTimeout(this.maintainTimer);
    this.maintainTimer = setTimeout(() => {
      this.maintainTimer = null;
      if (!this.memory) return;
      if (this.busy || this.queue.length > 0) return this.scheduleMaintain(database);
      // Id 0 is nobody's request: its result goes nowhere.
      this.receive({ type: 'memory', id: 0, op: 'maintain', args: [], embedder: null, database });
    }, 2000);
  }

  get model(): string {
    return this.modelName;
  }
}
