// Venue operator page: log in with an API key, find venues, see the venue's day (entries per hour
// beside the same weekday last week, occupancy against capacity, capacity alerts; read again every
// minute), switch between a printed code and a screen at the door, set up the door tablet (device key
// and a one-time set-up link), preview and download the poster the venue's state calls for, rotate the
// code, close or reopen the venue. Talks only to this server; the key lives in sessionStorage for this
// tab. The chart is drawn here as SVG elements (no library; the CSP allows only this origin).
import { closeVenue, download, reopenVenue, rotate, setupTablet, switchMode } from "./actions.js";
import { $, KEY_STORAGE, logout, message, state } from "./core.js";
import { renderDay } from "./day.js";
import { loadList, login } from "./list.js";

document.addEventListener("DOMContentLoaded", function () {
  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    const key = $("api-key").value.trim();
    if (key) { login(key); }
  });
  $("search-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    message("", false);
    loadList(false).catch(function (err) { message(err.message, true); });
  });
  $("more").addEventListener("click", function () {
    loadList(true).catch(function (err) { message(err.message, true); });
  });
  $("logout").addEventListener("click", logout);
  $("rotate").addEventListener("click", rotate);
  $("download-png").addEventListener("click", function () { download("png"); });
  $("download-svg").addEventListener("click", function () { download("svg"); });
  $("download-pdf").addEventListener("click", function () { download("pdf", "a4"); });
  $("download-pdf-a3").addEventListener("click", function () { download("pdf", "a3"); });
  ["mode-static", "mode-rotating"].forEach(function (id) {
    $(id).addEventListener("change", function (ev) { if (ev.target.checked) { switchMode(ev.target.value); } });
  });
  $("setup-tablet").addEventListener("click", setupTablet);
  $("close-form").addEventListener("submit", function (ev) { ev.preventDefault(); closeVenue(); });
  $("reopen-venue").addEventListener("click", reopenVenue);
  let resizeTimer = 0;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { if (state.day) { renderDay(state.day); } }, 150);
  });
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) { login(saved); }
});
