// The contact graph, laid out in columns across the panel's width: the index person, then the first-degree
// contacts, then the second-degree ones, one row each. A label sits right of its node and is cut to its
// column's width (measured in the labels' font), so no two labels share a row and a column: they cannot
// overlap, nor cover a node. Edges leave a
// node from the end of its label (a thin leader along its own row) and cross only the empty band between
// two columns, where there is no label and no node; every edge is index -> first degree or via -> second
// degree, nothing else (no line suggests a contact that is not in `via`).
import { t } from "./i18n.js";
import { el, svg } from "./core.js";

const ROW = 28, TOP = 20, MARGIN = 12, MAX_FIRST = 30, MAX_SECOND = 40, LABEL_PX = 13, SLACK = 6;
const MIN_BAND = 60, MAX_BAND = 420;
const COLOURS = ["#b42318", "#d97706", "#1f6feb"], RADII = [12, 8, 6];

function label(id, name) {
  return name ? `${id} ${name}` : String(id);
}

// Second-degree contacts in the order of the rows of the contacts they were met through (fewest crossings).
function orderSecond(second, rowOf) {
  const key = (c) => {
    const rows = (c.via || []).map((v) => rowOf.get(v)).filter((r) => r !== undefined);
    return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : Infinity;
  };
  return second.map((c, i) => ({ c, k: key(c), i })).sort((a, b) => a.k - b.k || a.i - b.i).map((x) => x.c);
}

// Text widths from a canvas in the labels' font: exact whether or not the panel is on screen right now.
let ruler = null;
function textWidth(value) {
  if (!ruler) ruler = document.createElement("canvas").getContext("2d");
  ruler.font = `${LABEL_PX}px ${getComputedStyle(document.body).fontFamily}`;
  return ruler.measureText(value).width;
}

// The label cut until it fits ``room`` pixels ("…" at the end); the full text stays in the node's title.
function fitted(value, room) {
  if (textWidth(value) <= room) return value;
  let cut = value;
  while (cut.length > 1 && textWidth(cut + "…") > room) cut = cut.slice(0, -1);
  return cut + "…";
}

export function renderGraph(box, data) {
  box.replaceChildren();
  const first = data.contacts.slice(0, MAX_FIRST);
  const rowOf = new Map(first.map((c, i) => [c.person_id, i]));
  const second = orderSecond(data.second_degree.slice(0, MAX_SECOND), rowOf);
  const columns = [[{ id: data.person_id, name: data.person_name }], first.map((c) => ({ id: c.person_id, name: c.name }))];
  if (second.length) columns.push(second.map((c) => ({ id: c.person_id, name: c.name })));
  const width = Math.max(360, Math.round(box.clientWidth || 1000));
  const rows = Math.max(...columns.map((col) => col.length));
  const height = TOP * 2 + rows * ROW;
  // Each column as wide as its longest label (cut so that all columns and the bands fit); the width left
  // over goes to the bands between columns (at most MAX_BAND each), and the whole is centred.
  const lead = (k) => 2 * RADII[k] + 2 + 5;  // circle and the gap before the label
  const fixed = columns.reduce((sum, _col, k) => sum + lead(k), 0) + (columns.length - 1) * MIN_BAND;
  const cap = Math.max(40, (width - 2 * MARGIN - fixed) / columns.length - SLACK);
  const texts = columns.map((col) => col.map((n) => fitted(label(n.id, n.name), cap)));
  const widths = texts.map((col) => Math.max(...col.map(textWidth)) + SLACK);
  const used = widths.reduce((a, b) => a + b, 0) + columns.reduce((sum, _col, k) => sum + lead(k), 0);
  const band = Math.min(MAX_BAND, Math.max(MIN_BAND, (width - 2 * MARGIN - used) / Math.max(1, columns.length - 1)));
  let x0 = MARGIN + Math.max(0, (width - 2 * MARGIN - used - band * (columns.length - 1)) / 2);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", id: "graph-svg" });
  box.append(root, el("p", { class: "note" }, t("graph.legend")));
  const leaders = svg("g", { stroke: "#d0d5db", "stroke-width": 1, fill: "none" });
  const edges = svg("g", { stroke: "#9aa4af" });
  const nodes = svg("g", {});
  root.append(leaders, edges, nodes);
  const pos = new Map();  // person -> {x, y, r, port}
  columns.forEach((col, k) => {
    const r = RADII[k], x = x0 + r + 2, port = x0 + lead(k) + widths[k];
    const offset = TOP + ((rows - col.length) * ROW) / 2;
    col.forEach((n, i) => {
      const y = offset + i * ROW + ROW / 2;
      const g = svg("g", { "data-person-id": String(n.id), "data-degree": String(k) });
      const text = svg("text", { x: x + r + 5, y: y + 4, class: "graph-label" }, texts[k][i]);
      g.append(svg("circle", { cx: x, cy: y, r, fill: COLOURS[k], stroke: "#fff", "stroke-width": 1.5 }), text,
        svg("title", {}, label(n.id, n.name)));
      nodes.append(g);
      const end = x + r + 5 + textWidth(texts[k][i]);
      if (k < columns.length - 1 && port - end > 6) leaders.append(svg("path", { d: `M${end + 3} ${y} H${port}`, "data-leader": String(n.id) }));
      pos.set(n.id, { x, y, r, port });
    });
    x0 = port + band;
  });
  const edge = (from, to, w, colour) => {
    const p = pos.get(from), q = pos.get(to);
    if (!p || !q) return;
    edges.append(svg("line", { x1: p.port, y1: p.y, x2: q.x - q.r - 2, y2: q.y, "stroke-width": w, stroke: colour,
      "data-from": String(from), "data-to": String(to) }));
  };
  for (const c of first) edge(data.person_id, c.person_id, 1 + Math.min(4, c.overlap_seconds / 3600), "#d97706");
  for (const c of second) for (const v of c.via || []) edge(v, c.person_id, 1.2, "#1f6feb");
  const hidden = data.contacts_total - first.length + data.second_degree_total - second.length;
  if (hidden > 0) box.append(el("p", { class: "note" }, t("graph.more", { n: hidden })));
}
