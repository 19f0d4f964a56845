/* Door screen of a venue with a rotating code: fetch the current code, show it, fetch the next one
   when the step ends. A code that is no longer accepted is never left on the screen. */
(function () {
  "use strict";
  var root = document.getElementById("display");
  var venueId = root.getAttribute("data-venue-id");
  var img = document.getElementById("qr");
  var statusBox = document.getElementById("status");
  var bar = document.getElementById("bar");
  var countdown = document.getElementById("countdown");
  var stepMs = Number(root.getAttribute("data-step-s")) * 1000;
  var expiresAt = 0; // local clock: when the shown code stops being current
  var timer = 0;

  var REFUSED = {
    401: "设备密钥无效或已被撤销，请联系场所管理员。",
    403: "该设备密钥不属于本场所。",
    404: "场所不存在。",
    409: "本场所未启用屏幕动态码。",
    410: "本场所已停用。",
  };

  function say(text, fatal) {
    statusBox.textContent = text;
    statusBox.className = fatal ? "fatal" : "";
    statusBox.hidden = false;
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(refresh, Math.max(200, ms));
  }

  function refresh() {
    fetch("/display/" + venueId + "/code", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.ok) return r.json();
        return r.json().catch(function () { return {}; }).then(function (p) {
          var err = new Error(p.detail || "HTTP " + r.status);
          err.status = r.status;
          throw err;
        });
      })
      .then(function (c) {
        img.src = c.qr_svg;
        img.setAttribute("data-url", c.url);
        img.hidden = false;
        stepMs = c.step_s * 1000;
        expiresAt = Date.now() + c.expires_in_ms;
        statusBox.hidden = true;
        schedule(c.expires_in_ms + 100);
      })
      .catch(function (err) {
        if (REFUSED[err.status]) {
          img.hidden = true;
          say(REFUSED[err.status], true);
          schedule(30000);
          return;
        }
        // The code before the current one is still accepted for one step; after that, hide it.
        if (Date.now() > expiresAt + stepMs) img.hidden = true;
        say("网络连接中断，正在重试…", false);
        schedule(2000);
      });
  }

  function tick() {
    var left = Math.max(0, expiresAt - Date.now());
    bar.style.width = (stepMs ? (100 * left) / stepMs : 0) + "%";
    if (!img.hidden) countdown.textContent = Math.ceil(left / 1000) + " 秒后更新 · 截图无效";
  }

  function keepAwake() {
    if (navigator.wakeLock && navigator.wakeLock.request) {
      navigator.wakeLock.request("screen").catch(function () { /* not granted: the tablet's own settings apply */ });
    }
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { keepAwake(); refresh(); }
  });
  setInterval(tick, 250);
  keepAwake();
  refresh();
})();
