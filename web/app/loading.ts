// The screens before the chat: the first-visit explanation, the model's progress (stage,
// bytes, percentage, time left) and the message for browsers without WebGPU.

import type { Progress } from 'confidant';
import { h, replace } from './dom.js';
import { bytes, duration } from './format.js';

/** Whether this browser can give us a WebGPU adapter. */
export async function hasWebGpu(): Promise<boolean> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) return false;
  try {
    return (await gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

/** The settings ask for the GPU and this browser has none to give: explain, offer the CPU. */
export function showNoWebGpu(root: HTMLElement, useCpu: () => void): void {
  replace(
    root,
    h(
      'main',
      { class: 'splash' },
      h('h1', {}, 'No WebGPU in this browser'),
      h('p', {}, 'Your settings ask Confidant to run its language model on your graphics card through WebGPU, which this browser does not offer (or has turned off).'),
      h(
        'p',
        {},
        'WebGPU is in Chrome or Edge 113 or newer on Windows, macOS or ChromeOS (Chrome 121+ on Android), and Safari 26 on macOS, iOS and iPadOS. On Linux, Chrome needs WebGPU enabled in chrome://flags. Firefox 141+ has it on Windows.',
      ),
      h('p', {}, 'The processor works too, everywhere, and nothing you write leaves this device either way.'),
      h('button', { type: 'button', class: 'primary', onclick: useCpu }, 'Run on the processor'),
    ),
  );
}

/** The first-visit explanation; resolves when the person chooses to start. */
export function showWelcome(root: HTMLElement, { cached }: { cached: boolean }): Promise<void> {
  return new Promise((resolve) => {
    const start = h('button', { type: 'button', class: 'primary', onclick: () => resolve() }, cached ? 'Start' : 'Download and start');
    replace(
      root,
      h(
        'main',
        { class: 'splash' },
        h('h1', {}, 'Confidant'),
        h('p', { class: 'lead' }, 'Private companions that live in your browser.'),
        h(
          'ul',
          { class: 'points' },
          h('li', {}, 'A small language model runs on this device: on its graphics card (WebGPU), or on its processor where that is faster.'),
          h('li', {}, 'Characters remember you: their memory is kept in this browser only.'),
          h('li', {}, 'Nothing you type is sent anywhere. After the first visit it works offline.'),
        ),
        h(
          'p',
          { class: 'muted' },
          cached
            ? 'The models are already in this browser.'
            : 'The first start downloads two models from this site: the language model (about 98 MB) and the memory model (about 91 MB). They are kept in this browser, so later visits start from the cache.',
        ),
        start,
      ),
    );
    start.focus();
  });
}

const STAGES = [
  ['download', 'Download'],
  ['cache', 'Cache'],
  ['compile', 'Compile'],
  ['ready', 'Ready'],
] as const;

/** The progress screen. `report` takes the engine's progress events. */
export class ProgressView {
  readonly element: HTMLElement;
  private readonly bar = h('progress', { max: 1, value: 0, 'aria-label': 'Loading progress' });
  private readonly title = h('h2', {}, 'Loading the language model');
  private readonly detail = h('p', { class: 'progress-detail', 'aria-live': 'polite' }, 'Starting…');
  private readonly steps: Map<string, HTMLElement>;
  private started = new Map<string, { time: number; loaded: number }>();
  /** Every stage seen, in order (the tests read it from the page). */
  readonly seen: string[] = [];

  constructor() {
    this.steps = new Map(STAGES.map(([key, label]) => [key, h('li', { 'data-stage': key }, label)]));
    this.element = h(
      'main',
      { class: 'splash loading' },
      h('h1', {}, 'Confidant'),
      this.title,
      h('ol', { class: 'stages' }, [...this.steps.values()]),
      this.bar,
      this.detail,
      h('p', { class: 'muted' }, 'Everything runs on this device. Nothing you type leaves it.'),
    );
  }

  report(p: Progress): void {
    const what = p.what === 'embedder' ? 'memory model' : 'language model';
    this.title.textContent = `Loading the ${what}`;
    // The engine's last step, moving weights onto the GPU, is part of "compile" here.
    const stage = p.stage === 'load' ? 'compile' : p.stage;
    const key = `${p.what ?? 'model'}:${p.stage}:${p.file ?? ''}`;
    if (this.seen[this.seen.length - 1] !== `${p.what ?? 'model'}:${p.stage}`) this.seen.push(`${p.what ?? 'model'}:${p.stage}`);
    this.mark(stage);
    if (!this.started.has(key)) this.started.set(key, { time: performance.now(), loaded: p.loaded });
    const fraction = p.total > 0 ? Math.min(1, p.loaded / p.total) : 0;
    this.bar.max = 1;
    this.bar.value = fraction;
    const parts: string[] = [];
    const label = { download: 'Downloading', cache: 'Saving to this browser', compile: 'Preparing the GPU', load: 'Moving onto the GPU' }[p.stage] ?? p.stage;
    parts.push(p.file ? `${label} ${p.file}` : label);
    if (p.total > 0) parts.push(`${bytes(p.loaded)} of ${bytes(p.total)}`, `${Math.floor(fraction * 100)}%`);
    const start = this.started.get(key)!;
    const elapsed = (performance.now() - start.time) / 1000;
    const rate = (p.loaded - start.loaded) / Math.max(elapsed, 1e-3);
    if (p.total > 0 && p.loaded < p.total && elapsed > 0.5 && rate > 0) parts.push(`about ${duration((p.total - p.loaded) / rate)} left`);
    this.detail.textContent = parts.join(' · ');
  }

  ready(): void {
    this.mark('ready');
    this.bar.value = 1;
    this.detail.textContent = 'Ready';
  }

  failed(message: string, retry: () => void): void {
    this.title.textContent = 'The model could not be loaded';
    this.detail.textContent = message;
    this.element.append(h('button', { type: 'button', class: 'primary', onclick: retry }, 'Try again'));
  }

  private mark(stage: string): void {
    let reached = false;
    for (const [key] of STAGES) {
      const li = this.steps.get(key)!;
      if (key === stage) {
        li.className = 'current';
        li.setAttribute('aria-current', 'step');
        reached = true;
      } else {
        li.className = reached ? '' : 'done';
        li.removeAttribute('aria-current');
      }
    }
  }
}
