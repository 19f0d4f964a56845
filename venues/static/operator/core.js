// What the operator page's modules share: its state, DOM helpers, messages and the JSON API (the key
// lives in sessionStorage for this tab).

export const KEY_STORAGE = "venue-operator-key";
export const DAY_REFRESH_MS = 60000;
export const SVG_NS = "http://www.w3.org/2000/svg";
export const state = { key: "", venue: null, code: null, day: null, after: null, previewUrl: null, dayTimer: 0, tz: "" };

export function $(id) { return document.getElementById(id); }

export function show(id, visible) { $(id).hidden = !visible; }

export function stepS() { return Number(document.body.getAttribute("data-step-s")) || 30; }

export function message(text, isError) {
  const box = $("message");
  box.textContent = text || "";
  box.className = "message" + (isError ? " error" : "");
  box.hidden = !text;
}

export function api(path, options, bearer) {
  options = options || {};
  const headers = options.headers || {};
  headers["Authorization"] = "Bearer " + (bearer || state.key);
  options.headers = headers;
  return fetch(path, options).then(function (resp) {
    if (resp.ok) { return resp; }
    return resp.json().catch(function () { return {}; }).then(function (body) {
      const err = new Error(body.detail || ("HTTP " + resp.status));
      err.status = resp.status;
      throw err;
    });
  });
}

export function apiJson(path, options, bearer) {
  return api(path, options, bearer).then(function (resp) {
    return resp.status === 204 ? null : resp.json();
  });
}

export function sendJson(method, path, body, bearer) {
  return apiJson(path, {
    method: method,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body)
  }, bearer);
}

export function stopDay() {
  if (state.dayTimer) { clearInterval(state.dayTimer); }
  state.dayTimer = 0;
}

export function logout() {
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
