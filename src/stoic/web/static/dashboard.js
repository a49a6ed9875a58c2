// Stoic dashboard: renders the state pushed over Server-Sent Events (api/stream).
"use strict";

// The APIs sit next to this script's own URL, so the page works under any prefix
// ("/", "/stoic/", a FastAPI mount) without knowing it.
const ROOT = new URL("..", document.currentScript.src);
const api = (path) => new URL(path, ROOT).toString();
const VIEW = document.body.dataset.view || "operator";

const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const num = (v, digits = 0) => (typeof v === "number" && isFinite(v) ? v.toFixed(digits) : "-");
const show = (v, unit) => (unit === "ratio" && typeof v === "number" ? `${(100 * v).toFixed(2)}%` : `${num(v, 2)} ${unit || ""}`);
const clock = (t) => (t ? new Date(t * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"}) : "-");
const MONKEY_COLOURS = ["#ff6b6b", "#ffa94d", "#b197fc", "#4dabf7", "#63e6be", "#f783ac", "#ffd43b"];

function circleSize(requests) {
  // Hystrix-style: the circle grows with volume (log scale) so busy dependencies stand out.
  return Math.round(14 + Math.min(34, 8 * Math.log10(1 + (requests || 0))));
}

function tile(d) {
  const c = d.counts || {};
  const lat = d.latency_ms || {};
  const size = circleSize(d.requests);
  const fallbacks = Object.entries(d.fallbacks || {})
    .map(([name, n]) => `<span class="c-fallback">${esc(name)} ${num(n)}</span>`).join(" ") || '<span class="muted">none</span>';
  const use = Math.round(100 * (d.bulkhead_use || 0));
  return `<div class="tile" data-name="${esc(d.name)}" data-health="${esc(d.health)}">
    <div class="tile-head">
      <div class="circle-box"><div class="health" data-health="${esc(d.health)}" style="width:${size}px;height:${size}px"></div></div>
      <div class="who"><div class="name" title="${esc(d.name)}">${esc(d.name)}</div><div class="owner">${esc(d.owner || "")}</div>
        <span class="state" data-state="${esc(d.state)}">${esc(String(d.state || "").replace("_", " "))}</span></div>
      <div class="error-pct">${num(d.error_percentage, 1)}%<small>errors</small></div>
    </div>
    <div class="row counts">
      <span class="c-success" title="success">${num(c.success)}</span>
      <span class="c-failure" title="failure">${num(c.failure)}</span>
      <span class="c-timeout" title="timeout">${num(c.timeout)}</span>
      <span class="c-rejected" title="rejected (bulkhead)">${num(c.rejected)}</span>
      <span class="c-short" title="short-circuited">${num(c.short_circuited)}</span>
      <span class="muted">${num(d.rate, 1)}/s</span>
    </div>
    <div class="row lat"><span>p50 ${num(lat.p50, 1)}</span><span>p90 ${num(lat.p90, 1)}</span><span>p99 ${num(lat.p99, 1)} ms</span></div>
    <div class="row"><span>fallbacks</span><span>${fallbacks}</span></div>
    <div class="row"><span>bulkhead ${num(d.concurrent)}/${num(d.max_concurrent)}</span><div class="bar"><div style="width:${use}%"></div></div></div>
  </div>`;
}

const HEALTH_RANK = {down: 0, degraded: 1, warn: 2, ok: 3};

const TILE_WIDTH = 282, TILE_HEIGHT = 160;  // a tile and its gap, for "how many fit on a screen"
let lastDeps = [];
// Groups the user opened or closed by hand keep that state across updates and reloads.
const groupChoice = JSON.parse(sessionStorage.getItem("stoic-groups") || "{}");

function worst(deps) {
  return deps.reduce((w, d) => ((HEALTH_RANK[d.health] ?? 4) < (HEALTH_RANK[w] ?? 4) ? d.health : w), "ok");
}

function groupOf(d, by) {
  if (by === "none") return "all dependencies";
  if (by === "service") return String(d.name || "").split("/")[0] || "unnamed";
  return d.owner || "no team";
}

function screenful() {
  const columns = Math.max(1, Math.floor((window.innerWidth - 60) / TILE_WIDTH));
  const rows = Math.max(1, Math.floor((window.innerHeight - 160) / TILE_HEIGHT));
  return columns * rows;
}

function matches(d, words) {
  const text = `${d.name} ${d.owner || ""} ${d.state || ""} ${d.health || ""}`.toLowerCase();
  return words.every((w) => text.includes(w));
}

function renderDependencies(deps) {
  lastDeps = deps;
  // Worst first, like the Hystrix dashboard's "error then volume" sort.
  deps = deps.slice().sort((a, b) => (HEALTH_RANK[a.health] ?? 4) - (HEALTH_RANK[b.health] ?? 4)
    || (b.error_percentage || 0) - (a.error_percentage || 0) || String(a.name).localeCompare(String(b.name)));
  const down = deps.filter((d) => d.health === "down").length;
  const degraded = deps.filter((d) => d.health === "degraded" || d.health === "warn").length;
  $("summary").textContent = deps.length ? `${deps.length} dependencies, ${down} open, ${degraded} degraded` : "";
  const words = $("dep-filter").value.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = words.length ? deps.filter((d) => matches(d, words)) : deps;
  $("dep-shown").textContent = words.length ? `${shown.length} of ${deps.length} match` : "";
  if (!shown.length) {
    $("deps").innerHTML = `<p class="muted">${deps.length ? "No dependency matches the filter." : "No dependencies yet."}</p>`;
    return;
  }
  const by = $("dep-group").value;
  const groups = new Map();
  for (const d of shown) {
    const key = groupOf(d, by);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(d);
  }
  // Groups in trouble first; then by name.
  const ordered = [...groups.entries()].sort(([ka, a], [kb, b]) => (HEALTH_RANK[worst(a)] ?? 4) - (HEALTH_RANK[worst(b)] ?? 4) || ka.localeCompare(kb));
  // Beyond a screenful, healthy groups start collapsed; a group with a dependency in trouble, or
  // with matches for a filter, starts open.
  const crowded = shown.length > screenful();
  $("deps").innerHTML = ordered.map(([key, members]) => {
    const bad = members.filter((d) => d.health !== "ok").length;
    const chosen = groupChoice[`${by}:${key}`];
    const open = words.length > 0 || (chosen !== undefined ? chosen : !crowded || bad > 0);
    return `<section class="group" data-group="${esc(key)}" data-open="${open}" data-health="${esc(worst(members))}">
      <button type="button" class="group-head" data-group="${esc(key)}" aria-expanded="${open}">
        <span class="chevron">${open ? "▾" : "▸"}</span> <b>${esc(key)}</b>
        <span class="muted small">${members.length} ${members.length === 1 ? "dependency" : "dependencies"}${bad ? `, ${bad} not ok` : ""}</span></button>
      <div class="tiles">${open ? members.map(tile).join("") : ""}</div></section>`;
  }).join("");
}

function regroup() { renderDependencies(lastDeps); }

$("dep-filter").addEventListener("input", regroup);
$("dep-group").addEventListener("change", regroup);
$("deps").addEventListener("click", (event) => {
  const head = event.target.closest(".group-head");
  if (!head) return;
  const open = head.getAttribute("aria-expanded") !== "true";
  groupChoice[`${$("dep-group").value}:${head.dataset.group}`] = open;
  sessionStorage.setItem("stoic-groups", JSON.stringify(groupChoice));
  regroup();
});
for (const [id, open] of [["dep-expand", true], ["dep-collapse", false]]) {
  $(id).addEventListener("click", () => {
    const by = $("dep-group").value;
    for (const key of new Set(lastDeps.map((d) => groupOf(d, by)))) groupChoice[`${by}:${key}`] = open;
    sessionStorage.setItem("stoic-groups", JSON.stringify(groupChoice));
    regroup();
  });
}

function path(points, key, x, y) {
  let out = "";
  let pen = "M";
  for (const p of points) {
    if (typeof p[key] !== "number") { pen = "M"; continue; }
    out += `${pen}${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)} `;
    pen = "L";
  }
  return out;
}

function niceStep(span) {
  // 1, 2 or 5 times a power of ten: axis labels a reader can add up in their head.
  const raw = span / 3;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
}

function scale(values, unit) {
  // Counts, rates and ratios never go below zero, so neither does their axis. A flat series (or
  // one whose wiggle is under 5 % of its size) gets a range around it rather than an axis
  // stretched over its noise that prints the same number at the top and the bottom.
  let lo = Math.min(...values), hi = Math.max(...values);
  const floor = lo >= 0 ? 0 : -Infinity;
  const size = Math.max(Math.abs(lo), Math.abs(hi));
  if (hi - lo <= 0.05 * size || size === 0) {
    const half = size > 0 ? size / 2 : (unit === "ratio" ? 0.005 : 0.5);
    lo = floor === 0 ? 0 : lo - half;
    hi += half;
  } else {
    lo = Math.max(floor, lo - (hi - lo) * 0.08);
    hi += (hi - lo) * 0.08;
  }
  const step = niceStep(hi - lo);
  lo = Math.max(floor, Math.floor(lo / step) * step);
  hi = Math.ceil(hi / step) * step;
  if (unit === "ratio" && hi > 1 && Math.max(...values) <= 1) hi = 1;
  return {lo, hi, step};
}

function axis(v, unit, step) {
  const shown = unit === "ratio" ? 100 * v : v;
  const stepShown = unit === "ratio" ? 100 * step : step;
  const digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(stepShown) + 1e-9)));
  return `${(Math.abs(shown) < 1e-12 ? 0 : shown).toFixed(digits)}${unit === "ratio" ? "%" : ""}`;
}

