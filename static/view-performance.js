import { api } from "./api.js";
import { meter } from "./charts.js";
import { clear, h, s } from "./dom.js";
import { fmtDateTime, fmtMs, fmtNum, timeEl, truncate } from "./format.js";
import { card, clickableRow, emptyRow, errorList, kvTable, levelBadge, liveIndicator, offerNew, pageHeader, pagedTable, releaseLink, replayLink, section, statusBadge, table, traceLink, urlFilterBar } from "./widgets.js";

// ==========================================================================
// View: Performance (transactions by name -> list -> span waterfall)
// ==========================================================================

export async function viewPerformance(ctx, root, query) {
  const name = query.get("name");
  if (name !== null) return transactionList(ctx, root, name);
  const filters = { hours: query.get("hours") || "24" };
  const { table: tbl, tbody } = table([
    { label: "Transaction", cls: "col-issue" }, { label: "Count", cls: "num" }, { label: "Errors", cls: "num" }, { label: "p50", cls: "num" }, { label: "p95", cls: "num" }, { label: "p95 (relative)", cls: "col-graph" }, { label: "Avg", cls: "num" }, "Last seen",
  ], "txn-table", "transactions-table");
  root.appendChild(pageHeader("Performance", "Transactions grouped by name", liveIndicator()));
  root.appendChild(urlFilterBar("/performance", [
    { name: "hours", label: "Window", type: "select", options: [["1", "1 hour"], ["24", "24 hours"], ["168", "7 days"], ["720", "30 days"]] },
  ], filters, load, "perf-filters"));
  let seen = 0; // transactions counted when the table was drawn
  const total = (rows) => rows.reduce((sum, r) => sum + (Number(r.count) || 0), 0);
  root.appendChild(offerNew(ctx, "transaction", async () => {
    const data = await api("/api/v1/transactions", { hours: filters.hours }, { quiet: true });
    return total(data.transactions || []) - seen;
  }, load, "performance-new"));
  root.appendChild(h("div", { class: "table-wrap" }, tbl));

  async function load() {
    const data = await api("/api/v1/transactions", { hours: filters.hours });
    if (ctx.dead) return;
    clear(tbody);
    const rows = data.transactions || [];
    seen = total(rows);
    const maxP95 = Math.max(1, ...rows.map((r) => Number(r.p95) || 0));
    for (const t of rows) tbody.appendChild(transactionNameRow(t, maxP95));
    if (!rows.length) tbody.appendChild(emptyRow(8, "No transactions in this window."));
  }
  await load();
}

export function transactionNameRow(t, maxP95) {
  const href = "#/performance?name=" + encodeURIComponent(t.name == null ? "" : t.name);
  const errRate = t.count ? (Number(t.errors) || 0) / Number(t.count) : 0;
  return clickableRow(h("tr", { testid: "txn-name-row", data: { name: t.name } },
    h("td", { class: "col-issue" }, h("a", { href: href, class: "mono", testid: "txn-name-link" }, t.name || "(unnamed)")),
    h("td", { class: "num" }, fmtNum(t.count)),
    h("td", { class: "num" + (t.errors ? " text-error" : "") }, fmtNum(t.errors) + (t.errors ? " (" + (errRate * 100).toFixed(1) + "%)" : "")),
    h("td", { class: "num" }, fmtMs(t.p50)),
    h("td", { class: "num" }, fmtMs(t.p95)),
    h("td", { class: "col-graph" }, meter((Number(t.p95) || 0) / maxP95, "perf")),
    h("td", { class: "num" }, fmtMs(t.avg)),
    h("td", null, timeEl(t.lastSeen))), href);
}

export async function transactionList(ctx, root, name) {
  const rows = [];
  const list = pagedTable(ctx, {
    columns: ["Time", { label: "Duration", cls: "num" }, { label: "", cls: "col-graph" }, "Status", "Trace"],
    cls: "txn-list", testid: "transaction-list", moreTestid: "txn-load-more",
    fetch: (page) => api("/api/v1/transactions/list", Object.assign({ name: name }, page)),
    items: (data) => data.transactions,
    row: (t) => {
      const row = transactionRow(t);
      rows.push(row);
      return row.tr;
    },
    onPage: () => {
      // duration bars relative to the slowest loaded transaction
      const slowest = Math.max(1, ...rows.map((r) => Number(r.t.durationMs) || 0));
      for (const r of rows) r.fill.style.width = (((Number(r.t.durationMs) || 0) / slowest) * 100).toFixed(1) + "%";
    },
    empty: "No transactions with this name.",
  });
  root.appendChild(h("div", { class: "crumbs" }, h("a", { href: "#/performance" }, "← Performance")));
  root.appendChild(pageHeader(name || "(unnamed)", "Individual transactions, newest first"));
  root.append(...list.elements);
  await list.load(true);
}

