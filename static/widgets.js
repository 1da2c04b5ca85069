import { flash } from "./api.js";
import { $, clear, h } from "./dom.js";
import { fmtClock, fmtNum, timeEl, truncate, valueText } from "./format.js";
import { go, replaceQuery } from "./router.js";

// ==========================================================================
// Shared widgets: page header, tables, cards, badges, filters, charts
// ==========================================================================

export function pageHeader(title, subtitle, extra) {
  return h("div", { class: "page-head" },
    h("div", { class: "page-titles" },
      h("h1", { class: "page-title", testid: "page-title" }, title),
      subtitle ? h("div", { class: "page-sub" }, subtitle) : null),
    extra ? h("div", { class: "page-actions" }, extra) : null);
}

export function errorBox(e) {
  const box = h("div", { class: "error-box", testid: "error-box" }, "Could not load: " + (e && e.message ? e.message : String(e)));
  if (e && (e.status === 401 || e.status === 403)) {
    box.appendChild(h("div", null, h("a", { href: "#/setup" }, "Enter a valid project key")));
  }
  return box;
}

export function emptyRow(colspan, text, testid) {
  return h("tr", { class: "empty-row", testid: testid || "empty" }, h("td", { colspan: colspan }, text));
}

/** A <table> with a header row; returns {table, tbody}. */
export function table(columns, cls, testid) {
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

export function card(label, value, testid, hint) {
  return h("div", { class: "stat-card" },
    h("div", { class: "stat-label" }, label),
    h("div", { class: "stat-value", testid: testid }, value),
    hint ? h("div", { class: "stat-hint" }, hint) : null);
}

export function section(title, body, testid, extra) {
  return h("section", { class: "panel", testid: testid },
    h("div", { class: "panel-head" }, h("h2", null, title), extra || null),
    h("div", { class: "panel-body" }, body));
}

export const LEVEL_CLASSES = { fatal: "fatal", critical: "fatal", error: "error", warning: "warning", warn: "warning", info: "info", debug: "debug", log: "info", notice: "info" };

export function levelBadge(level) {
  const key = String(level || "").toLowerCase();
  return h("span", { class: "badge level level-" + (LEVEL_CLASSES[key] || "other"), testid: "level-badge" }, level || "unknown");
}

export function statusBadge(status, testid) {
  const key = String(status || "").toLowerCase().replace(/[^a-z0-9]/g, "");
  return h("span", { class: "badge status status-" + (key || "unknown"), testid: testid || "status-badge" }, status || "unknown");
}

export function httpStatusBadge(code) {
  const n = Number(code);
  const cls = n >= 500 ? "s5" : n >= 400 ? "s4" : n >= 300 ? "s3" : n >= 200 ? "s2" : "s0";
  return h("span", { class: "badge http " + cls }, code == null ? "—" : String(code));
}

export function newBadge(kind) {
  return h("span", { class: "badge badge-new", testid: "new-badge" }, kind || "new");
}

/** Simple filter bar: fields = [{name, label, short, type: select|text, options, input + element (own control), grow}] */
export function filterBar(fields, values, onChange, testid) {
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
    } else if (f.input) {
      input = f.input; // a control of its own (the search box): f.element holds it
    } else {
      input = h("input", { type: "search", name: f.name, placeholder: f.label, testid: "filter-" + f.name, "aria-label": f.label, value: values[f.name] || "" });
    }
    inputs[f.name] = input;
    form.appendChild(h("label", { class: "filter" + (f.grow ? " grow" : "") }, h("span", { class: "filter-label" }, f.short || f.label), f.element || input));
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
export function urlFilterBar(path, fields, filters, reload, testid) {
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
export function pagedTable(ctx, opts) {
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
export function clickableRow(tr, target) {
  tr.classList.add("clickable");
  tr.addEventListener("click", (ev) => {
    if (ev.target.closest("a, button, input, select, label")) return;
    if (typeof target === "function") target();
    else go(target);
  });
  return tr;
}

export function kvTable(obj, testid) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return h("div", { class: "muted" }, "None");
  return h("table", { class: "kv", testid: testid },
    h("tbody", null, entries.map(([k, v]) =>
      h("tr", null, h("th", null, h("span", { class: "kv-key" }, k)), h("td", { class: "mono wrap" }, valueText(v))))));
}

export function liveIndicator() {
  return h("span", { class: "live", id: "live-indicator", testid: "live-indicator", title: "Updates every 2 seconds" },
    h("span", { class: "live-dot" }), h("span", { class: "live-text" }, "Live"));
}

export function setLiveStatus(ok, message) {
  const el = $("#live-indicator");
  if (!el) return;
  el.classList.toggle("live-error", !ok);
  el.querySelector(".live-text").textContent = ok ? "Live" : "Offline";
  el.title = ok ? "Updated " + fmtClock(new Date().toISOString()) : "Polling failed: " + (message || "");
}

/** Copy text to the clipboard with a fallback for non-secure contexts. */
export function copyButton(getText, testid) {
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

// ----- links between kinds ------------------------------------------------

/** A trace id as a link to its trace page ("" when there is none). */
export function traceLink(traceId, testid) {
  if (!traceId) return "";
  return h("a", { href: "#/traces/" + encodeURIComponent(traceId), class: "mono small id-link", title: "Trace " + traceId, testid: testid || "trace-link" },
    truncate(String(traceId), 16));
}

/** A replay id as a link to its session replay ("" when there is none). */
export function replayLink(replayId, testid) {
  if (!replayId) return "";
  return h("a", { href: "#/replays/" + encodeURIComponent(replayId), class: "mono small id-link", title: "Session replay " + replayId, testid: testid || "replay-link" },
    truncate(String(replayId), 16));
}

/** A release as a link to its release page. */
export function releaseLink(version, testid) {
  if (!version) return "—";
  return h("a", { href: "#/releases/" + encodeURIComponent(version), class: "chip chip-release", testid: testid || "release" }, String(version));
}

/**
 * Tabs over panels that render when first shown.
 * tabs: [{id, label, testid, render() -> Node}]; onChange(id) after a switch.
 * Returns {element, show(id), setLabel(id, text)}.
 */
export function tabs(list, initial, onChange) {
  const bar = h("div", { class: "tabs", role: "tablist" });
  const body = h("div", { class: "tab-body" });
  const entries = new Map();
  for (const tab of list) {
    const button = h("button", { type: "button", class: "tab", role: "tab", testid: tab.testid || "tab-" + tab.id }, tab.label);
    const panel = h("div", { class: "tab-panel", role: "tabpanel", testid: "tab-panel-" + tab.id, hidden: true });
    button.addEventListener("click", () => show(tab.id, true));
    bar.appendChild(button);
    body.appendChild(panel);
    entries.set(tab.id, { tab: tab, button: button, panel: panel, rendered: false });
  }
  function show(id, byUser) {
    if (!entries.has(id)) id = list[0].id;
    for (const [key, entry] of entries) {
      const on = key === id;
      entry.button.classList.toggle("active", on);
      entry.button.setAttribute("aria-selected", on ? "true" : "false");
      entry.panel.hidden = !on;
      if (on && !entry.rendered) {
        entry.rendered = true;
        entry.panel.appendChild(entry.tab.render());
      }
    }
    if (byUser && onChange) onChange(id);
  }
  show(initial);
  return {
    element: h("div", { class: "tabbed" }, bar, body),
    show: show,
    setLabel: (id, text) => { if (entries.has(id)) entries.get(id).button.textContent = text; },
  };
}

/** "N new, refresh": a notice that waits above a list instead of moving it. */
export function newItemsNotice(testid) {
  const button = h("button", { type: "button", class: "btn btn-small btn-primary" }, "Show");
  const text = h("span");
  const box = h("div", { class: "new-items", testid: testid || "new-items", hidden: true, role: "status" }, text, " ", button);
  let onShow = null;
  button.addEventListener("click", () => {
    box.hidden = true;
    if (onShow) onShow();
  });
  return {
    element: box,
    /** n new items; show() runs when the reader asks for them. */
    set(n, label, show) {
      onShow = show;
      box.hidden = !(n > 0);
      text.textContent = fmtNum(n) + " new " + label + (n === 1 ? "" : "s") + " since this page loaded.";
    },
    hide() { box.hidden = true; },
  };
}

/** Error events (E-summary + issueId) as links to their issue pages. */
export function errorList(errors) {
  const { table: tbl, tbody } = table(["Error", "Level", "Time"], "errors-table", "linked-errors");
  for (const ev of errors) {
    tbody.appendChild(h("tr", { testid: "linked-error" },
      h("td", { class: "wrap" }, h("a", { href: "#/issues/" + encodeURIComponent(ev.issueId) + "/events/" + encodeURIComponent(ev.id), testid: "linked-error-link" },
        truncate(ev.message || ev.title || "error " + (ev.eventId || ev.id), 200))),
      h("td", null, levelBadge(ev.level)),
      h("td", null, timeEl(ev.timestamp))));
  }
  return h("div", { class: "table-wrap" }, tbl);
}

/**
 * Live without moving the page: every 5 s count() says how many items arrived
 * since the view last loaded; they are offered as "N new ... Show", and show()
 * loads them when the reader asks.  Returns the notice's element.
 */
export function offerNew(ctx, label, count, show, testid) {
  const notice = newItemsNotice(testid);
  ctx.poll(async () => {
    const n = await count();
    if (ctx.dead) return;
    notice.set(n, label, () => { show().catch((e) => flash(e.message)); });
    setLiveStatus(true);
  }, 5000);
  return notice.element;
}
