// Charts of a result set, drawn only when the result's shape means something. Plain SVG, our own
// small code: two chart kinds over at most a few thousand rows do not need a library's weight, a
// vendored build to keep up to date, or anything loaded from the network.
//
// The shape (chartSpec):
//   x       the first column, when it is a time (date, timestamp) or a category (varchar);
//   series  the first other varchar column, when there is one: one line (or bar colour) per value,
//           the 8 largest by total (e.g. top_pages_per_hour: a series per page);
//   y       the numeric columns after x; with a series column only the last one (views, not rank).
// No chart for fewer than 2 rows or 2 columns, a numeric or other first column, or no numeric
// measure. The default kind is a line over time and bars over categories; the user may switch
// (line, bar) or turn the chart off.
"use strict";
const NUMERIC_TYPES = new Set(["tinyint", "smallint", "integer", "int", "bigint", "double", "float", "real", "decimal"]);
const TIME_TYPES = new Set(["date", "timestamp", "timestamp with time zone"]);
const CATEGORY_TYPES = new Set(["varchar", "char", "string"]);
const PALETTE = ["#2bb3a3", "#63a8ff", "#e8b44a", "#e5646b", "#c792ea", "#9ccc65", "#f78c6c", "#7f93a6"];
const MAX_SERIES = 8;
const MAX_BARS = 40;

function baseType(type) { return String(type || "").toLowerCase().replace(/\(.*$/, "").trim(); }
function isNumericType(type) { return NUMERIC_TYPES.has(baseType(type)); }
function isTimeType(type) { return TIME_TYPES.has(baseType(type)); }

// {x, time, series, measures, kind} or null when no chart means anything for this result.
function chartSpec(columns, rows) {
  if (columns.length < 2 || rows.length < 2) return null;
  const first = baseType(columns[0].Type);
  const time = TIME_TYPES.has(first);
  if (!time && !CATEGORY_TYPES.has(first)) return null;
  const series = columns.findIndex((c, i) => i > 0 && CATEGORY_TYPES.has(baseType(c.Type)));
  let measures = columns.flatMap((c, i) => (i > 0 && isNumericType(c.Type) ? [i] : []));
  if (measures.length === 0) return null;
  if (series >= 0) measures = measures.slice(-1);
  return { x: 0, time, series, measures, kind: time ? "line" : "bar" };
}

// Athena's text of a date or timestamp ("2026-11-18 15:00:00.000", UTC) as epoch milliseconds.
function timeValue(text) { return Date.parse(String(text).replace(" ", "T") + (String(text).length > 10 ? "Z" : "")); }

// The x values in order (times sorted) and one {name, values: Map(x -> y)} per series.
function chartData(spec, columns, rows) {
  let xs = [...new Set(rows.map(r => r[spec.x]).filter(v => v !== null))];
  if (spec.time) xs.sort((a, b) => timeValue(a) - timeValue(b));
  let series;
  if (spec.series >= 0) {
    const y = spec.measures[0], totals = new Map();
    for (const r of rows) {
      const name = r[spec.series] ?? "NULL";
      totals.set(name, (totals.get(name) || 0) + (Number(r[y]) || 0));
    }
    const names = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a)).slice(0, MAX_SERIES);
    series = names.map(name => ({ name, values: new Map() }));
    const byName = new Map(series.map(s => [s.name, s]));
    for (const r of rows) byName.get(r[spec.series] ?? "NULL")?.values.set(r[spec.x], Number(r[y]));
  } else {
    series = spec.measures.slice(0, MAX_SERIES).map(i => ({ name: columns[i].Name, values: new Map() }));
    for (const r of rows) spec.measures.slice(0, MAX_SERIES).forEach((i, k) => series[k].values.set(r[spec.x], Number(r[i])));
  }
  return { xs, series };
}

function svgEl(name, attrs, text) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function shortLabel(text) { const s = String(text ?? ""); return s.endsWith(":00.000") ? s.slice(0, 16) : s.slice(0, 24); }

