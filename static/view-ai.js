import { api } from "./api.js";
import { barChart, legend, meter } from "./charts.js";
import { clear, h } from "./dom.js";
import { fmtCompact, fmtDateTime, fmtMs, fmtNum, fmtUsd, pad, timeEl, toDate } from "./format.js";
import { card, emptyRow, liveIndicator, offerNew, pageHeader, section, statusBadge, table, urlFilterBar } from "./widgets.js";

// ==========================================================================
// View: AI generations (cost & tokens)
// ==========================================================================

export async function viewAI(ctx, root, query) {
  const filters = { days: query.get("days") || "7" };
  const body = h("div", { testid: "ai-body" });
  let seen = 0; // generations counted when the dashboard was drawn
  root.appendChild(pageHeader("AI usage", "LLM generations: cost, tokens and latency", liveIndicator()));
  root.appendChild(urlFilterBar("/ai", [
    { name: "days", label: "Window", type: "select", options: [["1", "24 hours"], ["7", "7 days"], ["30", "30 days"], ["90", "90 days"]] },
  ], filters, load, "ai-filters"));
  root.appendChild(offerNew(ctx, "generation", async () => {
    const data = await api("/api/v1/ai", { days: filters.days }, { quiet: true });
    return (Number(data.totals && data.totals.count) || 0) - seen;
  }, load, "ai-new"));
  root.appendChild(body);

  async function load() {
    const data = await api("/api/v1/ai", { days: filters.days });
    if (ctx.dead) return;
    seen = Number(data.totals && data.totals.count) || 0;
    clear(body).appendChild(aiDashboard(data, Number(filters.days)));
  }
  await load();
}

/** The API only returns buckets that have data; add the empty hours/days in between. */
export function fillBuckets(rows, days) {
  if (!rows.length) return rows;
  const step = (days <= 2 ? 3600 : 86400) * 1000;
  const byIndex = new Map();
  for (const r of rows) {
    const d = toDate(r.bucket);
    if (d) byIndex.set(Math.floor(d.getTime() / step), r);
  }
  const last = Math.floor(Date.now() / step);
  const first = Math.min(last - Math.max(1, Math.round((days * 86400000) / step)) + 1, ...byIndex.keys());
  const out = [];
  for (let i = first; i <= Math.max(last, ...byIndex.keys()); i++) {
    out.push(byIndex.get(i) || { bucket: new Date(i * step).toISOString(), count: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 });
  }
  return out;
}

export function aiDashboard(data, days) {
  const totals = data.totals || {};
  const over = fillBuckets(Array.isArray(data.overTime) ? data.overTime : [], days);
  const bucketLabel = (iso) => {
    const d = toDate(iso);
    if (!d) return String(iso);
    return days <= 2 ? pad(d.getHours()) + ":00" : (d.getMonth() + 1) + "/" + d.getDate();
  };
  const costSeries = [{ name: "cost", cls: "s-cost" }];
  const tokenSeries = [{ name: "input tokens", cls: "s-in" }, { name: "output tokens", cls: "s-out" }];
  const costChart = over.length ? barChart(over.map((b) => ({
    label: bucketLabel(b.bucket), values: [b.costUsd],
    tip: fmtDateTime(b.bucket) + " — " + fmtUsd(b.costUsd) + ", " + fmtNum(b.count) + " calls",
  })), costSeries, { format: fmtUsd, testid: "ai-cost-chart", label: "Cost over time" }) : h("div", { class: "muted" }, "No generations in this window.");
  const tokenChart = over.length ? barChart(over.map((b) => ({
    label: bucketLabel(b.bucket), values: [b.inputTokens, b.outputTokens],
    tip: fmtDateTime(b.bucket) + " — in " + fmtNum(b.inputTokens) + ", out " + fmtNum(b.outputTokens),
  })), tokenSeries, { integer: true, testid: "ai-tokens-chart", label: "Tokens over time" }) : h("div", { class: "muted" }, "No generations in this window.");

  const models = table(["Provider", "Model", { label: "Calls", cls: "num" }, { label: "Input tokens", cls: "num" }, { label: "Output tokens", cls: "num" }, { label: "Cost", cls: "num" }, "Share", { label: "p50 latency", cls: "num" }], "ai-models", "ai-models-table");
  const totalCost = Number(totals.costUsd) || (data.byModel || []).reduce((a, m) => a + (Number(m.costUsd) || 0), 0) || 1;
  for (const m of data.byModel || []) {
    models.tbody.appendChild(h("tr", { testid: "ai-model-row" },
      h("td", { testid: "ai-provider" }, m.provider || ""),
      h("td", { class: "mono", testid: "ai-model" }, m.model || ""),
      h("td", { class: "num" }, fmtNum(m.count)),
      h("td", { class: "num" }, fmtNum(m.inputTokens)),
      h("td", { class: "num" }, fmtNum(m.outputTokens)),
      h("td", { class: "num" }, fmtUsd(m.costUsd)),
      h("td", { class: "col-graph" }, meter((Number(m.costUsd) || 0) / totalCost, "cost")),
      h("td", { class: "num" }, fmtMs(m.p50LatencyMs))));
  }
  if (!models.tbody.children.length) models.tbody.appendChild(emptyRow(8, "No models used yet."));

  const recent = table(["Time", "Provider", "Model", { label: "In", cls: "num" }, { label: "Out", cls: "num" }, { label: "Cost", cls: "num" }, { label: "Latency", cls: "num" }, "Status"], "ai-recent", "ai-recent-table");
  for (const r of data.recent || []) {
    recent.tbody.appendChild(h("tr", { testid: "ai-recent-row" },
      h("td", { class: "nowrap" }, timeEl(r.timestamp, "abs")),
      h("td", null, r.provider || ""),
      h("td", { class: "mono" }, r.model || ""),
      h("td", { class: "num" }, fmtNum(r.inputTokens)),
      h("td", { class: "num" }, fmtNum(r.outputTokens)),
      h("td", { class: "num" }, fmtUsd(r.totalCostUsd)),
      h("td", { class: "num" }, fmtMs(r.latencyMs)),
      h("td", null, statusBadge(r.status || "ok"))));
  }
  if (!recent.tbody.children.length) recent.tbody.appendChild(emptyRow(8, "No recent generations."));

  return h("div", null,
    h("div", { class: "stat-grid" },
      card("Total cost", fmtUsd(totals.costUsd), "ai-total-cost"),
      card("Generations", fmtNum(totals.count), "ai-total-count"),
      card("Input tokens", fmtCompact(totals.inputTokens), "ai-total-input"),
      card("Output tokens", fmtCompact(totals.outputTokens), "ai-total-output"),
      card("Errors", fmtNum(totals.errors), "ai-total-errors")),
    h("div", { class: "grid-2" },
      section("Cost over time", [costChart, legend(costSeries)], "ai-cost-panel"),
      section("Tokens over time", [tokenChart, legend(tokenSeries)], "ai-tokens-panel")),
    section("By model", h("div", { class: "table-wrap" }, models.table), "ai-models-panel"),
    section("Recent generations", h("div", { class: "table-wrap" }, recent.table), "ai-recent-panel"));
}
