// venue-checkin console: tracer and analyst views over the tracing API, in Chinese or English.
// Everything is rendered with textContent / SVG attributes (never innerHTML with data).
"use strict";

const KEY_STORE = "checkin.console.key";
const LANG_STORE = "checkin.console.lang";
const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f6feb", "#d97706", "#059669", "#b42318", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f",
  "#92400e", "#475569"];
const LEVELS = ["community", "street", "district", "city"];
const OUTCOMES = ["handled", "isolated", "tested", "referred", "false_alarm", "duplicate"];
const state = {
  key: "", who: null, lang: "en", alertsAbort: null, lastTrace: null, traceBody: null, lastEventId: "",
  venueNames: new Map(), view: "",
};

const I18N = {
  en: {
    title: "venue-checkin console", "tab.tracer": "Tracer", "tab.analyst": "Analyst", lang: "Language",
    signout: "Sign out", "signin.title": "Sign in", "signin.key": "API key", "signin.go": "Sign in",
    "signin.bad": "Unknown or revoked key.",
    "trace.title": "Contact trace", "find.query": "ID number or phone", "find.go": "Find person",
    "find.none": "Nobody registered with this ID number or phone (in your jurisdiction).",
    "find.pick": "Trace", "find.need": "Enter an ID number or a phone number, and a reason below.",
    "trace.person": "Person id", "trace.since": "From", "trace.until": "To", "trace.depth": "Depth",
    "trace.min": "Min overlap (minutes)", "trace.limit": "Rows per page", "trace.reason": "Reason (audited)",
    "trace.go": "Trace", "trace.running": "Tracing…", "trace.badperson": "Person id must be a number.",
    "trace.summary": "{contacts} contact(s), {second} second-degree, from {stays} stay(s) of person {person}",
    "trace.paged": "; showing rows {from}–{to} of each list",
    "timeline.title": "Timeline of stays", "timeline.none": "No stays in this window.",
    "contacts.title": "Contacts", "contacts.none": "No contacts.", "graph.title": "Contact graph",
    "graph.more": "{n} more contact(s) not drawn; the table lists them a page at a time.",
    "graph.legend": "Red: the person traced; orange: first degree; blue: second degree, joined to the contacts it was met through.",
    "exposure.title": "Exposure screening", "exposure.add": "Add site", "exposure.go": "Screen",
    "exposure.csv": "Download CSV", "exposure.none": "Nobody exposed.", "exposure.remove": "Remove",
    "exposure.nosite": "Add at least one site: venue id, from, to.",
    "flag.title": "Flag an exposure site", "flag.level": "Notice level",
    "flag.message": "Message to the exposed (optional)", "flag.go": "Flag site",
    "flag.done": "Site {site} flagged at {venue} ({level}); the exposed are being told.",
    "level.inform": "Inform", "level.test": "Get tested", "level.isolate": "Isolate",
    "col.start": "Start", "col.end": "End", "col.venue": "Venue", "col.venue_id": "Venue id",
    "col.community": "Community", "col.status": "Status", "col.verdict": "Verdict", "col.person": "Person",
    "col.name": "Name", "col.degree": "Degree", "col.overlap": "Overlap (min)", "col.first": "First contact",
    "col.venues": "Venues", "col.via": "Via", "col.first_at": "First at", "col.at": "At", "col.kind": "Kind",
    "col.severity": "Severity", "col.district": "District", "col.level": "Level", "col.due": "Due",
    "col.scans": "Scans", "col.persons": "Persons",
    phone: "Phone", "phone.of": "Person {person}: {name}, {phone}", "phone.err": "Contact details of {person}: {err}",
    "queue.title": "Alert queue", "queue.level": "Level", "queue.state": "Show",
    "queue.waiting": "Waiting for ack", "queue.acked": "Acknowledged, open", refresh: "Refresh",
    "queue.summary": "{n} alert(s) at the {level} level, oldest first; {overdue} overdue. Unacknowledged alerts move up after {minutes} min.",
    "queue.empty": "Nothing waiting here.", "queue.overdue": "overdue", ack: "Acknowledge", resolve: "Resolve",
    "acktime.title": "Time to acknowledge (last 7 days)", "acktime.count": "Acknowledged",
    "acktime.median": "Median", "acktime.p90": "90th percentile",
    "lvl.community": "Community", "lvl.street": "Street", "lvl.district": "District", "lvl.city": "City",
    "out.handled": "Handled", "out.isolated": "Isolated", "out.tested": "Sent to test", "out.referred": "Referred",
    "out.false_alarm": "False alarm", "out.duplicate": "Duplicate",
    "alerts.title": "Live alerts", "alerts.live": "Live.", "alerts.history": "History unavailable: {err}",
    "alerts.retry": "Live feed unavailable ({err}); retrying…",
    "charts.title": "Scans per hour by district (last 24 h)",
    "err.date": "Enter a date and time in both fields.", "err.order": "From must be before To.",
    "scope": "scope", zone: "time zone",
    "kind.red_code_entry": "red code entry", "kind.yellow_code_entry": "yellow code entry",
    "kind.test_expired_entry": "test expired", "kind.watchlist_entry": "watchlist entry",
    "kind.exposure_site_visit": "exposure site visit", "kind.capacity_exceeded": "over capacity",
    "kind.impossible_travel": "impossible travel", "kind.remote_scan": "remote scan",
    "sev.info": "info", "sev.warning": "warning", "sev.critical": "critical",
  },
  "zh-CN": {
    title: "场所码指挥台", "tab.tracer": "流调", "tab.analyst": "研判", lang: "语言",
    signout: "退出", "signin.title": "登录", "signin.key": "API 密钥", "signin.go": "登录",
    "signin.bad": "密钥无效或已吊销。",
    "trace.title": "密接追踪", "find.query": "身份证号或手机号", "find.go": "查找人员",
    "find.none": "（本辖区内）没有以该身份证号或手机号登记的人员。",
    "find.pick": "追踪", "find.need": "请输入身份证号或手机号，并在下方填写事由。",
    "trace.person": "人员编号", "trace.since": "开始", "trace.until": "结束", "trace.depth": "层级",
    "trace.min": "最短重叠（分钟）", "trace.limit": "每页行数", "trace.reason": "事由（记入审计）",
    "trace.go": "追踪", "trace.running": "追踪中…", "trace.badperson": "人员编号必须是数字。",
    "trace.summary": "人员 {person} 的 {stays} 次停留：密接 {contacts} 人，次密接 {second} 人",
    "trace.paged": "；每个名单显示第 {from}–{to} 行",
    "timeline.title": "停留时间线", "timeline.none": "该时段内没有停留记录。",
    "contacts.title": "密接人员", "contacts.none": "没有密接人员。", "graph.title": "密接关系图",
    "graph.more": "另有 {n} 人未画出；表格分页列出全部。",
    "graph.legend": "红色：被追踪者；橙色：密接；蓝色：次密接，连线指向其经由的密接。",
    "exposure.title": "暴露筛查", "exposure.add": "添加场所", "exposure.go": "筛查",
    "exposure.csv": "下载 CSV", "exposure.none": "无暴露人员。", "exposure.remove": "删除",
    "exposure.nosite": "请至少添加一个场所：场所编号、开始、结束。",
    "flag.title": "标记风险场所", "flag.level": "通知级别",
    "flag.message": "给暴露人员的提示（可选）", "flag.go": "标记场所",
    "flag.done": "已标记场所 {venue}（{level}），编号 {site}；正在通知暴露人员。",
    "level.inform": "告知", "level.test": "请核酸检测", "level.isolate": "请居家隔离",
    "col.start": "开始", "col.end": "结束", "col.venue": "场所", "col.venue_id": "场所编号",
    "col.community": "社区", "col.status": "码色", "col.verdict": "核验", "col.person": "人员",
    "col.name": "姓名", "col.degree": "层级", "col.overlap": "重叠（分钟）", "col.first": "首次接触",
    "col.venues": "场所", "col.via": "经由", "col.first_at": "首次到场", "col.at": "时间", "col.kind": "类型",
    "col.severity": "严重程度", "col.district": "区", "col.level": "级别", "col.due": "升级时间",
    "col.scans": "扫码", "col.persons": "人数",
    phone: "电话", "phone.of": "人员 {person}：{name}，{phone}", "phone.err": "人员 {person} 的联系方式：{err}",
    "queue.title": "预警待办", "queue.level": "级别", "queue.state": "显示",
    "queue.waiting": "待签收", "queue.acked": "已签收未办结", refresh: "刷新",
    "queue.summary": "{level}级共 {n} 条预警，按时间先后；超时 {overdue} 条。未签收的预警 {minutes} 分钟后上报上一级。",
    "queue.empty": "暂无待办。", "queue.overdue": "超时", ack: "签收", resolve: "办结",
    "acktime.title": "签收用时（近 7 天）", "acktime.count": "已签收",
    "acktime.median": "中位数", "acktime.p90": "90 分位",
    "lvl.community": "社区", "lvl.street": "街道", "lvl.district": "区", "lvl.city": "市",
    "out.handled": "已处置", "out.isolated": "已隔离", "out.tested": "已安排检测", "out.referred": "已转办",
    "out.false_alarm": "误报", "out.duplicate": "重复",
    "alerts.title": "实时预警", "alerts.live": "实时连接中。", "alerts.history": "历史预警不可用：{err}",
    "alerts.retry": "实时预警中断（{err}），正在重连…",
    "charts.title": "各区每小时扫码量（近 24 小时）",
    "err.date": "请在两个时间框中都填写日期和时间。", "err.order": "开始时间必须早于结束时间。",
    "scope": "辖区", zone: "时区",
    "kind.red_code_entry": "红码进入", "kind.yellow_code_entry": "黄码进入",
    "kind.test_expired_entry": "核酸过期", "kind.watchlist_entry": "重点人员进入",
    "kind.exposure_site_visit": "到访风险场所", "kind.capacity_exceeded": "超员",
    "kind.impossible_travel": "轨迹异常", "kind.remote_scan": "异地扫码",
    "sev.info": "提示", "sev.warning": "警告", "sev.critical": "严重",
  },
};

