// Which view shows: registration, the ready screen, the door screen, the pass, own visits, offline.
import { state } from "./state.js";
import { renderOffline, startLocating } from "./checkin.js";
import { cachedCompanions, refreshCompanions, renderCompanions } from "./companions.js";
import { app, cfg, home } from "./config.js";
import { $, clearMessage, showMessage } from "./dom.js";
import { loadHome, renderCode, renderFamily, renderGuardians } from "./home.js";
import { t } from "./i18n.js";
import { renderNotices } from "./notices.js";
import { loadPass, stopPass } from "./pass.js";
import { renderQueue } from "./queue.js";
import { renderResult, stopResultTimers } from "./result.js";
import { renderStays } from "./stays.js";
import { renderVisits } from "./visits.js";

// ---- views -------------------------------------------------------------------------------------
const VIEWS = ["view-register", "view-ready", "view-result", "view-pass", "view-visits", "view-offline"];
export function show(id) {
  state.view = id;
  VIEWS.forEach(function (v) { $(v).hidden = v !== id; });
  app.setAttribute("data-view", id);
  // the poster's venue card would name another venue above a result: the panel names its own
  $("venue-card").hidden = id === "view-result" || id === "view-offline" || !cfg.code || cfg.offlinePoster;
  if (id !== "view-result") stopResultTimers();
  if (id !== "view-pass" && !(home && id === "view-ready")) stopPass();
}
export function rerender() {
  if (state.view === "view-ready") renderReady();
  if (state.view === "view-result") renderResult();
  if (state.view === "view-visits") renderVisits();
  if (state.view === "view-offline") renderOffline();
  renderNotices();
}

export function showRegister(notice) {
  state.resident = null;
  show("view-register");
  renderNotices();
  if (notice) showMessage(notice, "error"); else clearMessage();
}

export function showReady(notice) {
  show("view-ready");
  if (notice) showMessage(notice, "info"); else clearMessage();
  renderReady();
  if (!home) {
    refreshCompanions();
    startLocating();
  }
  loadHome();
  if (home) loadPass();
}
export function renderReady() {
  $("checkin-card").hidden = home;
  const btn = $("checkin-button");
  btn.disabled = state.busy;
  btn.textContent = state.busy ? t("checkin.busy") : t("checkin");
  if (!home) renderCompanions(cachedCompanions());
  renderCode();
  renderFamily();
  renderGuardians();
  renderStays();
  renderQueue();
}
