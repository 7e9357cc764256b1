// Charts of a result set: a bar chart for categories, a line chart over time, chosen from the
// column types. Plain SVG, no dependencies.
"use strict";
const NUMERIC_TYPES = new Set(["tinyint", "smallint", "integer", "int", "bigint", "double", "float", "real", "decimal"]);
const TIME_TYPES = new Set(["date", "timestamp", "timestamp with time zone", "time"]);

function baseType(type) { return String(type || "").toLowerCase().replace(/\(.*$/, "").trim(); }
function isNumericType(type) { const t = baseType(type); return NUMERIC_TYPES.has(t) || t.startsWith("decimal"); }

// Which chart fits the result: {kind, label, value} or null when there is nothing to plot.
// The measure is the last numeric column; a line over time when each time appears once,
// otherwise bars per category (or per time).
function chooseChart(columns, rows) {
  const types = columns.map(c => baseType(c.Type));
  let value = -1;
  columns.forEach((c, i) => { if (isNumericType(c.Type)) value = i; });
  if (value < 0) return null;
  const time = types.findIndex(t => TIME_TYPES.has(t) || t.startsWith("timestamp"));
  const label = types.findIndex((t, i) => i !== value && i !== time && !isNumericType(columns[i].Type));
  if (time >= 0 && new Set(rows.map(r => r[time])).size === rows.length) return { kind: "line", label: time, value };
  if (label >= 0) return { kind: "bar", label, value };
  if (time >= 0) return { kind: "bar", label: time, value };
  const other = columns.findIndex((c, i) => i !== value);
  return other >= 0 ? { kind: "bar", label: other, value } : null;
}

function svgEl(name, attrs, text) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function drawChart(container, columns, rows) {
  container.innerHTML = "";
  const choice = chooseChart(columns, rows);
  if (!choice || rows.length === 0) { container.dataset.kind = "none"; return; }
  let points = rows.map(r => ({ label: r[choice.label] ?? "", value: Number(r[choice.value]) }))
                   .filter(p => Number.isFinite(p.value));
  if (choice.kind === "bar") points = points.slice(0, 30);
  else points.sort((a, b) => String(a.label).localeCompare(String(b.label)));
  const W = 800, H = 200, pad = 30;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", "data-kind": choice.kind });
  const max = Math.max(...points.map(p => p.value), 0) || 1;
  const x = i => pad + (i + 0.5) * (W - 2 * pad) / points.length;
  const y = v => H - pad - (v / max) * (H - 2 * pad);
  if (choice.kind === "bar") {
    const w = Math.max(2, (W - 2 * pad) / points.length * 0.8);
    points.forEach((p, i) => {
      const rect = svgEl("rect", { class: "bar", x: x(i) - w / 2, y: y(p.value), width: w, height: H - pad - y(p.value) });
      rect.appendChild(svgEl("title", {}, `${p.label}: ${p.value}`));
      svg.appendChild(rect);
    });
  } else {
    svg.appendChild(svgEl("polyline", { class: "line", points: points.map((p, i) => `${x(i)},${y(p.value)}`).join(" ") }));
  }
  svg.appendChild(svgEl("text", { x: 4, y: 12 }, `${columns[choice.value].Name} (max ${max})`));
  svg.appendChild(svgEl("text", { x: pad, y: H - 8 }, String(points[0]?.label ?? "").slice(0, 40)));
  svg.appendChild(svgEl("text", { x: W - pad - 200, y: H - 8 }, String(points[points.length - 1]?.label ?? "").slice(0, 40)));
  container.dataset.kind = choice.kind;
  container.appendChild(svg);
}

function drawSparkline(svg, values) {
  svg.innerHTML = "";
  if (values.length < 2) return;
  const W = 200, H = 40, max = Math.max(...values, 1);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const pts = values.map((v, i) => `${(i / (values.length - 1)) * W},${H - 2 - (v / max) * (H - 4)}`).join(" ");
  svg.appendChild(svgEl("polyline", { points: pts }));
}
