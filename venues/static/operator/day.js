// The venue's day: entries per hour beside the same weekday last week, occupancy against capacity and
// capacity alerts, read again every minute. The chart is SVG elements drawn here (no library).
import { $, SVG_NS, apiJson, state } from "./core.js";

// --- dates and times ----------------------------------------------------------------------

function dayText(d) { return d.slice(0, 4) + "-" + d.slice(4, 6) + "-" + d.slice(6, 8); }

export function localTime(iso, withDate) {
  const options = { hour: "2-digit", minute: "2-digit", hour12: false };
  if (withDate) { options.year = "numeric"; options.month = "2-digit"; options.day = "2-digit"; }
  if (state.tz) { options.timeZone = state.tz; }
  try { return new Intl.DateTimeFormat("zh-CN", options).format(new Date(iso)); }
  catch (e) { return iso; }
}

// --- the venue's day ----------------------------------------------------------------------

function svg(name, attrs, parent) {
  const el = document.createElementNS(SVG_NS, name);
  Object.keys(attrs).forEach(function (k) { el.setAttribute(k, String(attrs[k])); });
  if (parent) { parent.appendChild(el); }
  return el;
}

function niceMax(n) {
  if (n <= 4) { return 4; }
  const steps = [5, 10, 20, 25, 50];
  let mag = 1;
  for (;;) {
    for (let i = 0; i < steps.length; i++) {
      if (steps[i] * mag >= n) { return steps[i] * mag; }
    }
    mag *= 10;
  }
}

function drawChart(today, lastWeek, currentHour) {
  const chart = $("day-chart");
  chart.textContent = "";
  const n = today.hours.length;
  const width = Math.max(320, chart.clientWidth || 600);
  const height = 200;
  const left = 34, right = 6, top = 16, bottom = 24;
  chart.setAttribute("viewBox", "0 0 " + width + " " + height);
  chart.setAttribute("width", String(width));
  chart.setAttribute("height", String(height));
  let top_ = 0;
  today.hours.forEach(function (h, i) {
    top_ = Math.max(top_, h.entries, (lastWeek.hours[i] || { entries: 0 }).entries);
  });
  const max = niceMax(top_);
  const plotW = width - left - right, plotH = height - top - bottom;
  const slot = plotW / n;
  const barW = Math.max(2, Math.floor(slot * 0.38));
  [0, max / 2, max].forEach(function (v) {
    const y = top + plotH - (v / max) * plotH;
    svg("line", { x1: left, x2: width - right, y1: y, y2: y, "class": "grid" }, chart);
    const label = svg("text", { x: left - 4, y: y + 4, "text-anchor": "end", "class": "axis" }, chart);
    label.textContent = String(v);
  });
  today.hours.forEach(function (h, i) {
    const past = lastWeek.hours[i] || { hour: h.hour, entries: 0 };
    const x0 = left + i * slot + (slot - 2 * barW - 1) / 2;
    const g = svg("g", {
      "class": "hour" + (h.hour === currentHour ? " now" : ""),
      "data-hour": h.hour, "data-today": h.entries, "data-last-week": past.entries
    }, chart);
    const title = svg("title", {}, g);
    title.textContent = pad(h.hour) + ":00  今日 today " + h.entries + " · 上周 last week " + past.entries;
    const hp = (past.entries / max) * plotH;
    svg("rect", { x: x0, y: top + plotH - hp, width: barW, height: hp, "class": "bar past" }, g);
    const ht = (h.entries / max) * plotH;
    svg("rect", { x: x0 + barW + 1, y: top + plotH - ht, width: barW, height: ht, "class": "bar today" }, g);
    if (h.entries > 0 && slot >= 14) {
      const v = svg("text", { x: x0 + barW * 1.5 + 1, y: top + plotH - ht - 3, "text-anchor": "middle", "class": "value" }, g);
      v.textContent = String(h.entries);
    }
    if (h.hour % 3 === 0) {
      const t = svg("text", { x: left + i * slot + slot / 2, y: height - 8, "text-anchor": "middle", "class": "axis" }, chart);
      t.textContent = pad(h.hour);
    }
  });
}

function pad(n) { return (n < 10 ? "0" : "") + n; }

function renderAlerts(alerts) {
  const list = $("alerts");
  list.textContent = "";
  if (!alerts.length) {
    const none = document.createElement("li");
    none.className = "none muted small";
    none.textContent = "今日没有提醒 No alerts today";
    list.appendChild(none);
    return;
  }
  alerts.forEach(function (a) {
    const li = document.createElement("li");
    li.className = "alert";
    li.dataset.kind = a.kind;
    const when = document.createElement("strong");
    when.textContent = localTime(a.at, false);
    li.appendChild(when);
    const text = a.kind === "capacity_exceeded"
      ? " 超过容量 Over capacity: " + a.occupancy + " / " + a.capacity
      : " " + a.kind;
    li.appendChild(document.createTextNode(text));
    list.appendChild(li);
  });
}

export function renderDay(day) {
  state.day = day;
  state.tz = day.tz;
  $("entries-today").textContent = String(day.today.entries);
  $("entries-day").textContent = dayText(day.today.local_day);
  $("entries-last-week").textContent = String(day.last_week.entries);
  $("last-week-label").textContent = "上周同日 " + dayText(day.last_week.local_day);
  const meter = $("occupancy-meter");
  if (day.occupancy === null || day.occupancy === undefined) {
    $("occupancy").textContent = "-";
    $("capacity").textContent = "未设容量，不计在场人数 No capacity set: not counted";
    meter.hidden = true;
  } else {
    $("occupancy").textContent = String(day.occupancy);
    $("occupancy").className = day.occupancy > day.capacity ? "over" : "";
    $("capacity").textContent = "/ 容量 capacity " + day.capacity;
    const share = day.capacity ? Math.min(1, day.occupancy / day.capacity) : 0;
    $("occupancy-bar").style.width = (share * 100).toFixed(1) + "%";
    meter.className = "meter" + (day.occupancy > day.capacity ? " over" : share >= 0.8 ? " near" : "");
    meter.hidden = false;
  }
  const nowHour = Number(localTime(day.as_of, false).slice(0, 2));
  drawChart(day.today, day.last_week, nowHour);
  renderAlerts(day.alerts);
  $("day-updated").textContent = "更新于 Updated " + localTime(day.as_of, false) + " · 每分钟刷新 refreshed every minute";
}

export function loadDay(venueId) {
  return apiJson("/v1/venues/" + venueId + "/day").then(function (day) {
    if (state.venue && state.venue.venue_id === venueId) { renderDay(day); }
  });
}
