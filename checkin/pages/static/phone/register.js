// Registration and one-time codes.
import { state } from "./state.js";
import { ApiError, api, describe } from "./api.js";
import { OTP_KEY, RESIDENT_KEY } from "./config.js";
import { $, showMessage } from "./dom.js";
import { asDate, t } from "./i18n.js";
import { sendLang } from "./prefs.js";
import { storeDel, storeGet, storeSet, tokenExpiry } from "./storage.js";
import { showReady } from "./views.js";

// ---- registration ---------------------------------------------------------------------------------
const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK = "10X98765432";
export function idNumberValid(id) {
  if (!/^\d{17}[\dX]$/.test(id)) return false;
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += (id.charCodeAt(i) - 48) * ID_WEIGHTS[i];
  return ID_CHECK.charAt(sum % 11) === id.charAt(17);
}

function fieldError(input, text) {
  const el = $("register-error");
  [$("reg-name"), $("reg-phone"), $("reg-id")].forEach(function (f) { f.removeAttribute("aria-invalid"); });
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
  el.textContent = text || "";
  el.hidden = !text;
}

/** A phone number as typed or pasted: spaces, dashes, brackets and a +86 prefix are dropped. */
export function cleanPhone(text) {
  let t = String(text || "").replace(/[\s\-()（）]/g, "");
  if (/^\+?86(1\d{10})$/.test(t)) t = t.replace(/^\+?86/, "");
  return t;
}

// ---- one-time codes ----------------------------------------------------------------------------
const OTP_WAIT_S = 60;
/** Codes asked for survive a reload (the browser killed while the resident reads the SMS). */
function keptChallenges() {
  const kept = storeGet(OTP_KEY);
  const out = {};
  if (!kept || typeof kept !== "object" || Array.isArray(kept)) return out;
  const now = Date.now();
  Object.keys(kept).forEach(function (phone) {
    const c = kept[phone];
    const until = c && asDate(c.expires_at);
    if (c && typeof c.challenge_id === "string" && until && until.getTime() > now) out[phone] = c;
  });
  return out;
}
function keepChallenge(phone, data) {
  const kept = keptChallenges();
  kept[phone] = { challenge_id: data.challenge_id, expires_at: data.expires_at, sent_at: new Date().toISOString() };
  storeSet(OTP_KEY, kept, 600);
}
function dropChallenge(phone) {
  const kept = keptChallenges();
  delete kept[phone];
  if (Object.keys(kept).length) storeSet(OTP_KEY, kept, 600); else storeDel(OTP_KEY);
  delete state.challenges[phone];
}
/** On load: the codes still valid, the phone of the latest in the form, its wait still counted. */
export function restoreChallenges() {
  const kept = keptChallenges();
  let latest = null;
  Object.keys(kept).forEach(function (phone) {
    state.challenges[phone] = kept[phone].challenge_id;
    if (!latest || (kept[phone].sent_at || "") > (kept[latest].sent_at || "")) latest = phone;
  });
  if (!latest) return;
  if (!$("reg-phone").value) $("reg-phone").value = latest;
  const sent = asDate(kept[latest].sent_at);
  const left = sent ? OTP_WAIT_S - Math.floor((Date.now() - sent.getTime()) / 1000) : 0;
  if (left > 0) countdown($("otp-send"), left, t("otp.send"));
  showMessage(t("otp.sent", { phone: latest.slice(0, 3) + "****" + latest.slice(7) }), "info");
}
function countdown(button, seconds, label) {
  let left = seconds;
  button.disabled = true;
  button.textContent = t("otp.again", { n: left });
  const timer = setInterval(function () {
    left -= 1;
    if (left <= 0) {
      clearInterval(timer);
      button.disabled = false;
      button.textContent = label;
      return;
    }
    button.textContent = t("otp.again", { n: left });
  }, 1000);
}
export function sendCode(phone, button, onError) {
  const label = t("otp.send");
  button.disabled = true;
  return api("POST", "/v1/residents/otp", { phone: phone })
    .then(function (data) {
      state.challenges[phone] = data.challenge_id;
      keepChallenge(phone, data);
      countdown(button, OTP_WAIT_S, label);
      return true;
    })
    .catch(function (err) {
      if (err instanceof ApiError && err.status === 429 && err.retryAfter) {
        countdown(button, Math.min(err.retryAfter, 3600), label);
      } else {
        button.disabled = false;
        button.textContent = label;
      }
      onError(describe(err, "otp"));
      return false;
    });
}
export function onSendRegisterCode() {
  const phone = cleanPhone($("reg-phone").value);
  if (!/^1\d{10}$/.test(phone)) return fieldError($("reg-phone"), t("f.phone"));
  fieldError(null, "");
  sendCode(phone, $("otp-send"), function (text) { fieldError(null, text); }).then(function (ok) {
    if (ok) {
      showMessage(t("otp.sent", { phone: phone.slice(0, 3) + "****" + phone.slice(7) }), "info");
      $("reg-otp").focus();
    }
  });
}

export function onRegister(ev) {
  ev.preventDefault();
  const name = $("reg-name").value.trim();
  const phone = cleanPhone($("reg-phone").value);
  const idNumber = $("reg-id").value.replace(/[\s\-]/g, "").toUpperCase();
  const code = $("reg-otp").value.replace(/[\s\-]/g, "");
  if (!name || name.length > 50) return fieldError($("reg-name"), t("f.name"));
  if (!idNumberValid(idNumber)) return fieldError($("reg-id"), t("f.id"));
  if (!/^1\d{10}$/.test(phone)) return fieldError($("reg-phone"), t("f.phone"));
  if (!state.challenges[phone]) return fieldError($("reg-otp"), t("f.otp_first"));
  if (!/^\d{6}$/.test(code)) return fieldError($("reg-otp"), t("f.otp"));
  fieldError(null, "");
  const btn = $("register-submit");
  btn.disabled = true;
  btn.textContent = t("submitting");
  const body = { name: name, phone: phone, id_number: idNumber, challenge_id: state.challenges[phone], otp: code };
  api("POST", "/v1/residents", body)
    .then(function (data) {
      if (!data || typeof data.token !== "string") throw new ApiError(500, null, null);
      state.resident = { token: data.token, person_id: data.person_id };
      const exp = tokenExpiry(data.token);
      const maxAge = exp ? Math.max(60, exp - Math.floor(Date.now() / 1000)) : 30 * 86400;
      storeSet(RESIDENT_KEY, state.resident, maxAge);
      $("register-form").reset();
      state.challenges = {};
      storeDel(OTP_KEY);
      sendLang();
      showReady(t("reg.saved"));
    })
    .catch(function (err) {
      if (err instanceof ApiError && err.problem && err.problem.reason === "phone_mismatch") {
        $("rebind-help").open = true;
      }
      const reason = err instanceof ApiError && err.problem && err.problem.reason;
      if (reason === "otp_expired" || reason === "otp_locked") dropChallenge(phone);
      fieldError(null, describe(err, "register"));
    })
    .then(function () {
      btn.disabled = false;
      btn.textContent = t("submit");
    });
}
