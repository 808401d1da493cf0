// The service worker: keeps the site's files so it starts offline after the first visit, and
// gives every response the headers a plain static host cannot set.
// The build prepends `VERSION` (a hash of the build's files), `ASSETS` (every file of the build)
// and `CSP` (the page's Content-Security-Policy, from index.html's <meta>).
// Models are not kept here: the npm package stores them in the browser's private file system.
/* global VERSION, ASSETS, CSP */

/**
 * This deployment's caches: the prefix names the scope, so two copies of the site on one origin
 * (user.github.io/a/ and /b/), or other apps there, never touch each other's caches.
 */
const CACHE_PREFIX = `confidant ${self.registration.scope} `;
const CACHE = `${CACHE_PREFIX}${VERSION}`;

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(ASSETS.map((path) => new Request(path, { cache: 'reload' })))),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      // Only this deployment's older versions.
      for (const key of await caches.keys()) if (key.startsWith(CACHE_PREFIX) && key !== CACHE) await caches.delete(key);
      // The first visit's page is controlled at once, so it works offline without a reload.
      await self.clients.claim();
    })(),
  );
});

/**
 * The response with the headers a static host may not send:
 * - COOP + COEP make the page cross-origin isolated, which the engine needs for its
 *   multi-threaded CPU build (shared memory);
 * - the Content-Security-Policy as a header: a <meta> policy binds only its page, while a
 *   worker (the engine's, which makes every fetch) takes the policy of its own script's
 *   response; and `frame-ancestors` (no framing, against clickjacking) works only in a header.
 * GitHub Pages and the like get them from here, from the second load on.
 */
function withHeaders(response) {
  if (response.type === 'opaque' || response.type === 'opaqueredirect') return response;
  const headers = new Headers(response.headers);
  headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
  headers.set('Content-Security-Policy', `${CSP}; frame-ancestors 'none'`);
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
      const cache = await caches.open(CACHE);
      const hit = request.mode === 'navigate' ? await cache.match(new URL('index.html', scope).href) : await cache.match(request, { ignoreSearch: true });
      return withHeaders(hit ?? (await fetch(request)));
    })(),
  );
});
