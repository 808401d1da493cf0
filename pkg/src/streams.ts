// What streaming calls return: ChunkStream (completions, chunk by chunk) and TurnStream (a chat
// turn, event by event, and a promise of its last event).

import { ConfidantError } from './errors.js';
import type { ChatOps } from './operations.js';
import type { ChatEvent, DoneEvent } from './types.js';

/** @internal The operations that stream a turn. */
export type TurnOp = 'send' | 'regenerate' | 'continueReply' | 'impersonate';

/** @internal The engine as a turn stream uses it. */
export interface TurnRequester {
  chatRequest<K extends TurnOp>(op: K, args: ChatOps[K]['args'], transfer?: Transferable[], onEvent?: (event: unknown) => void): { id: number; done: Promise<unknown> };
  abortRequest(id: number): void;
}

/**
 * The `progress` event of a stream: the model is reading the prompt, `done` of `total` tokens
 * (those not reused from the cache). A prompt longer than one chunk (64 tokens) reports when
 * reading starts and after each chunk; the first token follows the last report.
 */
export class PromptProgressEvent extends Event {
  constructor(
    readonly done: number,
    readonly total: number,
  ) {
    super('progress');
  }
}

type Listener<E extends Event> = ((event: E) => void) | { handleEvent(event: E): void } | null;

/** An EventTarget whose `progress` listeners receive a {@link PromptProgressEvent}. */
export class ProgressEventTarget extends EventTarget {
  override addEventListener(type: 'progress', listener: Listener<PromptProgressEvent>, options?: boolean | AddEventListenerOptions): void;
  override addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  override addEventListener(type: string, listener: Listener<never>, options?: boolean | AddEventListenerOptions): void {
    super.addEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }

  override removeEventListener(type: 'progress', listener: Listener<PromptProgressEvent>, options?: boolean | EventListenerOptions): void;
  override removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
  override removeEventListener(type: string, listener: Listener<never>, options?: boolean | EventListenerOptions): void {
    super.removeEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }
}

/**
 * Streamed chunks. Iterate with `for await`; `abort()` (or leaving the loop early) stops
 * generation. `addEventListener('progress', (e) => e.done / e.total)` follows the reading of a
 * long prompt, before the first chunk.
 */
export class ChunkStream<T> extends ProgressEventTarget implements AsyncIterable<T> {
  private readonly buffered: T[] = [];
  private waiting: ((r: IteratorResult<T>) => void) | null = null;
  private failed: ConfidantError | null = null;
  private finished = false;
  private rejectWaiting: ((e: ConfidantError) => void) | null = null;

  /**
   * @internal `stop` asks the engine to stop. With `endOnAbort` (completion streams) an abort ends
   * the loop at once; without it (chat turns) the stream goes on to the engine's last event,
   * which reports the stop and keeps what was written.
   */
  constructor(
    private readonly stop: () => void,
    private readonly endOnAbort = true,
  ) {
    super();
  }

  /** @internal */
  progress(done: number, total: number): void {
    if (!this.finished) this.dispatchEvent(new PromptProgressEvent(done, total));
  }

  /** @internal */
  push(chunk: T): void {
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = this.rejectWaiting = null;
      resolve({ value: chunk, done: false });
    } else {
      this.buffered.push(chunk);
    }
  }

  /** @internal */
  end(error?: ConfidantError): void {
    this.finished = true;
    this.failed = error ?? null;
    if (this.waiting) {
      const [resolve, reject] = [this.waiting, this.rejectWaiting];
      this.waiting = this.rejectWaiting = null;
      if (error) reject?.(error);
      else resolve({ value: undefined, done: true });
    }
  }

  /**
   * Stop generating; the loop then ends with an `aborted` ConfidantError at once. Chunks that
   * arrived but were not read yet are dropped: a fast backend may have produced them all
   * before the abort, and the caller asked for no more.
   */
  abort(): void {
    if (this.failed?.code === 'aborted') return;
    if (!this.finished) this.stop();
    if (!this.endOnAbort) return;
    this.buffered.length = 0;
    this.end(new ConfidantError('aborted', 'The generation was aborted.'));
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const chunk = this.buffered.shift();
        if (chunk !== undefined) return Promise.resolve({ value: chunk, done: false });
        if (this.failed) return Promise.reject(this.failed);
        if (this.finished) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          this.waiting = resolve;
          this.rejectWaiting = reject;
        });
      },
      return: () => {
        // Leaving a for-await loop early stops the generation.
        this.abort();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/**
 * A reply being generated: iterate it for events (`for await (const ev of s.send('Hi'))`), or
 * await it for the final `done` event. `abort()` (or the `signal` option) ends it early; what
 * was written is kept. While a long prompt is read, `progress` events come both ways: in the
 * iteration (`{ type: 'progress', done, total }`) and to `addEventListener('progress', …)`.
 */
export class TurnStream extends ProgressEventTarget implements AsyncIterable<ChatEvent>, PromiseLike<DoneEvent> {
  private readonly events: ChunkStream<ChatEvent>;
  private readonly result: Promise<DoneEvent>;

  /** @internal */
  constructor(engine: TurnRequester, op: TurnOp, args: ChatOps[TurnOp]['args'], signal: AbortSignal | undefined) {
    super();
    let requestId = 0;
    let done: DoneEvent | null = null;
    this.events = new ChunkStream<ChatEvent>(() => engine.abortRequest(requestId), false);
    if (signal?.aborted) {
      const error = new ConfidantError('aborted', 'The request was aborted before it started.');
      this.events.end(error);
      this.result = Promise.reject(error);
      this.result.catch(() => {});
      return;
    }
    const pending = engine.chatRequest(op, args, undefined, (event) => {
      const e = event as ChatEvent;
      if (e.type === 'done') done = e;
      this.events.push(e);
      if (e.type === 'progress') this.dispatchEvent(new PromptProgressEvent(e.done, e.total));
    });
    requestId = pending.id;
    const onAbort = () => this.events.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    this.result = pending.done.then(
      () => {
        this.events.end();
        if (!done) throw new ConfidantError('bad_request', 'The reply ended without a done event.');
        return done;
      },
      (e: ConfidantError) => {
        this.events.end(e);
        throw e;
      },
    );
    this.result.catch(() => {}).finally(() => signal?.removeEventListener('abort', onAbort));
  }

  [Symbol.asyncIterator](): AsyncIterator<ChatEvent> {
    return this.events[Symbol.asyncIterator]();
  }

  then<A = DoneEvent, B = never>(onfulfilled?: ((value: DoneEvent) => A | PromiseLike<A>) | null, onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    return this.result.then(onfulfilled, onrejected);
  }

  /** End the reply at the next token. */
  abort(): void {
    this.events.abort();
  }
}
