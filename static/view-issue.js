import { api, flash } from "./api.js";
import { barChart } from "./charts.js";
import { clear, h } from "./dom.js";
import { renderEvent } from "./event.js";
import { fmtDateTime, fmtNum, pad, timeEl, truncate } from "./format.js";
import { card, clickableRow, emptyRow, levelBadge, section, statusBadge, table } from "./widgets.js";

// ==========================================================================
// View: Issue detail
// ==========================================================================

export async function viewIssue(ctx, root, query, issueId) {
  const data = await api("/api/v1/issues/" + encodeURIComponent(issueId));
  if (ctx.dead) return;
  const head = h("div", { class: "issue-detail-head", testid: "issue-header" });
  const stats = h("div", { class: "stat-grid", testid: "issue-stats" });
  const chartBox = h("div", { class: "chart-box" });
  const eventsBox = h("div", { testid: "issue-events" });
  const eventBox = h("div", { class: "event-box", testid: "issue-latest-event" });

  root.appendChild(h("div", { class: "crumbs" }, h("a", { href: "#/issues" }, "← Issues")));
  root.appendChild(head);
  root.appendChild(stats);
  root.appendChild(section("Events in the last 24 hours", chartBox, "issue-chart"));
  root.appendChild(section("Events", eventsBox, "issue-events-panel"));
  root.appendChild(eventBox);

  function renderIssue(issue) {
    clear(head).appendChild(issueHeader(issue, async (status) => {
      try {
        const res = await api("/api/v1/issues/" + encodeURIComponent(issue.id), null, { method: "POST", body: { status: status } });
        const updated = Object.assign({}, issue, res.issue || {});
        if (!updated.releases) updated.releases = issue.releases;
        renderIssue(updated);
        flash("Issue marked " + status, "ok");
      } catch (e) {
        flash("Could not change status: " + e.message);
      }
    }));
    clear(stats);
    stats.append(
      card("Events", fmtNum(issue.count), "issue-count"),
      card("First seen", timeEl(issue.firstSeen), "issue-first-seen", fmtDateTime(issue.firstSeen)),
      card("Last seen", timeEl(issue.lastSeen), "issue-last-seen", fmtDateTime(issue.lastSeen)),
      card("Releases", releaseList(issue), "issue-releases", issue.lastRelease ? "latest " + issue.lastRelease : null),
      card("Environments", (issue.environments || []).length ? (issue.environments || []).map((e) => h("span", { class: "chip" }, e)) : "—", "issue-environments"));
    clear(chartBox).appendChild(hourChart(issue.histogram24h));
  }

  renderIssue(data.issue);
  await issueEvents(ctx, eventsBox, eventBox, issueId);
}

export function releaseList(issue) {
  const releases = issue.releases || (issue.lastRelease ? [issue.lastRelease] : []);
  if (!releases.length) return "—";
  return h("span", { class: "chips" }, releases.slice(0, 8).map((r) => h("span", { class: "chip chip-release", testid: "release" }, r)),
    releases.length > 8 ? h("span", { class: "muted" }, " +" + (releases.length - 8)) : null);
}

export function issueHeader(issue, setStatus) {
  const actions = h("div", { class: "issue-actions", testid: "issue-actions" });
  const button = (status, label, cls) => h("button", {
    type: "button", class: "btn " + cls, testid: "action-" + label.toLowerCase(),
    on: { click: () => setStatus(status) },
  }, label);
  if (issue.status !== "resolved") actions.appendChild(button("resolved", "Resolve", "btn-primary"));
  if (issue.status !== "ignored") actions.appendChild(button("ignored", "Ignore", ""));
  if (issue.status !== "unresolved") actions.appendChild(button("unresolved", "Reopen", ""));
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

export function hourChart(hist) {
  const vals = Array.isArray(hist) && hist.length ? hist : new Array(24).fill(0);
  const now = new Date();
  const buckets = vals.map((v, i) => {
    const d = new Date(now.getTime() - (vals.length - 1 - i) * 3600 * 1000);
    const label = pad(d.getHours()) + ":00";
    return { label: label, values: [v], tip: label + " — " + fmtNum(v) + " events" };
  });
  return barChart(buckets, [{ name: "events", cls: "s0" }], { width: 1200, height: 170, integer: true, label: "Events per hour", testid: "issue-hour-chart", maxLabels: 12 });
}

/** Paged list of the issue's events plus the selected event's detail. */
export async function issueEvents(ctx, box, eventBox, issueId) {
  const pages = [null];
  let pageIndex = 0;
  let selected = null;
  const { table: tbl, tbody } = table(["Event", "Message", "Level", "Environment", "Release", "Time"], "events-table", "events-table");
  const prev = h("button", { type: "button", class: "btn", testid: "events-newer" }, "← Newer");
  const next = h("button", { type: "button", class: "btn", testid: "events-older" }, "Older →");
  const pageInfo = h("span", { class: "muted" });
  box.append(h("div", { class: "table-wrap" }, tbl), h("div", { class: "pager" }, prev, pageInfo, next));

  async function load() {
    const data = await api("/api/v1/issues/" + encodeURIComponent(issueId) + "/events", { cursor: pages[pageIndex], limit: 20 });
    if (ctx.dead) return;
    clear(tbody);
    const events = data.events || [];
    for (const ev of events) tbody.appendChild(eventSummaryRow(ev, () => select(ev.id)));
    if (!events.length) tbody.appendChild(emptyRow(6, "No events stored for this issue."));
    pages[pageIndex + 1] = data.nextCursor || undefined;
    prev.disabled = pageIndex === 0;
    next.disabled = !data.nextCursor;
    pageInfo.textContent = "Page " + (pageIndex + 1);
    if (selected === null && events.length) await select(events[0].id);
  }

  async function select(eventId) {
    selected = eventId;
    for (const tr of tbody.querySelectorAll("tr")) tr.classList.toggle("selected", tr.dataset.eventId === String(eventId));
    const data = await api("/api/v1/events/" + encodeURIComponent(eventId));
    if (ctx.dead) return;
    clear(eventBox).appendChild(renderEvent(data.event, { compactHeader: false, rawOpen: false }));
  }

  prev.addEventListener("click", () => { if (pageIndex > 0) { pageIndex--; load().catch((e) => flash(e.message)); } });
  next.addEventListener("click", () => { if (pages[pageIndex + 1]) { pageIndex++; load().catch((e) => flash(e.message)); } });
  await load();
}

export function eventSummaryRow(ev, onSelect) {
  return clickableRow(h("tr", { class: "event-row", testid: "event-row", data: { eventId: ev.id } },
    h("td", null, h("a", { href: "#/events/" + encodeURIComponent(ev.id), class: "mono", testid: "event-link" }, truncate(ev.eventId || ev.id, 12))),
    h("td", { class: "wrap" }, truncate(ev.message || "", 200)),
    h("td", null, levelBadge(ev.level)),
    h("td", null, ev.environment || "—"),
    h("td", null, ev.release || "—"),
    h("td", null, timeEl(ev.timestamp))), onSelect);
}
