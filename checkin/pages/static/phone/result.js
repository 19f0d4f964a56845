// The door screen: the verdict of a check-in for the resident and their companions, kept fresh.
import { state } from "./state.js";
import { ApiError, api, describe, isNetworkError } from "./api.js";
import { RESULT_REFRESH_MS, cfg } from "./config.js";
import { $, clearMessage, item, showMessage } from "./dom.js";
import { rememberColour } from "./home.js";
import { dayIndex, fmt, formatInstant, t } from "./i18n.js";
import { checkOut, dropStay, rememberStay } from "./stays.js";
import { forgetResident } from "./storage.js";
import { show, showReady, showRegister } from "./views.js";
import { M } from "./words.js";

// ---- the door screen ------------------------------------------------------------------------------
const RANK = { pass: 0, restricted: 1, deny: 2 };
let resultState = "";    // "live": from the server just now; "stale": could not ask; "checking"
let clockTimer = null;
let refreshTimer = null;

export function stopResultTimers() {
  if (clockTimer !== null) clearInterval(clockTimer);
  if (refreshTimer !== null) clearInterval(refreshTimer);
  clockTimer = null;
  refreshTimer = null;
}
function verdictOf(p) {
  return RANK[p.verdict] !== undefined ? p.verdict : "restricted";
}
function worstVerdict(people) {
  let worst = "pass";
  people.forEach(function (p) {
    if (RANK[verdictOf(p)] > RANK[worst]) worst = verdictOf(p);
  });
  return worst;
}
function reasonText(p) {
  if (!p.reason) return "";
  if (p.reason === "test_expired") {
    return cfg.testHours && String((state.current && state.current.venue && state.current.venue.venue_id) || "") === cfg.venueId
      ? t("reason.test_expired", { hours: cfg.testHours })
      : t("reason.test_expired_any");
  }
  return M["reason." + p.reason] ? t("reason." + p.reason) : t("reason.other", { code: p.reason });
}
export function statusText(status) {
  return M["status." + status] ? t("status." + status) : t("status.unknown");
}
function ownRow(people) {
  if (state.resident && state.resident.person_id !== undefined) {
    for (let i = 0; i < people.length; i++) {
      if (String(people[i].person_id) === String(state.resident.person_id)) return people[i];
    }
  }
  return people[0] || null;
}

export function showResult(data) {
  const mine = ownRow((data && data.people) || []);
  if (mine) rememberColour(mine.status, data.evaluated_at || data.at);
  state.current = data;
  resultState = "live";
  state.staleStay = null;
  clearMessage();
  show("view-result");
  renderResult();
  startResultTimers();
  window.scrollTo(0, 0);
}
function startResultTimers() {
  stopResultTimers();
  tick();
  clockTimer = setInterval(tick, 1000);
  refreshTimer = setInterval(reevaluate, RESULT_REFRESH_MS);
}

