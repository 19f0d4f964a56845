// The door pass: a single-use code the door reads, refreshed while it shows.
import { state } from "./state.js";
import { ApiError, api, describe } from "./api.js";
import { QUEUE_KEY, home } from "./config.js";
import { $, clearMessage, showMessage } from "./dom.js";
import { formatInstant, t } from "./i18n.js";
import { forgetResident, storeDel } from "./storage.js";
import { show, showRegister } from "./views.js";

// ---- the door pass --------------------------------------------------------------------------------
let passTimer = null;
// a pass is single-use: the page asks every few seconds with the pass it shows (current), and the
// server answers that pass until a door reads it, then a fresh one; near its end the page asks for
// a fresh one itself
const PASS_POLL_MS = 3000;
const PASS_REFRESH_BEFORE_MS = 20000;
let passShown = null;
export function stopPass() {
  if (passTimer !== null) clearTimeout(passTimer);
  passTimer = null;
}
/** Where the pass shows: its own view, or the home's first screen (the health code). */
function passWanted() {
  return state.view === "view-pass" || (home && state.view === "view-ready");
}
function passEls() {
  return state.view === "view-pass" ? { img: $("pass-qr"), expiry: $("pass-expiry") }
    : { img: $("home-pass-qr"), expiry: $("home-pass-expiry") };
}
export function loadPass() {
  stopPass();
  if (!state.resident) return showRegister();
  if (!passWanted()) return;
  const owner = state.resident.person_id;
  const keep = passShown && passShown.owner === owner &&
    new Date(passShown.expires_at).getTime() - Date.now() > PASS_REFRESH_BEFORE_MS;
  const query = keep ? "?current=" + encodeURIComponent(passShown.pass) : "";
  api("GET", "/v1/residents/me/pass" + query, undefined, state.resident.token)
    .then(function (data) {
      if (!passWanted()) return;
      const els = passEls();
      if (els.img.getAttribute("data-pass") !== data["pass"]) {
        els.img.src = data.qr_svg;
        els.img.setAttribute("data-pass", data["pass"]);
      }
      passShown = { owner: owner, pass: data["pass"], expires_at: data.expires_at };
      els.expiry.textContent = t("pass.until", { at: formatInstant(data.expires_at) });
      stopPass();
      passTimer = setTimeout(function () {
        if (passWanted()) loadPass();
      }, PASS_POLL_MS);
    })
    .catch(function (err) {
      if (err instanceof ApiError && err.status === 401) {
        forgetResident();
        showRegister(describe(err, "pass"));
        return;
      }
      passEls().expiry.textContent = describe(err, "pass");
      stopPass();
      passTimer = setTimeout(function () {
        if (passWanted()) loadPass();
      }, 10000);
    });
}
export function showPass() {
  show("view-pass");
  clearMessage();
  loadPass();
}
export function onRevoke() {
  if (!state.resident) return showRegister();
  if (!window.confirm(t("revoke.confirm"))) return;
  api("POST", "/v1/residents/me/revoke", {}, state.resident.token)
    .catch(function (err) {
      if (err instanceof ApiError && err.status === 401) return null;  // already revoked
      throw err;
    })
    .then(function () {
      forgetResident();
      storeDel(QUEUE_KEY);
      showRegister();
      showMessage(t("revoke.done"), "info");
    })
    .catch(function (err) { showMessage(describe(err, "revoke"), "error"); });
}
