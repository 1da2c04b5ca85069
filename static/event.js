import { api, getKey } from "./api.js";
import { h, urlText } from "./dom.js";
import { fmtBytes, prettyJson, timeEl, truncate, valueText } from "./format.js";
import { kvTable, levelBadge, releaseLink, replayLink, section, table, traceLink } from "./widgets.js";

// ==========================================================================
// View: Event detail (and the event renderer the issue page reuses)
// ==========================================================================

export async function viewEvent(ctx, root, query, eventId) {
  const data = await api("/api/v1/events/" + encodeURIComponent(eventId));
  if (ctx.dead) return;
  const ev = data.event;
  root.appendChild(h("div", { class: "crumbs" },
    h("a", { href: "#/issues" }, "Issues"), " / ",
    ev.issueId != null ? h("a", { href: "#/issues/" + encodeURIComponent(ev.issueId), testid: "event-issue-link" }, "Issue #" + ev.issueId) : "event",
    " / ", h("span", { class: "mono" }, truncate(ev.eventId || ev.id, 16))));
  root.appendChild(renderEvent(ev, { rawOpen: true, title: true }));
}

export function eventTitle(ev) {
  const exc = Array.isArray(ev.exception) && ev.exception.length ? ev.exception[ev.exception.length - 1] : null;
  if (exc) return (exc.type || "Error") + (exc.value ? ": " + exc.value : "");
  return ev.message || "(no message)";
}

/**
 * The whole event, error first: message, exception (or stack trace, or
 * location), then what was around it (meta, feedback, attachments,
 * breadcrumbs, tags, user, request, contexts, extra, raw JSON).
 */
export function renderEvent(ev, opts) {
  opts = opts || {};
  const wrap = h("div", { class: "event", testid: "event-detail", data: { eventId: ev.id } });
  if (opts.title) wrap.appendChild(h("h1", { class: "issue-title", testid: "event-title" }, eventTitle(ev)));
  const exceptions = Array.isArray(ev.exception) ? ev.exception : [];
  if (ev.message && (!exceptions.length || ev.message !== eventTitle(ev))) {
    wrap.appendChild(section("Message", h("pre", { class: "message", testid: "event-message" }, ev.message), "event-message-panel"));
  }
  const messageFrames = ev.stacktrace && Array.isArray(ev.stacktrace.frames) ? ev.stacktrace.frames : [];
  if (exceptions.length) wrap.appendChild(section("Exception", exceptionChain(exceptions), "exception-panel", frameToggle(wrap)));
  else if (messageFrames.length) {
    // a message sent with attach_stacktrace: where it was logged from
    wrap.appendChild(section("Stack trace", frameList(messageFrames), "stacktrace-panel", frameToggle(wrap)));
  } else if (ev.file || ev.line) {
    wrap.appendChild(section("Location", h("div", { class: "mono", testid: "event-location" }, (ev.file || "?") + (ev.line ? ":" + ev.line : "")), "location-panel"));
  }
  wrap.appendChild(eventMeta(ev));
  if (Array.isArray(ev.feedback) && ev.feedback.length) wrap.appendChild(section("User feedback", feedbackList(ev.feedback), "event-feedback"));
  if (Array.isArray(ev.attachments) && ev.attachments.length) wrap.appendChild(section("Attachments", attachmentList(ev.attachments), "attachments"));
  if (Array.isArray(ev.breadcrumbs) && ev.breadcrumbs.length) wrap.appendChild(section("Breadcrumbs", breadcrumbs(ev.breadcrumbs), "breadcrumbs"));
  if (ev.tags && Object.keys(ev.tags).length) wrap.appendChild(section("Tags", tagList(ev.tags), "tags"));
  if (ev.user && Object.keys(ev.user).length) wrap.appendChild(section("User", kvTable(ev.user, "user-table"), "user"));
  if (ev.request && Object.keys(ev.request).length) wrap.appendChild(section("Request", requestInfo(ev.request), "request"));
  if (ev.contexts && Object.keys(ev.contexts).length) wrap.appendChild(section("Contexts", contextsInfo(ev.contexts), "contexts"));
  if (ev.extra && Object.keys(ev.extra).length) wrap.appendChild(section("Extra", kvTable(ev.extra, "extra-table"), "extra"));
  const raw = h("details", { class: "raw", testid: "raw-json-panel", open: opts.rawOpen ? true : undefined },
    h("summary", null, "Raw JSON"),
    h("pre", { class: "code raw-json", testid: "raw-json" }, prettyJson(ev)));
  wrap.appendChild(raw);
  return wrap;
}

