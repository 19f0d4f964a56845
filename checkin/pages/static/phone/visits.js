// 我的行程: the resident's own visits.
import { state } from "./state.js";
import { ApiError, api, describe } from "./api.js";
import { $, clearMessage, item } from "./dom.js";
import { asDate, fmt, t } from "./i18n.js";
import { forgetResident } from "./storage.js";
import { show, showRegister } from "./views.js";
import { M } from "./words.js";

// ---- 我的行程 (own visits) --------------------------------------------------------------------------
let visits = null;       // the last answer, or {error: text}
export function showVisits() {
  if (!state.resident) return showRegister();
  clearMessage();
  visits = { loading: true };
  show("view-visits");
  renderVisits();
  const owner = state.resident;
  api("GET", "/v1/residents/me/visits?days=14", undefined, owner.token)
    .then(function (data) {
      visits = data || { visits: [] };
    })
    .catch(function (err) {
      if (err instanceof ApiError && err.status === 401) {
        forgetResident();
        showRegister(describe(err, "visits"));
        return;
      }
      visits = { error: err instanceof ApiError && (err.status === 0 || err.status >= 500) ? "down" : describe(err, "visits") };
    })
    .then(function () {
      if (state.view === "view-visits") renderVisits();
    });
}
export function renderVisits() {
  const ul = $("visit-list");
  while (ul.firstChild) ul.removeChild(ul.firstChild);
  const status = $("visits-status");
  status.className = "muted";
  if (!visits || visits.loading) {
    status.textContent = t("visits.loading");
    return;
  }
  if (visits.error) {
    status.textContent = visits.error === "down" ? t("visits.down") : visits.error;
    status.className = "notice error";
    return;
  }
  const list = visits.visits || [];
  status.textContent = list.length ? t("visits.count", { n: list.length }) : t("visits.none");
  const now = Date.now();
  list.forEach(function (v) {
    const li = document.createElement("li");
    li.setAttribute("data-checkin-id", v.checkin_id);
    li.appendChild(item("div", "v-venue", v.venue_name || "#" + v.venue_id));
    const verdict = item("span", "v-verdict", M["verdict." + v.verdict] ? t("verdict." + v.verdict) : "—");
    verdict.setAttribute("data-verdict", v.verdict || "");
    li.appendChild(verdict);
    const end = asDate(v.end_at);
    const open = !v.checked_out && end && end.getTime() > now;
    const time = item("div", "v-time", fmt("short", v.at) + " – " + (open ? "" : fmt("clock", v.end_at).slice(0, 5)));
    if (open) time.appendChild(item("span", "v-open", t("visits.open")));
    li.appendChild(time);
    ul.appendChild(li);
  });
}
