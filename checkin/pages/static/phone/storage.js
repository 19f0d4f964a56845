// What the phone keeps: localStorage, with a cookie when storage is unavailable; the resident's token.
import { COMPANIONS_KEY, RESIDENT_KEY, STAYS_KEY } from "./config.js";

// ---- storage (localStorage, with a cookie when storage is unavailable) ---------------------------
export function readCookie(name) {
  const parts = document.cookie ? document.cookie.split("; ") : [];
  for (let i = 0; i < parts.length; i++) {
    const eq = parts[i].indexOf("=");
    if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
  }
  return null;
}
export function writeCookie(name, value, maxAgeS) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = name + "=" + encodeURIComponent(value || "") + "; Max-Age=" + maxAgeS +
    "; Path=/; SameSite=Strict" + secure;
}
export function storeGet(key) {
  try {
    const v = window.localStorage.getItem(key);
    if (v !== null) return JSON.parse(v);
  } catch (e) { /* storage disabled or bad JSON: fall back to the cookie */ }
  try {
    const c = readCookie(key);
    return c ? JSON.parse(c) : null;
  } catch (e) {
    return null;
  }
}
export function storeSet(key, value, maxAgeS) {
  const text = JSON.stringify(value);
  try {
    window.localStorage.setItem(key, text);
    return;
  } catch (e) { /* fall through to the cookie */ }
  writeCookie(key, text, maxAgeS);
}
export function storeDel(key) {
  try { window.localStorage.removeItem(key); } catch (e) { /* ignore */ }
  if (readCookie(key) !== null) writeCookie(key, "", 0);
}

/** Expiry (unix seconds) inside a resident token "r2.<b64url(pid u64|exp u32|...)>" (r1. too). */
export function tokenExpiry(token) {
  try {
    const b64 = token.slice(3).replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    if (raw.length < 12) return null;
    return ((raw.charCodeAt(8) << 24) >>> 0) + (raw.charCodeAt(9) << 16) + (raw.charCodeAt(10) << 8) +
      raw.charCodeAt(11);
  } catch (e) {
    return null;
  }
}
export function loadResident() {
  const r = storeGet(RESIDENT_KEY);
  if (!r || typeof r.token !== "string" || !/^r[12]\./.test(r.token)) return null;
  const exp = tokenExpiry(r.token);
  if (exp !== null && exp * 1000 <= Date.now()) {
    storeDel(RESIDENT_KEY);
    return { expired: true };
  }
  return r;
}
/** A refused token: this phone's sign-in ends (the offline queue stays: it names its owner, and is
 * sent once that person has signed in again). */
export function forgetResident() {
  storeDel(RESIDENT_KEY);
  storeDel(STAYS_KEY);
  storeDel(COMPANIONS_KEY);
}
