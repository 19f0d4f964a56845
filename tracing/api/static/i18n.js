// The console's words in English and Chinese. Every word the page shows comes from here: labels, table
// values (码色, 核验, kinds, levels), errors said plainly; the server's own detail only where it adds to it.

const LANG_STORE = "checkin.console.lang";

const I18N = {
  en: {
    title: "venue-checkin console", "tab.tracer": "Tracer", "tab.sources": "Source tracing", "tab.analyst": "Analyst",
    lang: "Language", signout: "Sign out", "signin.title": "Sign in", "signin.key": "API key", "signin.go": "Sign in",
    "signin.bad": "Unknown or revoked key.",
    "role.none": "This {role} key cannot use the console: it shows contact tracing to tracer keys and alerts to analyst keys. Sign in with one of those.",
    "role.admin": "admin", "role.tracer": "tracer", "role.analyst": "analyst", "role.operator": "venue operator",
    "role.device": "door device", "role.health": "health feed", "role.resident": "resident",
    "err.401": "This key is unknown or was revoked: sign in again.",
    "err.403": "This key may not do this.", "err.404": "Not found: {detail}",
    "err.429": "Too many requests for now; try again in a minute.", "err.503": "The service is busy; try again shortly.",
    "err.network": "The service cannot be reached.", "err.other": "Refused ({status}): {detail}",
    "err.date": "Enter a date and time in both fields.", "err.order": "From must be before To.",
    "trace.title": "Contact trace", "find.query": "ID number or phone", "find.go": "Find person",
    "find.none": "Nobody registered with this ID number or phone (in your jurisdiction).",
    "find.pick": "Trace", "find.need": "Enter an ID number or a phone number, and a reason below.",
    "trace.person": "Person id", "trace.since": "From", "trace.until": "To", "trace.depth": "Depth",
    "trace.min": "Min overlap (minutes)", "trace.limit": "Rows per page", "trace.reason": "Reason (audited)",
    "trace.go": "Trace", "trace.running": "Tracing…", "trace.badperson": "Person id must be a number.",
    "trace.summary": "{contacts} contact(s), {second} second-degree, from {stays} stay(s) of person {person}",
    "trace.paged": "; showing rows {from}–{to} of each list",
    "trace.tosources": "Source tracing of the checked persons", "trace.pick": "Case",
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
    "sources.title": "Source tracing: where did these cases pick it up?",
    "sources.add": "Case: person id, ID number or phone", "sources.addgo": "Add case",
    "sources.paste": "Or paste person ids", "sources.pastego": "Add ids", "sources.clear": "Clear",
    "sources.cases": "Cases ({n})", "sources.nocases": "No cases yet: add at least two.",
    "sources.min_cases": "Min cases together", "sources.go": "Trace sources", "sources.csv": "Download CSV",
    "sources.level": "Notice level for flagged sites", "sources.running": "Tracing sources…",
    "sources.summary": "{venues} common venue(s) and {sources} possible source(s) for {cases} case(s), from {stays} stay(s).",
    "sources.without": " No stays in this window: {ids}.",
    "sources.venues": "Common venues", "sources.people": "Possible sources",
    "sources.novenues": "No venue where at least {n} cases were.", "sources.nopeople": "Nobody met at least {n} cases.",
    "sources.flag": "Flag site", "sources.flagged": "Flagged: {site}", "sources.window": "{from} – {to}",
    "sources.legend": "One lane per common venue; one mark per case (its stays there). Hover a mark for the case and time.",
    "sources.need": "Name at least two cases.", "sources.remove": "Remove",
    "col.start": "Start", "col.end": "End", "col.venue": "Venue", "col.venue_id": "Venue id",
    "col.community": "Community", "col.status": "Code colour", "col.verdict": "Check", "col.person": "Person",
    "col.name": "Name", "col.degree": "Degree", "col.overlap": "Overlap (min)", "col.first": "First contact",
    "col.venues": "Venues", "col.via": "Via", "col.first_at": "First at", "col.last_at": "Last at", "col.at": "At",
    "col.kind": "Kind", "col.severity": "Severity", "col.district": "District", "col.level": "Level", "col.due": "Due",
    "col.waiting": "Waiting", "col.scans": "Scans", "col.persons": "Persons", "col.cases": "Cases",
    "col.together": "Together (min)", "col.window": "Exposure window", "col.note": "Note",
    "status.green": "green", "status.yellow": "yellow", "status.red": "red",
    "verdict.pass": "pass", "verdict.restricted": "restricted", "verdict.deny": "deny",
    phone: "Phone", "phone.of": "Person {person}: {name}, {phone}", "phone.err": "Contact details of {person}: {err}",
    "queue.title": "Alert queue", "queue.level": "Level", "queue.state": "Show",
    "queue.waiting": "Waiting for ack", "queue.acked": "Acknowledged, open", refresh: "Refresh",
    "queue.summary": "{n} alert(s) at the {level} level, oldest first; {overdue} overdue. Unacknowledged alerts move up after {minutes} min.",
    "queue.summary.city": "{n} alert(s) at the city level, oldest first; the longest has waited {longest}. The city level is the last: nothing moves further up.",
    "queue.empty": "Nothing waiting here.", "queue.overdue": "overdue", ack: "Acknowledge", resolve: "Resolve",
    "queue.note": "Note (optional)",
    "acktime.title": "Time to acknowledge (last 7 days)", "acktime.count": "Acknowledged",
    "acktime.median": "Median", "acktime.p90": "90th percentile",
    "lvl.community": "Community", "lvl.street": "Street", "lvl.district": "District", "lvl.city": "City",
    "out.handled": "Handled", "out.isolated": "Isolated", "out.tested": "Sent to test", "out.referred": "Referred",
    "out.false_alarm": "False alarm", "out.duplicate": "Duplicate",
    "alerts.title": "Live alerts", "alerts.live": "Live.", "alerts.history": "History unavailable: {err}",
    "alerts.retry": "Live feed unavailable ({err}); retrying…", "alerts.stopped": "Live feed stopped: {err}",
    "charts.title": "Scans per hour by district (last 24 h)",
    scope: "scope", zone: "time zone",
    "kind.red_code_entry": "red code entry", "kind.yellow_code_entry": "yellow code entry",
    "kind.test_expired_entry": "test expired", "kind.watchlist_entry": "watchlist entry",
    "kind.exposure_site_visit": "exposure site visit", "kind.capacity_exceeded": "over capacity",
    "kind.impossible_travel": "impossible travel", "kind.remote_scan": "remote scan", "kind.bulk_read": "bulk read of contact details",
    "sev.info": "info", "sev.warning": "warning", "sev.critical": "critical",
    "dur.s": "{n} s", "dur.min": "{n} min", "dur.h": "{n} h",
  },
  "zh-CN": {
    title: "场所码指挥台", "tab.tracer": "流调", "tab.sources": "溯源", "tab.analyst": "研判",
    lang: "语言", signout: "退出", "signin.title": "登录", "signin.key": "API 密钥", "signin.go": "登录",
    "signin.bad": "密钥无效或已吊销。",
    "role.none": "此{role}密钥不能使用指挥台：指挥台向流调密钥提供密接追踪，向研判密钥提供预警。请用这两种密钥之一登录。",
    "role.admin": "管理员", "role.tracer": "流调", "role.analyst": "研判", "role.operator": "场所运营",
    "role.device": "门岗设备", "role.health": "卫健数据", "role.resident": "居民",
    "err.401": "此密钥无效或已被吊销，请重新登录。",
    "err.403": "此密钥无权执行此操作。", "err.404": "未找到：{detail}",
    "err.429": "请求过于频繁，请稍后再试。", "err.503": "服务繁忙，请稍后再试。",
    "err.network": "无法连接服务。", "err.other": "请求被拒绝（{status}）：{detail}",
    "err.date": "请在两个时间框中都填写日期和时间。", "err.order": "开始时间必须早于结束时间。",
    "trace.title": "密接追踪", "find.query": "身份证号或手机号", "find.go": "查找人员",
    "find.none": "（本辖区内）没有以该身份证号或手机号登记的人员。",
    "find.pick": "追踪", "find.need": "请输入身份证号或手机号，并在下方填写事由。",
    "trace.person": "人员编号", "trace.since": "开始", "trace.until": "结束", "trace.depth": "层级",
    "trace.min": "最短重叠（分钟）", "trace.limit": "每页行数", "trace.reason": "事由（记入审计）",
    "trace.go": "追踪", "trace.running": "追踪中…", "trace.badperson": "人员编号必须是数字。",
    "trace.summary": "人员 {person} 的 {stays} 次停留：密接 {contacts} 人，次密接 {second} 人",
    "trace.paged": "；每个名单显示第 {from}–{to} 行",
    "trace.tosources": "对勾选人员溯源", "trace.pick": "病例",
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
    "sources.title": "溯源：这些病例在哪里被感染？",
    "sources.add": "病例：人员编号、身份证号或手机号", "sources.addgo": "添加病例",
    "sources.paste": "或粘贴人员编号", "sources.pastego": "添加编号", "sources.clear": "清空",
    "sources.cases": "病例（{n}）", "sources.nocases": "尚无病例：请至少添加两例。",
    "sources.min_cases": "至少共同病例数", "sources.go": "溯源", "sources.csv": "下载 CSV",
    "sources.level": "标记场所的通知级别", "sources.running": "溯源中…",
    "sources.summary": "{cases} 例病例、{stays} 次停留：共同场所 {venues} 个，可疑传染源 {sources} 人。",
    "sources.without": "该时段内无停留记录：{ids}。",
    "sources.venues": "共同场所", "sources.people": "可疑传染源",
    "sources.novenues": "没有至少 {n} 例病例到过的场所。", "sources.nopeople": "没有与至少 {n} 例病例接触的人员。",
    "sources.flag": "标记风险场所", "sources.flagged": "已标记：{site}", "sources.window": "{from} – {to}",
    "sources.legend": "每个共同场所一行；每例病例一个标记（其在该场所的停留）。鼠标悬停可见病例与时间。",
    "sources.need": "请至少指定两例病例。", "sources.remove": "移除",
    "col.start": "开始", "col.end": "结束", "col.venue": "场所", "col.venue_id": "场所编号",
    "col.community": "社区", "col.status": "码色", "col.verdict": "核验", "col.person": "人员",
    "col.name": "姓名", "col.degree": "层级", "col.overlap": "重叠（分钟）", "col.first": "首次接触",
    "col.venues": "场所", "col.via": "经由", "col.first_at": "首次到场", "col.last_at": "最后到场", "col.at": "时间",
    "col.kind": "类型", "col.severity": "严重程度", "col.district": "区", "col.level": "级别", "col.due": "升级时间",
    "col.waiting": "等待时长", "col.scans": "扫码", "col.persons": "人数", "col.cases": "病例",
    "col.together": "同时在场（分钟）", "col.window": "暴露时段", "col.note": "备注",
    "status.green": "绿码", "status.yellow": "黄码", "status.red": "红码",
    "verdict.pass": "通过", "verdict.restricted": "限制", "verdict.deny": "拒绝",
    phone: "电话", "phone.of": "人员 {person}：{name}，{phone}", "phone.err": "人员 {person} 的联系方式：{err}",
    "queue.title": "预警待办", "queue.level": "级别", "queue.state": "显示",
    "queue.waiting": "待签收", "queue.acked": "已签收未办结", refresh: "刷新",
    "queue.summary": "{level}级共 {n} 条预警，按时间先后；超时 {overdue} 条。未签收的预警 {minutes} 分钟后上报上一级。",
    "queue.summary.city": "市级共 {n} 条预警，按时间先后；等待最久的已等待 {longest}。市级为最高级，不再上报。",
    "queue.empty": "暂无待办。", "queue.overdue": "超时", ack: "签收", resolve: "办结",
    "queue.note": "备注（可选）",
    "acktime.title": "签收用时（近 7 天）", "acktime.count": "已签收",
    "acktime.median": "中位数", "acktime.p90": "90 分位",
    "lvl.community": "社区", "lvl.street": "街道", "lvl.district": "区", "lvl.city": "市",
    "out.handled": "已处置", "out.isolated": "已隔离", "out.tested": "已安排检测", "out.referred": "已转办",
    "out.false_alarm": "误报", "out.duplicate": "重复",
    "alerts.title": "实时预警", "alerts.live": "实时连接中。", "alerts.history": "历史预警不可用：{err}",
    "alerts.retry": "实时预警中断（{err}），正在重连…", "alerts.stopped": "实时预警已停止：{err}",
    "charts.title": "各区每小时扫码量（近 24 小时）",
    scope: "辖区", zone: "时区",
    "kind.red_code_entry": "红码进入", "kind.yellow_code_entry": "黄码进入",
    "kind.test_expired_entry": "核酸过期", "kind.watchlist_entry": "重点人员进入",
    "kind.exposure_site_visit": "到访风险场所", "kind.capacity_exceeded": "超员",
    "kind.impossible_travel": "轨迹异常", "kind.remote_scan": "异地扫码", "kind.bulk_read": "批量读取联系方式",
    "sev.info": "提示", "sev.warning": "警告", "sev.critical": "严重",
    "dur.s": "{n} 秒", "dur.min": "{n} 分钟", "dur.h": "{n} 小时",
  },
};

