// A small static server for the demo and the browser tests: web/ at /, models/ at /models/.
// No dependencies. Supports HTTP Range requests (resumable model downloads) and sends a
// Content-Security-Policy that allows network access to this origin only.
//
//   node web/serve.mjs [--port 8080] [--host 127.0.0.1]

import { createServer } from 'node:http';
import { createReadStream, promises as fs } from 'node:fs';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const roots = [
  ['/models/', resolve(here, '../models')],
  ['/', resolve(here)],
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
const csp = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'";

function resolvePath(urlPath) {
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

export function startServer({ port = 8080, host = '127.0.0.1', log = false } = {}) {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    let path = resolvePath(url.pathname);
    if (log) console.log(req.method, url.pathname, req.headers.range ?? '');
    try {
      if (!path) throw new Error('forbidden');
      let stat = await fs.stat(path);
      if (stat.isDirectory()) {
        path = join(path, 'index.html');
        stat = await fs.stat(path);
      }
      const headers = {
        'Content-Type': types[extname(path)] ?? 'application/octet-stream',
        'Content-Security-Policy': csp,
        'Accept-Ranges': 'bytes',
        'Last-Modified': stat.mtime.toUTCString(),
        ETag: `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`,
        'Cache-Control': 'no-cache',
      };
      const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
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
        return createReadStream(path, { start, end }).pipe(res);
      }
      res.writeHead(200, { ...headers, 'Content-Length': stat.size });
      if (req.method === 'HEAD') return res.end();
      createReadStream(path).pipe(res);
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
  await startServer({ port, host, log: process.argv.includes('--log') });
  console.log(`Confidant demo on http://${host === '0.0.0.0' ? 'localhost' : host}:${port}/`);
}
