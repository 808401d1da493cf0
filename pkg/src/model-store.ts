// The browser's copy of downloaded models, in the origin private file system (OPFS).
//
// Layout under the OPFS root: `confidant-models/index.json` lists complete files by URL;
// `<key>.gguf` holds a file's bytes (complete once the index lists it) and, while a download is
// under way or was interrupted, `<key>.part.json` what is needed to resume it (HTTP validators,
// bytes safely stored). `key` is a hash of the URL. A file the user gave (`storeFile`) is kept the
// same way under a URL of its own scheme, `confidant-file://<id>/<name>`, which no server answers.
// Writers hold a Web Lock per key, so two tabs never write the same file at once.

import type { CachedModel } from './types.js';

const DIR = 'confidant-models';
const INDEX = 'index.json';

export interface PartialDownload {
  url: string;
  size: number;
  received: number;
  etag: string | null;
  lastModified: string | null;
}

async function dir(): Promise<FileSystemDirectoryHandle> {
  const root = await navigator.storage.getDirectory();
  return root.getDirectoryHandle(DIR, { create: true });
}

export async function hex(buffer: ArrayBuffer): Promise<string> {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

export async function sha256Hex(data: BufferSource): Promise<string> {
  return hex(await crypto.subtle.digest('SHA-256', data));
}

/** File-name-safe key for a URL. */
export async function keyFor(url: string): Promise<string> {
  return (await sha256Hex(new TextEncoder().encode(url))).slice(0, 32);
}

async function readJson<T>(d: FileSystemDirectoryHandle, name: string): Promise<T | null> {
  try {
    const file = await (await d.getFileHandle(name)).getFile();
    return JSON.parse(await file.text()) as T;
  } catch {
    return null;
  }
}

async function writeJson(d: FileSystemDirectoryHandle, name: string, value: unknown): Promise<void> {
  const handle = await d.getFileHandle(name, { create: true });
  const writable = await handle.createWritable();
  await writable.write(JSON.stringify(value));
  await writable.close();
}

/** Run `fn` holding this origin's lock for `name` (no-op where Web Locks are missing). */
export async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if (typeof navigator !== 'undefined' && navigator.locks) {
    return navigator.locks.request(`confidant:${name}`, fn) as Promise<T>;
  }
  return fn();
}

export async function listModels(): Promise<CachedModel[]> {
  const index = (await readJson<Record<string, CachedModel>>(await dir(), INDEX)) ?? {};
  return Object.values(index);
}

export async function findModel(url: string): Promise<CachedModel | null> {
  const index = (await readJson<Record<string, CachedModel>>(await dir(), INDEX)) ?? {};
  return index[url] ?? null;
}

/** The cached copy of `url` (a File in OPFS, read a slice at a time or whole), or null. */
export async function cachedFile(url: string): Promise<File | null> {
  const entry = await findModel(url);
  if (!entry) return null;
  try {
    const d = await dir();
    const file = await (await d.getFileHandle(`${await keyFor(url)}.gguf`)).getFile();
    return file.size === entry.size ? file : null;
  } catch {
    return null;
  }
}

/** Record the download in `<key>.gguf` as the complete cached copy of `url`. */
export async function commitModel(url: string, entry: CachedModel): Promise<void> {
  const d = await dir();
  const key = await keyFor(url);
  await withLock('index', async () => {
    const index = (await readJson<Record<string, CachedModel>>(d, INDEX)) ?? {};
    index[url] = entry;
    await writeJson(d, INDEX, index);
  });
  await d.removeEntry(`${key}.part.json`).catch(() => {});
}

/** Forget the complete copy of `url` (its bytes are about to be replaced). */
async function unlist(d: FileSystemDirectoryHandle, url: string): Promise<boolean> {
  return withLock('index', async () => {
    const index = (await readJson<Record<string, CachedModel>>(d, INDEX)) ?? {};
    const existed = url in index;
    if (existed) {
      delete index[url];
      await writeJson(d, INDEX, index);
    }
    return existed;
  });
}

/** The scheme of the URLs naming files the user stored from their own device. */
export const LOCAL_SCHEME = 'confidant-file:';

/** Copy a file the user picked into the cache (streamed to disk), listed under a
 * `confidant-file:` URL of its own; resolves to its entry. (WebCrypto has no streaming digest,
 * so the SHA-256 reads the stored copy whole, as loading it does.) */
