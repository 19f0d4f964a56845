// Words by key in the chosen language, and times in the configured zone.
import { state } from "./state.js";
import { cfg } from "./config.js";
import { M } from "./words.js";

export function t(key, vars) {
  const pair = M[key];
  let text = pair ? pair[state.lang === "en" ? 1 : 0] : key;
  if (vars) {
    text = text.replace(/\{(\w+)\}/g, function (all, name) {
      return vars[name] !== undefined ? String(vars[name]) : all;
    });
  }
  return text;
}

// ---- time --------------------------------------------------------------------------------------
function makeFormatter(opts) {
  const locale = state.lang === "en" ? "en-GB" : "zh-CN";
  const o = {};
  for (const k in opts) o[k] = opts[k];
  o.timeZone = cfg.tz;
  try {
    return new Intl.DateTimeFormat(locale, o);
  } catch (e) {
    delete o.timeZone;
    return new Intl.DateTimeFormat(locale, o);
  }
}
const formatters = {};
export function resetFormatters() {
  formatters.full = makeFormatter({
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  formatters.short = makeFormatter({ month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  formatters.clock = makeFormatter({ hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  formatters.weekday = (function () {
    try {
      return new Intl.DateTimeFormat("en-US", { weekday: "short", timeZone: cfg.tz });
    } catch (e) {
      return new Intl.DateTimeFormat("en-US", { weekday: "short" });
    }
  })();
}
export function asDate(value) {
  const d = value instanceof Date ? value : new Date(value);
  return isNaN(d.getTime()) ? null : d;
}
export function fmt(kind, value) {
  if (!value) return "";
  const d = asDate(value);
  return d ? formatters[kind].format(d) : String(value);
}
export function formatInstant(value) {
  return fmt("full", value);
}
export function duration(ms) {
  const minutes = Math.floor(Math.max(0, ms) / 60000);
  if (minutes < 1) return t("dur.under");
  if (minutes < 60) return t("dur.min", { m: minutes });
  return t("dur.hour", { h: Math.floor(minutes / 60), m: minutes % 60 });
}
/** The colour of the day in the venue's zone (by weekday: one poster at the door names all seven). */
export function dayIndex(now) {
  const names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const i = names.indexOf(formatters.weekday.format(now));
  return i < 0 ? now.getDay() : i;
}
