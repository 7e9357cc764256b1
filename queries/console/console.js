// The tidelake console: an Athena-like query editor and a live pipeline dashboard.
// Talks only to this server's REST API (/api/...); loads nothing from the network.
"use strict";
const $ = id => document.getElementById(id);
const PAGE_SIZE = 100;
const POLL_MS = 400;
const FINAL_STATES = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
const state = { queryId: null, pageTokens: [null], page: 0, polling: null, pipelineTimer: null, rateHistory: [], lastEvents: null,
                named: null, library: [], result: null, chartKind: null };

// A server with a token (`serve --token`, or any server off loopback) answers 401 without it. The
// console then asks for it; `tidelake serve` also prints the console's URL with ?token=..., which
// is taken out of the address bar at once. Either way the token is kept in sessionStorage: this
// tab only, gone when it closes.
const TOKEN_KEY = "tidelake-api-token";
(function takeTokenFromUrl() {
  const params = new URLSearchParams(location.search);
  if (!params.has("token")) return;
  sessionStorage.setItem(TOKEN_KEY, params.get("token"));
  params.delete("token");
  history.replaceState(null, "", location.pathname + (params.toString() ? `?${params}` : "") + location.hash);
})();

function askForToken(refused) {
  $("token-message").textContent = refused
    ? "This server refused the token: enter the one it printed."
    : "This server wants a token.";
  if ($("token-form").hidden) { $("token-form").hidden = false; $("token-input").focus(); }
}

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { headers, ...options });
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : await response.text();
  if (response.status === 401 || response.status === 403) {
    askForToken(Boolean(token));
    throw new Error("this server wants a token: enter it above (`tidelake serve` printed it; in Docker: docker compose logs serve)");
  }
  if (!response.ok) throw new Error(typeof body === "object" ? (body.detail?.toString() ?? JSON.stringify(body)) : body);
  return body;
}

function useToken(event) {
  event.preventDefault();
  const token = $("token-input").value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token-input").value = "";
  $("token-form").hidden = true;
  loadCatalog();
  loadNamed();
  refreshHistory();
}

function formatBytes(n) {
  if (n == null) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0, v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}
function formatNumber(n) { return n == null ? "—" : Number(n).toLocaleString("en-US"); }
function cell(tag, text, cls) { const el = document.createElement(tag); el.textContent = text ?? ""; if (cls) el.className = cls; return el; }
function fillTable(table, header, rows, numeric = new Set()) {
  table.innerHTML = "";
  const head = document.createElement("tr");
  header.forEach(h => head.appendChild(cell("th", h)));
  table.appendChild(head);
  rows.forEach(r => {
    const tr = document.createElement("tr");
    r.forEach((v, i) => tr.appendChild(cell("td", v === null ? "NULL" : String(v), numeric.has(i) ? "num" : "")));
    table.appendChild(tr);
  });
}

// ---------------------------------------------------------------- editor
function syncHighlight() { $("highlight").innerHTML = highlightSql($("sql").value); $("highlight").scrollTop = $("sql").scrollTop; }
function setSql(text, named = null) { $("sql").value = text; syncHighlight(); showParams(named); }
function closeSidebarOnNarrow() { if (matchMedia("(max-width: 760px)").matches) toggleSidebar(false); }
function toggleSidebar(open) {
  const sidebar = $("sidebar");
  const show = open ?? !sidebar.classList.contains("open");
  sidebar.classList.toggle("open", show);
  $("toggle-sidebar").setAttribute("aria-expanded", String(show));
}

// ------------------------------------------------------- named query form
// A shipped named query opens with its text as written ($name placeholders) and a form of its
// parameters; Run sends the form's values to /api/library/<name>/run, where DuckDB binds them.
function showParams(named) {
  state.named = named;
  const form = $("params");
  form.hidden = !named;
  $("params-fields").innerHTML = "";
  $("params-note").textContent = "";
  if (!named) return;
  $("params-title").textContent = named.name;
  $("params-question").textContent = named.question;
  for (const p of named.params) {
    const label = document.createElement("label");
    label.className = "param";
    label.setAttribute("data-testid", `param-${p.name}`);
    const head = document.createElement("span");
    head.className = "param-head";
    head.append(cell("span", p.name, "param-name"), " ", cell("span", p.type.toLowerCase(), "type"),
      " ", cell("span", `default ${p.default ?? "NULL"}`, "muted"));
    let input;
    if (p.type === "BOOLEAN") {
      input = document.createElement("select");
      for (const [value, text] of [["", "NULL"], ["true", "true"], ["false", "false"]]) {
        const option = cell("option", text);
        option.value = value;
        input.appendChild(option);
      }
    } else {
      input = document.createElement("input");
      input.type = p.type === "DATE" ? "date" : "text";
      input.placeholder = `NULL (e.g. ${p.example})`;
      input.spellcheck = false;
    }
    input.name = p.name;
    input.value = p.default ?? "";
    input.setAttribute("data-testid", `param-input-${p.name}`);
    input.setAttribute("aria-label", `${p.name} (${p.type})`);
    label.append(head, input, cell("span", p.help, "param-help"));
    $("params-fields").appendChild(label);
  }
  if (named.params.length === 0) $("params-fields").appendChild(cell("span", "no parameters", "muted"));
}

