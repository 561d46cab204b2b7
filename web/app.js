// sluice live dashboard: polls /api/status and /api/results every second and redraws in place.
// Plain JavaScript with inline SVG charts; everything is served by the binary (no network).
"use strict";

const POLL_MS = 1000;
// Short column headings for the top tables.
const SHORT = { qualified_application: "Qualified", disqualified_application: "Disqualified", spend_hour: "Spend", bid_set: "Avg bid" };
const LABELS = {
  clicks: "Clicks", conversion: "Conversions", qualified_application: "Qualified applications",
  disqualified_application: "Disqualified applications", spend_hour: "Spend", bid_set: "Average bid",
  job_id: "jobs", campaign_id: "campaigns", publisher_id: "publishers", group_id: "groups",
};
const COUNT_METRICS = ["clicks", "conversion", "qualified_application", "disqualified_application"];
const SPEND_METRIC = "spend_hour";
const TOP_KEYS = ["job_id", "campaign_id", "publisher_id"];
const COLORS = ["#2f6fdd", "#1f9d55", "#d98b00", "#d33a2c", "#7b4fd6", "#0e9aa7"];
const SVG = "http://www.w3.org/2000/svg";

let polls = 0;

const $ = (id) => document.getElementById(id);
const label = (name) => LABELS[name] || name;

function fmt(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (typeof v !== "number") return String(v);
  const d = digits === undefined ? (Number.isInteger(v) ? 0 : 2) : digits;
  return v.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: 0 });
}

// Axis labels: short ("28.2M"), since the axis is narrow.
function fmtAxis(v, span) {
  const a = Math.abs(v);
  if (a >= 1e9) return fmt(v / 1e9, 1) + "G";
  if (a >= 1e6) return fmt(v / 1e6, 1) + "M";
  if (a >= 1e4) return fmt(v / 1e3, 1) + "k";
  return fmt(v, span < 10 ? 1 : 0);
}

function fmtSeconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 120) return fmt(s, 1) + " s";
  if (s < 7200) return fmt(s / 60, 1) + " min";
  if (s < 172800) return fmt(s / 3600, 1) + " h";
  return fmt(s / 86400, 1) + " d";
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function setValue(id, value, text) {
  const e = $(id);
  e.dataset.value = value === null || value === undefined ? "" : String(value);
  e.textContent = text !== undefined ? text : fmt(value);
}

// Draws a chart into `container`: `kind` "line" (x = times) or "bars" (x = categories).
// series: [{name, color, values: [number|null]}]; labels: one per x.
function chart(container, kind, labels, series, emptyText) {
  container.replaceChildren();
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined && isFinite(v));
  if (labels.length === 0 || all.length === 0) {
    container.append(el("div", { class: "empty" }, emptyText || "no data yet"));
    return;
  }
  // Drawn at the container's pixel size, so text is never stretched.
  const W = Math.max(200, container.clientWidth || 600), H = Math.max(100, container.clientHeight || 170);
  const L = 56, R = 8, T = 8, B = 22;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H });
  let max = Math.max(...all, 0), min = Math.min(...all, 0);
  if (max === min) max = min + 1;
  const y = (v) => T + (H - T - B) * (1 - (v - min) / (max - min));
  for (let i = 0; i <= 3; i++) {
    const v = min + ((max - min) * i) / 3;
    svg.append(svgEl("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e6ebf0" }));
    const t = svgEl("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7785" });
    t.textContent = fmtAxis(v, max - min);
    svg.append(t);
  }
  const n = labels.length;
  const plotW = W - L - R;
  if (kind === "bars") {
    const group = plotW / n, pad = Math.min(8, group * 0.2);
    const bw = Math.max(1, (group - pad) / series.length);
    series.forEach((s, si) => s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const x = L + i * group + pad / 2 + si * bw;
      const r = svgEl("rect", { x, y: Math.min(y(v), y(0)), width: Math.max(1, bw - 1),
        height: Math.abs(y(0) - y(v)), fill: s.color });
      const title = svgEl("title");
      title.textContent = `${s.name} ${labels[i]}: ${fmt(v)}`;
      r.append(title);
      svg.append(r);
    }));
  } else {
    const x = (i) => L + (n === 1 ? plotW / 2 : (plotW * i) / (n - 1));
    for (const s of series) {
      let d = "";
      s.values.forEach((v, i) => {
        if (v === null || v === undefined || !isFinite(v)) return;
        d += (d === "" || s.values[i - 1] === null ? "M" : "L") + x(i).toFixed(1) + "," + y(v).toFixed(1);
      });
      svg.append(svgEl("path", { d, fill: "none", stroke: s.color, "stroke-width": 2 }));
    }
  }
  const step = Math.max(1, Math.ceil(n / 6));
  for (let i = 0; i < n; i += step) {
    const cx = kind === "bars" ? L + (plotW / n) * (i + 0.5) : L + (n === 1 ? plotW / 2 : (plotW * i) / (n - 1));
    const t = svgEl("text", { x: cx, y: H - 6, "text-anchor": "middle", "font-size": 11, fill: "#6b7785" });
    t.textContent = labels[i];
    svg.append(t);
  }
  container.append(svg);
}

