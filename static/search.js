import { api } from "./api.js";
import { clear, h } from "./dom.js";

// ==========================================================================
// Search: the query grammar on the client side and the search box
// ==========================================================================
// The server parses queries (docs/read-api.md, "Search grammar"); here we
// only split terms (to read is: for live updates and to know the term under
// the caret) and suggest keys and values from the project's tags.

/** The grammar's own keys, for suggestions when the server does not list them. */
const GRAMMAR_KEYS = ["is", "level", "environment", "release", "firstRelease", "user.id", "user.email", "user.ip",
  "user.username", "firstSeen", "lastSeen", "age", "has", "browser", "os", "device", "server_name", "url", "user"];
const FIXED_VALUES = {
  is: ["unresolved", "resolved", "ignored", "regressed"],
  level: ["fatal", "error", "warning", "info", "debug"],
  firstSeen: ["-1h", "-24h", "-7d", "-30d"],
  lastSeen: ["-1h", "-24h", "-7d", "-30d"],
  age: ["-1h", "-24h", "-7d", "-30d"],
};

/** Terms of a query: [{text, start, end}], splitting on spaces outside quotes and brackets. */
export function splitTerms(query) {
  const terms = [];
  let start = -1;
  let quoted = false;
  let bracket = false;
  for (let i = 0; i <= query.length; i++) {
    const c = i < query.length ? query[i] : " ";
    if (start < 0) {
      if (c === " " || c === "\t") continue;
      start = i;
    }
    if (quoted) {
      if (c === "\\") i++;
      else if (c === "\x22") quoted = false;
    } else if (c === "\x22") quoted = true;
    else if (c === "[") bracket = true;
    else if (c === "]") bracket = false;
    else if ((c === " " || c === "\t") && !bracket) {
      terms.push({ text: query.slice(start, i), start: start, end: i });
      start = -1;
    }
  }
  if (start >= 0 && start < query.length) terms.push({ text: query.slice(start), start: start, end: query.length });
  return terms;
}

/** The statuses an is: term asks for ("regressed" too), or null when the query has none. */
export function statusTerms(query) {
  const wanted = splitTerms(query).map((t) => t.text).filter((t) => t.startsWith("is:")).map((t) => t.slice(3).toLowerCase());
  return wanted.length ? wanted : null;
}

/** The query without its is: terms (a live poll asks for every status and filters here). */
export function withoutStatus(query) {
  return splitTerms(query).map((t) => t.text).filter((t) => !t.startsWith("is:")).join(" ");
}

/** Does the issue hold every is: term of the query? */
export function matchesStatus(issue, wanted) {
  if (!wanted) return true;
  return wanted.every((w) => (w === "regressed" ? issue.status === "unresolved" && !!issue.regression : issue.status === w));
}

/** A value as the grammar reads it: bare when it is one word, else quoted. */
export function quoteValue(value) {
  const text = String(value);
  // (\x22 is the double quote: regular expressions here stay free of quote characters)
  return /^[^\s\x22[\]]+$/.test(text) ? text : "\x22" + text.replace(/\\/g, "\\\\").replace(/\x22/g, "\\\x22") + "\x22";
}

/**
 * A search box that speaks the grammar: suggestions for the term under the
 * caret (keys, then the project's values of that key), a hint line for what
 * the server refused.  opts: value, placeholder, testid, onSubmit (Enter).
 * Returns {element, input, hint, showError(e), clearHint()}.
 */
