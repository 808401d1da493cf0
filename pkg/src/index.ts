// Confidant: a llama-family language model running in the browser on WebGPU or the CPU, with an
// OpenAI-style API. The engine lives in a dedicated Web Worker; this module is the page's side
// (the link to the worker in channel.ts, the streams calls return in streams.ts).

import { Channel } from './channel.js';
import { ConfidantError } from './errors.js';
import { deleteModel, listModels, LOCAL_SCHEME, storeFile } from './model-store.js';
import { partName, splitPart } from './split.js';
import type { ChatOps, MemoryOps } from './operations.js';
import type { ChatOp, EmbedderPayload, GenerationResult, MemoryOp, ModelPayload } from './protocol.js';
import { ChunkStream, TurnStream } from './streams.js';
import type {
  CachedModel,
  CardExportOptions,
  CardInput,
  Character,
  CharacterPatch,
  HistoryMessage,
  ImportCounts,
  ImportOptions,
  UnreadableRecord,
  UserFact,
  PromptDebug,
  EvaluateOptions,
  Evaluation,
  ReplyOptions,
  SessionInfo,
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionRequest,
  ChatMessage,
  Completion,
  CompletionChunk,
  CompletionRequest,
  Backend,
  CreateOptions,
  EngineInfo,
  LoadModelOptions,
  MemoryHit,
  MemoryListFilter,
  MemoryPatch,
  MemoryRecord,
  MemorySearch,
  MemoryStats,
  ModelSource,
  NewMemory,
  OpenOptions,
  Progress,
  SamplingOptions,
} from './types.js';

export { ConfidantError } from './errors.js';
export type { ConfidantErrorCode } from './errors.js';
export type * from './types.js';
export { ChunkStream, ProgressEventTarget, PromptProgressEvent, TurnStream } from './streams.js';

function hostOptions(request: SamplingOptions): Record<string, unknown> {
  const { signal: _signal, ...rest } = request;
  void _signal;
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(rest)) {
    if (value !== undefined && key !== 'prompt' && key !== 'messages' && key !== 'stream') options[key] = value;
  }
  return options;
}

function validate(request: SamplingOptions): void {
  const positiveInt = (v: unknown) => v === undefined || (Number.isInteger(v) && (v as number) > 0);
  if (!positiveInt(request.max_tokens)) throw new ConfidantError('bad_request', 'max_tokens must be a positive integer.');
  if (request.temperature !== undefined && !(Number.isFinite(request.temperature) && request.temperature >= 0)) {
    throw new ConfidantError('bad_request', 'temperature must be a number ≥ 0.');
  }
  if (request.top_p !== undefined && !(request.top_p > 0 && request.top_p <= 1)) throw new ConfidantError('bad_request', 'top_p must be in (0, 1].');
  if (request.seed !== undefined && !(Number.isInteger(request.seed) && request.seed >= 0)) {
    throw new ConfidantError('bad_request', 'seed must be a non-negative integer.');
  }
}

let completionCounter = 0;
const newId = (prefix: string) => `${prefix}-${Date.now().toString(36)}${(completionCounter++).toString(36)}`;

/** What the page learnt from navigator.storage (the worker cannot ask for persistence). */
interface StorageState {
  persisted: boolean | null;
}

async function askPersistence(): Promise<StorageState> {
  const storage = (globalThis.navigator as Navigator | undefined)?.storage;
  if (!storage) return { persisted: null };
  try {
    if (await storage.persisted()) return { persisted: true };
    if (typeof storage.persist !== 'function') return { persisted: false };
    return { persisted: await storage.persist() };
  } catch {
    return { persisted: null };
  }
}

function requireString(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new ConfidantError('bad_request', `${name} must be a non-empty string.`);
  return value;
}

function requireObject(value: unknown, name: string): object {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ConfidantError('bad_request', `${name} must be an object.`);
  return value;
}

