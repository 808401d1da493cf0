// What the site says about where the model runs, why, and how fast to expect it to be.

import type { EngineInfo } from 'confidant';
import { duration, plural } from './format.js';

/** "the processor (2 threads)", "the graphics card (NVIDIA ampere)". */
export function where(info: EngineInfo): string {
  if (info.backend === 'cpu') return `the processor (${plural(info.threads, 'thread', 'threads')})`;
  return `the graphics card (${info.gpu?.name ?? (info.adapter.name || 'WebGPU')})`;
}

/** "about 31 tokens a second", from the speed measured when the model loaded. */
export function writingSpeed(info: EngineInfo): string | null {
  const s = info.speed?.decodeTokS;
  if (!s) return null;
  return `about ${s >= 10 ? Math.round(s) : s.toFixed(1)} tokens a second`;
}

/** A short line for the chat: where it runs and how fast it writes. */
export function shortSummary(info: EngineInfo): string {
  const speed = info.speed ? ` · about ${info.speed.decodeTokS >= 10 ? Math.round(info.speed.decodeTokS) : info.speed.decodeTokS.toFixed(1)} tok/s` : '';
  return `${info.model.displayName} on ${where(info)}${speed}`;
}

/** Sentences for the settings: which backend and why, and what speed to expect. */
export function expectations(info: EngineInfo): string[] {
  const lines = [`${info.model.displayName} runs on ${where(info)}: ${info.backendReason}.`];
  const speed = writingSpeed(info);
  if (info.speed && speed) {
    const read = Math.round(info.speed.prefillTokS);
    lines.push(
      `Measured when it loaded: it writes ${speed} (a reply of 100 tokens, some 75 words, in about ${duration(100 / info.speed.decodeTokS)}) and reads about ${read} a second; a new chat first reads the character's card, longer chats take longer to read.`,
    );
  }
  return lines;
}
