import type { ConfidantError } from './errors.js';

/** Where the model comes from. */
export type ModelSource =
  | {
      /** A GGUF on the same origin (or one that allows CORS). Cached in the browser after the first download. */
      url: string;
      /** Expected SHA-256 (hex) of the file: a cached or downloaded file with another hash is refused and fetched again. */
      sha256?: string;
      /** Ask the server whether a cached file changed (one conditional request) before using it. Default false: a cached model loads with no network request. */
      revalidate?: boolean;
    }
  | { file: Blob }
  /** The parts of a GGUF split by llama.cpp's gguf-split (`NAME-00001-of-0000N.gguf` …), in any order: loaded as one model. */
  | { files: Blob[] }
  | { bytes: ArrayBuffer | Uint8Array };

export type Backend = 'auto' | 'webgpu' | 'cpu';

/**
 * `blocked`: the storage cannot open yet, because another tab of the site, from an older release,
 * keeps the database open during an upgrade; the call waits until that tab is closed or reloaded
 * (tell the person so).
 */
export type ProgressStage = 'download' | 'cache' | 'compile' | 'load' | 'blocked';

export interface Progress {
  stage: ProgressStage;
  /** Bytes done in this stage. */
  loaded: number;
  /** Bytes in this stage, when known (0 when not). */
  total: number;
  /** What is loading: the language model (absent or 'model') or the embedding model for memory ('embedder'). */
  what?: 'model' | 'embedder';
  /** For the embedder, which of its files; for a model split in parts, which part. */
  file?: string;
}

export interface CreateOptions {
  model: ModelSource;
  /**
   * 'auto' (default): WebGPU on a real GPU; the CPU when the browser has no WebGPU adapter or only a
   * software one (SwiftShader, lavapipe: slower than the CPU path). 'webgpu' or 'cpu' force one.
   */
  backend?: Backend;
  /**
   * CPU threads for the CPU backend (default: one per logical core, at most 8). Threads need a
   * cross-origin isolated page (COOP `same-origin` + COEP `require-corp` headers) and the default
   * `worker: true`; otherwise the engine runs single-threaded.
   */
  threads?: number;
  onProgress?: (progress: Progress) => void;
  /** Largest prompt + reply in tokens (caps GPU memory for the KV cache). Default 4096. */
  contextLength?: number;
  /** The embedding model for memory: a folder URL holding model.safetensors, tokenizer.json and config.json
   * (all-MiniLM-L6-v2). Default: the folder `all-MiniLM-L6-v2/` beside the model's URL. Loaded on first use of
   * `engine.memory`, with progress reported through onProgress (`what: 'embedder'`). */
  embedder?: { url: string };
  /** IndexedDB database holding memories. Default 'confidant'. */
  database?: string;
  /** Time a short warm-up generation after loading, for `info().speed` (default true; about half a second on a CPU). */
  measureSpeed?: boolean;
  /** A chat template (Jinja, as a GGUF's `tokenizer.chat_template`) used instead of the model's own; `info().model.chatTemplate` is then 'custom'. One that does not compile fails the load with `bad_request`. */
  chatTemplate?: string;
  /** Which GPU kernels run prompts on WebGPU: 'tiled' (workgroup-memory tiles: each weight and cached key read once per block of prompt rows) or 'rows' (the decode kernels over blocks of rows, as before 2026-11-28); 'auto' (default) is 'tiled'. For measurements; the tokens are the same. */
  gpuPrefill?: 'auto' | 'rows' | 'tiled';
  /** Run the engine in a dedicated Web Worker (default true). With false it runs on the calling thread, which then blocks while a token is computed. */
  worker?: boolean;
  /**
   * Called after the engine recovered from a fault: a wasm trap (`cause.code` 'internal') or a lost
   * GPU ('device_lost'). The call that met it failed with that error; the worker was restarted and
   * the model loaded again from the browser's cache, so later calls work (stored chats and
   * memories are untouched). Not called for a model given as `bytes`, which cannot be reloaded.
   */
  onRestart?: (cause: ConfidantError) => void;
}

/** `Confidant.open`: the engine's storage and code, no model yet (the model options of `create` do not apply). */
export type OpenOptions = Pick<CreateOptions, 'backend' | 'threads' | 'worker' | 'database' | 'embedder' | 'onProgress' | 'onRestart'>;