export function renderResult() {
  const panel = $("result-panel");
  const live = resultState === "live" && state.current;
  $("r-live").hidden = !live;
  $("r-stale").hidden = resultState !== "stale";
  const people = (live && state.current.people) || [];
  const me = ownRow(people) || {};
  const worst = live ? worstVerdict(people) : "unknown";
  panel.setAttribute("data-verdict", worst);
  panel.setAttribute("data-status", live && M["status." + me.status] ? me.status : "");
  const group = people.length > 1;
  if (!live) {
    $("r-status").textContent = "";
    $("r-verdict").textContent = resultState === "checking" ? "…" : t("verdict.unknown");
    $("r-reason").textContent = resultState === "checking" ? t("result.checking") : "";
    $("r-reason").hidden = resultState !== "checking";
    $("r-name").textContent = "";
    $("r-stale-text").textContent = t("result.stale");
  } else {
    const deny = people.filter(function (p) { return verdictOf(p) === "deny"; }).length;
    const limited = people.filter(function (p) { return verdictOf(p) === "restricted"; }).length;
    if (group) {
      // each count is one unbreakable piece: the line breaks between them, never inside "0 人限制"
      counters($("r-status"), [t("group.people", { n: people.length })].concat(deny + limited
        ? [t("group.deny", { n: deny }), t("group.limited", { n: limited })] : [t("group.all")]));
    } else {
      $("r-status").textContent = statusText(me.status);
    }
    $("r-verdict").textContent = t("verdict." + worst);
    const reason = group ? (worst !== "pass" ? t("group.see_each") : "") : reasonText(me);
    $("r-reason").textContent = reason;
    $("r-reason").hidden = !reason;
    $("r-name").textContent = group ? "" : (me.name_masked || "");
  }
  renderPeople(group ? people : []);

  const stay = live ? state.current : state.staleStay || {};
  const venue = (live ? state.current.venue : { name: stay.venue_name }) || {};
  $("r-venue").textContent = venue.name || cfg.venueName;
  // the verdict names the venue it is for: a stay's result may be opened from another venue's poster
  $("r-panel-venue").textContent = venue.name || cfg.venueName;
  $("r-time").textContent = formatInstant(stay.at);
  $("r-test").textContent = live ? (me.last_negative_test_at ? formatInstant(me.last_negative_test_at) : t("test.none")) : "";
  $("r-test").hidden = $("r-test-label").hidden = !live || group;
  $("r-checked").textContent = live ? formatInstant(state.current.evaluated_at || state.current.at) : "";

  const out = $("checkout-button");
  const done = $("checkout-done");
  const checkedOutAt = live ? state.current.checked_out_at : state.staleStay && state.staleStay.checked_out_at;
  out.hidden = !!checkedOutAt || !(live || state.staleStay);
  out.disabled = false;
  if (out.getAttribute("data-armed") === "1") out.setAttribute("data-label", t("checkout"));
  else out.textContent = t("checkout");
  done.hidden = !checkedOutAt;
  done.textContent = checkedOutAt ? t("checked_out", { at: formatInstant(checkedOutAt) }) : "";
  if (live) tick();
}
function counters(el, parts) {
  while (el.firstChild) el.removeChild(el.firstChild);
  parts.forEach(function (text, i) {
    if (i) el.appendChild(document.createTextNode(" · "));
    el.appendChild(item("span", "counter", text));
  });
}
function renderPeople(people) {
  const ul = $("r-people");
  while (ul.firstChild) ul.removeChild(ul.firstChild);
  people.forEach(function (p) {
    const li = item("li", "person");
    li.setAttribute("data-person-id", String(p.person_id));
    li.setAttribute("data-verdict", verdictOf(p));
    li.setAttribute("data-status", p.status || "");
    li.appendChild(item("div", "p-name", p.name_masked || "*"));
    li.appendChild(item("div", "p-verdict", t("verdict." + verdictOf(p))));
    li.appendChild(item("div", "p-status", statusText(p.status)));
    const reason = reasonText(p);
    if (reason) li.appendChild(item("div", "p-reason", reason));
    if (cfg.testHours || p.last_negative_test_at) {
      li.appendChild(item("div", "p-test", t("test.label", {
        at: p.last_negative_test_at ? fmt("short", p.last_negative_test_at) : t("test.none"),
      })));
    }
    ul.appendChild(li);
  });
  ul.hidden = people.length === 0;
}
function tick() {
  const now = new Date();
  $("r-clock").textContent = formatInstant(now);
  const day = dayIndex(now);
  $("r-track").className = "live-track day-" + day;
  $("r-day").textContent = t("day.colour", { colour: t("day." + day) });
}

/** The verdict of a check-in made earlier: only what the server says now, never the kept copy. */
export function resume(stay) {
  if (!state.resident) return showRegister();
  state.current = null;
  state.staleStay = stay;
  resultState = "checking";
  clearMessage();
  show("view-result");
  renderResult();
  window.scrollTo(0, 0);
  askServer(stay);
}
function askServer(stay) {
  const owner = state.resident;
  return api("GET", "/v1/checkins/" + encodeURIComponent(stay.checkin_id), undefined, owner.token)
    .then(function (data) {
      if (state.view !== "view-result" || (state.staleStay && state.staleStay.checkin_id !== stay.checkin_id)) return;
      if (data.checked_out_at) dropStay(data.checkin_id); else rememberStay(data);
      showResult(data);
    })
    .catch(function (err) {
      if (state.view !== "view-result") return;
      if (err instanceof ApiError && err.status === 401) {
        forgetResident();
        showRegister(describe(err, "checkin"));
        return;
      }
      if (err instanceof ApiError && err.status === 404) {
        dropStay(stay.checkin_id);
        showReady();
        showMessage(t("result.gone"), "error");
        return;
      }
      goStale(stay);
      if (!isNetworkError(err)) showMessage(describe(err, "resume"), "error");
    });
}
function goStale(stay) {
  stopResultTimers();
  state.current = null;
  state.staleStay = stay;
  resultState = "stale";
  renderResult();
}
/** While the door screen is open it is judged again now and then; if that fails it stops showing one. */
function reevaluate() {
  if (!state.current || !state.resident || state.view !== "view-result") return;
  const stay = { checkin_id: state.current.checkin_id, venue_name: state.current.venue && state.current.venue.name, at: state.current.at };
  const id = state.current.checkin_id;
  api("GET", "/v1/checkins/" + encodeURIComponent(id), undefined, state.resident.token)
    .then(function (data) {
      if (state.view !== "view-result" || !state.current || state.current.checkin_id !== id) return;
      state.current = data;
      resultState = "live";
      renderResult();
    })
    .catch(function (err) {
      if (state.view !== "view-result" || !state.current || state.current.checkin_id !== id) return;
      if (err instanceof ApiError && err.status === 401) return;
      goStale(stay);
    });
}
export function onResultCheckout() {
  const id = state.current ? state.current.checkin_id : state.staleStay && state.staleStay.checkin_id;
  if (!id) return;
  checkOut(id, $("checkout-button"));
}
