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
  | { bytes: ArrayBuffer | Uint8Array };

export type Backend = 'auto' | 'webgpu' | 'cpu';

export type ProgressStage = 'download' | 'cache' | 'compile' | 'load';

export interface Progress {
  stage: ProgressStage;
  /** Bytes done in this stage. */
  loaded: number;
  /** Bytes in this stage, when known (0 when not). */
  total: number;
}

export interface CreateOptions {
  model: ModelSource;
  /** 'auto' (default): WebGPU when the browser has an adapter. 'cpu' arrives in a later release. */
  backend?: Backend;
  onProgress?: (progress: Progress) => void;
  /** Largest prompt + reply in tokens (caps GPU memory for the KV cache). Default 4096. */
  contextLength?: number;
  /** Run the engine in a dedicated Web Worker (default true). With false it runs on the calling thread, which then blocks while a token is computed. */
  worker?: boolean;
}

export interface ModelInfo {
  name: string;
  arch: string;
  /** Number of weights. */
  params: number;
  /** The type holding most weights, e.g. "Q4_1". */
  quant: string;
  /** The model's own context length. */
  contextLength: number;
  vocabSize: number;
  layers: number;
}

export interface AdapterInfo {
  name: string;
  vendor: string;
  backend: string;
  driver: string;
  deviceType: string;
}

export interface EngineInfo {
  backend: 'webgpu' | 'cpu';
  adapter: AdapterInfo;
  model: ModelInfo;
  /** The context this engine was created with (prompt + reply). */
  contextLength: number;
}

/** Sampling and length options shared by both endpoints (OpenAI names where they exist). */
export interface SamplingOptions {
  /** Most tokens to generate. Default 256. */
  max_tokens?: number;
  /** 0 is greedy. Default 0.8. */
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  /** Penalty on recently seen tokens (llama.cpp's repeat_penalty); 1 is off. */
  repeat_penalty?: number;
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

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface Timings {
  /** Prompt tokens per second (only the ones not reused from the cache). */
  prefill_tok_s: number;
  /** Generated tokens per second. */
  decode_tok_s: number;
  /** Prompt tokens actually run; the rest came from the cache. */
  prefilled_tokens: number;
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
}