export function eventMeta(ev) {
  const item = (label, value, testid) => value === undefined || value === null || value === "" ? null :
    h("div", { class: "meta-item" }, h("span", { class: "meta-label" }, label), h("span", { class: "meta-value", testid: testid }, value));
  const sdk = ev.sdk && typeof ev.sdk === "object" ? [ev.sdk.name, ev.sdk.version].filter(Boolean).join(" ") : ev.sdk;
  return h("div", { class: "event-meta", testid: "event-meta" },
    item("Event", h("span", { class: "mono" }, ev.eventId || ev.id), "event-id"),
    item("Level", levelBadge(ev.levelRaw || ev.level)),
    item("Occurred", timeEl(ev.timestamp, "abs"), "event-timestamp"),
    item("Received", timeEl(ev.received, "abs")),
    item("Environment", ev.environment, "event-environment"),
    item("Release", ev.release ? releaseLink(ev.release, "event-release-link") : null, "event-release"),
    item("Trace", traceLink(ev.traceId, "event-trace-link") || null, "event-trace"),
    item("Replay", replayLink(ev.replayId, "event-replay-link") || null, "event-replay"),
    item("Server", ev.serverName || ev.hostname, "event-server"),
    item("Platform", ev.platform),
    item("SDK", sdk ? valueText(sdk) : null),
    item("Source", ev.dialect));
}

/** Exceptions: the raised one (last in the list) first, like Sentry. */
export function exceptionChain(exceptions) {
  const box = h("div", { class: "exception-chain", testid: "exception-chain" });
  const ordered = exceptions.slice().reverse();
  ordered.forEach((exc, i) => {
    if (i > 0) box.appendChild(h("div", { class: "chain-sep" }, "Caused by / raised while handling"));
    box.appendChild(exceptionBlock(exc, i === 0));
  });
  return box;
}

/**
 * Frames newest first.  In-app frames open with their source; the others are
 * one line each, and a run of several folds into one "N more frames" line.
 * A trace with no in-app frame at all opens its newest frame instead.
 */
export function frameList(frames) {
  const newestFirst = frames.slice().reverse().map((f) => f || {});
  const hasInApp = newestFirst.some((f) => f.inApp);
  const list = h("ol", { class: "frames", testid: "stack-frames" });
  if (!hasInApp) {
    newestFirst.forEach((f, i) => list.appendChild(frameItem(f, i === 0)));
    return list;
  }
  let run = [];
  const flush = () => {
    if (run.length === 1) list.appendChild(frameItem(run[0], false));
    else if (run.length) list.appendChild(frameFold(run));
    run = [];
  };
  for (const f of newestFirst) {
    if (f.inApp) {
      flush();
      list.appendChild(frameItem(f, true));
    } else run.push(f);
  }
  flush();
  return list;
}

/** Several library frames in a row, folded behind one line that opens them. */
function frameFold(frames) {
  const label = () => (fold.classList.contains("open") ? "Hide " : "Show ") + frames.length + " more frames (not in app)";
  const button = h("button", { type: "button", class: "frame-fold-toggle", testid: "frame-fold-toggle", "aria-label": "Show or hide library frames" });
  const fold = h("li", { class: "frame-fold", testid: "frame-fold" }, button,
    h("ol", { class: "frames fold-frames" }, frames.map((f) => frameItem(f, false))));
  button.textContent = label();
  button.addEventListener("click", () => {
    fold.classList.toggle("open");
    button.textContent = label();
  });
  return fold;
}

