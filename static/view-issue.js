import { api, flash } from "./api.js";
import { barChart, meter } from "./charts.js";
import { clear, h } from "./dom.js";
import { feedbackList, renderEvent } from "./event.js";
import { fmtDateTime, fmtNum, pad, timeEl, truncate } from "./format.js";
import { go, replaceQuery } from "./router.js";
import { quoteValue } from "./search.js";
import {
  card, clickableRow, emptyRow, levelBadge, liveIndicator, newItemsNotice, releaseLink, replayLink, section, setLiveStatus,
  statusBadge, table, tabs, traceLink,
} from "./widgets.js";

// ==========================================================================
// View: Issue detail
// ==========================================================================
// Opens on the error: the header, one line of counts, then the event itself
// (exception type, value and in-app frames first).  The events list, feedback
// and tag distributions sit in tabs and the sidebar, not above the trace.
// #/issues/<id> shows the latest event, #/issues/<id>/events/<event id> one
// event; Oldest / Older / Newer / Latest move between them.

export async function viewIssue(ctx, root, query, issueId, eventId) {
  const issuePath = "/api/v1/issues/" + encodeURIComponent(issueId);
  const [issueData, shown] = await Promise.all([api(issuePath), loadIssueEvent(issueId, eventId)]);
  if (ctx.dead) return;
  let issue = issueData.issue;
  const head = h("div", { class: "issue-detail-head", testid: "issue-header" });
  const stats = h("div", { class: "issue-stats", testid: "issue-stats" });
  const chartBox = h("div", { class: "chart-box" });
  const notice = newItemsNotice("issue-new-events");
  const facets = h("div", { testid: "tag-facets" });
  const eventBox = h("div", { class: "event-box", testid: "issue-latest-event" });
  const tabPath = "/issues/" + encodeURIComponent(issueId) + (eventId ? "/events/" + encodeURIComponent(eventId) : "");

  const view = tabs([
    { id: "details", label: "Details", testid: "tab-details", render: () => eventBox },
    { id: "events", label: "Events", testid: "tab-events", render: () => issueEventList(ctx, issueId, query.get("query") || "") },
    { id: "feedback", label: "Feedback", testid: "tab-feedback", render: () => issueFeedback(ctx, issueId) },
  ], query.get("tab") || "details", (tab) => replaceQuery(tabPath, { tab: tab === "details" ? "" : tab, query: query.get("query") }));

  root.appendChild(h("div", { class: "crumbs" }, h("a", { href: "#/issues" }, "← Issues")));
  root.appendChild(head);
  root.appendChild(h("div", { class: "issue-layout" },
    h("div", { class: "issue-main" }, notice.element, view.element),
    h("aside", { class: "issue-side" },
      stats,
      section("Last 24 hours", chartBox, "issue-chart", liveIndicator()),
      section("Tags", facets, "issue-tags-panel"))));

  // Each part is drawn again only when what it shows changed, so a live poll
  // never swaps the buttons (or anything else) out from under the reader.
  const drawn = {};
  const changed = (part, value) => {
    const text = JSON.stringify(value);
    if (drawn[part] === text) return false;
    drawn[part] = text;
    return true;
  };

  function renderIssue() {
    if (changed("head", [issue.status, issue.title, issue.culprit, issue.level, issue.regression])) {
      clear(head).appendChild(issueHeader(issue, setStatus));
    }
    if (changed("chart", issue.histogram24h)) clear(chartBox).appendChild(hourChart(issue.histogram24h, true));
    if (!changed("stats", [issue.count, issue.totalCount, issue.userCount, issue.firstSeen, issue.lastSeen, issue.releases,
      issue.lastRelease, issue.firstRelease, issue.regressedIn, issue.statusDetails, issue.environments])) return;
    clear(stats).append(
      card("Events", fmtNum(issue.count), "issue-count", issue.totalCount != null && issue.totalCount !== issue.count ? "of " + fmtNum(issue.totalCount) : null),
      card("Users", issue.userCount == null ? "—" : fmtNum(issue.userCount), "issue-users"),
      card("First seen", timeEl(issue.firstSeen), "issue-first-seen", fmtDateTime(issue.firstSeen)),
      card("Last seen", timeEl(issue.lastSeen), "issue-last-seen", fmtDateTime(issue.lastSeen)),
      card("Releases", releaseList(issue), "issue-releases", releaseHint(issue)),
      card("Environments", (issue.environments || []).length ? (issue.environments || []).map((e) => h("span", { class: "chip" }, e)) : "—", "issue-environments"));
  }

  async function setStatus(status, extra) {
    try {
      const res = await api(issuePath, null, { method: "POST", body: Object.assign({ status: status }, extra || {}) });
      issue = Object.assign({}, issue, res.issue || {}, { releases: (res.issue && res.issue.releases) || issue.releases });
      renderIssue();
      flash("Issue marked " + status + (extra && extra.inNextRelease ? " in the next release" : ""), "ok");
    } catch (e) {
      flash("Could not change status: " + e.message);
    }
  }

  renderIssue();
  if (shown) eventBox.appendChild(issueEvent(issue, shown.event, shown.navigation));
  else eventBox.appendChild(h("div", { class: "empty", testid: "issue-no-events" }, "No events stored for this issue."));
  tagFacets(ctx, facets, issueId).catch(() => { facets.closest("section").hidden = true; });

  // Live: counts and chart change in place; a newer event is offered, never swapped in under the reader.
  const seenCount = Number(issue.totalCount != null ? issue.totalCount : issue.count) || 0;
  ctx.poll(async () => {
    const fresh = await api(issuePath, null, { quiet: true });
    if (ctx.dead) return;
    issue = Object.assign({}, issue, fresh.issue);
    renderIssue();
    const total = Number(issue.totalCount != null ? issue.totalCount : issue.count) || 0;
    notice.set(total - seenCount, "event", () => go("#/issues/" + encodeURIComponent(issueId)));
    setLiveStatus(true);
  }, 3000);
}

