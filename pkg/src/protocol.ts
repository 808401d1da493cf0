// Messages between the API (main thread) and the engine host (a Web Worker by default).

import type { SerializedError } from './errors.js';
import type { ChatOp, MemoryOp } from './operations.js';
import type { Backend, ChatMessage, EngineInfo, FinishReason, Progress, SamplingOptions, Timings, Usage } from './types.js';

export type ModelPayload =
  | { url: string; sha256?: string; revalidate?: boolean }
  | { file: Blob }
  | { files: Blob[] }
  | { bytes: ArrayBuffer };

/** Generation options as they cross to the host (no AbortSignal: aborts are messages). */
export type HostOptions = Omit<SamplingOptions, 'signal'>;

/** The embedding model: a folder URL holding model.safetensors, tokenizer.json and config.json. */
export interface EmbedderPayload {
  url: string;
}

/** The operations themselves, with their arguments and results, are in operations.ts. */
export type { ChatOp, MemoryOp } from './operations.js';

export type HostRequest =
  /** Load the engine's code (the wasm build the backend needs) and nothing else: storage works, replies wait for 'load'. */
  | { type: 'open'; id: number; backend: Backend; threads?: number; wasmUrl: string; threadsWasmUrl: string }
  | {
      type: 'load';
      id: number;
      model: ModelPayload;
      backend: Backend;
      /** CPU threads asked for (undefined: one per core). */
      threads?: number;
      contextLength: number;
      measureSpeed: boolean;
      /** Used instead of the model's own chat template. */
      chatTemplate?: string;
      /** The GPU's prompt kernels (CreateOptions.gpuPrefill); undefined: 'auto'. */
      gpuPrefill?: 'auto' | 'rows' | 'tiled';
      /** The single-threaded build (WebGPU and CPU) and the multi-threaded one (CPU). */
      wasmUrl: string;
      threadsWasmUrl: string;
    }
  | { type: 'generate'; id: number; prompt: string | ChatMessage[]; options: HostOptions }
  | { type: 'memory'; id: number; op: MemoryOp; args: unknown[]; embedder: EmbedderPayload | null; database: string }
  | { type: 'chat'; id: number; op: ChatOp; args: unknown[]; embedder: EmbedderPayload | null; database: string }
  | { type: 'abort'; id: number }
  /** The page is being hidden or closed: save the reply under way now (id unused). */
  | { type: 'flush'; id: number }
  | { type: 'dispose'; id: number };

export interface GenerationResult {
  text: string;
  finish_reason: FinishReason;
  usage: Usage;
  timings: Timings;
}

export type HostResponse =
  | { type: 'progress'; id: number; progress: Progress }
  | { type: 'loaded'; id: number; info: EngineInfo }
  | { type: 'token'; id: number; text: string; token: number }
  /** The prompt is being read: `done` of `total` tokens (a generation's, before its first token). */
  | { type: 'prefill'; id: number; done: number; total: number }
  | { type: 'done'; id: number; result: GenerationResult }
  | { type: 'result'; id: number; value: unknown }
  | { type: 'event'; id: number; event: unknown }
  | { type: 'disposed'; id: number }
  | { type: 'error'; id: number; error: SerializedError }
  /**
   * The engine cannot go on (a wasm trap: code 'internal'; a lost GPU: 'device_lost'): the page
   * fails what is pending, starts a new worker and loads the model again (from the cache).
   */
  | { type: 'crashed'; id: number; error: SerializedError };
