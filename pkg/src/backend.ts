// Where the model runs: the GPU through WebGPU, or the CPU through wasm SIMD (with threads when
// the page is cross-origin isolated). Resolved in the engine host before any wasm is loaded,
// because the choice also picks which wasm build to load.

import { ConfidantError, WEBGPU_BROWSERS } from './errors.js';
import type { Backend } from './types.js';

/** What `create` asked for, resolved. */
export interface BackendChoice {
  backend: 'webgpu' | 'cpu';
  /** Why this backend, in words. */
  why: string;
  /** Worker threads for the CPU kernels; 0 runs them on the engine's own thread (single-threaded build). */
  threads: number;
  /** Why there are no threads, when the CPU runs without them. */
  noThreads?: string;
}

/** `info().backendReason`: why this backend, and how it runs. */
export function describeChoice(c: BackendChoice): string {
  if (c.backend === 'webgpu') return c.why;
  const how = c.threads > 0 ? `${c.threads} threads` : `one thread${c.noThreads ? ` (${c.noThreads})` : ''}`;
  return `${c.why}; CPU with wasm SIMD, ${how}`;
}

interface GpuAdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
}

/** Adapters that run WebGPU on the CPU: slower than the CPU path itself. */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|microsoft basic render|\bwarp\b/i;

/** A short name for an adapter, and whether it is a software renderer. */
export function describeAdapter(adapter: GpuAdapterLike): { name: string; software: boolean } {
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture, info.device, info.description].filter((s) => s && s.length > 0).join(' ') || 'unnamed adapter';
  const software = Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter) || SOFTWARE_ADAPTER.test(name);
  return { name, software };
}

async function requestAdapter(): Promise<GpuAdapterLike | null> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> } }).gpu;
  if (!gpu) return null;
  return gpu.requestAdapter().catch(() => null);
}

/** Whether this thread can run the multi-threaded build: shared memory, and a worker (the page's main thread may not block). */
export function threadsAvailable(): boolean {
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  const inWorker = typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope === 'function' && typeof window === 'undefined';
  return isolated && inWorker && typeof SharedArrayBuffer === 'function';
}

/** Threads for the CPU path: what was asked for, else one per logical core, at most 8 (a small model gains little past that). */
function threadCount(requested: number | undefined): number {
  if (!threadsAvailable()) return 0;
  const wanted = requested ?? Math.min(8, navigator.hardwareConcurrency || 1);
  return Math.max(1, Math.min(16, Math.floor(wanted)));
}

function cpu(why: string, threads: number | undefined): BackendChoice {
  const n = threadCount(threads);
  return { backend: 'cpu', why, threads: n, noThreads: n > 0 ? undefined : threadsAvailable() ? undefined : 'the page is not cross-origin isolated' };
}

/** Resolve `'auto'`: WebGPU on a real GPU; the CPU without WebGPU or on a software adapter. */
export async function chooseBackend(requested: Backend, threads?: number): Promise<BackendChoice> {
  if (requested === 'cpu') return cpu('asked for the CPU', threads);
  const adapter = await requestAdapter();
  if (requested === 'webgpu') {
    if (!adapter) {
      throw new ConfidantError('webgpu_unavailable', `This browser offers no WebGPU adapter. ${WEBGPU_BROWSERS} Or use backend: 'cpu'.`);
    }
    return { backend: 'webgpu', why: `asked for WebGPU (${describeAdapter(adapter).name})`, threads: 0 };
  }
  if (!adapter) return cpu('no WebGPU adapter in this browser', threads);
  const { name, software } = describeAdapter(adapter);
  if (software) return cpu(`the WebGPU adapter (${name}) is a software renderer`, threads);
  return { backend: 'webgpu', why: `WebGPU on ${name}`, threads: 0 };
}