/** The model source as it crosses to the worker: a URL made absolute, a Blob, or a copy of the bytes (transferred). */
function modelPayload(source: ModelSource | undefined): { payload: ModelPayload; transfer: Transferable[] } {
  if (source && 'url' in source && typeof source.url === 'string') {
    return { payload: { url: new URL(source.url, globalThis.location?.href).href, sha256: source.sha256, revalidate: source.revalidate }, transfer: [] };
  }
  if (source && 'file' in source && source.file instanceof Blob) return { payload: { file: source.file }, transfer: [] };
  if (source && 'files' in source && Array.isArray(source.files) && source.files.length > 0 && source.files.every((f) => f instanceof Blob)) {
    return { payload: source.files.length === 1 ? { file: source.files[0]! } : { files: source.files }, transfer: [] };
  }
  if (source && 'bytes' in source && (source.bytes instanceof ArrayBuffer || ArrayBuffer.isView(source.bytes))) {
    const view = source.bytes instanceof ArrayBuffer ? new Uint8Array(source.bytes) : source.bytes;
    // A copy, so the caller's buffer stays usable after it is handed to the worker.
    const copy = view.slice().buffer as ArrayBuffer;
    return { payload: { bytes: copy }, transfer: [copy] };
  }
  throw new ConfidantError('bad_request', 'options.model must be { url }, { file: File }, { files: File[] } or { bytes: ArrayBuffer }.');
}

function embedderPayload(embedder: { url: string } | undefined): EmbedderPayload {
  const url = embedder?.url;
  if (typeof url !== 'string' || url.length === 0) throw new ConfidantError('bad_request', 'options.embedder must be { url: string }.');
  return { url: new URL(url, globalThis.location?.href).href };
}

/** The two wasm builds, beside this module. */
function wasmUrls(): { wasmUrl: string; threadsWasmUrl: string } {
  return {
    wasmUrl: new URL('./wasm/confidant_web_bg.wasm', import.meta.url).href,
    threadsWasmUrl: new URL('./wasm-threads/confidant_web_bg.wasm', import.meta.url).href,
  };
}

export class Confidant {
  private storageState: Promise<StorageState> | null = null;

  /** Null until a model is loaded (`loadModel`, which `create` calls). */
  private engineInfo: EngineInfo | null = null;

  private constructor(
    private readonly channel: Channel,
    /** The backend and threads asked for at `open` (the worker's choice of wasm build). */
    private readonly backend: Backend,
    private readonly threads: number | undefined,
    private embedder: EmbedderPayload | null,
    private readonly database: string,
    private onProgress: ((p: Progress) => void) | undefined,
  ) {}

  /** Download (or read from the browser's cache) and load a model onto the GPU or the CPU: `open`, then `loadModel`. */
  static async create(options: CreateOptions): Promise<Confidant> {
    requireObject(options, 'options');
    // Checked before a worker starts.
    modelPayload(options.model);
    const engine = await Confidant.open(options);
    try {
      await engine.loadModel(options);
    } catch (e) {
      engine.channel.close();
      throw e;
    }
    return engine;
  }

  /**
   * The engine without a model: its code (the wasm build the backend needs) and its storage.
   * Characters, sessions and their history, cards, memory lists, backups and wipe work at once;
   * replies, completions and anything that embeds text wait for `loadModel` (`model_not_loaded`).
   * Nothing is fetched from the model's or the embedder's URL until then.
   */
  static async open(options: OpenOptions = {}): Promise<Confidant> {
    requireObject(options, 'options');
    const backend = options.backend ?? 'auto';
    if (!['auto', 'webgpu', 'cpu'].includes(backend)) throw new ConfidantError('bad_request', `Unknown backend ${String(backend)}.`);
    const threads = options.threads;
    if (threads !== undefined && (!Number.isInteger(threads) || threads < 1)) throw new ConfidantError('bad_request', 'threads must be a positive integer.');
    const embedder = options.embedder === undefined ? null : embedderPayload(options.embedder);
    const database = options.database ?? 'confidant';
    if (typeof database !== 'string' || database.length === 0) throw new ConfidantError('bad_request', 'options.database must be a non-empty string.');

    const channel = await Channel.open(options.worker ?? true);
    channel.onRestart = (cause) => options.onRestart?.(cause);
    // A reply being written is saved as the page goes away (it is also saved every 2 s).
    globalThis.addEventListener?.('pagehide', () => channel.flush());
    globalThis.document?.addEventListener('visibilitychange', () => globalThis.document.visibilityState === 'hidden' && channel.flush());
    try {
      await channel.request({ type: 'open', backend, threads, ...wasmUrls() }, { onProgress: options.onProgress }).done;
    } catch (e) {
      channel.close();
      throw e;
    }
    return new Confidant(channel, backend, threads, embedder, database, options.onProgress);
  }