export async function storeFile(file: Blob, name: string, onProgress: (loaded: number, total: number) => void, id: string = crypto.randomUUID()): Promise<CachedModel> {
  const url = `${LOCAL_SCHEME}//${id}/${encodeURIComponent(name)}`;
  const d = await dir();
  const key = await keyFor(url);
  const handle = await d.getFileHandle(`${key}.gguf`, { create: true });
  try {
    const writable = await handle.createWritable();
    let loaded = 0;
    const counted = file.stream().pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          loaded += chunk.byteLength;
          onProgress(loaded, file.size);
          controller.enqueue(chunk);
        },
      }),
    );
    await counted.pipeTo(writable);
    const stored = await handle.getFile();
    if (stored.size !== file.size) throw new Error(`stored ${stored.size} of ${file.size} bytes`);
    const sha256 = await sha256Hex(await stored.arrayBuffer());
    const entry: CachedModel = { url, size: file.size, sha256, etag: null, lastModified: null, storedAt: new Date().toISOString(), name };
    await commitModel(url, entry);
    return entry;
  } catch (e) {
    await d.removeEntry(`${key}.gguf`).catch(() => {});
    throw e;
  }
}

export async function deleteModel(url: string): Promise<boolean> {
  const d = await dir();
  const key = await keyFor(url);
  const existed = await unlist(d, url);
  for (const name of [`${key}.gguf`, `${key}.part.json`]) await d.removeEntry(name).catch(() => {});
  return existed;
}

export async function readPartial(url: string): Promise<PartialDownload | null> {
  const d = await dir();
  const key = await keyFor(url);
  const meta = await readJson<PartialDownload>(d, `${key}.part.json`);
  if (!meta || meta.url !== url) return null;
  try {
    const file = await (await d.getFileHandle(`${key}.gguf`)).getFile();
    // Trust only the bytes actually on disk.
    return { ...meta, received: Math.min(meta.received, file.size) };
  } catch {
    return null;
  }
}

/** The bytes of an interrupted download stored so far. */
export async function readPartialBytes(url: string, received: number): Promise<ArrayBuffer> {
  const d = await dir();
  const file = await (await d.getFileHandle(`${await keyFor(url)}.gguf`)).getFile();
  return file.slice(0, received).arrayBuffer();
}

/** OPFS's in-place writer (dedicated workers only). */
interface SyncAccess {
  write(data: Uint8Array, options: { at: number }): number;
  truncate(size: number): void;
  flush(): void;
  close(): void;
}

/** Appends a download's bytes to `<key>.gguf` in batches, recording after each batch how many
 * bytes are safely stored, so an interrupted download resumes from there. In a worker the
 * bytes go through one sync access handle, written in place and flushed per batch; elsewhere
 * each batch is a writable stream of its own (those keep data only once closed, and each copies
 * the file first, which grows with the square of a large file's size). Close it when done. */
export class PartWriter {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  private constructor(
    private readonly d: FileSystemDirectoryHandle,
    private readonly key: string,
    private readonly handle: FileSystemFileHandle,
    private meta: PartialDownload,
    private access: SyncAccess | null,
  ) {}

  static readonly BATCH = 8 << 20;

  /** Start a fresh part file, or continue one holding `meta.received` bytes. */
  static async open(url: string, meta: PartialDownload, resume: boolean): Promise<PartWriter> {
    const d = await dir();
    const key = await keyFor(url);
    await unlist(d, url);
    const handle = await d.getFileHandle(`${key}.gguf`, { create: true });
    const size = resume ? meta.received : 0;
    const syncable = handle as FileSystemFileHandle & { createSyncAccessHandle?: () => Promise<SyncAccess> };
    let access: SyncAccess | null = null;
    if (typeof syncable.createSyncAccessHandle === 'function') {
      access = await syncable.createSyncAccessHandle().catch(() => null);
      access?.truncate(size);
      access?.flush();
    }
    if (!access) {
      const writable = await handle.createWritable({ keepExistingData: resume });
      if (resume) await writable.truncate(size);
      await writable.close();
    }
    const writer = new PartWriter(d, key, handle, { ...meta, received: size }, access);
    await writeJson(d, `${key}.part.json`, writer.meta);
    return writer;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.pending.push(chunk);
    this.pendingBytes += chunk.byteLength;
    if (this.pendingBytes >= PartWriter.BATCH) await this.flush();
  }

  /** Store the pending bytes and record the new resume point. */
  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    if (this.access) {
      let at = this.meta.received;
      for (const chunk of this.pending) at += this.access.write(chunk, { at });
      this.access.flush();
    } else {
      const writable = await this.handle.createWritable({ keepExistingData: true });
      await writable.seek(this.meta.received);
      for (const chunk of this.pending) await writable.write(chunk as Uint8Array<ArrayBuffer>);
      await writable.close();
    }
    this.meta = { ...this.meta, received: this.meta.received + this.pendingBytes };
    this.pending = [];
    this.pendingBytes = 0;
    await writeJson(this.d, `${this.key}.part.json`, this.meta);
  }

  /** Let go of the file (a sync access handle locks it against every other reader). */
  close(): void {
    this.access?.close();
    this.access = null;
  }
}
