// Exposes the built npm package (served at /confidant/) to the browser tests, plus a frame
// counter that shows whether the main thread keeps running.
import { Confidant, ConfidantError, PromptProgressEvent } from '/confidant/index.js';

let frames = 0;
const counter = document.getElementById('frames');
const tick = () => {
  frames += 1;
  counter.textContent = String(frames);
  requestAnimationFrame(tick);
};
requestAnimationFrame(tick);

window.pkg = { Confidant, ConfidantError, PromptProgressEvent, frames: () => frames };
window.pkgReady = true;
