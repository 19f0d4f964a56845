"""Telling the exposed: notices (and a text message) to every person at an exposure site during its
window, those already there when the site is flagged and those who come later (worker ``notices``)."""
