// Where the model runs: the GPU through WebGPU, or the CPU through wasm SIMD (with threads when
// the page is cross-origin isolated). Resolved in the engine host before any wasm is loaded,
// because the choice also picks which wasm build to load.

import { ConfidantError, WEBGPU_BROWSERS } from './errors.js';
import type { Backend, GpuInfo } from './types.js';

/** What `create` asked for, resolved. */
export interface BackendChoice {
  backend: 'webgpu' | 'cpu';
  /** The WebGPU adapter the browser offers (used or not); null without one. */
  gpu: GpuInfo | null;
  /** Why this backend, in words. */
  why: string;
  /** Worker threads for the CPU kernels; 0 runs them on the engine's own thread (single-threaded build). */
  threads: number;
  /** Why there are no threads, when the CPU runs without them. */
  noThreads?: string;
  /** On WebGPU, the most bytes one buffer the engine binds may hold (the smaller of the adapter's `maxBufferSize` and `maxStorageBufferBindingSize`), when the adapter says. */
  bufferLimit?: number;
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
  limits?: { maxBufferSize?: number; maxStorageBufferBindingSize?: number };
}

/** The smaller of the adapter's buffer limits (the engine's device asks for the adapter's own), when it states both. */
function bufferLimit(adapter: GpuAdapterLike): number | undefined {
  const { maxBufferSize, maxStorageBufferBindingSize } = adapter.limits ?? {};
  return typeof maxBufferSize === 'number' && typeof maxStorageBufferBindingSize === 'number' ? Math.min(maxBufferSize, maxStorageBufferBindingSize) : undefined;
}

/** Adapters that run WebGPU on the CPU (slower than the CPU path itself), by the names people know them by. */
const SOFTWARE_ADAPTERS: [RegExp, string][] = [
  [/swiftshader/i, 'SwiftShader'],
  [/lavapipe/i, 'lavapipe'],
  [/llvmpipe/i, 'llvmpipe'],
  [/softpipe/i, 'softpipe'],
  [/microsoft basic render|\bwarp\b/i, 'Microsoft Basic Render Driver'],
];

const VENDORS: Record<string, string> = { nvidia: 'NVIDIA', amd: 'AMD', ati: 'AMD', intel: 'Intel', apple: 'Apple', qualcomm: 'Qualcomm', arm: 'Arm', google: 'Google', microsoft: 'Microsoft', mesa: 'Mesa', 'img-tec': 'Imagination' };

/**
 * An adapter as people would name it ("SwiftShader (software)", "NVIDIA ampere"), and whether it
 * is a software renderer. Browsers reveal little: often a vendor and an architecture only.
 */
export function describeAdapter(adapter: GpuAdapterLike): GpuInfo {
  const info = adapter.info ?? {};
  const raw = [info.vendor, info.architecture, info.device, info.description].filter((s) => s && s.length > 0).join(' ');
  const known = SOFTWARE_ADAPTERS.find(([pattern]) => pattern.test(raw));
  const fallback = Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter);
  if (known || fallback) return { name: `${known?.[1] ?? (info.description || raw || 'a fallback adapter')} (software)`, software: true };
  if (info.description) return { name: info.description, software: false };
  const vendor = info.vendor ? (VENDORS[info.vendor.toLowerCase()] ?? info.vendor) : '';
  return { name: [vendor, info.architecture, info.device].filter(Boolean).join(' ') || 'an unnamed graphics adapter', software: false };
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

function cpu(why: string, threads: number | undefined, gpu: GpuInfo | null): BackendChoice {
  const n = threadCount(threads);
  return { backend: 'cpu', gpu, why, threads: n, noThreads: n > 0 ? undefined : threadsAvailable() ? undefined : 'the page is not cross-origin isolated' };
}

/** Resolve `'auto'`: WebGPU on a real GPU; the CPU without WebGPU or on a software adapter. */
export async function chooseBackend(requested: Backend, threads?: number): Promise<BackendChoice> {
  const adapter = await requestAdapter();
  const gpu = adapter ? describeAdapter(adapter) : null;
  if (requested === 'cpu') return cpu('asked for the CPU', threads, gpu);
  if (requested === 'webgpu') {
    if (!gpu) {
      throw new ConfidantError('webgpu_unavailable', `This browser offers no WebGPU adapter. ${WEBGPU_BROWSERS} Or use backend: 'cpu'.`);
    }
    return { backend: 'webgpu', gpu, why: `asked for WebGPU, on ${gpu.name}`, threads: 0, bufferLimit: adapter ? bufferLimit(adapter) : undefined };
  }
  if (!gpu) return cpu('no WebGPU adapter in this browser', threads, null);
  if (gpu.software) return cpu(`the only WebGPU adapter, ${gpu.name.replace(/ \(software\)$/, '')}, is a software renderer, slower than the CPU`, threads, gpu);
  return { backend: 'webgpu', gpu, why: `WebGPU on ${gpu.name}`, threads: 0, bufferLimit: adapter ? bufferLimit(adapter) : undefined };
}