  /** Whether a model is loaded: replies and completions work. */
  get modelLoaded(): boolean {
    return this.engineInfo !== null;
  }

  /**
   * Load a model (downloaded, or read from the browser's cache) on the backend chosen at `open`;
   * a model loaded before is replaced. Resolves to what `info()` returns from then on.
   */
  async loadModel(options: LoadModelOptions): Promise<EngineInfo> {
    requireObject(options, 'options');
    const { payload, transfer } = modelPayload(options.model);
    const contextLength = options.contextLength ?? 4096;
    if (!Number.isInteger(contextLength) || contextLength < 16) throw new ConfidantError('bad_request', 'contextLength must be an integer ≥ 16.');
    if (options.chatTemplate !== undefined && typeof options.chatTemplate !== 'string') throw new ConfidantError('bad_request', 'chatTemplate must be a string.');
    if (options.gpuPrefill !== undefined && !['auto', 'rows', 'tiled'].includes(options.gpuPrefill)) throw new ConfidantError('bad_request', "gpuPrefill must be 'auto', 'rows' or 'tiled'.");
    if (options.embedder !== undefined) this.embedder = embedderPayload(options.embedder);
    else if (!this.embedder && 'url' in payload && !payload.url.startsWith(LOCAL_SCHEME)) this.embedder = { url: new URL('all-MiniLM-L6-v2/', payload.url).href };
    if (options.onProgress) this.onProgress = options.onProgress;
    const { done } = this.channel.request(
      { type: 'load', model: payload, backend: this.backend, threads: this.threads, contextLength, measureSpeed: options.measureSpeed !== false, chatTemplate: options.chatTemplate, gpuPrefill: options.gpuPrefill, ...wasmUrls() },
      { onProgress: this.onProgress },
      transfer,
    );
    this.engineInfo = (await done) as EngineInfo;
    return structuredClone(this.engineInfo);
  }

  /** Models kept in this browser's storage. */
  static readonly cache = {
    /** Every cached model: URL, size, SHA-256, HTTP validators, when it was stored. */
    list: (): Promise<CachedModel[]> => listModels(),
    /** Remove a cached model (and any interrupted download of it). True if it was cached. */
    delete: async (url: string): Promise<boolean> => {
      const href = new URL(url, globalThis.location?.href).href;
      // The first part of a split model stands for all of its parts.
      const split = splitPart(new URL(href).pathname);
      if (split?.no !== 1) return deleteModel(href);
      const deleted = await Promise.all(Array.from({ length: split.count }, (_, i) => deleteModel(partName(href, i + 1))));
      return deleted.some(Boolean);
    },
    /**
     * Keep a GGUF file from the user's device in this browser, so it loads later without asking
     * for the file again: resolves to its entry, whose `url` (`confidant-file://…`) is given to
     * `loadModel({ model: { url } })` and `cache.delete`. The parts of a split GGUF (Files named
     * `NAME-0000i-of-0000N.gguf`) are given together and kept together; the entry is the first part's.
     */
    add: async (file: Blob | Blob[], options: { name?: string; onProgress?: (p: Progress) => void } = {}): Promise<CachedModel> => {
      const files = Array.isArray(file) ? file : [file];
      if (files.length === 0 || !files.every((f) => f instanceof Blob)) throw new ConfidantError('bad_request', 'cache.add takes a File or Blob, or the Files of a split model.');
      const names = files.map((f, i) => (files.length === 1 ? options.name : undefined) ?? (f instanceof File ? f.name : `model-${String(i + 1).padStart(5, '0')}-of-${String(files.length).padStart(5, '0')}.gguf`));
      const name = names[0]!;
      if (files.length > 1) {
        const parts = names.map(splitPart);
        const count = files.length;
        if (parts.some((p) => p?.count !== count) || new Set(parts.map((p) => p?.no)).size !== count) {
          throw new ConfidantError('bad_request', `The ${count} files are not the ${count} parts of one split model (named NAME-00001-of-${String(count).padStart(5, '0')}.gguf and so on).`);
        }
      }
      const total = files.reduce((n, f) => n + f.size, 0);
      const entries: CachedModel[] = [];
      try {
        const id = crypto.randomUUID();
        let before = 0;
        for (const [i, part] of files.entries()) {
          entries.push(await storeFile(part, names[i]!, (loaded) => options.onProgress?.({ stage: 'cache', loaded: before + loaded, total }), id));
          before += part.size;
        }
        return entries.find((e) => splitPart(e.name ?? '')?.no === 1) ?? entries[0]!;
      } catch (e) {
        // No half-kept split: the parts stored before the failure go too.
        for (const entry of entries) await deleteModel(entry.url).catch(() => {});
        if ((e as DOMException)?.name === 'QuotaExceededError') throw new ConfidantError('storage_quota', `There is no room in this browser's storage for ${name} (${total} bytes).`);
        throw new ConfidantError('storage', `Could not store ${name} in this browser: ${(e as Error).message}`);
      }
    },
  };

