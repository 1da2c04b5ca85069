import { api } from "./api.js";
import { h } from "./dom.js";
import { fmtDateTime, fmtNum, timeEl } from "./format.js";
import { card, clickableRow, emptyRow, levelBadge, pageHeader, pagedTable, releaseLink, section, statusBadge, table, urlFilterBar } from "./widgets.js";

// ==========================================================================
// View: Releases (the list, and one release's new and regressed issues)
// ==========================================================================

export async function viewReleases(ctx, root, query) {
  const filters = { sort: query.get("sort") || "firstSeen", environment: query.get("environment") || "" };
  const releases = pagedTable(ctx, {
    columns: ["Release", "First seen", "Last seen", { label: "Events", cls: "num" }, { label: "New issues", cls: "num" }, { label: "Issues", cls: "num" }, "Environments"],
    cls: "releases-table", testid: "releases-table", moreTestid: "releases-load-more",
    fetch: (page) => api("/api/v1/releases", Object.assign({ sort: filters.sort, environment: filters.environment }, page)),
    items: (data) => data.releases, row: releaseRow,
    empty: "No releases yet. Events that name a release (Sentry's release option, SeeStack's release) make one.",
  });
  root.appendChild(pageHeader("Releases", "Versions your events named, newest first"));
  root.appendChild(urlFilterBar("/releases", [
    { name: "sort", label: "Newest by", type: "select", options: [["firstSeen", "First seen"], ["lastSeen", "Last seen"]] },
    { name: "environment", label: "Environment", short: "Env" },
  ], filters, () => releases.load(true), "release-filters"));
  root.append(...releases.elements);
  await releases.load(true);
}

function releaseRow(r) {
  const href = "#/releases/" + encodeURIComponent(r.version);
  return clickableRow(h("tr", { testid: "release-row", data: { version: r.version } },
    h("td", null, h("a", { href: href, class: "mono", testid: "release-link" }, r.version)),
    h("td", null, timeEl(r.firstSeen)),
    h("td", null, timeEl(r.lastSeen)),
    h("td", { class: "num" }, fmtNum(r.events)),
    h("td", { class: "num", testid: "release-new-issues" }, fmtNum(r.newIssues)),
    h("td", { class: "num" }, fmtNum(r.issues)),
    h("td", null, (r.environments || []).map((e) => h("span", { class: "chip" }, e)))), href);
}

export async function viewRelease(ctx, root, query, version) {
  const data = await api("/api/v1/releases/" + encodeURIComponent(version));
  if (ctx.dead) return;
  const r = data.release;
  root.appendChild(h("div", { class: "crumbs" }, h("a", { href: "#/releases" }, "← Releases")));
  root.appendChild(pageHeader(h("span", { class: "mono", testid: "release-version" }, r.version), "First seen " + fmtDateTime(r.firstSeen)));
  root.appendChild(h("div", { class: "stat-grid" },
    card("Events", fmtNum(r.events), "release-events"),
    card("New issues", fmtNum(r.newIssues), "release-new-count"),
    card("Issues with events", fmtNum(r.issues)),
    card("First seen", timeEl(r.firstSeen), null, fmtDateTime(r.firstSeen)),
    card("Last seen", timeEl(r.lastSeen), null, fmtDateTime(r.lastSeen)),
    card("Environments", (r.environments || []).length ? r.environments.map((e) => h("span", { class: "chip" }, e)) : "—")));
  const search = (q) => "#/issues?query=" + encodeURIComponent(q);
  root.appendChild(section("New in this release", issueList(data.newIssues || [], "release-new-issues-table", "No issue first appeared in this release."),
    "release-new-panel", h("a", { href: search("firstRelease:" + r.version), class: "small" }, "all in the issue search")));
  root.appendChild(section("Regressed in this release", issueList(data.regressedIssues || [], "release-regressed-table", "Nothing regressed in this release."),
    "release-regressed-panel", h("a", { href: search("release:" + r.version), class: "small" }, "every issue with events in it")));
}

/** A short table of issues linking to their pages. */
export function issueList(issues, testid, emptyText) {
  const { table: tbl, tbody } = table(["Issue", "Status", { label: "Events", cls: "num" }, "Last seen", "Release"], "issues-mini", testid);
  for (const issue of issues) {
    const href = "#/issues/" + encodeURIComponent(issue.id);
    tbody.appendChild(clickableRow(h("tr", { testid: "release-issue-row", data: { issueId: issue.id } },
      h("td", { class: "wrap" }, levelBadge(issue.level), " ", h("a", { href: href, testid: "release-issue-link" }, issue.title || "(no title)")),
      h("td", null, statusBadge(issue.status)),
      h("td", { class: "num" }, fmtNum(issue.count)),
      h("td", null, timeEl(issue.lastSeen)),
      h("td", null, issue.regressedIn ? releaseLink(issue.regressedIn) : issue.firstRelease ? releaseLink(issue.firstRelease) : "—")), href));
  }
  if (!issues.length) tbody.appendChild(emptyRow(5, emptyText));
  return h("div", { class: "table-wrap" }, tbl);
}
