// Logging in with an API key, and the list of venues the key may manage.
import { $, KEY_STORAGE, apiJson, message, show, state } from "./core.js";
import { openVenue } from "./venue.js";

function listQuery(after) {
  const params = new URLSearchParams();
  const q = $("search").value.trim();
  const community = $("community").value.trim();
  if (q) { params.set("q", q); }
  if (community) { params.set("community", community); }
  if (after) { params.set("after", String(after)); }
  params.set("limit", "50");
  return "/v1/venues?" + params.toString();
}

function renderList(items, append) {
  const list = $("venue-list");
  if (!append) { list.textContent = ""; }
  items.forEach(function (venue) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.venueId = String(venue.venue_id);
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = String(venue.venue_id);
    button.appendChild(id);
    button.appendChild(document.createTextNode(venue.name + (venue.active ? "" : "（已停用 closed）")));
    button.addEventListener("click", function () { openVenue(venue.venue_id); });
    li.appendChild(button);
    list.appendChild(li);
  });
}

export function loadList(append) {
  const after = append ? state.after : null;
  return apiJson(listQuery(after)).then(function (page) {
    renderList(page.items, append);
    state.after = page.next_after;
    show("more", page.next_after !== null && page.next_after !== undefined);
    if (!append && page.items.length === 0) { message("没有找到场所 No venues found.", false); }
    if (!append && page.items.length === 1) { openVenue(page.items[0].venue_id); }
    return page;
  });
}

export function login(key) {
  state.key = key;
  return apiJson("/v1/venues?limit=1").then(function () {
    sessionStorage.setItem(KEY_STORAGE, key);
    message("", false);
    show("login-section", false);
    show("venues-section", true);
    show("logout", true);
    return loadList(false);
  }).catch(function (err) {
    state.key = "";
    sessionStorage.removeItem(KEY_STORAGE);
    message(err.status === 401 ? "API key 无效 The key is not valid." : err.message, true);
  });
}