  /** The backend (and why it was chosen), the adapter and the model this engine runs; `model_not_loaded` before a model is. */
  info(): EngineInfo {
    if (!this.engineInfo) throw new ConfidantError('model_not_loaded', 'No model is loaded yet: call loadModel first.');
    return structuredClone(this.engineInfo);
  }

  /** Raw completions: the prompt is used verbatim, no chat template. */
  readonly completions = {
    create: ((request: CompletionRequest) => this.run(request, request.prompt, 'completion')) as {
      (request: CompletionRequest & { stream: true }): Promise<ChunkStream<CompletionChunk>>;
      (request: CompletionRequest & { stream?: false }): Promise<Completion>;
      (request: CompletionRequest): Promise<Completion | ChunkStream<CompletionChunk>>;
    },
  };

  /** Chat completions: messages are rendered with the model's own chat template. */
  readonly chat = {
    completions: {
      create: ((request: ChatCompletionRequest) => this.run(request, request.messages, 'chat')) as {
        (request: ChatCompletionRequest & { stream: true }): Promise<ChunkStream<ChatCompletionChunk>>;
        (request: ChatCompletionRequest & { stream?: false }): Promise<ChatCompletion>;
        (request: ChatCompletionRequest): Promise<ChatCompletion | ChunkStream<ChatCompletionChunk>>;
      },
    },
  };

  /**
   * Long-term memory, kept in this browser's IndexedDB. The embedding model loads on first use
   * (progress through onProgress with `what: 'embedder'`). Calls queue behind generation.
   */
  readonly memory = {
    /** Load the embedding model now rather than at its first use (after `loadModel`, or with an `embedder` given to `open`). */
    load: async (): Promise<void> => {
      await this.memoryCall('load', []);
    },
    /** Embed and store a memory. */
    add: async (memory: NewMemory): Promise<MemoryRecord> => {
      const m = requireObject(memory, 'memory') as NewMemory;
      requireString(m.characterId, 'characterId');
      if (typeof m.text !== 'string') throw new ConfidantError('bad_request', 'text must be a string.');
      return this.memoryCall('add', [m]) as Promise<MemoryRecord>;
    },
    /** The best k memories for a query: relevance + recency + importance; pinned ones always eligible. */
    search: async (query: MemorySearch): Promise<MemoryHit[]> => {
      const q = requireObject(query, 'query') as MemorySearch;
      requireString(q.characterId, 'characterId');
      if (typeof q.query !== 'string') throw new ConfidantError('bad_request', 'query must be a string.');
      if (q.k !== undefined && !(Number.isInteger(q.k) && q.k >= 0)) throw new ConfidantError('bad_request', 'k must be a non-negative integer.');
      return this.memoryCall('search', [q]) as Promise<MemoryHit[]>;
    },
    /** Stored memories, newest first. */
    list: async (filter: MemoryListFilter = {}): Promise<MemoryRecord[]> => this.memoryCall('list', [requireObject(filter, 'filter')]) as Promise<MemoryRecord[]>,
    /** Change a memory; a new text is embedded again. */
    update: async (id: string, patch: MemoryPatch): Promise<MemoryRecord> =>
      this.memoryCall('update', [requireString(id, 'id'), requireObject(patch, 'patch')]) as Promise<MemoryRecord>,
    /** Delete a memory from search and from storage. Resolves false if there was none. */
    forget: async (id: string): Promise<boolean> => this.memoryCall('forget', [requireString(id, 'id')]) as Promise<boolean>,
    /** Sentence embeddings (all-MiniLM-L6-v2, 384 numbers, unit length). */
    embed: async (texts: string[]): Promise<Float32Array[]> => {
      if (!Array.isArray(texts) || !texts.every((t) => typeof t === 'string')) throw new ConfidantError('bad_request', 'texts must be an array of strings.');
      return this.memoryCall('embed', [texts]) as Promise<Float32Array[]>;
    },
    /** Counts, index state, bytes used, and whether the browser keeps this origin's storage persistently. */
    stats: async (query: { characterId?: string } = {}): Promise<MemoryStats> => {
      const stats = (await this.memoryCall('stats', [requireObject(query, 'query')])) as Omit<MemoryStats, 'storage'>;
      const { persisted } = await (this.storageState ??= askPersistence());
      let usage: number | null = null;
      let quota: number | null = null;
      try {
        const estimate = await globalThis.navigator?.storage?.estimate?.();
        usage = estimate?.usage ?? null;
        quota = estimate?.quota ?? null;
      } catch {
        // Not every browser can estimate; the counts above stand on their own.
      }
      return { ...stats, storage: { persisted, usage, quota } };
    },
  };

