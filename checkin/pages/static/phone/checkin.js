// Check-in: location (optional, never waited on for long), the scan, and the grey screen of a scan
// kept on the phone that no one has verified.
import { state } from "./state.js";
import { ApiError, apiRetrying, describe, isNetworkError, sleep } from "./api.js";
import { selectedCompanions } from "./companions.js";
import { LOCATION_WAIT_MS, cfg } from "./config.js";
import { $, clearMessage, showMessage } from "./dom.js";
import { lastColour, loadHome } from "./home.js";
import { asDate, formatInstant, t } from "./i18n.js";
import { loadNotices } from "./notices.js";
import { enqueue, myQueue } from "./queue.js";
import { showResult, statusText } from "./result.js";
import { rememberStay } from "./stays.js";
import { forgetResident } from "./storage.js";
import { renderReady, show, showReady, showRegister } from "./views.js";

// ---- location (optional, never waited on for long) --------------------------------------------------
const geo = { pos: null, pending: null };
export function startLocating() {
  if (geo.pending || !navigator.geolocation) return;
  geo.pending = new Promise(function (resolve) {
    try {
      navigator.geolocation.getCurrentPosition(
        function (p) {
          geo.pos = {
            lat: Math.round(p.coords.latitude * 1e6) / 1e6,
            lon: Math.round(p.coords.longitude * 1e6) / 1e6,
            accuracy_m: Math.max(0, Math.round(p.coords.accuracy || 0)),
          };
          resolve(geo.pos);
        },
        function () { resolve(null); },
        { enableHighAccuracy: false, timeout: 8000, maximumAge: 120000 }
      );
    } catch (e) {
      resolve(null);
    }
  });
}
function locationSoon() {
  if (geo.pos) return Promise.resolve(geo.pos);
  if (!geo.pending) return Promise.resolve(null);
  return Promise.race([geo.pending, sleep(LOCATION_WAIT_MS).then(function () { return null; })]);
}

// ---- check-in ---------------------------------------------------------------------------------------
function randomId() {
  const bytes = new Uint8Array(16);
  (window.crypto || window.msCrypto).getRandomValues(bytes);
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] + 256).toString(16).slice(1);
  return out;
}

export function onCheckin() {
  if (state.busy) return;
  if (!state.resident) return showRegister();
  state.busy = true;
  clearMessage();
  const btn = $("checkin-button");
  btn.disabled = true;
  btn.textContent = t("checkin.busy");
  // taken at the tap: an offline scan is uploaded later with these two
  const body = { code: cfg.code, client_id: randomId() };
  // a screen's code: the instant the server saw it current, and its proof (taken for 5 minutes)
  if (cfg.codeProof) body.code_proof = cfg.codeProof;
  const scannedAt = (cfg.seenAt || new Date()).toISOString();
  const companions = selectedCompanions().map(Number);
  if (companions.length) body.companions = companions;
  const owner = state.resident;
  const attempt = navigator.onLine === false
    ? Promise.reject(new ApiError(0, null, null))
    : locationSoon().then(function (loc) {
      if (loc) body.location = loc;
      return apiRetrying("POST", "/v1/checkins", body, owner.token, 3);
    });
  attempt
    .then(function (data) {
      state.busy = false;
      rememberStay(data);
      showResult(data);
      loadNotices();
      loadHome();
    })
    .catch(function (err) {
      state.busy = false;
      if (isNetworkError(err)) {
        // it may have arrived: the same client_id makes the upload a repeat, not a second stay
        const entry = queueEntry(owner, body.client_id, scannedAt, companions);
        if (!enqueue(entry)) {
          renderReady();
          showMessage(t("queue.full"), "error");
          return;
        }
        showOffline(entry);
        return;
      }
      if (err instanceof ApiError && err.status === 401) {
        forgetResident();
        showRegister(describe(err, "checkin"));
        return;
      }
      showMessage(describe(err, "checkin"), "error");
      renderReady();
    });
}

function queueEntry(owner, clientId, scannedAt, companions) {
  const entry = {
    client_id: clientId, scanned_at: scannedAt, code: cfg.code, companions: companions,
    venue_id: cfg.venueId, venue_name: cfg.venueName, dwell_minutes: cfg.dwellMinutes,
    owner: String(owner.person_id),
  };
  if (cfg.codeProof) entry.code_proof = cfg.codeProof;
  return entry;
}

// ---- the grey screen: a scan kept on the phone, not verified by anyone -----------------------------------
function showOffline(entry) {
  state.offlineEntry = entry;
  clearMessage();
  show("view-offline");
  renderOffline();
  window.scrollTo(0, 0);
}
/** What the screen says: the scan is saved, not verified; the last colour the server gave and when
 * (words, not a coloured panel); no clock, no moving band, no verdict. */
export function renderOffline() {
  const e = state.offlineEntry || {};
  $("o-venue").textContent = e.venue_name || (e.venue_id ? t("offline.venue", { id: e.venue_id }) : "");
  $("o-venue").hidden = !$("o-venue").textContent;
  $("o-title").textContent = t("offline.title");
  $("o-sub").textContent = t("offline.other");
  $("o-sub").setAttribute("lang", state.lang === "en" ? "zh-CN" : "en");
  $("o-saved").textContent = t("offline.saved");
  const last = lastColour();
  $("o-last").textContent = last
    ? t("offline.last", { colour: statusText(last.status), at: formatInstant(last.at) })
    : t("offline.last_none");
  $("o-time").textContent = formatInstant(e.scanned_at);
  $("o-state").textContent = t("offline.waiting");
}
/** A poster opened with no network (the service worker's shell): the scan is queued at once. */
export function queueOfflinePoster() {
  const now = Date.now();
  const owner = state.resident;
  // the same poster opened again within a minute is the same scan (the server's repeat rule too)
  const again = myQueue().filter(function (x) {
    const at = asDate(x.scanned_at);
    return x.code === cfg.code && at && now - at.getTime() < 60000;
  })[0];
  const entry = again || queueEntry(owner, randomId(), new Date(now).toISOString(), []);
  if (!again && !enqueue(entry)) {
    showReady();
    showMessage(t("queue.full"), "error");
    return;
  }
  showOffline(entry);
}