/** `engine.loadModel`: a model for an engine from `Confidant.open` (or another one for any engine). */
export type LoadModelOptions = Pick<CreateOptions, 'model' | 'contextLength' | 'measureSpeed' | 'embedder' | 'onProgress' | 'chatTemplate' | 'gpuPrefill'>;

export interface ModelInfo {
  /** `general.name` as written in the file (often a training run's name). */
  name: string;
  /** A name for people: curated for known models ("SmolLM2 135M Instruct"), else the file's base name and size ("smollm2 135M"). */
  displayName: string;
  arch: string;
  /** Number of weights. */
  params: number;
  /** The file's quantization as llama.cpp names it ("Q4_K_M", "Q4_1"; `general.file_type`), else the type holding most weights. */
  quant: string;
  /** The model's own context length. */
  contextLength: number;
  vocabSize: number;
  layers: number;
  /** The chat template in use: 'own' (the file's), the family template standing in for a file without one: 'gemma' (Gemma's turn markers) or 'chatml', or 'custom' (the `chatTemplate` option). */
  chatTemplate: string;
  /** That template's text (Jinja). */
  chatTemplateSource: string;
}

export interface AdapterInfo {
  name: string;
  vendor: string;
  backend: string;
  driver: string;
  deviceType: string;
}

/** A WebGPU adapter, as people would name it. */
export interface GpuInfo {
  /** "SwiftShader (software)", "NVIDIA ampere", or the browser's description of it. */
  name: string;
  /** A software renderer (SwiftShader, lavapipe, WARP…): WebGPU on the CPU, slower than the CPU path. */
  software: boolean;
}

/** Speed measured right after loading, on a short warm-up generation. */
export interface MeasuredSpeed {
  /** Prompt tokens read per second (a short prompt: long ones read faster per token). */
  prefillTokS: number;
  /** Tokens written per second. */
  decodeTokS: number;
}

export interface EngineInfo {
  backend: 'webgpu' | 'cpu';
  /** Why that backend: "the only WebGPU adapter, SwiftShader (software), is a software renderer, slower than the CPU; CPU with wasm SIMD, 2 threads". */
  backendReason: string;
  /** Threads the CPU backend computes on (1 on WebGPU or without cross-origin isolation). */
  threads: number;
  /** The WebGPU adapter this browser offers, whether it runs the model or not; null without WebGPU. */
  gpu: GpuInfo | null;
  /** What a generation on this device runs at, measured after loading; null with `measureSpeed: false`. */
  speed: MeasuredSpeed | null;
  adapter: AdapterInfo;
  model: ModelInfo;
  /** The context this engine was created with (prompt + reply). */
  contextLength: number;
  /** Memory, in bytes. */
  memory: MemoryInfo;
  /** What the key/value cache keeps keys and values in: 'f16' on a WebGPU adapter with `shader-f16` (half the bytes; arithmetic stays f32), else 'f32'. */
  kvCacheType: 'f16' | 'f32';
}

/** What the loaded model takes, in bytes. */
export interface MemoryInfo {
  /** The weights, as the file stores them (they stay quantized: on the GPU with WebGPU, in wasm memory on the CPU). */
  weights: number;
  /** The key/value cache at `contextLength` tokens, when full (in f16 where `kvCacheType` says so). */
  kvCache: number;
  /** The largest single tensor: what a load reads at once. */
  largestTensor: number;
  /** The largest single buffer on a GPU: one layer's keys at `contextLength`, or a block of a weight matrix (at most 128 MiB). */
  largestBuffer: number;
  /** The engine's WebAssembly memory after loading, which is also its high-water mark (a wasm memory never shrinks). */
  wasm: number;
}

/**
 * Anti-repetition settings, for completions and chat replies alike (OpenAI's and llama.cpp's
 * names). Completions default to none of them; chat replies to the role-play defaults (DRY on).
 */