  readonly characters = {
    /** Import a card: a PNG, JSON or CHARX file (File, Blob, bytes), JSON text, or a card object. */
    import: async (input: CardInput): Promise<Character> => {
      const bytes = await cardBytes(input);
      return this.chatCall('importCharacter', [bytes], [bytes.buffer as ArrayBuffer]) as Promise<Character>;
    },
    list: (): Promise<Character[]> => this.chatCall('listCharacters', []) as Promise<Character[]>,
    get: async (id: string): Promise<Character> => this.chatCall('getCharacter', [requireString(id, 'id')]) as Promise<Character>,
    update: async (id: string, patch: CharacterPatch): Promise<Character> =>
      this.chatCall('updateCharacter', [requireString(id, 'id'), requireObject(patch, 'patch')]) as Promise<Character>,
    /** Remove a character with its sessions and memories. */
    remove: async (id: string): Promise<void> => {
      await this.chatCall('removeCharacter', [requireString(id, 'id')]);
    },
    /** The card as a file: PNG (its avatar kept) or JSON, V2 or V3. */
    export: async (id: string, options: CardExportOptions = {}): Promise<Blob> => {
      const format = options.format ?? 'png';
      const spec = options.spec ?? 'v3';
      const bytes = (await this.chatCall('exportCharacter', [requireString(id, 'id'), format, spec])) as Uint8Array;
      return new Blob([bytes as BlobPart], { type: format === 'png' ? 'image/png' : 'application/json' });
    },
  };

  readonly sessions = {
    /** A new chat with a character; its history starts with the card's greeting (`greeting`: 0 = first_mes, then the alternates). */
    create: async ({ characterId, userName = 'User', greeting = 0 }: { characterId: string; userName?: string; greeting?: number }): Promise<Session> => {
      requireString(characterId, 'characterId');
      const info = (await this.chatCall('createSession', [characterId, requireString(userName, 'userName'), greeting])) as SessionInfo;
      return new Session(this, info);
    },
    /** Sessions of a character (or all), most recently used first. */
    list: async ({ characterId }: { characterId?: string } = {}): Promise<Session[]> => {
      const infos = (await this.chatCall('listSessions', [characterId ?? null])) as SessionInfo[];
      return infos.map((info) => new Session(this, info));
    },
    get: async (id: string): Promise<Session> => new Session(this, (await this.chatCall('getSession', [requireString(id, 'id')])) as SessionInfo),
    /** Remove a session and the memories written from it. */
    remove: async (id: string): Promise<void> => {
      await this.chatCall('removeSession', [requireString(id, 'id')]);
    },
  };

