import { api, flash } from "./api.js";
import { sparkline } from "./charts.js";
import { h } from "./dom.js";
import { fmtCompact, timeEl, toDate } from "./format.js";
import { matchesStatus, quoteValue, searchBox, statusTerms, withoutStatus } from "./search.js";
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

/** The query a #/issues URL asks for; the older status/level/environment/q parameters become terms. */
export function issuesQuery(query) {
  if (query.has("query")) return query.get("query");
  const terms = [];
  const status = query.get("status") || "unresolved";
  if (status !== "all") terms.push("is:" + status);
  if (query.get("level")) terms.push("level:" + query.get("level"));
  if (query.get("environment")) terms.push("environment:" + quoteValue(query.get("environment")));
  if (query.get("q")) terms.push(query.get("q"));
  return terms.join(" ");
}

export async function viewIssues(ctx, root, query) {
  const filters = { query: issuesQuery(query), sort: query.get("sort") || "lastSeen" };
  const list = { rows: new Map(), seq: 0, selected: new Set() };
  const selectAll = h("input", { type: "checkbox", "aria-label": "Select all issues", testid: "issues-select-all" });
  const pager = pagedTable(ctx, {
    columns: [
      { label: selectAll, cls: "col-check" },
      { label: "Issue", cls: "col-issue" }, { label: "Last 24h", cls: "col-graph" },
      { label: "Events", cls: "col-num" }, { label: "Users", cls: "col-num" },
      { label: "Last seen", cls: "col-time" }, { label: "Age", cls: "col-time" },
    ],
    cls: "issues-table", testid: "issues-table", moreTestid: "issues-load-more",
    fetch: async (page) => {
      search.clearHint();
      try {
        return await api("/api/v1/issues", Object.assign({ query: filters.query, sort: filters.sort }, page));
      } catch (e) {
        if (e.status !== 400) throw e;
        search.showError(e);
        return { issues: [], nextCursor: null, refused: true };
      }
    },
    onPage: (data, reset) => {
      if (reset) {
        list.rows.clear();
        list.selected.clear();
      }
      if (reset || !list.seq) list.seq = data.seq || 0;
      list.refused = !!data.refused;
      for (const issue of data.issues || []) upsert(issue, null);
      reorder();
    },
  });
  const tbody = pager.tbody;
  tbody.id = "issue-rows";
  const summary = h("span", { class: "muted", testid: "issues-summary" });
  const search = searchBox({
    value: filters.query, testid: "search-query",
    placeholder: "is:unresolved level:error release:1.4.2 user.email:… browser:Safari text",
  });
  const bulk = bulkBar(list, () => pager.load(true));

  root.appendChild(pageHeader("Issues", "Errors grouped by fingerprint", [summary, liveIndicator()]));
  root.appendChild(urlFilterBar("/issues", [
    { name: "query", label: "Search", element: search.element, input: search.input, grow: true },
    { name: "sort", label: "Sort", type: "select", options: [["lastSeen", "Last seen"], ["count", "Events"], ["firstSeen", "First seen"]] },
  ], filters, () => pager.load(true), "issue-filters"));
  root.appendChild(search.hint);
  root.appendChild(bulk.element);
  root.append(...pager.elements);

  selectAll.addEventListener("change", () => {
    for (const [id, entry] of list.rows) {
      entry.check.checked = selectAll.checked;
      if (selectAll.checked) list.selected.add(id);
      else list.selected.delete(id);
    }
    bulk.update();
  });

  async function poll() {
    if (list.refused) return;
    // Status can change under us (resolved elsewhere), so ask without is: terms and filter here.
    const wanted = statusTerms(filters.query);
    let cursor = null;
    let newest = list.seq;
    for (let page = 0; page < 5; page++) {
      const data = await api("/api/v1/issues", {
        query: withoutStatus(filters.query), sort: filters.sort, changedSince: list.seq, cursor: cursor, limit: 100,
      }, { quiet: true });
      if (ctx.dead) return;
      if (typeof data.seq === "number" && data.seq > newest) newest = data.seq;
      for (const issue of data.issues || []) {
        if (matchesStatus(issue, wanted)) upsert(issue, list.rows.has(String(issue.id)) ? "updated" : "new");
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

  function upsert(issue, mark) {
    const id = String(issue.id);
    const existing = list.rows.get(id);
    const row = issueRow(issue, mark || (existing && existing.mark), list.selected.has(id), (on) => {
      if (on) list.selected.add(id);
      else list.selected.delete(id);
      bulk.update();
    });
    if (existing) existing.tr.replaceWith(row.tr);
    else tbody.appendChild(row.tr);
    list.rows.set(id, { issue: issue, tr: row.tr, check: row.check, mark: mark || (existing && existing.mark) || null });
  }

  function removeRow(id) {
    const existing = list.rows.get(String(id));
    if (!existing) return;
    existing.tr.remove();
    list.rows.delete(String(id));
    list.selected.delete(String(id));
    bulk.update();
  }

  function reorder() {
    const cmp = ISSUE_SORTS[filters.sort] || ISSUE_SORTS.lastSeen;
    const entries = Array.from(list.rows.values()).sort((a, b) => cmp(a.issue, b.issue));
    const empty = tbody.querySelector(".empty-row");
    if (empty) empty.remove();
    for (const entry of entries) tbody.appendChild(entry.tr);
    const filtered = withoutStatus(filters.query).trim() !== "";
    if (!entries.length) {
      tbody.appendChild(emptyRow(7, list.refused ? "Fix the search above to see issues."
        : filtered ? "No issues match this search." : "No issues yet. Send an error to see it here.", "issues-empty"));
    }
    summary.textContent = entries.length + (pager.cursor ? "+" : "") + " issue" + (entries.length === 1 ? "" : "s");
    bulk.update();
  }

  await pager.load(true);
  ctx.poll(poll, 2000);
}

/** Resolve, ignore, reopen or merge the selected issues in one request. */
function bulkBar(list, reload) {
  const count = h("span", { testid: "bulk-count" });
  const act = async (body, path, done) => {
    try {
      const res = await api(path, null, { method: "POST", body: Object.assign({ ids: Array.from(list.selected).map(Number) }, body) });
      flash(done(res), "ok");
      await reload();
    } catch (e) {
      flash(e.message);
    }
  };
  const button = (label, testid, onClick, cls) => h("button", { type: "button", class: "btn btn-small " + (cls || ""), testid: testid, on: { click: onClick } }, label);
  const merge = button("Merge", "bulk-merge", () => {
    if (!window.confirm("Merge " + list.selected.size + " issues into one? Their events and later events of each fingerprint land on the merged issue.")) return;
    act({}, "/api/v1/issues/merge", (res) => "Merged into issue #" + (res.issue ? res.issue.id : "?"));
  });
  const element = h("div", { class: "bulk-bar", testid: "bulk-bar", hidden: true },
    count,
    button("Resolve", "bulk-resolve", () => act({ status: "resolved" }, "/api/v1/issues/bulk", (res) => (res.updated || []).length + " resolved"), "btn-primary"),
    button("Ignore", "bulk-ignore", () => act({ status: "ignored" }, "/api/v1/issues/bulk", (res) => (res.updated || []).length + " ignored")),
    button("Reopen", "bulk-reopen", () => act({ status: "unresolved" }, "/api/v1/issues/bulk", (res) => (res.updated || []).length + " reopened")),
    merge);
  return {
    element: element,
    update() {
      const n = list.selected.size;
      element.hidden = n === 0;
      count.textContent = n + " selected";
      merge.disabled = n < 2;
    },
  };
}

/** One issue as a row: {tr, check}; onCheck(on) when its box is ticked. */
export function issueRow(issue, mark, checked, onCheck) {
  const href = "#/issues/" + encodeURIComponent(issue.id);
  const check = h("input", { type: "checkbox", "aria-label": "Select issue " + issue.id, testid: "issue-select", checked: checked || undefined });
  check.addEventListener("change", () => onCheck(check.checked));
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
    h("td", { class: "col-check" }, check),
    h("td", { class: "col-issue" },
      h("div", { class: "issue-head" },
        levelBadge(issue.level),
        h("a", { class: "issue-link", href: href, testid: "issue-row-title" }, issue.title || issue.type || "(no title)"),
        mark ? newBadge(mark) : null),
      meta),
    h("td", { class: "col-graph" }, sparkline(issue.histogram24h)),
    h("td", { class: "col-num", testid: "issue-count" }, fmtCompact(issue.count)),
    h("td", { class: "col-num", testid: "issue-users" }, issue.userCount == null ? "—" : fmtCompact(issue.userCount)),
    h("td", { class: "col-time" }, timeEl(issue.lastSeen)),
    h("td", { class: "col-time" }, timeEl(issue.firstSeen))), href);
  return { tr: tr, check: check };
}
