/*
 * ErrorCapture web viewer.
 *
 * Plain JavaScript, no build step, nothing loaded from the internet.  Runs under
 *   default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'
 * so: no inline scripts, no style attributes, no eval.
 *
 * Safety rule for the whole file: data from the server is only ever put into the
 * page as text (textContent / text nodes) or through setAttribute on a short list
 * of harmless attributes.  Nothing here assigns innerHTML.  Links built from data
 * go through safeUrl(), which only lets http: and https: through.
 *
 * Only paged or aggregated endpoints are requested (see docs/read-api.md), so the
 * page stays fast on a project with millions of events.
 */
(function () {
  "use strict";

  // ==========================================================================
  // DOM helpers
  // ==========================================================================

  const SVG_NS = "http://www.w3.org/2000/svg";

  // Attributes h() may set.  Anything else (on*, style, src, srcdoc...) is refused.
  const SAFE_ATTRS = new Set([
    "id", "title", "type", "name", "value", "placeholder", "for", "colspan",
    "rowspan", "min", "max", "step", "disabled", "checked", "selected", "target",
    "rel", "autocomplete", "spellcheck", "role", "aria-label", "aria-live",
    "readonly", "size", "open", "required", "list", "hidden", "tabindex",
    "maxlength", "pattern", "datetime", "lang",
  ]);

  /** Create an HTML element.  props: class, text, testid, data{}, on{}, href, attrs. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    applyProps(el, props || {});
    appendChildren(el, children);
    return el;
  }

  function applyProps(el, props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = String(value);
      else if (key === "testid") el.setAttribute("data-testid", value);
      else if (key === "data") {
        for (const [k, v] of Object.entries(value)) {
          if (v !== undefined && v !== null) el.dataset[k] = String(v);
        }
      } else if (key === "on") {
        for (const [evt, fn] of Object.entries(value)) el.addEventListener(evt, fn);
      } else if (key === "href") setHref(el, value);
      else if (SAFE_ATTRS.has(key)) {
        el.setAttribute(key, value === true ? "" : String(value));
        if (key === "value" && "value" in el) el.value = String(value);
      } else {
        throw new Error("h(): attribute not allowed: " + key);
      }
    }
  }

  function appendChildren(el, children) {
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      if (Array.isArray(child)) appendChildren(el, child);
      else if (child instanceof Node) el.appendChild(child);
      else el.appendChild(document.createTextNode(String(child)));
    }
  }

  /** Internal links ("#/...") pass; external ones must be http(s). */
  function setHref(el, value) {
    const text = String(value);
    if (text.startsWith("#/")) {
      el.setAttribute("href", text);
      return;
    }
    const safe = safeUrl(text);
    if (safe) {
      el.setAttribute("href", safe);
      el.setAttribute("rel", "noopener noreferrer nofollow");
      el.setAttribute("target", "_blank");
    }
  }

  /** Return a normalised http(s) URL or null.  Never javascript:, data:, etc. */
  function safeUrl(value) {
    if (typeof value !== "string" || !value) return null;
    let url;
    try {
      url = new URL(value.trim());
    } catch (e) {
      return null;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    return url.href;
  }

  /** A link if the URL is http(s); plain text otherwise. */
  function urlText(value, testid) {
    const safe = safeUrl(value);
    if (safe) return h("a", { href: safe, class: "ext", testid: testid }, String(value));
    return h("span", { class: "mono", testid: testid }, value == null ? "" : String(value));
  }

  /** Create an SVG element.  Attribute values are numbers/constants we computed. */
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (/^on/i.test(key) || /href$/i.test(key) || key === "style") {
        throw new Error("s(): attribute not allowed: " + key);
      }
      if (key === "text") el.textContent = String(value);
      else if (key === "testid") el.setAttribute("data-testid", value);
      else el.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      if (child instanceof Node) el.appendChild(child);
      else el.appendChild(document.createTextNode(String(child)));
    }
    return el;
  }

  function $(selector, root) {
    return (root || document).querySelector(selector);
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  // ==========================================================================
  // Formatting
  // ==========================================================================

  function toDate(iso) {
    if (!iso) return null;
    const d = new Date(iso);
    return isNaN(d.getTime()) ? null : d;
  }

  function pad(n, width) {
    return String(n).padStart(width || 2, "0");
  }

  function fmtDateTime(iso) {
    const d = toDate(iso);
    if (!d) return iso ? String(iso) : "—";
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function fmtClock(iso) {
    const d = toDate(iso);
    if (!d) return iso ? String(iso) : "—";
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) +
      "." + pad(d.getMilliseconds(), 3);
  }

  function fmtAgo(iso) {
    const d = toDate(iso);
    if (!d) return iso ? String(iso) : "—";
    const diff = (Date.now() - d.getTime()) / 1000;
    const future = diff < 0;
    const sec = Math.abs(diff);
    let text;
    if (sec < 45) text = Math.round(sec) + "s";
    else if (sec < 3600) text = Math.round(sec / 60) + "m";
    else if (sec < 86400) text = Math.round(sec / 3600) + "h";
    else if (sec < 86400 * 60) text = Math.round(sec / 86400) + "d";
    else return fmtDateTime(iso);
    return future ? "in " + text : text + " ago";
  }

  /** <time> element: relative text, absolute time on hover. */
  function timeEl(iso, mode) {
    const text = mode === "abs" ? fmtDateTime(iso) : mode === "clock" ? fmtClock(iso) : fmtAgo(iso);
    return h("time", { class: mode ? "time" : "time rel", title: iso ? fmtDateTime(iso) + " (" + iso + ")" : "", datetime: iso || undefined }, text);
  }

  /** A number formatter from fn(finite number): "—" when missing, the value as text when not a number. */
  function numberFormat(fn) {
    return (value) => {
      if (value === undefined || value === null || value === "") return "—";
      const num = Number(value);
      return isFinite(num) ? fn(num) : String(value);
    };
  }

  const fmtNum = numberFormat((num) => num.toLocaleString("en-US", { maximumFractionDigits: 2 }));

  function fmtCompact(n) {
    const num = Number(n) || 0;
    if (Math.abs(num) >= 1e9) return (num / 1e9).toFixed(1).replace(/\.0$/, "") + "B";
    if (Math.abs(num) >= 1e6) return (num / 1e6).toFixed(1).replace(/\.0$/, "") + "M";
    if (Math.abs(num) >= 1e4) return (num / 1e3).toFixed(1).replace(/\.0$/, "") + "k";
    return fmtNum(num);
  }

  const fmtMs = numberFormat((num) => {
    if (num >= 60000) return (num / 60000).toFixed(1) + " min";
    if (num >= 1000) return (num / 1000).toFixed(2) + " s";
    return (num >= 10 ? Math.round(num) : Math.round(num * 10) / 10) + " ms";
  });

  const fmtUsd = numberFormat((num) => {
    if (num === 0) return "$0.00";
    if (Math.abs(num) < 0.01) return "$" + num.toFixed(5);
    if (Math.abs(num) < 1) return "$" + num.toFixed(4);
    if (Math.abs(num) < 10) return "$" + num.toFixed(3);
    return "$" + num.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  });

  const fmtBytes = numberFormat((num) => {
    if (num >= 1048576) return (num / 1048576).toFixed(1) + " MB";
    if (num >= 1024) return (num / 1024).toFixed(1) + " KB";
    return num + " B";
  });

  function prettyJson(value) {
    try {
      return JSON.stringify(value, null, 2);
    } catch (e) {
      return String(value);
    }
  }

  /** Show a value as text; objects as compact JSON. */
  function valueText(value) {
    if (value === undefined || value === null) return "";
    if (typeof value === "object") {
      try {
        return JSON.stringify(value);
      } catch (e) {
        return String(value);
      }
    }
    return String(value);
  }

  function truncate(text, max) {
    const str = String(text == null ? "" : text);
    return str.length > max ? str.slice(0, max - 1) + "…" : str;
  }

  // ==========================================================================
  // Key storage and API client
  // ==========================================================================

  const KEY_STORAGE = "errorcapture.key";

  function getKey() {
    try {
      return localStorage.getItem(KEY_STORAGE) || "";
    } catch (e) {
      return "";
    }
  }

  function setKey(key) {
    try {
      if (key) localStorage.setItem(KEY_STORAGE, key);
      else localStorage.removeItem(KEY_STORAGE);
    } catch (e) {
      /* private mode: key only lives for this page */
    }
    state.project = null;
    updateProjectName();
  }

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  /** Call the read API.  opts: method, body, noKey, headers. */
  async function api(path, params, opts) {
    opts = opts || {};
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
    }
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    const key = getKey();
    if (key && !opts.noKey) headers["X-ErrorCapture-Key"] = key;
    const init = { method: opts.method || "GET", headers: headers, cache: "no-store" };
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    let res;
    if (!opts.quiet) setBusy(1);
    try {
      res = await fetch(url.toString(), init);
    } catch (e) {
      throw new ApiError("Cannot reach the server (" + e.message + ")", 0);
    } finally {
      if (!opts.quiet) setBusy(-1);
    }
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      const msg = data && data.error ? valueText(data.error) : "HTTP " + res.status;
      throw new ApiError(msg, res.status);
    }
    return data || {};
  }

  let busy = 0;

  /** Thin progress bar under the header while user-visible requests run. */
  function setBusy(delta) {
    busy = Math.max(0, busy + delta);
    document.body.classList.toggle("busy", busy > 0);
  }

  // ==========================================================================
  // App state, flash messages, header
  // ==========================================================================

  const state = {
    project: null, // {id, key, name, dsn, endpoints}
  };

  let flashTimer = null;

  function flash(message, kind) {
    const box = $("#flash");
    if (!box) return;
    box.textContent = message;
    box.className = "flash flash-" + (kind || "error");
    box.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { box.hidden = true; }, kind === "ok" ? 3000 : 8000);
  }

  async function loadProject() {
    if (!getKey()) return null;
    if (state.project && state.project.key === getKey()) return state.project;
    try {
      const data = await api("/api/v1/project");
      state.project = data.project || null;
    } catch (e) {
      state.project = null;
      if (e.status === 401 || e.status === 404 || e.status === 403) {
        flash("That project key was not accepted: " + e.message);
      }
    }
    updateProjectName();
    return state.project;
  }

  function updateProjectName() {
    const el = $("#project-name");
    if (!el) return;
    el.textContent = state.project ? state.project.name || "project " + state.project.id : "";
    el.title = state.project ? "Project key " + state.project.key : "";
  }

  // ==========================================================================
  // Router and view lifecycle
  // ==========================================================================

  /** One per rendered view; dies when the user navigates away. */
  class ViewContext {
    constructor() {
      this.dead = false;
      this.timers = new Set();
    }

    /** Run fn every ms (no overlap) until the view is left. */
    poll(fn, ms) {
      const tick = async () => {
        if (this.dead) return;
        if (!document.hidden) {
          try {
            await fn();
          } catch (e) {
            if (!this.dead) setLiveStatus(false, e.message);
          }
        }
        if (!this.dead) this.later(tick, ms);
      };
      this.later(tick, ms);
    }

    later(fn, ms) {
      const id = setTimeout(() => {
        this.timers.delete(id);
        if (!this.dead) fn();
      }, ms);
      this.timers.add(id);
    }

    dispose() {
      this.dead = true;
      for (const id of this.timers) clearTimeout(id);
      this.timers.clear();
    }
  }

  // [path pattern, view, nav entry].  The views are function declarations, so
  // they are hoisted and can be named here, above their definitions.
  const ROUTES = [
    [/^\/?$/, viewIssues, "issues"],
    [/^\/issues$/, viewIssues, "issues"],
    [/^\/issues\/([^/]+)$/, viewIssue, "issues"],
    [/^\/events\/([^/]+)$/, viewEvent, "issues"],
    [/^\/requests$/, viewRequests, "requests"],
    [/^\/replays$/, viewReplays, "replays"],
    [/^\/replays\/(.+)$/, viewReplay, "replays"],
    [/^\/logs$/, viewLogs, "logs"],
    [/^\/performance$/, viewPerformance, "performance"],
    [/^\/transactions\/([^/]+)$/, viewTransaction, "performance"],
    [/^\/ai$/, viewAI, "ai"],
    [/^\/crons$/, viewCrons, "crons"],
    [/^\/crons\/(.+)$/, viewCron, "crons"],
    [/^\/setup$/, viewSetup, "setup"],
  ];

  let currentView = null;

  function parseHash() {
    const raw = location.hash.replace(/^#/, "");
    const qi = raw.indexOf("?");
    const path = qi >= 0 ? raw.slice(0, qi) : raw;
    const query = new URLSearchParams(qi >= 0 ? raw.slice(qi + 1) : "");
    return { path: path || "/issues", query: query };
  }

  /** Update the hash query without re-rendering (filters stay shareable). */
  function replaceQuery(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
    }
    const qs = q.toString();
    history.replaceState(null, "", "#" + path + (qs ? "?" + qs : ""));
  }

  async function route() {
    if (currentView) currentView.dispose();
    const ctx = new ViewContext();
    currentView = ctx;
    const { path, query } = parseHash();
    let match = null;
    let handler = viewNotFound;
    let navName = "";
    for (const [re, view, name] of ROUTES) {
      match = path.match(re);
      if (match) {
        handler = view;
        navName = name;
        break;
      }
    }
    if (!getKey() && handler !== viewSetup) {
      // No key yet: show setup, and make the hash say so, so "#/issues" links fire later.
      handler = viewSetup;
      navName = "setup";
      match = null;
      history.replaceState(null, "", "#/setup");
    }
    highlightNav(navName);
    const main = clear($("#main"));
    main.dataset.view = navName || "none";
    const args = match ? match.slice(1).map(safeDecode) : [];
    try {
      if (handler !== viewSetup) await loadProject();
      if (ctx.dead) return;
      await handler(ctx, main, query, ...args);
    } catch (e) {
      if (!ctx.dead) main.appendChild(errorBox(e));
    }
  }

  function safeDecode(part) {
    try {
      return decodeURIComponent(part);
    } catch (e) {
      return part;
    }
  }

  function highlightNav(name) {
    for (const a of document.querySelectorAll("[data-view]")) {
      a.classList.toggle("active", a.dataset.view === name);
    }
  }

  function go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  }

  function viewNotFound(ctx, root) {
    root.appendChild(h("div", { class: "empty" }, "Nothing here. ", h("a", { href: "#/issues" }, "Back to issues")));
  }

  // ==========================================================================
  // Shared widgets: page header, tables, cards, badges, filters, charts
  // ==========================================================================

  function pageHeader(title, subtitle, extra) {
    return h("div", { class: "page-head" },
      h("div", { class: "page-titles" },
        h("h1", { class: "page-title", testid: "page-title" }, title),
        subtitle ? h("div", { class: "page-sub" }, subtitle) : null),
      extra ? h("div", { class: "page-actions" }, extra) : null);
  }

  function errorBox(e) {
    const box = h("div", { class: "error-box", testid: "error-box" }, "Could not load: " + (e && e.message ? e.message : String(e)));
    if (e && (e.status === 401 || e.status === 403)) {
      box.appendChild(h("div", null, h("a", { href: "#/setup" }, "Enter a valid project key")));
    }
    return box;
  }

  function emptyRow(colspan, text, testid) {
    return h("tr", { class: "empty-row", testid: testid || "empty" }, h("td", { colspan: colspan }, text));
  }

  /** A <table> with a header row; returns {table, tbody}. */
  function table(columns, cls, testid) {
    const tbody = h("tbody");
    const tbl = h("table", { class: "table " + (cls || ""), testid: testid },
      h("thead", null, h("tr", null, columns.map((c) => {
        const th = h("th", null, typeof c === "string" ? c : c.label);
        if (c.cls) th.className = c.cls;
        return th;
      }))),
      tbody);
    return { table: tbl, tbody: tbody };
  }

  function card(label, value, testid, hint) {
    return h("div", { class: "stat-card" },
      h("div", { class: "stat-label" }, label),
      h("div", { class: "stat-value", testid: testid }, value),
      hint ? h("div", { class: "stat-hint" }, hint) : null);
  }

  function section(title, body, testid, extra) {
    return h("section", { class: "panel", testid: testid },
      h("div", { class: "panel-head" }, h("h2", null, title), extra || null),
      h("div", { class: "panel-body" }, body));
  }

  const LEVEL_CLASSES = { fatal: "fatal", critical: "fatal", error: "error", warning: "warning", warn: "warning", info: "info", debug: "debug", log: "info", notice: "info" };

  function levelBadge(level) {
    const key = String(level || "").toLowerCase();
    return h("span", { class: "badge level level-" + (LEVEL_CLASSES[key] || "other"), testid: "level-badge" }, level || "unknown");
  }

  function statusBadge(status, testid) {
    const key = String(status || "").toLowerCase().replace(/[^a-z0-9]/g, "");
    return h("span", { class: "badge status status-" + (key || "unknown"), testid: testid || "status-badge" }, status || "unknown");
  }

  function httpStatusBadge(code) {
    const n = Number(code);
    const cls = n >= 500 ? "s5" : n >= 400 ? "s4" : n >= 300 ? "s3" : n >= 200 ? "s2" : "s0";
    return h("span", { class: "badge http " + cls }, code == null ? "—" : String(code));
  }

  function newBadge(kind) {
    return h("span", { class: "badge badge-new", testid: "new-badge" }, kind || "new");
  }

  /** Simple filter bar: fields = [{name, label, type: select|text, options}] */
  function filterBar(fields, values, onChange, testid) {
    const form = h("form", { class: "filters", testid: testid || "filters", autocomplete: "off" });
    const inputs = {};
    for (const f of fields) {
      let input;
      if (f.type === "select") {
        input = h("select", { name: f.name, testid: "filter-" + f.name, "aria-label": f.label },
          f.options.map(([value, label]) => {
            const opt = h("option", { value: value }, label);
            if (String(values[f.name] || "") === value) opt.selected = true;
            return opt;
          }));
        input.addEventListener("change", () => form.requestSubmit());
      } else {
        input = h("input", { type: "search", name: f.name, placeholder: f.label, testid: "filter-" + f.name, "aria-label": f.label, value: values[f.name] || "" });
      }
      inputs[f.name] = input;
      form.appendChild(h("label", { class: "filter" }, h("span", { class: "filter-label" }, f.short || f.label), input));
    }
    form.appendChild(h("button", { type: "submit", class: "btn", testid: "filter-apply" }, "Apply"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const next = {};
      for (const [name, input] of Object.entries(inputs)) next[name] = input.value.trim();
      onChange(next);
    });
    return form;
  }

  /** A filter bar whose values live in the URL (#path?...) and reload the view when applied. */
  function urlFilterBar(path, fields, filters, reload, testid) {
    return filterBar(fields, filters, (next) => {
      Object.assign(filters, next);
      replaceQuery(path, filters);
      reload().catch((e) => flash(e.message));
    }, testid);
  }

  /**
   * A table that pages by cursor with a "Load more" button under it.
   * opts: columns, cls, testid, moreTestid, limit (50),
   *   fetch({cursor, limit}) -> the API's answer (with nextCursor),
   *   items(data) -> the rows' items, row(item) -> <tr> (appended in order),
   *   onPage(data, reset) -> after each page (a view that places rows itself
   *     gives no row and places them here),
   *   empty: text shown in the body when it has no rows, emptyTestid.
   * Returns {table, tbody, more, elements: [table-wrap, more], cursor, load(reset)}.
   */
  function pagedTable(ctx, opts) {
    const { table: tbl, tbody } = table(opts.columns, opts.cls, opts.testid);
    const pager = { table: tbl, tbody: tbody, cursor: null };
    const more = h("button", { type: "button", class: "btn btn-more", testid: opts.moreTestid || "load-more", hidden: true }, "Load more");
    more.addEventListener("click", async () => {
      more.disabled = true;
      more.textContent = "Loading…";
      try {
        await pager.load(false);
      } catch (e) {
        flash(e.message);
      } finally {
        more.disabled = false;
        more.textContent = "Load more";
      }
    });
    pager.more = more;
    pager.elements = [h("div", { class: "table-wrap" }, tbl), more];
    pager.load = async (reset) => {
      const data = await opts.fetch({ cursor: reset ? null : pager.cursor, limit: opts.limit || 50 });
      if (ctx.dead) return;
      if (reset) clear(tbody);
      pager.cursor = data.nextCursor || null;
      more.hidden = !pager.cursor;
      if (opts.row) for (const item of opts.items(data) || []) tbody.appendChild(opts.row(item));
      if (opts.onPage) opts.onPage(data, reset);
      if (!tbody.children.length && opts.empty) tbody.appendChild(emptyRow(opts.columns.length, opts.empty, opts.emptyTestid));
    };
    return pager;
  }

  /** Clicking the row (outside its own links and buttons) opens target: a "#/..." hash or a function. */
  function clickableRow(tr, target) {
    tr.classList.add("clickable");
    tr.addEventListener("click", (ev) => {
      if (ev.target.closest("a, button, input, select, label")) return;
      if (typeof target === "function") target();
      else go(target);
    });
    return tr;
  }

  function kvTable(obj, testid) {
    const entries = Object.entries(obj || {});
    if (!entries.length) return h("div", { class: "muted" }, "None");
    return h("table", { class: "kv", testid: testid },
      h("tbody", null, entries.map(([k, v]) =>
        h("tr", null, h("th", null, h("span", { class: "kv-key" }, k)), h("td", { class: "mono wrap" }, valueText(v))))));
  }

  function liveIndicator() {
    return h("span", { class: "live", id: "live-indicator", testid: "live-indicator", title: "Updates every 2 seconds" },
      h("span", { class: "live-dot" }), h("span", { class: "live-text" }, "Live"));
  }

  function setLiveStatus(ok, message) {
    const el = $("#live-indicator");
    if (!el) return;
    el.classList.toggle("live-error", !ok);
    el.querySelector(".live-text").textContent = ok ? "Live" : "Offline";
    el.title = ok ? "Updated " + fmtClock(new Date().toISOString()) : "Polling failed: " + (message || "");
  }

  /** Copy text to the clipboard with a fallback for non-secure contexts. */
  function copyButton(getText, testid) {
    const btn = h("button", { type: "button", class: "btn btn-small btn-copy", testid: testid }, "Copy");
    btn.addEventListener("click", async () => {
      const text = getText();
      let ok = false;
      try {
        await navigator.clipboard.writeText(text);
        ok = true;
      } catch (e) {
        const area = h("textarea", { readonly: true });
        area.value = text;
        document.body.appendChild(area);
        area.select();
        try { ok = document.execCommand("copy"); } catch (e2) { ok = false; }
        area.remove();
      }
      btn.textContent = ok ? "Copied" : "Select & copy";
      setTimeout(() => { btn.textContent = "Copy"; }, 1500);
    });
    return btn;
  }

  // ----- SVG charts ---------------------------------------------------------

  /** Tiny 24-bar sparkline (issue list). */
  function sparkline(values, width, height) {
    const vals = Array.isArray(values) && values.length ? values.map((v) => Number(v) || 0) : new Array(24).fill(0);
    const w = width || 96;
    const hgt = height || 24;
    const max = Math.max(1, ...vals);
    const bw = w / vals.length;
    const svg = s("svg", { class: "sparkline", width: w, height: hgt, viewBox: "0 0 " + w + " " + hgt, role: "img", "aria-label": "Events in the last 24 hours", testid: "sparkline" });
    vals.forEach((v, i) => {
      const bh = v > 0 ? Math.max(2, (v / max) * (hgt - 2)) : 1;
      const hoursAgo = vals.length - 1 - i;
      svg.appendChild(s("rect", {
        class: v > 0 ? "spark-bar" : "spark-zero",
        x: (i * bw + 0.5).toFixed(2), y: (hgt - bh).toFixed(2),
        width: Math.max(1, bw - 1).toFixed(2), height: bh.toFixed(2),
      }, s("title", { text: fmtNum(v) + " events, " + (hoursAgo === 0 ? "this hour" : hoursAgo + "h ago") })));
    });
    return svg;
  }

  /**
   * Bar chart (optionally stacked).
   * buckets: [{label, values: [n per series], tip}] ; series: [{name, cls}]
   */
  function barChart(buckets, series, opts) {
    opts = opts || {};
    const W = opts.width || 720;
    const H = opts.height || 180;
    const padL = 56, padR = 8, padT = 10, padB = 26;
    const plotW = W - padL - padR;
    const plotH = H - padT - padB;
    const totals = buckets.map((b) => b.values.reduce((a, v) => a + (Number(v) || 0), 0));
    const max = niceMax(Math.max(...totals, 0), opts.integer);
    const fmt = opts.format || fmtCompact;
    const svg = s("svg", { class: "chart " + (opts.cls || ""), viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": opts.label || "chart", testid: opts.testid });
    // grid lines and y labels
    for (let i = 0; i <= 4; i++) {
      const y = padT + plotH - (plotH * i) / 4;
      svg.appendChild(s("line", { class: "grid", x1: padL, x2: W - padR, y1: y.toFixed(1), y2: y.toFixed(1) }));
      svg.appendChild(s("text", { class: "axis", x: padL - 6, y: (y + 4).toFixed(1), "text-anchor": "end", text: fmt((max * i) / 4) }));
    }
    const n = Math.max(1, buckets.length);
    const slot = plotW / n;
    const bw = Math.max(1, slot * 0.78);
    const labelEvery = Math.max(1, Math.ceil(n / (opts.maxLabels || 8)));
    buckets.forEach((b, i) => {
      const x = padL + i * slot + (slot - bw) / 2;
      let yTop = padT + plotH;
      const g = s("g", { class: "bar-group" });
      b.values.forEach((v, si) => {
        const val = Number(v) || 0;
        if (val <= 0) return;
        const bh = Math.max(1, (val / max) * plotH);
        yTop -= bh;
        g.appendChild(s("rect", { class: "bar " + ((series[si] && series[si].cls) || "s0"), x: x.toFixed(2), y: yTop.toFixed(2), width: bw.toFixed(2), height: bh.toFixed(2) }));
      });
      // hover target spanning the full column, with a tooltip
      const tip = b.tip || (b.label + ": " + b.values.map((v, si) => (series[si] ? series[si].name + " " : "") + fmt(v)).join(", "));
      g.appendChild(s("rect", { class: "bar-hit", x: (padL + i * slot).toFixed(2), y: padT, width: slot.toFixed(2), height: plotH }, s("title", { text: tip })));
      svg.appendChild(g);
      if (i % labelEvery === 0) {
        svg.appendChild(s("text", { class: "axis", x: (padL + i * slot + slot / 2).toFixed(1), y: H - 8, "text-anchor": "middle", text: truncate(b.label, 14) }));
      }
    });
    svg.appendChild(s("line", { class: "axis-line", x1: padL, x2: W - padR, y1: padT + plotH, y2: padT + plotH }));
    return svg;
  }

  /** Round a chart maximum up so the 4 grid lines get tidy labels (integers for counts). */
  function niceMax(value, integer) {
    if (!(value > 0)) return integer ? 4 : 1;
    const exp = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 1.2, 1.6, 2, 2.4, 3, 4, 6, 8, 10]) {
      const candidate = step * exp;
      if (candidate >= value && (!integer || (candidate >= 4 && Number.isInteger(candidate / 4)))) return candidate;
    }
    return integer ? Math.max(4, Math.ceil(value / 4) * 4) : 10 * exp;
  }

  function legend(series) {
    return h("div", { class: "legend" }, series.map((se) =>
      h("span", { class: "legend-item" }, h("span", { class: "swatch " + se.cls }), se.name)));
  }

  /** Horizontal bar used in breakdown lists; width set through CSSOM (CSP-safe). */
  function meter(fraction, cls) {
    const fill = h("span", { class: "meter-fill " + (cls || "") });
    fill.style.width = Math.max(0, Math.min(100, fraction * 100)).toFixed(1) + "%";
    return h("span", { class: "meter" }, fill);
  }

  // ==========================================================================
  // View: Issues (live list)
  // ==========================================================================

  const ISSUE_SORTS = {
    lastSeen: (a, b) => cmpDesc(a.lastSeen, b.lastSeen) || b.id - a.id,
    count: (a, b) => (Number(b.count) || 0) - (Number(a.count) || 0) || cmpDesc(a.lastSeen, b.lastSeen),
    firstSeen: (a, b) => cmpDesc(a.firstSeen, b.firstSeen) || b.id - a.id,
  };

  function cmpDesc(a, b) {
    const ta = toDate(a) ? toDate(a).getTime() : 0;
    const tb = toDate(b) ? toDate(b).getTime() : 0;
    return tb - ta;
  }

  async function viewIssues(ctx, root, query) {
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

  function issueRow(issue, mark) {
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

  // ==========================================================================
  // View: Issue detail
  // ==========================================================================

  async function viewIssue(ctx, root, query, issueId) {
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

  function releaseList(issue) {
    const releases = issue.releases || (issue.lastRelease ? [issue.lastRelease] : []);
    if (!releases.length) return "—";
    return h("span", { class: "chips" }, releases.slice(0, 8).map((r) => h("span", { class: "chip chip-release", testid: "release" }, r)),
      releases.length > 8 ? h("span", { class: "muted" }, " +" + (releases.length - 8)) : null);
  }

  function issueHeader(issue, setStatus) {
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

  function hourChart(hist) {
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
  async function issueEvents(ctx, box, eventBox, issueId) {
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

  function eventSummaryRow(ev, onSelect) {
    return clickableRow(h("tr", { class: "event-row", testid: "event-row", data: { eventId: ev.id } },
      h("td", null, h("a", { href: "#/events/" + encodeURIComponent(ev.id), class: "mono", testid: "event-link" }, truncate(ev.eventId || ev.id, 12))),
      h("td", { class: "wrap" }, truncate(ev.message || "", 200)),
      h("td", null, levelBadge(ev.level)),
      h("td", null, ev.environment || "—"),
      h("td", null, ev.release || "—"),
      h("td", null, timeEl(ev.timestamp))), onSelect);
  }

  // ==========================================================================
  // View: Event detail (and the event renderer the issue page reuses)
  // ==========================================================================

  async function viewEvent(ctx, root, query, eventId) {
    const data = await api("/api/v1/events/" + encodeURIComponent(eventId));
    if (ctx.dead) return;
    const ev = data.event;
    root.appendChild(h("div", { class: "crumbs" },
      h("a", { href: "#/issues" }, "Issues"), " / ",
      ev.issueId != null ? h("a", { href: "#/issues/" + encodeURIComponent(ev.issueId), testid: "event-issue-link" }, "Issue #" + ev.issueId) : "event",
      " / ", h("span", { class: "mono" }, truncate(ev.eventId || ev.id, 16))));
    root.appendChild(renderEvent(ev, { rawOpen: true, title: true }));
  }

  function eventTitle(ev) {
    const exc = Array.isArray(ev.exception) && ev.exception.length ? ev.exception[ev.exception.length - 1] : null;
    if (exc) return (exc.type || "Error") + (exc.value ? ": " + exc.value : "");
    return ev.message || "(no message)";
  }

  function renderEvent(ev, opts) {
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

  function eventMeta(ev) {
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
  function exceptionChain(exceptions) {
    const box = h("div", { class: "exception-chain", testid: "exception-chain" });
    const ordered = exceptions.slice().reverse();
    ordered.forEach((exc, i) => {
      if (i > 0) box.appendChild(h("div", { class: "chain-sep" }, "Caused by / raised while handling"));
      box.appendChild(exceptionBlock(exc, i === 0));
    });
    return box;
  }

  function frameList(frames) {
    const newestFirst = frames.slice().reverse();
    const hasInApp = frames.some((f) => f && f.inApp);
    const list = h("ol", { class: "frames", testid: "stack-frames" });
    newestFirst.forEach((f, i) => {
      const expand = f.inApp || (!hasInApp && i === 0);
      list.appendChild(frameItem(f || {}, expand));
    });
    return list;
  }

  function exceptionBlock(exc, isRaised) {
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

  function frameItem(f, expanded) {
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

  function frameDetail(f) {
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
  function frameToggle(scope) {
    const btn = h("button", { type: "button", class: "btn btn-small", testid: "toggle-system-frames" }, "In-app only");
    btn.addEventListener("click", () => {
      const on = scope.classList.toggle("hide-system");
      btn.textContent = on ? "Full stack" : "In-app only";
    });
    return btn;
  }

  function breadcrumbs(crumbs) {
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

  function tagList(tags) {
    return h("div", { class: "tags" }, Object.entries(tags).map(([k, v]) =>
      h("span", { class: "tag", testid: "tag" }, h("span", { class: "tag-key" }, k), h("span", { class: "tag-value" }, valueText(v)))));
  }

  function requestInfo(req) {
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

  function contextsInfo(contexts) {
    return h("div", { class: "contexts" }, Object.entries(contexts).map(([name, value]) =>
      h("div", { class: "context-block" }, h("h3", null, name),
        value && typeof value === "object" && !Array.isArray(value) ? kvTable(value) : h("div", { class: "mono" }, valueText(value)))));
  }

  // ==========================================================================
  // View: HTTP requests
  // ==========================================================================

  async function viewRequests(ctx, root, query) {
    const filters = {
      direction: query.get("direction") || "", method: query.get("method") || "",
      host: query.get("host") || "", path: query.get("path") || "",
      status: query.get("status") || "", hours: query.get("hours") || "24",
    };
    const statsBox = h("div", { testid: "request-stats" });
    const rows = pagedTable(ctx, {
      columns: ["Time", "Dir", "Method", "Host", "Path", "Status", { label: "Duration", cls: "num" }, { label: "Req", cls: "num" }, { label: "Resp", cls: "num" }, "Trace", "User"],
      cls: "requests-table", testid: "requests-table", moreTestid: "requests-load-more",
      fetch: (page) => api("/api/v1/http-requests", params(page)),
      items: (data) => data.requests, row: requestRow, empty: "No requests recorded.",
    });

    root.appendChild(pageHeader("HTTP requests", "Inbound and outbound request telemetry"));
    root.appendChild(urlFilterBar("/requests", [
      { name: "direction", label: "Direction", type: "select", options: [["", "Both directions"], ["inbound", "Inbound"], ["outbound", "Outbound"]] },
      { name: "method", label: "Method", type: "select", options: [["", "Any method"], ["GET", "GET"], ["POST", "POST"], ["PUT", "PUT"], ["PATCH", "PATCH"], ["DELETE", "DELETE"], ["HEAD", "HEAD"], ["OPTIONS", "OPTIONS"]] },
      { name: "host", label: "Host" },
      { name: "path", label: "Path contains", short: "Path" },
      { name: "status", label: "Status (2xx, 404…)", short: "Status" },
      { name: "hours", label: "Stats window", short: "Window", type: "select", options: [["1", "1 hour"], ["6", "6 hours"], ["24", "24 hours"], ["168", "7 days"], ["720", "30 days"]] },
    ], filters, reload, "request-filters"));
    root.appendChild(statsBox);
    root.appendChild(section("Requests", rows.elements, "requests-panel"));

    function params(extra) {
      const { hours, ...rest } = filters;
      return Object.assign(rest, extra);
    }

    async function loadStats() {
      const stats = await api("/api/v1/http-requests/stats", params({ hours: filters.hours }));
      if (ctx.dead) return;
      clear(statsBox).appendChild(requestStats(stats, filters.hours));
    }

    async function reload() {
      await Promise.all([loadStats(), rows.load(true)]);
    }

    await reload();
  }

  function requestStats(stats, hours) {
    const windowText = Number(hours) >= 48 ? Math.round(Number(hours) / 24) + " days" : hours + " h";
    const cards = h("div", { class: "stat-grid" },
      card("Requests (" + windowText + ")", fmtNum(stats.count), "req-count"),
      card("p50", fmtMs(stats.p50), "req-p50"),
      card("p95", fmtMs(stats.p95), "req-p95"),
      card("p99", fmtMs(stats.p99), "req-p99"));
    const codes = Object.entries(stats.statusCodes || {}).sort((a, b) => b[1] - a[1]);
    const total = codes.reduce((a, [, n]) => a + (Number(n) || 0), 0) || 1;
    const breakdown = h("div", { class: "breakdown", testid: "status-breakdown" },
      codes.length ? codes.map(([code, n]) => h("div", { class: "breakdown-row", testid: "status-code-row", data: { code: code } },
        httpStatusBadge(code), meter(n / total, "http-" + String(code).charAt(0) + "xx"), h("span", { class: "breakdown-num" }, fmtNum(n) + " (" + Math.round((n / total) * 100) + "%)")))
        : h("div", { class: "muted" }, "No requests in this window."));
    const classes = h("div", { class: "chips" }, Object.entries(stats.statusClasses || {}).map(([k, n]) =>
      h("span", { class: "chip chip-" + k, testid: "status-class" }, k + ": " + fmtNum(n))));
    const hist = Array.isArray(stats.histogram) ? stats.histogram : [];
    const histChart = hist.length ? barChart(hist.map((b, i) => ({
      label: b.le == null || b.le === "inf" || b.le === "+Inf" ? "> " + fmtMs(hist[i - 1] ? hist[i - 1].le : 0) : "≤ " + fmtMs(b.le),
      values: [b.count],
    })), [{ name: "requests", cls: "s0" }], { height: 200, integer: true, label: "Latency histogram", testid: "latency-histogram", maxLabels: 12 }) : h("div", { class: "muted" }, "No latency data.");
    const hosts = table(["Host", { label: "Requests", cls: "num" }, { label: "p95", cls: "num" }], "hosts-table", "hosts-table");
    for (const row of stats.byHost || []) {
      hosts.tbody.appendChild(h("tr", { testid: "host-row" }, h("td", { class: "mono" }, row.host || "—"), h("td", { class: "num" }, fmtNum(row.count)), h("td", { class: "num" }, fmtMs(row.p95))));
    }
    if (!hosts.tbody.children.length) hosts.tbody.appendChild(emptyRow(3, "No hosts."));
    return h("div", null, cards,
      h("div", { class: "grid-2" },
        section("Latency distribution", histChart, "latency-panel"),
        section("Status codes", [classes, breakdown], "status-panel")),
      section("By host", h("div", { class: "table-wrap" }, hosts.table), "hosts-panel"));
  }

  function requestRow(r) {
    return h("tr", { testid: "request-row", data: { requestId: r.id } },
      h("td", { class: "nowrap" }, timeEl(r.timestamp, "abs")),
      h("td", null, r.direction ? h("span", { class: "chip" }, r.direction) : "—"),
      h("td", null, h("span", { class: "badge method" }, r.method || "—")),
      h("td", { class: "mono", testid: "request-host" }, r.host || ""),
      h("td", { class: "mono wrap", testid: "request-path" }, r.path || ""),
      h("td", null, httpStatusBadge(r.statusCode)),
      h("td", { class: "num" }, fmtMs(r.durationMs)),
      h("td", { class: "num" }, fmtBytes(r.requestSize)),
      h("td", { class: "num" }, fmtBytes(r.responseSize)),
      h("td", { class: "mono small" }, truncate(r.traceId || "", 16)),
      h("td", { class: "mono small" }, r.userId || ""));
  }

  // ==========================================================================
  // View: Replays (session list and one session's timeline)
  // ==========================================================================

  async function viewReplays(ctx, root) {
    const sessions = pagedTable(ctx, {
      columns: ["Session", { label: "Events", cls: "num" }, { label: "Duration", cls: "num" }, "Pages", "First seen", "Last seen"],
      cls: "replays-table", testid: "replays-table", moreTestid: "replays-load-more",
      fetch: (page) => api("/api/v1/replays", page),
      items: (data) => data.sessions, row: replayRow, empty: "No replay sessions yet.",
    });
    root.appendChild(pageHeader("Session replays", "Recorded user sessions"));
    root.append(...sessions.elements);
    await sessions.load(true);
  }

  function replayRow(sess) {
    const href = "#/replays/" + encodeURIComponent(sess.sessionId);
    const first = toDate(sess.firstSeen);
    const last = toDate(sess.lastSeen);
    const urls = Array.isArray(sess.urls) ? sess.urls : [];
    return clickableRow(h("tr", { testid: "replay-row", data: { sessionId: sess.sessionId } },
      h("td", null, h("a", { href: href, class: "mono", testid: "replay-link" }, sess.sessionId || "(no id)"),
        sess.fingerprint && sess.fingerprint !== sess.sessionId ? h("div", { class: "muted small mono" }, sess.fingerprint) : null),
      h("td", { class: "num" }, fmtNum(sess.events)),
      h("td", { class: "num" }, first && last ? fmtMs(last - first) : "—"),
      h("td", { class: "wrap" }, urls.slice(0, 3).map((u) => h("div", { class: "mono small", testid: "replay-url" }, truncate(u, 90))),
        urls.length > 3 ? h("div", { class: "muted small" }, "+" + (urls.length - 3) + " more") : null),
      h("td", null, timeEl(sess.firstSeen)),
      h("td", null, timeEl(sess.lastSeen))), href);
  }

  async function viewReplay(ctx, root, query, sessionId) {
    const data = await api("/api/v1/replays/" + encodeURIComponent(sessionId));
    if (ctx.dead) return;
    const events = (data.events || []).slice().sort((a, b) => eventMillis(a) - eventMillis(b));
    const start = events.length ? eventMillis(events[0]) : 0;
    const end = events.length ? eventMillis(events[events.length - 1]) : 0;
    root.appendChild(h("div", { class: "crumbs" }, h("a", { href: "#/replays" }, "← Replays")));
    root.appendChild(pageHeader("Session " + (data.sessionId || sessionId), events.length + " events over " + fmtMs(end - start)));
    root.appendChild(section("Timeline", replayTimeline(events, start, end), "replay-timeline-panel"));
    root.appendChild(section("Events", replayEventList(events, start), "replay-events-panel"));
  }

  function eventMillis(ev) {
    if (ev.timestampMillis != null && isFinite(Number(ev.timestampMillis))) return Number(ev.timestampMillis);
    const d = toDate(ev.timestamp);
    return d ? d.getTime() : 0;
  }

  const REPLAY_TYPE_CLASS = { navigation: "t-nav", mouse_click: "t-click", click: "t-click", input: "t-input", scroll: "t-scroll", error: "t-error", console: "t-console" };

  function replayTypeClass(type) {
    return REPLAY_TYPE_CLASS[String(type || "").toLowerCase()] || "t-other";
  }

  /** SVG: one lane of event dots, one lane of URL segments. */
  function replayTimeline(events, start, end) {
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

  function urlChanges(events) {
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

  function urlPath(u) {
    try {
      const url = new URL(u);
      return url.pathname + url.search;
    } catch (e) {
      return String(u);
    }
  }

  function replayEventList(events, start) {
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
        h("code", { class: "event-data", testid: "replay-event-data" }, replayData(ev.eventData))));
    }
    if (events.length > MAX) list.appendChild(h("li", { class: "muted" }, (events.length - MAX) + " more events not shown"));
    if (!events.length) list.appendChild(h("li", { class: "muted" }, "No events in this session."));
    return list;
  }

  function replayData(data) {
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

  // ==========================================================================
  // View: Logs (live tail)
  // ==========================================================================

  async function viewLogs(ctx, root, query) {
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

  function maxId(rows) {
    let max = 0;
    for (const r of rows || []) if (Number(r.id) > max) max = Number(r.id);
    return max;
  }

  function logRow(log, isNew) {
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
      h("td", { class: "mono small" }, truncate(log.traceId || "", 16)));
  }

  // ==========================================================================
  // View: Performance (transactions by name -> list -> span waterfall)
  // ==========================================================================

  async function viewPerformance(ctx, root, query) {
    const name = query.get("name");
    if (name !== null) return transactionList(ctx, root, name);
    const filters = { hours: query.get("hours") || "24" };
    const { table: tbl, tbody } = table([
      { label: "Transaction", cls: "col-issue" }, { label: "Count", cls: "num" }, { label: "Errors", cls: "num" }, { label: "p50", cls: "num" }, { label: "p95", cls: "num" }, { label: "p95 (relative)", cls: "col-graph" }, { label: "Avg", cls: "num" }, "Last seen",
    ], "txn-table", "transactions-table");
    root.appendChild(pageHeader("Performance", "Transactions grouped by name"));
    root.appendChild(urlFilterBar("/performance", [
      { name: "hours", label: "Window", type: "select", options: [["1", "1 hour"], ["24", "24 hours"], ["168", "7 days"], ["720", "30 days"]] },
    ], filters, load, "perf-filters"));
    root.appendChild(h("div", { class: "table-wrap" }, tbl));

    async function load() {
      const data = await api("/api/v1/transactions", { hours: filters.hours });
      if (ctx.dead) return;
      clear(tbody);
      const rows = data.transactions || [];
      const maxP95 = Math.max(1, ...rows.map((r) => Number(r.p95) || 0));
      for (const t of rows) tbody.appendChild(transactionNameRow(t, maxP95));
      if (!rows.length) tbody.appendChild(emptyRow(8, "No transactions in this window."));
    }
    await load();
  }

  function transactionNameRow(t, maxP95) {
    const href = "#/performance?name=" + encodeURIComponent(t.name == null ? "" : t.name);
    const errRate = t.count ? (Number(t.errors) || 0) / Number(t.count) : 0;
    return clickableRow(h("tr", { testid: "txn-name-row", data: { name: t.name } },
      h("td", { class: "col-issue" }, h("a", { href: href, class: "mono", testid: "txn-name-link" }, t.name || "(unnamed)")),
      h("td", { class: "num" }, fmtNum(t.count)),
      h("td", { class: "num" + (t.errors ? " text-error" : "") }, fmtNum(t.errors) + (t.errors ? " (" + (errRate * 100).toFixed(1) + "%)" : "")),
      h("td", { class: "num" }, fmtMs(t.p50)),
      h("td", { class: "num" }, fmtMs(t.p95)),
      h("td", { class: "col-graph" }, meter((Number(t.p95) || 0) / maxP95, "perf")),
      h("td", { class: "num" }, fmtMs(t.avg)),
      h("td", null, timeEl(t.lastSeen))), href);
  }

  async function transactionList(ctx, root, name) {
    const rows = [];
    const list = pagedTable(ctx, {
      columns: ["Time", { label: "Duration", cls: "num" }, { label: "", cls: "col-graph" }, "Status", "Trace"],
      cls: "txn-list", testid: "transaction-list", moreTestid: "txn-load-more",
      fetch: (page) => api("/api/v1/transactions/list", Object.assign({ name: name }, page)),
      items: (data) => data.transactions,
      row: (t) => {
        const row = transactionRow(t);
        rows.push(row);
        return row.tr;
      },
      onPage: () => {
        // duration bars relative to the slowest loaded transaction
        const slowest = Math.max(1, ...rows.map((r) => Number(r.t.durationMs) || 0));
        for (const r of rows) r.fill.style.width = (((Number(r.t.durationMs) || 0) / slowest) * 100).toFixed(1) + "%";
      },
      empty: "No transactions with this name.",
    });
    root.appendChild(h("div", { class: "crumbs" }, h("a", { href: "#/performance" }, "← Performance")));
    root.appendChild(pageHeader(name || "(unnamed)", "Individual transactions, newest first"));
    root.append(...list.elements);
    await list.load(true);
  }

  function transactionRow(t) {
    const href = "#/transactions/" + encodeURIComponent(t.id);
    const bar = meter(0, "perf" + (t.status && t.status !== "ok" ? " failed" : ""));
    const tr = clickableRow(h("tr", { testid: "txn-row", data: { transactionId: t.id } },
      h("td", null, h("a", { href: href, testid: "txn-link" }, fmtDateTime(t.timestamp))),
      h("td", { class: "num" }, fmtMs(t.durationMs)),
      h("td", { class: "col-graph" }, bar),
      h("td", null, statusBadge(t.status || "ok")),
      h("td", { class: "mono small" }, t.traceId || "")), href);
    return { tr: tr, t: t, fill: bar.firstChild };
  }

  async function viewTransaction(ctx, root, query, txnId) {
    const data = await api("/api/v1/transactions/" + encodeURIComponent(txnId));
    if (ctx.dead) return;
    const t = data.transaction;
    root.appendChild(h("div", { class: "crumbs" },
      h("a", { href: "#/performance" }, "Performance"), " / ",
      h("a", { href: "#/performance?name=" + encodeURIComponent(t.name == null ? "" : t.name) }, t.name || "(unnamed)")));
    root.appendChild(pageHeader(t.name || "(unnamed)", null, statusBadge(t.status || "ok", "txn-status")));
    root.appendChild(h("div", { class: "stat-grid" },
      card("Duration", fmtMs(t.durationMs), "txn-duration"),
      card("Spans", fmtNum((t.spans || []).length), "txn-span-count"),
      card("Started", timeEl(t.timestamp, "abs")),
      card("Trace", h("span", { class: "mono small" }, t.traceId || "—")),
      card("Environment", t.environment || "—"),
      card("Release", t.release || "—")));
    root.appendChild(section("Span waterfall", waterfall(t), "waterfall-panel"));
  }

  /** Order spans as a tree (parents before children, siblings by start). */
  function spanTree(spans) {
    const byId = new Map();
    for (const sp of spans) if (sp.spanId != null) byId.set(String(sp.spanId), sp);
    const children = new Map();
    const roots = [];
    for (const sp of spans) {
      const parent = sp.parentSpanId != null ? String(sp.parentSpanId) : null;
      if (parent && byId.has(parent) && parent !== String(sp.spanId)) {
        if (!children.has(parent)) children.set(parent, []);
        children.get(parent).push(sp);
      } else roots.push(sp);
    }
    const byStart = (a, b) => (Number(a.startMs) || 0) - (Number(b.startMs) || 0);
    const out = [];
    const seen = new Set();
    const walk = (sp, depth) => {
      if (seen.has(sp)) return;
      seen.add(sp);
      out.push({ span: sp, depth: depth });
      const kids = (children.get(String(sp.spanId)) || []).slice().sort(byStart);
      for (const k of kids) walk(k, depth + 1);
    };
    for (const r of roots.slice().sort(byStart)) walk(r, 1);
    for (const sp of spans) if (!seen.has(sp)) walk(sp, 1); // cycles
    return out;
  }

  function opClass(op) {
    const o = String(op || "").toLowerCase();
    if (o.startsWith("db")) return "op-db";
    if (o.startsWith("http")) return "op-http";
    if (o.includes("cache") || o.includes("redis")) return "op-cache";
    if (o.includes("render") || o.includes("template") || o.startsWith("ui")) return "op-ui";
    return "op-other";
  }

  function waterfall(t) {
    const spans = Array.isArray(t.spans) ? t.spans : [];
    const rows = spanTree(spans);
    const total = Math.max(1, Number(t.durationMs) || 0,
      ...spans.map((sp) => (Number(sp.startMs) || 0) + (Number(sp.durationMs) || 0)));
    const W = 1000, rowH = 24, labelW = 340, padR = 70, top = 24;
    const H = top + (rows.length + 1) * rowH + 8;
    const x = (ms) => labelW + (ms / total) * (W - labelW - padR);
    const svg = s("svg", { class: "waterfall", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Span waterfall", testid: "span-waterfall" });
    // time ticks
    for (let i = 0; i <= 4; i++) {
      const ms = (total * i) / 4;
      svg.appendChild(s("line", { class: "grid", x1: x(ms).toFixed(1), x2: x(ms).toFixed(1), y1: top - 6, y2: H - 4 }));
      svg.appendChild(s("text", { class: "axis", x: x(ms).toFixed(1), y: 14, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", text: fmtMs(ms) }));
    }
    const addRow = (i, label, depth, start, dur, cls, tip, testid) => {
      const y = top + i * rowH;
      const g = s("g", { class: "wf-row", testid: testid });
      if (i % 2 === 1) g.appendChild(s("rect", { class: "wf-stripe", x: 0, y: y, width: W, height: rowH }));
      g.appendChild(s("text", { class: "wf-label", x: 6 + (depth - 0) * 12, y: y + 16, text: truncate(label, Math.max(10, 46 - depth * 2)) }));
      const bx = x(Math.max(0, start));
      const bw = Math.max(2, x(Math.max(0, start) + Math.max(0, dur)) - bx);
      g.appendChild(s("rect", { class: "wf-bar " + cls, x: bx.toFixed(1), y: y + 5, width: bw.toFixed(1), height: rowH - 10, rx: 2 }));
      g.appendChild(s("text", { class: "wf-dur", x: Math.min(W - 4, bx + bw + 4).toFixed(1), y: y + 16, text: fmtMs(dur) }));
      g.appendChild(s("title", { text: tip }));
      svg.appendChild(g);
    };
    addRow(0, t.name || "transaction", 0, 0, Number(t.durationMs) || 0, "op-root", (t.name || "transaction") + " — " + fmtMs(t.durationMs), "wf-root");
    rows.forEach((r, i) => {
      const sp = r.span;
      const label = (sp.op ? sp.op + " — " : "") + (sp.description || sp.spanId || "span");
      addRow(i + 1, label, r.depth, Number(sp.startMs) || 0, Number(sp.durationMs) || 0,
        opClass(sp.op) + (sp.status && sp.status !== "ok" ? " wf-error" : ""),
        label + " — starts +" + fmtMs(sp.startMs) + ", " + fmtMs(sp.durationMs) + (sp.status ? ", " + sp.status : ""), "span-row");
    });
    const list = table(["Op", "Description", { label: "Start", cls: "num" }, { label: "Duration", cls: "num" }, "Status"], "spans-table", "spans-table");
    for (const r of rows) {
      const sp = r.span;
      list.tbody.appendChild(h("tr", { testid: "span-table-row" },
        h("td", { class: "mono small" }, sp.op || ""),
        h("td", { class: "mono wrap", testid: "span-description" }, sp.description || ""),
        h("td", { class: "num" }, "+" + fmtMs(sp.startMs)),
        h("td", { class: "num" }, fmtMs(sp.durationMs)),
        h("td", null, sp.status || "")));
    }
    if (!rows.length) list.tbody.appendChild(emptyRow(5, "This transaction has no spans."));
    return h("div", null, h("div", { class: "waterfall-wrap" }, svg),
      h("details", { class: "raw" }, h("summary", null, "Span table"), h("div", { class: "table-wrap" }, list.table)));
  }

  // ==========================================================================
  // View: AI generations (cost & tokens)
  // ==========================================================================

  async function viewAI(ctx, root, query) {
    const filters = { days: query.get("days") || "7" };
    const body = h("div", { testid: "ai-body" });
    root.appendChild(pageHeader("AI usage", "LLM generations: cost, tokens and latency"));
    root.appendChild(urlFilterBar("/ai", [
      { name: "days", label: "Window", type: "select", options: [["1", "24 hours"], ["7", "7 days"], ["30", "30 days"], ["90", "90 days"]] },
    ], filters, load, "ai-filters"));
    root.appendChild(body);

    async function load() {
      const data = await api("/api/v1/ai", { days: filters.days });
      if (ctx.dead) return;
      clear(body).appendChild(aiDashboard(data, Number(filters.days)));
    }
    await load();
  }

  /** The API only returns buckets that have data; add the empty hours/days in between. */
  function fillBuckets(rows, days) {
    if (!rows.length) return rows;
    const step = (days <= 2 ? 3600 : 86400) * 1000;
    const byIndex = new Map();
    for (const r of rows) {
      const d = toDate(r.bucket);
      if (d) byIndex.set(Math.floor(d.getTime() / step), r);
    }
    const last = Math.floor(Date.now() / step);
    const first = Math.min(last - Math.max(1, Math.round((days * 86400000) / step)) + 1, ...byIndex.keys());
    const out = [];
    for (let i = first; i <= Math.max(last, ...byIndex.keys()); i++) {
      out.push(byIndex.get(i) || { bucket: new Date(i * step).toISOString(), count: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 });
    }
    return out;
  }

  function aiDashboard(data, days) {
    const totals = data.totals || {};
    const over = fillBuckets(Array.isArray(data.overTime) ? data.overTime : [], days);
    const bucketLabel = (iso) => {
      const d = toDate(iso);
      if (!d) return String(iso);
      return days <= 2 ? pad(d.getHours()) + ":00" : (d.getMonth() + 1) + "/" + d.getDate();
    };
    const costSeries = [{ name: "cost", cls: "s-cost" }];
    const tokenSeries = [{ name: "input tokens", cls: "s-in" }, { name: "output tokens", cls: "s-out" }];
    const costChart = over.length ? barChart(over.map((b) => ({
      label: bucketLabel(b.bucket), values: [b.costUsd],
      tip: fmtDateTime(b.bucket) + " — " + fmtUsd(b.costUsd) + ", " + fmtNum(b.count) + " calls",
    })), costSeries, { format: fmtUsd, testid: "ai-cost-chart", label: "Cost over time" }) : h("div", { class: "muted" }, "No generations in this window.");
    const tokenChart = over.length ? barChart(over.map((b) => ({
      label: bucketLabel(b.bucket), values: [b.inputTokens, b.outputTokens],
      tip: fmtDateTime(b.bucket) + " — in " + fmtNum(b.inputTokens) + ", out " + fmtNum(b.outputTokens),
    })), tokenSeries, { integer: true, testid: "ai-tokens-chart", label: "Tokens over time" }) : h("div", { class: "muted" }, "No generations in this window.");

    const models = table(["Provider", "Model", { label: "Calls", cls: "num" }, { label: "Input tokens", cls: "num" }, { label: "Output tokens", cls: "num" }, { label: "Cost", cls: "num" }, "Share", { label: "p50 latency", cls: "num" }], "ai-models", "ai-models-table");
    const totalCost = Number(totals.costUsd) || (data.byModel || []).reduce((a, m) => a + (Number(m.costUsd) || 0), 0) || 1;
    for (const m of data.byModel || []) {
      models.tbody.appendChild(h("tr", { testid: "ai-model-row" },
        h("td", { testid: "ai-provider" }, m.provider || ""),
        h("td", { class: "mono", testid: "ai-model" }, m.model || ""),
        h("td", { class: "num" }, fmtNum(m.count)),
        h("td", { class: "num" }, fmtNum(m.inputTokens)),
        h("td", { class: "num" }, fmtNum(m.outputTokens)),
        h("td", { class: "num" }, fmtUsd(m.costUsd)),
        h("td", { class: "col-graph" }, meter((Number(m.costUsd) || 0) / totalCost, "cost")),
        h("td", { class: "num" }, fmtMs(m.p50LatencyMs))));
    }
    if (!models.tbody.children.length) models.tbody.appendChild(emptyRow(8, "No models used yet."));

    const recent = table(["Time", "Provider", "Model", { label: "In", cls: "num" }, { label: "Out", cls: "num" }, { label: "Cost", cls: "num" }, { label: "Latency", cls: "num" }, "Status"], "ai-recent", "ai-recent-table");
    for (const r of data.recent || []) {
      recent.tbody.appendChild(h("tr", { testid: "ai-recent-row" },
        h("td", { class: "nowrap" }, timeEl(r.timestamp, "abs")),
        h("td", null, r.provider || ""),
        h("td", { class: "mono" }, r.model || ""),
        h("td", { class: "num" }, fmtNum(r.inputTokens)),
        h("td", { class: "num" }, fmtNum(r.outputTokens)),
        h("td", { class: "num" }, fmtUsd(r.totalCostUsd)),
        h("td", { class: "num" }, fmtMs(r.latencyMs)),
        h("td", null, statusBadge(r.status || "ok"))));
    }
    if (!recent.tbody.children.length) recent.tbody.appendChild(emptyRow(8, "No recent generations."));

    return h("div", null,
      h("div", { class: "stat-grid" },
        card("Total cost", fmtUsd(totals.costUsd), "ai-total-cost"),
        card("Generations", fmtNum(totals.count), "ai-total-count"),
        card("Input tokens", fmtCompact(totals.inputTokens), "ai-total-input"),
        card("Output tokens", fmtCompact(totals.outputTokens), "ai-total-output"),
        card("Errors", fmtNum(totals.errors), "ai-total-errors")),
      h("div", { class: "grid-2" },
        section("Cost over time", [costChart, legend(costSeries)], "ai-cost-panel"),
        section("Tokens over time", [tokenChart, legend(tokenSeries)], "ai-tokens-panel")),
      section("By model", h("div", { class: "table-wrap" }, models.table), "ai-models-panel"),
      section("Recent generations", h("div", { class: "table-wrap" }, recent.table), "ai-recent-panel"));
  }

  // ==========================================================================
  // View: Cron monitors
  // ==========================================================================

  async function viewCrons(ctx, root) {
    const { table: tbl, tbody } = table(["Status", "Monitor", "Schedule", "Grace", "Last ping", "Next expected", "Last result"], "monitors-table", "monitors-table");
    root.appendChild(pageHeader("Cron monitors", "Heartbeats from scheduled jobs", liveIndicator()));
    root.appendChild(h("div", { class: "table-wrap" }, tbl));
    root.appendChild(section("New monitor", monitorForm(() => load()), "monitor-form-panel"));
    root.appendChild(section("Sending heartbeats", heartbeatHelp(), "heartbeat-help"));

    async function load(quiet) {
      const data = await api("/api/v1/monitors", null, { quiet: quiet === true });
      if (ctx.dead) return;
      clear(tbody);
      for (const m of data.monitors || []) tbody.appendChild(monitorRow(m));
      if (!tbody.children.length) tbody.appendChild(emptyRow(7, "No monitors yet. Create one below.", "monitors-empty"));
      setLiveStatus(true);
    }
    await load();
    ctx.poll(() => load(true), 5000);
  }

  function monitorRow(m) {
    const href = "#/crons/" + encodeURIComponent(m.slug);
    return clickableRow(h("tr", { testid: "monitor-row", data: { slug: m.slug, status: m.status } },
      h("td", null, statusBadge(m.status, "monitor-status")),
      h("td", null, h("a", { href: href, testid: "monitor-link" }, m.name || m.slug), h("div", { class: "muted small mono" }, m.slug)),
      h("td", { class: "mono" }, m.schedule == null ? "" : String(m.schedule), m.timezone ? h("div", { class: "muted small" }, m.timezone) : null),
      h("td", null, m.grace == null ? "—" : m.grace + " min"),
      h("td", null, m.lastPing ? timeEl(m.lastPing) : "never"),
      h("td", { testid: "monitor-next" }, m.nextExpected ? timeEl(m.nextExpected) : "—"),
      h("td", null, m.lastStatus ? statusBadge(m.lastStatus) : "—")), href);
  }

  function monitorForm(onCreated) {
    const field = (name, label, placeholder, value) => h("label", { class: "form-field" },
      h("span", null, label), h("input", { name: name, placeholder: placeholder, value: value || "", testid: "monitor-" + name, required: name === "slug" || name === "schedule" ? true : undefined }));
    const error = h("div", { class: "form-error", testid: "monitor-form-error", hidden: true });
    const form = h("form", { class: "form-grid", testid: "monitor-form", autocomplete: "off" },
      field("slug", "Slug", "nightly-backup"),
      field("name", "Name", "Nightly backup"),
      field("schedule", "Schedule (cron)", "0 3 * * *"),
      field("grace", "Grace (minutes)", "5", ""),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary", testid: "monitor-create" }, "Create monitor")),
      error);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const fd = new FormData(form);
      const body = { slug: String(fd.get("slug")).trim(), name: String(fd.get("name")).trim(), schedule: String(fd.get("schedule")).trim() };
      const grace = String(fd.get("grace")).trim();
      if (grace) body.grace = isFinite(Number(grace)) ? Number(grace) : grace;
      if (!body.name) body.name = body.slug;
      error.hidden = true;
      try {
        await api("/api/v1/monitors", null, { method: "POST", body: body });
        form.reset();
        flash("Monitor created", "ok");
        await onCreated();
      } catch (e) {
        error.textContent = "Could not create monitor: " + e.message;
        error.hidden = false;
      }
    });
    return form;
  }

  function heartbeatHelp() {
    const snippet = 'curl -s -X POST "' + location.origin + '/ingest/v1/heartbeat" \\\n' +
      '  -H "Content-Type: application/json" \\\n' +
      '  -H "X-SeeStack-Key: ' + getKey() + '" \\\n' +
      '  -d \'{"slug": "nightly-backup", "status": "success", "durationMs": 1200}\'';
    return snippetBlock("Heartbeat (run at the end of each job)", snippet, "snippet-heartbeat");
  }

  async function viewCron(ctx, root, query, slug) {
    const box = h("div");
    root.appendChild(h("div", { class: "crumbs" }, h("a", { href: "#/crons" }, "← Cron monitors")));
    root.appendChild(box);

    async function load(quiet) {
      const data = await api("/api/v1/monitors/" + encodeURIComponent(slug), null, { quiet: quiet === true });
      if (ctx.dead) return;
      clear(box).appendChild(monitorDetail(data.monitor, data.history || []));
    }
    await load();
    ctx.poll(() => load(true), 5000);
  }

  function monitorDetail(m, history) {
    const del = h("button", { type: "button", class: "btn btn-danger", testid: "monitor-delete" }, "Delete");
    del.addEventListener("click", async () => {
      if (!window.confirm("Delete monitor " + m.slug + "?")) return;
      try {
        await api("/api/v1/monitors/" + encodeURIComponent(m.slug), null, { method: "DELETE" });
        go("#/crons");
      } catch (e) {
        flash(e.message);
      }
    });
    const hist = table(["Time", "Status", { label: "Duration", cls: "num" }, "Message"], "history-table", "monitor-history");
    for (const item of history) {
      hist.tbody.appendChild(h("tr", { testid: "monitor-history-row" },
        h("td", { class: "nowrap" }, timeEl(item.timestamp, "abs")),
        h("td", null, statusBadge(item.status)),
        h("td", { class: "num" }, fmtMs(item.durationMs)),
        h("td", { class: "wrap" }, item.message == null ? "" : valueText(item.message))));
    }
    if (!history.length) hist.tbody.appendChild(emptyRow(4, "No check-ins yet."));
    return h("div", null,
      pageHeader(m.name || m.slug, h("span", { class: "mono" }, m.slug), [statusBadge(m.status, "monitor-status"), del]),
      h("div", { class: "stat-grid" },
        card("Schedule", h("span", { class: "mono" }, m.schedule == null ? "—" : String(m.schedule)), "monitor-schedule", m.timezone || null),
        card("Grace", m.grace == null ? "—" : m.grace + " min"),
        card("Max runtime", m.maxRuntime == null ? "—" : String(m.maxRuntime)),
        card("Last ping", m.lastPing ? timeEl(m.lastPing) : "never", null, m.lastPing ? fmtDateTime(m.lastPing) : null),
        card("Next expected", m.nextExpected ? timeEl(m.nextExpected) : "—", "monitor-next-expected", m.nextExpected ? fmtDateTime(m.nextExpected) : null),
        card("Created", timeEl(m.created))),
      section("History", h("div", { class: "table-wrap" }, hist.table), "monitor-history-panel"));
  }

  // ==========================================================================
  // View: Setup (enter a key, create a project, integration snippets)
  // ==========================================================================

  async function viewSetup(ctx, root, query) {
    const key = getKey();
    root.appendChild(pageHeader("Project & setup", key ? "Connect your apps to this project, or switch project" : "Paste a project key or create a new project"));
    const current = h("div", { testid: "current-project" });
    root.appendChild(current);
    root.appendChild(h("div", { class: "grid-2" },
      section("Use an existing project", keyForm(), "key-panel"),
      section("Create a project", createForm(current), "create-panel")));
    if (key) {
      const project = await loadProject();
      if (ctx.dead) return;
      if (project) current.appendChild(projectInfo(project, false));
    }
  }

  function keyForm() {
    const input = h("input", { name: "key", id: "key-input", testid: "key-input", placeholder: "32-character project key", autocomplete: "off", spellcheck: "false", value: getKey() });
    const error = h("div", { class: "form-error", testid: "key-error", hidden: true });
    const form = h("form", { class: "stack-form", testid: "key-form" },
      h("label", { class: "form-field" }, h("span", null, "Project key"), input),
      h("div", { class: "form-actions" },
        h("button", { type: "submit", class: "btn btn-primary", testid: "key-submit" }, "Open project"),
        getKey() ? h("button", { type: "button", class: "btn", testid: "key-forget", on: { click: () => { setKey(""); go("#/setup"); } } }, "Forget key") : null),
      error);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const key = input.value.trim();
      error.hidden = true;
      if (!key) return;
      try {
        const data = await api("/api/v1/project", { key: key }, { noKey: true });
        setKey(key);
        state.project = data.project || null;
        updateProjectName();
        go("#/issues");
      } catch (e) {
        error.textContent = e.status === 401 || e.status === 404 || e.status === 403 ? "That key does not match a project." : "Could not check the key: " + e.message;
        error.hidden = false;
      }
    });
    return form;
  }

  function createForm(target) {
    const name = h("input", { name: "name", testid: "project-name-input", placeholder: "my-app", autocomplete: "off", required: true });
    const token = h("input", { name: "token", type: "password", testid: "admin-token-input", placeholder: "only if the server requires one", autocomplete: "off" });
    const error = h("div", { class: "form-error", testid: "create-error", hidden: true });
    const form = h("form", { class: "stack-form", testid: "create-form" },
      h("label", { class: "form-field" }, h("span", null, "Project name"), name),
      h("label", { class: "form-field" }, h("span", null, "Admin token (optional)"), token),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary", testid: "create-submit" }, "Create project")),
      error);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      const headers = token.value.trim() ? { Authorization: "Bearer " + token.value.trim() } : {};
      try {
        const data = await api("/api/v1/projects", null, { method: "POST", body: { name: name.value.trim() }, noKey: true, headers: headers });
        const project = data.project;
        setKey(project.key);
        state.project = project;
        updateProjectName();
        clear(target).appendChild(projectInfo(project, true));
        target.scrollIntoView({ block: "start" });
        form.reset();
      } catch (e) {
        error.textContent = "Could not create the project: " + e.message + (e.status === 401 || e.status === 403 ? " (an admin token is required)" : "");
        error.hidden = false;
      }
    });
    return form;
  }

  /** DSN for sentry-sdk, pointing at the origin this page was loaded from. */
  function dsnFor(project) {
    const origin = new URL(location.origin);
    return origin.protocol + "//" + project.key + "@" + origin.host + "/" + project.id;
  }

  function projectInfo(project, isNew) {
    const dsn = dsnFor(project);
    const snippets = buildSnippets(location.origin, project.key, dsn);
    const endpoints = project.endpoints && typeof project.endpoints === "object" ? project.endpoints : null;
    return h("section", { class: "panel project-card" + (isNew ? " project-new" : ""), testid: "project-info" },
      h("div", { class: "panel-head" }, h("h2", null, isNew ? "Project created: " : "Current project: ", h("span", { testid: "project-info-name" }, project.name || "project " + project.id)),
        h("a", { href: "#/issues", class: "btn btn-primary", testid: "go-issues" }, "Go to issues →")),
      h("div", { class: "panel-body" },
        h("div", { class: "kv-lines" },
          h("div", { class: "kv-line" }, h("span", { class: "meta-label" }, "Project key"), h("code", { class: "secret", testid: "project-key" }, project.key), copyButton(() => project.key, "copy-key")),
          h("div", { class: "kv-line" }, h("span", { class: "meta-label" }, "Sentry DSN"), h("code", { testid: "project-dsn" }, dsn), copyButton(() => dsn, "copy-dsn")),
          endpoints ? h("details", { class: "raw" }, h("summary", null, "All ingest endpoints"), kvTable(endpoints, "project-endpoints")) : null),
        h("div", { class: "snippets", testid: "snippets" }, snippets.map((sn) => snippetBlock(sn.title, sn.code, "snippet-" + sn.id)))));
  }

  function snippetBlock(title, code, testid) {
    return h("div", { class: "snippet", testid: testid },
      h("div", { class: "snippet-head" }, h("span", null, title), copyButton(() => code, testid + "-copy")),
      h("pre", { class: "code" }, code));
  }

  function buildSnippets(origin, key, dsn) {
    const endpoint = origin + "/api.php";
    return [
      {
        id: "curl", title: "curl",
        code: 'curl -X POST "' + endpoint + '" \\\n' +
          '  -H "Content-Type: application/json" \\\n' +
          '  -d \'{"hash": "' + key + '",\n' +
          '       "level": "Error", "message": "Something went wrong",\n' +
          '       "file": "deploy.sh", "line": 1}\'',
      },
      {
        id: "python", title: "Python (sys.excepthook)",
        code: [
          "import requests, traceback, sys",
          "",
          'ERRORCAPTURE_ENDPOINT = "' + endpoint + '"',
          'ERRORCAPTURE_HASH = "' + key + '"',
          "",
          "def report_error(exc_type, exc_value, exc_tb):",
          "    tb = traceback.extract_tb(exc_tb)[-1] if exc_tb else None",
          "    requests.post(ERRORCAPTURE_ENDPOINT, json={",
          '        "hash": ERRORCAPTURE_HASH,',
          '        "level": exc_type.__name__,',
          '        "message": str(exc_value),',
          '        "file": tb.filename if tb else "",',
          '        "line": tb.lineno if tb else 0,',
          "    })",
          "    sys.__excepthook__(exc_type, exc_value, exc_tb)",
          "",
          "sys.excepthook = report_error",
        ].join("\n"),
      },
      {
        id: "node", title: "Node.js (uncaughtException)",
        code: [
          'const ERRORCAPTURE_ENDPOINT = "' + endpoint + '";',
          'const ERRORCAPTURE_HASH = "' + key + '";',
          "",
          'process.on("uncaughtException", (err) => {',
          "  const match = err.stack?.match(/at .+? \\((.+?):(\\d+):\\d+\\)/);",
          "  fetch(ERRORCAPTURE_ENDPOINT, {",
          '    method: "POST",',
          '    headers: { "Content-Type": "application/json" },',
          "    body: JSON.stringify({",
          "      hash: ERRORCAPTURE_HASH,",
          "      level: err.name,",
          "      message: err.message,",
          '      file: match?.[1] ?? "",',
          '      line: parseInt(match?.[2] ?? "0"),',
          "    }),",
          "  }).catch(() => {});",
          "  process.exit(1);",
          "});",
        ].join("\n"),
      },
      {
        id: "bash", title: "Bash",
        code: [
          "report_error() {",
          '  curl -s -X POST "' + endpoint + '" \\',
          '    -H "Content-Type: application/json" \\',
          '    -d "{',
          '      \\"hash\\": \\"' + key + '\\",',
          '      \\"level\\": \\"$1\\",',
          '      \\"message\\": \\"$2\\",',
          '      \\"file\\": \\"${BASH_SOURCE[1]:-unknown}\\",',
          "      \\\"line\\\": ${BASH_LINENO[0]:-0}",
          '    }"',
          "}",
          "",
          "# Usage:",
          'report_error "Error" "Deploy failed: migration returned non-zero"',
        ].join("\n"),
      },
      {
        id: "sentry", title: "sentry-sdk (Python)",
        code: [
          "import sentry_sdk",
          "",
          'sentry_sdk.init(dsn="' + dsn + '")',
        ].join("\n"),
      },
    ];
  }

  // ==========================================================================
  // Boot
  // ==========================================================================

  function boot() {
    window.addEventListener("hashchange", route);
    // Refresh relative times once a minute without refetching anything.
    setInterval(() => {
      for (const t of document.querySelectorAll("time.rel[datetime]")) t.textContent = fmtAgo(t.getAttribute("datetime"));
    }, 60000);
    if (!location.hash) history.replaceState(null, "", "#" + (getKey() ? "/issues" : "/setup"));
    route();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
