import { api } from "./api.js";
import { h, urlText } from "./dom.js";
import { prettyJson, timeEl, truncate, valueText } from "./format.js";
import { kvTable, levelBadge, section, table } from "./widgets.js";

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

export function renderEvent(ev, opts) {
  opts = opts || {};
  const wrap = h("div", { class: "event", testid: "event-detail", data: { eventId: ev.id } });
  if (opts.title) wrap.appendChild(h("h1", { class: "issue-title", testid: "event-title" }, eventTitle(ev)));
  wrap.appendChild(eventMeta(ev));
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
    item("Release", ev.release, "event-release"),
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

export function frameList(frames) {
  const newestFirst = frames.slice().reverse();
  const hasInApp = frames.some((f) => f && f.inApp);
  const list = h("ol", { class: "frames", testid: "stack-frames" });
  newestFirst.forEach((f, i) => {
    const expand = f.inApp || (!hasInApp && i === 0);
    list.appendChild(frameItem(f || {}, expand));
  });
  return list;
}

export function exceptionBlock(exc, isRaised) {
  const frames = Array.isArray(exc.frames) ? exc.frames : [];
  const list = frameList(frames);
  return h("div", { class: "exception" + (isRaised ? " raised" : ""), testid: "exception" },
    h("div", { class: "exc-head" },
      h("span", { class: "exc-type", testid: "exception-type" }, exc.type || "Error"),
      exc.module ? h("span", { class: "muted mono" }, " (" + exc.module + ")") : null),
    exc.value ? h("pre", { class: "exc-value", testid: "exception-value" }, exc.value) : null,
    frames.length ? h("div", { class: "frames-note muted" }, frames.length + " frame" + (frames.length === 1 ? "" : "s") + ", most recent call first") : h("div", { class: "muted" }, "No stack trace"),
    list);
}

export function frameItem(f, expanded) {
  const where = f.filename || f.absPath || f.module || "<unknown>";
  const hasDetail = f.contextLine != null || (f.preContext && f.preContext.length) || (f.postContext && f.postContext.length) || (f.vars && Object.keys(f.vars).length);
  const head = h("div", { class: "frame-head" },
    h("span", { class: "frame-file", testid: "frame-filename" }, where),
    f.function ? [h("span", { class: "frame-in" }, " in "), h("span", { class: "frame-fn", testid: "frame-function" }, f.function)] : null,
    f.lineno != null ? h("span", { class: "frame-line" }, " at line " + f.lineno + (f.colno != null ? ":" + f.colno : "")) : null,
    f.inApp ? h("span", { class: "badge in-app", testid: "in-app-badge" }, "In App") : null);
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
