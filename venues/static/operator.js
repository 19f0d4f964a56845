// Venue operator page: log in with an API key, find venues, preview and
// download posters, rotate the code, see today's entries. Talks only to the
// JSON API of this server; the key lives in sessionStorage for this tab.
(function () {
  "use strict";

  var KEY_STORAGE = "venue-operator-key";
  var state = { key: "", venue: null, after: null, previewUrl: null };

  function $(id) { return document.getElementById(id); }

  function show(id, visible) { $(id).hidden = !visible; }

  function message(text, isError) {
    var box = $("message");
    box.textContent = text || "";
    box.className = "message" + (isError ? " error" : "");
    box.hidden = !text;
  }

  function api(path, options) {
    options = options || {};
    var headers = options.headers || {};
    headers["Authorization"] = "Bearer " + state.key;
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

  function apiJson(path, options) {
    return api(path, options).then(function (resp) { return resp.json(); });
  }

  function logout() {
    sessionStorage.removeItem(KEY_STORAGE);
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
      button.appendChild(document.createTextNode(venue.name + (venue.active ? "" : "（已停用 inactive）")));
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

  function setPreview(blob) {
    if (state.previewUrl) { URL.revokeObjectURL(state.previewUrl); }
    state.previewUrl = URL.createObjectURL(blob);
    $("poster-preview").src = state.previewUrl;
  }

  function renderVenue(venue, code) {
    state.venue = venue;
    $("venue-name").textContent = venue.name;
    $("venue-address").textContent = venue.address || "";
    $("venue-id").textContent = String(venue.venue_id);
    $("venue-community").textContent = venue.community;
    var status = $("venue-status");
    status.textContent = venue.active ? "启用 active" : "已停用 inactive";
    status.className = venue.active ? "" : "inactive";
    $("code-version").textContent = String(code.version);
    $("code-url").textContent = code.url;
    Array.prototype.forEach.call(document.querySelectorAll("#venue-list button"), function (b) {
      b.classList.toggle("selected", b.dataset.venueId === String(venue.venue_id));
    });
    show("venue-detail", true);
  }

  function loadPreview(venueId) {
    $("poster-preview").removeAttribute("src");
    return api("/v1/venues/" + venueId + "/poster.png")
      .then(function (resp) { return resp.blob(); })
      .then(setPreview);
  }

  function loadEntries(venueId) {
    return apiJson("/v1/venues/" + venueId + "/entries").then(function (e) {
      $("entries-today").textContent = String(e.entries);
      var d = e.local_day;
      $("entries-day").textContent = d.slice(0, 4) + "-" + d.slice(4, 6) + "-" + d.slice(6, 8);
    });
  }

  function openVenue(venueId) {
    message("", false);
    return Promise.all([
      apiJson("/v1/venues/" + venueId),
      apiJson("/v1/venues/" + venueId + "/code")
    ]).then(function (results) {
      renderVenue(results[0], results[1]);
      return Promise.all([loadPreview(venueId), loadEntries(venueId)]);
    }).catch(function (err) { message(err.message, true); });
  }

  function download(fmt) {
    if (!state.venue) { return; }
    var id = state.venue.venue_id;
    api("/v1/venues/" + id + "/poster." + fmt + "?download=true")
      .then(function (resp) { return resp.blob(); })
      .then(function (blob) {
        var a = document.createElement("a");
        a.href = URL.createObjectURL(blob);
        a.download = "venue-" + id + "." + fmt;
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
    ["png", "svg", "pdf"].forEach(function (fmt) {
      $("download-" + fmt).addEventListener("click", function () { download(fmt); });
    });
    var saved = sessionStorage.getItem(KEY_STORAGE);
    if (saved) { login(saved); }
  });
})();