function paramValues() {
  const values = {};
  for (const input of $("params-fields").querySelectorAll("input, select")) values[input.name] = input.value === "" ? null : input.value;
  return values;
}

// The form stays bound to the query's own text; once the text is edited, Run sends plain SQL.
function namedStillApplies() {
  const applies = Boolean(state.named) && $("sql").value === state.named.sql;
  $("params-note").textContent = state.named && !applies
    ? "The SQL was edited: Run sends it as plain SQL, without these parameters (reopen the named query to use them)." : "";
  $("params").classList.toggle("stale", Boolean(state.named) && !applies);
  return applies;
}

async function loadCatalog() {
  const list = $("catalog");
  try {
    const tables = await api("/api/tables");
    list.innerHTML = "";
    if (tables.length === 0) list.appendChild(cell("li", "the lake is empty: run `tidelake demo`", "muted"));
    for (const t of tables) {
      const li = document.createElement("li");
      const name = cell("span", t.table, "table-name");
      name.setAttribute("data-testid", `table-${t.table}`);
      name.title = `${formatNumber(t.rows)} rows, ${t.files} files, ${formatBytes(t.bytes)} — click for a preview query`;
      name.onclick = () => { setSql(`SELECT *\nFROM ${t.table}\nLIMIT 10`); ul.hidden = !ul.hidden; };
      const ul = document.createElement("ul");
      ul.className = "columns";
      ul.hidden = true;
      for (const c of t.columns ?? []) {
        const item = document.createElement("li");
        item.appendChild(cell("span", c.name + " "));
        item.appendChild(cell("span", c.type.toLowerCase(), c.partition ? "part" : "type"));
        if (c.partition) item.appendChild(cell("span", " (partition)", "part"));
        ul.appendChild(item);
      }
      li.append(name, ul);
      if (t.warnings?.length) {
        const warn = cell("div", `⚠ ${t.warnings.length} skipped`, "muted");
        warn.title = t.warnings.join("\n");
        warn.setAttribute("data-testid", `warnings-${t.table}`);
        li.appendChild(warn);
      }
      list.appendChild(li);
    }
  } catch (e) { list.innerHTML = ""; list.appendChild(cell("li", `catalog unavailable: ${e.message}`, "muted")); }
}

async function loadNamed() {
  const list = $("named");
  const add = (name, sql, title, named = null) => {
    const li = cell("li", name, "named-item");
    li.title = title || "";
    li.setAttribute("data-testid", `named-${name}`);
    li.onclick = () => { setSql(sql, named); closeSidebarOnNarrow(); };
    list.appendChild(li);
  };
  try {
    const [shipped, saved] = await Promise.all([api("/api/library"), api("/api/named-queries")]);
    list.innerHTML = "";
    state.library = shipped;
    for (const q of shipped) add(q.name, q.sql, q.question, q);
    for (const q of saved) add(q.Name, q.QueryString, q.Description);
    if (shipped.length + saved.length === 0) list.appendChild(cell("li", "none yet", "muted"));
  } catch (e) { list.innerHTML = ""; list.appendChild(cell("li", `unavailable: ${e.message}`, "muted")); }
}

function showState(execution) {
  const badge = $("state");
  badge.textContent = execution.state;
  badge.className = `state ${execution.state}`;
  $("cancel").disabled = FINAL_STATES.has(execution.state);
  $("run").disabled = !FINAL_STATES.has(execution.state);
  if (execution.state === "SUCCEEDED") {
    $("stats").textContent = `${formatNumber(execution.rows)} rows · scanned ${formatBytes(execution.bytes_scanned)} · ` +
      `cost $${execution.cost_usd.toFixed(6)} · ${execution.engine_ms} ms`;
  } else {
    $("stats").textContent = execution.state === "RUNNING" || execution.state === "QUEUED" ? "running…" : "";
  }
  const error = $("error");
  error.hidden = !execution.reason || execution.state === "SUCCEEDED";
  error.textContent = execution.reason || "";
}

