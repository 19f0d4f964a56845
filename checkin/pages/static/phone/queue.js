// The offline queue ("待上传"): scans kept on the phone, sent when the network is back.
import { state } from "./state.js";
import { ApiError, api, describe, describeReason, isNetworkError } from "./api.js";
import { BATCH_SIZE, MAX_QUEUE, QUEUE_KEY } from "./config.js";
import { $, item, showMessage } from "./dom.js";
import { asDate, fmt, t } from "./i18n.js";
import { resume } from "./result.js";
import { loadStays, refreshStays, saveStays } from "./stays.js";
import { forgetResident, storeDel, storeGet, storeSet } from "./storage.js";
import { renderReady, showReady, showRegister } from "./views.js";

// ---- the offline queue ("待上传") ------------------------------------------------------------------
function loadQueue() {
  const q = storeGet(QUEUE_KEY);
  return Array.isArray(q) ? q.filter(function (x) { return x && x.client_id && x.code; }) : [];
}
function saveQueue(q) {
  if (q.length) storeSet(QUEUE_KEY, q, 7 * 86400); else storeDel(QUEUE_KEY);
}
export function enqueue(entry) {
  const q = loadQueue();
  if (q.length >= MAX_QUEUE) return false;
  q.push(entry);
  saveQueue(q);
  return true;
}
export function myQueue() {
  if (!state.resident) return [];
  return loadQueue().filter(function (x) { return String(x.owner) === String(state.resident.person_id); });
}
export function renderQueue() {
  const q = myQueue();
  const ul = $("queue-list");
  while (ul.firstChild) ul.removeChild(ul.firstChild);
  q.forEach(function (x) {
    const li = document.createElement("li");
    li.setAttribute("data-client-id", x.client_id);
    const name = item("div", "queue-venue", x.venue_name || "");
    name.appendChild(item("span", "queue-state", t("queue.state")));
    li.appendChild(name);
    li.appendChild(item("div", "queue-time", t("queue.item", { at: fmt("short", x.scanned_at) })));
    ul.appendChild(li);
  });
  $("queue").hidden = q.length === 0;
  $("queue-send").disabled = flushing;
}

let flushing = false;
/** Send the queue through the batch route; an item that did arrive before answers as a repeat. */
export function flushQueue() {
  if (flushing || !state.resident || navigator.onLine === false) return Promise.resolve();
  const mine = myQueue().slice(0, BATCH_SIZE);
  if (!mine.length) return Promise.resolve();
  flushing = true;
  const owner = state.resident;
  const items = mine.map(function (x) {
    const it = { code: x.code, client_id: x.client_id, scanned_at: x.scanned_at };
    if (x.companions && x.companions.length) it.companions = x.companions;
    if (x.code_proof) it.code_proof = x.code_proof;
    return it;
  });
  if (state.view === "view-ready") renderQueue();
  return api("POST", "/v1/checkins/batch", { items: items }, owner.token)
    .then(function (out) {
      const results = (out && out.results) || [];
      const done = {};
      let sent = 0;
      const refused = [];
      let shown = null;  // the scan the grey screen is about, now recorded: its verdict is asked for
      let shownRefused = "";
      results.forEach(function (r) {
        const x = mine[r.index];
        if (!x) return;
        const onScreen = state.view === "view-offline" && state.offlineEntry && state.offlineEntry.client_id === x.client_id;
        if (r.status === 200 || r.status === 201) {
          done[x.client_id] = true;
          sent += 1;
          if (onScreen && r.checkin_id) {
            shown = { checkin_id: r.checkin_id, venue_name: x.venue_name, at: r.at || x.scanned_at };
          }
          if (r.checkin_id && state.resident && state.resident.person_id === owner.person_id) {
            const at = asDate(r.at || x.scanned_at) || new Date();
            const list = loadStays().filter(function (s) { return s.checkin_id !== r.checkin_id; });
            list.unshift({
              checkin_id: r.checkin_id, owner: String(owner.person_id), venue_id: String(x.venue_id),
              venue_name: x.venue_name, at: at.toISOString(),
              ends_at: new Date(at.getTime() + (x.dwell_minutes || 60) * 60000).toISOString(),
            });
            saveStays(list);
          }
        } else if (r.status !== 429 && r.status !== 503 && r.status < 500) {
          done[x.client_id] = true;  // refused for good (an old code, a closed venue...)
          refused.push(describeReason(r.status, r.error_reason, r.error, null, "checkin", null));
          if (onScreen) shownRefused = refused[refused.length - 1];
        }
      });
      saveQueue(loadQueue().filter(function (x) { return !done[x.client_id]; }));
      flushing = false;
      if (shown) {
        resume(shown);  // the server judges it now: the grey screen gives way to a real verdict
        return refreshStays();
      }
      if (shownRefused) {
        state.offlineEntry = null;
        showReady();
        showMessage(shownRefused, "error");
        return refreshStays();
      }
      if (refused.length) {
        showMessage(t("queue.refused", { n: refused.length, why: refused[0] }), "error");
      } else if (sent) {
        showMessage(t("queue.sent", { n: sent }), "info");
      }
      if (state.view === "view-ready") renderReady();
      return refreshStays();
    })
    .catch(function (err) {
      flushing = false;
      if (err instanceof ApiError && err.status === 401) {
        forgetResident();
        showRegister(describe(err, "checkin"));
        return;
      }
      if (state.view === "view-ready") renderQueue();
      if (!isNetworkError(err)) showMessage(describe(err, "checkin"), "error");
    });
}