export interface RepetitionOptions {
  /** Penalty on recently seen tokens (llama.cpp's repeat_penalty); 1 is off. */
  repeat_penalty?: number;
  /** How many of the latest tokens (prompt included) repeat_penalty, presence_penalty and frequency_penalty look at. Default 64. */
  repeat_last_n?: number;
  /** Subtracted once from the logit of each token seen in the latest repeat_last_n; 0 is off. */
  presence_penalty?: number;
  /** Subtracted from the logit of each token seen in the latest repeat_last_n, per time seen; 0 is off. */
  frequency_penalty?: number;
  /** DRY ("don't repeat yourself", as llama.cpp's): the scale of the penalty on a token that would extend a repeat of earlier text; 0 is off. */
  dry_multiplier?: number;
  /** DRY: the penalty is dry_multiplier × dry_base^(repeat length − dry_allowed_length). Default 1.75. */
  dry_base?: number;
  /** DRY: repeats this many tokens long or shorter are free. Default 2. */
  dry_allowed_length?: number;
  /** DRY: text a repeat may not reach back past (at most 64, each cut at 40 bytes). Default ["\n", ":", "\"", "*"]. */
  dry_sequence_breakers?: string[];
  /** DRY: how many of the latest tokens are searched; -1 (default) is the whole context, 0 turns DRY off. */
  dry_penalty_last_n?: number;
}

/** Sampling and length options shared by both endpoints (OpenAI names where they exist). */
export interface SamplingOptions extends RepetitionOptions {
  /** Most tokens to generate. Default 256. */
  max_tokens?: number;
  /** 0 is greedy. Default 0.8. */
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  /** Same seed, same prompt, same options: same text. */
  seed?: number;
  /** Keep generating past end-of-generation tokens (benchmarks time exactly max_tokens). */
  ignore_eos?: boolean;
  /** Reuse the KV cache of a prompt prefix shared with the previous call. Default true. */
  cache_prompt?: boolean;
  /** Stop the call; the engine stays usable. */
  signal?: AbortSignal;
}

export interface CompletionRequest extends SamplingOptions {
  /** Used verbatim: no chat template. Special tokens written in it are recognised. */
  prompt: string;
  stream?: boolean;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string;
}

export interface ChatCompletionRequest extends SamplingOptions {
  /** Rendered with the model's own chat template. */
  messages: ChatMessage[];
  stream?: boolean;
}

export type FinishReason = 'stop' | 'length';

// Usage and Timings are engine::Usage and engine::Timings (crates/engine/src/chat/turn.rs) as the
// engine serialises them, field for field, snake_case. Kept by hand: two flat structs of numbers
// did not justify a code generator (ts-rs, tsify) and its build step; pkg.test.mjs checks every
// field a completion reports.