function clearResults() {
  $("grid").innerHTML = "";
  $("chart").innerHTML = "";
  $("chart").dataset.kind = "none";
  $("chart-controls").hidden = true;
  $("page-label").textContent = "";
  $("prev").disabled = $("next").disabled = true;
  state.result = null;
}

async function runQuery() {
  // the new run's own state at once: nothing of the previous run stays on screen
  state.queryId = null;
  clearTimeout(state.polling);
  clearResults();
  showState({ state: "QUEUED", reason: "" });
  $("stats").textContent = "submitting…";
  try {
    const started = namedStillApplies()
      ? await api(`/api/library/${encodeURIComponent(state.named.name)}/run`, { method: "POST", body: JSON.stringify({ params: paramValues() }) })
      : await api("/api/queries", { method: "POST", body: JSON.stringify({ sql: $("sql").value }) });
    state.queryId = started.id;
    state.pageTokens = [null];
    state.page = 0;
    await pollQuery();
  } catch (e) {
    showState({ state: "FAILED", reason: e.message });
  }
}

async function pollQuery() {
  clearTimeout(state.polling);
  const id = state.queryId;
  let execution;
  try {
    execution = await api(`/api/queries/${id}`);
  } catch (e) {  // the server went away or wants a token: say so, and let the user run again
    if (id === state.queryId) { $("error").hidden = false; $("error").textContent = e.message; $("run").disabled = false; }
    return;
  }
  if (id !== state.queryId) return;
  showState(execution);
  if (!FINAL_STATES.has(execution.state)) { state.polling = setTimeout(pollQuery, POLL_MS); return; }
  refreshHistory();
  if (execution.state === "SUCCEEDED") await showPage(0);
}

async function cancelQuery() {
  if (!state.queryId) return;
  $("cancel").disabled = true;
  const execution = await api(`/api/queries/${state.queryId}/stop`, { method: "POST" });
  showState(execution);
  if (!FINAL_STATES.has(execution.state)) state.polling = setTimeout(pollQuery, POLL_MS);
}

async function showPage(index) {
  const token = state.pageTokens[index];
  const params = new URLSearchParams({ max_results: String(PAGE_SIZE) });
  if (token) params.set("next_token", token);
  const id = state.queryId;
  const page = await api(`/api/queries/${id}/results?${params}`);
  if (id !== state.queryId) return;  // another run started meanwhile
  // Athena's first page starts with a header row; the grid shows it as the table head instead.
  const rows = index === 0 ? page.rows.slice(1) : page.rows;
  const numeric = new Set(page.columns.flatMap((c, i) => isNumericType(c.Type) ? [i] : []));
  fillTable($("grid"), page.columns.map(c => c.Name), rows, numeric);
  state.page = index;
  state.pageTokens[index + 1] = page.next_token;
  $("prev").disabled = index === 0;
  $("next").disabled = !page.next_token;
  $("page-label").textContent = `page ${index + 1}`;
  if (index === 0) {
    state.result = { columns: page.columns, rows };
    state.chartKind = state.chartKind === "off" ? "off" : null;  // "off" lasts; line/bar are per result
    renderChart();
  }
}

function renderChart() {
  if (!state.result) return;
  const spec = drawChart($("chart"), state.result.columns, state.result.rows, state.chartKind);
  $("chart-controls").hidden = !spec;
  const shown = $("chart").dataset.kind;
  $("chart-controls").querySelectorAll("button").forEach(b => b.classList.toggle("active", b.dataset.chart === shown));
}

async function refreshHistory() {
  let executions;
  try { executions = await api("/api/queries"); } catch { return; }  // a missing token is asked for above
  const table = $("history");
  const shown = e => {
    const params = Object.entries(e.params || {}).map(([k, v]) => `${k}=${v ?? "NULL"}`).join(", ");
    return (params ? `[${params}] ` : "") + e.sql.replace(/\s+/g, " ").slice(0, 90);
  };
  fillTable(table, ["state", "query", "scanned", "ms"], executions.slice(0, 20).map(e =>
    [e.state, shown(e), formatBytes(e.bytes_scanned), e.total_ms]));
  [...table.querySelectorAll("tr")].slice(1).forEach((tr, i) => {
    tr.onclick = () => {
      const e = executions[i];
      // a named run reopens its form with the values it ran with
      const named = Object.keys(e.params || {}).length ? state.library.find(q => q.sql === e.sql) : null;
      setSql(e.sql, named ?? null);
      for (const input of $("params-fields").querySelectorAll("input, select")) {
        if (named && input.name in e.params) input.value = e.params[input.name] ?? "";
      }
      clearResults();
      state.queryId = e.id; state.pageTokens = [null]; pollQuery();
    };
  });
}

