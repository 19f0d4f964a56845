/* Phone check-in page: register once, check in with one tap, check out.
 * Everything shown is set with textContent (never innerHTML): names are user data. */
(function () {
  "use strict";

  var RESIDENT_KEY = "venue-checkin.resident";
  var LAST_KEY = "venue-checkin.last";
  var COMPANIONS_KEY = "venue-checkin.companions";
  var REQUEST_TIMEOUT_MS = 15000;
  var LOCATION_WAIT_MS = 600;
  var MAX_STAY_MS = 12 * 3600 * 1000;

  var STATUS_TEXT = { green: "绿码", yellow: "黄码", red: "红码" };
  var VERDICT_TEXT = { pass: "通行", restricted: "限制", deny: "禁止" };
  var REASON_TEXT = {
    test_expired: "核酸检测结果缺失或已超过本场所要求的时限",
    red_code: "红码人员禁止进入",
    yellow_code: "黄码人员限制进入",
    watchlist: "请配合工作人员核查",
  };

  var app = document.getElementById("app");
  if (!app) return;
  var cfg = {
    code: app.getAttribute("data-code") || "",
    venueId: app.getAttribute("data-venue-id") || "",
    venueName: app.getAttribute("data-venue-name") || "",
    tz: app.getAttribute("data-tz") || "Asia/Shanghai",
  };

  function $(id) {
    return document.getElementById(id);
  }

  // ---- time ------------------------------------------------------------------------------
  var formatter = makeFormatter(cfg.tz);
  function makeFormatter(tz) {
    var opts = {
      year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZone: tz,
    };
    try {
      return new Intl.DateTimeFormat("zh-CN", opts);
    } catch (e) {
      delete opts.timeZone;
      return new Intl.DateTimeFormat("zh-CN", opts);
    }
  }
  function formatInstant(value) {
    if (!value) return "";
    var d = value instanceof Date ? value : new Date(value);
    if (isNaN(d.getTime())) return String(value);
    return formatter.format(d);
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
      if (err instanceof ApiError && err.status === 0 && attempts > 1) {
        return sleep(800).then(function () { return apiRetrying(method, path, body, token, attempts - 1); });
      }
      throw err;
    });
  }

  var FIELD_TEXT = [
    [/id_number|id number|身份证/i, "身份证号格式不正确，请核对后重新填写。"],
    [/phone|手机/i, "手机号格式不正确，请填写 11 位手机号码。"],
    [/\bname\b|姓名/i, "姓名格式不正确，请重新填写。"],
  ];

  /** Plain zh-CN text for an API error; `what` names the action ("register", "checkin", "checkout"). */
  var REASON_MESSAGES = {
    otp_wrong: "验证码不正确",
    otp_expired: "验证码已失效或已使用，请重新获取验证码。",
    otp_locked: "验证码输错次数过多，请重新获取验证码。",
    otp_too_soon: "验证码发送过于频繁，请稍后再获取。",
    otp_daily_limit: "今天向该手机号发送的验证码已达上限，请明天再试。",
    otp_missing: "请先获取并填写短信验证码。",
    otp_malformed: "请填写短信中的 6 位数字验证码。",
    phone_mismatch: "该身份证号登记时使用的是另一个手机号，只能用那个手机号接收验证码。",
    consent_required: "这位家人已登记过，需要家人手机收到的验证码才能添加。",
    companion_limit: "同行家人数量已达上限，请先移除一位。",
    id_check_digit: "身份证号最后一位校验码不对，请核对后重新填写。",
    token_revoked: "本机的登记已失效，请重新填写个人信息。",
    code_expired: "请重新扫描屏幕上的场所码（屏幕上的场所码每隔一段时间更新，此码已过期）。",
    static_code: "请重新扫描屏幕上的场所码（该场所使用入口屏幕上的动态场所码）。",
    old_code: "场所码已更换，请向场所索取新的场所码。",
  };

  function describe(err, what) {
    if (!(err instanceof ApiError)) return "页面出错，请刷新后重试。";
    var s = err.status;
    var reason = err.problem && err.problem.reason;
    if (reason === "otp_wrong") {
      var left = err.problem.attempts_left;
      return left > 0 ? "验证码不正确，还可尝试 " + left + " 次。" : "验证码输错次数过多，请重新获取验证码。";
    }
    if (reason === "phone_mismatch") {
      return REASON_MESSAGES.phone_mismatch + "如手机号已更换或手机丢失，请见下方“换了手机号”的说明。";
    }
    if (reason && REASON_MESSAGES[reason]) return REASON_MESSAGES[reason];
    var wait = err.retryAfter ? "请 " + err.retryAfter + " 秒后再试。" : "请稍后再试。";
    if (s === 0) return "网络连接失败，请检查网络后重试。";
    if (s === 429) return "操作过于频繁，" + wait;
    if (s === 503 && /SMS/i.test(err.detail)) return "短信暂时发送失败，" + wait;
    if (s === 503) return "当前登记人数较多，系统繁忙，" + wait;
    if (s >= 500) return "服务器暂时出错，请稍后再试。";
    if (s === 401) return "登记信息已失效，请重新填写个人信息。";
    if (s === 403) {
      return what === "checkin" && /compan/i.test(err.detail)
        ? "所选同行家人有误，请刷新页面后重新选择。"
        : "没有权限进行此操作。";
    }
    if (s === 413) return "提交的内容过大。";
    if (s === 410) {
      return what === "checkout"
        ? "本次登记已超过 12 小时，停留已自动结束。"
        : "场所码已失效，请向场所索取新的场所码。";
    }
    if (s === 404) {
      if (what === "checkout") return "未找到这次登记记录。";
      if (what === "checkin") return "未找到该场所，请重新扫描场所张贴的场所码。";
      return "登记服务暂不可用，请稍后再试。";
    }
    if (s === 409) {
      if (what === "checkout") return "这次登记已经离场。";
      if (/another name/i.test(err.detail)) return "该身份证号已用其他姓名登记，请填写登记时使用的姓名。";
      if (/at most/i.test(err.detail)) return "同行家人数量已达上限。";
      return "该操作与当前状态冲突，请刷新后重试。";
    }
    if (what === "checkin" && /compan/i.test(err.detail)) return "所选同行家人有误，请刷新页面后重新选择。";
    if (what === "companion" && /own companion/i.test(err.detail)) return "不能把本人添加为同行家人。";
    if (what === "register" || what === "companion") {
      for (var i = 0; i < FIELD_TEXT.length; i++) {
        if (FIELD_TEXT[i][0].test(err.detail)) return FIELD_TEXT[i][1];
      }
      return withDetail("填写的信息有误，请核对后重试。", err.detail);
    }
    if (what === "checkin" && /venue code|code/i.test(err.detail)) {
      return "场所码无效，请重新扫描场所张贴的场所码。";
    }
    if (/location|lat|lon/i.test(err.detail)) return "定位信息无效，请关闭定位权限后重试。";
    return withDetail("请求未能完成。", err.detail);
  }
  function withDetail(text, detail) {
    return detail ? text + "（原因：" + detail + "）" : text;
  }

  // ---- views -------------------------------------------------------------------------------------
  var VIEWS = ["view-register", "view-ready", "view-result", "view-pass"];
  function show(view) {
    VIEWS.forEach(function (id) { $(id).hidden = id !== view; });
    app.setAttribute("data-view", view);
  }

  var resident = null;

  function showRegister(notice) {
    resident = null;
    show("view-register");
    if (notice) showMessage(notice, "error"); else clearMessage();
  }

  function showReady(notice) {
    show("view-ready");
    $("resume-note").hidden = true;
    if (notice) showMessage(notice, "info"); else clearMessage();
    var btn = $("checkin-button");
    btn.disabled = false;
    btn.textContent = "登记";
    renderCompanions(cachedCompanions());
    refreshCompanions();
    startLocating();
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
      label.appendChild(name);
      li.appendChild(label);
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "移除";
      remove.setAttribute("aria-label", "移除 " + (c.name_masked || ""));
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
    if (!window.confirm("确定不再与“" + (c.name_masked || "") + "”同行登记吗？")) return;
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
        note.textContent = "已移除 " + (c.name_masked || "");
        note.hidden = false;
      })
      .catch(function (err) {
        if (err instanceof ApiError && err.status === 401) {
          storeDel(RESIDENT_KEY);
          showRegister(describe(err, "companion"));
          return;
        }
        showMessage(describe(err, "companion"), "error");
      });
  }
  function onSendCompanionCode() {
    var phone = cleanPhone($("cmp-phone").value);
    if (!/^1\d{10}$/.test(phone)) return companionError($("cmp-phone"), "请填写家人的 11 位手机号码。");
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
    $("companion-toggle").textContent = open ? "收起" : "＋ 添加家人";
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
    var idNumber = $("cmp-id").value.replace(/\s/g, "").toUpperCase();
    var phone = cleanPhone($("cmp-phone").value);
    var code = $("cmp-otp").value.replace(/\s/g, "");
    if (!name || name.length > 50) return companionError($("cmp-name"), "请填写家人姓名。");
    if (!idNumberValid(idNumber)) return companionError($("cmp-id"), "身份证号不正确，请核对后重新填写。");
    if (phone && !/^1\d{10}$/.test(phone)) return companionError($("cmp-phone"), "请填写 11 位手机号码，或留空。");
    if (phone && !challenges[phone]) {
      return companionError($("cmp-phone"), "填写家人手机号时，请点击“获取验证码”，并填写家人手机收到的验证码。");
    }
    if (phone && !/^\d{6}$/.test(code)) return companionError($("cmp-otp"), "请填写家人手机收到的 6 位验证码。");
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
          storeDel(RESIDENT_KEY);
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
  var challenges = {};  // phone -> challenge id of the last code sent to it
  function countdown(button, seconds, label) {
    var left = seconds;
    button.disabled = true;
    button.textContent = "重新获取(" + left + "s)";
    var timer = setInterval(function () {
      left -= 1;
      if (left <= 0) {
        clearInterval(timer);
        button.disabled = false;
        button.textContent = label;
        return;
      }
      button.textContent = "重新获取(" + left + "s)";
    }, 1000);
  }
  function sendCode(phone, button, onError) {
    var label = "获取验证码";
    button.disabled = true;
    return api("POST", "/v1/residents/otp", { phone: phone })
      .then(function (data) {
        challenges[phone] = data.challenge_id;
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
    if (!/^1\d{10}$/.test(phone)) return fieldError($("reg-phone"), "请填写 11 位手机号码。");
    fieldError(null, "");
    sendCode(phone, $("otp-send"), function (text) { fieldError(null, text); }).then(function (ok) {
      if (ok) {
        showMessage("验证码已发送到 " + phone.slice(0, 3) + "****" + phone.slice(7) + "，5 分钟内有效。", "info");
        $("reg-otp").focus();
      }
    });
  }

  function onRegister(ev) {
    ev.preventDefault();
    var name = $("reg-name").value.trim();
    var phone = cleanPhone($("reg-phone").value);
    var idNumber = $("reg-id").value.replace(/\s/g, "").toUpperCase();
    var code = $("reg-otp").value.replace(/\s/g, "");
    if (!name || name.length > 50) return fieldError($("reg-name"), "请填写姓名。");
    if (!idNumberValid(idNumber)) return fieldError($("reg-id"), "身份证号不正确，请核对后重新填写。");
    if (!/^1\d{10}$/.test(phone)) return fieldError($("reg-phone"), "请填写 11 位手机号码。");
    if (!challenges[phone]) return fieldError($("reg-otp"), "请先点击“获取验证码”。");
    if (!/^\d{6}$/.test(code)) return fieldError($("reg-otp"), "请填写短信中的 6 位数字验证码。");
    fieldError(null, "");
    var btn = $("register-submit");
    btn.disabled = true;
    btn.textContent = "提交中…";
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
        showReady("个人信息已保存，以后扫码无需重复填写。");
      })
      .catch(function (err) {
        if (err instanceof ApiError && err.problem && err.problem.reason === "phone_mismatch") {
          $("rebind-help").open = true;
        }
        fieldError(null, describe(err, "register"));
      })
      .then(function () {
        btn.disabled = false;
        btn.textContent = "提交";
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
    btn.textContent = "登记中…";
    var body = { code: cfg.code, client_id: randomId() };
    var companions = selectedCompanions().map(Number);
    if (companions.length) body.companions = companions;
    locationSoon()
      .then(function (loc) {
        if (loc) body.location = loc;
        return apiRetrying("POST", "/v1/checkins", body, resident.token, 3);
      })
      .then(function (data) {
        storeSet(LAST_KEY, { venue_id: cfg.venueId, code: cfg.code, saved_at: Date.now(), data: data }, 43200);
        showResult(data, null);
      })
      .catch(function (err) {
        if (err instanceof ApiError && err.status === 401) {
          storeDel(RESIDENT_KEY);
          showRegister(describe(err, "checkin"));
          return;
        }
        showMessage(describe(err, "checkin"), "error");
        btn.disabled = false;
        btn.textContent = "登记";
      })
      .then(function () { busy = false; });
  }

  // ---- result -----------------------------------------------------------------------------------------
  var clockTimer = null;
  var current = null;

  function ownRow(people) {
    var mine = null;
    if (resident && resident.person_id !== undefined) {
      for (var i = 0; i < people.length; i++) {
        if (String(people[i].person_id) === String(resident.person_id)) mine = people[i];
      }
    }
    return mine || people[0] || null;
  }

  function showResult(data, checkedOutAt) {
    current = data;
    var people = (data && data.people) || [];
    var me = ownRow(people) || {};
    var status = STATUS_TEXT[me.status] ? me.status : "";
    var panel = $("result-panel");
    panel.setAttribute("data-status", status);
    panel.setAttribute("data-verdict", me.verdict || "");
    $("r-status").textContent = STATUS_TEXT[status] || "健康码状态未知";
    $("r-verdict").textContent = VERDICT_TEXT[me.verdict] || "—";
    var reason = me.reason ? (REASON_TEXT[me.reason] || me.reason) : "";
    $("r-reason").textContent = reason;
    $("r-reason").hidden = !reason;
    $("r-name").textContent = me.name_masked || "";
    var venue = (data && data.venue) || {};
    $("r-venue").textContent = venue.name || cfg.venueName;
    $("r-time").textContent = formatInstant(data && data.at);
    $("r-test").textContent = me.last_negative_test_at ? formatInstant(me.last_negative_test_at) : "无";

    var list = $("r-companion-list");
    while (list.firstChild) list.removeChild(list.firstChild);
    var others = people.filter(function (p) { return p !== me; });
    others.forEach(function (p) {
      var li = document.createElement("li");
      li.setAttribute("data-person-id", String(p.person_id));
      var dot = document.createElement("span");
      dot.className = "dot";
      dot.setAttribute("data-status", p.status || "");
      var who = document.createElement("span");
      who.className = "who";
      who.textContent = (p.name_masked || "") + " · " + (STATUS_TEXT[p.status] || "状态未知");
      var verdict = document.createElement("span");
      verdict.className = "verdict";
      verdict.textContent = VERDICT_TEXT[p.verdict] || "—";
      if (p.reason) verdict.title = REASON_TEXT[p.reason] || p.reason;
      li.appendChild(dot);
      li.appendChild(who);
      li.appendChild(verdict);
      list.appendChild(li);
    });
    $("r-companions").hidden = others.length === 0;

    var out = $("checkout-button");
    var done = $("checkout-done");
    if (checkedOutAt) {
      out.hidden = true;
      done.hidden = false;
      done.textContent = "已离场 " + formatInstant(checkedOutAt);
    } else {
      out.hidden = false;
      out.disabled = false;
      out.textContent = "离场登记";
      done.hidden = true;
    }
    show("view-result");
    tick();
    if (clockTimer === null) clockTimer = setInterval(tick, 1000);
    window.scrollTo(0, 0);
  }

  function tick() {
    $("r-clock").textContent = formatInstant(new Date());
  }

  function onCheckout() {
    if (busy || !current || !resident) return;
    busy = true;
    clearMessage();
    var out = $("checkout-button");
    out.disabled = true;
    out.textContent = "提交中…";
    var path = "/v1/checkins/" + encodeURIComponent(String(current.checkin_id)) + "/checkout";
    apiRetrying("POST", path, {}, resident.token, 3)
      .then(function (data) {
        var at = (data && (data.ended_at || data.end || data.at || data.checked_out_at)) || new Date();
        markCheckedOut(at);
      })
      .catch(function (err) {
        if (err instanceof ApiError && err.status === 409) {
          markCheckedOut(new Date());
          return;
        }
        if (err instanceof ApiError && err.status === 401) {
          storeDel(RESIDENT_KEY);
          showRegister(describe(err, "checkout"));
          return;
        }
        showMessage(describe(err, "checkout"), "error");
        out.disabled = false;
        out.textContent = "离场登记";
      })
      .then(function () { busy = false; });
  }

  function markCheckedOut(at) {
    var last = storeGet(LAST_KEY);
    if (last && last.data && current && last.data.checkin_id === current.checkin_id) {
      last.checked_out_at = at instanceof Date ? at.toISOString() : String(at);
      storeSet(LAST_KEY, last, 43200);
    }
    var out = $("checkout-button");
    out.hidden = true;
    var done = $("checkout-done");
    done.textContent = "已离场 " + formatInstant(at);
    done.hidden = false;
    showMessage("离场登记成功，感谢配合。", "info");
  }

  /** An open check-in at this venue from earlier (the page was reopened to check out). */
  function resumeLast() {
    var last = storeGet(LAST_KEY);
    if (!last || !last.data || last.venue_id !== cfg.venueId || last.code !== cfg.code) return false;
    if (last.checked_out_at || Date.now() - (last.saved_at || 0) > MAX_STAY_MS) return false;
    var at = new Date(last.data.at);
    if (isNaN(at.getTime()) || Date.now() - at.getTime() > MAX_STAY_MS) return false;
    $("resume-text").textContent = "您于 " + formatInstant(at) + " 在本场所登记，尚未离场。";
    $("resume-note").hidden = false;
    return true;
  }

  // ---- the door pass --------------------------------------------------------------------------------
  var passTimer = null;
  var PASS_REFRESH_BEFORE_MS = 20000;
  function stopPass() {
    if (passTimer !== null) clearTimeout(passTimer);
    passTimer = null;
  }
  function loadPass() {
    stopPass();
    if (!resident) return showRegister();
    api("GET", "/v1/residents/me/pass", undefined, resident.token)
      .then(function (data) {
        $("pass-qr").src = data.qr_svg;
        $("pass-qr").setAttribute("data-pass", data["pass"]);
        var expires = new Date(data.expires_at).getTime();
        $("pass-expiry").textContent = "有效至 " + formatInstant(data.expires_at) + "，到期前自动更新";
        var wait = Math.max(5000, expires - Date.now() - PASS_REFRESH_BEFORE_MS);
        passTimer = setTimeout(function () {
          if (!$("view-pass").hidden) loadPass();
        }, wait);
      })
      .catch(function (err) {
        if (err instanceof ApiError && err.status === 401) {
          storeDel(RESIDENT_KEY);
          showRegister(describe(err, "pass"));
          return;
        }
        $("pass-expiry").textContent = describe(err, "pass");
        passTimer = setTimeout(loadPass, 10000);
      });
  }
  function showPass() {
    show("view-pass");
    clearMessage();
    loadPass();
  }
  function onRevoke() {
    if (!resident) return showRegister();
    if (!window.confirm("确定让所有设备（包括本机）上的登记失效吗？之后需要重新用短信验证码登记。")) return;
    api("POST", "/v1/residents/me/revoke", {}, resident.token)
      .catch(function (err) {
        if (err instanceof ApiError && err.status === 401) return null;  // already revoked
        throw err;
      })
      .then(function () {
        storeDel(RESIDENT_KEY);
        storeDel(LAST_KEY);
        storeDel(COMPANIONS_KEY);
        showRegister();
        showMessage("所有设备上的登记均已失效。", "info");
      })
      .catch(function (err) { showMessage(describe(err, "revoke"), "error"); });
  }

  // ---- start --------------------------------------------------------------------------------------------
  function start() {
    $("register-form").addEventListener("submit", onRegister);
    $("otp-send").addEventListener("click", onSendRegisterCode);
    $("cmp-otp-send").addEventListener("click", onSendCompanionCode);
    $("pass-button").addEventListener("click", showPass);
    $("pass-back").addEventListener("click", function () {
      stopPass();
      showReady();
    });
    $("revoke-button").addEventListener("click", onRevoke);
    $("checkin-button").addEventListener("click", onCheckin);
    $("checkout-button").addEventListener("click", onCheckout);
    $("companion-form").addEventListener("submit", onAddCompanion);
    $("companion-toggle").addEventListener("click", function () {
      toggleCompanionForm($("companion-form").hidden);
    });
    $("switch-person").addEventListener("click", function () {
      storeDel(RESIDENT_KEY);
      storeDel(LAST_KEY);
      storeDel(COMPANIONS_KEY);
      showRegister();
    });
    $("resume-button").addEventListener("click", function () {
      var last = storeGet(LAST_KEY);
      if (last && last.data) showResult(last.data, null);
    });

    var r = loadResident();
    if (r && r.expired) return showRegister("登记信息已过期，请重新填写个人信息。");
    if (!r) return showRegister();
    resident = r;
    showReady();
    resumeLast();
  }

  start();
})();
