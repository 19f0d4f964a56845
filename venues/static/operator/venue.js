// One venue: its details, the poster its state calls for (previewed), its door mode and device keys.
import { revokeKey } from "./actions.js";
import { $, DAY_REFRESH_MS, api, apiJson, message, show, state, stepS, stopDay } from "./core.js";
import { loadDay, localTime } from "./day.js";

// --- the venue ----------------------------------------------------------------------------

const POSTER_KINDS = {
  checkin: ["场所码海报 Check-in poster", "打印并张贴在入口处。Print it and put it up at the entrance."],
  screen: ["门口屏幕提示 Screen notice",
    "本场所的场所码在门口屏幕上，印刷的场所码已停用；这张提示海报没有场所码，请贴在屏幕旁。" +
    "The code is on the screen at the door and printed codes no longer work: this notice carries no code; put it up beside the screen."],
  closed: ["停用告示 Closed notice",
    "请用这张告示替换所有场所码海报。Replace every check-in poster with this notice."]
};

export function posterKind(venue) {
  if (!venue.active) { return "closed"; }
  return venue.code_mode === "rotating" ? "screen" : "checkin";
}

function renderVenue(venue, code) {
  state.venue = venue;
  state.code = code;
  const screen = venue.code_mode === "rotating";
  const kind = posterKind(venue);
  $("venue-name").textContent = venue.name;
  $("venue-address").textContent = venue.address || "";
  $("venue-id").textContent = String(venue.venue_id);
  $("venue-community").textContent = venue.community;
  const status = $("venue-status");
  status.textContent = venue.active ? "启用 open" : "已停用 closed";
  status.className = venue.active ? "" : "inactive";
  const banner = $("closed-banner");
  if (!venue.active) {
    banner.textContent = "该场所已停用 This venue has closed" +
      (venue.closed_at ? "（" + localTime(venue.closed_at, true) + "）" : "") +
      (venue.closed_reason ? "：" + venue.closed_reason : "");
  }
  banner.hidden = venue.active;
  $("code-version").textContent = String(code.version);
  $("mode-static").checked = !screen;
  $("mode-rotating").checked = screen;
  $("mode-static").disabled = $("mode-rotating").disabled = !venue.active;
  $("mode-rotating-text").textContent = "门口平板每 " + stepS() + " 秒显示一个新码，照片和截图很快失效；印刷的场所码停止使用。" +
    "A tablet at the entrance shows a new code every " + stepS() + " s: photos of it stop working within a minute, and printed codes stop working.";
  $("code-url").textContent = code.url;
  const note = $("code-url-note");
  if (screen) {
    $("code-url-label").textContent = "屏幕当前的码 The screen's code now";
    note.textContent = "这是门口屏幕此刻显示的码，每 " + stepS() + " 秒更换，只在这 " + stepS() +
      " 秒及随后 " + stepS() + " 秒内有效：仅供核对，不要打印或转发。This is the code the screen shows right now. It changes every " +
      stepS() + " s and is accepted only during its " + stepS() + " s and the next " + stepS() + " s: for checking only, never print or share it.";
  } else {
    $("code-url-label").textContent = venue.active ? "登记地址 Check-in URL"
      : "登记地址（已停用，扫码将提示场所已停用）Check-in URL (closed: a scan says so)";
    note.textContent = "";
  }
  note.hidden = !screen;
  show("screen-setup", screen && venue.active);
  $("setup-result").hidden = true;
  $("poster-kind").textContent = POSTER_KINDS[kind][0];
  $("poster-note").textContent = POSTER_KINDS[kind][1];
  show("rotate-box", kind === "checkin");
  show("close-form", venue.active);
  show("close-note", venue.active);
  show("reopen-venue", !venue.active);
  Array.prototype.forEach.call(document.querySelectorAll("#venue-list button"), function (b) {
    b.classList.toggle("selected", b.dataset.venueId === String(venue.venue_id));
  });
  show("venue-detail", true);
}

function setPreview(blob) {
  if (state.previewUrl) { URL.revokeObjectURL(state.previewUrl); }
  state.previewUrl = URL.createObjectURL(blob);
  $("poster-preview").src = state.previewUrl;
}

export function loadPreview(venueId) {
  $("poster-preview").removeAttribute("src");
  return api("/v1/venues/" + venueId + "/poster.png")
    .then(function (resp) { return resp.blob(); })
    .then(setPreview);
}

export function loadDeviceKeys(venueId) {
  if (!state.venue || state.venue.code_mode !== "rotating" || !state.venue.active) { return Promise.resolve(); }
  return apiJson("/v1/keys?venue_id=" + venueId).then(function (records) {
    const list = $("device-keys");
    list.textContent = "";
    if (!records.length) {
      const none = document.createElement("li");
      none.className = "muted small";
      none.textContent = "还没有设备密钥 No device keys yet";
      list.appendChild(none);
    }
    records.forEach(function (r) {
      const li = document.createElement("li");
      li.dataset.keyId = r.key_id;
      const label = document.createElement("span");
      label.textContent = (r.name || "设备 device") + " · " + r.key_id + " · " + localTime(r.created_at, true);
      li.appendChild(label);
      const revoke = document.createElement("button");
      revoke.type = "button";
      revoke.className = "danger small-button";
      revoke.textContent = "撤销 Revoke";
      revoke.addEventListener("click", function () { revokeKey(r); });
      li.appendChild(revoke);
      list.appendChild(li);
    });
  });
}

export function openVenue(venueId) {
  message("", false);
  stopDay();
  state.day = null;
  return Promise.all([
    apiJson("/v1/venues/" + venueId),
    apiJson("/v1/venues/" + venueId + "/code")
  ]).then(function (results) {
    renderVenue(results[0], results[1]);
    state.dayTimer = setInterval(function () {
      loadDay(venueId).catch(function (err) { message(err.message, true); });
    }, DAY_REFRESH_MS);
    return Promise.all([loadPreview(venueId), loadDay(venueId), loadDeviceKeys(venueId)]);
  }).catch(function (err) { message(err.message, true); });
}

export function reopen(text) {
  const id = state.venue.venue_id;
  return openVenue(id).then(function () { if (text) { message(text, false); } });
}