/**
 * The event to show with its neighbours: {event, navigation} or null when the
 * issue has none.  A server without event navigation answers 404 to it; then
 * the event comes from the events list (latest) or by its own id.
 */
async function loadIssueEvent(issueId, eventId) {
  const base = "/api/v1/issues/" + encodeURIComponent(issueId) + "/events/";
  try {
    return await api(base + (eventId ? encodeURIComponent(eventId) : "latest"));
  } catch (e) {
    if (e.status !== 404) throw e;
  }
  if (eventId) {
    const data = await api("/api/v1/events/" + encodeURIComponent(eventId));
    return String(data.event.issueId) === String(issueId) ? { event: data.event, navigation: null } : null;
  }
  const list = await api(base.slice(0, -1), { limit: 1 });
  if (!list.events || !list.events.length) return null;
  const data = await api("/api/v1/events/" + encodeURIComponent(list.events[0].id));
  return { event: data.event, navigation: null };
}

/** The shown event: a bar to move between events, then the event error first. */
function issueEvent(issue, ev, nav) {
  const eventHref = (id) => "#/issues/" + encodeURIComponent(issue.id) + "/events/" + encodeURIComponent(id);
  const step = (label, id, testid) => id != null && String(id) !== String(ev.id)
    ? h("a", { class: "btn btn-small", href: eventHref(id), testid: testid }, label)
    : h("span", { class: "btn btn-small disabled", testid: testid, "aria-disabled": "true" }, label);
  const bar = h("div", { class: "event-nav", testid: "event-nav" },
    h("div", { class: "event-nav-id" },
      h("span", { class: "meta-label" }, "Event"), " ",
      h("a", { href: "#/events/" + encodeURIComponent(ev.id), class: "mono", testid: "event-nav-id" }, truncate(ev.eventId || String(ev.id), 12)), " ",
      timeEl(ev.timestamp, "abs"),
      ev.release ? [" ", releaseLink(ev.release, "event-nav-release")] : null,
      ev.environment ? [" ", h("span", { class: "chip" }, ev.environment)] : null,
      ev.traceId ? [" ", h("span", { class: "meta-label" }, "Trace"), " ", traceLink(ev.traceId, "event-nav-trace")] : null,
      ev.replayId ? [" ", h("span", { class: "meta-label" }, "Replay"), " ", replayLink(ev.replayId, "event-nav-replay")] : null),
    nav ? h("div", { class: "event-nav-steps" },
      step("« Oldest", nav.oldest, "event-oldest"), step("‹ Older", nav.older, "event-older"),
      step("Newer ›", nav.newer, "event-newer"), step("Latest »", nav.latest, "event-latest")) : null);
  return h("div", null, bar, renderEvent(ev, { rawOpen: false }));
}

export function releaseList(issue) {
  const releases = issue.releases || (issue.lastRelease ? [issue.lastRelease] : []);
  if (!releases.length) return "—";
  return h("span", { class: "chips" }, releases.slice(0, 6).map((r) => releaseLink(r)),
    releases.length > 6 ? h("span", { class: "muted" }, " +" + (releases.length - 6)) : null);
}

function releaseHint(issue) {
  if (issue.regressedIn) return h("span", { testid: "issue-regressed-in" }, "regressed in ", releaseLink(issue.regressedIn, "regressed-release"));
  if (issue.statusDetails && issue.statusDetails.inNextRelease) {
    return h("span", { testid: "issue-in-next-release" }, "resolved in the release after " + (issue.statusDetails.afterRelease || "the current one"));
  }
  if (issue.firstRelease && issue.firstRelease !== issue.lastRelease) return "first in " + issue.firstRelease;
  return issue.lastRelease ? "latest " + issue.lastRelease : null;
}