  /**
   * The user's profile, shared by the characters that opt in (`characters.update(id, {
   * userProfile: true })`): dated facts taken from what the user says in their chats (never
   * from a character's replies) or entered here. A newer fact on the same subject supersedes the
   * older one, which stays as history; those characters' prompts hold the current facts.
   */
  readonly userProfile = {
    /** Every fact: current ones first, then the superseded ones (with `supersededBy`). */
    list: (): Promise<UserFact[]> => this.chatCall('userProfile', []) as Promise<UserFact[]>,
    /** Add a fact; it supersedes what it replaces, like one the user said. */
    add: async ({ subject, value }: { subject: string; value: string }): Promise<UserFact> =>
      this.chatCall('addUserFact', [requireString(subject, 'subject'), requireString(value, 'value')]) as Promise<UserFact>,
    update: async (id: string, patch: { subject?: string; value?: string }): Promise<UserFact> => {
      const p = requireObject(patch, 'patch') as { subject?: string; value?: string };
      return this.chatCall('updateUserFact', [requireString(id, 'id'), p.subject ?? null, p.value ?? null]) as Promise<UserFact>;
    },
    /** Delete a fact (current or history) for good. */
    remove: async (id: string): Promise<void> => {
      await this.chatCall('removeUserFact', [requireString(id, 'id')]);
    },
  };

  readonly debug = {
    /** The prompt assembled for the session's latest reply (since the engine was created), sections labelled; null if none. */
    prompt: (sessionId: string): Promise<PromptDebug | null> => this.chatCall('debugPrompt', [requireString(sessionId, 'sessionId')]) as Promise<PromptDebug | null>,
    /**
     * Run a `confidant eval` case set (the JSON text of a file of eval/cases/, or the parsed
     * object) on the loaded model and embedder, as the native command does: the same cases
     * through the same engine, scored by the same code. Its characters, chats and memories live
     * in memory for the run only. For comparing the browser with the native command, not for apps.
     */
    evaluate: async (caseSet: string | object, options: EvaluateOptions = {}): Promise<Evaluation> => {
      const text = typeof caseSet === 'string' ? caseSet : JSON.stringify(requireObject(caseSet, 'caseSet'));
      const o = requireObject(options, 'options') as EvaluateOptions;
      return this.chatCall('evaluate', [text, { limit: o.limit, turns: o.turns, files: o.files ?? {} }]) as Promise<Evaluation>;
    },
  };

  /** Every character, session and memory (embeddings included) as one JSON file. */
  async exportAll(): Promise<Blob> {
    const text = (await this.chatCall('exportAll', [])) as string;
    return new Blob([text], { type: 'application/json' });
  }

  /**
   * Restore a file from exportAll (Blob, JSON text or the parsed object), all of it or nothing;
   * items with the same ids are replaced, except those changed here since (code 'newer_data'
   * unless `replaceNewer`).
   */
  async importAll(backup: Blob | string | object, options: ImportOptions = {}): Promise<ImportCounts> {
    let text: string;
    if (typeof backup === 'string') text = backup;
    else if (backup instanceof Blob) text = await backup.text();
    else text = JSON.stringify(requireObject(backup, 'backup'));
    return this.chatCall('importAll', [text, requireObject(options, 'options') && options.replaceNewer === true]) as Promise<ImportCounts>;
  }

  /** Stored records that could not be read: set aside, kept out of lists, exported with everything, deleted by wipe. */
  unreadableRecords(): Promise<UnreadableRecord[]> {
    return this.chatCall('unreadable', []) as Promise<UnreadableRecord[]>;
  }

  /** Delete every character, session and memory on this origin's database. */
  async wipe(): Promise<void> {
    await this.chatCall('wipe', []);
  }

  /** @internal */
  chatCall<K extends ChatOp>(op: K, args: ChatOps[K]['args'], transfer?: Transferable[], onEvent?: (event: unknown) => void): Promise<ChatOps[K]['result']> {
    return this.chatRequest(op, args, transfer, onEvent).done as Promise<ChatOps[K]['result']>;
  }

  /** @internal */
  chatRequest<K extends ChatOp>(op: K, args: ChatOps[K]['args'], transfer?: Transferable[], onEvent?: (event: unknown) => void): { id: number; done: Promise<unknown> } {
    this.storageState ??= askPersistence();
    return this.channel.request({ type: 'chat', op, args, embedder: this.embedder, database: this.database }, { onProgress: this.onProgress, onEvent }, transfer);
  }

