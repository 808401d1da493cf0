// The reply being written, in its bubble: typing dots at once, then "reading the conversation…
// 40 % · about 12 s left" while the model reads a long prompt, then the streamed pieces (thought,
// action, speech), the first of which replaces the dots.

import { h } from './dom.js';
import { duration } from './format.js';

export type Piece = 'thought' | 'action' | 'text';

export class PendingReply {
  /** Whether a piece of the reply has arrived. */
  started = false;
  private readonly body: HTMLElement;
  private readonly status = h('span', { class: 'status' });
  private current: { kind: Piece; el: HTMLElement } | null = null;
  /** The first progress report, to measure the reading speed from. */
  private first: { time: number; done: number } | null = null;

  /**
   * `element`: an empty assistant bubble. `estimateTokS`: the reading speed to expect before
   * one is measured (prompt tokens a second), if known.
   */
  constructor(
    readonly element: HTMLLIElement,
    name: string,
    private estimateTokS: number | null,
  ) {
    element.classList.add('typing');
    this.body = element.querySelector('.body')!;
    this.body.append(
      h('p', { class: 'typing-line' }, h('span', { class: 'dots', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')), h('span', { class: 'visually-hidden' }, `${name} is writing. `), this.status),
    );
  }

  /** What is happening before the model can read anything (it is being downloaded or set up). */
  note(text: string): void {
    if (!this.started) this.status.textContent = text;
  }

  /** The reading speed to expect, once the model is loaded and measured. */
  estimate(tokS: number | null): void {
    this.estimateTokS = tokS;
  }

  /** The model has read `done` of the prompt's `total` tokens. */
  progress(done: number, total: number): void {
    if (this.started || total <= 0) return;
    const now = performance.now();
    this.first ??= { time: now, done };
    const seconds = (now - this.first.time) / 1000;
    const rate = done > this.first.done && seconds > 0 ? (done - this.first.done) / seconds : (this.estimateTokS ?? 0);
    const left = rate > 0 && done < total ? ` · about ${duration((total - done) / rate)} left` : '';
    this.status.textContent = `reading the conversation… ${Math.floor((100 * Math.min(done, total)) / total)} %${left}`;
  }

  /** A piece of the reply; `opens` starts a new paragraph of its kind. */
  piece(kind: Piece, text: string, opens: boolean): void {
    if (!this.started) {
      this.started = true;
      this.element.classList.replace('typing', 'streaming');
      this.body.replaceChildren();
    }
    if (!this.current || opens || this.current.kind !== kind) {
      this.current = { kind, el: h('p', { class: kind }) };
      this.body.append(this.current.el);
    }
    this.current.el.textContent += text;
  }
}
