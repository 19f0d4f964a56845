// venue-checkin console: signing in, what the key may do, the views, the language. The views themselves
// live in tracer.js, sources.js and analyst.js; every word in i18n.js.
import { applyLang, chooseLang, saveLang, t, word } from "./i18n.js";
import { $, ApiError, api, errorText, loadRegions, redrawAll, regionName, showZone, state } from "./core.js";
import { onTakeCases, startTracer, wireTracer } from "./tracer.js";
import { addCases, startSources, wireSources } from "./sources.js";
import { loadCharts, loadQueue, startAlerts, stopAlerts, wireAnalyst } from "./analyst.js";

const KEY_STORE = "checkin.console.key";
const VIEWS = { tracer: "tracer-view", sources: "sources-view", analyst: "analyst-view" };

// What a key may do, from its role: tracers trace (and the 溯源 view), analysts watch alerts; an admin both.
function capabilities(role) {
  return { tracer: role === "tracer" || role === "admin", analyst: role === "analyst" || role === "admin" };
}

function allowed(view) {
  return view === "analyst" ? state.can.analyst : state.can.tracer;
}

function showWho() {
  if (!state.who) return;
  const w = state.who;
  const scope = w.scope ? `, ${t("scope")} ${regionName(w.scope)}` : "";
  $("who").textContent = `${w.key_id} (${word("role", w.role)}${scope})`;
  $("who").title = w.scope || "";
  $("who").dataset.role = w.role;
}

function levelOf(scope) {
  return scope.length >= 12 ? "community" : scope.length >= 9 ? "street" : scope.length >= 6 ? "district" : "city";
}

// A key the console has nothing for: said plainly, in the page's language, with no tab to click.
function refuse(text) {
  state.can = { tracer: false, analyst: false };
  $("role-message").textContent = text;
  $("logout").hidden = false;
  showView("role");
}

async function signIn(key) {
  state.key = key;
  let resp;
  try {
    resp = await api("/console/whoami");
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) {
      sessionStorage.setItem(KEY_STORE, key);
      $("api-key").value = "";
      refuse(t("role.none", { role: word("role", "resident") }));
      return;
    }
    throw err;
  }
  state.who = await resp.json();
  state.can = capabilities(state.who.role);
  sessionStorage.setItem(KEY_STORE, key);
  $("api-key").value = "";
  $("logout").hidden = false;
  showZone();
  if (!state.can.tracer && !state.can.analyst) {
    showWho();
    refuse(t("role.none", { role: word("role", state.who.role) }));
    return;
  }
  await loadRegions();
  for (const tab of document.querySelectorAll("nav .tab")) tab.hidden = !allowed(tab.dataset.view);
  $("tabs").hidden = false;
  if (state.can.tracer) {
    startTracer();
    startSources();
  }
  if (state.can.analyst) $("queue-level").value = levelOf(state.who.scope || "");
  showView(state.can.tracer ? "tracer" : "analyst");
  showWho();  // last: the page is ready when it names the key
}

function signOut() {
  sessionStorage.removeItem(KEY_STORE);
  stopAlerts();
  location.reload();
}

// Exactly one view is visible: sign-in until a key is accepted, then the chosen tab's (one the key may use).
function showView(name) {
  if (VIEWS[name] && !allowed(name)) return;
  state.view = name;
  for (const tab of document.querySelectorAll("nav .tab")) tab.classList.toggle("active", tab.dataset.view === name);
  $("login-view").hidden = name !== "login";
  $("role-view").hidden = name !== "role";
  for (const [view, id] of Object.entries(VIEWS)) $(id).hidden = name !== view;
  if (name === "analyst") {
    loadCharts();
    loadQueue().finally(startAlerts);  // the queue brings venue names the feed's rows then show
  }
}

document.addEventListener("DOMContentLoaded", () => {
  applyLang(chooseLang());
  showZone();
  showView("login");
  $("lang").value = document.documentElement.lang;
  $("lang").addEventListener("change", () => {
    saveLang($("lang").value);
    applyLang($("lang").value);
    showZone();
    showWho();
    if (state.who && !state.can.tracer && !state.can.analyst) $("role-message").textContent = t("role.none", { role: word("role", state.who.role) });
    redrawAll();  // every table, chart and live row in the new language
  });
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      await signIn($("api-key").value.trim());
    } catch (err) {
      state.key = "";
      $("login-error").textContent = err instanceof ApiError && err.status === 401 ? t("signin.bad") : errorText(err);
    }
  });
  $("logout").addEventListener("click", signOut);
  for (const tab of document.querySelectorAll("nav .tab")) tab.addEventListener("click", () => showView(tab.dataset.view));
  wireTracer();
  wireSources();
  wireAnalyst();
  onTakeCases((persons, window, reason) => {
    addCases(persons, window, reason);
    showView("sources");
  });
  const saved = sessionStorage.getItem(KEY_STORE);
  if (saved) signIn(saved).catch(() => sessionStorage.removeItem(KEY_STORE));
});
