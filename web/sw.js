// The service worker: keeps the site's files so it starts offline after the first visit.
// The build prepends `VERSION` and `ASSETS` (every file of the build, with a content hash).
// Models are not kept here: the npm package stores them in the browser's private file system.
/* global VERSION, ASSETS */

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(VERSION).then((cache) => cache.addAll(ASSETS.map((path) => new Request(path, { cache: 'reload' })))),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) if (key !== VERSION) await caches.delete(key);
      // The first visit's page is controlled at once, so it works offline without a reload.
      await self.clients.claim();
    })(),
  );
});

/**
 * The response with the headers that make the page cross-origin isolated (COOP + COEP), which
 * the engine needs for its multi-threaded CPU build (shared memory). Static hosts that cannot
 * set headers (GitHub Pages, …) get them from here, from the second load on.
 */
function isolated(response) {
  if (response.type === 'opaque' || response.type === 'opaqueredirect') return response;
  const headers = new Headers(response.headers);
  headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) return;
  const scope = new URL(self.registration.scope);
  // Model files go to the network untouched (range requests, resumable downloads); they are
  // same-origin, which COEP always allows.
  if (url.pathname.startsWith(`${scope.pathname}models/`)) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(VERSION);
      const hit = request.mode === 'navigate' ? await cache.match(new URL('index.html', scope).href) : await cache.match(request, { ignoreSearch: true });
      return isolated(hit ?? (await fetch(request)));
    })(),
  );
});