  /** @internal */
  abortRequest(id: number): void {
    this.channel.abort(id);
  }

  private memoryCall<K extends MemoryOp>(op: K, args: MemoryOps[K]['args']): Promise<MemoryOps[K]['result']> {
    // Ask once for persistent storage, so memories survive the browser's storage pressure.
    this.storageState ??= askPersistence();
    const { done } = this.channel.request({ type: 'memory', op, args, embedder: this.embedder, database: this.database }, { onProgress: this.onProgress });
    return done as Promise<MemoryOps[K]['result']>;
  }

  /** Free the GPU memory and stop the worker. */
  async dispose(): Promise<void> {
    try {
      await this.channel.request({ type: 'dispose' }).done;
    } finally {
      this.channel.close();
    }
  }

  private async run(
    request: (CompletionRequest | ChatCompletionRequest) & { stream?: boolean },
    prompt: string | ChatMessage[] | undefined,
    kind: 'completion' | 'chat',
  ): Promise<Completion | ChatCompletion | ChunkStream<CompletionChunk> | ChunkStream<ChatCompletionChunk>> {
    if (kind === 'completion' && typeof prompt !== 'string') throw new ConfidantError('bad_request', 'prompt must be a string.');
    if (kind === 'chat') {
      const ok = Array.isArray(prompt) && prompt.length > 0 && prompt.every((m) => m && typeof m.role === 'string' && typeof m.content === 'string');
      if (!ok) throw new ConfidantError('bad_request', 'messages must be a non-empty array of { role, content } strings.');
    }
    validate(request);
    const signal = request.signal;
    if (signal?.aborted) throw new ConfidantError('aborted', 'The request was aborted before it started.');

    const id = newId(kind === 'chat' ? 'chatcmpl' : 'cmpl');
    const created = Math.floor(Date.now() / 1000);
    const model = this.info().model.name;
    const message = { type: 'generate' as const, prompt: prompt!, options: hostOptions(request) };

    if (!request.stream) {
      const pending = this.channel.request(message);
      const onAbort = () => this.channel.abort(pending.id);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const r = (await pending.done) as GenerationResult;
        const base = { id, created, model, usage: r.usage, timings: r.timings };
        if (kind === 'chat') {
          return { ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: r.text }, finish_reason: r.finish_reason }] };
        }
        return { ...base, object: 'text_completion', choices: [{ index: 0, text: r.text, finish_reason: r.finish_reason }] };
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    }

    let requestId = 0;
    const stream = new ChunkStream<CompletionChunk | ChatCompletionChunk>(() => this.channel.abort(requestId));
    let first = true;
    const chunk = (text: string | null, finish: GenerationResult | null): CompletionChunk | ChatCompletionChunk => {
      const finish_reason = finish ? finish.finish_reason : null;
      const extra = finish ? { usage: finish.usage, timings: finish.timings } : {};
      if (kind === 'chat') {
        const delta: { role?: 'assistant'; content?: string } = {};
        if (first) delta.role = 'assistant';
        if (text !== null) delta.content = text;
        first = false;
        return { id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason }], ...extra };
      }
      return { id, object: 'text_completion', created, model, choices: [{ index: 0, text: text ?? '', finish_reason }], ...extra };
    };
    const pending = this.channel.request(message, {
      onToken: (text) => text && stream.push(chunk(text, null)),
      onPrefill: (done, total) => stream.progress(done, total),
    });
    requestId = pending.id;
    const onAbort = () => stream.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    pending.done.then(
      (r) => {
        stream.push(chunk(null, r as GenerationResult));
        stream.end();
      },
      (e: ConfidantError) => stream.end(e),
    ).finally(() => signal?.removeEventListener('abort', onAbort));
    return stream as ChunkStream<CompletionChunk> | ChunkStream<ChatCompletionChunk>;
  }
}