export function issueHeader(issue, setStatus) {
  const actions = h("div", { class: "issue-actions", testid: "issue-actions" });
  const button = (label, testid, cls, onClick) => h("button", { type: "button", class: "btn " + cls, testid: testid, on: { click: onClick } }, label);
  if (issue.status !== "resolved") {
    actions.appendChild(button("Resolve", "action-resolve", "btn-primary", () => setStatus("resolved")));
    actions.appendChild(button("Resolve in next release", "action-resolve-next", "", () => setStatus("resolved", { inNextRelease: true })));
  }
  if (issue.status !== "ignored") actions.appendChild(button("Ignore", "action-ignore", "", () => setStatus("ignored")));
  if (issue.status !== "unresolved") actions.appendChild(button("Reopen", "action-reopen", "", () => setStatus("unresolved")));
  return h("div", { class: "issue-title-row" },
    h("div", { class: "issue-titles" },
      h("div", { class: "issue-badges" },
        levelBadge(issue.level),
        statusBadge(issue.status, "issue-status"),
        issue.regression ? h("span", { class: "badge regression", testid: "issue-regression" }, "regression") : null,
        h("span", { class: "muted" }, "#" + issue.id)),
      h("h1", { class: "issue-title", testid: "issue-title" }, issue.title || "(no title)"),
      issue.culprit ? h("div", { class: "culprit mono", testid: "issue-culprit" }, issue.culprit) : null),
    actions);
}

/** Events per hour, the last 24 hours; small for the sidebar. */
export function hourChart(hist, small) {
  const vals = Array.isArray(hist) && hist.length ? hist : new Array(24).fill(0);
  const now = new Date();
  const buckets = vals.map((v, i) => {
    const d = new Date(now.getTime() - (vals.length - 1 - i) * 3600 * 1000);
    const label = pad(d.getHours()) + ":00";
    return { label: label, values: [v], tip: label + " — " + fmtNum(v) + " events" };
  });
  return barChart(buckets, [{ name: "events", cls: "s0" }], {
    width: small ? 420 : 1200, height: small ? 150 : 170, integer: true, label: "Events per hour",
    testid: "issue-hour-chart", maxLabels: small ? 4 : 12,
  });
}

// ----- events tab -----------------------------------------------------------

/** The issue's events, newest first, a page at a time; a query keeps only matching events. */
function issueEventList(ctx, issueId, initialQuery) {
  const pages = [null];
  let pageIndex = 0;
  let filter = initialQuery;
  const { table: tbl, tbody } = table(["Event", "Message", "Level", "Environment", "Release", "Trace", "Time"], "events-table", "events-table");
  const prev = h("button", { type: "button", class: "btn", testid: "events-newer" }, "← Newer");
  const next = h("button", { type: "button", class: "btn", testid: "events-older" }, "Older →");
  const pageInfo = h("span", { class: "muted" });
  const input = h("input", { type: "search", name: "query", value: filter, placeholder: "release:1.2.3 browser:\"Chrome 120.0\" user.email:…", testid: "events-query", "aria-label": "Filter events" });
  const hint = h("div", { class: "search-hint", testid: "events-query-hint", hidden: true });
  const form = h("form", { class: "filters", autocomplete: "off" }, h("label", { class: "filter grow" }, h("span", { class: "filter-label" }, "Events matching"), input),
    h("button", { type: "submit", class: "btn" }, "Apply"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    filter = input.value.trim();
    pages.length = 1;
    pageIndex = 0;
    load().catch((e) => flash(e.message));
  });

  async function load() {
    hint.hidden = true;
    let data;
    try {
      data = await api("/api/v1/issues/" + encodeURIComponent(issueId) + "/events", { cursor: pages[pageIndex], limit: 20, query: filter });
    } catch (e) {
      if (e.status !== 400) throw e;
      hint.textContent = e.message;
      hint.hidden = false;
      data = { events: [] };
    }
    if (ctx.dead) return;
    clear(tbody);
    const events = data.events || [];
    for (const ev of events) tbody.appendChild(eventSummaryRow(issueId, ev));
    if (!events.length) tbody.appendChild(emptyRow(7, filter ? "No events of this issue match." : "No events stored for this issue."));
    pages[pageIndex + 1] = data.nextCursor || undefined;
    prev.disabled = pageIndex === 0;
    next.disabled = !data.nextCursor;
    pageInfo.textContent = "Page " + (pageIndex + 1);
  }

  prev.addEventListener("click", () => { if (pageIndex > 0) { pageIndex--; load().catch((e) => flash(e.message)); } });
  next.addEventListener("click", () => { if (pages[pageIndex + 1]) { pageIndex++; load().catch((e) => flash(e.message)); } });
  load().catch((e) => flash(e.message));
  return h("div", { testid: "issue-events" }, form, hint, h("div", { class: "table-wrap" }, tbl), h("div", { class: "pager" }, prev, pageInfo, next));
}