async function saveQuery() {
  const name = prompt("Name for this query:");
  if (!name) return;
  try {
    await api("/api/named-queries", { method: "POST", body: JSON.stringify({ name, sql: $("sql").value }) });
    await loadNamed();
  } catch (e) { $("error").hidden = false; $("error").textContent = e.message; }
}

// -------------------------------------------------------------- pipeline
async function refreshPipeline() {
  try {
    const p = await api("/api/pipeline");
    const now = Date.now();
    if (state.lastEvents) {
      const rate = (p.events_in - state.lastEvents.count) / ((now - state.lastEvents.at) / 1000);
      state.rateHistory.push(Math.max(0, rate));
      state.rateHistory = state.rateHistory.slice(-60);
      $("m-rate").textContent = formatNumber(Math.round(Math.max(0, rate)));
      drawSparkline($("spark-rate"), state.rateHistory);
    }
    state.lastEvents = { count: p.events_in, at: now };
    $("m-events").textContent = formatNumber(p.events_in);
    $("m-rejected").textContent = formatNumber(p.rejected);
    $("m-windows").textContent = formatNumber(p.windows_closed);
    $("m-late").textContent = formatNumber(p.late_events);
    $("m-files").textContent = `${formatNumber(p.lake_files)} files`;
    $("m-bytes").textContent = formatBytes(p.lake_bytes);
    fillTable($("t-lag"), ["group", "lag (records)", "ms behind latest"],
      p.groups.map(g => [g.group, g.lag, g.millis_behind_latest]), new Set([1, 2]));
    fillTable($("t-apps"), ["app", "windows closed", "late events"],
      p.apps.map(a => [a.name, a.windows_closed, a.late_events]), new Set([1, 2]));
    fillTable($("t-lake"), ["dataset", "files", "rows", "bytes"],
      p.datasets.map(d => [d.name, d.files, d.rows, formatBytes(d.bytes)]), new Set([1, 2]));
    fillTable($("t-topics"), ["topic", "partitions", "records"],
      p.topics.map(t => [t.name, t.partitions, t.records]), new Set([1, 2]));
    $("pipeline-note").textContent = p.note || `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    $("pipeline-note").textContent = `pipeline status unavailable: ${e.message}`;
  }
}

function showView(name) {
  document.querySelectorAll(".tab").forEach(b => b.classList.toggle("active", b.dataset.view === name));
  $("view-editor").hidden = name !== "editor";
  $("view-pipeline").hidden = name !== "pipeline";
  clearTimeout(state.pipelineTimer);
  if (name === "pipeline") pollPipeline();
}

// One request at a time: the next poll starts a second after the previous answer.
async function pollPipeline() {
  clearTimeout(state.pipelineTimer);
  await refreshPipeline();
  if (!$("view-pipeline").hidden) state.pipelineTimer = setTimeout(pollPipeline, 1000);
}

// ------------------------------------------------------------------ wiring
$("sql").addEventListener("input", () => { syncHighlight(); namedStillApplies(); });
$("sql").addEventListener("scroll", () => { $("highlight").scrollTop = $("sql").scrollTop; });
$("sql").addEventListener("keydown", e => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); runQuery(); } });
$("run").onclick = runQuery;
$("cancel").onclick = cancelQuery;
$("save").onclick = saveQuery;
$("prev").onclick = () => showPage(state.page - 1);
$("next").onclick = () => showPage(state.page + 1);
document.querySelectorAll(".tab").forEach(b => { b.onclick = () => showView(b.dataset.view); });
$("token-form").addEventListener("submit", useToken);
$("params").addEventListener("submit", e => { e.preventDefault(); runQuery(); });
// Enter in a field runs the query (a form of several fields and no submit button never submits)
$("params").addEventListener("keydown", e => { if (e.key === "Enter" && e.target.tagName === "INPUT") { e.preventDefault(); runQuery(); } });
$("toggle-sidebar").onclick = () => toggleSidebar();
$("chart-controls").querySelectorAll("button").forEach(b => { b.onclick = () => { state.chartKind = b.dataset.chart; renderChart(); }; });
syncHighlight();
loadCatalog();
loadNamed();
refreshHistory();
