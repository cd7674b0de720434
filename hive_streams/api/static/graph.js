// A task's node graph as SVG: one column per dependency depth, nodes coloured by status.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const NODE_W = 120, NODE_H = 34, GAP_X = 50, GAP_Y = 14, PAD = 10;

function svg(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

function depths(nodes) {
  const byId = new Map(nodes.map(n => [n.id, n]));
  const memo = new Map();
  const depth = (id, seen) => {
    if (memo.has(id)) return memo.get(id);
    if (seen.has(id) || !byId.has(id)) return 0;
    seen.add(id);
    const deps = byId.get(id).depends_on || [];
    const d = deps.length ? 1 + Math.max(...deps.map(dep => depth(dep, seen))) : 0;
    memo.set(id, d);
    return d;
  };
  nodes.forEach(n => depth(n.id, new Set()));
  return memo;
}

// graph: {nodes: [{id, kind, depends_on}], status: {id: status}, progress: {id: fraction}}
function drawGraph(container, graph) {
  const nodes = graph.nodes;
  const depth = depths(nodes);
  const columns = [];
  nodes.forEach(n => (columns[depth.get(n.id)] = columns[depth.get(n.id)] || []).push(n));
  const place = new Map();
  columns.forEach((col, c) => col.forEach((n, r) =>
    place.set(n.id, {x: PAD + c * (NODE_W + GAP_X), y: PAD + r * (NODE_H + GAP_Y)})));
  const width = PAD * 2 + columns.length * (NODE_W + GAP_X) - GAP_X;
  const height = PAD * 2 + Math.max(...columns.map(c => c.length)) * (NODE_H + GAP_Y) - GAP_Y;
  const root = svg("svg", {viewBox: `0 0 ${width} ${height}`, width, height, role: "img"});
  for (const n of nodes) {
    for (const dep of n.depends_on || []) {
      const a = place.get(dep), b = place.get(n.id);
      if (!a) continue;
      const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2, mx = (x1 + x2) / 2;
      root.appendChild(svg("path", {class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`}));
    }
  }
  for (const n of nodes) {
    const p = place.get(n.id), status = graph.status[n.id] || "pending";
    const g = svg("g", {class: "node", "data-node": n.id, "data-status": status, transform: `translate(${p.x},${p.y})`});
    g.appendChild(svg("rect", {width: NODE_W, height: NODE_H}));
    const label = svg("text", {x: 8, y: 15});
    label.textContent = n.id.length > 16 ? n.id.slice(0, 15) + "…" : n.id;
    const kind = svg("text", {x: 8, y: 28, opacity: 0.6});
    kind.textContent = `${n.kind || ""} · ${status}`;
    g.append(label, kind);
    const fraction = status === "completed" ? 1 : (graph.progress[n.id] || 0);
    if (status === "running" || fraction > 0) {
      g.appendChild(svg("rect", {class: "bar", x: 0, y: NODE_H - 3, width: NODE_W * fraction, height: 3}));
    }
    const title = svg("title");
    title.textContent = `${n.id} (${n.kind || "?"}): ${status}`;
    g.appendChild(title);
    root.appendChild(g);
  }
  container.replaceChildren(root);
}
