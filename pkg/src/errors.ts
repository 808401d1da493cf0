/** Why a call failed. Stable strings, safe to switch on. */
export type ConfidantErrorCode =
  | 'model_fetch'
  | 'model_format'
  | 'unsupported_model'
  | 'webgpu_unavailable'
  | 'out_of_memory'
  | 'device_lost'
  | 'aborted'
  | 'bad_request'
  | 'storage_quota'
  | 'storage'
  | 'storage_corrupt'
  | 'schema_too_new'
  | 'not_found'
  | 'embedder_format'
  | 'card_format'
  | 'model_not_loaded'
  | 'newer_data'
  | 'internal'
  | 'busy';

const CODES: ReadonlySet<string> = new Set<ConfidantErrorCode>([
  'model_fetch',
  'model_format',
  'unsupported_model',
  'webgpu_unavailable',
  'out_of_memory',
  'device_lost',
  'aborted',
  'bad_request',
  'storage_quota',
  'storage',
  'storage_corrupt',
  'schema_too_new',
  'not_found',
  'embedder_format',
  'card_format',
  'model_not_loaded',
  'newer_data',
  'internal',
  'busy',
]);

/** Every error from this package: a `code` to switch on and a message for people. */
export class ConfidantError extends Error {
  readonly code: ConfidantErrorCode;

  constructor(code: ConfidantErrorCode, message: string) {
    super(message);
    this.name = 'ConfidantError';
    this.code = code;
  }
}

/** The plain form errors take across the worker boundary. */
export interface SerializedError {
  code: ConfidantErrorCode;
  message: string;
}

export const WEBGPU_BROWSERS =
  'WebGPU is available in Chrome and Edge 113+ (desktop and Android), Safari 26+ and Firefox 141+ on Windows.';

/** Any thrown value as a ConfidantError-shaped object, keeping a known code when it has one. */
export function serializeError(error: unknown): SerializedError {
  if (error instanceof ConfidantError) return { code: error.code, message: error.message };
  // A trap (a bug, an out-of-bounds access) leaves the wasm instance unusable: not a bad request.
  if (typeof WebAssembly === 'object' && error instanceof WebAssembly.RuntimeError) {
    return { code: 'internal', message: `The engine stopped on an internal error (${error.message}); it is restarted.` };
  }
  const raw = error as { code?: unknown; message?: unknown; name?: unknown } | null;
  const message = typeof raw?.message === 'string' ? raw.message : String(error);
  let code: ConfidantErrorCode = 'bad_request';
  if (typeof raw?.code === 'string' && CODES.has(raw.code)) code = raw.code as ConfidantErrorCode;
  else if (raw?.name === 'AbortError') code = 'aborted';
  else if (/out of memory|allocation failed|OutOfMemory/i.test(message)) code = 'out_of_memory';
  else if (/device (was )?lost|DeviceLost|poison/i.test(message)) code = 'device_lost';
  return { code, message };
}

export function deserializeError(e: SerializedError): ConfidantError {
  return new ConfidantError(e.code, e.message);
}
