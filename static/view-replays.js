import { api } from "./api.js";
import { h, s, urlText } from "./dom.js";
import { fmtMs, fmtNum, timeEl, toDate, truncate, valueText } from "./format.js";
import { card, clickableRow, errorList, pageHeader, pagedTable, releaseLink, section, traceLink } from "./widgets.js";

// ==========================================================================
// View: Replays (session list and one session's timeline)
// ==========================================================================

export async function viewReplays(ctx, root) {
  const sessions = pagedTable(ctx, {
    columns: ["Session", { label: "Events", cls: "num" }, { label: "Errors", cls: "num" }, { label: "Duration", cls: "num" }, "Pages", "First seen", "Last seen"],
    cls: "replays-table", testid: "replays-table", moreTestid: "replays-load-more",
    fetch: (page) => api("/api/v1/replays", page),
    items: (data) => data.sessions, row: replayRow, empty: "No replay sessions yet.",
  });
  root.appendChild(pageHeader("Session replays", "Recorded user sessions"));
  root.append(...sessions.elements);
  await sessions.load(true);
}

export function replayRow(sess) {
  const href = "#/replays/" + encodeURIComponent(sess.sessionId);
  const first = toDate(sess.firstSeen);
  const last = toDate(sess.lastSeen);
  const urls = Array.isArray(sess.urls) ? sess.urls : [];
  return clickableRow(h("tr", { testid: "replay-row", data: { sessionId: sess.sessionId } },
    h("td", null, h("a", { href: href, class: "mono", testid: "replay-link" }, sess.sessionId || "(no id)"),
      sess.fingerprint && sess.fingerprint !== sess.sessionId ? h("div", { class: "muted small mono" }, sess.fingerprint) : null),
    h("td", { class: "num" }, fmtNum(sess.events)),
    h("td", { class: "num" + (sess.errorCount ? " text-error" : ""), testid: "replay-error-count" }, sess.errorCount == null ? "—" : fmtNum(sess.errorCount)),
    h("td", { class: "num" }, first && last ? fmtMs(last - first) : "—"),
    h("td", { class: "wrap" }, urls.slice(0, 3).map((u) => h("div", { class: "mono small", testid: "replay-url" }, truncate(u, 90))),
      urls.length > 3 ? h("div", { class: "muted small" }, "+" + (urls.length - 3) + " more") : null),
    h("td", null, timeEl(sess.firstSeen)),
    h("td", null, timeEl(sess.lastSeen))), href);
}

export async function viewReplay(ctx, root, query, sessionId) {
  const data = await api("/api/v1/replays/" + encodeURIComponent(sessionId));
  if (ctx.dead) return;
  const events = (data.events || []).slice().sort((a, b) => eventMillis(a) - eventMillis(b));
  const start = events.length ? eventMillis(events[0]) : 0;
  const end = events.length ? eventMillis(events[events.length - 1]) : 0;
  root.appendChild(h("div", { class: "crumbs" }, h("a", { href: "#/replays" }, "← Replays")));
  root.appendChild(pageHeader("Session " + (data.sessionId || sessionId), events.length + " events over " + fmtMs(end - start)));
  const traces = Array.isArray(data.traceIds) ? data.traceIds : [];
  root.appendChild(h("div", { class: "stat-grid" },
    data.source ? card("Source", data.source === "sentry" ? "Sentry SDK" : data.source, "replay-source") : null,
    card("Started", events.length ? timeEl(events[0].timestamp, "abs") : "—"),
    data.environment ? card("Environment", data.environment) : null,
    data.release ? card("Release", releaseLink(data.release)) : null,
    data.segments != null ? card("Segments", fmtNum(data.segments)) : null,
    traces.length ? card("Traces", h("span", { class: "chips" }, traces.slice(0, 4).map((t) => traceLink(t, "replay-trace-link")))) : null));
  const errors = Array.isArray(data.errors) ? data.errors : [];
  if (errors.length) root.appendChild(section("Errors in this session", errorList(errors), "replay-errors"));
  root.appendChild(section("Timeline", replayTimeline(events, start, end), "replay-timeline-panel"));
  root.appendChild(section("Events", replayEventList(events, start), "replay-events-panel"));
}

export function eventMillis(ev) {
  if (ev.timestampMillis != null && isFinite(Number(ev.timestampMillis))) return Number(ev.timestampMillis);
  const d = toDate(ev.timestamp);
  return d ? d.getTime() : 0;
}

export const REPLAY_TYPE_CLASS = {
  navigation: "t-nav", mouse_click: "t-click", click: "t-click", input: "t-input", scroll: "t-scroll", error: "t-error",
  console: "t-console", network: "t-network", web_vital: "t-vital", feedback: "t-feedback", breadcrumb: "t-other",
};

export function replayTypeClass(type) {
  return REPLAY_TYPE_CLASS[String(type || "").toLowerCase()] || "t-other";
}