export function searchBox(opts) {
  const input = h("input", {
    type: "search", name: "query", value: opts.value || "", placeholder: opts.placeholder || "",
    testid: opts.testid || "search-query", "aria-label": "Search", autocomplete: "off", spellcheck: "false",
  });
  const list = h("ul", { class: "suggestions", testid: "search-suggestions", role: "listbox", hidden: true });
  const hint = h("div", { class: "search-hint", testid: "search-hint", role: "status", hidden: true });
  const element = h("div", { class: "search-box" }, input, list);
  let keys = null;
  let active = -1;
  let items = [];
  let asked = 0;

  async function loadKeys() {
    if (keys) return keys;
    try {
      const data = await api("/api/v1/tags", null, { quiet: true });
      const own = (data.tags || []).map((t) => t.key);
      keys = Array.from(new Set([...(data.searchKeys || GRAMMAR_KEYS), ...own]));
    } catch (e) {
      keys = GRAMMAR_KEYS.slice();
    }
    return keys;
  }

  /** The term the caret is in: {start, end, text}. */
  function currentTerm() {
    const caret = input.selectionStart == null ? input.value.length : input.selectionStart;
    const value = input.value;
    let start = caret;
    while (start > 0 && value[start - 1] !== " ") start--;
    let end = caret;
    while (end < value.length && value[end] !== " ") end++;
    return { start: start, end: end, text: value.slice(start, caret) };
  }

  async function suggest() {
    const ticket = ++asked;
    const term = currentTerm();
    const negated = term.text.startsWith("!");
    const text = negated ? term.text.slice(1) : term.text;
    const colon = text.indexOf(":");
    let next = [];
    if (colon < 0) {
      const all = await loadKeys();
      const prefix = text.toLowerCase();
      next = all.filter((k) => k.toLowerCase().startsWith(prefix) && k !== text).slice(0, 12)
        .map((k) => ({ label: k + ":", insert: (negated ? "!" : "") + k + ":", more: true }));
    } else {
      const key = text.slice(0, colon);
      const partial = text.slice(colon + 1).replace(/^\x22/, "");
      if (key === "has") {
        next = (await loadKeys()).filter((k) => k.startsWith(partial) && !FIXED_VALUES[k]).slice(0, 12)
          .map((k) => ({ label: k, insert: (negated ? "!" : "") + "has:" + k }));
      } else if (FIXED_VALUES[key]) {
        next = FIXED_VALUES[key].filter((v) => v.startsWith(partial)).map((v) => ({ label: v, insert: (negated ? "!" : "") + key + ":" + v }));
      } else if (key) {
        try {
          const data = await api("/api/v1/tags/" + encodeURIComponent(key), { prefix: partial, limit: 10 }, { quiet: true });
          next = (data.values || []).map((v) => ({ label: String(v.value), count: v.count, insert: (negated ? "!" : "") + key + ":" + quoteValue(v.value) }));
        } catch (e) {
          next = [];
        }
      }
    }
    if (ticket !== asked || document.activeElement !== input) return;
    show(next, term);
  }

  function show(next, term) {
    items = next.map((item) => Object.assign({ term: term }, item));
    active = -1;
    clear(list);
    items.forEach((item, i) => {
      const li = h("li", { class: "suggestion", role: "option", testid: "search-suggestion", data: { insert: item.insert } },
        h("span", { class: "mono" }, item.label),
        item.count != null ? h("span", { class: "muted small" }, String(item.count)) : null);
      // mousedown, not click: the input keeps focus (a blur would close the list first)
      li.addEventListener("mousedown", (ev) => {
        ev.preventDefault();
        apply(i);
      });
      list.appendChild(li);
    });
    list.hidden = !items.length;
  }

  function highlight(i) {
    active = i;
    Array.from(list.children).forEach((li, j) => li.classList.toggle("active", j === i));
  }

  function apply(i) {
    const item = items[i];
    if (!item) return;
    const value = input.value;
    const tail = value.slice(item.term.end);
    const glue = item.more ? "" : " ";
    input.value = value.slice(0, item.term.start) + item.insert + glue + tail.replace(/^ /, "");
    const caret = item.term.start + item.insert.length + glue.length;
    input.setSelectionRange(caret, caret);
    list.hidden = true;
    if (item.more) suggest();
  }

  input.addEventListener("input", () => { suggest(); });
  input.addEventListener("focus", () => { suggest(); });
  input.addEventListener("blur", () => { list.hidden = true; });
  input.addEventListener("keydown", (ev) => {
    if (list.hidden || !items.length) return;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      const step = ev.key === "ArrowDown" ? 1 : -1;
      highlight((active + step + items.length) % items.length);
    } else if ((ev.key === "Enter" || ev.key === "Tab") && active >= 0) {
      ev.preventDefault();
      apply(active);
    } else if (ev.key === "Escape") {
      list.hidden = true;
    }
  });

  return {
    element: element,
    input: input,
    hint: hint,
    /** Show what the server said about a refused query, naming the key when it is unknown. */
    showError(e) {
      const key = e.details && e.details.key;
      clear(hint).append(e.message || "The search was not understood.");
      if (key) {
        loadKeys().then((all) => {
          const near = all.filter((k) => k[0] === String(key)[0]).slice(0, 6);
          hint.append(". Known keys", near.length ? " like: " : ": ", near.length ? near.join(", ") : all.slice(0, 8).join(", "), ", or any tag of this project.");
        });
      }
      hint.hidden = false;
      list.hidden = true;
    },
    clearHint() {
      hint.hidden = true;
      clear(hint);
    },
  };
}
