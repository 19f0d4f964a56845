/* Phone check-in page, the module that starts it: register once, check in with one tap, the door
 * screen, exposure notices, open stays, an offline queue, own visits; zh-CN or English, and a 长辈模式
 * (large text).
 * Without a venue code (/me) it is the resident's home: their health code, the refreshing door pass,
 * their family's colours and guardian links to confirm. A service worker (/sw.js) keeps the page
 * shell, so a poster opened without network queues the scan and shows the grey 未联网核验 screen.
 * Everything shown is set with textContent (never innerHTML): names and messages are data. */
import { state } from "./state.js";
import { onCheckin, queueOfflinePoster } from "./checkin.js";
import { onAddCompanion, onSendCompanionCode, toggleCompanionForm } from "./companions.js";
import { ELDER_KEY, LANG_KEY, NOTICE_POLL_MS, QUEUE_KEY, app, cfg } from "./config.js";
import { $, confirmTap } from "./dom.js";
import { loadHome, rememberVenue, rememberedVenue } from "./home.js";
import { resetFormatters, t } from "./i18n.js";
import { loadNotices } from "./notices.js";
import { onRevoke, showPass } from "./pass.js";
import { applyStatic, elderOn, sendLang, setElder, setLang } from "./prefs.js";
import { flushQueue } from "./queue.js";
import { onRegister, onSendRegisterCode, restoreChallenges } from "./register.js";
import { onResultCheckout, resume } from "./result.js";
import { refreshStays } from "./stays.js";
import { forgetResident, loadResident, readCookie, storeDel, storeGet, writeCookie } from "./storage.js";
import { showReady, showRegister } from "./views.js";
import { showVisits } from "./visits.js";

// ---- start --------------------------------------------------------------------------------------------
function start() {
  const storedLang = storeGet(LANG_KEY);
  state.lang = storedLang === "en" || storedLang === "zh-CN" ? storedLang : app.getAttribute("data-lang") === "en" ? "en" : "zh-CN";
  if (storedLang && readCookie(LANG_KEY) !== storedLang) writeCookie(LANG_KEY, storedLang, 365 * 86400);
  document.documentElement.classList.toggle("elder", storeGet(ELDER_KEY) === true);
  resetFormatters();
  applyStatic();

  $("lang-toggle").addEventListener("click", function () { setLang(state.lang === "en" ? "zh-CN" : "en"); });
  $("elder-toggle").addEventListener("click", function () { setElder(!elderOn()); });
  $("register-form").addEventListener("submit", onRegister);
  $("otp-send").addEventListener("click", onSendRegisterCode);
  $("cmp-otp-send").addEventListener("click", onSendCompanionCode);
  $("pass-button").addEventListener("click", showPass);
  $("pass-back").addEventListener("click", function () { showReady(); });
  $("visits-button").addEventListener("click", showVisits);
  $("visits-back").addEventListener("click", function () { showReady(); });
  $("revoke-button").addEventListener("click", onRevoke);
  $("checkin-button").addEventListener("click", onCheckin);
  $("checkout-button").addEventListener("click", function () {
    confirmTap($("checkout-button"), t("checkout.confirm"), onResultCheckout);
  });
  $("result-back").addEventListener("click", function () { showReady(); });
  $("r-retry").addEventListener("click", function () { if (state.staleStay) resume(state.staleStay); });
  $("queue-send").addEventListener("click", function () { flushQueue(); });
  $("companion-form").addEventListener("submit", onAddCompanion);
  $("companion-toggle").addEventListener("click", function () {
    toggleCompanionForm($("companion-form").hidden);
  });
  $("switch-person").addEventListener("click", function () {
    forgetResident();
    storeDel(QUEUE_KEY);
    state.notices = [];
    showRegister();
  });
  $("offline-back").addEventListener("click", function () { showReady(); });
  window.addEventListener("online", function () {
    flushQueue();
    loadNotices();
    if (state.view === "view-ready") loadHome();
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "visible") return;
    loadNotices();
    if (state.view === "view-ready") loadHome();
  });
  setInterval(function () {
    if (document.visibilityState === "hidden") return;
    loadNotices();
    if (state.view === "view-ready") loadHome();
  }, NOTICE_POLL_MS);
  if ("serviceWorker" in navigator && window.isSecureContext) {
    // the shell for the next poster opened without network (docs/ARCHITECTURE.md, "The phone page")
    navigator.serviceWorker.register("/sw.js").catch(function () { /* the page works without it */ });
  }
  if (cfg.offlinePoster) {
    const known = rememberedVenue(cfg.venueId);
    if (known) {
      cfg.venueName = known.name;
      cfg.dwellMinutes = known.dwell || 0;
      cfg.testHours = known.test_hours || 0;
    }
    applyStatic();
  } else if (cfg.code) {
    rememberVenue();
  }

  const r = loadResident();
  if (r && r.expired) return showRegister(t("reg.expired"));
  if (!r) {
    showRegister(cfg.offlinePoster ? t("offline.no_resident") : "");
    if (!cfg.offlinePoster) restoreChallenges();
    return;
  }
  state.resident = r;
  if (cfg.offlinePoster) {
    queueOfflinePoster();
    flushQueue();
    return;
  }
  showReady();
  loadNotices();
  sendLang();
  flushQueue().then(function () { return refreshStays(); });
}

if (app) start();