function chart(series, chaos, interval, now) {
  const W = 600, H = 170, L = 46, R = 8, T = 8, B = 20;
  const pts = (series.points || []).filter((p) => typeof p.t === "number");
  const head = `<div class="chart-title"><span>${esc(series.label || series.indicator)} <span class="muted">${esc(series.region || "")}</span></span>`;
  if (pts.length < 2) return `<div class="chart">${head}<span class="muted">warming up</span></div></div>`;
  const values = pts.flatMap((p) => [p.value, p.expected, p.lower, p.upper]).filter((v) => typeof v === "number");
  const {lo, hi, step} = scale(values, series.unit);
  // The axis ends at the source's "now" (or the end of the last bucket) so fresh chaos is on it.
  const t0 = pts[0].t, t1 = Math.max(pts[pts.length - 1].t + (interval || 0), now || 0);
  const x = (t) => L + ((t - t0) / (t1 - t0 || 1)) * (W - L - R);
  const y = (v) => T + (1 - (Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * (H - T - B);
  // Band: between the alert threshold and the expected value (lower for drops, upper for rises).
  const edge = (p, side) => (typeof p[side] === "number" ? p[side] : p.expected);
  const banded = pts.filter((p) => typeof p.expected === "number" && (typeof p.lower === "number" || typeof p.upper === "number"));
  let band = "";
  if (banded.length > 1) {
    const top = banded.map((p) => `${x(p.t).toFixed(1)},${y(edge(p, "upper")).toFixed(1)}`);
    const bottom = banded.slice().reverse().map((p) => `${x(p.t).toFixed(1)},${y(edge(p, "lower")).toFixed(1)}`);
    band = `<polygon points="${top.concat(bottom).join(" ")}" fill="#4dabf7" fill-opacity="0.18"/>`;
  }
  // Chaos that actually happened (not skipped or leashed) is marked on every chart.
  const marks = (chaos || []).filter((e) => e.at >= t0 && e.at <= t1 && !["skipped", "leashed"].includes(e.outcome))
    .map((e) => `<line x1="${x(e.at).toFixed(1)}" x2="${x(e.at).toFixed(1)}" y1="${T}" y2="${H - B}" stroke="#ff6b6b" stroke-dasharray="2 3" stroke-opacity="0.8"><title>${esc(e.description || e.action || "chaos")}</title></line>`).join("");
  // The newest bucket may still be empty: report the newest one that has a value.
  const tickValues = [];
  for (let v = lo, i = 0; v <= hi + step / 2 && i < 12; v += step, i++) tickValues.push(v);
  const ticks = tickValues.map((v) => `<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#2a313b"/>
      <text class="tick" x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" fill="#8b95a3" font-size="11" text-anchor="end">${esc(axis(v, series.unit, step))}</text>`).join("");
  const last = pts.slice().reverse().find((p) => typeof p.value === "number") || pts[pts.length - 1];
  const lastValue = typeof last.value === "number" ? last.value : null;
  const below = lastValue !== null && ((typeof last.lower === "number" && lastValue < last.lower) || (typeof last.upper === "number" && lastValue > last.upper));
  return `<div class="chart" data-indicator="${esc(series.indicator)}" data-region="${esc(series.region || "")}">${head}
    <span style="color:${below ? "var(--down)" : "var(--text)"}">${esc(show(lastValue, series.unit))}</span></div>
    <svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(series.label || series.indicator)}">
      ${ticks}
      <text x="${L}" y="${H - 5}" fill="#8b95a3" font-size="11">${clock(t0)}</text>
      <text x="${W - R}" y="${H - 5}" fill="#8b95a3" font-size="11" text-anchor="end">${clock(t1)}</text>
      ${band}${marks}
      <path d="${path(pts, "expected", x, y)}" fill="none" stroke="#a5d8ff" stroke-width="1.5" stroke-dasharray="5 4"/>
      <path d="${path(pts, "value", x, y)}" fill="none" stroke="#ffd43b" stroke-width="2"/>
    </svg></div>`;
}

function renderIndicators(indicators, chaos) {
  const series = (indicators && indicators.series) || [];
  $("charts").innerHTML = series.length ? series.map((s) => chart(s, chaos, indicators.interval, indicators.now)).join("") : '<p class="muted">No indicator data yet.</p>';
}

function chaosLabel(e) {
  return e.monkey || e.kind || e.actor || e.source || "chaos";
}

function renderChaos(events, now) {
  if (!events.length) { $("chaos").innerHTML = '<p class="muted">No chaos events.</p>'; return; }
  const W = 600, H = 70, L = 10, R = 10;
  const t1 = Math.max(now, events[events.length - 1].at);
  const t0 = Math.min(t1 - 600, events[0].at);
  const x = (t) => L + ((t - t0) / (t1 - t0 || 1)) * (W - L - R);
  const kinds = [...new Set(events.map(chaosLabel))];
  const colour = (e) => MONKEY_COLOURS[kinds.indexOf(chaosLabel(e)) % MONKEY_COLOURS.length];
  const dots = events.map((e, i) => `<circle cx="${x(e.at).toFixed(1)}" cy="${22 + (i % 3) * 12}" r="5" fill="${colour(e)}"><title>${esc(clock(e.at) + " " + chaosLabel(e) + " " + (e.target || "") + " " + (e.description || e.action || ""))}</title></circle>`).join("");
  const legend = kinds.map((k, i) => `<tspan fill="${MONKEY_COLOURS[i % MONKEY_COLOURS.length]}">● ${esc(k)}  </tspan>`).join("");
  const list = events.slice(-12).reverse().map((e) => `<li data-outcome="${esc(e.outcome || "")}"><span class="muted">${clock(e.at)}</span>
      <b style="color:${colour(e)}">${esc(chaosLabel(e))}</b> ${esc(e.action || "")} <b>${esc(e.target || "")}</b>
      <span class="outcome">${esc([e.outcome, e.reason || e.description || e.detail || e.message].filter(Boolean).join(": "))}</span></li>`).join("");
  $("chaos").innerHTML = `<svg viewBox="0 0 ${W} ${H}">
      <line x1="${L}" x2="${W - R}" y1="${H - 14}" y2="${H - 14}" stroke="#2a313b"/>
      <text x="${L}" y="${H - 2}" fill="#8b95a3" font-size="11">${clock(t0)}</text>
      <text x="${W - R}" y="${H - 2}" fill="#8b95a3" font-size="11" text-anchor="end">${clock(t1)}</text>
      <text x="${L}" y="11" font-size="11">${legend}</text>${dots}</svg>
    <ul class="events">${list}</ul>`;
}

function renderAlerts(alerts) {
  $("alerts").innerHTML = alerts.length ? alerts.map((a) => `<li class="alert" data-status="${esc(a.status)}" data-severity="${esc(a.severity)}">
      <div class="summary">${esc(a.summary || a.title || a.message || a.kind)}</div>
      <div class="meta">${esc(a.status || "")} · ${esc(a.severity || "")} · ${esc(a.team || "")} · since ${clock(a.starts_at)}</div>
      ${a.cause ? `<div class="cause">cause: ${esc(a.cause)}</div>` : ""}
      ${a.next_step ? `<div class="next">next: ${esc(a.next_step)}</div>` : ""}
    </li>`).join("") : '<li class="muted">No alerts.</li>';
}

function renderScenarios(scenarios) {
  $("scenarios").innerHTML = scenarios.length ? scenarios.map((s) => `<tr data-name="${esc(s.name)}">
      <td>${esc(s.name)}</td><td>${esc((s.dependencies || []).join(", "))}</td><td>${esc(s.kind)}</td>
      <td>${num(s.percent, 1)}</td><td>${s.delay ? num(s.delay, 2) + " s" : "-"}</td>
      <td>${s.expires_at ? clock(s.expires_at) : "never"}</td>
      <td>${VIEW === "operator" ? `<button class="remove" data-name="${esc(s.name)}">remove</button>` : ""}</td></tr>`).join("")
    : '<tr><td colspan="7" class="muted">No scenarios.</td></tr>';
}

function render(state) {
  const deps = state.dependencies || [], chaos = state.chaos || [], scenarios = state.scenarios || [];
  renderDependencies(deps);
  renderIndicators(state.indicators, chaos);
  renderChaos(chaos, state.now);
  renderAlerts(state.alerts || []);
  renderScenarios(scenarios);
  // A panel for a part the service does not use is left out: no dependencies, no chaos, no FIT
  // (an operator can switch scenarios on once there are dependencies to fail).
  $("deps-section").hidden = !deps.length;
  $("chaos-section").hidden = !chaos.length;
  $("fit-section").hidden = !(scenarios.length || (VIEW === "operator" && deps.length));
  // A source that failed is named rather than silently showing nothing.
  $("errors").textContent = Object.entries(state.errors || {}).map(([k, v]) => `${k} unavailable: ${v}`).join("; ");
  document.body.dataset.updated = String(state.now);
}

// --- the operator's bearer token, for FIT changes and the churn list (kept for this tab only) ---
function token() {
  const field = $("token");
  if (field.value) sessionStorage.setItem("stoic-token", field.value);
  return field.value || sessionStorage.getItem("stoic-token") || "";
}

function say(text, kind) {
  const el = $("fit-message");
  el.textContent = text;
  el.dataset.kind = kind;
}

async function control(method, url, body) {
  const response = await fetch(api(url), {
    method,
    headers: {"Authorization": `Bearer ${token()}`, "Content-Type": "application/json"},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    const err = await response.json().catch(() => ({error: response.statusText}));
    throw new Error(err.field ? `${err.field}: ${err.error}` : err.error);
  }
  return response.status === 204 ? null : response.json();
}

async function refresh() {
  const response = await fetch(api("api/state"));
  if (response.ok) render(await response.json());
}

if ($("add-scenario")) $("add-scenario").addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = new FormData(event.target);
  const body = {name: f.get("name"), dependencies: String(f.get("dependencies")).split(",").map((s) => s.trim()).filter(Boolean), kind: f.get("kind")};
  for (const key of ["percent", "delay", "ttl"]) if (f.get(key)) body[key] = Number(f.get(key));
  try {
    await control("POST", "api/fit/scenarios", body);
    say(`added ${body.name}`, "ok");
    await refresh();
  } catch (err) { say(err.message, "error"); }
});

$("scenarios").addEventListener("click", async (event) => {
  if (VIEW !== "operator") return;
  const name = event.target.dataset && event.target.dataset.name;
  if (!name || !event.target.classList.contains("remove")) return;
  try {
    await control("DELETE", `api/fit/scenarios/${encodeURIComponent(name)}`);
    say(`removed ${name}`, "ok");
    await refresh();
  } catch (err) { say(err.message, "error"); }
});

// --- churn panel (operator's view only: it names customers, so it is read with the token) ---
function churnRow(r) {
  const who = r.name ? `${esc(r.name)} <span class="muted">${esc(r.account)}</span>` : esc(r.account);
  const why = Object.entries(r.reasons || {}).filter(([, v]) => v > 0).map(([k]) => esc(k)).join("; ") || esc(r.kind);
  return `<tr data-account="${esc(r.account)}"><td>${who}</td><td>${esc(r.segment || "-")}</td><td>${esc(r.owner || "-")}</td>
    <td class="n">${typeof r.value === "number" ? esc(r.value.toLocaleString("en-US")) : "-"}</td><td class="n risk">${num(r.score, 2)}</td><td>${why}</td><td class="small">${esc(r.next_step)}</td></tr>`;
}

async function loadChurn() {
  const el = $("churn");
  if (!token()) return;
  try {
    const data = await control("GET", "api/churn");
    $("churn-message").textContent = "";
    if (!data.declared) {
      el.innerHTML = '<tr><td colspan="7" class="muted">No churn model: declare an indicator with churn = "activity".</td></tr>';
    } else if (!data.accounts.length) {
      el.innerHTML = '<tr><td colspan="7" class="muted">No account at risk.</td></tr>';
    } else {
      el.innerHTML = data.accounts.map(churnRow).join("");
    }
  } catch (err) {
    const m = $("churn-message");
    m.textContent = err.message;
    m.dataset.kind = "error";
  }
}

if ($("churn-section")) {
  $("churn-load").addEventListener("click", () => loadChurn());
  loadChurn();
  setInterval(loadChurn, 60000);  // scores move by the day: once a minute is plenty
}

// --- live updates ---
const link = $("link");
let source = null;

function connect() {
  source = new EventSource(api("api/stream"));
  source.addEventListener("state", (event) => {
    link.dataset.status = "live";
    link.textContent = "live";
    render(JSON.parse(event.data));
  });
  source.addEventListener("error", () => {
    link.dataset.status = "lost";
    link.textContent = "reconnecting";
    if (source.readyState !== EventSource.CLOSED) return;  // the browser retries on its own
    // Refused (e.g. 503 when the server has as many live streams as it serves): the browser
    // gives up, so show the state once and try the stream again a little later.
    link.textContent = "server busy, retrying";
    refresh().catch(() => {});
    setTimeout(connect, 5000 + Math.random() * 5000);
  });
}

connect();