const $ = (id) => document.getElementById(id);

function t(key, vars) {
  const table = I18N[state.lang] || I18N.en;
  let text = table[key] ?? I18N.en[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) text = text.replaceAll(`{${k}}`, String(v));
  return text;
}

function chooseLang() {
  const saved = localStorage.getItem(LANG_STORE);
  if (saved && I18N[saved]) return saved;
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ""];
  return wanted.some((l) => String(l).toLowerCase().startsWith("zh")) ? "zh-CN" : "en";
}

function applyLang(lang) {
  state.lang = lang;
  document.documentElement.lang = lang;
  $("lang").value = lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  document.title = t("title");
  showZone();
  showWho();
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "onclick") node.addEventListener("click", v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

// --- time: every instant on the wire is UTC; the page shows and takes the configured zone -------------

function zone() { return (state.who && state.who.tz) || "UTC"; }

function zoneOffsetMs(ms) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone(), hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(ms));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const wall = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return wall - Math.floor(ms / 1000) * 1000;
}

function offsetLabel(ms) {
  const minutes = Math.round(zoneOffsetMs(ms) / 60000), sign = minutes < 0 ? "-" : "+", abs = Math.abs(minutes);
  return `UTC${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

function showZone() {
  const label = `${t("zone")}: ${zone()} (${offsetLabel(Date.now())})`;
  for (const node of document.querySelectorAll(".tz")) node.textContent = label;
}

// "YYYY-MM-DDTHH:MM" of a datetime-local picker, read as wall time in the zone -> RFC 3339 UTC
function pickerToIso(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value || "");
  if (!m) throw new Error(t("err.date"));
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  let ms = wall - zoneOffsetMs(wall);
  ms = wall - zoneOffsetMs(ms);
  return new Date(ms).toISOString();
}

function msToPicker(ms) {
  return new Date(ms + zoneOffsetMs(ms)).toISOString().slice(0, 16);
}

function window2(sinceId, untilId) {
  const since = pickerToIso($(sinceId).value), until = pickerToIso($(untilId).value);
  if (Date.parse(since) >= Date.parse(until)) throw new Error(t("err.order"));
  return [since, until];
}

function localTime(iso) {
  if (!iso) return "";
  try {
    return new Intl.DateTimeFormat("sv-SE", {
      timeZone: zone(), year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    }).format(new Date(iso));
  } catch (e) {
    return iso;
  }
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  opts.headers = Object.assign({ Authorization: "Bearer " + state.key }, opts.headers);
  if (opts.json !== undefined) {
    opts.body = JSON.stringify(opts.json);
    opts.headers["Content-Type"] = "application/json";
    delete opts.json;
  }
  const resp = await fetch(path, opts);
  if (!resp.ok) {
    let detail = resp.status + " " + resp.statusText;
    try { const body = await resp.json(); detail = body.detail || detail; } catch (e) { /* not JSON */ }
    throw new ApiError(resp.status, detail);
  }
  return resp;
}

function fillTable(table, rows) {
  table.querySelector("tbody").replaceChildren(...rows);
}

function rememberVenues(names) {
  for (const [id, name] of Object.entries(names || {})) if (name) state.venueNames.set(Number(id), name);
}

function venueLabel(id) {
  const name = state.venueNames.get(Number(id));
  return name ? `${name} (${id})` : String(id);
}

// --- sign in ------------------------------------------------------------------------------------

function showWho() {
  if (!state.who) return;
  const w = state.who;
  $("who").textContent = `${w.key_id} (${w.role}${w.scope ? `, ${t("scope")} ${w.scope}` : ""})`;
}

async function signIn(key) {
  state.key = key;
  const resp = await api("/console/whoami");
  state.who = await resp.json();
  sessionStorage.setItem(KEY_STORE, key);
  $("api-key").value = "";
  $("tabs").hidden = false;
  $("logout").hidden = false;
  showWho();
  showZone();
  const now = Date.now();
  $("trace-since").value = msToPicker(now - 14 * 86400000);
  $("trace-until").value = msToPicker(now + 3600000);
  $("flag-since").value = msToPicker(now - 86400000);
  $("flag-until").value = msToPicker(now);
  if (!$("exposure-sites").children.length) addSiteRow();
  $("queue-level").value = levelOf(state.who.scope || "");
  showView(state.who.role === "analyst" ? "analyst" : "tracer");
}

function levelOf(scope) {
  return scope.length >= 12 ? "community" : scope.length >= 9 ? "street" : scope.length >= 6 ? "district" : "city";
}

function signOut() {
  sessionStorage.removeItem(KEY_STORE);
  if (state.alertsAbort) state.alertsAbort.abort();
  location.reload();
}

// Exactly one view is visible: sign-in until a key is accepted, then the chosen tab's.
function showView(name) {
  state.view = name;
  for (const tab of document.querySelectorAll("nav .tab")) tab.classList.toggle("active", tab.dataset.view === name);
  $("login-view").hidden = name !== "login";
  $("tracer-view").hidden = name !== "tracer";
  $("analyst-view").hidden = name !== "analyst";
  if (name === "analyst") {
    loadCharts();
    loadQueue().finally(startAlerts);  // the queue brings venue names the feed's rows then show
  }
}

// --- tracer: find a person ------------------------------------------------------------------------

async function findPerson(ev) {
  ev.preventDefault();
  const box = $("find-results");
  box.replaceChildren();
  $("trace-error").textContent = "";
  const query = $("find-query").value.trim();
  const reason = $("trace-reason").value.trim();
  if (!query || !reason) { $("trace-error").textContent = t("find.need"); return; }
  const digits = query.replace(/[\s-]/g, "");
  const body = /^\d{17}[\dXx]$/.test(digits) ? { id_number: digits, reason } : { phone: query, reason };
  try {
    const found = await (await api("/v1/trace/persons/lookup", { method: "POST", json: body })).json();
    if (!found.matches.length) { box.append(el("span", { class: "note" }, t("find.none"))); return; }
    for (const m of found.matches) {
      box.append(el("button", {
        type: "button", class: "small secondary", "data-person-id": String(m.person_id),
        onclick: () => { $("trace-person").value = String(m.person_id); $("trace-run").click(); },
      }, `${t("find.pick")} ${m.person_id}${m.name ? " " + m.name : ""}`));
    }
    if (found.matches.length === 1) $("trace-person").value = String(found.matches[0].person_id);
  } catch (err) {
    $("trace-error").textContent = err.message;
  }
}

// --- tracer: contacts, timeline, graph ------------------------------------------------------------

function clearTrace() {
  state.lastTrace = null;
  for (const id of ["visits-table", "contacts-table"]) fillTable($(id), []);
  for (const id of ["timeline-chart", "graph", "contacts-pager"]) $(id).replaceChildren();
  $("contact-details").textContent = "";
  $("trace-summary").textContent = "";
}

async function runTrace(ev) {
  ev.preventDefault();
  $("trace-error").textContent = "";
  clearTrace();  // nothing of an earlier person stays on screen, whatever happens next
  const person = $("trace-person").value.trim();
  try {
    if (!/^\d+$/.test(person)) throw new Error(t("trace.badperson"));
    const [since, until] = window2("trace-since", "trace-until");
    const body = {
      person_id: Number(person), since, until,
      depth: Number($("trace-depth").value),
      min_overlap_minutes: Number($("trace-min").value || 15),
      limit: Number($("trace-limit").value || 1000),
      reason: $("trace-reason").value.trim(),
    };
    $("trace-summary").textContent = t("trace.running");
    const qs = new URLSearchParams({ since: body.since, until: body.until, reason: body.reason });
    const [visits, contacts] = await Promise.all([
      api(`/v1/trace/persons/${person}/visits?${qs}`).then((r) => r.json()),
      fetchContacts(body, 0),
    ]);
    renderVisits(visits);
    renderTrace(contacts);
  } catch (err) {
    clearTrace();
    $("trace-error").textContent = err.message;
  }
}

async function fetchContacts(body, offset) {
  const contacts = await (await api("/v1/trace/contacts", { method: "POST", json: { ...body, offset } })).json();
  state.traceBody = body;
  return contacts;
}

// Both contact lists come a page at a time (the server's default limit), largest overlap first.
function renderTrace(contacts) {
  state.lastTrace = contacts;
  rememberVenues(contacts.venue_names);
  renderContacts(contacts);
  renderGraph(contacts);
  renderPager(contacts);
  let summary = t("trace.summary", {
    contacts: contacts.contacts_total, second: contacts.second_degree_total, stays: contacts.index_stays,
    person: contacts.person_id + (contacts.person_name ? ` ${contacts.person_name}` : ""),
  });
  const largest = Math.max(contacts.contacts_total, contacts.second_degree_total);
  if (largest > contacts.limit) {
    summary += t("trace.paged", { from: contacts.offset + 1, to: Math.min(contacts.offset + contacts.limit, largest) });
  }
  $("trace-summary").textContent = summary;
}

function renderPager(data) {
  const box = $("contacts-pager");
  box.replaceChildren();
  const largest = Math.max(data.contacts_total, data.second_degree_total);
  if (largest <= data.limit) return;
  const go = (offset) => fetchContacts(state.traceBody, offset).then(renderTrace).catch((err) => {
    clearTrace();
    $("trace-error").textContent = err.message;
  });
  const prev = el("button", { type: "button", class: "small", id: "contacts-prev", onclick: () => go(Math.max(0, data.offset - data.limit)) }, "‹");
  const next = el("button", { type: "button", class: "small", id: "contacts-next", onclick: () => go(data.offset + data.limit) }, "›");
  prev.disabled = data.offset === 0;
  next.disabled = data.offset + data.limit >= largest;
  box.append(prev, " ", next);
}

function renderVisits(data) {
  for (const v of data.visits) if (v.venue_name) state.venueNames.set(v.venue_id, v.venue_name);
  fillTable($("visits-table"), data.visits.map((v) => el("tr", { "data-checkin-id": v.checkin_id },
    el("td", {}, localTime(v.at)), el("td", {}, localTime(v.end_at)), el("td", {}, v.venue_name || ""),
    el("td", {}, v.venue_id), el("td", {}, v.community), el("td", {}, v.status), el("td", {}, v.verdict))));
  const box = $("timeline-chart");
  box.replaceChildren();
  if (!data.visits.length) { box.append(el("p", { class: "note" }, t("timeline.none"))); return; }
  // zoomed to the stays (not the whole query window), one lane per venue labelled by its name
  const starts = data.visits.map((v) => Date.parse(v.at)), ends = data.visits.map((v) => Date.parse(v.end_at));
  let t0 = Math.min(...starts), t1 = Math.max(...ends);
  const pad = Math.max((t1 - t0) * 0.03, 15 * 60000);
  t0 -= pad; t1 += pad;
  const venues = [...new Set(data.visits.map((v) => v.venue_id))];
  // drawn at the box's own width, so labels keep their size on a phone
  const width = Math.max(320, Math.round(box.clientWidth || 1000));
  const left = Math.min(200, Math.round(width * 0.34)), right = 16, laneH = 30, top = 8, axis = 34;
  const height = top + venues.length * laneH + axis;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", id: "timeline-svg" });
  const x = (ms) => left + ((ms - t0) / (t1 - t0)) * (width - left - right);
  venues.forEach((venue, i) => {
    const y = top + i * laneH;
    root.append(svg("rect", { x: left, y, width: width - left - right, height: laneH - 4, fill: i % 2 ? "#f6f8fa" : "#eef2f6" }));
    const name = state.venueNames.get(venue) || String(venue);
    const room = Math.max(6, Math.floor((left - 12) / 12));
    const label = svg("text", { x: left - 8, y: y + laneH / 2 + 2, "text-anchor": "end", class: "lane", "data-venue-id": String(venue) },
      name.length > room ? name.slice(0, room - 1) + "…" : name);
    label.append(svg("title", {}, `${name} (${venue})`));
    root.append(label);
  });
  for (const v of data.visits) {
    const i = venues.indexOf(v.venue_id);
    const a = x(Date.parse(v.at)), b = Math.max(x(Date.parse(v.end_at)), a + 6);
    const rect = svg("rect", { x: a, y: top + i * laneH + 3, width: b - a, height: laneH - 10, rx: 3,
      fill: PALETTE[i % PALETTE.length], "data-checkin-id": v.checkin_id });
    rect.append(svg("title", {}, `${v.venue_name || v.venue_id}: ${localTime(v.at)} – ${localTime(v.end_at)}`));
    root.append(rect);
  }
  const ticks = Math.max(1, Math.min(6, Math.floor((width - left - right) / 110))), axisY = top + venues.length * laneH + 14;
  for (let k = 0; k <= ticks; k++) {
    const ms = t0 + ((t1 - t0) * k) / ticks, px = x(ms);
    root.append(svg("line", { x1: px, y1: top, x2: px, y2: axisY - 10, stroke: "#c8d0d9", "stroke-dasharray": "2 3" }));
    root.append(svg("text", { x: px, y: axisY + 4, "text-anchor": k === 0 ? "start" : k === ticks ? "end" : "middle" },
      localTime(new Date(ms).toISOString()).slice(5)));
  }
  box.append(root);
}

function venuesText(ids) {
  return ids.map(venueLabel).join(", ");
}

function phoneButton(personId, boxId) {
  return el("button", { class: "small secondary", type: "button", "data-phone-for": String(personId),
    onclick: () => showDetails(personId, boxId) }, t("phone"));
}

function contactRow(c, degree) {
  return el("tr", { "data-person-id": String(c.person_id), "data-degree": String(degree) },
    el("td", { class: "person-id" }, c.person_id), el("td", {}, c.name || ""), el("td", {}, degree),
    el("td", {}, (c.overlap_seconds / 60).toFixed(1)), el("td", {}, localTime(c.first_contact_at)),
    el("td", {}, venuesText(c.venue_ids)), el("td", {}, (c.via || []).join(", ")),
    el("td", {}, phoneButton(c.person_id, "contact-details")));
}

function renderContacts(data) {
  const rows = data.contacts.map((c) => contactRow(c, 1)).concat(data.second_degree.map((c) => contactRow(c, 2)));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 8, class: "note" }, t("contacts.none"))));
  fillTable($("contacts-table"), rows);
  $("contact-details").textContent = "";
}

async function showDetails(personId, boxId) {
  const reason = $(boxId === "exposure-details" ? "exposure-reason" : "trace-reason").value.trim();
  const box = $(boxId);
  box.textContent = "";
  try {
    const qs = new URLSearchParams({ reason });
    const d = await (await api(`/v1/trace/persons/${personId}/contact-details?${qs}`)).json();
    box.textContent = t("phone.of", { person: d.person_id, name: d.name, phone: d.phone });
  } catch (err) {
    box.textContent = t("phone.err", { person: personId, err: err.message });
  }
}

// Layout: the index person in the middle, first-degree contacts on a ring, each second-degree contact
// further out at the mean angle of the contacts it was met through; every edge is index -> first
// degree or via -> second degree, nothing else (so no line suggests a contact that is not in `via`).
function renderGraph(data) {
  const box = $("graph");
  box.replaceChildren();
  const size = Math.min(560, Math.max(300, Math.round(box.clientWidth || 560))), cx = size / 2, cy = size / 2;
  const unit = size / 560;
  const root = svg("svg", { viewBox: `0 0 ${size} ${size}`, width: "100%", role: "img", id: "graph-svg" });
  root.style.maxWidth = size + "px";
  const pos = new Map(), angles = new Map();
  pos.set(data.person_id, [cx, cy]);
  const first = data.contacts.slice(0, 60), second = data.second_degree.slice(0, 120);
  first.forEach((c, i) => {
    const angle = (2 * Math.PI * i) / Math.max(first.length, 1) - Math.PI / 2;
    angles.set(c.person_id, angle);
    pos.set(c.person_id, [cx + 130 * unit * Math.cos(angle), cy + 130 * unit * Math.sin(angle)]);
  });
  // second degree: grouped by their via contacts, spread a little around the group's angle
  const groups = new Map();
  second.forEach((c) => {
    const via = (c.via || []).filter((v) => angles.has(v));
    const key = via.join(",");
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(c);
  });
  let spare = 0;
  for (const [key, members] of groups) {
    const via = key ? key.split(",").map(Number) : [];
    let base;
    if (via.length) {
      const sx = via.reduce((s, v) => s + Math.cos(angles.get(v)), 0), sy = via.reduce((s, v) => s + Math.sin(angles.get(v)), 0);
      base = Math.atan2(sy, sx);
    } else {
      base = Math.PI / 2 + spare++ * 0.4;
    }
    const spread = Math.min(0.5, (2 * Math.PI) / Math.max(first.length * 2, 6));
    members.forEach((c, j) => {
      const offset = members.length === 1 ? 0 : ((j / (members.length - 1)) - 0.5) * spread;
      const radius = (235 - (j % 2) * 22) * unit;
      pos.set(c.person_id, [cx + radius * Math.cos(base + offset), cy + radius * Math.sin(base + offset)]);
    });
  }
  const edges = svg("g", { stroke: "#9aa4af" }), nodes = svg("g", {});
  const edge = (a, b, w, colour) => {
    const p = pos.get(a), q = pos.get(b);
    if (!p || !q) return;
    edges.append(svg("line", { x1: p[0], y1: p[1], x2: q[0], y2: q[1], "stroke-width": w, stroke: colour,
      "data-from": String(a), "data-to": String(b) }));
  };
  for (const c of first) edge(data.person_id, c.person_id, 1 + Math.min(4, c.overlap_seconds / 3600), "#d97706");
  for (const c of second) for (const v of c.via || []) edge(v, c.person_id, 1.2, "#1f6feb");
  const node = (id, r, fill, name) => {
    const [x, y] = pos.get(id);
    const g = svg("g", { "data-person-id": String(id) });
    g.append(svg("circle", { cx: x, cy: y, r, fill, stroke: "#fff", "stroke-width": 1.5 }),
      svg("text", { x: x + r + 4, y: y + 4, "text-anchor": x > cx + 150 * unit ? "end" : "start", dx: x > cx + 150 * unit ? -(2 * r + 8) : 0 },
        name ? `${id} ${name}` : id));
    g.append(svg("title", {}, name ? `${id} ${name}` : String(id)));
    nodes.append(g);
  };
  node(data.person_id, 12, "#b42318", data.person_name);
  first.forEach((c) => node(c.person_id, 8, "#d97706", c.name));
  second.forEach((c) => node(c.person_id, 6, "#1f6feb", c.name));
  root.append(edges, nodes);
  box.append(root, el("p", { class: "note" }, t("graph.legend")));
  const hidden = data.contacts_total - first.length + data.second_degree_total - second.length;
  if (hidden > 0) box.append(el("p", { class: "note" }, t("graph.more", { n: hidden })));
}

// --- tracer: exposure screening and flagging a site ------------------------------------------------------

function addSiteRow(venue, sinceMs, untilMs) {
  const now = Date.now();
  const row = el("div", { class: "site-row" },
    el("label", {}, el("span", { "data-i18n": "col.venue_id" }, t("col.venue_id")), el("input", { class: "site-venue", inputMode: "numeric", value: venue ? String(venue) : "" })),
    el("label", {}, el("span", { "data-i18n": "trace.since" }, t("trace.since")), el("input", { class: "site-since", type: "datetime-local", value: msToPicker(sinceMs ?? now - 86400000) })),
    el("label", {}, el("span", { "data-i18n": "trace.until" }, t("trace.until")), el("input", { class: "site-until", type: "datetime-local", value: msToPicker(untilMs ?? now) })),
    el("button", { type: "button", class: "small secondary", "data-i18n": "exposure.remove", onclick: () => row.remove() },
      t("exposure.remove")));
  $("exposure-sites").append(row);
  return row;
}

function exposureBody() {
  const sites = [];
  for (const row of $("exposure-sites").querySelectorAll(".site-row")) {
    const venue = row.querySelector(".site-venue").value.trim();
    if (!venue) continue;
    if (!/^\d+$/.test(venue)) throw new Error(`${t("col.venue_id")}: ${venue}`);
    const since = pickerToIso(row.querySelector(".site-since").value), until = pickerToIso(row.querySelector(".site-until").value);
    if (Date.parse(since) >= Date.parse(until)) throw new Error(t("err.order"));
    sites.push({ venue_id: Number(venue), since, until });
  }
  if (!sites.length) throw new Error(t("exposure.nosite"));
  return { sites, reason: $("exposure-reason").value.trim() };
}

async function runExposures(ev) {
  ev.preventDefault();
  $("exposure-error").textContent = "";
  $("exposure-details").textContent = "";
  fillTable($("exposures-table"), []);
  try {
    const data = await (await api("/v1/trace/exposures", { method: "POST", json: exposureBody() })).json();
    rememberVenues(data.venue_names);
    const rows = data.exposures.map((e) => el("tr", { "data-person-id": String(e.person_id) },
      el("td", {}, e.person_id), el("td", {}, e.name || ""), el("td", {}, localTime(e.first_at)),
      el("td", {}, venuesText(e.venue_ids)), el("td", {}, phoneButton(e.person_id, "exposure-details"))));
    if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 5, class: "note" }, t("exposure.none"))));
    fillTable($("exposures-table"), rows);
  } catch (err) {
    $("exposure-error").textContent = err.message;
  }
}

async function downloadCsv() {
  $("exposure-error").textContent = "";
  try {
    const resp = await api("/v1/trace/exposures?format=csv", { method: "POST", json: exposureBody() });
    const url = URL.createObjectURL(await resp.blob());
    const link = el("a", { href: url, download: "exposures.csv" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    $("exposure-error").textContent = err.message;
  }
}

async function flagSite(ev) {
  ev.preventDefault();
  $("flag-error").textContent = "";
  $("flag-result").textContent = "";
  try {
    const venue = $("flag-venue").value.trim();
    if (!/^\d+$/.test(venue)) throw new Error(`${t("col.venue_id")}: ${venue}`);
    const [since, until] = window2("flag-since", "flag-until");
    const body = { venue_id: Number(venue), since, until, level: $("flag-level").value, reason: $("flag-reason").value.trim() };
    const message = $("flag-message").value.trim();
    if (message) body.message = message;
    const site = await (await api("/v1/exposure-sites", { method: "POST", json: body })).json();
    $("flag-result").textContent = t("flag.done", { site: site.site_id, venue: venueLabel(site.venue_id), level: t("level." + (site.level || body.level)) });
  } catch (err) {
    $("flag-error").textContent = err.message;
  }
}

// --- analyst: the queue of the caller's level, ack and resolve ------------------------------------------

async function loadQueue(ev) {
  if (ev) ev.preventDefault();
  $("queue-error").textContent = "";
  const level = $("queue-level").value, which = $("queue-state").value;
  try {
    const qs = new URLSearchParams({ level, state: which });
    const q = await (await api(`/v1/alerts/queue?${qs}`)).json();
    for (const item of q.alerts) if (item.venue_name) state.venueNames.set(item.alert.venue_id, item.venue_name);
    const rows = q.alerts.map(queueRow);
    if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 8, class: "note" }, t("queue.empty"))));
    fillTable($("queue-table"), rows);
    $("queue-summary").textContent = t("queue.summary", {
      n: q.count, level: t("lvl." + q.level), overdue: q.alerts.filter((i) => i.overdue).length,
      minutes: Math.round(q.escalation_s / 6) / 10,
    });
    fillTable($("acktime-table"), q.ack_times.map((a) => el("tr", { "data-level": a.level },
      el("td", {}, t("lvl." + a.level)), el("td", {}, a.acked),
      el("td", {}, a.acked ? duration(a.median_s) : "–"), el("td", {}, a.acked ? duration(a.p90_s) : "–"))));
  } catch (err) {
    fillTable($("queue-table"), []);
    $("queue-summary").textContent = "";
    $("queue-error").textContent = err.message;
  }
}

function duration(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function queueRow(item) {
  const a = item.alert;
  const actions = el("div", { class: "disposition" });
  if (!a.acked) {
    actions.append(el("button", { type: "button", class: "small", "data-action": "ack", onclick: () => ackAlert(a.alert_id) }, t("ack")));
  }
  const outcome = el("select", { class: "outcome" });
  for (const o of OUTCOMES) outcome.append(el("option", { value: o }, t("out." + o)));
  actions.append(outcome, el("button", { type: "button", class: "small secondary", "data-action": "resolve",
    onclick: () => resolveAlert(a.alert_id, outcome.value) }, t("resolve")));
  const due = el("td", {}, localTime(item.due_at));
  if (item.overdue) due.append(el("span", { class: "badge" }, t("queue.overdue")));
  return el("tr", { "data-alert-id": a.alert_id, class: item.overdue ? "overdue" : "" },
    el("td", {}, localTime(a.at)), el("td", { "data-kind": a.kind }, t("kind." + a.kind)), el("td", { class: "sev-" + a.severity }, t("sev." + a.severity)),
    el("td", {}, venueLabel(a.venue_id)), el("td", {}, a.community), el("td", {}, t("lvl." + a.level)), due,
    el("td", {}, actions));
}

async function ackAlert(id) {
  $("queue-error").textContent = "";
  try {
    await api(`/v1/alerts/${encodeURIComponent(id)}/ack`, { method: "POST" });
    await loadQueue();
  } catch (err) {
    $("queue-error").textContent = err.message;
  }
}

async function resolveAlert(id, outcome) {
  $("queue-error").textContent = "";
  try {
    await api(`/v1/alerts/${encodeURIComponent(id)}/resolve`, { method: "POST", json: { outcome } });
    await loadQueue();
  } catch (err) {
    $("queue-error").textContent = err.message;
  }
}

// --- analyst: live alerts (SSE over fetch, so the key travels in a header) and charts -----------------------

function alertRow(a) {
  return el("tr", { "data-alert-id": a.alert_id || "", "data-level": a.level || "community" },
    el("td", {}, localTime(a.at)), el("td", { "data-kind": a.kind }, t("kind." + a.kind)),
    el("td", { class: "sev-" + a.severity }, t("sev." + a.severity)), el("td", {}, a.person_id ?? ""),
    el("td", {}, venueLabel(a.venue_id)), el("td", {}, a.district), el("td", {}, a.community),
    el("td", { class: "level" }, t("lvl." + (a.level || "community"))));
}

function onAlertEvent(event, a) {
  const body = $("alerts-table").querySelector("tbody");
  const existing = a.alert_id ? body.querySelector(`tr[data-alert-id="${CSS.escape(a.alert_id)}"]`) : null;
  if (existing) {
    if (event !== "alert") existing.replaceWith(alertRow(a));  // escalated / acked / resolved: new state
  } else {
    body.prepend(alertRow(a));
    while (body.children.length > 500) body.lastChild.remove();
  }
  if (event === "escalated" && state.view === "analyst") loadQueue();
}

async function startAlerts() {
  if (state.alertsAbort) return;
  const status = $("alerts-status");
  state.alertsAbort = new AbortController();
  try {
    const recent = await (await api("/v1/alerts?limit=100")).json();
    for (const a of recent.alerts.slice().reverse()) onAlertEvent("alert", a);
  } catch (err) {
    status.textContent = t("alerts.history", { err: err.message });
  }
  for (let attempt = 0; state.alertsAbort && !state.alertsAbort.signal.aborted; attempt++) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;  // resume without gaps
      const resp = await api("/v1/alerts/stream", { signal: state.alertsAbort.signal, headers });
      status.textContent = t("alerts.live");
      attempt = 0;
      await readEvents(resp.body.getReader(), onAlertEvent);
    } catch (err) {
      if (state.alertsAbort.signal.aborted) return;
      status.textContent = t("alerts.retry", { err: err.message });
      if (err.status === 401 || err.status === 403 || err.status === 404) return;
    }
    await new Promise((r) => setTimeout(r, Math.min(30000, 1000 * 2 ** attempt)));
  }
}

async function readEvents(reader, onEvent) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const lines = block.split("\n");
      const id = lines.find((l) => l.startsWith("id:"));
      if (id) state.lastEventId = id.slice(3).trim();
      const name = (lines.find((l) => l.startsWith("event:")) || "event: alert").slice(6).trim();
      const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data || name === "reset") continue;
      try { onEvent(name, JSON.parse(data)); } catch (e) { /* keep-alive or non-JSON event */ }
    }
  }
}

async function loadCharts() {
  $("charts-error").textContent = "";
  try {
    const [hours, districts] = await Promise.all([
      api("/v1/stats/scans-per-hour").then((r) => r.json()),
      api("/v1/stats/districts").then((r) => r.json()),
    ]);
    renderHourChart(hours);
    fillTable($("districts-table"), districts.rows.map((d) => el("tr", { "data-district": d.district },
      el("td", {}, d.district), el("td", {}, d.scans), el("td", {}, d.persons))));
  } catch (err) {
    $("charts-error").textContent = err.message;
  }
}

function renderHourChart(data) {
  const box = $("hour-chart");
  box.replaceChildren();
  const t0 = Date.parse(data.since), t1 = Date.parse(data.until);
  const hours = [];
  for (let h = Math.floor(t0 / 3600000) * 3600000; h < t1; h += 3600000) hours.push(h);
  const colour = new Map(data.districts.map((d, i) => [d, PALETTE[i % PALETTE.length]]));
  const totals = new Map();
  for (const r of data.rows) totals.set(Date.parse(r.hour), (totals.get(Date.parse(r.hour)) || 0) + r.scans);
  const max = Math.max(1, ...totals.values());
  const width = 1000, height = 240, left = 50, bottom = 20;
  const bw = (width - left) / Math.max(hours.length, 1);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", id: "hour-chart-svg" });
  root.append(svg("text", { x: 0, y: 12 }, max), svg("text", { x: 0, y: height - bottom }, 0));
  const stack = new Map();
  for (const r of data.rows) {
    const h = Date.parse(r.hour), i = hours.indexOf(h);
    if (i < 0) continue;
    const below = stack.get(h) || 0;
    const bar = (r.scans / max) * (height - bottom - 10);
    const rect = svg("rect", { x: left + i * bw + 1, y: height - bottom - below - bar, width: Math.max(bw - 2, 1), height: bar,
      fill: colour.get(r.district), "data-district": r.district });
    rect.append(svg("title", {}, `${localTime(r.hour)} ${t("col.district")} ${r.district}: ${r.scans}`));
    root.append(rect);
    stack.set(h, below + bar);
  }
  hours.forEach((h, i) => {
    if (i % 3 === 0) root.append(svg("text", { x: left + i * bw, y: height - 4 }, localTime(new Date(h).toISOString()).slice(11)));
  });
  box.append(root);
  $("legend").replaceChildren(...data.districts.map((d) => {
    const swatch = el("i", {});
    swatch.style.background = colour.get(d);
    return el("span", {}, swatch, d);
  }));
}

// --- wiring ---------------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  applyLang(chooseLang());
  showView("login");
  $("lang").addEventListener("change", () => {
    localStorage.setItem(LANG_STORE, $("lang").value);
    applyLang($("lang").value);
    if (state.view === "analyst") loadQueue();
  });
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      await signIn($("api-key").value.trim());
    } catch (err) {
      state.key = "";
      $("login-error").textContent = err.status === 401 ? t("signin.bad") : err.message;
    }
  });
  $("logout").addEventListener("click", signOut);
  for (const tab of document.querySelectorAll("nav .tab")) tab.addEventListener("click", () => showView(tab.dataset.view));
  $("find-form").addEventListener("submit", findPerson);
  $("trace-form").addEventListener("submit", runTrace);
  $("exposure-form").addEventListener("submit", runExposures);
  $("exposure-add").addEventListener("click", () => addSiteRow());
  $("exposure-csv").addEventListener("click", downloadCsv);
  $("flag-form").addEventListener("submit", flagSite);
  $("queue-form").addEventListener("submit", loadQueue);
  $("queue-level").addEventListener("change", () => loadQueue());
  $("queue-state").addEventListener("change", () => loadQueue());
  $("charts-refresh").addEventListener("click", loadCharts);
  const saved = sessionStorage.getItem(KEY_STORE);
  if (saved) signIn(saved).catch(() => sessionStorage.removeItem(KEY_STORE));
});
