import { api } from "./api.js";
import { $, clear, h } from "./dom.js";
import { prettyJson, timeEl, truncate, valueText } from "./format.js";
import { emptyRow, levelBadge, liveIndicator, pageHeader, setLiveStatus, table, traceLink, urlFilterBar } from "./widgets.js";

// ==========================================================================
// View: Logs (live tail)
// ==========================================================================

export async function viewLogs(ctx, root, query) {
  const filters = { level: query.get("level") || "", service: query.get("service") || "", q: query.get("q") || "" };
  let cursor = 0;
  let paused = false;
  const MAX_ROWS = 1000;
  const { table: tbl, tbody } = table([{ label: "Time", cls: "shrink" }, { label: "Level", cls: "shrink" }, { label: "Service", cls: "shrink" }, "Message", { label: "Trace", cls: "shrink" }], "logs-table", "logs-table");
  tbody.id = "log-rows";
  const pauseBtn = h("button", { type: "button", class: "btn", testid: "logs-pause" }, "Pause");
  pauseBtn.addEventListener("click", () => {
    paused = !paused;
    pauseBtn.textContent = paused ? "Resume" : "Pause";
    $("#live-indicator").classList.toggle("live-paused", paused);
  });
  root.appendChild(pageHeader("Logs", "Newest first; new lines stream in at the top", [liveIndicator(), pauseBtn]));
  root.appendChild(urlFilterBar("/logs", [
    { name: "level", label: "Level", type: "select", options: [["", "Any level"], ["debug", "debug"], ["info", "info"], ["warn", "warn"], ["error", "error"], ["fatal", "fatal"]] },
    { name: "service", label: "Service" },
    { name: "q", label: "Search messages", short: "Search" },
  ], filters, loadInitial, "log-filters"));
  root.appendChild(h("div", { class: "table-wrap logs-wrap" }, tbl));

  async function loadInitial() {
    const data = await api("/api/v1/logs", Object.assign({ limit: 200 }, filters));
    if (ctx.dead) return;
    clear(tbody);
    for (const log of data.logs || []) tbody.appendChild(logRow(log, false));
    cursor = data.cursor != null ? data.cursor : maxId(data.logs);
    if (!tbody.children.length) tbody.appendChild(emptyRow(5, "No log lines yet.", "logs-empty"));
  }

  async function tail() {
    if (paused) return;
    const data = await api("/api/v1/logs", Object.assign({ since: cursor, limit: 500 }, filters), { quiet: true });
    if (ctx.dead) return;
    const logs = data.logs || [];
    if (logs.length) {
      const empty = tbody.querySelector(".empty-row");
      if (empty) empty.remove();
    }
    for (const log of logs) tbody.insertBefore(logRow(log, true), tbody.firstChild); // oldest first -> newest ends on top
    while (tbody.children.length > MAX_ROWS) tbody.removeChild(tbody.lastChild);
    const next = data.cursor != null ? data.cursor : maxId(logs);
    if (next != null && (cursor == null || Number(next) > Number(cursor))) cursor = next;
    setLiveStatus(true);
  }

  await loadInitial();
  ctx.poll(tail, 2000);
}

export function maxId(rows) {
  let max = 0;
  for (const r of rows || []) if (Number(r.id) > max) max = Number(r.id);
  return max;
}

export function logRow(log, isNew) {
  const meta = log.metadata && (typeof log.metadata !== "object" || Object.keys(log.metadata).length) ? log.metadata : null;
  const msgCell = h("td", { class: "log-msg" }, h("span", { class: "mono", testid: "log-message" }, log.message == null ? "" : valueText(log.message)));
  if (meta) {
    msgCell.appendChild(h("details", { class: "log-meta" }, h("summary", null, "metadata"), h("pre", { class: "code" }, typeof meta === "string" ? meta : prettyJson(meta))));
  }
  return h("tr", { class: "log-row" + (isNew ? " row-new" : ""), testid: "log-row", data: { logId: log.id } },
    h("td", { class: "nowrap mono small" }, timeEl(log.timestamp, "abs")),
    h("td", null, levelBadge(log.level)),
    h("td", { class: "mono small", testid: "log-service" }, log.service || ""),
    msgCell,
    h("td", null, traceLink(log.traceId)));
}
