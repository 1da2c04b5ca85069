

// ==========================================================================
// DOM helpers
// ==========================================================================

export const SVG_NS = "http://www.w3.org/2000/svg";

// Attributes h() may set.  Anything else (on*, style, src, srcdoc...) is refused.
export const SAFE_ATTRS = new Set([
  "id", "title", "type", "name", "value", "placeholder", "for", "colspan",
  "rowspan", "min", "max", "step", "disabled", "checked", "selected", "target",
  "rel", "autocomplete", "spellcheck", "role", "aria-label", "aria-live",
  "readonly", "size", "open", "required", "list", "hidden", "tabindex",
  "maxlength", "pattern", "datetime", "lang", "download", "aria-selected", "aria-disabled",
]);

/** Create an HTML element.  props: class, text, testid, data{}, on{}, href, attrs. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  applyProps(el, props || {});
  appendChildren(el, children);
  return el;
}

export function applyProps(el, props) {
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

export function appendChildren(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) appendChildren(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Internal links ("#/...") pass; external ones must be http(s). */
export function setHref(el, value) {
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
export function safeUrl(value) {
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
export function urlText(value, testid) {
  const safe = safeUrl(value);
  if (safe) return h("a", { href: safe, class: "ext", testid: testid }, String(value));
  return h("span", { class: "mono", testid: testid }, value == null ? "" : String(value));
}

/** Create an SVG element.  Attribute values are numbers/constants we computed. */
export function s(tag, attrs, ...children) {
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

export function $(selector, root) {
  return (root || document).querySelector(selector);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}
