// The JSON API (timeouts, retries) and its errors said in words.
import { REQUEST_TIMEOUT_MS } from "./config.js";
import { t } from "./i18n.js";
import { M } from "./words.js";

// ---- the JSON API ----------------------------------------------------------------------------
export function ApiError(status, problem, retryAfter) {
  this.status = status;
  this.problem = problem || {};
  this.detail = (problem && typeof problem.detail === "string") ? problem.detail : "";
  this.retryAfter = retryAfter;
}

export function api(method, path, body, token) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = "Bearer " + token;
  const ctrl = typeof AbortController === "function" ? new AbortController() : null;
  const timer = ctrl ? setTimeout(function () { ctrl.abort(); }, REQUEST_TIMEOUT_MS) : null;
  return fetch(path, {
    method: method,
    headers: headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
    signal: ctrl ? ctrl.signal : undefined,
  }).then(function (resp) {
    if (timer) clearTimeout(timer);
    return resp.text().then(function (text) {
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
      if (!resp.ok) {
        const ra = parseInt(resp.headers.get("Retry-After") || "", 10);
        throw new ApiError(resp.status, data, isNaN(ra) ? null : ra);
      }
      return data;
    });
  }, function () {
    if (timer) clearTimeout(timer);
    throw new ApiError(0, null, null);
  });
}

export function sleep(ms) {
  return new Promise(function (resolve) { setTimeout(resolve, ms); });
}

/** Retry only when the request may not have arrived (network failure); same body, same client_id. */
export function apiRetrying(method, path, body, token, attempts) {
  return api(method, path, body, token).catch(function (err) {
    if (err instanceof ApiError && err.status === 0 && attempts > 1 && navigator.onLine !== false) {
      return sleep(800).then(function () { return apiRetrying(method, path, body, token, attempts - 1); });
    }
    throw err;
  });
}
export function isNetworkError(err) {
  return err instanceof ApiError && err.status === 0;
}

const FIELD_TEXT = [
  [/id_number|id number|身份证/i, "e.field_id"],
  [/phone|手机/i, "e.field_phone"],
  [/\bname\b|姓名/i, "e.field_name"],
];

/** Plain text for an API error; `what` names the action ("register", "checkin", "checkout"...). */
export function describe(err, what) {
  if (!(err instanceof ApiError)) return t("e.page");
  const s = err.status;
  const reason = err.problem && err.problem.reason;
  return describeReason(s, reason, err.detail, err.retryAfter, what, err.problem);
}
export function describeReason(s, reason, detail, retryAfter, what, problem) {
  detail = detail || "";
  if (reason === "otp_wrong") {
    const left = problem && problem.attempts_left;
    return left > 0 ? t("e.otp_wrong_left", { n: left }) : t("r.otp_locked");
  }
  if (reason === "phone_mismatch") return t("r.phone_mismatch") + t("e.phone_mismatch_help");
  if (reason && M["r." + reason]) return t("r." + reason);
  const wait = retryAfter ? t("e.wait_s", { s: retryAfter }) : t("e.wait");
  if (s === 0) return t("e.network");
  if (s === 429) return t("e.rate", { wait: wait });
  if (s === 503 && /SMS/i.test(detail)) return t("e.sms", { wait: wait });
  if (s === 503) return t("e.busy", { wait: wait });
  if (s >= 500) return t("e.server");
  if (s === 401) return t("e.token");
  if (s === 403) return what === "checkin" && /compan/i.test(detail) ? t("e.cmp_pick") : t("e.forbidden");
  if (s === 413) return t("e.too_big");
  if (s === 410) return what === "checkout" ? t("e.stay_over") : t("e.code_gone");
  if (s === 404) {
    if (what === "checkout") return t("e.no_checkin");
    if (what === "checkin") return t("e.no_venue");
    return t("e.unavailable");
  }
  if (s === 409) {
    if (what === "checkout") return t("e.already_out");
    if (/another name/i.test(detail)) return t("e.other_name");
    if (/at most/i.test(detail)) return t("e.cmp_max");
    return t("e.conflict");
  }
  if (what === "checkin" && /compan/i.test(detail)) return t("e.cmp_pick");
  if (what === "companion" && /own companion/i.test(detail)) return t("e.own_cmp");
  if (what === "register" || what === "companion") {
    for (let i = 0; i < FIELD_TEXT.length; i++) {
      if (FIELD_TEXT[i][0].test(detail)) return t(FIELD_TEXT[i][1]);
    }
    return withDetail(t("e.form"), detail);
  }
  if (what === "checkin" && /venue code|code/i.test(detail)) return t("e.bad_code");
  if (/location|lat|lon/i.test(detail)) return t("e.location");
  return withDetail(t("e.failed"), detail);
}
function withDetail(text, detail) {
  return detail ? text + t("e.detail", { detail: detail }) : text;
}
