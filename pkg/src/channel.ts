// The page's end of the link to the engine host: a dedicated Web Worker, or the host itself on
// this thread. One request per id; its progress, tokens and events come back as messages.

import { ConfidantError, deserializeError } from './errors.js';
import type { HostRequest, HostResponse } from './protocol.js';
import type { Progress } from './types.js';

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
  private readonly send: (request: HostRequest, transfer?: Transferable[]) => void;
  private readonly terminate: () => void;

  private constructor(send: Channel['send'], terminate: () => void) {
    this.send = send;
    this.terminate = terminate;
  }

  static async open(useWorker: boolean): Promise<Channel> {
    if (useWorker) {
      const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'confidant-engine' });
      const channel = new Channel(
        (request, transfer) => worker.postMessage(request, transfer ?? []),
        () => worker.terminate(),
      );
      worker.addEventListener('message', (event: MessageEvent<HostResponse>) => channel.receive(event.data));
      worker.addEventListener('error', (event) => channel.failAll(new ConfidantError('device_lost', `The engine worker failed: ${event.message}`)));
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
    this.send({ ...request, id } as HostRequest, transfer);
    return { id, done };
  }

  abort(id: number): void {
    this.send({ type: 'abort', id });
  }

  private receive(message: HostResponse): void {
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
    this.failAll(new ConfidantError('bad_request', 'The engine was disposed.'));
    this.terminate();
  }
}