export function eventSummaryRow(issueId, ev) {
  const href = "#/issues/" + encodeURIComponent(issueId) + "/events/" + encodeURIComponent(ev.id);
  return clickableRow(h("tr", { class: "event-row", testid: "event-row", data: { eventId: ev.id } },
    h("td", null, h("a", { href: href, class: "mono", testid: "event-link" }, truncate(ev.eventId || ev.id, 12))),
    h("td", { class: "wrap" }, truncate(ev.message || "", 200)),
    h("td", null, levelBadge(ev.level)),
    h("td", null, ev.environment || "—"),
    h("td", null, ev.release || "—"),
    h("td", null, traceLink(ev.traceId)),
    h("td", null, timeEl(ev.timestamp))), href);
}

// ----- feedback tab ---------------------------------------------------------

function issueFeedback(ctx, issueId) {
  const box = h("div", { testid: "issue-feedback" }, h("div", { class: "muted" }, "Loading…"));
  api("/api/v1/issues/" + encodeURIComponent(issueId) + "/feedback", { limit: 50 }).then((data) => {
    if (ctx.dead) return;
    const items = data.feedback || [];
    clear(box).appendChild(items.length ? feedbackList(items) : h("div", { class: "empty", testid: "issue-feedback-empty" }, "No feedback about this issue yet."));
  }).catch((e) => {
    clear(box).appendChild(h("div", { class: "muted" }, e.status === 404 ? "This server does not collect feedback." : "Could not load feedback: " + e.message));
  });
  return box;
}

// ----- tag distribution -----------------------------------------------------

/** Each tag's top values as bars of their share of the issue's events. */
async function tagFacets(ctx, box, issueId) {
  const data = await api("/api/v1/issues/" + encodeURIComponent(issueId) + "/tags", { top: 5 }, { quiet: true });
  if (ctx.dead) return;
  const list = data.tags || [];
  clear(box);
  if (!list.length) {
    box.appendChild(h("div", { class: "muted" }, "No tags on these events."));
    return;
  }
  for (const tag of list) box.appendChild(facet(issueId, tag, Number(data.issueCount) || 0));
}

function facet(issueId, tag, issueCount) {
  const values = h("ol", { class: "facet-values" });
  const show = (items) => {
    clear(values);
    for (const v of items) values.appendChild(facetValue(issueId, tag.key, v));
    const rest = 1 - items.reduce((a, v) => a + (Number(v.share) || 0), 0);
    if (items.length >= (Number(tag.uniqueValues) || 0) && issueCount && Number(tag.totalEvents) < issueCount && rest > 0.0005) {
      values.appendChild(h("li", { class: "facet-value facet-none muted small" }, "(no value) " + Math.round(rest * 100) + "%"));
    }
  };
  show(tag.topValues || []);
  const more = Number(tag.uniqueValues) > (tag.topValues || []).length
    ? h("button", { type: "button", class: "btn btn-small facet-more", testid: "facet-more" }, "All " + fmtNum(tag.uniqueValues) + " values") : null;
  if (more) {
    more.addEventListener("click", async () => {
      try {
        const data = await api("/api/v1/issues/" + encodeURIComponent(issueId) + "/tags/" + encodeURIComponent(tag.key), { limit: 100 });
        show(data.values || []);
        more.remove();
      } catch (e) {
        flash(e.message);
      }
    });
  }
  return h("div", { class: "facet", testid: "facet", data: { key: tag.key } },
    h("div", { class: "facet-head" }, h("span", { class: "facet-key", testid: "facet-key" }, tag.key),
      h("span", { class: "muted small" }, fmtNum(tag.uniqueValues) + (Number(tag.uniqueValues) === 1 ? " value" : " values"))),
    values, more);
}

function facetValue(issueId, key, v) {
  const share = Number(v.share) || 0;
  const term = key + ":" + quoteValue(v.value);
  return h("li", { class: "facet-value", testid: "facet-value", data: { value: v.value }, title: fmtNum(v.count) + " events, " + (share * 100).toFixed(1) + "%" },
    h("a", { href: "#/issues/" + encodeURIComponent(issueId) + "?tab=events&query=" + encodeURIComponent(term), class: "facet-label" }, truncate(String(v.value), 40)),
    meter(share, "facet-meter"),
    h("span", { class: "facet-pct", testid: "facet-pct" }, Math.round(share * 100) + "%"));
}