/** Token counts of a completion or a chat reply (the engine's one type, as it sends it). */
export interface Usage {
  prompt_tokens: number;
  /** Prompt tokens whose keys and values came from the cache. */
  cached_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Speeds and times of a completion or a chat reply (the engine's one type, as it sends it). */
export interface Timings {
  /** Prompt tokens per second (only the ones not reused from the cache). */
  prefill_tok_s: number;
  /** Generated tokens per second. */
  decode_tok_s: number;
  prefill_seconds: number;
  decode_seconds: number;
  /** Prompt tokens actually run; the rest came from the cache. */
  prefilled_tokens: number;
  /** What each prompt token run asked of the device, on average (see {@link TokenWork}). */
  prefill_work: TokenWork;
  /** What each token decoded after the prompt asked of the device, on average. */
  decode_work: TokenWork;
}

/**
 * Device work per token (engine::TokenWork): GPU compute dispatches (0 on the CPU backend),
 * writes from the engine to the device (token ids, rope tables) and reads back that generation
 * waits for (logits or sampled ids), with their bytes. Averages, so fractions are normal.
 */
export interface TokenWork {
  dispatches: number;
  uploads: number;
  upload_bytes: number;
  readbacks: number;
  readback_bytes: number;
  /** Of the reads, those during which the device had nothing else queued (it idled while the
   *  engine waited). Decoding on a GPU queues the next steps before reading the last ones' ids,
   *  so this is near 0 per decoded token. */
  blocking_readbacks: number;
}

export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: [{ index: 0; text: string; finish_reason: FinishReason }];
  usage: Usage;
  timings: Timings;
}

export interface CompletionChunk {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: [{ index: 0; text: string; finish_reason: FinishReason | null }];
  /** On the last chunk only. */
  usage?: Usage;
  timings?: Timings;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: [{ index: 0; message: { role: 'assistant'; content: string }; finish_reason: FinishReason }];
  usage: Usage;
  timings: Timings;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: [{ index: 0; delta: { role?: 'assistant'; content?: string }; finish_reason: FinishReason | null }];
  usage?: Usage;
  timings?: Timings;
}

export interface CachedModel {
  url: string;
  size: number;
  sha256: string;
  etag: string | null;
  lastModified: string | null;
  storedAt: string;
  /** For a file stored from the user's device (`Confidant.cache.add`): its file name. */
  name?: string;
}

/** What a memory is. */
export type MemoryKind = 'message' | 'event_summary' | 'user_fact' | 'character_fact' | 'pinned_note';

/** One long-term memory of one character. */
export interface MemoryRecord {
  id: string;
  characterId: string;
  sessionId: string | null;
  kind: MemoryKind;
  text: string;
  /** The text's embedding: 384 numbers of unit length. */
  embedding: number[];
  /** Unix milliseconds. */
  createdAt: number;
  /** Unix milliseconds of the last retrieval (or of creation); recency decays from it. */
  lastAccessed: number;
  /** 0 (mundane) to 1 (life-changing). */
  importance: number;
  pinned: boolean;
  sourceMessageIds: string[];
}

export interface NewMemory {
  characterId: string;
  sessionId?: string | null;
  kind: MemoryKind;
  text: string;
  /** 0..1, default 0.5 (as a middling Generative Agents rating). */
  importance?: number;
  /** Default true for 'pinned_note', false otherwise. Pinned memories are always eligible for retrieval. */
  pinned?: boolean;
  sourceMessageIds?: string[];
  /** An id of your choosing (e.g. a chat message's); a random one by default. */
  id?: string;
  /** Unix milliseconds; now by default (set it when importing older history). */
  createdAt?: number;
}

export interface MemorySearch {
  characterId: string;
  query: string;
  /** How many to return. Default 5. */
  k?: number;
  /** Only memories of these kinds. */
  kinds?: MemoryKind[];
}

/** A retrieved memory: score = relevance + recency + importance, each normalised over the candidates. */
export interface MemoryHit {
  /** The memory, its lastAccessed already moved to this retrieval. */
  record: MemoryRecord;
  score: number;
  /** Cosine similarity to the query. */
  relevance: number;
  /** 0.995^hours since the memory was last retrieved. */
  recency: number;
  importance: number;
}

export interface MemoryListFilter {
  characterId?: string;
  kind?: MemoryKind;
  sessionId?: string;
  pinned?: boolean;
  limit?: number;
  offset?: number;
}

export interface MemoryPatch {
  /** A new text is embedded again. */
  text?: string;
  pinned?: boolean;
  importance?: number;
  kind?: MemoryKind;
}

export interface MemoryIndexStats {
  /** Vectors in the HNSW graph. */
  hnsw: number;
  /** Vectors in the exact segment of recent inserts. */
  fresh: number;
  /** Forgotten vectors still in the graph, hidden from search until the next rebuild. */
  tombstones: number;
  rebuildWanted: boolean;
  /** How the index came back on first use since the page loaded. */
  loaded: 'restored' | 'rebuilt' | 'fresh_only';
  reason: string | null;
}

export interface MemoryStats {
  records: number;
  byKind: Partial<Record<MemoryKind, number>>;
  pinned: number;
  /** For stats of one character. */
  index: MemoryIndexStats | null;
  /** Bytes the stored records and indexes take. */
  bytesUsed: number;
  /** Texts embedded since this page first used memory (memories, queries, embed calls): a reload restores memories without embedding them again. */
  embeddedTexts: number;
  /** The browser's storage for this origin. */
  storage: {
    /** The answer to navigator.storage.persist(): true if the browser will not evict this origin's data under pressure; null where the browser cannot say. */
    persisted: boolean | null;
    /** navigator.storage.estimate(), when available. */
    usage: number | null;
    quota: number | null;
  };
}

// ---- characters, sessions and the chat turn ---------------------------------------------

/** The psychological profile kept in a card's `extensions.confidant` (all fields optional). */
export interface Profile {
  /** Big Five, 0..100 each. */
  openness?: number;
  conscientiousness?: number;
  extraversion?: number;
  agreeableness?: number;
  neuroticism?: number;
  values?: string[];
  attachment?: 'secure' | 'anxious' | 'avoidant' | 'fearful';
  /** Emotional baseline, -100 (gloomy) .. 100 (sunny). */
  mood?: number;
  formality?: number;
  verbosity?: number;
  humor?: string;
  quirks?: string[];
  /** The other fourteen of the 26 indicators, 0..100 each; a middling value adds nothing to the prompt. */
  honesty?: number;
  empathy?: number;
  self_esteem?: number;
  impulsivity?: number;
  trust?: number;
  assertiveness?: number;
  optimism?: number;
  expressiveness?: number;
  patience?: number;
  ambition?: number;
  spirituality?: number;
  principles?: number;
  energy?: number;
  /** Towards the user: a stranger (0) .. deeply attached (100). */
  closeness?: number;
  [key: string]: unknown;
}

export interface InnerThoughts {
  /** Ask for `[thought] (action) speech` replies. */
  enabled: boolean;
  /** Leave thoughts out of the history the model sees later. */
  strip_from_history: boolean;
}

/**
 * A character: the card's `data` fields under their spec names (`name`, `description`,
 * `personality`, `scenario`, `first_mes`, `mes_example`, `alternate_greetings`,
 * `character_book`, `extensions`, …), plus these. `characters.update` takes the same shape.
 */
export interface Character {
  id: string;
  name: string;
  description?: string;
  personality?: string;
  scenario?: string;
  first_mes?: string;
  alternate_greetings?: string[];
  /** What the imported file was. */
  importedSpec: 'v1' | 'v2' | 'v3';
  /** Whether the card came with a PNG image (kept for PNG export). */
  hasAvatar: boolean;
  createdAt: number;
  updatedAt: number;
  profile: Profile | null;
  innerThoughts: InnerThoughts;
  /**
   * Whether the character shares the user's profile (`engine.userProfile`): the facts the user
   * states in its chats go to the profile, and the profile is in its prompt. Off by default.
   */
  userProfile: boolean;
  /**
   * The character's own notes on how things stand with the user, one written after each rolling
   * summary (the latest three are in its prompt, beside the memories). Kept with the character, not in its exported
   * card. `characters.update(id, { notes: [{ id?, text }] })` replaces them: a known id keeps its
   * date, a note without one is new, notes left out are deleted.
   */
  notes: PersonaNote[];
  [field: string]: unknown;
}

export interface PersonaNote {
  id: string;
  text: string;
  createdAt: number;
  /** The chat whose summary it came from; absent when the user wrote it. */
  sessionId?: string;
}

/** Card fields to change (spec names), and/or `profile` (null removes it), `innerThoughts` and `userProfile`. */
export type CharacterPatch = Partial<Omit<Character, 'id' | 'importedSpec' | 'hasAvatar' | 'createdAt' | 'updatedAt' | 'notes'>> & {
  notes?: { id?: string; text: string }[];
};

export type CardInput = File | Blob | ArrayBuffer | Uint8Array | string | Record<string, unknown>;

export interface CardExportOptions {
  format?: 'png' | 'json';
  spec?: 'v2' | 'v3';
}

/** One message of a session. */
export interface HistoryMessage {
  id: string;
  role: 'assistant' | 'user';
  /** What is said (for the character, without thoughts and actions). */
  text: string;
  thought?: string;
  action?: string;
  /** The message as the model sees it: `[thought] (action) speech`. */
  raw: string;
  createdAt: number;
  /** The character's greeting, the first message of a session. */
  greeting?: boolean;
  /** Memory records written from this message (they follow edits and deletes). */
  memoryIds: string[];
  /** A reply: the memories its prompt used (pinned ones first), i.e. what the character knew when it wrote it. */
  usedMemoryIds?: string[];
  /** Saved while it was being written and never finished (the page was closed or reloaded). */
  unfinished?: boolean;
  /**
   * Every version of a regenerated reply, oldest first (absent while there is one): the
   * message's own fields, `id` included, are those of `swipes[swipe]`. `session.chooseSwipe`
   * shows another.
   */
  swipes?: MessageVersion[];
  /** Which of `swipes` is shown and used in the conversation (0 when absent). */
  swipe?: number;
}

/** One version of a regenerated reply. */
export interface MessageVersion {
  id: string;
  text: string;
  thought?: string;
  action?: string;
  raw: string;
  createdAt: number;
  /** A version still being written when the page closed. */
  unfinished?: boolean;
  /** The memories this version's prompt used. */
  usedMemoryIds?: string[];
}

/** A stored record that could not be read: set aside (not deleted), reported, exported, wiped. */
export interface UnreadableRecord {
  /** The object store it was in: 'characters', 'sessions', 'records' (memories), 'indexes', 'meta'. */
  store: string;
  key: string;
  /** Why it could not be read. */
  error: string;
  /** The stored value as JSON text, when it has one. */
  value?: string;
  /** When it was set aside (unix ms). */
  foundAt: number;
}

export interface ImportOptions {
  /**
   * Replace characters and chats stored here that changed after the backup's copies. Without
   * it such an import fails with code 'newer_data' and writes nothing: ask, then import again.
   */
  replaceNewer?: boolean;
}

export interface SessionInfo {
  id: string;
  characterId: string;
  userName: string;
  createdAt: number;
  updatedAt: number;
  messageCount: number;
  lastMessage: string | null;
  /** Rolling summaries written in the background. */
  summaries: { throughId: string; text: string; memoryId: string | null; createdAt: number }[];
}

/** A chat reply's counts: the same type as a completion's. */
export type ChatUsage = Usage;

/** A chat reply's speeds and times: the same type as a completion's. */
export type ChatTimings = Timings;

/** What `session.send()` and `session.regenerate()` stream, in this order. */
export type ChatEvent =
  /** The user's message, as stored (at once: its memories are written after the reply). */
  | { type: 'user'; message: HistoryMessage }
  /** The memories put into the prompt. */
  | { type: 'memory'; records: MemoryHit[] }
  /** The model is reading a long prompt: `done` of `total` tokens (not counting those reused from the cache); at the start and after each chunk of 64. */
  | { type: 'progress'; done: number; total: number }
  | { type: 'thought' | 'action' | 'text'; text: string; opens: boolean }
  | {
      type: 'done';
      message: HistoryMessage | null;
      /** From `impersonate`: the drafted user message (nothing was stored; `message` is null). */
      draft?: string;
      usage: ChatUsage;
      timings: ChatTimings;
      finishReason: 'stop' | 'length' | 'abort';
    };

export type DoneEvent = Extract<ChatEvent, { type: 'done' }>;

/** A reply's options; left out, the role-play defaults (pkg/README.md). */
export interface ReplyOptions extends RepetitionOptions {
  max_tokens?: number;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  min_p?: number;
  seed?: number;
  /** Stops the reply; what was written is kept (finishReason 'abort'). */
  signal?: AbortSignal;
}

export interface PromptSection {
  kind: string;
  label: string;
  message: number;
  text: string;
  tokens: number;
}

/** The prompt assembled for a session's latest reply. */
export interface PromptDebug {
  /** Every message, every section labelled with its token count. */
  text: string;
  sections: PromptSection[];
  /** The exact text the tokenizer saw (chat template applied). */
  rendered: string;
  totalTokens: number;
  budget: number;
  stableMessages: number;
  memoriesUsed: number;
  loreEntries: string[];
}

/** How much of a case set `engine.debug.evaluate` runs, and the files it names. */
export interface EvaluateOptions {
  /** Only the first this many chats of the set (`confidant eval --limit`). */
  limit?: number;
  /** Only the first this many user turns of each chat (`--turns`). */
  turns?: number;
  /** Texts of the files the set names, by their paths relative to the set's file (the echo set's cards). */
  files?: Record<string, string>;
}

/** One case set's table, as `confidant eval --json` prints it. */
export interface EvalReport {
  /** The set and its version, e.g. 'persona-v1'. */
  set: string;
  description: string;
  columns: string[];
  rows: string[][];
  /** Said under the table (settings, identity leaks; the first ends with the time taken). */
  notes: string[];
  seconds: number;
}

export interface Evaluation {
  report: EvalReport;
  /** Every scored reply (`confidant eval --transcript`). */
  transcript: Record<string, unknown>[];
}

export interface ImportCounts {
  characters: number;
  sessions: number;
  memories: number;
  /** Facts of the user's profile (history included). */
  userFacts: number;
}

/**
 * A fact of the user's profile, shared by the characters that opt in (`Character.userProfile`).
 * Taken from the user's own messages (never a character's), or entered by the user.
 */
export interface UserFact {
  id: string;
  /** What it is about: 'name', 'age', 'diet', 'home city', 'job', 'pets', 'favourite colour', … */
  subject: string;
  /** The fact: 'vegetarian', '34', 'Rome'. */
  value: string;
  /** The user's words it was taken from; absent when the user entered it. */
  statement?: string;
  /** When it was stated or entered (unix ms). */
  createdAt: number;
  /** When it was last said again or edited. */
  updatedAt: number;
  /** Where it was stated. */
  characterId?: string;
  sessionId?: string;
  messageId?: string;
  /** The fact that replaced it: a superseded fact is history, shown but never in a prompt. */
  supersededBy?: string;
  supersededAt?: number;
}
