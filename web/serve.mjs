// A small static server for the demo and the browser tests. From the command line it serves
// the built site (web/dist) at /, the models at /models/ and the engine check page at /engine/;
// the tests pick their own roots (default: web/ at /, models/ at /models/).
// No dependencies. Supports HTTP Range requests (resumable model downloads) and sends a
// Content-Security-Policy that allows network access to this origin only; the demo is also
// served cross-origin isolated, so the engine can run on several threads.
//
//   node web/serve.mjs [--port 8080] [--host 127.0.0.1]

import { createServer } from 'node:http';
import { createReadStream, promises as fs } from 'node:fs';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const defaultRoots = [
  ['/models/', resolve(here, '../models')],
  ['/', resolve(here)],
];
/** The demo: the built site, the models beside it, and the engine check page. */
export const siteRoots = [
  ['/models/', resolve(here, '../models')],
  ['/engine/', resolve(here)],
  ['/', resolve(here, 'dist')],
];
const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.gguf': 'application/octet-stream',
  '.safetensors': 'application/octet-stream',
  '.webmanifest': 'application/manifest+json',
};
/** COOP + COEP: a cross-origin isolated page may share memory with its workers (the engine's CPU threads). */
export const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
export const csp = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

function resolvePath(roots, urlPath) {
  for (const [prefix, dir] of roots) {
    if (urlPath.startsWith(prefix)) {
      const rel = normalize(decodeURIComponent(urlPath.slice(prefix.length))).replace(/^(\.\.[/\\])+/, '');
      const full = join(dir, rel);
      if (!full.startsWith(dir)) return null;
      return full;
    }
  }
  return null;
}

/**
 * Options: `roots` ([[urlPrefix, directory], …], first match wins; default web/ at / and
 * models/ at /models/), `csp` (false to send none), `headers` (extra headers for every file,
 * e.g. COOP/COEP for a cross-origin isolated page), `onRequest(req)` (observe every request),
 * `cutAfter(req)` (for tests: a byte count after which to break the connection, or null).
 */
export function startServer({ port = 8080, host = '127.0.0.1', log = false, roots = defaultRoots, csp: sendCsp = true, headers: extraHeaders = {}, onRequest, cutAfter } = {}) {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    let path = resolvePath(roots, url.pathname);
    if (log) console.log(req.method, url.pathname, req.headers.range ?? '');
    onRequest?.(req);
    try {
      if (!path) throw new Error('forbidden');
      let stat = await fs.stat(path);
      if (stat.isDirectory()) {
        path = join(path, 'index.html');
        stat = await fs.stat(path);
      }
      const etag = `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
      const lastModified = stat.mtime.toUTCString();
      const headers = {
        'Content-Type': types[extname(path)] ?? 'application/octet-stream',
        'Accept-Ranges': 'bytes',
        'Last-Modified': lastModified,
        ETag: etag,
        'Cache-Control': 'no-cache',
        ...extraHeaders,
      };
      if (sendCsp) headers['Content-Security-Policy'] = csp;
      const notModified = req.headers['if-none-match'] === etag ||
        (!req.headers['if-none-match'] && req.headers['if-modified-since'] === lastModified);
      if (notModified && (req.method === 'GET' || req.method === 'HEAD')) {
        res.writeHead(304, headers);
        return res.end();
      }
      // If-Range: honour the range only if the file is the one the client started with.
      const ifRange = req.headers['if-range'];
      const rangeValid = !ifRange || ifRange === etag || ifRange === lastModified;
      const range = rangeValid ? /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '') : null;
      const cut = cutAfter?.(req) ?? null;
      const send = (options) => {
        const stream = createReadStream(path, options);
        if (cut === null) return stream.pipe(res);
        let sent = 0;
        stream.on('data', (chunk) => {
          if (sent + chunk.length >= cut) {
            res.write(chunk.subarray(0, Math.max(0, cut - sent)));
            stream.destroy();
            res.destroy();
            return;
          }
          sent += chunk.length;
          res.write(chunk);
        });
        stream.on('end', () => res.end());
      };
      if (range && (range[1] || range[2])) {
        let start = range[1] ? Number(range[1]) : stat.size - Number(range[2]);
        let end = range[1] && range[2] ? Number(range[2]) : stat.size - 1;
        if (start >= stat.size || start > end) {
          res.writeHead(416, { 'Content-Range': `bytes */${stat.size}` });
          return res.end();
        }
        end = Math.min(end, stat.size - 1);
        res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${stat.size}`, 'Content-Length': end - start + 1 });
        if (req.method === 'HEAD') return res.end();
        return send({ start, end });
      }
      res.writeHead(200, { ...headers, 'Content-Length': stat.size });
      if (req.method === 'HEAD') return res.end();
      send({});
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
    }
  });
  return new Promise((ok) => server.listen(port, host, () => ok(server)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : fallback;
  };
  const port = Number(arg('--port', 8080));
  const host = arg('--host', '127.0.0.1');
  await startServer({ port, host, log: process.argv.includes('--log'), roots: siteRoots, headers: isolation });
  const origin = `http://${host === '0.0.0.0' ? 'localhost' : host}:${port}`;
  console.log(`Confidant demo on ${origin}/ (engine check page: ${origin}/engine/engine.html)`);
}