export function exceptionBlock(exc, isRaised) {
  const frames = Array.isArray(exc.frames) ? exc.frames : [];
  let list = frameList(frames);
  // frames mapped through a source map: the minified ones are kept in rawFrames
  const raw = Array.isArray(exc.rawFrames) && exc.rawFrames.length ? exc.rawFrames : null;
  let toggle = null;
  if (raw) {
    let showingRaw = false;
    toggle = h("button", { type: "button", class: "btn btn-small", testid: "toggle-minified-frames" }, "Show minified");
    toggle.addEventListener("click", () => {
      showingRaw = !showingRaw;
      const next = frameList(showingRaw ? raw : frames);
      list.replaceWith(next);
      list = next;
      toggle.textContent = showingRaw ? "Show original" : "Show minified";
    });
  }
  return h("div", { class: "exception" + (isRaised ? " raised" : ""), testid: "exception" },
    h("div", { class: "exc-head" },
      h("span", { class: "exc-type", testid: "exception-type" }, exc.type || "Error"),
      exc.module ? h("span", { class: "muted mono" }, " (" + exc.module + ")") : null,
      toggle),
    exc.value ? h("pre", { class: "exc-value", testid: "exception-value" }, exc.value) : null,
    frames.length ? h("div", { class: "frames-note muted" }, frames.length + " frame" + (frames.length === 1 ? "" : "s") + ", most recent call first" + (raw ? ", mapped through source maps" : "")) : h("div", { class: "muted" }, "No stack trace"),
    list);
}

export function frameItem(f, expanded) {
  const where = f.filename || f.absPath || f.module || "<unknown>";
  const hasDetail = f.contextLine != null || (f.preContext && f.preContext.length) || (f.postContext && f.postContext.length) || (f.vars && Object.keys(f.vars).length);
  const head = h("div", { class: "frame-head" },
    h("span", { class: "frame-file", testid: "frame-filename" }, where),
    f.function ? [h("span", { class: "frame-in" }, " in "), h("span", { class: "frame-fn", testid: "frame-function" }, f.function)] : null,
    f.lineno != null ? h("span", { class: "frame-line" }, " at line " + f.lineno + (f.colno != null ? ":" + f.colno : "")) : null,
    f.inApp ? h("span", { class: "badge in-app", testid: "in-app-badge" }, "In App") : null,
    f.sourceMapError && typeof f.sourceMapError === "object"
      ? h("span", { class: "badge sourcemap-error", testid: "sourcemap-error", title: String(f.sourceMapError.message || "") }, "not mapped: " + String(f.sourceMapError.type || "?"))
      : null);
  const li = h("li", { class: "frame " + (f.inApp ? "in-app" : "system") + (expanded && hasDetail ? " expanded" : ""), testid: "stack-frame", data: { inApp: f.inApp ? "true" : "false" } }, head);
  if (hasDetail) {
    head.classList.add("clickable");
    head.setAttribute("title", "Show / hide source context");
    li.appendChild(frameDetail(f));
    head.addEventListener("click", () => li.classList.toggle("expanded"));
  }
  return li;
}

export function frameDetail(f) {
  const box = h("div", { class: "frame-detail" });
  const pre = Array.isArray(f.preContext) ? f.preContext : [];
  const post = Array.isArray(f.postContext) ? f.postContext : [];
  if (f.contextLine != null || pre.length || post.length) {
    const start = f.lineno != null ? Number(f.lineno) - pre.length : null;
    const lines = h("ol", { class: "context code", testid: "frame-context" });
    const addLine = (text, lineNo, current) => lines.appendChild(h("li", { class: "ctx-line" + (current ? " current" : ""), testid: current ? "context-line" : undefined },
      h("span", { class: "ln" }, lineNo == null ? "" : String(lineNo)), h("span", { class: "src" }, text == null ? "" : String(text))));
    pre.forEach((t, i) => addLine(t, start == null ? null : start + i, false));
    if (f.contextLine != null) addLine(f.contextLine, f.lineno, true);
    post.forEach((t, i) => addLine(t, f.lineno == null ? null : Number(f.lineno) + 1 + i, false));
    box.appendChild(lines);
  }
  if (f.vars && typeof f.vars === "object" && Object.keys(f.vars).length) box.appendChild(kvTable(f.vars, "frame-vars"));
  return box;
}

/** "Show only in-app frames" switch for the exception panel. */
export function frameToggle(scope) {
  const btn = h("button", { type: "button", class: "btn btn-small", testid: "toggle-system-frames" }, "In-app only");
  btn.addEventListener("click", () => {
    const on = scope.classList.toggle("hide-system");
    btn.textContent = on ? "Full stack" : "In-app only";
  });
  return btn;
}

