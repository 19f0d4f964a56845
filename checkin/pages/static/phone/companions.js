// Companions: family members checked in from this phone.
import { state } from "./state.js";
import { ApiError, api, describe } from "./api.js";
import { COMPANIONS_KEY } from "./config.js";
import { $, item, showMessage } from "./dom.js";
import { dependantOf } from "./home.js";
import { t } from "./i18n.js";
import { cleanPhone, idNumberValid, sendCode } from "./register.js";
import { statusText } from "./result.js";
import { forgetResident, storeGet, storeSet } from "./storage.js";
import { showRegister } from "./views.js";
import { M } from "./words.js";

// ---- companions (family members checked in from this phone) ---------------------------------------
export function cachedCompanions() {
  const c = storeGet(COMPANIONS_KEY);
  if (!c || !state.resident || String(c.owner) !== String(state.resident.person_id) || !Array.isArray(c.list)) return [];
  return c.list;
}
function saveCompanions(list) {
  storeSet(COMPANIONS_KEY, { owner: state.resident.person_id, list: list }, 30 * 86400);
}
export function selectedCompanions() {
  const boxes = document.querySelectorAll("#companion-choices input:checked");
  const out = [];
  for (let i = 0; i < boxes.length; i++) out.push(boxes[i].value);
  return out;
}
export function renderCompanions(list, alsoChecked) {
  const checked = selectedCompanions();
  if (alsoChecked) checked.push(String(alsoChecked));
  const ul = $("companion-choices");
  while (ul.firstChild) ul.removeChild(ul.firstChild);
  list.forEach(function (c) {
    const li = document.createElement("li");
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = String(c.person_id);
    box.checked = checked.indexOf(String(c.person_id)) >= 0;
    const name = document.createElement("span");
    name.textContent = c.name_masked || "*";
    label.appendChild(box);
    const dep = dependantOf(c.person_id);
    if (dep && M["status." + dep.status]) {  // the family member's colour, beside their name
      const dot = item("span", "dot");
      dot.setAttribute("data-status", dep.status);
      dot.setAttribute("title", statusText(dep.status));
      label.appendChild(dot);
    }
    label.appendChild(name);
    li.appendChild(label);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = t("remove");
    remove.setAttribute("aria-label", t("remove.label", { name: c.name_masked || "" }));
    remove.setAttribute("data-person-id", String(c.person_id));
    remove.addEventListener("click", function () { onRemoveCompanion(c); });
    li.appendChild(remove);
    ul.appendChild(li);
  });
  $("companion-empty").hidden = list.length > 0;
}
/** The server's list replaces the cached one; failures keep the cache (the tap still works). */
export function refreshCompanions() {
  if (!state.resident) return;
  const owner = state.resident.person_id;
  api("GET", "/v1/residents/me/companions", undefined, state.resident.token)
    .then(function (list) {
      if (!state.resident || state.resident.person_id !== owner || !Array.isArray(list)) return;
      saveCompanions(list);
      renderCompanions(list);
    })
    .catch(function () { /* offline or overloaded: the cached list stays */ });
}
function onRemoveCompanion(c) {
  if (!state.resident) return showRegister();
  if (!window.confirm(t("remove.confirm", { name: c.name_masked || "" }))) return;
  api("DELETE", "/v1/residents/me/companions/" + encodeURIComponent(String(c.person_id)), undefined, state.resident.token)
    .catch(function (err) {
      if (err instanceof ApiError && err.status === 404) return null;  // already gone
      throw err;
    })
    .then(function () {
      const list = cachedCompanions().filter(function (x) { return String(x.person_id) !== String(c.person_id); });
      saveCompanions(list);
      renderCompanions(list);
      const note = $("companion-removed");
      note.textContent = t("removed", { name: c.name_masked || "" });
      note.hidden = false;
    })
    .catch(function (err) {
      if (err instanceof ApiError && err.status === 401) {
        forgetResident();
        showRegister(describe(err, "companion"));
        return;
      }
      showMessage(describe(err, "companion"), "error");
    });
}
export function onSendCompanionCode() {
  const phone = cleanPhone($("cmp-phone").value);
  if (!/^1\d{10}$/.test(phone)) return companionError($("cmp-phone"), t("f.cmp_phone"));
  companionError(null, "");
  sendCode(phone, $("cmp-otp-send"), function (text) { companionError(null, text); }).then(function (ok) {
    if (ok) {
      $("cmp-otp-row").hidden = false;
      $("cmp-otp").focus();
    }
  });
}
export function toggleCompanionForm(open) {
  $("companion-form").hidden = !open;
  $("companion-toggle").setAttribute("aria-expanded", open ? "true" : "false");
  $("companion-toggle").textContent = open ? t("cmp.close") : t("cmp.add");
  if (open) $("cmp-name").focus();
}
function companionError(input, text) {
  const el = $("companion-error");
  [$("cmp-name"), $("cmp-id"), $("cmp-phone")].forEach(function (f) { f.removeAttribute("aria-invalid"); });
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
  el.textContent = text || "";
  el.hidden = !text;
}
export function onAddCompanion(ev) {
  ev.preventDefault();
  if (!state.resident) return showRegister();
  const name = $("cmp-name").value.trim();
  const idNumber = $("cmp-id").value.replace(/[\s\-]/g, "").toUpperCase();
  const phone = cleanPhone($("cmp-phone").value);
  const code = $("cmp-otp").value.replace(/[\s\-]/g, "");
  if (!name || name.length > 50) return companionError($("cmp-name"), t("f.cmp_name"));
  if (!idNumberValid(idNumber)) return companionError($("cmp-id"), t("f.id"));
  if (phone && !/^1\d{10}$/.test(phone)) return companionError($("cmp-phone"), t("f.cmp_phone_opt"));
  if (phone && !state.challenges[phone]) {
    return companionError($("cmp-phone"), t("f.cmp_otp_first"));
  }
  if (phone && !/^\d{6}$/.test(code)) return companionError($("cmp-otp"), t("f.cmp_otp"));
  companionError(null, "");
  const btn = $("companion-submit");
  btn.disabled = true;
  const body = { name: name, id_number: idNumber };
  if (phone) {
    body.phone = phone;
    body.challenge_id = state.challenges[phone];
    body.otp = code;
  }
  api("POST", "/v1/residents/me/companions", body, state.resident.token)
    .then(function (c) {
      const list = cachedCompanions().filter(function (x) { return String(x.person_id) !== String(c.person_id); });
      list.push({ person_id: c.person_id, name_masked: c.name_masked });
      saveCompanions(list);
      renderCompanions(list, c.person_id);
      $("companion-form").reset();
      $("cmp-otp-row").hidden = true;
      $("companion-consent").hidden = true;
      toggleCompanionForm(false);
    })
    .catch(function (err) {
      if (err instanceof ApiError && err.status === 401) {
        forgetResident();
        showRegister(describe(err, "companion"));
        return;
      }
      if (err instanceof ApiError && err.problem && err.problem.reason === "consent_required") {
        $("companion-consent").hidden = false;
        $("cmp-phone").focus();
      }
      companionError(null, describe(err, "companion"));
    })
    .then(function () { btn.disabled = false; });
}
