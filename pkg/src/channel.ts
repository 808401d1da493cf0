// The page's end of the link to the engine host: a dedicated Web Worker, or the host itself on
// this thread. One request per id; its progress, tokens and events come back as messages.
//
// When the worker's engine cannot go on (a wasm trap, a lost GPU; the host says 'crashed', or
// the worker itself fails), what is pending fails with that error, a new worker is started and
// the model loaded again with the first load's request (from the browser's cache: no download),
// and requests made meanwhile wait for it. Stored chats and memories are in IndexedDB, so the
// conversation simply continues.

import { ConfidantError, deserializeError } from './errors.js';
import type { HostRequest, HostResponse } from './protocol.js';
import type { Progress } from './types.js';

type LoadRequest = Extract<HostRequest, { type: 'load' }>;
type OpenRequest = Extract<HostRequest, { type: 'open' }>;

/** `Omit` applied to each member of a union. */
type OmitEach<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

type Handlers = {
  onProgress?: (p: Progress) => void;
  onToken?: (text: string, token: number) => void;
  onPrefill?: (done: number, total: number) => void;
  onEvent?: (event: unknown) => void;
  resolve: (value: unknown) => void;
  reject: (error: ConfidantError) => void;
};

/** Talks to the engine host: a Web Worker, or the host itself on this thread. */
export class Channel {
  private nextId = 1;
  private readonly pending = new Map<number, Handlers>();
  private send: (request: HostRequest, transfer?: Transferable[]) => void;
  private terminate: () => void;
  /** The first successful load, replayed into a restarted worker. */
  private loadRequest: LoadRequest | null = null;
  /** The engine opened without a model: replayed instead while no model was loaded. */
  private openRequest: OpenRequest | null = null;
  /** While a restarted worker loads the model: requests made meanwhile, sent once it is ready. */
  private held: { request: HostRequest; transfer?: Transferable[] }[] | null = null;
  private closed = false;
  /** Told after each restart, with the error that caused it. */
  onRestart: ((cause: ConfidantError) => void) | null = null;
  /** Told when a restart failed; the engine is unusable. */
  onRestartFailed: ((error: ConfidantError) => void) | null = null;

  private constructor(send: Channel['send'], terminate: () => void) {
    this.send = send;
    this.terminate = terminate;
  }

  /** A new engine worker wired to `channel` (the first, or a restarted one). */
  private static startWorker(channel: Channel): void {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'confidant-engine' });
    channel.send = (request, transfer) => worker.postMessage(request, transfer ?? []);
    channel.terminate = () => worker.terminate();
    worker.addEventListener('message', (event: MessageEvent<HostResponse>) => channel.receive(event.data));
    worker.addEventListener('error', (event) => channel.crashed(new ConfidantError('internal', `The engine worker failed: ${event.message}`)));
  }

  static async open(useWorker: boolean): Promise<Channel> {
    if (useWorker) {
      const channel = new Channel(
        () => {},
        () => {},
      );
      Channel.startWorker(channel);
      return channel;
    }
    const { EngineHost } = await import('./host.js');
    let host: InstanceType<typeof EngineHost> | null = null;
    const channel = new Channel(
      (request) => host?.receive(request),
      () => {},
    );
    host = new EngineHost((message) => channel.receive(message));
    return channel;
  }

  request(request: OmitEach<HostRequest, 'id'>, handlers: Omit<Handlers, 'resolve' | 'reject'> = {}, transfer?: Transferable[]): { id: number; done: Promise<unknown> } {
    const id = this.nextId++;
    const done = new Promise((resolve, reject) => this.pending.set(id, { ...handlers, resolve, reject }));
    const message = { ...request, id } as HostRequest;
    if (message.type === 'load' && !this.loadRequest && !('bytes' in message.model)) {
      // Bytes are handed over to the worker (transferred): a restart could not load them again.
      const load = message;
      done.then(() => (this.loadRequest ??= { ...load, measureSpeed: false }), () => {});
    }
    if (message.type === 'open') {
      const open = message;
      done.then(() => (this.openRequest ??= open), () => {});
    }
    this.post(message, transfer);
    return { id, done };
  }

  abort(id: number): void {
    this.post({ type: 'abort', id });
  }

  /** Ask the host to save the reply under way now. */
  flush(): void {
    this.post({ type: 'flush', id: 0 });
  }

  private post(request: HostRequest, transfer?: Transferable[]): void {
    if (this.held) this.held.push({ request, transfer });
    else this.send(request, transfer);
  }

  /**
   * The engine cannot go on: fail what is pending with `error`, then start a new worker and load
   * the model again, holding new requests until it is ready.
   */
  private crashed(error: ConfidantError): void {
    if (this.closed || this.held) return;
    this.failAll(error);
    const load = this.loadRequest ?? this.openRequest;
    this.terminate();
    if (!load) {
      this.closed = true;
      this.onRestartFailed?.(error);
      return;
    }
    this.held = [];
    Channel.startWorker(this);
    const id = this.nextId++;
    this.pending.set(id, {
      resolve: () => {
        const held = this.held ?? [];
        this.held = null;
        for (const { request, transfer } of held) this.send(request, transfer);
        this.onRestart?.(error);
      },
      reject: (e) => {
        const held = this.held ?? [];
        this.held = null;
        this.closed = true;
        const failed = new ConfidantError(e.code, `The engine stopped (${error.message}) and could not be started again: ${e.message}`);
        for (const { request } of held) this.pending.get(request.id)?.reject(failed);
        this.failAll(failed);
        this.onRestartFailed?.(failed);
      },
    });
    this.send({ ...load, id });
  }

  private receive(message: HostResponse): void {
    if (message.type === 'crashed') {
      this.crashed(deserializeError(message.error));
      return;
    }
    const handlers = this.pending.get(message.id);
    if (!handlers) return;
    switch (message.type) {
      case 'progress':
        handlers.onProgress?.(message.progress);
        break;
      case 'token':
        handlers.onToken?.(message.text, message.token);
        break;
      case 'prefill':
        handlers.onPrefill?.(message.done, message.total);
        break;
      case 'event':
        handlers.onEvent?.(message.event);
        break;
      case 'loaded':
        this.pending.delete(message.id);
        handlers.resolve(message.info);
        break;
      case 'done':
        this.pending.delete(message.id);
        handlers.resolve(message.result);
        break;
      case 'result':
        this.pending.delete(message.id);
        handlers.resolve(message.value);
        break;
      case 'disposed':
        this.pending.delete(message.id);
        handlers.resolve(undefined);
        break;
      case 'error':
        this.pending.delete(message.id);
        handlers.reject(deserializeError(message.error));
        break;
    }
  }

  failAll(error: ConfidantError): void {
    for (const handlers of this.pending.values()) handlers.reject(error);
    this.pending.clear();
  }

  close(): void {
    this.closed = true;
    this.held = null;
    this.failAll(new ConfidantError('bad_request', 'The engine was disposed.'));
    this.terminate();
  }
}