function legend(container, series) {
  container.replaceChildren(...series.map((s) =>
    el("span", {}, el("i", { style: `background:${s.color}` }), s.name)));
}

function clock(ms) {
  const d = new Date(ms);
  return d.toISOString().substring(11, 19);
}

function renderStatus(s) {
  $("pipeline").textContent = s.pipeline;
  $("source").textContent = s.source;
  $("sink").textContent = s.sink;
  const state = $("state");
  state.textContent = s.state;
  state.dataset.state = s.state;
  state.className = "badge " + ({ running: "ok", finished: "ok", draining: "warn", starting: "warn", failed: "bad" }[s.state] || "");
  const ready = $("ready");
  ready.textContent = s.ready ? "ready" : "not ready";
  ready.dataset.ready = String(s.ready);
  ready.className = "badge " + (s.ready ? "ok" : "warn");
  ready.title = s.not_ready_reasons.join("; ");
  $("uptime").textContent = fmtSeconds(s.uptime_seconds);

  const c = s.counts;
  setValue("h-records", c.records_in);
  setValue("h-rate", s.rates.records_in_per_second, fmt(s.rates.records_in_per_second, 0) + " /s");
  setValue("h-aggregated", c.aggregated);
  setValue("h-ignored", c.ignored, fmt(c.ignored) + " ignored");
  setValue("h-dead", c.dead_lettered);
  const stored = s.stored_dead_letters;
  $("h-dead-sub").textContent = `${fmt(c.decode_errors)} decode errors · ${fmt(s.rates.dead_lettered_per_second, 1)} /s` +
    (stored ? ` · ${fmt(stored.total)} stored` : "");
  setValue("h-lag", s.total_lag, s.total_lag === null ? "n/a" : fmt(s.total_lag));
  $("h-partitions").textContent = `${s.partitions.length} partition(s) · ${s.workers} worker(s)`;
  const wm = s.watermark;
  setValue("h-watermark", wm.delay_seconds, wm.delay_seconds === null ? "n/a" : fmtSeconds(wm.delay_seconds));
  $("h-freshness").textContent = wm.max_event_time_micros === null ? "no events yet"
    : `newest event ${fmtSeconds((s.now_micros - wm.max_event_time_micros) / 1e6)} ago · ${fmt(wm.open_windows)} open windows`;
  const cp = s.checkpoints;
  setValue("h-checkpoints", cp.count);
  $("h-checkpoint-sub").textContent = `${fmt(cp.failures)} failed · last ${fmt(cp.last_duration_seconds * 1000, 0)} ms, ` +
    (cp.age_seconds === null ? "none yet" : fmtSeconds(cp.age_seconds) + " ago") + (cp.sink_healthy ? "" : " · SINK DOWN");

  const h = s.history;
  const times = h.t.map(clock);
  const perSecond = (values) => values.map((v, i) => i === 0 ? null : Math.max(0, (v - values[i - 1]) / Math.max(1e-3, (h.t[i] - h.t[i - 1]) / 1000)));
  const throughput = [
    { name: "records in", color: COLORS[0], values: perSecond(h.records_in) },
    { name: "aggregated", color: COLORS[1], values: perSecond(h.aggregated) },
  ];
  chart($("chart-throughput"), "line", times, throughput);
  legend($("chart-throughput-legend"), throughput);
  chart($("chart-lag"), "line", times, [{ name: "lag", color: COLORS[2], values: h.lag }],
    "the source reports no lag (files and generators report none)");
  chart($("chart-watermark"), "line", times, [{ name: "delay", color: COLORS[4], values: h.watermark_delay_seconds }],
    "no watermark (update mode without lateness tracks none)");
  chart($("chart-dead"), "line", times, [{ name: "dead letters", color: COLORS[3], values: perSecond(h.dead_lettered) }]);
  chart($("chart-checkpoints"), "line", times, [{ name: "duration", color: COLORS[5], values: h.checkpoint_duration_ms }]);

  $("partitions").tBodies[0].replaceChildren(...s.partitions.map((p) =>
    el("tr", { "data-partition": p.partition }, el("td", {}, p.partition), el("td", {}, fmt(p.position)),
      el("td", {}, p.lag === null ? "n/a" : fmt(p.lag)))));
  const reasons = [
    ...s.ignored_by_reason.map((r) => ["ignored", r]),
    ...s.dead_lettered_by_reason.map((r) => ["dead-lettered", r]),
  ];
  $("reasons").tBodies[0].replaceChildren(...reasons.map(([kind, r]) =>
    el("tr", {}, el("td", {}, `${kind}: ${r.reason}`), el("td", {}, fmt(r.count)))));
  // Read from the sink's store at start and kept current by each checkpoint, so earlier runs count.
  const storedNote = $("stored-dead-note");
  storedNote.textContent = stored ? `${fmt(stored.total)} in ${stored.location}` : "the sink's store cannot be read back";
  storedNote.dataset.total = stored ? String(stored.total) : "";
  $("stored-dead").tBodies[0].replaceChildren(...(stored ? stored.by_reason : []).slice(0, 20).map((r) =>
    el("tr", { "data-reason": r.reason, "data-count": r.count }, el("td", {}, r.reason), el("td", {}, fmt(r.count)))));
}

