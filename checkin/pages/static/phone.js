/* Phone check-in page: register once, check in with one tap, the door screen, exposure notices,
 * open stays, an offline queue, own visits; zh-CN or English, and a 长辈模式 (large text).
 * Without a venue code (/me) it is the resident's home: their health code, the refreshing door pass,
 * their family's colours and guardian links to confirm. A service worker (/sw.js) keeps the page
 * shell, so a poster opened without network queues the scan and shows the grey 未联网核验 screen.
 * Everything shown is set with textContent (never innerHTML): names and messages are data. */
(function () {
  "use strict";

  var RESIDENT_KEY = "venue-checkin.resident";
  var STAYS_KEY = "venue-checkin.stays";
  var QUEUE_KEY = "venue-checkin.queue";
  var COMPANIONS_KEY = "venue-checkin.companions";
  var LANG_KEY = "venue-checkin.lang";
  var LANG_SENT_KEY = "venue-checkin.lang-sent";
  var ELDER_KEY = "venue-checkin.elder";
  var OTP_KEY = "venue-checkin.otp";
  var LAST_KEY = "venue-checkin.last-colour";
  var VENUES_KEY = "venue-checkin.venues";
  var MAX_VENUES = 50;
  var CONFIRM_MS = 5000;
  var REQUEST_TIMEOUT_MS = 15000;
  var LOCATION_WAIT_MS = 600;
  var MAX_STAY_MS = 12 * 3600 * 1000;
  var MAX_QUEUE = 200;
  var BATCH_SIZE = 50;
  var NOTICE_POLL_MS = 30000;
  var RESULT_REFRESH_MS = 30000;

  var app = document.getElementById("app");
  if (!app) return;
  var cfg = {
    page: app.getAttribute("data-page") || "poster",
    code: app.getAttribute("data-code") || "",
    codeProof: app.getAttribute("data-code-proof") || "",
    venueId: app.getAttribute("data-venue-id") || "",
    venueName: app.getAttribute("data-venue-name") || "",
    tz: app.getAttribute("data-tz") || "Asia/Shanghai",
    testHours: parseInt(app.getAttribute("data-test-hours") || "", 10) || 0,
    dwellMinutes: parseInt(app.getAttribute("data-dwell-minutes") || "", 10) || 0,
    offlinePoster: false,
  };
  /** The instant the server saw a screen code current (its seen proof "key.ms.mac"), or null. */
  cfg.seenAt = (function () {
    var m = /^\d+\.(\d+)\./.exec(cfg.codeProof);
    return m ? new Date(parseInt(m[1], 10)) : null;
  })();
  /** Venue id of a poster's token: base64url, the first 4 bytes big-endian (docs: "Venue codes"). */
  function venueIdOf(token) {
    try {
      var b64 = token.replace(/-/g, "+").replace(/_/g, "/");
      var raw = atob(b64 + "===".slice((b64.length + 3) % 4));
      if (raw.length < 4) return "";
      return String(((raw.charCodeAt(0) << 24) >>> 0) + (raw.charCodeAt(1) << 16) + (raw.charCodeAt(2) << 8) +
        raw.charCodeAt(3));
    } catch (e) {
      return "";
    }
  }
  // the service worker answered a poster's address with the cached shell: the network is down
  if (cfg.page === "home" && /^\/v\/[^/]+$/.test(location.pathname)) {
    cfg.offlinePoster = true;
    cfg.code = decodeURIComponent(location.pathname.slice(3));
    cfg.venueId = venueIdOf(cfg.code);
  }
  var home = cfg.page === "home" && !cfg.offlinePoster;

  function $(id) {
    return document.getElementById(id);
  }

  // ---- words (zh-CN, English) ---------------------------------------------------------------------
  /** Texts the script writes: key -> [zh-CN, English]; "{name}" is filled in by t(). */
  var M = {
    title: ["场所码登记", "Venue check-in"],
    "title.home": ["我的健康码", "My health code"],
    "code.reason": ["原因：{reason}", "Reason: {reason}"],
    "code.since": ["{at} 起", "Since {at}"],
    "code.test": ["最近核酸阴性：{at}", "Last negative test: {at}"],
    "code.test_none": ["最近核酸阴性：无", "Last negative test: none"],
    "code.reason.exposure": ["到访风险场所", "visited an exposure site"],
    "code.loading": ["正在读取健康码…", "Reading your health code…"],
    "code.down": ["暂时无法读取健康码，请稍后再试。", "Your health code cannot be read right now; try again shortly."],
    "family.here": ["在场：{venue}", "At {venue}"],
    "family.unread": ["{n} 条未读提醒", "{n} unread notice(s)"],
    "guardian.pending": ["{name} 此前可以代您登记", "{name} could check you in before"],
    "guardian.confirm": ["允许", "Allow"],
    "guardian.refuse": ["拒绝", "Refuse"],
    "guardian.confirmed": ["已允许 {name} 代您登记。", "{name} may check you in."],
    "guardian.refused": ["已拒绝 {name} 代您登记。", "{name} can no longer check you in."],
    "guardian.refuse_confirm": ["确定不再允许“{name}”代您登记吗？", "Stop {name} from checking you in?"],
    "offline.title": ["未联网核验", "NOT VERIFIED"],
    "offline.other": ["NOT VERIFIED", "未联网核验"],
    "offline.saved": [
      "没有网络：本次扫码已保存在本机，联网后自动上传。此页面不是通行结果，请向工作人员出示联网后的核验结果。",
      "No network: this scan is saved on the phone and uploaded when the network is back. This is not an entry result.",
    ],
    "offline.last": ["最近一次联网核验：{colour}（{at}）", "Last checked online: {colour} ({at})"],
    "offline.last_none": ["本机没有联网核验记录。", "No online check on this phone yet."],
    "offline.waiting": ["待上传", "waiting to upload"],
    "offline.no_resident": [
      "没有网络，无法首次登记。请联网后重新扫码。",
      "No network: the first registration needs one. Connect and scan again.",
    ],
    "offline.venue": ["场所编号 {id}", "Venue no. {id}"],
    "checkout.confirm": ["再点一次确认离场", "Tap again to check out"],
    "lang.other": ["English", "中文"],
    "elder.on": ["长辈模式", "Large text"],
    "elder.off": ["标准模式", "Standard text"],
    checkin: ["登记", "Check in"],
    "checkin.busy": ["登记中…", "Checking in…"],
    submit: ["提交", "Submit"],
    submitting: ["提交中…", "Submitting…"],
    checkout: ["离场登记", "Check out"],
    "cmp.add": ["＋ 添加家人", "+ Add family member"],
    "cmp.close": ["收起", "Close"],
    remove: ["移除", "Remove"],
    "remove.label": ["移除 {name}", "Remove {name}"],
    removed: ["已移除 {name}", "Removed {name}"],
    "remove.confirm": ["确定不再与“{name}”同行登记吗？", "Stop checking in {name} with you?"],
    "otp.send": ["获取验证码", "Get code"],
    "otp.again": ["重新获取({n}s)", "Again ({n}s)"],
    "otp.sent": ["验证码已发送到 {phone}，5 分钟内有效。", "Code sent to {phone}; it is valid for 5 minutes."],
    "reg.saved": ["个人信息已保存，以后扫码无需重复填写。", "Saved: next time one tap checks you in."],
    "reg.expired": ["登记信息已过期，请重新填写个人信息。", "Your sign-in has expired; enter your details again."],
    "f.phone": ["请填写 11 位手机号码。", "Enter an 11-digit mobile number."],
    "f.name": ["请填写姓名。", "Enter your name."],
    "f.id": ["身份证号不正确，请核对后重新填写。", "The ID number is not valid; check it and try again."],
    "f.otp_first": ["请先点击“获取验证码”。", "Tap “Get code” first."],
    "f.otp": ["请填写短信中的 6 位数字验证码。", "Enter the 6-digit code from the SMS."],
    "f.cmp_phone": ["请填写家人的 11 位手机号码。", "Enter the family member's 11-digit mobile number."],
    "f.cmp_name": ["请填写家人姓名。", "Enter the family member's name."],
    "f.cmp_phone_opt": ["请填写 11 位手机号码，或留空。", "Enter an 11-digit mobile number, or leave it empty."],
    "f.cmp_otp_first": [
      "填写家人手机号时，请点击“获取验证码”，并填写家人手机收到的验证码。",
      "With a phone number, tap “Get code” and enter the code their phone received.",
    ],
    "f.cmp_otp": ["请填写家人手机收到的 6 位验证码。", "Enter the 6-digit code their phone received."],
    "status.green": ["绿码", "Green code"],
    "status.yellow": ["黄码", "Yellow code"],
    "status.red": ["红码", "Red code"],
    "status.unknown": ["健康码状态未知", "Health code unknown"],
    "verdict.pass": ["通行", "PASS"],
    "verdict.restricted": ["限制", "LIMITED"],
    "verdict.deny": ["禁止", "NO ENTRY"],
    "verdict.unknown": ["无法核验", "NOT CHECKED"],
    "reason.red_code": ["红码：禁止进入", "Red code: no entry"],
    "reason.yellow_code": ["黄码：限制进入，请配合工作人员核查", "Yellow code: limited entry, the staff will check"],
    "reason.test_expired": [
      "没有本场所要求的 {hours} 小时内核酸阴性结果",
      "No negative test within the {hours} h this venue requires",
    ],
    "reason.test_expired_any": ["没有本场所要求时限内的核酸阴性结果", "No negative test as recent as this venue requires"],
    "reason.test_unchecked": [
      "系统繁忙，未能核对核酸结果，请工作人员人工查验",
      "System busy: the test was not checked, the staff check it by hand",
    ],
    "reason.watchlist": ["请配合工作人员核查", "Please see the staff"],
    "reason.other": ["原因：{code}", "Reason: {code}"],
    "group.all_pass": ["{n} 人同行 · 全部通行", "{n} people · all pass"],
    "group.people": ["{n} 人同行", "{n} people"],
    "group.all": ["全部通行", "all pass"],
    "group.deny": ["{n} 人禁止", "{n} no entry"],
    "group.limited": ["{n} 人限制", "{n} limited"],
    "group.see_each": ["请逐一查看下方每位人员的结果", "Check each person below"],
    "test.none": ["无", "none"],
    "test.label": ["最近核酸阴性：{at}", "Last negative test: {at}"],
    "day.colour": ["今日色：{colour}", "Colour of the day: {colour}"],
    "day.0": ["紫", "purple"],
    "day.1": ["蓝", "blue"],
    "day.2": ["橙", "orange"],
    "day.3": ["青", "teal"],
    "day.4": ["粉", "pink"],
    "day.5": ["棕", "brown"],
    "day.6": ["黑", "black"],
    "result.checking": ["正在向服务器核验…", "Checking with the server…"],
    "result.stale": [
      "网络不可用，现在无法向服务器核验登记结果，因此不显示通行结果。请联网后点“重新核验”。",
      "No network: the result cannot be checked with the server now, so no verdict is shown. Connect and tap “Check again”.",
    ],
    "result.gone": ["未找到这次登记记录（可能已超过 12 小时）。", "This check-in was not found (it may be older than 12 h)."],
    "checked_out": ["已离场 {at}", "Checked out {at}"],
    "checkout.ok": ["离场登记成功，感谢配合。", "Checked out. Thank you."],
    "rule.test": ["需 {hours} 小时内核酸阴性", "Negative test within {hours} h required"],
    "rule.dwell": ["预计停留 {minutes} 分钟", "Expected stay {minutes} min"],
    "stay.since": ["{at} 登记", "Checked in {at}"],
    "stay.elapsed": ["已停留 {d}", "Here for {d}"],
    "stay.end": ["预计 {at} 离场", "Expected end {at}"],
    "stay.over": ["已超过预计停留时间", "Past the expected end"],
    "stay.view": ["查看登记结果", "Show result"],
    "stay.view_short": ["看结果", "Result"],
    "dur.min": ["{m} 分钟", "{m} min"],
    "dur.hour": ["{h} 小时 {m} 分钟", "{h} h {m} min"],
    "dur.under": ["不到 1 分钟", "under a minute"],
    "queue.item": ["{at} 扫码", "Scanned {at}"],
    "queue.state": ["待上传", "waiting"],
    "queue.sent": ["{n} 条待上传的登记已上传。", "{n} saved check-in(s) uploaded."],
    "queue.refused": ["{n} 条待上传的登记未被接受：{why}", "{n} saved check-in(s) were refused: {why}"],
    "queue.full": ["待上传的登记过多，请联网后再登记。", "Too many check-ins are waiting; connect before checking in again."],
    "notice.inform": ["健康提醒", "Health notice"],
    "notice.test": ["请尽快做核酸检测", "Please get tested soon"],
    "notice.isolate": ["请立即居家", "Stay at home now"],
    "notice.body": [
      "您于 {visited} 到访的“{venue}”，在 {since} 至 {until} 期间被列为风险场所。",
      "You were at “{venue}” on {visited}; it was an exposure site from {since} to {until}.",
    ],
    "advice.inform": [
      "请留意自身健康状况，如出现发热、咳嗽等症状请及时就医。",
      "Watch your health; if you have a fever, a cough or other symptoms, see a doctor.",
    ],
    "advice.test": ["请尽快就近进行一次核酸检测。", "Get a test at the nearest testing site as soon as you can."],
    "advice.isolate": ["请立即居家，不要外出，等待社区联系。", "Go home now, do not go out, and wait for your community to contact you."],
    "notice.from": ["流调人员说明：", "From the tracer: "],
    "notice.family_title": ["家人 {name}：{title}", "Family member {name}: {title}"],
    "notice.family_body": [
      "您的家人 {name} 于 {visited} 到访的“{venue}”，在 {since} 至 {until} 期间被列为风险场所。",
      "Your family member {name} was at “{venue}” on {visited}; it was an exposure site from {since} to {until}.",
    ],
    "notice.ack": ["我知道了", "I understand"],
    "notice.ack_for": ["代 {name} 确认", "I understand, for {name}"],
    "notice.ack_failed": ["确认未能提交，请稍后再试。", "Could not confirm; try again shortly."],
    "visits.loading": ["正在读取…", "Loading…"],
    "visits.count": ["共 {n} 次登记", "{n} visit(s)"],
    "visits.none": ["近 14 天没有登记记录。", "No visits in the last 14 days."],
    "visits.down": ["行程记录暂时无法查询，请稍后再试。", "Your visits cannot be read right now; try again later."],
    "visits.open": ["在场中", "here now"],
    "pass.until": ["有效至 {at}，到期前自动更新", "Valid until {at}; renewed before it expires"],
    "revoke.confirm": [
      "确定让所有设备（包括本机）上的登记失效吗？之后需要重新用短信验证码登记。",
      "Sign out on every device, this one too? You will need a new SMS code to register again.",
    ],
    "revoke.done": ["所有设备上的登记均已失效。", "You are signed out on every device."],
    "e.page": ["页面出错，请刷新后重试。", "Something went wrong; reload the page."],
    "e.network": ["网络连接失败，请检查网络后重试。", "No connection; check the network and try again."],
    "e.rate": ["操作过于频繁，{wait}", "Too many attempts; {wait}"],
    "e.wait_s": ["请 {s} 秒后再试。", "try again in {s} s."],
    "e.wait": ["请稍后再试。", "try again shortly."],
    "e.sms": ["短信暂时发送失败，{wait}", "The SMS could not be sent; {wait}"],
    "e.busy": ["当前登记人数较多，系统繁忙，{wait}", "Many people are checking in, the system is busy; {wait}"],
    "e.server": ["服务器暂时出错，请稍后再试。", "Server error; try again shortly."],
    "e.token": ["登记信息已失效，请重新填写个人信息。", "Your sign-in is no longer valid; enter your details again."],
    "e.cmp_pick": ["所选同行家人有误，请刷新页面后重新选择。", "The family members chosen are not valid; reload and choose again."],
    "e.forbidden": ["没有权限进行此操作。", "You may not do this."],
    "e.too_big": ["提交的内容过大。", "Too much was sent."],
    "e.stay_over": ["本次登记已超过 12 小时，停留已自动结束。", "This check-in is older than 12 h; the stay has ended."],
    "e.code_gone": ["场所码已失效，请向场所索取新的场所码。", "This venue code is no longer valid; ask the venue for its new code."],
    "e.no_checkin": ["未找到这次登记记录。", "This check-in was not found."],
    "e.no_venue": ["未找到该场所，请重新扫描场所张贴的场所码。", "Venue not found; scan the venue's posted code again."],
    "e.unavailable": ["登记服务暂不可用，请稍后再试。", "Check-in is unavailable; try again shortly."],
    "e.already_out": ["这次登记已经离场。", "You already checked out of this visit."],
    "e.other_name": [
      "该身份证号已用其他姓名登记，请填写登记时使用的姓名。",
      "This ID number was registered with another name; use that name.",
    ],
    "e.cmp_max": ["同行家人数量已达上限。", "You have the most family members allowed."],
    "e.conflict": ["该操作与当前状态冲突，请刷新后重试。", "This conflicts with the current state; reload and try again."],
    "e.own_cmp": ["不能把本人添加为同行家人。", "You cannot add yourself as a family member."],
    "e.form": ["填写的信息有误，请核对后重试。", "Some details are not valid; check them and try again."],
    "e.bad_code": ["场所码无效，请重新扫描场所张贴的场所码。", "Invalid venue code; scan the venue's posted code again."],
    "e.location": ["定位信息无效，请关闭定位权限后重试。", "The location is not valid; turn off location access and try again."],
    "e.failed": ["请求未能完成。", "The request failed."],
    "e.detail": ["（原因：{detail}）", " (reason: {detail})"],
    "e.field_id": ["身份证号格式不正确，请核对后重新填写。", "The ID number is not valid; check it and try again."],
    "e.field_phone": ["手机号格式不正确，请填写 11 位手机号码。", "The mobile number is not valid; enter 11 digits."],
    "e.field_name": ["姓名格式不正确，请重新填写。", "The name is not valid; enter it again."],
    "e.otp_wrong_left": ["验证码不正确，还可尝试 {n} 次。", "Wrong code; {n} attempt(s) left."],
    "e.phone_mismatch_help": [
      "如手机号已更换或手机丢失，请见下方“换了手机号”的说明。",
      " If you changed your number or lost the phone, see “Changed your number” below.",
    ],
    "r.otp_wrong": ["验证码不正确", "Wrong code"],
    "r.otp_expired": ["验证码已失效或已使用，请重新获取验证码。", "The code has expired or was used; get a new one."],
    "r.otp_locked": ["验证码输错次数过多，请重新获取验证码。", "Too many wrong codes; get a new one."],
    "r.otp_too_soon": ["验证码发送过于频繁，请稍后再获取。", "Codes were sent too often; wait a little."],
    "r.otp_daily_limit": ["今天向该手机号发送的验证码已达上限，请明天再试。", "No more codes to this number today; try tomorrow."],
    "r.otp_missing": ["请先获取并填写短信验证码。", "Get the SMS code and enter it first."],
    "r.otp_malformed": ["请填写短信中的 6 位数字验证码。", "Enter the 6-digit code from the SMS."],
    "r.phone_mismatch": [
      "该身份证号登记时使用的是另一个手机号，只能用那个手机号接收验证码。",
      "This ID number was registered with another mobile number; only that number can receive the code.",
    ],
    "r.consent_required": [
      "这位家人已登记过，需要家人手机收到的验证码才能添加。",
      "This person is registered: the code sent to their own phone is needed to add them.",
    ],
    "r.companion_limit": ["同行家人数量已达上限，请先移除一位。", "You have the most family members allowed; remove one first."],
    "r.id_check_digit": ["身份证号最后一位校验码不对，请核对后重新填写。", "The last digit of the ID number is wrong; check it."],
    "r.token_revoked": ["本机的登记已失效，请重新填写个人信息。", "This phone's sign-in was revoked; enter your details again."],
    "r.code_expired": [
      "请重新扫描屏幕上的场所码（屏幕上的场所码每隔一段时间更新，此码已过期）。",
      "Scan the code on the screen again (it changes every so often and this one has expired).",
    ],
    "r.static_code": [
      "请重新扫描屏幕上的场所码（该场所使用入口屏幕上的动态场所码）。",
      "Scan the code on the entrance screen (this venue uses a changing code).",
    ],
    "r.old_code": ["场所码已更换，请向场所索取新的场所码。", "The venue code was replaced; ask the venue for the new one."],
    "r.too_old": ["这次扫码时间过早，已无法补登。", "This scan is too old to be uploaded."],
    "r.in_future": ["手机时间不准确，请校准后重试。", "The phone's clock is wrong; correct it and try again."],
  };

  /** English for the page's own elements (data-i18n); their zh-CN text is the HTML itself. */
  var STATIC_EN = {
    brand: "Venue check-in",
    "guardians.title": "Confirm your guardians",
    "guardians.help": "You registered with your own phone. These family members could check you in " +
      "before: allow each to go on, or refuse.",
    "family.title": "Family health codes",
    "offline.scanned": "Scanned",
    "offline.state": "State",
    "notices.title": "Health risk notices",
    "venue.entering": "You are entering",
    "reg.title": "Your details",
    "reg.name": "Name",
    "reg.id": "ID card number",
    "reg.phone": "Mobile number",
    "otp.send": "Get code",
    "reg.otp": "Code from the SMS",
    "reg.submit": "Submit",
    "reg.privacy": "The code goes to the number you enter, to confirm it is you. Your details are used only " +
      "for epidemic control and contact tracing; the ID number is kept only as a one-way digest and the " +
      "phone number encrypted.",
    "rebind.summary": "Changed your number, or lost your phone?",
    "rebind.text": "A registered ID number receives codes only on the number it was registered with. Take " +
      "your ID card to the community health centre or the local health authority to change the number; " +
      "the sign-in on the old phone then ends, and you register again with the new number.",
    "stays.title": "Checked in now",
    "queue.title": "Waiting to upload",
    "queue.help": "Check-ins made without a network are kept on this phone and sent when it is back.",
    "queue.send": "Upload now",
    "ready.hint": "You are registered: tap the button below to check in.",
    "cmp.title": "Family with you",
    "cmp.empty": "With family, add them and tick them to check in together.",
    "cmp.name": "Family member's name",
    "cmp.id": "Family member's ID card number",
    "cmp.phone": "Their mobile number (optional; required if they are registered)",
    "cmp.otp": "Code their phone received",
    "cmp.consent": "This person is already registered. To stop anyone else adding them, enter the code " +
      "sent to their own phone: it shows they agree.",
    "cmp.submit": "Add",
    "ready.pass": "My door pass (for the door scanner)",
    "ready.visits": "My visits",
    "ready.switch": "Not you? Enter your details again",
    "ready.revoke": "Lost or lent your phone? End the sign-in on every device",
    "pass.title": "My door pass",
    "pass.help": "Show it to the door scanner. It changes every two minutes; a screenshot does not work.",
    "pass.alt": "Door pass",
    back: "Back",
    "visits.title": "My visits (last 14 days)",
    "result.retry": "Check again",
    "result.venue": "Venue",
    "result.time": "Checked in",
    "result.test": "Last negative test",
    "result.checked": "Checked at",
    checkout: "Check out",
    "result.back": "Back to start",
  };

  /** 长辈模式 says less: shorter words for these elements ([zh-CN, English]). */
  var ELDER_WORDS = {
    "ready.pass": ["通行码", "Door pass"],
    "ready.switch": ["不是本人", "Not you?"],
    "cmp.title": ["家人", "Family"],
    "pass.help": ["给门岗扫码。", "Show it at the door."],
  };

  var lang = "zh-CN";
  function t(key, vars) {
    var pair = M[key];
    var text = pair ? pair[lang === "en" ? 1 : 0] : key;
    if (vars) {
      text = text.replace(/\{(\w+)\}/g, function (all, name) {
        return vars[name] !== undefined ? String(vars[name]) : all;
      });
    }
    return text;
  }

  // ---- time --------------------------------------------------------------------------------------
  function makeFormatter(opts) {
    var locale = lang === "en" ? "en-GB" : "zh-CN";
    var o = {};
    for (var k in opts) o[k] = opts[k];
    o.timeZone = cfg.tz;
    try {
      return new Intl.DateTimeFormat(locale, o);
    } catch (e) {
      delete o.timeZone;
      return new Intl.DateTimeFormat(locale, o);
    }
  }
  var formatters = {};
  function resetFormatters() {
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
  function asDate(value) {
    var d = value instanceof Date ? value : new Date(value);
    return isNaN(d.getTime()) ? null : d;
  }
  function fmt(kind, value) {
    if (!value) return "";
    var d = asDate(value);
    return d ? formatters[kind].format(d) : String(value);
  }
  function formatInstant(value) {
    return fmt("full", value);
  }
  function duration(ms) {
    var minutes = Math.floor(Math.max(0, ms) / 60000);
    if (minutes < 1) return t("dur.under");
    if (minutes < 60) return t("dur.min", { m: minutes });
    return t("dur.hour", { h: Math.floor(minutes / 60), m: minutes % 60 });
  }
  /** The colour of the day in the venue's zone (by weekday: one poster at the door names all seven). */
  function dayIndex(now) {
    var names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    var i = names.indexOf(formatters.weekday.format(now));
    return i < 0 ? now.getDay() : i;
  }

  // ---- storage (localStorage, with a cookie when storage is unavailable) ---------------------------
  function readCookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return null;
  }
  function writeCookie(name, value, maxAgeS) {
    var secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = name + "=" + encodeURIComponent(value || "") + "; Max-Age=" + maxAgeS +
      "; Path=/; SameSite=Strict" + secure;
  }
  function storeGet(key) {
    try {
      var v = window.localStorage.getItem(key);
      if (v !== null) return JSON.parse(v);
    } catch (e) { /* storage disabled or bad JSON: fall back to the cookie */ }
    try {
      var c = readCookie(key);
      return c ? JSON.parse(c) : null;
    } catch (e) {
      return null;
    }
  }
  function storeSet(key, value, maxAgeS) {
    var text = JSON.stringify(value);
    try {
      window.localStorage.setItem(key, text);
      return;
    } catch (e) { /* fall through to the cookie */ }
    writeCookie(key, text, maxAgeS);
  }
  function storeDel(key) {
    try { window.localStorage.removeItem(key); } catch (e) { /* ignore */ }
    if (readCookie(key) !== null) writeCookie(key, "", 0);
  }

  /** Expiry (unix seconds) inside a resident token "r2.<b64url(pid u64|exp u32|...)>" (r1. too). */
  function tokenExpiry(token) {
    try {
      var b64 = token.slice(3).replace(/-/g, "+").replace(/_/g, "/");
      var raw = atob(b64 + "===".slice((b64.length + 3) % 4));
      if (raw.length < 12) return null;
      return ((raw.charCodeAt(8) << 24) >>> 0) + (raw.charCodeAt(9) << 16) + (raw.charCodeAt(10) << 8) +
        raw.charCodeAt(11);
    } catch (e) {
      return null;
    }
  }
  function loadResident() {
    var r = storeGet(RESIDENT_KEY);
    if (!r || typeof r.token !== "string" || !/^r[12]\./.test(r.token)) return null;
    var exp = tokenExpiry(r.token);
    if (exp !== null && exp * 1000 <= Date.now()) {
      storeDel(RESIDENT_KEY);
      return { expired: true };
    }
    return r;
  }
  /** A refused token: this phone's sign-in ends (the offline queue stays: it names its owner, and is
   * sent once that person has signed in again). */
  function forgetResident() {
    storeDel(RESIDENT_KEY);
    storeDel(STAYS_KEY);
    storeDel(COMPANIONS_KEY);
  }

  // ---- messages --------------------------------------------------------------------------------
  function showMessage(text, kind) {
    var el = $("message");
    el.textContent = text;
    el.className = "notice " + (kind || "error");
    el.hidden = !text;
  }
  function clearMessage() {
    showMessage("", "info");
  }

  // ---- the JSON API ----------------------------------------------------------------------------
  function ApiError(status, problem, retryAfter) {
    this.status = status;
    this.problem = problem || {};
    this.detail = (problem && typeof problem.detail === "string") ? problem.detail : "";
    this.retryAfter = retryAfter;
  }

  function api(method, path, body, token) {
    var headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = "Bearer " + token;
    var ctrl = typeof AbortController === "function" ? new AbortController() : null;
    var timer = ctrl ? setTimeout(function () { ctrl.abort(); }, REQUEST_TIMEOUT_MS) : null;
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
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!resp.ok) {
          var ra = parseInt(resp.headers.get("Retry-After") || "", 10);
          throw new ApiError(resp.status, data, isNaN(ra) ? null : ra);
        }
        return data;
      });
    }, function () {
      if (timer) clearTimeout(timer);
      throw new ApiError(0, null, null);
    });
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  /** Retry only when the request may not have arrived (network failure); same body, same client_id. */
  function apiRetrying(method, path, body, token, attempts) {
    return api(method, path, body, token).catch(function (err) {
      if (err instanceof ApiError && err.status === 0 && attempts > 1 && navigator.onLine !== false) {
        return sleep(800).then(function () { return apiRetrying(method, path, body, token, attempts - 1); });
      }
      throw err;
    });
  }
  function isNetworkError(err) {
    return err instanceof ApiError && err.status === 0;
  }

  var FIELD_TEXT = [
    [/id_number|id number|身份证/i, "e.field_id"],
    [/phone|手机/i, "e.field_phone"],
    [/\bname\b|姓名/i, "e.field_name"],
  ];

  /** Plain text for an API error; `what` names the action ("register", "checkin", "checkout"...). */
  function describe(err, what) {
    if (!(err instanceof ApiError)) return t("e.page");
    var s = err.status;
    var reason = err.problem && err.problem.reason;
    return describeReason(s, reason, err.detail, err.retryAfter, what, err.problem);
  }
  function describeReason(s, reason, detail, retryAfter, what, problem) {
    detail = detail || "";
    if (reason === "otp_wrong") {
      var left = problem && problem.attempts_left;
      return left > 0 ? t("e.otp_wrong_left", { n: left }) : t("r.otp_locked");
    }
    if (reason === "phone_mismatch") return t("r.phone_mismatch") + t("e.phone_mismatch_help");
    if (reason && M["r." + reason]) return t("r." + reason);
    var wait = retryAfter ? t("e.wait_s", { s: retryAfter }) : t("e.wait");
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
      for (var i = 0; i < FIELD_TEXT.length; i++) {
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

  // ---- language and 长辈模式 --------------------------------------------------------------------------
  var zhStatic = null;
  function applyStatic() {
    var els = document.querySelectorAll("[data-i18n]");
    if (zhStatic === null) {
      zhStatic = {};
      for (var i = 0; i < els.length; i++) zhStatic[els[i].getAttribute("data-i18n")] = els[i].textContent;
      zhStatic["pass.alt"] = $("pass-qr").getAttribute("alt");
    }
    for (var j = 0; j < els.length; j++) {
      var key = els[j].getAttribute("data-i18n");
      var text = lang === "en" ? STATIC_EN[key] : zhStatic[key];
      if (elderOn() && ELDER_WORDS[key]) text = ELDER_WORDS[key][lang === "en" ? 1 : 0];
      if (text !== undefined) els[j].textContent = text;
    }
    var alt = lang === "en" ? STATIC_EN["pass.alt"] : zhStatic["pass.alt"];
    $("pass-qr").setAttribute("alt", alt);
    $("home-pass-qr").setAttribute("alt", alt);
    document.documentElement.setAttribute("lang", lang);
    document.title = home ? t("title.home") : t("title") + (cfg.venueName ? " · " + cfg.venueName : "");
    var toggle = $("lang-toggle");
    toggle.textContent = t("lang.other");
    toggle.setAttribute("lang", lang === "en" ? "zh-CN" : "en");
    $("companion-toggle").textContent = $("companion-form").hidden ? t("cmp.add") : t("cmp.close");
    renderElderToggle();
    renderRules();
  }
  function setLang(next) {
    lang = next === "en" ? "en" : "zh-CN";
    storeSet(LANG_KEY, lang, 365 * 86400);
    writeCookie(LANG_KEY, lang, 365 * 86400);  // the server renders its error pages in this language
    resetFormatters();
    applyStatic();
    clearMessage();
    rerender();
    sendLang();
  }
  /** The server keeps the page's language for the texts it sends (once per change and resident). */
  function sendLang() {
    if (!resident || navigator.onLine === false) return;
    var sent = storeGet(LANG_SENT_KEY);
    var owner = resident;
    if (sent && String(sent.owner) === String(owner.person_id) && sent.lang === lang) return;
    var want = lang;
    api("PUT", "/v1/residents/me/language", { lang: want }, owner.token)
      .then(function () { storeSet(LANG_SENT_KEY, { owner: String(owner.person_id), lang: want }, 365 * 86400); })
      .catch(function () { /* sent again on the next load */ });
  }
  function elderOn() {
    return document.documentElement.classList.contains("elder");
  }
  function renderElderToggle() {
    var b = $("elder-toggle");
    b.textContent = elderOn() ? t("elder.off") : t("elder.on");
    b.setAttribute("aria-pressed", elderOn() ? "true" : "false");
  }
  function setElder(on) {
    document.documentElement.classList.toggle("elder", !!on);
    storeSet(ELDER_KEY, !!on, 365 * 86400);
    applyStatic();
    rerender();
  }

  /** The venue's rules, shown before the tap. */
  function renderRules() {
    var ul = $("venue-rules");
    while (ul.firstChild) ul.removeChild(ul.firstChild);
    if (cfg.testHours) ul.appendChild(item("li", "rule-test", t("rule.test", { hours: cfg.testHours })));
    if (cfg.dwellMinutes) ul.appendChild(item("li", "rule-dwell", t("rule.dwell", { minutes: cfg.dwellMinutes })));
    ul.hidden = !ul.firstChild;
  }
  function item(tag, cls, text) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // ---- views -------------------------------------------------------------------------------------
  var VIEWS = ["view-register", "view-ready", "view-result", "view-pass", "view-visits", "view-offline"];
  var view = "";
  function show(id) {
    view = id;
    VIEWS.forEach(function (v) { $(v).hidden = v !== id; });
    app.setAttribute("data-view", id);
    // the poster's venue card would name another venue above a result: the panel names its own
    $("venue-card").hidden = id === "view-result" || id === "view-offline" || !cfg.code || cfg.offlinePoster;
    if (id !== "view-result") stopResultTimers();
    if (id !== "view-pass" && !(home && id === "view-ready")) stopPass();
  }
  function rerender() {
    if (view === "view-ready") renderReady();
    if (view === "view-result") renderResult();
    if (view === "view-visits") renderVisits();
    if (view === "view-offline") renderOffline();
    renderNotices();
  }

  var resident = null;

  function showRegister(notice) {
    resident = null;
    show("view-register");
    renderNotices();
    if (notice) showMessage(notice, "error"); else clearMessage();
  }

  function showReady(notice) {
    show("view-ready");
    if (notice) showMessage(notice, "info"); else clearMessage();
    renderReady();
    if (!home) {
      refreshCompanions();
      startLocating();
    }
    loadHome();
    if (home) loadPass();
  }
  function renderReady() {
    $("checkin-card").hidden = home;
    var btn = $("checkin-button");
    btn.disabled = busy;
    btn.textContent = busy ? t("checkin.busy") : t("checkin");
    if (!home) renderCompanions(cachedCompanions());
    renderCode();
    renderFamily();
    renderGuardians();
    renderStays();
    renderQueue();
  }

  // ---- the health code (GET /v1/residents/me): the resident's and their family's -------------------------
  var homeData = null;     // the last answer for this resident, or {error: true}
  var staysEpoch = 0;      // bumped by every local change of the open stays
  function loadHome() {
    if (!resident) return Promise.resolve();
    var owner = resident;
    var epoch = staysEpoch;
    return api("GET", "/v1/residents/me", undefined, owner.token)
      .then(function (data) {
        if (resident !== owner || !data) return;
        homeData = data;
        rememberColour(data.status, data.evaluated_at);
        if (epoch === staysEpoch) syncStays(data.open_stay);
        if (data.pending_guardians > 0) loadGuardians(); else pendingGuardians = [];
        if (view === "view-ready") {
          renderCode();
          renderFamily();
          renderGuardians();
          if (!home) renderCompanions(cachedCompanions());
        }
      })
      .catch(function (err) {
        if (err instanceof ApiError && err.status === 401) {
          forgetResident();
          showRegister(describe(err, "home"));
          return;
        }
        if (!homeData) homeData = { error: true };
        if (view === "view-ready") renderCode();
      });
  }
  /** The open stay as the server knows it (one place at a time: at most one) replaces the kept one. */
  function syncStays(open) {
    var kept = loadStays();
    var next = open ? [{
      checkin_id: open.checkin_id, owner: String(resident.person_id), venue_id: String(open.venue_id),
      venue_name: open.venue_name, at: open.at, ends_at: open.ends_at,
    }] : [];
    var same = kept.length === next.length && (!next.length ||
      (kept[0].checkin_id === next[0].checkin_id && kept[0].ends_at === next[0].ends_at));
    if (same) return;
    saveStays(next);
    if (view === "view-ready") renderStays();
  }
  function ownData() {
    return homeData && !homeData.error ? homeData : null;
  }
  function codeReason(reason) {
    return M["code.reason." + reason] ? t("code.reason." + reason) : reason;
  }
  function renderCode() {
    $("my-code").hidden = !resident;
    $("my-code").classList.toggle("compact", !home);
    var d = ownData();
    $("code-panel").setAttribute("data-status", d && M["status." + d.status] ? d.status : "");
    $("code-name").textContent = d ? d.name_masked : "";
    $("code-colour").textContent = d ? statusText(d.status) : homeData && homeData.error ? t("code.down") : t("code.loading");
    var reason = d && d.reason ? t("code.reason", { reason: codeReason(d.reason) }) : "";
    $("code-reason").textContent = reason;
    $("code-reason").hidden = !reason;
    var since = d && d.since ? t("code.since", { at: fmt("short", d.since) }) : "";
    $("code-since").textContent = since;
    $("code-since").hidden = !since;
    $("code-test").textContent = d ? (d.last_negative_test_at
      ? t("code.test", { at: fmt("short", d.last_negative_test_at) }) : t("code.test_none")) : "";
    $("code-test").hidden = !d;
    $("home-pass").hidden = !home;
  }
  function dependantOf(personId) {
    var d = ownData();
    var list = (d && d.dependants) || [];
    for (var i = 0; i < list.length; i++) if (String(list[i].person_id) === String(personId)) return list[i];
    return null;
  }
  function renderFamily() {
    var d = ownData();
    var list = (home && d && d.dependants) || [];
    var ul = $("family-list");
    while (ul.firstChild) ul.removeChild(ul.firstChild);
    list.forEach(function (p) {
      var li = item("li", "member");
      li.setAttribute("data-person-id", String(p.person_id));
      li.setAttribute("data-status", M["status." + p.status] ? p.status : "");
      var chip = item("div", "f-chip");
      chip.setAttribute("data-status", M["status." + p.status] ? p.status : "");
      chip.appendChild(item("span", "f-colour", statusText(p.status)));
      li.appendChild(chip);
      var who = item("div", "f-who");
      who.appendChild(item("div", "f-name", p.name_masked || "*"));
      if (p.reason) who.appendChild(item("div", "f-reason", t("code.reason", { reason: codeReason(p.reason) })));
      if (p.since) who.appendChild(item("div", "f-since", t("code.since", { at: fmt("short", p.since) })));
      who.appendChild(item("div", "f-test", p.last_negative_test_at
        ? t("code.test", { at: fmt("short", p.last_negative_test_at) }) : t("code.test_none")));
      if (p.open_stay) who.appendChild(item("div", "f-stay", t("family.here", { venue: p.open_stay.venue_name })));
      if (p.unread_notices) who.appendChild(item("div", "f-unread", t("family.unread", { n: p.unread_notices })));
      li.appendChild(who);
      ul.appendChild(li);
    });
    $("family").hidden = list.length === 0;
  }

  // ---- guardian links waiting for this resident's confirmation (after taking over their record) ---------
  var pendingGuardians = [];
  function loadGuardians() {
    if (!resident) return Promise.resolve();
    var owner = resident;
    return api("GET", "/v1/residents/me/guardians", undefined, owner.token)
      .then(function (list) {
        if (resident !== owner || !Array.isArray(list)) return;
        pendingGuardians = list.filter(function (g) { return g.pending; });
        if (view === "view-ready") renderGuardians();
      })
      .catch(function () { /* shown again on the next load */ });
  }
  function renderGuardians() {
    var list = home ? pendingGuardians : [];
    var ul = $("guardian-list");
    while (ul.firstChild) ul.removeChild(ul.firstChild);
    list.forEach(function (g) {
      var li = item("li", "guardian");
      li.setAttribute("data-person-id", String(g.person_id));
      li.appendChild(item("div", "g-name", t("guardian.pending", { name: g.name_masked || "*" })));
      var buttons = item("div", "g-buttons");
      var yes = item("button", "btn primary g-confirm", t("guardian.confirm"));
      yes.type = "button";
      yes.addEventListener("click", function () { answerGuardian(g, true, yes); });
      var no = item("button", "btn secondary g-refuse", t("guardian.refuse"));
      no.type = "button";
      no.addEventListener("click", function () {
        confirmTap(no, t("guardian.refuse_confirm", { name: g.name_masked || "" }), function () {
          answerGuardian(g, false, no);
        });
      });
      buttons.appendChild(yes);
      buttons.appendChild(no);
      li.appendChild(buttons);
      ul.appendChild(li);
    });
    $("guardians").hidden = list.length === 0;
  }
  function answerGuardian(g, allow, button) {
    if (!resident) return showRegister();
    button.disabled = true;
    var path = "/v1/residents/me/guardians/" + encodeURIComponent(String(g.person_id));
    var call = allow ? api("POST", path + "/confirm", {}, resident.token) : api("DELETE", path, undefined, resident.token);
    call
      .catch(function (err) {
        if (err instanceof ApiError && err.status === 404) return null;  // ended meanwhile
        throw err;
      })
      .then(function () {
        pendingGuardians = pendingGuardians.filter(function (x) { return x.person_id !== g.person_id; });
        renderGuardians();
        showMessage(t(allow ? "guardian.confirmed" : "guardian.refused", { name: g.name_masked || "" }), "info");
        loadHome();
      })
      .catch(function (err) {
        button.disabled = false;
        showMessage(describe(err, "guardian"), "error");
      });
  }

  /** A tap that ends something asks for a second one: the first turns the button into the question. */
  function confirmTap(button, question, action) {
    if (button.getAttribute("data-armed") === "1") {
      disarm(button);
      action();
      return;
    }
    button.setAttribute("data-armed", "1");
    button.setAttribute("data-label", button.textContent);
    button.textContent = question;
    button.classList.add("armed");
    var timer = setTimeout(function () { disarm(button); }, CONFIRM_MS);
    button.setAttribute("data-timer", String(timer));
  }
  function disarm(button) {
    if (button.getAttribute("data-armed") !== "1") return;
    clearTimeout(parseInt(button.getAttribute("data-timer") || "0", 10));
    button.removeAttribute("data-armed");
    button.classList.remove("armed");
    button.textContent = button.getAttribute("data-label") || button.textContent;
  }

  // ---- what the phone remembers for the offline screen: the last colour, the venues seen -------------------
  function rememberColour(status, at) {
    if (!resident || !M["status." + status] || !at) return;
    storeSet(LAST_KEY, { owner: String(resident.person_id), status: status, at: at }, 30 * 86400);
  }
  function lastColour() {
    var c = storeGet(LAST_KEY);
    return c && resident && String(c.owner) === String(resident.person_id) && M["status." + c.status] ? c : null;
  }
  function rememberVenue() {
    if (!cfg.venueId || !cfg.venueName) return;
    var all = storeGet(VENUES_KEY);
    if (!all || typeof all !== "object" || Array.isArray(all)) all = {};
    all[cfg.venueId] = { name: cfg.venueName, dwell: cfg.dwellMinutes, test_hours: cfg.testHours, seen: Date.now() };
    var ids = Object.keys(all).sort(function (a, b) { return (all[b].seen || 0) - (all[a].seen || 0); });
    ids.slice(MAX_VENUES).forEach(function (id) { delete all[id]; });
    storeSet(VENUES_KEY, all, 365 * 86400);
  }
  function rememberedVenue(venueId) {
    var all = storeGet(VENUES_KEY);
    var v = all && typeof all === "object" ? all[venueId] : null;
    return v && typeof v.name === "string" ? v : null;
  }
  // ---- companions (family members checked in from this phone) ---------------------------------------
  function cachedCompanions() {
    var c = storeGet(COMPANIONS_KEY);
    if (!c || !resident || String(c.owner) !== String(resident.person_id) || !Array.isArray(c.list)) return [];
    return c.list;
  }
  function saveCompanions(list) {
    storeSet(COMPANIONS_KEY, { owner: resident.person_id, list: list }, 30 * 86400);
  }
  function selectedCompanions() {
    var boxes = document.querySelectorAll("#companion-choices input:checked");
    var out = [];
    for (var i = 0; i < boxes.length; i++) out.push(boxes[i].value);
    return out;
  }
  function renderCompanions(list, alsoChecked) {
    var checked = selectedCompanions();
    if (alsoChecked) checked.push(String(alsoChecked));
    var ul = $("companion-choices");
    while (ul.firstChild) ul.removeChild(ul.firstChild);
    list.forEach(function (c) {
      var li = document.createElement("li");
      var label = document.createElement("label");
      var box = document.createElement("input");
      box.type = "checkbox";
      box.value = String(c.person_id);
      box.checked = checked.indexOf(String(c.person_id)) >= 0;
      var name = document.createElement("span");
      name.textContent = c.name_masked || "*";
      label.appendChild(box);
      var dep = dependantOf(c.person_id);
      if (dep && M["status." + dep.status]) {  // the family member's colour, beside their name
        var dot = item("span", "dot");
        dot.setAttribute("data-status", dep.status);
        dot.setAttribute("title", statusText(dep.status));
        label.appendChild(dot);
      }
      label.appendChild(name);
      li.appendChild(label);
      var remove = document.createElement("button");
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
  function refreshCompanions() {
    if (!resident) return;
    var owner = resident.person_id;
    api("GET", "/v1/residents/me/companions", undefined, resident.token)
      .then(function (list) {
        if (!resident || resident.person_id !== owner || !Array.isArray(list)) return;
        saveCompanions(list);
        renderCompanions(list);
      })
      .catch(function () { /* offline or overloaded: the cached list stays */ });
  }
  function onRemoveCompanion(c) {
    if (!resident) return showRegister();
    if (!window.confirm(t("remove.confirm", { name: c.name_masked || "" }))) return;
    api("DELETE", "/v1/residents/me/companions/" + encodeURIComponent(String(c.person_id)), undefined, resident.token)
      .catch(function (err) {
        if (err instanceof ApiError && err.status === 404) return null;  // already gone
        throw err;
      })
      .then(function () {
        var list = cachedCompanions().filter(function (x) { return String(x.person_id) !== String(c.person_id); });
        saveCompanions(list);
        renderCompanions(list);
        var note = $("companion-removed");
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
  function onSendCompanionCode() {
    var phone = cleanPhone($("cmp-phone").value);
    if (!/^1\d{10}$/.test(phone)) return companionError($("cmp-phone"), t("f.cmp_phone"));
    companionError(null, "");
    sendCode(phone, $("cmp-otp-send"), function (text) { companionError(null, text); }).then(function (ok) {
      if (ok) {
        $("cmp-otp-row").hidden = false;
        $("cmp-otp").focus();
      }
    });
  }
  function toggleCompanionForm(open) {
    $("companion-form").hidden = !open;
    $("companion-toggle").setAttribute("aria-expanded", open ? "true" : "false");
    $("companion-toggle").textContent = open ? t("cmp.close") : t("cmp.add");
    if (open) $("cmp-name").focus();
  }
  function companionError(input, text) {
    var el = $("companion-error");
    [$("cmp-name"), $("cmp-id"), $("cmp-phone")].forEach(function (f) { f.removeAttribute("aria-invalid"); });
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
    el.textContent = text || "";
    el.hidden = !text;
  }
  function onAddCompanion(ev) {
    ev.preventDefault();
    if (!resident) return showRegister();
    var name = $("cmp-name").value.trim();
    var idNumber = $("cmp-id").value.replace(/[\s\-]/g, "").toUpperCase();
    var phone = cleanPhone($("cmp-phone").value);
    var code = $("cmp-otp").value.replace(/[\s\-]/g, "");
    if (!name || name.length > 50) return companionError($("cmp-name"), t("f.cmp_name"));
    if (!idNumberValid(idNumber)) return companionError($("cmp-id"), t("f.id"));
    if (phone && !/^1\d{10}$/.test(phone)) return companionError($("cmp-phone"), t("f.cmp_phone_opt"));
    if (phone && !challenges[phone]) {
      return companionError($("cmp-phone"), t("f.cmp_otp_first"));
    }
    if (phone && !/^\d{6}$/.test(code)) return companionError($("cmp-otp"), t("f.cmp_otp"));
    companionError(null, "");
    var btn = $("companion-submit");
    btn.disabled = true;
    var body = { name: name, id_number: idNumber };
    if (phone) {
      body.phone = phone;
      body.challenge_id = challenges[phone];
      body.otp = code;
    }
    api("POST", "/v1/residents/me/companions", body, resident.token)
      .then(function (c) {
        var list = cachedCompanions().filter(function (x) { return String(x.person_id) !== String(c.person_id); });
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

  // ---- registration ---------------------------------------------------------------------------------
  var ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  var ID_CHECK = "10X98765432";
  function idNumberValid(id) {
    if (!/^\d{17}[\dX]$/.test(id)) return false;
    var sum = 0;
    for (var i = 0; i < 17; i++) sum += (id.charCodeAt(i) - 48) * ID_WEIGHTS[i];
    return ID_CHECK.charAt(sum % 11) === id.charAt(17);
  }

  function fieldError(input, text) {
    var el = $("register-error");
    [$("reg-name"), $("reg-phone"), $("reg-id")].forEach(function (f) { f.removeAttribute("aria-invalid"); });
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
    el.textContent = text || "";
    el.hidden = !text;
  }

  /** A phone number as typed or pasted: spaces, dashes, brackets and a +86 prefix are dropped. */
  function cleanPhone(text) {
    var t = String(text || "").replace(/[\s\-()（）]/g, "");
    if (/^\+?86(1\d{10})$/.test(t)) t = t.replace(/^\+?86/, "");
    return t;
  }

  // ---- one-time codes ----------------------------------------------------------------------------
  var OTP_WAIT_S = 60;
  var challenges = {};  // phone -> challenge id of the last code sent to it (kept until it expires)
  /** Codes asked for survive a reload (the browser killed while the resident reads the SMS). */
  function keptChallenges() {
    var kept = storeGet(OTP_KEY);
    var out = {};
    if (!kept || typeof kept !== "object" || Array.isArray(kept)) return out;
    var now = Date.now();
    Object.keys(kept).forEach(function (phone) {
      var c = kept[phone];
      var until = c && asDate(c.expires_at);
      if (c && typeof c.challenge_id === "string" && until && until.getTime() > now) out[phone] = c;
    });
    return out;
  }
  function keepChallenge(phone, data) {
    var kept = keptChallenges();
    kept[phone] = { challenge_id: data.challenge_id, expires_at: data.expires_at, sent_at: new Date().toISOString() };
    storeSet(OTP_KEY, kept, 600);
  }
  function dropChallenge(phone) {
    var kept = keptChallenges();
    delete kept[phone];
    if (Object.keys(kept).length) storeSet(OTP_KEY, kept, 600); else storeDel(OTP_KEY);
    delete challenges[phone];
  }
  /** On load: the codes still valid, the phone of the latest in the form, its wait still counted. */
  function restoreChallenges() {
    var kept = keptChallenges();
    var latest = null;
    Object.keys(kept).forEach(function (phone) {
      challenges[phone] = kept[phone].challenge_id;
      if (!latest || (kept[phone].sent_at || "") > (kept[latest].sent_at || "")) latest = phone;
    });
    if (!latest) return;
    if (!$("reg-phone").value) $("reg-phone").value = latest;
    var sent = asDate(kept[latest].sent_at);
    var left = sent ? OTP_WAIT_S - Math.floor((Date.now() - sent.getTime()) / 1000) : 0;
    if (left > 0) countdown($("otp-send"), left, t("otp.send"));
    showMessage(t("otp.sent", { phone: latest.slice(0, 3) + "****" + latest.slice(7) }), "info");
  }
  function countdown(button, seconds, label) {
    var left = seconds;
    button.disabled = true;
    button.textContent = t("otp.again", { n: left });
    var timer = setInterval(function () {
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
  function sendCode(phone, button, onError) {
    var label = t("otp.send");
    button.disabled = true;
    return api("POST", "/v1/residents/otp", { phone: phone })
      .then(function (data) {
        challenges[phone] = data.challenge_id;
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
  function onSendRegisterCode() {
    var phone = cleanPhone($("reg-phone").value);
    if (!/^1\d{10}$/.test(phone)) return fieldError($("reg-phone"), t("f.phone"));
    fieldError(null, "");
    sendCode(phone, $("otp-send"), function (text) { fieldError(null, text); }).then(function (ok) {
      if (ok) {
        showMessage(t("otp.sent", { phone: phone.slice(0, 3) + "****" + phone.slice(7) }), "info");
        $("reg-otp").focus();
      }
    });
  }

  function onRegister(ev) {
    ev.preventDefault();
    var name = $("reg-name").value.trim();
    var phone = cleanPhone($("reg-phone").value);
    var idNumber = $("reg-id").value.replace(/[\s\-]/g, "").toUpperCase();
    var code = $("reg-otp").value.replace(/[\s\-]/g, "");
    if (!name || name.length > 50) return fieldError($("reg-name"), t("f.name"));
    if (!idNumberValid(idNumber)) return fieldError($("reg-id"), t("f.id"));
    if (!/^1\d{10}$/.test(phone)) return fieldError($("reg-phone"), t("f.phone"));
    if (!challenges[phone]) return fieldError($("reg-otp"), t("f.otp_first"));
    if (!/^\d{6}$/.test(code)) return fieldError($("reg-otp"), t("f.otp"));
    fieldError(null, "");
    var btn = $("register-submit");
    btn.disabled = true;
    btn.textContent = t("submitting");
    var body = { name: name, phone: phone, id_number: idNumber, challenge_id: challenges[phone], otp: code };
    api("POST", "/v1/residents", body)
      .then(function (data) {
        if (!data || typeof data.token !== "string") throw new ApiError(500, null, null);
        resident = { token: data.token, person_id: data.person_id };
        var exp = tokenExpiry(data.token);
        var maxAge = exp ? Math.max(60, exp - Math.floor(Date.now() / 1000)) : 30 * 86400;
        storeSet(RESIDENT_KEY, resident, maxAge);
        $("register-form").reset();
        challenges = {};
        storeDel(OTP_KEY);
        sendLang();
        showReady(t("reg.saved"));
      })
      .catch(function (err) {
        if (err instanceof ApiError && err.problem && err.problem.reason === "phone_mismatch") {
          $("rebind-help").open = true;
        }
        var reason = err instanceof ApiError && err.problem && err.problem.reason;
        if (reason === "otp_expired" || reason === "otp_locked") dropChallenge(phone);
        fieldError(null, describe(err, "register"));
      })
      .then(function () {
        btn.disabled = false;
        btn.textContent = t("submit");
      });
  }

  // ---- location (optional, never waited on for long) --------------------------------------------------
  var geo = { pos: null, pending: null };
  function startLocating() {
    if (geo.pending || !navigator.geolocation) return;
    geo.pending = new Promise(function (resolve) {
      try {
        navigator.geolocation.getCurrentPosition(
          function (p) {
            geo.pos = {
              lat: Math.round(p.coords.latitude * 1e6) / 1e6,
              lon: Math.round(p.coords.longitude * 1e6) / 1e6,
              accuracy_m: Math.max(0, Math.round(p.coords.accuracy || 0)),
            };
            resolve(geo.pos);
          },
          function () { resolve(null); },
          { enableHighAccuracy: false, timeout: 8000, maximumAge: 120000 }
        );
      } catch (e) {
        resolve(null);
      }
    });
  }
  function locationSoon() {
    if (geo.pos) return Promise.resolve(geo.pos);
    if (!geo.pending) return Promise.resolve(null);
    return Promise.race([geo.pending, sleep(LOCATION_WAIT_MS).then(function () { return null; })]);
  }

  // ---- check-in ---------------------------------------------------------------------------------------
  function randomId() {
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    var out = "";
    for (var i = 0; i < bytes.length; i++) out += (bytes[i] + 256).toString(16).slice(1);
    return out;
  }

  var busy = false;
  function onCheckin() {
    if (busy) return;
    if (!resident) return showRegister();
    busy = true;
    clearMessage();
    var btn = $("checkin-button");
    btn.disabled = true;
    btn.textContent = t("checkin.busy");
    // taken at the tap: an offline scan is uploaded later with these two
    var body = { code: cfg.code, client_id: randomId() };
    // a screen's code: the instant the server saw it current, and its proof (taken for 5 minutes)
    if (cfg.codeProof) body.code_proof = cfg.codeProof;
    var scannedAt = (cfg.seenAt || new Date()).toISOString();
    var companions = selectedCompanions().map(Number);
    if (companions.length) body.companions = companions;
    var owner = resident;
    var attempt = navigator.onLine === false
      ? Promise.reject(new ApiError(0, null, null))
      : locationSoon().then(function (loc) {
        if (loc) body.location = loc;
        return apiRetrying("POST", "/v1/checkins", body, owner.token, 3);
      });
    attempt
      .then(function (data) {
        busy = false;
        rememberStay(data);
        showResult(data);
        loadNotices();
        loadHome();
      })
      .catch(function (err) {
        busy = false;
        if (isNetworkError(err)) {
          // it may have arrived: the same client_id makes the upload a repeat, not a second stay
          var entry = queueEntry(owner, body.client_id, scannedAt, companions);
          if (!enqueue(entry)) {
            renderReady();
            showMessage(t("queue.full"), "error");
            return;
          }
          showOffline(entry);
          return;
        }
        if (err instanceof ApiError && err.status === 401) {
          forgetResident();
          showRegister(describe(err, "checkin"));
          return;
        }
        showMessage(describe(err, "checkin"), "error");
        renderReady();
      });
  }

  function queueEntry(owner, clientId, scannedAt, companions) {
    var entry = {
      client_id: clientId, scanned_at: scannedAt, code: cfg.code, companions: companions,
      venue_id: cfg.venueId, venue_name: cfg.venueName, dwell_minutes: cfg.dwellMinutes,
      owner: String(owner.person_id),
    };
    if (cfg.codeProof) entry.code_proof = cfg.codeProof;
    return entry;
  }

  // ---- the grey screen: a scan kept on the phone, not verified by anyone -----------------------------------
  var offlineEntry = null;
  function showOffline(entry) {
    offlineEntry = entry;
    clearMessage();
    show("view-offline");
    renderOffline();
    window.scrollTo(0, 0);
  }
  /** What the screen says: the scan is saved, not verified; the last colour the server gave and when
   * (words, not a coloured panel); no clock, no moving band, no verdict. */
  function renderOffline() {
    var e = offlineEntry || {};
    $("o-venue").textContent = e.venue_name || (e.venue_id ? t("offline.venue", { id: e.venue_id }) : "");
    $("o-venue").hidden = !$("o-venue").textContent;
    $("o-title").textContent = t("offline.title");
    $("o-sub").textContent = t("offline.other");
    $("o-sub").setAttribute("lang", lang === "en" ? "zh-CN" : "en");
    $("o-saved").textContent = t("offline.saved");
    var last = lastColour();
    $("o-last").textContent = last
      ? t("offline.last", { colour: statusText(last.status), at: formatInstant(last.at) })
      : t("offline.last_none");
    $("o-time").textContent = formatInstant(e.scanned_at);
    $("o-state").textContent = t("offline.waiting");
  }
  /** A poster opened with no network (the service worker's shell): the scan is queued at once. */
  function queueOfflinePoster() {
    var now = Date.now();
    var owner = resident;
    // the same poster opened again within a minute is the same scan (the server's repeat rule too)
    var again = myQueue().filter(function (x) {
      var at = asDate(x.scanned_at);
      return x.code === cfg.code && at && now - at.getTime() < 60000;
    })[0];
    var entry = again || queueEntry(owner, randomId(), new Date(now).toISOString(), []);
    if (!again && !enqueue(entry)) {
      showReady();
      showMessage(t("queue.full"), "error");
      return;
    }
    showOffline(entry);
  }

  // ---- open stays (this phone's check-ins not yet checked out, any venue) ---------------------------
  function loadStays() {
    var list = storeGet(STAYS_KEY);
    if (!Array.isArray(list) || !resident) return [];
    var now = Date.now();
    return list.filter(function (s) {
      var at = asDate(s.at);
      return s && s.checkin_id && String(s.owner) === String(resident.person_id) && at && now - at.getTime() < MAX_STAY_MS;
    });
  }
  /** The newest stay only, whatever order the answers came in: a person is in one place at a time,
   * so a later check-in has ended every earlier stay (docs/ARCHITECTURE.md, "Stays and contacts"). */
  function saveStays(list) {
    staysEpoch += 1;
    var ms = function (s) { var d = asDate(s.at); return d ? d.getTime() : 0; };
    list.sort(function (a, b) { return ms(b) - ms(a); });
    storeSet(STAYS_KEY, list.slice(0, 1), 43200);
  }
  function endedByNextStay(data) {
    var owner = data.people && data.people[0];
    return !!(owner && owner.ended_by === "next_stay");
  }
  function rememberStay(data) {
    if (!data || !data.checkin_id || !resident) return;
    var list = loadStays().filter(function (s) { return s.checkin_id !== data.checkin_id; });
    if (!data.checked_out_at && !endedByNextStay(data)) {
      list.unshift({
        checkin_id: data.checkin_id,
        owner: String(resident.person_id),
        venue_id: String((data.venue && data.venue.venue_id) || cfg.venueId),
        venue_name: (data.venue && data.venue.name) || cfg.venueName,
        at: data.at,
        ends_at: data.ends_at,
      });
    }
    saveStays(list);
  }
  function dropStay(checkinId) {
    saveStays(loadStays().filter(function (s) { return s.checkin_id !== checkinId; }));
  }

  var staysTimer = null;
  function renderStays() {
    var stays = loadStays();
    var ul = $("stay-list");
    while (ul.firstChild) ul.removeChild(ul.firstChild);
    stays.forEach(function (s) {
      var li = document.createElement("li");
      li.setAttribute("data-checkin-id", s.checkin_id);
      li.appendChild(item("div", "stay-venue", s.venue_name));
      li.appendChild(item("div", "stay-times", t("stay.since", { at: fmt("short", s.at) })));
      li.appendChild(item("div", "stay-times", asDate(s.ends_at) && asDate(s.ends_at).getTime() < Date.now()
        ? t("stay.over") : t("stay.end", { at: fmt("short", s.ends_at) })));
      var elapsed = item("div", "stay-elapsed", "");
      elapsed.setAttribute("data-since", s.at);
      li.appendChild(elapsed);
      var buttons = item("div", "stay-buttons");
      var viewBtn = item("button", "btn secondary stay-view", t(elderOn() ? "stay.view_short" : "stay.view"));
      viewBtn.type = "button";
      viewBtn.addEventListener("click", function () { resume(s); });
      var outBtn = item("button", "btn primary stay-checkout", t("checkout"));
      outBtn.type = "button";
      outBtn.addEventListener("click", function () {
        confirmTap(outBtn, t("checkout.confirm"), function () { checkOut(s.checkin_id, outBtn); });
      });
      buttons.appendChild(viewBtn);
      buttons.appendChild(outBtn);
      li.appendChild(buttons);
      ul.appendChild(li);
    });
    $("stays").hidden = stays.length === 0;
    tickStays();
    if (staysTimer === null && stays.length) staysTimer = setInterval(tickStays, 15000);
  }
  function tickStays() {
    var els = document.querySelectorAll("#stay-list .stay-elapsed");
    for (var i = 0; i < els.length; i++) {
      var since = asDate(els[i].getAttribute("data-since"));
      els[i].textContent = since ? t("stay.elapsed", { d: duration(Date.now() - since.getTime()) }) : "";
    }
  }
  /** Ask the server about each remembered stay: gone or checked out elsewhere drops it. */
  function refreshStays() {
    if (!resident) return Promise.resolve();
    var owner = resident;
    return Promise.all(loadStays().map(function (s) {
      return api("GET", "/v1/checkins/" + encodeURIComponent(s.checkin_id), undefined, owner.token)
        .then(function (data) {
          if (data.checked_out_at) dropStay(s.checkin_id); else rememberStay(data);
        })
        .catch(function (err) {
          if (err instanceof ApiError && err.status === 404) dropStay(s.checkin_id);
        });
    })).then(function () {
      if (view === "view-ready") renderStays();
    });
  }

  function checkOut(checkinId, button) {
    if (!resident) return showRegister();
    clearMessage();
    if (button) {
      button.disabled = true;
      button.textContent = t("submitting");
    }
    var path = "/v1/checkins/" + encodeURIComponent(String(checkinId)) + "/checkout";
    return apiRetrying("POST", path, {}, resident.token, 3)
      .then(function (data) {
        var at = (data && data.ended_at) || new Date().toISOString();
        checkedOut(checkinId, at);
      })
      .catch(function (err) {
        if (err instanceof ApiError && (err.status === 409 || err.status === 410)) {
          checkedOut(checkinId, new Date().toISOString());
          if (err.status === 410) showMessage(describe(err, "checkout"), "info");
          return;
        }
        if (err instanceof ApiError && err.status === 401) {
          forgetResident();
          showRegister(describe(err, "checkout"));
          return;
        }
        showMessage(describe(err, "checkout"), "error");
        if (button) {
          button.disabled = false;
          button.textContent = t("checkout");
        }
      });
  }
  function checkedOut(checkinId, at) {
    dropStay(checkinId);
    if (current && current.checkin_id === checkinId) current.checked_out_at = at;
    if (staleStay && staleStay.checkin_id === checkinId) staleStay.checked_out_at = at;
    if (view === "view-result") renderResult();
    if (view === "view-ready") renderStays();
    showMessage(t("checkout.ok"), "info");
  }

  // ---- the door screen ------------------------------------------------------------------------------
  var RANK = { pass: 0, restricted: 1, deny: 2 };
  var current = null;      // the check-in shown, as the server answered it
  var resultState = "";    // "live": from the server just now; "stale": could not ask; "checking"
  var staleStay = null;    // the stay a stale screen is about (no verdict of it is shown)
  var clockTimer = null;
  var refreshTimer = null;

  function stopResultTimers() {
    if (clockTimer !== null) clearInterval(clockTimer);
    if (refreshTimer !== null) clearInterval(refreshTimer);
    clockTimer = null;
    refreshTimer = null;
  }
  function verdictOf(p) {
    return RANK[p.verdict] !== undefined ? p.verdict : "restricted";
  }
  function worstVerdict(people) {
    var worst = "pass";
    people.forEach(function (p) {
      if (RANK[verdictOf(p)] > RANK[worst]) worst = verdictOf(p);
    });
    return worst;
  }
  function reasonText(p) {
    if (!p.reason) return "";
    if (p.reason === "test_expired") {
      return cfg.testHours && String((current && current.venue && current.venue.venue_id) || "") === cfg.venueId
        ? t("reason.test_expired", { hours: cfg.testHours })
        : t("reason.test_expired_any");
    }
    return M["reason." + p.reason] ? t("reason." + p.reason) : t("reason.other", { code: p.reason });
  }
  function statusText(status) {
    return M["status." + status] ? t("status." + status) : t("status.unknown");
  }
  function ownRow(people) {
    if (resident && resident.person_id !== undefined) {
      for (var i = 0; i < people.length; i++) {
        if (String(people[i].person_id) === String(resident.person_id)) return people[i];
      }
    }
    return people[0] || null;
  }

  function showResult(data) {
    var mine = ownRow((data && data.people) || []);
    if (mine) rememberColour(mine.status, data.evaluated_at || data.at);
    current = data;
    resultState = "live";
    staleStay = null;
    clearMessage();
    show("view-result");
    renderResult();
    startResultTimers();
    window.scrollTo(0, 0);
  }
  function startResultTimers() {
    stopResultTimers();
    tick();
    clockTimer = setInterval(tick, 1000);
    refreshTimer = setInterval(reevaluate, RESULT_REFRESH_MS);
  }

  function renderResult() {
    var panel = $("result-panel");
    var live = resultState === "live" && current;
    $("r-live").hidden = !live;
    $("r-stale").hidden = resultState !== "stale";
    var people = (live && current.people) || [];
    var me = ownRow(people) || {};
    var worst = live ? worstVerdict(people) : "unknown";
    panel.setAttribute("data-verdict", worst);
    panel.setAttribute("data-status", live && M["status." + me.status] ? me.status : "");
    var group = people.length > 1;
    if (!live) {
      $("r-status").textContent = "";
      $("r-verdict").textContent = resultState === "checking" ? "…" : t("verdict.unknown");
      $("r-reason").textContent = resultState === "checking" ? t("result.checking") : "";
      $("r-reason").hidden = resultState !== "checking";
      $("r-name").textContent = "";
      $("r-stale-text").textContent = t("result.stale");
    } else {
      var deny = people.filter(function (p) { return verdictOf(p) === "deny"; }).length;
      var limited = people.filter(function (p) { return verdictOf(p) === "restricted"; }).length;
      if (group) {
        // each count is one unbreakable piece: the line breaks between them, never inside "0 人限制"
        counters($("r-status"), [t("group.people", { n: people.length })].concat(deny + limited
          ? [t("group.deny", { n: deny }), t("group.limited", { n: limited })] : [t("group.all")]));
      } else {
        $("r-status").textContent = statusText(me.status);
      }
      $("r-verdict").textContent = t("verdict." + worst);
      var reason = group ? (worst !== "pass" ? t("group.see_each") : "") : reasonText(me);
      $("r-reason").textContent = reason;
      $("r-reason").hidden = !reason;
      $("r-name").textContent = group ? "" : (me.name_masked || "");
    }
    renderPeople(group ? people : []);

    var stay = live ? current : staleStay || {};
    var venue = (live ? current.venue : { name: stay.venue_name }) || {};
    $("r-venue").textContent = venue.name || cfg.venueName;
    // the verdict names the venue it is for: a stay's result may be opened from another venue's poster
    $("r-panel-venue").textContent = venue.name || cfg.venueName;
    $("r-time").textContent = formatInstant(stay.at);
    $("r-test").textContent = live ? (me.last_negative_test_at ? formatInstant(me.last_negative_test_at) : t("test.none")) : "";
    $("r-test").hidden = $("r-test-label").hidden = !live || group;
    $("r-checked").textContent = live ? formatInstant(current.evaluated_at || current.at) : "";

    var out = $("checkout-button");
    var done = $("checkout-done");
    var checkedOutAt = live ? current.checked_out_at : staleStay && staleStay.checked_out_at;
    out.hidden = !!checkedOutAt || !(live || staleStay);
    out.disabled = false;
    if (out.getAttribute("data-armed") === "1") out.setAttribute("data-label", t("checkout"));
    else out.textContent = t("checkout");
    done.hidden = !checkedOutAt;
    done.textContent = checkedOutAt ? t("checked_out", { at: formatInstant(checkedOutAt) }) : "";
    if (live) tick();
  }
  function counters(el, parts) {
    while (el.firstChild) el.removeChild(el.firstChild);
    parts.forEach(function (text, i) {
      if (i) el.appendChild(document.createTextNode(" · "));
      el.appendChild(item("span", "counter", text));
    });
  }
  function renderPeople(people) {
    var ul = $("r-people");
    while (ul.firstChild) ul.removeChild(ul.firstChild);
    people.forEach(function (p) {
      var li = item("li", "person");
      li.setAttribute("data-person-id", String(p.person_id));
      li.setAttribute("data-verdict", verdictOf(p));
      li.setAttribute("data-status", p.status || "");
      li.appendChild(item("div", "p-name", p.name_masked || "*"));
      li.appendChild(item("div", "p-verdict", t("verdict." + verdictOf(p))));
      li.appendChild(item("div", "p-status", statusText(p.status)));
      var reason = reasonText(p);
      if (reason) li.appendChild(item("div", "p-reason", reason));
      if (cfg.testHours || p.last_negative_test_at) {
        li.appendChild(item("div", "p-test", t("test.label", {
          at: p.last_negative_test_at ? fmt("short", p.last_negative_test_at) : t("test.none"),
        })));
      }
      ul.appendChild(li);
    });
    ul.hidden = people.length === 0;
  }
  function tick() {
    var now = new Date();
    $("r-clock").textContent = formatInstant(now);
    var day = dayIndex(now);
    $("r-track").className = "live-track day-" + day;
    $("r-day").textContent = t("day.colour", { colour: t("day." + day) });
  }

  /** The verdict of a check-in made earlier: only what the server says now, never the kept copy. */
  function resume(stay) {
    if (!resident) return showRegister();
    current = null;
    staleStay = stay;
    resultState = "checking";
    clearMessage();
    show("view-result");
    renderResult();
    window.scrollTo(0, 0);
    askServer(stay);
  }
  function askServer(stay) {
    var owner = resident;
    return api("GET", "/v1/checkins/" + encodeURIComponent(stay.checkin_id), undefined, owner.token)
      .then(function (data) {
        if (view !== "view-result" || (staleStay && staleStay.checkin_id !== stay.checkin_id)) return;
        if (data.checked_out_at) dropStay(data.checkin_id); else rememberStay(data);
        showResult(data);
      })
      .catch(function (err) {
        if (view !== "view-result") return;
        if (err instanceof ApiError && err.status === 401) {
          forgetResident();
          showRegister(describe(err, "checkin"));
          return;
        }
        if (err instanceof ApiError && err.status === 404) {
          dropStay(stay.checkin_id);
          showReady();
          showMessage(t("result.gone"), "error");
          return;
        }
        goStale(stay);
        if (!isNetworkError(err)) showMessage(describe(err, "resume"), "error");
      });
  }
  function goStale(stay) {
    stopResultTimers();
    current = null;
    staleStay = stay;
    resultState = "stale";
    renderResult();
  }
  /** While the door screen is open it is judged again now and then; if that fails it stops showing one. */
  function reevaluate() {
    if (!current || !resident || view !== "view-result") return;
    var stay = { checkin_id: current.checkin_id, venue_name: current.venue && current.venue.name, at: current.at };
    var id = current.checkin_id;
    api("GET", "/v1/checkins/" + encodeURIComponent(id), undefined, resident.token)
      .then(function (data) {
        if (view !== "view-result" || !current || current.checkin_id !== id) return;
        current = data;
        resultState = "live";
        renderResult();
      })
      .catch(function (err) {
        if (view !== "view-result" || !current || current.checkin_id !== id) return;
        if (err instanceof ApiError && err.status === 401) return;
        goStale(stay);
      });
  }
  function onResultCheckout() {
    var id = current ? current.checkin_id : staleStay && staleStay.checkin_id;
    if (!id) return;
    checkOut(id, $("checkout-button"));
  }

  // ---- the door pass --------------------------------------------------------------------------------
  var passTimer = null;
  // a pass is single-use: the page asks every few seconds with the pass it shows (current), and the
  // server answers that pass until a door reads it, then a fresh one; near its end the page asks for
  // a fresh one itself
  var PASS_POLL_MS = 3000;
  var PASS_REFRESH_BEFORE_MS = 20000;
  var passShown = null;
  function stopPass() {
    if (passTimer !== null) clearTimeout(passTimer);
    passTimer = null;
  }
  /** Where the pass shows: its own view, or the home's first screen (the health code). */
  function passWanted() {
    return view === "view-pass" || (home && view === "view-ready");
  }
  function passEls() {
    return view === "view-pass" ? { img: $("pass-qr"), expiry: $("pass-expiry") }
      : { img: $("home-pass-qr"), expiry: $("home-pass-expiry") };
  }
  function loadPass() {
    stopPass();
    if (!resident) return showRegister();
    if (!passWanted()) return;
    var owner = resident.person_id;
    var keep = passShown && passShown.owner === owner &&
      new Date(passShown.expires_at).getTime() - Date.now() > PASS_REFRESH_BEFORE_MS;
    var query = keep ? "?current=" + encodeURIComponent(passShown.pass) : "";
    api("GET", "/v1/residents/me/pass" + query, undefined, resident.token)
      .then(function (data) {
        if (!passWanted()) return;
        var els = passEls();
        if (els.img.getAttribute("data-pass") !== data["pass"]) {
          els.img.src = data.qr_svg;
          els.img.setAttribute("data-pass", data["pass"]);
        }
        passShown = { owner: owner, pass: data["pass"], expires_at: data.expires_at };
        els.expiry.textContent = t("pass.until", { at: formatInstant(data.expires_at) });
        stopPass();
        passTimer = setTimeout(function () {
          if (passWanted()) loadPass();
        }, PASS_POLL_MS);
      })
      .catch(function (err) {
        if (err instanceof ApiError && err.status === 401) {
          forgetResident();
          showRegister(describe(err, "pass"));
          return;
        }
        passEls().expiry.textContent = describe(err, "pass");
        stopPass();
        passTimer = setTimeout(function () {
          if (passWanted()) loadPass();
        }, 10000);
      });
  }
  function showPass() {
    show("view-pass");
    clearMessage();
    loadPass();
  }
  function onRevoke() {
    if (!resident) return showRegister();
    if (!window.confirm(t("revoke.confirm"))) return;
    api("POST", "/v1/residents/me/revoke", {}, resident.token)
      .catch(function (err) {
        if (err instanceof ApiError && err.status === 401) return null;  // already revoked
        throw err;
      })
      .then(function () {
        forgetResident();
        storeDel(QUEUE_KEY);
        showRegister();
        showMessage(t("revoke.done"), "info");
      })
      .catch(function (err) { showMessage(describe(err, "revoke"), "error"); });
  }

  // ---- the offline queue ("待上传") ------------------------------------------------------------------
  function loadQueue() {
    var q = storeGet(QUEUE_KEY);
    return Array.isArray(q) ? q.filter(function (x) { return x && x.client_id && x.code; }) : [];
  }
  function saveQueue(q) {
    if (q.length) storeSet(QUEUE_KEY, q, 7 * 86400); else storeDel(QUEUE_KEY);
  }
  function enqueue(entry) {
    var q = loadQueue();
    if (q.length >= MAX_QUEUE) return false;
    q.push(entry);
    saveQueue(q);
    return true;
  }
  function myQueue() {
    if (!resident) return [];
    return loadQueue().filter(function (x) { return String(x.owner) === String(resident.person_id); });
  }
  function renderQueue() {
    var q = myQueue();
    var ul = $("queue-list");
    while (ul.firstChild) ul.removeChild(ul.firstChild);
    q.forEach(function (x) {
      var li = document.createElement("li");
      li.setAttribute("data-client-id", x.client_id);
      var name = item("div", "queue-venue", x.venue_name || "");
      name.appendChild(item("span", "queue-state", t("queue.state")));
      li.appendChild(name);
      li.appendChild(item("div", "queue-time", t("queue.item", { at: fmt("short", x.scanned_at) })));
      ul.appendChild(li);
    });
    $("queue").hidden = q.length === 0;
    $("queue-send").disabled = flushing;
  }

  var flushing = false;
  /** Send the queue through the batch route; an item that did arrive before answers as a repeat. */
  function flushQueue() {
    if (flushing || !resident || navigator.onLine === false) return Promise.resolve();
    var mine = myQueue().slice(0, BATCH_SIZE);
    if (!mine.length) return Promise.resolve();
    flushing = true;
    var owner = resident;
    var items = mine.map(function (x) {
      var it = { code: x.code, client_id: x.client_id, scanned_at: x.scanned_at };
      if (x.companions && x.companions.length) it.companions = x.companions;
      if (x.code_proof) it.code_proof = x.code_proof;
      return it;
    });
    if (view === "view-ready") renderQueue();
    return api("POST", "/v1/checkins/batch", { items: items }, owner.token)
      .then(function (out) {
        var results = (out && out.results) || [];
        var done = {};
        var sent = 0;
        var refused = [];
        var shown = null;  // the scan the grey screen is about, now recorded: its verdict is asked for
        var shownRefused = "";
        results.forEach(function (r) {
          var x = mine[r.index];
          if (!x) return;
          var onScreen = view === "view-offline" && offlineEntry && offlineEntry.client_id === x.client_id;
          if (r.status === 200 || r.status === 201) {
            done[x.client_id] = true;
            sent += 1;
            if (onScreen && r.checkin_id) {
              shown = { checkin_id: r.checkin_id, venue_name: x.venue_name, at: r.at || x.scanned_at };
            }
            if (r.checkin_id && resident && resident.person_id === owner.person_id) {
              var at = asDate(r.at || x.scanned_at) || new Date();
              var list = loadStays().filter(function (s) { return s.checkin_id !== r.checkin_id; });
              list.unshift({
                checkin_id: r.checkin_id, owner: String(owner.person_id), venue_id: String(x.venue_id),
                venue_name: x.venue_name, at: at.toISOString(),
                ends_at: new Date(at.getTime() + (x.dwell_minutes || 60) * 60000).toISOString(),
              });
              saveStays(list);
            }
          } else if (r.status !== 429 && r.status !== 503 && r.status < 500) {
            done[x.client_id] = true;  // refused for good (an old code, a closed venue...)
            refused.push(describeReason(r.status, r.error_reason, r.error, null, "checkin", null));
            if (onScreen) shownRefused = refused[refused.length - 1];
          }
        });
        saveQueue(loadQueue().filter(function (x) { return !done[x.client_id]; }));
        flushing = false;
        if (shown) {
          resume(shown);  // the server judges it now: the grey screen gives way to a real verdict
          return refreshStays();
        }
        if (shownRefused) {
          offlineEntry = null;
          showReady();
          showMessage(shownRefused, "error");
          return refreshStays();
        }
        if (refused.length) {
          showMessage(t("queue.refused", { n: refused.length, why: refused[0] }), "error");
        } else if (sent) {
          showMessage(t("queue.sent", { n: sent }), "info");
        }
        if (view === "view-ready") renderReady();
        return refreshStays();
      })
      .catch(function (err) {
        flushing = false;
        if (err instanceof ApiError && err.status === 401) {
          forgetResident();
          showRegister(describe(err, "checkin"));
          return;
        }
        if (view === "view-ready") renderQueue();
        if (!isNetworkError(err)) showMessage(describe(err, "checkin"), "error");
      });
  }

  // ---- exposure notices (unread first, before anything else) ------------------------------------------
  var notices = [];
  function loadNotices() {
    if (!resident) return Promise.resolve();
    var owner = resident;
    return api("GET", "/v1/residents/me/notices", undefined, owner.token)
      .then(function (data) {
        if (resident !== owner) return;
        notices = ((data && data.notices) || []).filter(function (n) { return !n.acked_at; });
        renderNotices();
      })
      .catch(function (err) {
        if (err instanceof ApiError && err.status === 401) {
          forgetResident();
          showRegister(describe(err, "notices"));
        }
      });
  }
  function renderNotices() {
    var list = resident ? notices : [];
    var ul = $("notice-list");
    while (ul.firstChild) ul.removeChild(ul.firstChild);
    list.forEach(function (n) {
      var level = M["notice." + n.level] ? n.level : "inform";
      var li = item("li", "exposure");
      li.id = "notice-" + n.notice_id;  // the text's link opens /me#notice-<id>
      li.setAttribute("data-notice-id", n.notice_id);
      li.setAttribute("data-level", level);
      // a guardian's copy: the notice is about a family member, named (masked)
      var family = n.for_person_id !== undefined && n.for_person_id !== null;
      var name = n.for_name_masked || "*";
      if (family) li.setAttribute("data-for-person-id", String(n.for_person_id));
      li.appendChild(item("h3", "n-title", family
        ? t("notice.family_title", { name: name, title: t("notice." + level) }) : t("notice." + level)));
      li.appendChild(item("p", "n-body", t(family ? "notice.family_body" : "notice.body", {
        name: name, visited: fmt("short", n.visited_at), venue: n.venue_name,
        since: fmt("short", n.since), until: fmt("short", n.until),
      })));
      li.appendChild(item("p", "n-advice", t("advice." + level)));
      if (n.message) {
        var msg = item("p", "n-message", t("notice.from"));
        msg.appendChild(item("span", "n-message-text", n.message));
        li.appendChild(msg);
      }
      var ack = item("button", "btn primary n-ack", family ? t("notice.ack_for", { name: name }) : t("notice.ack"));
      ack.type = "button";
      ack.addEventListener("click", function () { acknowledge(n, ack); });
      li.appendChild(ack);
      ul.appendChild(li);
    });
    $("notices").hidden = list.length === 0;
    var target = /^#notice-([0-9a-f]{18}(-\d+)?)$/.exec(location.hash);
    if (target && !noticeShown) {
      var el = document.getElementById("notice-" + target[1]);
      if (el) {
        noticeShown = true;
        el.classList.add("target");
        el.scrollIntoView({ block: "start" });
      }
    }
  }
  var noticeShown = false;
  function acknowledge(n, button) {
    if (!resident) return;
    button.disabled = true;
    api("POST", "/v1/residents/me/notices/" + encodeURIComponent(n.notice_id) + "/ack", {}, resident.token)
      .catch(function (err) {
        if (err instanceof ApiError && err.status === 404) return null;  // gone (expired): nothing to confirm
        throw err;
      })
      .then(function () {
        notices = notices.filter(function (x) { return x.notice_id !== n.notice_id; });
        renderNotices();
      })
      .catch(function () {
        button.disabled = false;
        showMessage(t("notice.ack_failed"), "error");
      });
  }

  // ---- 我的行程 (own visits) --------------------------------------------------------------------------
  var visits = null;       // the last answer, or {error: text}
  function showVisits() {
    if (!resident) return showRegister();
    clearMessage();
    visits = { loading: true };
    show("view-visits");
    renderVisits();
    var owner = resident;
    api("GET", "/v1/residents/me/visits?days=14", undefined, owner.token)
      .then(function (data) {
        visits = data || { visits: [] };
      })
      .catch(function (err) {
        if (err instanceof ApiError && err.status === 401) {
          forgetResident();
          showRegister(describe(err, "visits"));
          return;
        }
        visits = { error: err instanceof ApiError && (err.status === 0 || err.status >= 500) ? "down" : describe(err, "visits") };
      })
      .then(function () {
        if (view === "view-visits") renderVisits();
      });
  }
  function renderVisits() {
    var ul = $("visit-list");
    while (ul.firstChild) ul.removeChild(ul.firstChild);
    var status = $("visits-status");
    status.className = "muted";
    if (!visits || visits.loading) {
      status.textContent = t("visits.loading");
      return;
    }
    if (visits.error) {
      status.textContent = visits.error === "down" ? t("visits.down") : visits.error;
      status.className = "notice error";
      return;
    }
    var list = visits.visits || [];
    status.textContent = list.length ? t("visits.count", { n: list.length }) : t("visits.none");
    var now = Date.now();
    list.forEach(function (v) {
      var li = document.createElement("li");
      li.setAttribute("data-checkin-id", v.checkin_id);
      li.appendChild(item("div", "v-venue", v.venue_name || "#" + v.venue_id));
      var verdict = item("span", "v-verdict", M["verdict." + v.verdict] ? t("verdict." + v.verdict) : "—");
      verdict.setAttribute("data-verdict", v.verdict || "");
      li.appendChild(verdict);
      var end = asDate(v.end_at);
      var open = !v.checked_out && end && end.getTime() > now;
      var time = item("div", "v-time", fmt("short", v.at) + " – " + (open ? "" : fmt("clock", v.end_at).slice(0, 5)));
      if (open) time.appendChild(item("span", "v-open", t("visits.open")));
      li.appendChild(time);
      ul.appendChild(li);
    });
  }

  // ---- start --------------------------------------------------------------------------------------------
  function start() {
    var storedLang = storeGet(LANG_KEY);
    lang = storedLang === "en" || storedLang === "zh-CN" ? storedLang : app.getAttribute("data-lang") === "en" ? "en" : "zh-CN";
    if (storedLang && readCookie(LANG_KEY) !== storedLang) writeCookie(LANG_KEY, storedLang, 365 * 86400);
    document.documentElement.classList.toggle("elder", storeGet(ELDER_KEY) === true);
    resetFormatters();
    applyStatic();

    $("lang-toggle").addEventListener("click", function () { setLang(lang === "en" ? "zh-CN" : "en"); });
    $("elder-toggle").addEventListener("click", function () { setElder(!elderOn()); });
    $("register-form").addEventListener("submit", onRegister);
    $("otp-send").addEventListener("click", onSendRegisterCode);
    $("cmp-otp-send").addEventListener("click", onSendCompanionCode);
    $("pass-button").addEventListener("click", showPass);
    $("pass-back").addEventListener("click", function () { showReady(); });
    $("visits-button").addEventListener("click", showVisits);
    $("visits-back").addEventListener("click", function () { showReady(); });
    $("revoke-button").addEventListener("click", onRevoke);
    $("checkin-button").addEventListener("click", onCheckin);
    $("checkout-button").addEventListener("click", function () {
      confirmTap($("checkout-button"), t("checkout.confirm"), onResultCheckout);
    });
    $("result-back").addEventListener("click", function () { showReady(); });
    $("r-retry").addEventListener("click", function () { if (staleStay) resume(staleStay); });
    $("queue-send").addEventListener("click", function () { flushQueue(); });
    $("companion-form").addEventListener("submit", onAddCompanion);
    $("companion-toggle").addEventListener("click", function () {
      toggleCompanionForm($("companion-form").hidden);
    });
    $("switch-person").addEventListener("click", function () {
      forgetResident();
      storeDel(QUEUE_KEY);
      notices = [];
      showRegister();
    });
    $("offline-back").addEventListener("click", function () { showReady(); });
    window.addEventListener("online", function () {
      flushQueue();
      loadNotices();
      if (view === "view-ready") loadHome();
    });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState !== "visible") return;
      loadNotices();
      if (view === "view-ready") loadHome();
    });
    setInterval(function () {
      if (document.visibilityState === "hidden") return;
      loadNotices();
      if (view === "view-ready") loadHome();
    }, NOTICE_POLL_MS);
    if ("serviceWorker" in navigator && window.isSecureContext) {
      // the shell for the next poster opened without network (docs/ARCHITECTURE.md, "The phone page")
      navigator.serviceWorker.register("/sw.js").catch(function () { /* the page works without it */ });
    }
    if (cfg.offlinePoster) {
      var known = rememberedVenue(cfg.venueId);
      if (known) {
        cfg.venueName = known.name;
        cfg.dwellMinutes = known.dwell || 0;
        cfg.testHours = known.test_hours || 0;
      }
      applyStatic();
    } else if (cfg.code) {
      rememberVenue();
    }

    var r = loadResident();
    if (r && r.expired) return showRegister(t("reg.expired"));
    if (!r) {
      showRegister(cfg.offlinePoster ? t("offline.no_resident") : "");
      if (!cfg.offlinePoster) restoreChallenges();
      return;
    }
    resident = r;
    if (cfg.offlinePoster) {
      queueOfflinePoster();
      flushQueue();
      return;
    }
    showReady();
    loadNotices();
    sendLang();
    flushQueue().then(function () { return refreshStays(); });
  }

  start();
})();
