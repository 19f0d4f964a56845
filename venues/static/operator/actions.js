// What the operator does to a venue: download the poster, rotate the code, switch the door mode, set up
// the door tablet, revoke a device key, close or reopen the venue.
import { $, api, apiJson, message, sendJson, state } from "./core.js";
import { localTime } from "./day.js";
import { loadDeviceKeys, loadPreview, posterKind, reopen } from "./venue.js";

// --- actions ------------------------------------------------------------------------------

export function download(fmt, size) {
  if (!state.venue) { return; }
  const id = state.venue.venue_id;
  const query = "?download=true" + (size ? "&size=" + size : "");
  api("/v1/venues/" + id + "/poster." + fmt + query)
    .then(function (resp) { return resp.blob(); })
    .then(function (blob) {
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = "venue-" + id + "-" + posterKind(state.venue) + (size ? "-" + size : "") + "." + fmt;
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    })
    .catch(function (err) { message(err.message, true); });
}

export function rotate() {
  if (!state.venue) { return; }
  const venue = state.venue;
  if (!window.confirm("更换“" + venue.name + "”的场所码？旧海报将失效。\nRotate the code? Old posters stop working.")) {
    return;
  }
  $("rotate").disabled = true;
  apiJson("/v1/venues/" + venue.venue_id + "/code/rotate", { method: "POST" })
    .then(function (code) {
      $("code-version").textContent = String(code.version);
      $("code-url").textContent = code.url;
      message("场所码已更换，请打印新海报。The code was rotated: print the new poster.", false);
      return loadPreview(venue.venue_id);
    })
    .catch(function (err) { message(err.message, true); })
    .then(function () { $("rotate").disabled = false; });
}

export function switchMode(mode) {
  const venue = state.venue;
  if (!venue || venue.code_mode === mode) { return; }
  const question = mode === "rotating"
    ? "改为门口屏幕？印刷的场所码海报将停止使用，请设置门口平板。\nSwitch to a screen at the door? Printed posters stop working: set up the tablet."
    : "改为印刷海报？门口屏幕将停止显示场所码，请打印并张贴场所码海报。\nSwitch to a printed poster? The door screen stops showing a code: print and post the poster.";
  if (!window.confirm(question)) {
    $("mode-static").checked = venue.code_mode !== "rotating";
    $("mode-rotating").checked = venue.code_mode === "rotating";
    return;
  }
  sendJson("PATCH", "/v1/venues/" + venue.venue_id, { code_mode: mode })
    .then(function () {
      return reopen(mode === "rotating"
        ? "已改为门口屏幕：请为平板生成设置码。Switched to a screen: set up the tablet."
        : "已改为印刷海报：请打印场所码海报。Switched to a printed poster: print the poster.");
    })
    .catch(function (err) { message(err.message, true); reopen(""); });
}

export function setupTablet() {
  const venue = state.venue;
  if (!venue) { return; }
  $("setup-tablet").disabled = true;
  sendJson("POST", "/v1/keys", { role: "device", venue_id: venue.venue_id, name: "门口屏幕 door screen" })
    .then(function (created) {
      // The new key authenticates its own set-up link; the page keeps neither.
      return apiJson("/display/" + venue.venue_id + "/setup-codes", { method: "POST" }, created.key);
    })
    .then(function (setup) {
      $("setup-qr").src = setup.qr_svg;
      const link = $("setup-link");
      link.href = setup.url;
      link.textContent = setup.url;
      $("setup-expiry").textContent = "用平板扫描此码，或在平板上打开链接。" + Math.round(setup.expires_in_s / 60) +
        " 分钟内有效，只能使用一次（" + localTime(setup.expires_at, false) + " 前）。Scan it with the tablet or open the link there: works once, until " +
        localTime(setup.expires_at, false) + ".";
      $("setup-result").hidden = false;
      return loadDeviceKeys(venue.venue_id);
    })
    .catch(function (err) { message(err.message, true); })
    .then(function () { $("setup-tablet").disabled = false; });
}

export function revokeKey(record) {
  if (!window.confirm("撤销设备密钥 " + record.key_id + "？使用它的平板将停止显示场所码。\nRevoke this device key? The tablet using it stops showing the code.")) {
    return;
  }
  apiJson("/v1/keys/" + encodeURIComponent(record.key_id), { method: "DELETE" })
    .then(function () {
      message("设备密钥已撤销。The device key was revoked.", false);
      return loadDeviceKeys(state.venue.venue_id);
    })
    .catch(function (err) { message(err.message, true); });
}

export function closeVenue() {
  const venue = state.venue;
  const reason = $("close-reason").value.trim();
  if (!venue || !reason) { return; }
  if (!window.confirm("停用“" + venue.name + "”？扫码将提示该场所已停用。\nClose this venue? Scans will say it has closed.")) {
    return;
  }
  sendJson("PATCH", "/v1/venues/" + venue.venue_id, { active: false, reason: reason })
    .then(function () {
      $("close-reason").value = "";
      return reopen("场所已停用：请打印停用告示替换场所码海报。The venue is closed: print the closed notice and replace the posters with it.");
    })
    .catch(function (err) { message(err.message, true); });
}

export function reopenVenue() {
  const venue = state.venue;
  if (!venue || !window.confirm("重新启用“" + venue.name + "”？\nReopen this venue?")) { return; }
  sendJson("PATCH", "/v1/venues/" + venue.venue_id, { active: true })
    .then(function () { return reopen("场所已重新启用。The venue is open again."); })
    .catch(function (err) { message(err.message, true); });
}
