// Open stays: this phone's check-ins not yet checked out, at any venue.
import { state } from "./state.js";
import { ApiError, api, apiRetrying, describe } from "./api.js";
import { MAX_STAY_MS, STAYS_KEY, cfg } from "./config.js";
import { $, clearMessage, confirmTap, item, showMessage } from "./dom.js";
import { asDate, duration, fmt, t } from "./i18n.js";
import { elderOn } from "./prefs.js";
import { renderResult, resume } from "./result.js";
import { forgetResident, storeGet, storeSet } from "./storage.js";
import { showRegister } from "./views.js";

// ---- open stays (this phone's check-ins not yet checked out, any venue) ---------------------------
export function loadStays() {
  const list = storeGet(STAYS_KEY);
  if (!Array.isArray(list) || !state.resident) return [];
  const now = Date.now();
  return list.filter(function (s) {
    const at = asDate(s.at);
    return s && s.checkin_id && String(s.owner) === String(state.resident.person_id) && at && now - at.getTime() < MAX_STAY_MS;
  });
}
/** The newest stay only, whatever order the answers came in: a person is in one place at a time,
 * so a later check-in has ended every earlier stay (docs/ARCHITECTURE.md, "Stays and contacts"). */
export function saveStays(list) {
  state.staysEpoch += 1;
  const ms = function (s) { const d = asDate(s.at); return d ? d.getTime() : 0; };
  list.sort(function (a, b) { return ms(b) - ms(a); });
  storeSet(STAYS_KEY, list.slice(0, 1), 43200);
}
function endedByNextStay(data) {
  const owner = data.people && data.people[0];
  return !!(owner && owner.ended_by === "next_stay");
}
export function rememberStay(data) {
  if (!data || !data.checkin_id || !state.resident) return;
  const list = loadStays().filter(function (s) { return s.checkin_id !== data.checkin_id; });
  if (!data.checked_out_at && !endedByNextStay(data)) {
    list.unshift({
      checkin_id: data.checkin_id,
      owner: String(state.resident.person_id),
      venue_id: String((data.venue && data.venue.venue_id) || cfg.venueId),
      venue_name: (data.venue && data.venue.name) || cfg.venueName,
      at: data.at,
      ends_at: data.ends_at,
    });
  }
  saveStays(list);
}
export function dropStay(checkinId) {
  saveStays(loadStays().filter(function (s) { return s.checkin_id !== checkinId; }));
}

let staysTimer = null;
export function renderStays() {
  const stays = loadStays();
  const ul = $("stay-list");
  while (ul.firstChild) ul.removeChild(ul.firstChild);
  stays.forEach(function (s) {
    const li = document.createElement("li");
    li.setAttribute("data-checkin-id", s.checkin_id);
    li.appendChild(item("div", "stay-venue", s.venue_name));
    li.appendChild(item("div", "stay-times", t("stay.since", { at: fmt("short", s.at) })));
    li.appendChild(item("div", "stay-times", asDate(s.ends_at) && asDate(s.ends_at).getTime() < Date.now()
      ? t("stay.over") : t("stay.end", { at: fmt("short", s.ends_at) })));
    const elapsed = item("div", "stay-elapsed", "");
    elapsed.setAttribute("data-since", s.at);
    li.appendChild(elapsed);
    const buttons = item("div", "stay-buttons");
    const viewBtn = item("button", "btn secondary stay-view", t(elderOn() ? "stay.view_short" : "stay.view"));
    viewBtn.type = "button";
    viewBtn.addEventListener("click", function () { resume(s); });
    const outBtn = item("button", "btn primary stay-checkout", t("checkout"));
    outBtn.type = "button";
    outBtn.addEventListener("click", function () {
      confirmTap(outBtn, t("checkout.confirm"), function () { checkOut(s.checkin_id, outBtn); });
    });
    buttons.appendChild(viewBtn);
    buttons.appendChild(outBtn);
    li.appendChild(buttons);
    ul.appendChild(li);
  });
  $("stays").hidden = stays.length === 0;
  tickStays();
  if (staysTimer === null && stays.length) staysTimer = setInterval(tickStays, 15000);
}
function tickStays() {
  const els = document.querySelectorAll("#stay-list .stay-elapsed");
  for (let i = 0; i < els.length; i++) {
    const since = asDate(els[i].getAttribute("data-since"));
    els[i].textContent = since ? t("stay.elapsed", { d: duration(Date.now() - since.getTime()) }) : "";
  }
}
/** Ask the server about each remembered stay: gone or checked out elsewhere drops it. */
export function refreshStays() {
  if (!state.resident) return Promise.resolve();
  const owner = state.resident;
  return Promise.all(loadStays().map(function (s) {
    return api("GET", "/v1/checkins/" + encodeURIComponent(s.checkin_id), undefined, owner.token)
      .then(function (data) {
        if (data.checked_out_at) dropStay(s.checkin_id); else rememberStay(data);
      })
      .catch(function (err) {
        if (err instanceof ApiError && err.status === 404) dropStay(s.checkin_id);
      });
  })).then(function () {
    if (state.view === "view-ready") renderStays();
  });
}

export function checkOut(checkinId, button) {
  if (!state.resident) return showRegister();
  clearMessage();
  if (button) {
    button.disabled = true;
    button.textContent = t("submitting");
  }
  const path = "/v1/checkins/" + encodeURIComponent(String(checkinId)) + "/checkout";
  return apiRetrying("POST", path, {}, state.resident.token, 3)
    .then(function (data) {
      const at = (data && data.ended_at) || new Date().toISOString();
      checkedOut(checkinId, at);
    })
    .catch(function (err) {
      if (err instanceof ApiError && (err.status === 409 || err.status === 410)) {
        checkedOut(checkinId, new Date().toISOString());
        if (err.status === 410) showMessage(describe(err, "checkout"), "info");
        return;
      }
      if (err instanceof ApiError && err.status === 401) {
        forgetResident();
        showRegister(describe(err, "checkout"));
        return;
      }
      showMessage(describe(err, "checkout"), "error");
      if (button) {
        button.disabled = false;
        button.textContent = t("checkout");
      }
    });
}
function checkedOut(checkinId, at) {
  dropStay(checkinId);
  if (state.current && state.current.checkin_id === checkinId) state.current.checked_out_at = at;
  if (state.staleStay && state.staleStay.checkin_id === checkinId) state.staleStay.checked_out_at = at;
  if (state.view === "view-result") renderResult();
  if (state.view === "view-ready") renderStays();
  showMessage(t("checkout.ok"), "info");
}
