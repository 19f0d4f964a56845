// The language and 长辈模式 (large text), and the venue's rules.
import { state } from "./state.js";
import { api } from "./api.js";
import { ELDER_KEY, LANG_KEY, LANG_SENT_KEY, cfg, home } from "./config.js";
import { $, clearMessage, item } from "./dom.js";
import { resetFormatters, t } from "./i18n.js";
import { storeGet, storeSet, writeCookie } from "./storage.js";
import { rerender } from "./views.js";
import { ELDER_WORDS, STATIC_EN } from "./words.js";

// ---- language and 长辈模式 --------------------------------------------------------------------------
let zhStatic = null;
export function applyStatic() {
  const els = document.querySelectorAll("[data-i18n]");
  if (zhStatic === null) {
    zhStatic = {};
    for (let i = 0; i < els.length; i++) zhStatic[els[i].getAttribute("data-i18n")] = els[i].textContent;
    zhStatic["pass.alt"] = $("pass-qr").getAttribute("alt");
  }
  for (let j = 0; j < els.length; j++) {
    const key = els[j].getAttribute("data-i18n");
    let text = state.lang === "en" ? STATIC_EN[key] : zhStatic[key];
    if (elderOn() && ELDER_WORDS[key]) text = ELDER_WORDS[key][state.lang === "en" ? 1 : 0];
    if (text !== undefined) els[j].textContent = text;
  }
  const alt = state.lang === "en" ? STATIC_EN["pass.alt"] : zhStatic["pass.alt"];
  $("pass-qr").setAttribute("alt", alt);
  $("home-pass-qr").setAttribute("alt", alt);
  document.documentElement.setAttribute("lang", state.lang);
  document.title = home ? t("title.home") : t("title") + (cfg.venueName ? " · " + cfg.venueName : "");
  const toggle = $("lang-toggle");
  toggle.textContent = t("lang.other");
  toggle.setAttribute("lang", state.lang === "en" ? "zh-CN" : "en");
  $("companion-toggle").textContent = $("companion-form").hidden ? t("cmp.add") : t("cmp.close");
  renderElderToggle();
  renderRules();
}
export function setLang(next) {
  state.lang = next === "en" ? "en" : "zh-CN";
  storeSet(LANG_KEY, state.lang, 365 * 86400);
  writeCookie(LANG_KEY, state.lang, 365 * 86400);  // the server renders its error pages in this language
  resetFormatters();
  applyStatic();
  clearMessage();
  rerender();
  sendLang();
}
/** The server keeps the page's language for the texts it sends (once per change and resident). */
export function sendLang() {
  if (!state.resident || navigator.onLine === false) return;
  const sent = storeGet(LANG_SENT_KEY);
  const owner = state.resident;
  if (sent && String(sent.owner) === String(owner.person_id) && sent.lang === state.lang) return;
  const want = state.lang;
  api("PUT", "/v1/residents/me/language", { lang: want }, owner.token)
    .then(function () { storeSet(LANG_SENT_KEY, { owner: String(owner.person_id), lang: want }, 365 * 86400); })
    .catch(function () { /* sent again on the next load */ });
}
export function elderOn() {
  return document.documentElement.classList.contains("elder");
}
function renderElderToggle() {
  const b = $("elder-toggle");
  b.textContent = elderOn() ? t("elder.off") : t("elder.on");
  b.setAttribute("aria-pressed", elderOn() ? "true" : "false");
}
export function setElder(on) {
  document.documentElement.classList.toggle("elder", !!on);
  storeSet(ELDER_KEY, !!on, 365 * 86400);
  applyStatic();
  rerender();
}

/** The venue's rules, shown before the tap. */
function renderRules() {
  const ul = $("venue-rules");
  while (ul.firstChild) ul.removeChild(ul.firstChild);
  if (cfg.testHours) ul.appendChild(item("li", "rule-test", t("rule.test", { hours: cfg.testHours })));
  if (cfg.dwellMinutes) ul.appendChild(item("li", "rule-dwell", t("rule.dwell", { minutes: cfg.dwellMinutes })));
  ul.hidden = !ul.firstChild;
}
