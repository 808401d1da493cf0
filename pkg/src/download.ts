// Getting a model's bytes: from the browser's cache when it has them (no network), else from
// the network with progress, resuming an interrupted download with an HTTP Range request, and
// refusing a model the engine cannot run as soon as its header has arrived.

import { ConfidantError } from './errors.js';
import {
  PartWriter,
  commitModel,
  deleteModel,
  findModel,
  keyFor,
  LOCAL_SCHEME,
  cachedFile,
  readPartial,
  readPartialBytes,
  sha256Hex,
  withLock,
} from './model-store.js';
import type { Progress } from './types.js';

export interface UrlSource {
  url: string;
  sha256?: string;
  revalidate?: boolean;
}

/** Checks a prefix of the file; throws for a model the engine cannot run, returns false while
 * the header continues past the prefix, true once it is known good. */
export type HeaderCheck = (prefix: Uint8Array, fileLength: number) => boolean;

function fetchError(url: string, detail: string): ConfidantError {
  return new ConfidantError('model_fetch', `Could not download the model from ${url}: ${detail}`);
}

/** Has the file at `url` changed since it was cached? One conditional request. */
async function changedOnServer(url: string, etag: string | null, lastModified: string | null): Promise<boolean> {
  const headers: Record<string, string> = {};
  if (etag) headers['If-None-Match'] = etag;
  if (lastModified) headers['If-Modified-Since'] = lastModified;
  try {
    const response = await fetch(url, { method: 'HEAD', headers, cache: 'no-store' });
    if (response.status === 304) return false;
    if (!response.ok) return false; // Offline or gone: keep using the copy we have.
    const newEtag = response.headers.get('ETag');
    const newModified = response.headers.get('Last-Modified');
    return (etag !== null && newEtag !== etag) || (etag === null && newModified !== lastModified);
  } catch {
    return false;
  }
}

/**
 * The model file of `source` as the browser keeps it (a File in the origin private file
 * system): the cached copy when there is one (no network), else downloaded into the cache first.
 */
export async function loadModelFile(
  source: UrlSource,
  onProgress: (p: Progress) => void,
  checkHeader: HeaderCheck,
  signal?: AbortSignal,
): Promise<Blob> {
  const url = new URL(source.url, globalThis.location?.href).href;
  const key = await keyFor(url);
  return withLock(`model:${key}`, async () => {
    const cached = await findModel(url);
    let useCache = cached !== null && (!source.sha256 || cached.sha256 === source.sha256.toLowerCase());
    if (useCache && cached && source.revalidate) {
      useCache = !(await changedOnServer(url, cached.etag, cached.lastModified));
    }
    if (useCache && cached) {
      const file = await cachedFile(url);
      if (file) {
        onProgress({ stage: 'cache', loaded: file.size, total: file.size });
        return file;
      }
    }
    // A file stored from the user's device has no server to fetch it from again.
    if (url.startsWith(LOCAL_SCHEME)) throw new ConfidantError('model_fetch', `The model file ${decodeURIComponent(url.slice(url.lastIndexOf('/') + 1))} is no longer stored in this browser: add it again (Confidant.cache.add).`);
    await download(url, source.sha256?.toLowerCase(), onProgress, checkHeader, signal);
    const file = await cachedFile(url);
    if (!file) throw new ConfidantError('storage', `The download of ${url} was stored but cannot be read back from this browser's storage.`);
    return file;
  });
}

async function download(
  url: string,
  expectedSha: string | undefined,
  onProgress: (p: Progress) => void,
  checkHeader: HeaderCheck,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const partial = await readPartial(url);
  const headers: Record<string, string> = {};
  const validator = partial?.etag ?? partial?.lastModified;
  if (partial && partial.received > 0 && validator) {
    headers.Range = `bytes=${partial.received}-`;
    // If the file changed, the server ignores the range and sends it whole.
    headers['If-Range'] = validator;
  }

  let response: Response;
  try {
    response = await fetch(url, { headers, signal, cache: 'no-store' });
  } catch (e) {
    if (signal?.aborted) throw new ConfidantError('aborted', 'The model download was aborted.');
    throw fetchError(url, (e as Error).message);
  }
  if (!response.ok) throw fetchError(url, `HTTP ${response.status} ${response.statusText}`);
  if (!response.body) throw fetchError(url, 'the response has no body');

  const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(response.headers.get('Content-Range') ?? '');
  const resume = response.status === 206 && partial !== null && range !== null && Number(range[1]) === partial.received;
  if (response.status === 206 && !resume) throw fetchError(url, 'the server answered a range that was not asked for');
  const total = resume ? Number(range![3]) : Number(response.headers.get('Content-Length') ?? 0);
  const etag = response.headers.get('ETag');
  const lastModified = response.headers.get('Last-Modified');

  // The whole file ends up in memory anyway (the engine reads it from there).
  let buffer = new Uint8Array(total > 0 ? total : 1 << 20);
  let received = 0;
  if (resume && partial) {
    buffer.set(new Uint8Array(await readPartialBytes(url, partial.received)), 0);
    received = partial.received;
  }
  const writer = await PartWriter.open(url, { url, size: total, received, etag, lastModified }, resume);

  let headerKnownGood = false;
  const reader = response.body.getReader();
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (received + value.byteLength > buffer.length) {
          if (total > 0) throw fetchError(url, 'the server sent more bytes than it announced');
          const grown = new Uint8Array(Math.max(buffer.length * 2, received + value.byteLength));
          grown.set(buffer.subarray(0, received));
          buffer = grown;
        }
        buffer.set(value, received);
        received += value.byteLength;
        await writer.write(value);
        if (!headerKnownGood) headerKnownGood = checkHeader(buffer.subarray(0, received), total || received);
        onProgress({ stage: 'download', loaded: received, total });
      }
    } catch (e) {
      await reader.cancel().catch(() => {});
      // Keep what arrived, so the next attempt resumes (unless the model itself was refused).
      if (e instanceof ConfidantError && (e.code === 'unsupported_model' || e.code === 'model_format')) throw e;
      await writer.flush().catch(() => {});
      if (signal?.aborted) throw new ConfidantError('aborted', 'The model download was aborted.');
      if (e instanceof ConfidantError) throw e;
      throw fetchError(url, `the connection broke after ${received} bytes (${(e as Error).message}); it resumes from there next time`);
    }
    if (total > 0 && received !== total) throw fetchError(url, `received ${received} of ${total} bytes`);
    bytes = total > 0 ? buffer : buffer.slice(0, received);
    if (!headerKnownGood) checkHeader(bytes, bytes.byteLength);

    await writer.flush();
  } finally {
    writer.close();
  }
  onProgress({ stage: 'cache', loaded: 0, total: bytes.byteLength });
  const sha256 = await sha256Hex(bytes);
  if (expectedSha && sha256 !== expectedSha) {
    await deleteModel(url);
    throw fetchError(url, `the file's SHA-256 is ${sha256}, not the expected ${expectedSha} (did it change on the server?)`);
  }
  await commitModel(url, { url, size: bytes.byteLength, sha256, etag, lastModified, storedAt: new Date().toISOString() });
  onProgress({ stage: 'cache', loaded: bytes.byteLength, total: bytes.byteLength });
  return bytes;
}
