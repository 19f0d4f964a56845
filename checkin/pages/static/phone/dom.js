// DOM helpers every view uses: elements by id, new elements with text, the message line, and a tap
// that asks for a second one before it ends something.
import { CONFIRM_MS } from "./config.js";

export function $(id) {
  return document.getElementById(id);
}

export function showMessage(text, kind) {
  const el = $("message");
  el.textContent = text;
  el.className = "notice " + (kind || "error");
  el.hidden = !text;
}

export function clearMessage() {
  showMessage("", "info");
}

export function item(tag, cls, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A tap that ends something asks for a second one: the first turns the button into the question. */
export function confirmTap(button, question, action) {
  if (button.getAttribute("data-armed") === "1") {
    disarm(button);
    action();
    return;
  }
  button.setAttribute("data-armed", "1");
  button.setAttribute("data-label", button.textContent);
  button.textContent = question;
  button.classList.add("armed");
  const timer = setTimeout(function () { disarm(button); }, CONFIRM_MS);
  button.setAttribute("data-timer", String(timer));
}

function disarm(button) {
  if (button.getAttribute("data-armed") !== "1") return;
  clearTimeout(parseInt(button.getAttribute("data-timer") || "0", 10));
  button.removeAttribute("data-armed");
  button.classList.remove("armed");
  button.textContent = button.getAttribute("data-label") || button.textContent;
}