export function transactionRow(t) {
  const href = "#/transactions/" + encodeURIComponent(t.id);
  const bar = meter(0, "perf" + (t.status && t.status !== "ok" ? " failed" : ""));
  const tr = clickableRow(h("tr", { testid: "txn-row", data: { transactionId: t.id } },
    h("td", null, h("a", { href: href, testid: "txn-link" }, fmtDateTime(t.timestamp))),
    h("td", { class: "num" }, fmtMs(t.durationMs)),
    h("td", { class: "col-graph" }, bar),
    h("td", null, statusBadge(t.status || "ok")),
    h("td", null, traceLink(t.traceId))), href);
  return { tr: tr, t: t, fill: bar.firstChild };
}

export async function viewTransaction(ctx, root, query, txnId) {
  const data = await api("/api/v1/transactions/" + encodeURIComponent(txnId));
  if (ctx.dead) return;
  const t = data.transaction;
  root.appendChild(h("div", { class: "crumbs" },
    h("a", { href: "#/performance" }, "Performance"), " / ",
    h("a", { href: "#/performance?name=" + encodeURIComponent(t.name == null ? "" : t.name) }, t.name || "(unnamed)")));
  root.appendChild(pageHeader(t.name || "(unnamed)", null, statusBadge(t.status || "ok", "txn-status")));
  root.appendChild(h("div", { class: "stat-grid" },
    card("Duration", fmtMs(t.durationMs), "txn-duration"),
    card("Spans", fmtNum((t.spans || []).length), "txn-span-count"),
    card("Started", timeEl(t.timestamp, "abs")),
    card("Trace", traceLink(t.traceId, "txn-trace-link") || "—"),
    card("Environment", t.environment || "—"),
    card("Release", t.release ? releaseLink(t.release) : "—"),
    t.replayId ? card("Replay", replayLink(t.replayId, "txn-replay-link")) : null));
  const vitals = t.webVitals && typeof t.webVitals === "object" ? t.webVitals : {};
  if (Object.keys(vitals).length) root.appendChild(section("Web vitals", webVitals(vitals), "web-vitals"));
  const errors = data.errors || t.errors || [];
  if (errors.length) root.appendChild(section("Errors in this trace", errorList(errors), "txn-errors"));
  root.appendChild(section("Span waterfall", waterfall(t), "waterfall-panel"));
}

// Google's thresholds: [good up to, poor from]; values in ms except CLS.
const VITALS = [
  ["lcp", "LCP", "Largest contentful paint", 2500, 4000],
  ["fcp", "FCP", "First contentful paint", 1800, 3000],
  ["inp", "INP", "Interaction to next paint", 200, 500],
  ["cls", "CLS", "Cumulative layout shift", 0.1, 0.25],
  ["ttfb", "TTFB", "Time to first byte", 800, 1800],
  ["fp", "FP", "First paint", 1800, 3000],
];

/** The page load's web vitals, each rated good / needs improvement / poor. */
export function webVitals(vitals) {
  return h("div", { class: "stat-grid vitals" }, VITALS.filter(([key]) => vitals[key] && vitals[key].value != null).map(([key, short, long, good, poor]) => {
    const value = Number(vitals[key].value);
    const rating = value <= good ? "good" : value < poor ? "meh" : "poor";
    const text = key === "cls" ? value.toFixed(3) : fmtMs(value);
    return h("div", { class: "stat-card vital vital-" + rating, testid: "web-vital", data: { vital: key, rating: rating }, title: long },
      h("div", { class: "stat-label" }, short),
      h("div", { class: "stat-value", testid: "web-vital-" + key }, text),
      h("div", { class: "stat-hint" }, { good: "good", meh: "needs improvement", poor: "poor" }[rating]));
  }));
}


/** Order spans as a tree (parents before children, siblings by start). */
export function spanTree(spans) {
  const byId = new Map();
  for (const sp of spans) if (sp.spanId != null) byId.set(String(sp.spanId), sp);
  const children = new Map();
  const roots = [];
  for (const sp of spans) {
    const parent = sp.parentSpanId != null ? String(sp.parentSpanId) : null;
    if (parent && byId.has(parent) && parent !== String(sp.spanId)) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(sp);
    } else roots.push(sp);
  }
  const byStart = (a, b) => (Number(a.startMs) || 0) - (Number(b.startMs) || 0);
  const out = [];
  const seen = new Set();
  const walk = (sp, depth) => {
    if (seen.has(sp)) return;
    seen.add(sp);
    out.push({ span: sp, depth: depth });
    const kids = (children.get(String(sp.spanId)) || []).slice().sort(byStart);
    for (const k of kids) walk(k, depth + 1);
  };
  for (const r of roots.slice().sort(byStart)) walk(r, 1);
  for (const sp of spans) if (!seen.has(sp)) walk(sp, 1); // cycles
  return out;
}