export function breadcrumbs(crumbs) {
  const { table: tbl, tbody } = table(["Time", "Type", "Category", "Level", "Message", "Data"], "crumbs-table", "breadcrumbs-table");
  for (const b of crumbs.slice().reverse()) {
    tbody.appendChild(h("tr", { testid: "breadcrumb" },
      h("td", { class: "nowrap" }, b.timestamp ? timeEl(b.timestamp, "clock") : "—"),
      h("td", null, b.type || "default"),
      h("td", null, b.category || ""),
      h("td", null, b.level ? levelBadge(b.level) : ""),
      h("td", { class: "wrap" }, b.message == null ? "" : valueText(b.message)),
      h("td", { class: "mono wrap small" }, b.data ? valueText(b.data) : "")));
  }
  return h("div", { class: "table-wrap" }, tbl);
}

export function tagList(tags) {
  return h("div", { class: "tags" }, Object.entries(tags).map(([k, v]) =>
    h("span", { class: "tag", testid: "tag" }, h("span", { class: "tag-key" }, k), h("span", { class: "tag-value" }, valueText(v)))));
}

export function requestInfo(req) {
  const rows = [];
  rows.push(h("div", { class: "req-line" },
    h("span", { class: "badge method" }, req.method || "GET"), " ", urlText(req.url, "request-url")));
  if (req.query && (typeof req.query !== "object" || Object.keys(req.query).length)) {
    rows.push(h("h3", null, "Query"), typeof req.query === "object" ? kvTable(req.query, "request-query") : h("pre", { class: "code" }, String(req.query)));
  }
  if (req.data !== undefined && req.data !== null && req.data !== "") {
    rows.push(h("h3", null, "Body"), h("pre", { class: "code", testid: "request-data" }, typeof req.data === "object" ? prettyJson(req.data) : String(req.data)));
  }
  if (req.headers && Object.keys(req.headers).length) {
    const headers = Array.isArray(req.headers) ? Object.fromEntries(req.headers.map((p) => [p[0], p[1]])) : req.headers;
    rows.push(h("h3", null, "Headers"), kvTable(headers, "request-headers"));
  }
  return h("div", { class: "request-info" }, rows);
}

export function contextsInfo(contexts) {
  return h("div", { class: "contexts" }, Object.entries(contexts).map(([name, value]) =>
    h("div", { class: "context-block" }, h("h3", null, name),
      value && typeof value === "object" && !Array.isArray(value) ? kvTable(value) : h("div", { class: "mono" }, valueText(value)))));
}

/** Feedback people sent about this event (Sentry's widget, captureFeedback, user reports). */
export function feedbackList(items) {
  return h("ol", { class: "feedback-list", testid: "feedback-list" }, items.map((fb) =>
    h("li", { class: "feedback", testid: "feedback" },
      h("div", { class: "feedback-head" },
        h("span", { class: "feedback-who", testid: "feedback-name" }, fb.name || fb.email || "Anonymous"),
        fb.email && fb.name ? h("span", { class: "muted small" }, " <" + fb.email + ">") : null,
        " ", timeEl(fb.timestamp),
        fb.url ? h("span", { class: "muted small mono" }, " on ", urlText(fb.url)) : null,
        fb.event && fb.event.id != null ? h("a", { href: "#/events/" + encodeURIComponent(fb.event.id), class: "small", testid: "feedback-event-link" }, " event") : null,
        fb.replayId ? [" ", replayLink(fb.replayId, "feedback-replay-link")] : null),
      h("div", { class: "feedback-message", testid: "feedback-message" }, fb.message == null ? "" : valueText(fb.message)))));
}

/** Files the SDK attached; each downloads (the server never serves them as pages). */
export function attachmentList(items) {
  const { table: tbl, tbody } = table(["Name", "Type", { label: "Size", cls: "num" }, ""], "attachments-table", "attachments-table");
  for (const a of items) {
    tbody.appendChild(h("tr", { testid: "attachment-row" },
      h("td", { class: "mono wrap", testid: "attachment-name" }, a.name || "attachment"),
      h("td", { class: "mono small" }, a.contentType || ""),
      h("td", { class: "num" }, fmtBytes(a.size)),
      h("td", null, h("a", { href: attachmentUrl(a), class: "btn btn-small", download: true, testid: "attachment-download" }, "Download"))));
  }
  return h("div", { class: "table-wrap" }, tbl);
}

/** The attachment's download URL with the key, absolute (h() links only http(s) and "#/"). */
function attachmentUrl(a) {
  const url = new URL(a.url || "/api/v1/attachments/" + encodeURIComponent(a.id), location.origin);
  url.searchParams.set("key", getKey());
  return url.href;
}