function windowLabel(w, windowSeconds) {
  // "YYYY-MM-DD HH:MM:SS": hourly windows show "MM-DD HHh", shorter ones the time.
  return windowSeconds >= 3600 ? w.start.substring(5, 13) + "h" : w.start.substring(11, 16);
}

function renderResults(r) {
  const business = $("business");
  if (r.mode !== "aggregate") {
    business.dataset.mode = "rows";
    $("business-charts").hidden = true;
    $("results-note").textContent = `${fmt(r.rows_seen)} rows committed (latest shown)`;
    $("kpis").replaceChildren();
    $("tops").replaceChildren(el("div", { class: "panel" }, el("h3", {}, "Latest committed rows"),
      el("table", { id: "rows" }, el("thead", {}, el("tr", {}, ...r.columns.map((c) => el("th", {}, c)))),
        el("tbody", {}, ...r.rows.slice(-20).reverse().map((row) => el("tr", {}, ...row.map((v) => el("td", {}, fmt(v)))))))));
    return;
  }
  business.dataset.mode = "aggregate";
  $("business-charts").hidden = false;
  business.dataset.commits = String(r.commits);
  $("results-note").textContent = `committed to the sink: ${fmt(r.commits)} checkpoint(s), ` +
    `last ${r.windows.length} window(s) of ${fmtSeconds(r.window_seconds)}` +
    (r.slide_seconds && r.slide_seconds < r.window_seconds
      ? ` starting every ${fmtSeconds(r.slide_seconds)} (totals and top lists count the windows that do not overlap)`
      : "") +
    (r.truncated ? " (top lists truncated)" : "");

  const names = r.metrics.map((m) => m.name);
  const ordered = [...COUNT_METRICS, SPEND_METRIC, "bid_set"].filter((n) => names.includes(n))
    .concat(names.filter((n) => ![...COUNT_METRICS, SPEND_METRIC, "bid_set"].includes(n)));
  const last = r.windows.length ? r.windows[r.windows.length - 1] : null;
  $("kpis").replaceChildren(...ordered.map((n) => {
    const v = r.totals[n];
    return el("div", { class: "tile", id: `kpi-${n}`, "data-metric": n, "data-value": v === null ? "" : String(v) },
      el("div", { class: "label" }, label(n)),
      el("div", { class: "value" }, fmt(v)),
      el("div", { class: "sub" }, last ? `latest window ${fmt(last.values[n])}` : "–"));
  }));

  const labels = r.windows.map((w) => windowLabel(w, r.window_seconds));
  const series = (list) => list.map((n, i) => ({ name: label(n), color: COLORS[i % COLORS.length], values: r.windows.map((w) => w.values[n]) }));
  let first = COUNT_METRICS.filter((n) => names.includes(n));
  let second = names.includes(SPEND_METRIC) ? [SPEND_METRIC] : [];
  if (first.length === 0 && second.length === 0) {
    first = names.slice(0, 4);
    second = names.slice(4, 5);
  }
  const per = r.window_seconds >= 3600 ? "hour" : "window";
  $("chart-counts-title").textContent = first.map(label).join(", ") + " per " + per;
  const s1 = series(first);
  chart($("chart-counts"), "bars", labels, s1, "nothing committed yet");
  legend($("chart-counts-legend"), s1);
  const s2 = series(second).map((s) => ({ ...s, color: COLORS[4] }));
  $("chart-spend-title").textContent = second.length ? second.map(label).join(", ") + " per " + per : "";
  $("chart-spend").parentElement.hidden = second.length === 0;
  chart($("chart-spend"), "bars", labels, s2, "nothing committed yet");
  legend($("chart-spend-legend"), s2);

  const keys = TOP_KEYS.filter((k) => r.keys.includes(k));
  const shown = keys.length ? keys : r.keys.slice(0, 3);
  const preferred = ["clicks", "conversion", SPEND_METRIC, "qualified_application"].filter((n) => names.includes(n));
  const columns = [r.top_by, ...preferred, ...ordered].filter((n, i, a) => n && a.indexOf(n) === i).slice(0, 4);
  $("tops").replaceChildren(...shown.map((k) => {
    const top = r.top[k];
    return el("div", { class: "panel" },
      el("h3", {}, `Top ${label(k)} by ${label(r.top_by)} (${fmt(top.distinct)} in view)`),
      el("table", { id: `top-${k}`, "data-key-column": k, "data-by": r.top_by },
        el("thead", {}, el("tr", {}, el("th", {}, k), ...columns.map((c) => el("th", {}, SHORT[c] || label(c))))),
        el("tbody", {}, ...top.rows.map((row) => el("tr", { "data-key": String(row.key), "data-value": String(row.values[r.top_by]) },
          el("td", {}, row.key === null ? "(null)" : String(row.key)),
          ...columns.map((c) => el("td", { "data-metric": c, "data-value": String(row.values[c]) }, fmt(row.values[c]))))))));
  }));
}

async function poll() {
  try {
    const [status, results] = await Promise.all([
      fetch("/api/status", { cache: "no-store" }).then((r) => r.json()),
      fetch("/api/results?top=10", { cache: "no-store" }).then((r) => (r.ok ? r.json() : null)),
    ]);
    renderStatus(status);
    if (results) renderResults(results);
    polls += 1;
    const updated = $("updated");
    updated.dataset.polls = String(polls);
    updated.dataset.state = status.state;
    updated.textContent = new Date().toLocaleTimeString();
    $("error").hidden = true;
  } catch (e) {
    const err = $("error");
    err.hidden = false;
    err.textContent = "cannot reach sluice: " + e;
    $("state").textContent = "unreachable";
    $("state").className = "badge bad";
  }
  setTimeout(poll, POLL_MS);
}

poll();
