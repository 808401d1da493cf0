// The dedicated Web Worker that hosts the engine, so generation never blocks the page.

import { EngineHost } from './host.js';
import type { HostRequest, HostResponse } from './protocol.js';

interface WorkerScope {
  postMessage(message: HostResponse): void;
  addEventListener(type: 'message', listener: (event: MessageEvent<HostRequest>) => void): void;
}

const scope = self as unknown as WorkerScope;
const host = new EngineHost((message) => scope.postMessage(message));
scope.addEventListener('message', (event) => host.receive(event.data));