/** SVG: one lane of event dots, one lane of URL segments. */
export function replayTimeline(events, start, end) {
  const W = 1000, H = 120, padL = 90, padR = 20;
  const span = Math.max(1, end - start);
  const x = (ms) => padL + ((ms - start) / span) * (W - padL - padR);
  const svg = s("svg", { class: "timeline", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Session timeline", testid: "replay-timeline" });
  svg.appendChild(s("text", { class: "axis", x: 8, y: 34, text: "Events" }));
  svg.appendChild(s("text", { class: "axis", x: 8, y: 78, text: "Page" }));
  svg.appendChild(s("line", { class: "axis-line", x1: padL, x2: W - padR, y1: 30, y2: 30 }));
  // URL segments
  const changes = urlChanges(events);
  changes.forEach((c, i) => {
    const x1 = x(c.at);
    const x2 = i + 1 < changes.length ? x(changes[i + 1].at) : W - padR;
    svg.appendChild(s("rect", { class: "url-seg seg-" + (i % 4), x: x1.toFixed(1), y: 62, width: Math.max(2, x2 - x1).toFixed(1), height: 22 }, s("title", { text: c.url })));
    svg.appendChild(s("line", { class: "url-mark", x1: x1.toFixed(1), x2: x1.toFixed(1), y1: 14, y2: 90, testid: "timeline-url-change" }));
    if (x2 - x1 > 60) svg.appendChild(s("text", { class: "seg-label", x: (x1 + 4).toFixed(1), y: 77, text: truncate(urlPath(c.url), Math.floor((x2 - x1 - 8) / 6.5)) }));
  });
  for (const ev of events) {
    const cx = x(eventMillis(ev));
    svg.appendChild(s("circle", { class: "dot " + replayTypeClass(ev.eventType), cx: cx.toFixed(1), cy: 30, r: 6, testid: "timeline-dot" },
      s("title", { text: "+" + fmtMs(eventMillis(ev) - start) + " " + (ev.eventType || "event") })));
  }
  svg.appendChild(s("text", { class: "axis", x: padL, y: H - 8, text: "0 s" }));
  svg.appendChild(s("text", { class: "axis", x: W - padR, y: H - 8, "text-anchor": "end", text: fmtMs(span) }));
  const types = Array.from(new Set(events.map((e) => e.eventType || "event")));
  return h("div", null, svg, h("div", { class: "legend" }, types.map((t) => h("span", { class: "legend-item" }, h("span", { class: "swatch dot-swatch " + replayTypeClass(t) }), t))));
}

export function urlChanges(events) {
  const out = [];
  let last = null;
  for (const ev of events) {
    if (ev.url && ev.url !== last) {
      out.push({ at: eventMillis(ev), url: String(ev.url) });
      last = ev.url;
    }
  }
  return out;
}

export function urlPath(u) {
  try {
    const url = new URL(u);
    return url.pathname + url.search;
  } catch (e) {
    return String(u);
  }
}

export function replayEventList(events, start) {
  const MAX = 2000;
  const list = h("ol", { class: "replay-events", testid: "replay-events" });
  let lastUrl = null;
  for (const ev of events.slice(0, MAX)) {
    if (ev.url && ev.url !== lastUrl) {
      list.appendChild(h("li", { class: "url-change", testid: "replay-url-change" },
        h("span", { class: "offset mono" }, "+" + fmtMs(eventMillis(ev) - start)),
        h("span", { class: "url-arrow" }, lastUrl ? "Navigated to" : "Started on"), " ", urlText(ev.url)));
      lastUrl = ev.url;
    }
    list.appendChild(h("li", { class: "replay-event", testid: "replay-event", data: { type: ev.eventType } },
      h("span", { class: "offset mono" }, "+" + fmtMs(eventMillis(ev) - start)),
      h("span", { class: "badge type " + replayTypeClass(ev.eventType) }, ev.eventType || "event"),
      replaySummary(ev),
      h("code", { class: "event-data", testid: "replay-event-data" }, replayData(ev.eventData))));
  }
  if (events.length > MAX) list.appendChild(h("li", { class: "muted" }, (events.length - MAX) + " more events not shown"));
  if (!events.length) list.appendChild(h("li", { class: "muted" }, "No events in this session."));
  return list;
}

export function replayData(data) {
  if (data == null) return "";
  if (typeof data === "string") {
    try {
      return JSON.stringify(JSON.parse(data));
    } catch (e) {
      return data;
    }
  }
  return valueText(data);
}

/** One line that says what happened (a click on what, which request, what the console said). */
export function replaySummary(ev) {
  let d = ev.eventData;
  if (typeof d === "string") {
    try {
      d = JSON.parse(d);
    } catch (e) {
      return null;
    }
  }
  if (!d || typeof d !== "object") return null;
  const text = (value) => (value == null ? "" : valueText(value));
  let line = null;
  switch (String(ev.eventType || "").toLowerCase()) {
    case "navigation": line = (d.method ? d.method + " " : "") + "→ " + text(d.to || ev.url); break;
    case "click": case "mouse_click": line = text(d.target) + (d.text ? " “" + truncate(text(d.text), 60) + "”" : ""); break;
    case "input": line = (d.target || d.field ? text(d.target || d.field) + " = " : "") + text(d.value); break;
    case "console": line = "[" + text(d.level || "log") + "] " + truncate(text(d.message), 200); break;
    case "network": line = (d.method ? d.method + " " : "") + text(d.url) + (d.statusCode != null ? " · " + d.statusCode : "") + (d.durationMs != null ? " · " + fmtMs(d.durationMs) : ""); break;
    case "web_vital": line = text(d.name) + " " + text(d.value) + (d.rating ? " (" + text(d.rating) + ")" : ""); break;
    case "breadcrumb": line = text(d.category) + (d.message ? ": " + truncate(text(d.message), 200) : ""); break;
    default: return null;
  }
  return h("span", { class: "replay-summary", testid: "replay-summary" }, line);
}