// Draws the chart of a result into `container` as `kind` ("line", "bar", "off"; null = the
// spec's default). Sets container.dataset.kind to what was drawn ("none" when nothing fits) and
// returns the spec (null when no chart fits).
function drawChart(container, columns, rows, kind = null) {
  container.innerHTML = "";
  const spec = chartSpec(columns, rows);
  const chosen = spec ? kind || spec.kind : "none";
  container.dataset.kind = chosen;
  if (!spec || chosen === "off") return spec;
  const { xs, series } = chartData(spec, columns, rows);
  const shown = chosen === "bar" ? xs.slice(0, MAX_BARS) : xs;
  const W = 800, H = 220, left = 56, right = 12, top = 12, bottom = 28;
  const values = series.flatMap(s => shown.map(x => s.values.get(x)).filter(v => Number.isFinite(v)));
  const max = Math.max(0, ...values), min = Math.min(0, ...values);
  const span = max - min || 1;
  const y = v => top + (max - v) / span * (H - top - bottom);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img",
    "aria-label": `${chosen} chart of ${series.map(s => s.name).join(", ")} by ${columns[spec.x].Name}` });
  svg.appendChild(svgEl("line", { class: "axis", x1: left, x2: W - right, y1: y(0), y2: y(0) }));
  for (const v of [max, (max + min) / 2, min]) {
    svg.appendChild(svgEl("text", { x: left - 6, y: y(v) + 3, "text-anchor": "end" }, formatTick(v)));
  }
  const plotW = W - left - right;
  if (chosen === "line") {
    const t0 = spec.time ? timeValue(shown[0]) : 0, t1 = spec.time ? timeValue(shown[shown.length - 1]) : 0;
    const x = (value, i) => left + (spec.time && t1 > t0 ? (timeValue(value) - t0) / (t1 - t0)
      : shown.length > 1 ? i / (shown.length - 1) : 0.5) * plotW;
    series.forEach((s, k) => {
      const pts = shown.flatMap((v, i) => (s.values.has(v) && Number.isFinite(s.values.get(v)) ? [`${x(v, i)},${y(s.values.get(v))}`] : []));
      const line = svgEl("polyline", { class: "line", points: pts.join(" "), stroke: PALETTE[k], "data-series": s.name });
      line.appendChild(svgEl("title", {}, s.name));
      svg.appendChild(line);
      // a dot on every point, so a series with one point (or gaps) still shows
      shown.forEach((v, i) => {
        const value = s.values.get(v);
        if (!Number.isFinite(value)) return;
        const dot = svgEl("circle", { class: "dot", cx: x(v, i), cy: y(value), r: 3, fill: PALETTE[k] });
        dot.appendChild(svgEl("title", {}, `${v} · ${s.name}: ${value}`));
        svg.appendChild(dot);
      });
    });
  } else {
    const slot = plotW / shown.length, w = Math.max(1, slot * 0.8 / series.length);
    shown.forEach((v, i) => series.forEach((s, k) => {
      const value = s.values.get(v);
      if (!Number.isFinite(value)) return;
      const bx = left + i * slot + slot * 0.1 + k * w;
      const rect = svgEl("rect", { class: "bar", x: bx, y: Math.min(y(value), y(0)), width: w,
        height: Math.abs(y(0) - y(value)), fill: PALETTE[k], "data-series": s.name });
      rect.appendChild(svgEl("title", {}, `${v} · ${s.name}: ${value}`));
      svg.appendChild(rect);
    }));
  }
  svg.appendChild(svgEl("text", { x: left, y: H - 8 }, shortLabel(shown[0])));
  svg.appendChild(svgEl("text", { x: W - right, y: H - 8, "text-anchor": "end" }, shortLabel(shown[shown.length - 1])));
  container.appendChild(svg);
  const legend = document.createElement("div");
  legend.className = "legend";
  legend.setAttribute("data-testid", "chart-legend");
  const measure = spec.series >= 0 ? ` (${columns[spec.measures[0]].Name} per ${columns[spec.series].Name})` : "";
  legend.append(`${columns[spec.x].Name}${measure}: `);
  series.forEach((s, k) => {
    const item = document.createElement("span");
    item.className = "legend-item";
    item.style.setProperty("--swatch", PALETTE[k]);
    item.textContent = s.name;
    legend.appendChild(item);
  });
  if (chosen === "bar" && xs.length > shown.length) legend.append(` · first ${shown.length} of ${xs.length}`);
  container.appendChild(legend);
  return spec;
}

function formatTick(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(a < 1 ? 3 : 1);
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
