import { api } from "./api.js";
import { h } from "./dom.js";
import { fmtDateTime, fmtMs, fmtNum, toDate, truncate } from "./format.js";
import { card, emptyRow, httpStatusBadge, levelBadge, pageHeader, replayLink, section, statusBadge, table } from "./widgets.js";

// ==========================================================================
// View: one trace across every kind
// ==========================================================================
// Everything that carried the trace id (errors, transactions and their spans,
// logs, HTTP requests, AI generations) on one timeline, ordered by time; each
// row links to the page that shows it.

const KIND_LABELS = { error: "error", transaction: "transaction", span: "span", log: "log", http_request: "http", ai_generation: "ai" };

export async function viewTrace(ctx, root, query, traceId) {
  const data = await api("/api/v1/traces/" + encodeURIComponent(traceId), { limit: 2000 });
  if (ctx.dead) return;
  const items = data.items || [];
  const start = toDate(data.start) ? toDate(data.start).getTime() : itemStart(items[0]);
  const span = Math.max(1, Number(data.durationMs) || 0, ...items.map((it) => itemStart(it) - start + (Number(it.durationMs) || 0)));
  const counts = data.counts || {};
  root.appendChild(h("div", { class: "crumbs" }, "Trace"));
  root.appendChild(pageHeader(h("span", { class: "mono", testid: "trace-id" }, data.traceId || traceId), fmtDateTime(data.start) + " · " + fmtMs(data.durationMs)));
  root.appendChild(h("div", { class: "stat-grid" },
    Object.keys(KIND_LABELS).filter((k) => counts[k]).map((k) => card(kindName(k), fmtNum(counts[k]), "trace-count-" + k))));
  const { table: tbl, tbody } = table([{ label: "Offset", cls: "num" }, "Kind", "What", { label: "Duration", cls: "num" }, { label: "Timeline", cls: "col-timeline" }], "trace-table", "trace-items");
  for (const it of items) tbody.appendChild(traceRow(it, start, span));
  if (!items.length) tbody.appendChild(emptyRow(5, "Nothing stored for this trace."));
  root.appendChild(section("Timeline", [
    h("div", { class: "table-wrap" }, tbl),
    data.truncated ? h("div", { class: "muted small", testid: "trace-truncated" }, "Only the first " + fmtNum(items.length) + " items of this trace are shown.") : null,
  ], "trace-panel"));
}

function kindName(kind) {
  return { error: "Errors", transaction: "Transactions", span: "Spans", log: "Logs", http_request: "HTTP requests", ai_generation: "AI generations" }[kind] || kind;
}

function itemStart(it) {
  const d = it ? toDate(it.timestamp) : null;
  return d ? d.getTime() : 0;
}

function traceRow(it, start, span) {
  const offset = itemStart(it) - start;
  const bar = h("span", { class: "trace-bar kind-" + it.kind });
  bar.style.left = ((offset / span) * 100).toFixed(2) + "%";
  bar.style.width = Math.max(0.4, ((Number(it.durationMs) || 0) / span) * 100).toFixed(2) + "%";
  return h("tr", { class: "trace-row depth-" + (it.kind === "span" ? "1" : "0"), testid: "trace-item", data: { kind: it.kind, id: it.id } },
    h("td", { class: "num mono small" }, "+" + fmtMs(offset)),
    h("td", null, h("span", { class: "badge kind kind-" + it.kind }, KIND_LABELS[it.kind] || it.kind)),
    h("td", { class: "wrap" }, traceItemText(it)),
    h("td", { class: "num" }, it.durationMs != null ? fmtMs(it.durationMs) : ""),
    h("td", { class: "col-timeline" }, h("span", { class: "trace-lane" }, bar)));
}

/** What the item is, as a link to its own page where it has one. */
function traceItemText(it) {
  switch (it.kind) {
    case "error":
      return [levelBadge(it.level), " ",
        h("a", { href: "#/issues/" + encodeURIComponent(it.issueId) + "/events/" + encodeURIComponent(it.id), testid: "trace-error-link" }, it.title || it.message || "error"),
        it.replayId ? [" ", replayLink(it.replayId, "trace-replay-link")] : null];
    case "transaction":
      return [h("a", { href: "#/transactions/" + encodeURIComponent(it.id), class: "mono", testid: "trace-transaction-link" }, it.name || "(unnamed)"),
        it.op ? h("span", { class: "muted small" }, " " + it.op) : null, " ", statusBadge(it.status || "ok")];
    case "span":
      return [h("a", { href: "#/transactions/" + encodeURIComponent(it.transactionId != null ? it.transactionId : it.id), class: "mono small", testid: "trace-span-link" },
        (it.op ? it.op + " — " : "") + truncate(it.description || it.spanId || "span", 160)),
        it.status && it.status !== "ok" ? [" ", statusBadge(it.status)] : null];
    case "log":
      return [levelBadge(it.level), " ", h("span", { class: "mono small" }, truncate(it.message == null ? "" : String(it.message), 300)),
        it.service ? h("span", { class: "muted small" }, " " + it.service) : null];
    case "http_request":
      return [h("span", { class: "badge method" }, it.method || "—"), " ", h("span", { class: "mono small" }, (it.host || "") + (it.path || "")), " ",
        httpStatusBadge(it.statusCode), it.direction ? h("span", { class: "muted small" }, " " + it.direction) : null];
    case "ai_generation":
      return [h("span", { class: "mono small" }, (it.provider ? it.provider + " / " : "") + (it.model || "")), " ", statusBadge(it.status || "ok"),
        h("span", { class: "muted small" }, " " + fmtNum(it.inputTokens) + " in, " + fmtNum(it.outputTokens) + " out")];
    default:
      return h("span", { class: "muted" }, it.kind || "item");
  }
}