export function opClass(op) {
  const o = String(op || "").toLowerCase();
  if (o.startsWith("db")) return "op-db";
  if (o.startsWith("http")) return "op-http";
  if (o.includes("cache") || o.includes("redis")) return "op-cache";
  if (o.includes("render") || o.includes("template") || o.startsWith("ui")) return "op-ui";
  return "op-other";
}

export function waterfall(t) {
  const spans = Array.isArray(t.spans) ? t.spans : [];
  const rows = spanTree(spans);
  const total = Math.max(1, Number(t.durationMs) || 0,
    ...spans.map((sp) => (Number(sp.startMs) || 0) + (Number(sp.durationMs) || 0)));
  const W = 1000, rowH = 24, labelW = 340, padR = 70, top = 24;
  const H = top + (rows.length + 1) * rowH + 8;
  const x = (ms) => labelW + (ms / total) * (W - labelW - padR);
  const svg = s("svg", { class: "waterfall", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Span waterfall", testid: "span-waterfall" });
  // time ticks
  for (let i = 0; i <= 4; i++) {
    const ms = (total * i) / 4;
    svg.appendChild(s("line", { class: "grid", x1: x(ms).toFixed(1), x2: x(ms).toFixed(1), y1: top - 6, y2: H - 4 }));
    svg.appendChild(s("text", { class: "axis", x: x(ms).toFixed(1), y: 14, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", text: fmtMs(ms) }));
  }
  const addRow = (i, label, depth, start, dur, cls, tip, testid) => {
    const y = top + i * rowH;
    const g = s("g", { class: "wf-row", testid: testid });
    if (i % 2 === 1) g.appendChild(s("rect", { class: "wf-stripe", x: 0, y: y, width: W, height: rowH }));
    g.appendChild(s("text", { class: "wf-label", x: 6 + (depth - 0) * 12, y: y + 16, text: truncate(label, Math.max(10, 46 - depth * 2)) }));
    const bx = x(Math.max(0, start));
    const bw = Math.max(2, x(Math.max(0, start) + Math.max(0, dur)) - bx);
    g.appendChild(s("rect", { class: "wf-bar " + cls, x: bx.toFixed(1), y: y + 5, width: bw.toFixed(1), height: rowH - 10, rx: 2 }));
    g.appendChild(s("text", { class: "wf-dur", x: Math.min(W - 4, bx + bw + 4).toFixed(1), y: y + 16, text: fmtMs(dur) }));
    g.appendChild(s("title", { text: tip }));
    svg.appendChild(g);
  };
  addRow(0, t.name || "transaction", 0, 0, Number(t.durationMs) || 0, "op-root", (t.name || "transaction") + " — " + fmtMs(t.durationMs), "wf-root");
  rows.forEach((r, i) => {
    const sp = r.span;
    const label = (sp.op ? sp.op + " — " : "") + (sp.description || sp.spanId || "span");
    addRow(i + 1, label, r.depth, Number(sp.startMs) || 0, Number(sp.durationMs) || 0,
      opClass(sp.op) + (sp.status && sp.status !== "ok" ? " wf-error" : ""),
      label + " — starts +" + fmtMs(sp.startMs) + ", " + fmtMs(sp.durationMs) + (sp.status ? ", " + sp.status : ""), "span-row");
  });
  const list = table(["Op", "Description", { label: "Start", cls: "num" }, { label: "Duration", cls: "num" }, "Status", "Attributes"], "spans-table", "spans-table");
  for (const r of rows) {
    const sp = r.span;
    const attrs = sp.attributes && typeof sp.attributes === "object" && Object.keys(sp.attributes).length ? sp.attributes : null;
    list.tbody.appendChild(h("tr", { testid: "span-table-row" },
      h("td", { class: "mono small" }, sp.op || ""),
      h("td", { class: "mono wrap", testid: "span-description" }, sp.description || ""),
      h("td", { class: "num" }, "+" + fmtMs(sp.startMs)),
      h("td", { class: "num" }, fmtMs(sp.durationMs)),
      h("td", null, sp.status || ""),
      h("td", null, attrs ? h("details", { class: "span-attrs" }, h("summary", null, Object.keys(attrs).length + " attributes"), kvTable(attrs, "span-attributes")) : "")));
  }
  if (!rows.length) list.tbody.appendChild(emptyRow(6, "This transaction has no spans."));
  return h("div", null, h("div", { class: "waterfall-wrap" }, svg),
    h("details", { class: "raw" }, h("summary", null, "Span table"), h("div", { class: "table-wrap" }, list.table)));
}
