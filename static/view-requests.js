import { api } from "./api.js";
import { barChart, meter } from "./charts.js";
import { clear, h } from "./dom.js";
import { fmtBytes, fmtMs, fmtNum, timeEl, truncate } from "./format.js";
import { card, emptyRow, httpStatusBadge, liveIndicator, offerNew, pageHeader, pagedTable, section, table, traceLink, urlFilterBar } from "./widgets.js";

// ==========================================================================
// View: HTTP requests
// ==========================================================================

export async function viewRequests(ctx, root, query) {
  const filters = {
    direction: query.get("direction") || "", method: query.get("method") || "",
    host: query.get("host") || "", path: query.get("path") || "",
    status: query.get("status") || "", hours: query.get("hours") || "24",
  };
  const statsBox = h("div", { testid: "request-stats" });
  let newest = null; // the highest id the page has shown, for "N new"
  const rows = pagedTable(ctx, {
    columns: ["Time", "Dir", "Method", "Host", "Path", "Status", { label: "Duration", cls: "num" }, { label: "Req", cls: "num" }, { label: "Resp", cls: "num" }, "Trace", "User"],
    cls: "requests-table", testid: "requests-table", moreTestid: "requests-load-more",
    fetch: (page) => api("/api/v1/http-requests", params(page)),
    items: (data) => data.requests, row: requestRow, empty: "No requests recorded.",
    onPage: (data, reset) => {
      if (reset) newest = data.newestId != null ? Number(data.newestId) : maxId(data.requests);
    },
  });

  root.appendChild(pageHeader("HTTP requests", "Inbound and outbound request telemetry", liveIndicator()));
  root.appendChild(urlFilterBar("/requests", [
    { name: "direction", label: "Direction", type: "select", options: [["", "Both directions"], ["inbound", "Inbound"], ["outbound", "Outbound"]] },
    { name: "method", label: "Method", type: "select", options: [["", "Any method"], ["GET", "GET"], ["POST", "POST"], ["PUT", "PUT"], ["PATCH", "PATCH"], ["DELETE", "DELETE"], ["HEAD", "HEAD"], ["OPTIONS", "OPTIONS"]] },
    { name: "host", label: "Host" },
    { name: "path", label: "Path contains", short: "Path" },
    { name: "status", label: "Status (2xx, 404…)", short: "Status" },
    { name: "hours", label: "Stats window", short: "Window", type: "select", options: [["1", "1 hour"], ["6", "6 hours"], ["24", "24 hours"], ["168", "7 days"], ["720", "30 days"]] },
  ], filters, reload, "request-filters"));
  root.appendChild(statsBox);
  const fresh = offerNew(ctx, "request", async () => {
    if (newest == null) return 0;
    const data = await api("/api/v1/http-requests", params({ since: newest, limit: 500 }), { quiet: true });
    return (data.requests || []).length;
  }, reload, "requests-new");
  root.appendChild(section("Requests", [fresh, ...rows.elements], "requests-panel"));

  function params(extra) {
    const { hours, ...rest } = filters;
    return Object.assign(rest, extra);
  }

  async function loadStats() {
    const stats = await api("/api/v1/http-requests/stats", params({ hours: filters.hours }));
    if (ctx.dead) return;
    clear(statsBox).appendChild(requestStats(stats, filters.hours));
  }

  async function reload() {
    await Promise.all([loadStats(), rows.load(true)]);
  }

  await reload();
}

export function requestStats(stats, hours) {
  const windowText = Number(hours) >= 48 ? Math.round(Number(hours) / 24) + " days" : hours + " h";
  const cards = h("div", { class: "stat-grid" },
    card("Requests (" + windowText + ")", fmtNum(stats.count), "req-count"),
    card("p50", fmtMs(stats.p50), "req-p50"),
    card("p95", fmtMs(stats.p95), "req-p95"),
    card("p99", fmtMs(stats.p99), "req-p99"));
  const codes = Object.entries(stats.statusCodes || {}).sort((a, b) => b[1] - a[1]);
  const total = codes.reduce((a, [, n]) => a + (Number(n) || 0), 0) || 1;
  const breakdown = h("div", { class: "breakdown", testid: "status-breakdown" },
    codes.length ? codes.map(([code, n]) => h("div", { class: "breakdown-row", testid: "status-code-row", data: { code: code } },
      httpStatusBadge(code), meter(n / total, "http-" + String(code).charAt(0) + "xx"), h("span", { class: "breakdown-num" }, fmtNum(n) + " (" + Math.round((n / total) * 100) + "%)")))
      : h("div", { class: "muted" }, "No requests in this window."));
  const classes = h("div", { class: "chips" }, Object.entries(stats.statusClasses || {}).map(([k, n]) =>
    h("span", { class: "chip chip-" + k, testid: "status-class" }, k + ": " + fmtNum(n))));
  const hist = Array.isArray(stats.histogram) ? stats.histogram : [];
  const histChart = hist.length ? barChart(hist.map((b, i) => ({
    label: b.le == null || b.le === "inf" || b.le === "+Inf" ? "> " + fmtMs(hist[i - 1] ? hist[i - 1].le : 0) : "≤ " + fmtMs(b.le),
    values: [b.count],
  })), [{ name: "requests", cls: "s0" }], { height: 200, integer: true, label: "Latency histogram", testid: "latency-histogram", maxLabels: 12 }) : h("div", { class: "muted" }, "No latency data.");
  const hosts = table(["Host", { label: "Requests", cls: "num" }, { label: "p95", cls: "num" }], "hosts-table", "hosts-table");
  for (const row of stats.byHost || []) {
    hosts.tbody.appendChild(h("tr", { testid: "host-row" }, h("td", { class: "mono" }, row.host || "—"), h("td", { class: "num" }, fmtNum(row.count)), h("td", { class: "num" }, fmtMs(row.p95))));
  }
  if (!hosts.tbody.children.length) hosts.tbody.appendChild(emptyRow(3, "No hosts."));
  return h("div", null, cards,
    h("div", { class: "grid-2" },
      section("Latency distribution", histChart, "latency-panel"),
      section("Status codes", [classes, breakdown], "status-panel")),
    section("By host", h("div", { class: "table-wrap" }, hosts.table), "hosts-panel"));
}

export function requestRow(r) {
  return h("tr", { testid: "request-row", data: { requestId: r.id } },
    h("td", { class: "nowrap" }, timeEl(r.timestamp, "abs")),
    h("td", null, r.direction ? h("span", { class: "chip" }, r.direction) : "—"),
    h("td", null, h("span", { class: "badge method" }, r.method || "—")),
    h("td", { class: "mono", testid: "request-host" }, r.host || ""),
    h("td", { class: "mono wrap", testid: "request-path" }, r.path || ""),
    h("td", null, httpStatusBadge(r.statusCode)),
    h("td", { class: "num" }, fmtMs(r.durationMs)),
    h("td", { class: "num" }, fmtBytes(r.requestSize)),
    h("td", { class: "num" }, fmtBytes(r.responseSize)),
    h("td", null, traceLink(r.traceId)),
    h("td", { class: "mono small" }, r.userId || ""));
}

function maxId(items) {
  return (items || []).reduce((max, item) => Math.max(max, Number(item.id) || 0), 0) || null;
}