export const i18n = { lang: "en" };

export function t(key, vars) {
  const table = I18N[i18n.lang] || I18N.en;
  let text = table[key] ?? I18N.en[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) text = text.replaceAll(`{${k}}`, String(v));
  return text;
}

/** A word for a value the server sends (a colour, a verdict, a kind): its translation, never the raw word. */
export function word(group, value) {
  const key = `${group}.${value}`;
  return (I18N[i18n.lang] || I18N.en)[key] ?? I18N.en[key] ?? String(value ?? "");
}

export function chooseLang() {
  const saved = localStorage.getItem(LANG_STORE);
  if (saved && I18N[saved]) return saved;
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ""];
  return wanted.some((l) => String(l).toLowerCase().startsWith("zh")) ? "zh-CN" : "en";
}

export function saveLang(lang) {
  localStorage.setItem(LANG_STORE, lang);
}

/** Set the language and translate every element marked ``data-i18n`` (and ``data-i18n-title``). */
export function applyLang(lang) {
  i18n.lang = I18N[lang] ? lang : "en";
  document.documentElement.lang = i18n.lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
  document.title = t("title");
}

export function duration(seconds) {
  if (seconds < 90) return t("dur.s", { n: Math.round(seconds) });
  if (seconds < 5400) return t("dur.min", { n: Math.round(seconds / 60) });
  return t("dur.h", { n: (seconds / 3600).toFixed(1) });
}
