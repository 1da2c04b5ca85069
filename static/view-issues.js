import { api } from "./api.js";
import { sparkline } from "./charts.js";
import { h } from "./dom.js";
import { fmtCompact, timeEl, toDate } from "./format.js";
import { clickableRow, emptyRow, levelBadge, liveIndicator, newBadge, pageHeader, pagedTable, setLiveStatus, statusBadge, urlFilterBar } from "./widgets.js";

// ==========================================================================
// View: Issues (live list)
// ==========================================================================

export const ISSUE_SORTS = {
  lastSeen: (a, b) => cmpDesc(a.lastSeen, b.lastSeen) || b.id - a.id,
  count: (a, b) => (Number(b.count) || 0) - (Number(a.count) || 0) || cmpDesc(a.lastSeen, b.lastSeen),
  firstSeen: (a, b) => cmpDesc(a.firstSeen, b.firstSeen) || b.id - a.id,
};

export function cmpDesc(a, b) {
  const ta = toDate(a) ? toDate(a).getTime() : 0;
  const tb = toDate(b) ? toDate(b).getTime() : 0;
  return tb - ta;
}

export async function viewIssues(ctx, root, query) {
  const filters = {
    status: query.get("status") || "unresolved",
    level: query.get("level") || "",
    environment: query.get("environment") || "",
    q: query.get("q") || "",
    sort: query.get("sort") || "lastSeen",
  };
  const list = { rows: new Map(), seq: 0 };
  const pager = pagedTable(ctx, {
    columns: [
      { label: "Issue", cls: "col-issue" }, { label: "Last 24h", cls: "col-graph" },
      { label: "Events", cls: "col-num" }, { label: "Last seen", cls: "col-time" }, { label: "Age", cls: "col-time" },
    ],
    cls: "issues-table", testid: "issues-table", moreTestid: "issues-load-more",
    fetch: (page) => api("/api/v1/issues", queryParams(page)),
    onPage: (data, reset) => {
      if (reset) list.rows.clear();
      if (reset || !list.seq) list.seq = data.seq || 0;
      for (const issue of data.issues || []) upsert(issue, null);
      reorder();
    },
  });
  const tbody = pager.tbody;
  tbody.id = "issue-rows";
  const summary = h("span", { class: "muted", testid: "issues-summary" });

  root.appendChild(pageHeader("Issues", "Errors grouped by fingerprint", [summary, liveIndicator()]));
  root.appendChild(urlFilterBar("/issues", [
    { name: "status", label: "Status", type: "select", options: [["unresolved", "Unresolved"], ["resolved", "Resolved"], ["ignored", "Ignored"], ["all", "All"]] },
    { name: "level", label: "Level", type: "select", options: [["", "Any level"], ["fatal", "Fatal"], ["error", "Error"], ["warning", "Warning"], ["info", "Info"], ["debug", "Debug"]] },
    { name: "environment", label: "Environment", short: "Env" },
    { name: "sort", label: "Sort", type: "select", options: [["lastSeen", "Last seen"], ["count", "Events"], ["firstSeen", "First seen"]] },
    { name: "q", label: "Search title or culprit", short: "Search" },
  ], filters, () => pager.load(true), "issue-filters"));
  root.append(...pager.elements);

  function queryParams(extra) {
    return Object.assign({
      status: filters.status, level: filters.level, environment: filters.environment,
      q: filters.q, sort: filters.sort,
    }, extra);
  }

  async function poll() {
    // Status can change under us (resolved elsewhere), so ask without it and filter here.
    let cursor = null;
    let newest = list.seq;
    for (let page = 0; page < 5; page++) {
      const data = await api("/api/v1/issues", queryParams({ status: "all", changedSince: list.seq, cursor: cursor, limit: 100 }), { quiet: true });
      if (ctx.dead) return;
      if (typeof data.seq === "number" && data.seq > newest) newest = data.seq;
      for (const issue of data.issues || []) {
        if (matchesStatus(issue)) upsert(issue, list.rows.has(String(issue.id)) ? "updated" : "new");
        else removeRow(issue.id);
      }
      cursor = data.nextCursor;
      if (!cursor) break;
    }
    if (cursor) {
      // More changed than five pages hold (a busy project, or a tab that
      // slept): start the list over rather than skip the rest.
      await pager.load(true);
      setLiveStatus(true);
      return;
    }
    list.seq = newest;
    reorder();
    setLiveStatus(true);
  }

  function matchesStatus(issue) {
    return filters.status === "all" || !filters.status || issue.status === filters.status;
  }

  function upsert(issue, mark) {
    const id = String(issue.id);
    const existing = list.rows.get(id);
    const tr = issueRow(issue, mark || (existing && existing.mark));
    if (existing) existing.tr.replaceWith(tr);
    else tbody.appendChild(tr);
    list.rows.set(id, { issue: issue, tr: tr, mark: mark || (existing && existing.mark) || null });
  }

  function removeRow(id) {
    const existing = list.rows.get(String(id));
    if (!existing) return;
    existing.tr.remove();
    list.rows.delete(String(id));
  }

  function reorder() {
    const cmp = ISSUE_SORTS[filters.sort] || ISSUE_SORTS.lastSeen;
    const entries = Array.from(list.rows.values()).sort((a, b) => cmp(a.issue, b.issue));
    const empty = tbody.querySelector(".empty-row");
    if (empty) empty.remove();
    for (const entry of entries) tbody.appendChild(entry.tr);
    if (!entries.length) tbody.appendChild(emptyRow(5, filters.q || filters.level || filters.environment ? "No issues match these filters." : "No issues yet. Send an error to see it here.", "issues-empty"));
    summary.textContent = entries.length + (pager.cursor ? "+" : "") + " issue" + (entries.length === 1 ? "" : "s");
  }

  await pager.load(true);
  ctx.poll(poll, 2000);
}

export function issueRow(issue, mark) {
  const href = "#/issues/" + encodeURIComponent(issue.id);
  const meta = h("div", { class: "issue-meta" },
    issue.culprit ? h("span", { class: "culprit mono", testid: "issue-culprit" }, issue.culprit) : null,
    issue.status && issue.status !== "unresolved" ? statusBadge(issue.status, "issue-status") : null,
    issue.regression ? h("span", { class: "badge regression" }, "regression") : null,
    (issue.environments || []).slice(0, 3).map((env) => h("span", { class: "chip" }, env)),
    issue.lastRelease ? h("span", { class: "chip chip-release" }, issue.lastRelease) : null);
  const tr = clickableRow(h("tr", {
    class: "issue-row" + (mark ? " row-new" : ""), testid: "issue-row",
    data: { issueId: issue.id, status: issue.status, count: issue.count },
  },
    h("td", { class: "col-issue" },
      h("div", { class: "issue-head" },
        levelBadge(issue.level),
        h("a", { class: "issue-link", href: href, testid: "issue-row-title" }, issue.title || issue.type || "(no title)"),
        mark ? newBadge(mark) : null),
      meta),
    h("td", { class: "col-graph" }, sparkline(issue.histogram24h)),
    h("td", { class: "col-num", testid: "issue-count" }, fmtCompact(issue.count)),
    h("td", { class: "col-time" }, timeEl(issue.lastSeen)),
    h("td", { class: "col-time" }, timeEl(issue.firstSeen))), href);
  return tr;
}