async function cardBytes(input: CardInput): Promise<Uint8Array> {
  if (input instanceof Blob) return new Uint8Array(await input.arrayBuffer());
  if (input instanceof ArrayBuffer) return new Uint8Array(input.slice(0));
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer.slice(input.byteOffset, input.byteOffset + input.byteLength) as ArrayBuffer);
  if (typeof input === 'string') return new TextEncoder().encode(input);
  if (input !== null && typeof input === 'object') return new TextEncoder().encode(JSON.stringify(input));
  throw new ConfidantError('bad_request', 'A card must be a File, Blob, ArrayBuffer, Uint8Array, JSON text or a card object.');
}

function replyOptions(options: ReplyOptions): Record<string, unknown> {
  validate(options);
  return hostOptions(options);
}


/** A chat session with one character (from `engine.sessions.create / get / list`). */
export class Session implements SessionInfo {
  readonly id: string;
  readonly characterId: string;
  readonly userName: string;
  readonly createdAt: number;
  updatedAt: number;
  messageCount: number;
  lastMessage: string | null;
  summaries: SessionInfo['summaries'];

  /** @internal */
  constructor(
    private readonly engine: Confidant,
    info: SessionInfo,
  ) {
    this.id = info.id;
    this.characterId = info.characterId;
    this.userName = info.userName;
    this.createdAt = info.createdAt;
    this.updatedAt = info.updatedAt;
    this.messageCount = info.messageCount;
    this.lastMessage = info.lastMessage;
    this.summaries = info.summaries ?? [];
  }

  /** Send a message and stream the reply: events 'user', 'memory', 'thought' / 'action' / 'text', 'done'. */
  send(text: string, options: ReplyOptions = {}): TurnStream {
    if (typeof text !== 'string' || text.trim().length === 0) throw new ConfidantError('bad_request', 'The message must be a non-empty string.');
    return new TurnStream(this.engine, 'send', [this.id, text, replyOptions(options)], options.signal);
  }

  /** Replace the latest reply with a new one (while only the greeting is there: the next greeting). */
  regenerate(options: ReplyOptions = {}): TurnStream {
    return new TurnStream(this.engine, 'regenerate', [this.id, replyOptions(options)], options.signal);
  }

  /** Extend the latest reply: the model continues where it stopped, the new text streams, and the same message is stored longer. */
  continue(options: ReplyOptions = {}): TurnStream {
    return new TurnStream(this.engine, 'continueReply', [this.id, replyOptions(options)], options.signal);
  }

  /** Draft the user's next message in their voice: it streams, and the final event's `draft` holds it; nothing is stored. */
  impersonate(options: ReplyOptions = {}): TurnStream {
    return new TurnStream(this.engine, 'impersonate', [this.id, replyOptions(options)], options.signal);
  }

  history(): Promise<HistoryMessage[]> {
    return this.engine.chatCall('history', [this.id]) as Promise<HistoryMessage[]>;
  }

  /** Change a message's text; its memories are re-written. */
  editMessage(id: string, text: string): Promise<HistoryMessage> {
    if (typeof text !== 'string' || text.trim().length === 0) throw new ConfidantError('bad_request', 'The text must be a non-empty string.');
    return this.engine.chatCall('editMessage', [this.id, requireString(id, 'id'), text]) as Promise<HistoryMessage>;
  }

  /** Delete a message and the memories written from it. */
  async deleteMessage(id: string): Promise<void> {
    await this.engine.chatCall('deleteMessage', [this.id, requireString(id, 'id')]);
  }

  /** Show version `index` (0 = the oldest) of a regenerated reply: the history and the next replies use it. */
  chooseSwipe(messageId: string, index: number): Promise<HistoryMessage> {
    if (!Number.isInteger(index) || index < 0) throw new ConfidantError('bad_request', 'index must be a non-negative integer.');
    return this.engine.chatCall('chooseSwipe', [this.id, requireString(messageId, 'messageId'), index]) as Promise<HistoryMessage>;
  }

  /** Show greeting `index` (0 = first_mes, then the card's alternate greetings) before the first reply. */
  setGreeting(index: number): Promise<HistoryMessage> {
    if (!Number.isInteger(index) || index < 0) throw new ConfidantError('bad_request', 'index must be a non-negative integer.');
    return this.engine.chatCall('setGreeting', [this.id, index]) as Promise<HistoryMessage>;
  }
}

export default Confidant;
