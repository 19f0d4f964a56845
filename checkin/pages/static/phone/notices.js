// Exposure notices: unread first, before anything else.
import { state } from "./state.js";
import { ApiError, api, describe } from "./api.js";
import { $, item, showMessage } from "./dom.js";
import { fmt, t } from "./i18n.js";
import { forgetResident } from "./storage.js";
import { showRegister } from "./views.js";
import { M } from "./words.js";

// ---- exposure notices (unread first, before anything else) ------------------------------------------
export function loadNotices() {
  if (!state.resident) return Promise.resolve();
  const owner = state.resident;
  return api("GET", "/v1/residents/me/notices", undefined, owner.token)
    .then(function (data) {
      if (state.resident !== owner) return;
      state.notices = ((data && data.notices) || []).filter(function (n) { return !n.acked_at; });
      renderNotices();
    })
    .catch(function (err) {
      if (err instanceof ApiError && err.status === 401) {
        forgetResident();
        showRegister(describe(err, "notices"));
      }
    });
}
export function renderNotices() {
  const list = state.resident ? state.notices : [];
  const ul = $("notice-list");
  while (ul.firstChild) ul.removeChild(ul.firstChild);
  list.forEach(function (n) {
    const level = M["notice." + n.level] ? n.level : "inform";
    const li = item("li", "exposure");
    li.id = "notice-" + n.notice_id;  // the text's link opens /me#notice-<id>
    li.setAttribute("data-notice-id", n.notice_id);
    li.setAttribute("data-level", level);
    // a guardian's copy: the notice is about a family member, named (masked)
    const family = n.for_person_id !== undefined && n.for_person_id !== null;
    const name = n.for_name_masked || "*";
    if (family) li.setAttribute("data-for-person-id", String(n.for_person_id));
    li.appendChild(item("h3", "n-title", family
      ? t("notice.family_title", { name: name, title: t("notice." + level) }) : t("notice." + level)));
    li.appendChild(item("p", "n-body", t(family ? "notice.family_body" : "notice.body", {
      name: name, visited: fmt("short", n.visited_at), venue: n.venue_name,
      since: fmt("short", n.since), until: fmt("short", n.until),
    })));
    li.appendChild(item("p", "n-advice", t("advice." + level)));
    if (n.message) {
      const msg = item("p", "n-message", t("notice.from"));
      msg.appendChild(item("span", "n-message-text", n.message));
      li.appendChild(msg);
    }
    const ack = item("button", "btn primary n-ack", family ? t("notice.ack_for", { name: name }) : t("notice.ack"));
    ack.type = "button";
    ack.addEventListener("click", function () { acknowledge(n, ack); });
    li.appendChild(ack);
    ul.appendChild(li);
  });
  $("notices").hidden = list.length === 0;
  const target = /^#notice-([0-9a-f]{18}(-\d+)?)$/.exec(location.hash);
  if (target && !noticeShown) {
    const el = document.getElementById("notice-" + target[1]);
    if (el) {
      noticeShown = true;
      el.classList.add("target");
      el.scrollIntoView({ block: "start" });
    }
  }
}
let noticeShown = false;
function acknowledge(n, button) {
  if (!state.resident) return;
  button.disabled = true;
  api("POST", "/v1/residents/me/notices/" + encodeURIComponent(n.notice_id) + "/ack", {}, state.resident.token)
    .catch(function (err) {
      if (err instanceof ApiError && err.status === 404) return null;  // gone (expired): nothing to confirm
      throw err;
    })
    .then(function () {
      state.notices = state.notices.filter(function (x) { return x.notice_id !== n.notice_id; });
      renderNotices();
    })
    .catch(function () {
      button.disabled = false;
      showMessage(t("notice.ack_failed"), "error");
    });
}
