// What the page's modules share and change: the resident signed in, the view shown, timers, the
// last answers of the server. One object, so every module sees the same values.
export const state = {
  lang: "zh-CN",
  view: "",
  resident: null,
  staysEpoch: 0,  // bumped by every local change of the open stays
  challenges: {},  // phone -> challenge id of the last code sent to it (kept until it expires)
  busy: false,
  offlineEntry: null,
  current: null,  // the check-in shown, as the server answered it
  staleStay: null,  // the stay a stale screen is about (no verdict of it is shown)
  notices: [],
};
