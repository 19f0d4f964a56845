// Venue operator page: log in with an API key, find venues, see the venue's day (entries per hour
// beside the same weekday last week, occupancy against capacity, capacity alerts; read again every
// minute), switch between a printed code and a screen at the door, set up the door tablet (device key
// and a one-time set-up link), preview and download the poster the venue's state calls for, rotate the
// code, close or reopen the venue. Talks only to this server; the key lives in sessionStorage for this
// tab. The chart is drawn here as SVG elements (no library; the CSP allows only this origin).
(function () {
  "use strict";

  var KEY_STORAGE = "venue-operator-key";
  var DAY_REFRESH_MS = 60000;
  var SVG_NS = "http://www.w3.org/2000/svg";
  var state = { key: "", venue: null, code: null, day: null, after: null, previewUrl: null, dayTimer: 0, tz: "" };

  function $(id) { return document.getElementById(id); }

  function show(id, visible) { $(id).hidden = !visible; }

  function stepS() { return Number(document.body.getAttribute("data-step-s")) || 30; }

  function message(text, isError) {
    var box = $("message");
    box.textContent = text || "";
    box.className = "message" + (isError ? " error" : "");
    box.hidden = !text;
  }

  function api(path, options, bearer) {
    options = options || {};
    var headers = options.headers || {};
    headers["Authorization"] = "Bearer " + (bearer || state.key);
    options.headers = headers;
    return fetch(path, options).then(function (resp) {
      if (resp.ok) { return resp; }
      return resp.json().catch(function () { return {}; }).then(function (body) {
        var err = new Error(body.detail || ("HTTP " + resp.status));
        err.status = resp.status;
        throw err;
      });
    });
  }

  function apiJson(path, options, bearer) {
    return api(path, options, bearer).then(function (resp) {
      return resp.status === 204 ? null : resp.json();
    });
  }

  function sendJson(method, path, body, bearer) {
    return apiJson(path, {
      method: method,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }, bearer);
  }

  function stopDay() {
    if (state.dayTimer) { clearInterval(state.dayTimer); }
    state.dayTimer = 0;
  }

  function logout() {
    sessionStorage.removeItem(KEY_STORAGE);
    stopDay();
    state.key = "";
    state.venue = null;
    show("login-section", true);
    show("venues-section", false);
    show("venue-detail", false);
    show("logout", false);
    $("venue-list").textContent = "";
  }

  function listQuery(after) {
    var params = new URLSearchParams();
    var q = $("search").value.trim();
    var community = $("community").value.trim();
    if (q) { params.set("q", q); }
    if (community) { params.set("community", community); }
    if (after) { params.set("after", String(after)); }
    params.set("limit", "50");
    return "/v1/venues?" + params.toString();
  }

  function renderList(items, append) {
    var list = $("venue-list");
    if (!append) { list.textContent = ""; }
    items.forEach(function (venue) {
      var li = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.dataset.venueId = String(venue.venue_id);
      var id = document.createElement("span");
      id.className = "id";
      id.textContent = String(venue.venue_id);
      button.appendChild(id);
      button.appendChild(document.createTextNode(venue.name + (venue.active ? "" : "（已停用 closed）")));
      button.addEventListener("click", function () { openVenue(venue.venue_id); });
      li.appendChild(button);
      list.appendChild(li);
    });
  }

  function loadList(append) {
    var after = append ? state.after : null;
    return apiJson(listQuery(after)).then(function (page) {
      renderList(page.items, append);
      state.after = page.next_after;
      show("more", page.next_after !== null && page.next_after !== undefined);
      if (!append && page.items.length === 0) { message("没有找到场所 No venues found.", false); }
      if (!append && page.items.length === 1) { openVenue(page.items[0].venue_id); }
      return page;
    });
  }

  function login(key) {
    state.key = key;
    return apiJson("/v1/venues?limit=1").then(function () {
      sessionStorage.setItem(KEY_STORAGE, key);
      message("", false);
      show("login-section", false);
      show("venues-section", true);
      show("logout", true);
      return loadList(false);
    }).catch(function (err) {
      state.key = "";
      sessionStorage.removeItem(KEY_STORAGE);
      message(err.status === 401 ? "API key 无效 The key is not valid." : err.message, true);
    });
  }

  // --- dates and times ----------------------------------------------------------------------

  function dayText(d) { return d.slice(0, 4) + "-" + d.slice(4, 6) + "-" + d.slice(6, 8); }

  function localTime(iso, withDate) {
    var options = { hour: "2-digit", minute: "2-digit", hour12: false };
    if (withDate) { options.year = "numeric"; options.month = "2-digit"; options.day = "2-digit"; }
    if (state.tz) { options.timeZone = state.tz; }
    try { return new Intl.DateTimeFormat("zh-CN", options).format(new Date(iso)); }
    catch (e) { return iso; }
  }

  // --- the venue's day ----------------------------------------------------------------------

  function svg(name, attrs, parent) {
    var el = document.createElementNS(SVG_NS, name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, String(attrs[k])); });
    if (parent) { parent.appendChild(el); }
    return el;
  }

  function niceMax(n) {
    if (n <= 4) { return 4; }
    var steps = [5, 10, 20, 25, 50];
    var mag = 1;
    for (;;) {
      for (var i = 0; i < steps.length; i++) {
        if (steps[i] * mag >= n) { return steps[i] * mag; }
      }
      mag *= 10;
    }
  }

  function drawChart(today, lastWeek, currentHour) {
    var chart = $("day-chart");
    chart.textContent = "";
    var n = today.hours.length;
    var width = Math.max(320, chart.clientWidth || 600);
    var height = 200;
    var left = 34, right = 6, top = 16, bottom = 24;
    chart.setAttribute("viewBox", "0 0 " + width + " " + height);
    chart.setAttribute("width", String(width));
    chart.setAttribute("height", String(height));
    var top_ = 0;
    today.hours.forEach(function (h, i) {
      top_ = Math.max(top_, h.entries, (lastWeek.hours[i] || { entries: 0 }).entries);
    });
    var max = niceMax(top_);
    var plotW = width - left - right, plotH = height - top - bottom;
    var slot = plotW / n;
    var barW = Math.max(2, Math.floor(slot * 0.38));
    [0, max / 2, max].forEach(function (v) {
      var y = top + plotH - (v / max) * plotH;
      svg("line", { x1: left, x2: width - right, y1: y, y2: y, "class": "grid" }, chart);
      var label = svg("text", { x: left - 4, y: y + 4, "text-anchor": "end", "class": "axis" }, chart);
      label.textContent = String(v);
    });
    today.hours.forEach(function (h, i) {
      var past = lastWeek.hours[i] || { hour: h.hour, entries: 0 };
      var x0 = left + i * slot + (slot - 2 * barW - 1) / 2;
      var g = svg("g", {
        "class": "hour" + (h.hour === currentHour ? " now" : ""),
        "data-hour": h.hour, "data-today": h.entries, "data-last-week": past.entries
      }, chart);
      var title = svg("title", {}, g);
      title.textContent = pad(h.hour) + ":00  今日 today " + h.entries + " · 上周 last week " + past.entries;
      var hp = (past.entries / max) * plotH;
      svg("rect", { x: x0, y: top + plotH - hp, width: barW, height: hp, "class": "bar past" }, g);
      var ht = (h.entries / max) * plotH;
      svg("rect", { x: x0 + barW + 1, y: top + plotH - ht, width: barW, height: ht, "class": "bar today" }, g);
      if (h.entries > 0 && slot >= 14) {
        var v = svg("text", { x: x0 + barW * 1.5 + 1, y: top + plotH - ht - 3, "text-anchor": "middle", "class": "value" }, g);
        v.textContent = String(h.entries);
      }
      if (h.hour % 3 === 0) {
        var t = svg("text", { x: left + i * slot + slot / 2, y: height - 8, "text-anchor": "middle", "class": "axis" }, chart);
        t.textContent = pad(h.hour);
      }
    });
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function renderAlerts(alerts) {
    var list = $("alerts");
    list.textContent = "";
    if (!alerts.length) {
      var none = document.createElement("li");
      none.className = "none muted small";
      none.textContent = "今日没有提醒 No alerts today";
      list.appendChild(none);
      return;
    }
    alerts.forEach(function (a) {
      var li = document.createElement("li");
      li.className = "alert";
      li.dataset.kind = a.kind;
      var when = document.createElement("strong");
      when.textContent = localTime(a.at, false);
      li.appendChild(when);
      var text = a.kind === "capacity_exceeded"
        ? " 超过容量 Over capacity: " + a.occupancy + " / " + a.capacity
        : " " + a.kind;
      li.appendChild(document.createTextNode(text));
      list.appendChild(li);
    });
  }

  function renderDay(day) {
    state.day = day;
    state.tz = day.tz;
    $("entries-today").textContent = String(day.today.entries);
    $("entries-day").textContent = dayText(day.today.local_day);
    $("entries-last-week").textContent = String(day.last_week.entries);
    $("last-week-label").textContent = "上周同日 " + dayText(day.last_week.local_day);
    var meter = $("occupancy-meter");
    if (day.occupancy === null || day.occupancy === undefined) {
      $("occupancy").textContent = "-";
      $("capacity").textContent = "未设容量，不计在场人数 No capacity set: not counted";
      meter.hidden = true;
    } else {
      $("occupancy").textContent = String(day.occupancy);
      $("occupancy").className = day.occupancy > day.capacity ? "over" : "";
      $("capacity").textContent = "/ 容量 capacity " + day.capacity;
      var share = day.capacity ? Math.min(1, day.occupancy / day.capacity) : 0;
      $("occupancy-bar").style.width = (share * 100).toFixed(1) + "%";
      meter.className = "meter" + (day.occupancy > day.capacity ? " over" : share >= 0.8 ? " near" : "");
      meter.hidden = false;
    }
    var nowHour = Number(localTime(day.as_of, false).slice(0, 2));
    drawChart(day.today, day.last_week, nowHour);
    renderAlerts(day.alerts);
    $("day-updated").textContent = "更新于 Updated " + localTime(day.as_of, false) + " · 每分钟刷新 refreshed every minute";
  }

  function loadDay(venueId) {
    return apiJson("/v1/venues/" + venueId + "/day").then(function (day) {
      if (state.venue && state.venue.venue_id === venueId) { renderDay(day); }
    });
  }

  // --- the venue ----------------------------------------------------------------------------

  var POSTER_KINDS = {
    checkin: ["场所码海报 Check-in poster", "打印并张贴在入口处。Print it and put it up at the entrance."],
    screen: ["门口屏幕提示 Screen notice",
      "本场所的场所码在门口屏幕上，印刷的场所码已停用；这张提示海报没有场所码，请贴在屏幕旁。" +
      "The code is on the screen at the door and printed codes no longer work: this notice carries no code; put it up beside the screen."],
    closed: ["停用告示 Closed notice",
      "请用这张告示替换所有场所码海报。Replace every check-in poster with this notice."]
  };

  function posterKind(venue) {
    if (!venue.active) { return "closed"; }
    return venue.code_mode === "rotating" ? "screen" : "checkin";
  }

  function renderVenue(venue, code) {
    state.venue = venue;
    state.code = code;
    var screen = venue.code_mode === "rotating";
    var kind = posterKind(venue);
    $("venue-name").textContent = venue.name;
    $("venue-address").textContent = venue.address || "";
    $("venue-id").textContent = String(venue.venue_id);
    $("venue-community").textContent = venue.community;
    var status = $("venue-status");
    status.textContent = venue.active ? "启用 open" : "已停用 closed";
    status.className = venue.active ? "" : "inactive";
    var banner = $("closed-banner");
    if (!venue.active) {
      banner.textContent = "该场所已停用 This venue has closed" +
        (venue.closed_at ? "（" + localTime(venue.closed_at, true) + "）" : "") +
        (venue.closed_reason ? "：" + venue.closed_reason : "");
    }
    banner.hidden = venue.active;
    $("code-version").textContent = String(code.version);
    $("mode-static").checked = !screen;
    $("mode-rotating").checked = screen;
    $("mode-static").disabled = $("mode-rotating").disabled = !venue.active;
    $("mode-rotating-text").textContent = "门口平板每 " + stepS() + " 秒显示一个新码，照片和截图很快失效；印刷的场所码停止使用。" +
      "A tablet at the entrance shows a new code every " + stepS() + " s: photos of it stop working within a minute, and printed codes stop working.";
    $("code-url").textContent = code.url;
    var note = $("code-url-note");
    if (screen) {
      $("code-url-label").textContent = "屏幕当前的码 The screen's code now";
      note.textContent = "这是门口屏幕此刻显示的码，每 " + stepS() + " 秒更换，只在这 " + stepS() +
        " 秒及随后 " + stepS() + " 秒内有效：仅供核对，不要打印或转发。This is the code the screen shows right now. It changes every " +
        stepS() + " s and is accepted only during its " + stepS() + " s and the next " + stepS() + " s: for checking only, never print or share it.";
    } else {
      $("code-url-label").textContent = venue.active ? "登记地址 Check-in URL"
        : "登记地址（已停用，扫码将提示场所已停用）Check-in URL (closed: a scan says so)";
      note.textContent = "";
    }
    note.hidden = !screen;
    show("screen-setup", screen && venue.active);
    $("setup-result").hidden = true;
    $("poster-kind").textContent = POSTER_KINDS[kind][0];
    $("poster-note").textContent = POSTER_KINDS[kind][1];
    show("rotate-box", kind === "checkin");
    show("close-form", venue.active);
    show("close-note", venue.active);
    show("reopen-venue", !venue.active);
    Array.prototype.forEach.call(document.querySelectorAll("#venue-list button"), function (b) {
      b.classList.toggle("selected", b.dataset.venueId === String(venue.venue_id));
    });
    show("venue-detail", true);
  }

  function setPreview(blob) {
    if (state.previewUrl) { URL.revokeObjectURL(state.previewUrl); }
    state.previewUrl = URL.createObjectURL(blob);
    $("poster-preview").src = state.previewUrl;
  }

  function loadPreview(venueId) {
    $("poster-preview").removeAttribute("src");
    return api("/v1/venues/" + venueId + "/poster.png")
      .then(function (resp) { return resp.blob(); })
      .then(setPreview);
  }

  function loadDeviceKeys(venueId) {
    if (!state.venue || state.venue.code_mode !== "rotating" || !state.venue.active) { return Promise.resolve(); }
    return apiJson("/v1/keys?venue_id=" + venueId).then(function (records) {
      var list = $("device-keys");
      list.textContent = "";
      if (!records.length) {
        var none = document.createElement("li");
        none.className = "muted small";
        none.textContent = "还没有设备密钥 No device keys yet";
        list.appendChild(none);
      }
      records.forEach(function (r) {
        var li = document.createElement("li");
        li.dataset.keyId = r.key_id;
        var label = document.createElement("span");
        label.textContent = (r.name || "设备 device") + " · " + r.key_id + " · " + localTime(r.created_at, true);
        li.appendChild(label);
        var revoke = document.createElement("button");
        revoke.type = "button";
        revoke.className = "danger small-button";
        revoke.textContent = "撤销 Revoke";
        revoke.addEventListener("click", function () { revokeKey(r); });
        li.appendChild(revoke);
        list.appendChild(li);
      });
    });
  }

  function openVenue(venueId) {
    message("", false);
    stopDay();
    state.day = null;
    return Promise.all([
      apiJson("/v1/venues/" + venueId),
      apiJson("/v1/venues/" + venueId + "/code")
    ]).then(function (results) {
      renderVenue(results[0], results[1]);
      state.dayTimer = setInterval(function () {
        loadDay(venueId).catch(function (err) { message(err.message, true); });
      }, DAY_REFRESH_MS);
      return Promise.all([loadPreview(venueId), loadDay(venueId), loadDeviceKeys(venueId)]);
    }).catch(function (err) { message(err.message, true); });
  }

  function reopen(text) {
    var id = state.venue.venue_id;
    return openVenue(id).then(function () { if (text) { message(text, false); } });
  }

  // --- actions ------------------------------------------------------------------------------

  function download(fmt, size) {
    if (!state.venue) { return; }
    var id = state.venue.venue_id;
    var query = "?download=true" + (size ? "&size=" + size : "");
    api("/v1/venues/" + id + "/poster." + fmt + query)
      .then(function (resp) { return resp.blob(); })
      .then(function (blob) {
        var a = document.createElement("a");
        a.href = URL.createObjectURL(blob);
        a.download = "venue-" + id + "-" + posterKind(state.venue) + (size ? "-" + size : "") + "." + fmt;
        document.body.appendChild(a);
        a.click();
        setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
      })
      .catch(function (err) { message(err.message, true); });
  }

  function rotate() {
    if (!state.venue) { return; }
    var venue = state.venue;
    if (!window.confirm("更换“" + venue.name + "”的场所码？旧海报将失效。\nRotate the code? Old posters stop working.")) {
      return;
    }
    $("rotate").disabled = true;
    apiJson("/v1/venues/" + venue.venue_id + "/code/rotate", { method: "POST" })
      .then(function (code) {
        $("code-version").textContent = String(code.version);
        $("code-url").textContent = code.url;
        message("场所码已更换，请打印新海报。The code was rotated: print the new poster.", false);
        return loadPreview(venue.venue_id);
      })
      .catch(function (err) { message(err.message, true); })
      .then(function () { $("rotate").disabled = false; });
  }

  function switchMode(mode) {
    var venue = state.venue;
    if (!venue || venue.code_mode === mode) { return; }
    var question = mode === "rotating"
      ? "改为门口屏幕？印刷的场所码海报将停止使用，请设置门口平板。\nSwitch to a screen at the door? Printed posters stop working: set up the tablet."
      : "改为印刷海报？门口屏幕将停止显示场所码，请打印并张贴场所码海报。\nSwitch to a printed poster? The door screen stops showing a code: print and post the poster.";
    if (!window.confirm(question)) {
      $("mode-static").checked = venue.code_mode !== "rotating";
      $("mode-rotating").checked = venue.code_mode === "rotating";
      return;
    }
    sendJson("PATCH", "/v1/venues/" + venue.venue_id, { code_mode: mode })
      .then(function () {
        return reopen(mode === "rotating"
          ? "已改为门口屏幕：请为平板生成设置码。Switched to a screen: set up the tablet."
          : "已改为印刷海报：请打印场所码海报。Switched to a printed poster: print the poster.");
      })
      .catch(function (err) { message(err.message, true); reopen(""); });
  }

  function setupTablet() {
    var venue = state.venue;
    if (!venue) { return; }
    $("setup-tablet").disabled = true;
    sendJson("POST", "/v1/keys", { role: "device", venue_id: venue.venue_id, name: "门口屏幕 door screen" })
      .then(function (created) {
        // The new key authenticates its own set-up link; the page keeps neither.
        return apiJson("/display/" + venue.venue_id + "/setup-codes", { method: "POST" }, created.key);
      })
      .then(function (setup) {
        $("setup-qr").src = setup.qr_svg;
        var link = $("setup-link");
        link.href = setup.url;
        link.textContent = setup.url;
        $("setup-expiry").textContent = "用平板扫描此码，或在平板上打开链接。" + Math.round(setup.expires_in_s / 60) +
          " 分钟内有效，只能使用一次（" + localTime(setup.expires_at, false) + " 前）。Scan it with the tablet or open the link there: works once, until " +
          localTime(setup.expires_at, false) + ".";
        $("setup-result").hidden = false;
        return loadDeviceKeys(venue.venue_id);
      })
      .catch(function (err) { message(err.message, true); })
      .then(function () { $("setup-tablet").disabled = false; });
  }

  function revokeKey(record) {
    if (!window.confirm("撤销设备密钥 " + record.key_id + "？使用它的平板将停止显示场所码。\nRevoke this device key? The tablet using it stops showing the code.")) {
      return;
    }
    apiJson("/v1/keys/" + encodeURIComponent(record.key_id), { method: "DELETE" })
      .then(function () {
        message("设备密钥已撤销。The device key was revoked.", false);
        return loadDeviceKeys(state.venue.venue_id);
      })
      .catch(function (err) { message(err.message, true); });
  }

  function closeVenue() {
    var venue = state.venue;
    var reason = $("close-reason").value.trim();
    if (!venue || !reason) { return; }
    if (!window.confirm("停用“" + venue.name + "”？扫码将提示该场所已停用。\nClose this venue? Scans will say it has closed.")) {
      return;
    }
    sendJson("PATCH", "/v1/venues/" + venue.venue_id, { active: false, reason: reason })
      .then(function () {
        $("close-reason").value = "";
        return reopen("场所已停用：请打印停用告示替换场所码海报。The venue is closed: print the closed notice and replace the posters with it.");
      })
      .catch(function (err) { message(err.message, true); });
  }

  function reopenVenue() {
    var venue = state.venue;
    if (!venue || !window.confirm("重新启用“" + venue.name + "”？\nReopen this venue?")) { return; }
    sendJson("PATCH", "/v1/venues/" + venue.venue_id, { active: true })
      .then(function () { return reopen("场所已重新启用。The venue is open again."); })
      .catch(function (err) { message(err.message, true); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("login-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var key = $("api-key").value.trim();
      if (key) { login(key); }
    });
    $("search-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      message("", false);
      loadList(false).catch(function (err) { message(err.message, true); });
    });
    $("more").addEventListener("click", function () {
      loadList(true).catch(function (err) { message(err.message, true); });
    });
    $("logout").addEventListener("click", logout);
    $("rotate").addEventListener("click", rotate);
    $("download-png").addEventListener("click", function () { download("png"); });
    $("download-svg").addEventListener("click", function () { download("svg"); });
    $("download-pdf").addEventListener("click", function () { download("pdf", "a4"); });
    $("download-pdf-a3").addEventListener("click", function () { download("pdf", "a3"); });
    ["mode-static", "mode-rotating"].forEach(function (id) {
      $(id).addEventListener("change", function (ev) { if (ev.target.checked) { switchMode(ev.target.value); } });
    });
    $("setup-tablet").addEventListener("click", setupTablet);
    $("close-form").addEventListener("submit", function (ev) { ev.preventDefault(); closeVenue(); });
    $("reopen-venue").addEventListener("click", reopenVenue);
    var resizeTimer = 0;
    window.addEventListener("resize", function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () { if (state.day) { renderDay(state.day); } }, 150);
    });
    var saved = sessionStorage.getItem(KEY_STORAGE);
    if (saved) { login(saved); }
  });
})();
