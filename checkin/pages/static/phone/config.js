// The page's settings: storage keys, limits, and what the server wrote into #app's data- attributes
// (a poster opened without network reads its venue from the address).

export const RESIDENT_KEY = "venue-checkin.resident";
export const STAYS_KEY = "venue-checkin.stays";
export const QUEUE_KEY = "venue-checkin.queue";
export const COMPANIONS_KEY = "venue-checkin.companions";
export const LANG_KEY = "venue-checkin.lang";
export const LANG_SENT_KEY = "venue-checkin.lang-sent";
export const ELDER_KEY = "venue-checkin.elder";
export const OTP_KEY = "venue-checkin.otp";
export const LAST_KEY = "venue-checkin.last-colour";
export const VENUES_KEY = "venue-checkin.venues";
export const MAX_VENUES = 50;
export const CONFIRM_MS = 5000;
export const REQUEST_TIMEOUT_MS = 15000;
export const LOCATION_WAIT_MS = 600;
export const MAX_STAY_MS = 12 * 3600 * 1000;
export const MAX_QUEUE = 200;
export const BATCH_SIZE = 50;
export const NOTICE_POLL_MS = 30000;
export const RESULT_REFRESH_MS = 30000;

export const app = document.getElementById("app");
const data = (name) => (app && app.getAttribute(name)) || "";
export const cfg = {
  page: data("data-page") || "poster",
  code: data("data-code"),
  codeProof: data("data-code-proof"),
  venueId: data("data-venue-id"),
  venueName: data("data-venue-name"),
  tz: data("data-tz") || "Asia/Shanghai",
  testHours: parseInt(data("data-test-hours"), 10) || 0,
  dwellMinutes: parseInt(data("data-dwell-minutes"), 10) || 0,
  offlinePoster: false,
};
/** The instant the server saw a screen code current (its seen proof "key.ms.mac"), or null. */
cfg.seenAt = (function () {
  const m = /^\d+\.(\d+)\./.exec(cfg.codeProof);
  return m ? new Date(parseInt(m[1], 10)) : null;
})();
/** Venue id of a poster's token: base64url, the first 4 bytes big-endian (docs: "Venue codes"). */
function venueIdOf(token) {
  try {
    const b64 = token.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    if (raw.length < 4) return "";
    return String(((raw.charCodeAt(0) << 24) >>> 0) + (raw.charCodeAt(1) << 16) + (raw.charCodeAt(2) << 8) +
      raw.charCodeAt(3));
  } catch (e) {
    return "";
  }
}
// the service worker answered a poster's address with the cached shell: the network is down
if (cfg.page === "home" && /^\/v\/[^/]+$/.test(location.pathname)) {
  cfg.offlinePoster = true;
  cfg.code = decodeURIComponent(location.pathname.slice(3));
  cfg.venueId = venueIdOf(cfg.code);
}
export const home = cfg.page === "home" && !cfg.offlinePoster;
