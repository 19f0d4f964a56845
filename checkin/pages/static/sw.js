/* The phone page's service worker (docs/ARCHITECTURE.md, "The phone page"): the page works offline
 * from the first visit on. Served from /sw.js, so its scope covers /me and every /v/<token> poster.
 *
 * - install: the page shell (the code-less page /me, its script modules and style) is cached;
 * - a navigation to /me or to a poster (/v/<token>) goes to the network, and when the network fails
 *   it is answered with the cached shell: the script reads the venue from the address and queues
 *   the scan (no verdict is shown without the server);
 * - the shell's modules and style, whose addresses carry their content's version, come from the cache;
 * - API answers (/v1/...) are never cached and never answered from a cache: nothing this worker
 *   keeps can be taken for the server's word.
 * The server fills in the versions below, so a new page makes a new worker (and a new cache). */
"use strict";

var CACHE = "venue-checkin-shell-__VERSION__";
var SHELL = "/me";
var ASSETS = ["/static/phone.css?v=__CSS_VERSION__"].concat(__MODULES__);

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(CACHE).then(function (cache) {
      return cache.addAll([SHELL].concat(ASSETS));
    }).then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (n) {
        return n.indexOf("venue-checkin-shell-") === 0 && n !== CACHE;
      }).map(function (n) { return caches.delete(n); }));
    }).then(function () { return self.clients.claim(); })
  );
});

function isPage(url) {
  return url.pathname === SHELL || /^\/v\/[^/]+$/.test(url.pathname);
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.indexOf("/v1/") === 0) return;  // the API: always the network, never a cache
  if (request.mode === "navigate" && isPage(url)) {
    event.respondWith(
      fetch(request).catch(function () {
        return caches.open(CACHE).then(function (cache) {
          return cache.match(SHELL);
        }).then(function (shell) {
          return shell || Response.error();
        });
      })
    );
    return;
  }
  if (ASSETS.indexOf(url.pathname + url.search) >= 0) {
    event.respondWith(
      caches.open(CACHE).then(function (cache) {
        return cache.match(request).then(function (hit) {
          return hit || fetch(request);
        });
      })
    );
  }
});
