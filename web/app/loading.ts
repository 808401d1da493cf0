// The one screen before the app: the message for settings that ask for WebGPU in a browser
// without it. (The first visit goes straight to the characters; the models' progress shows in
// the app: model.ts.)

import { h, replace } from './dom.js';

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
