import { setLiveStatus } from "./widgets.js";

// ==========================================================================
// Router and view lifecycle
// ==========================================================================

/** One per rendered view; dies when the user navigates away. */
export class ViewContext {
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

export function parseHash() {
  const raw = location.hash.replace(/^#/, "");
  const qi = raw.indexOf("?");
  const path = qi >= 0 ? raw.slice(0, qi) : raw;
  const query = new URLSearchParams(qi >= 0 ? raw.slice(qi + 1) : "");
  return { path: path || "/issues", query: query };
}

/** Update the hash query without re-rendering (filters stay shareable). */
export function replaceQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const qs = q.toString();
  history.replaceState(null, "", "#" + path + (qs ? "?" + qs : ""));
}

export function safeDecode(part) {
  try {
    return decodeURIComponent(part);
  } catch (e) {
    return part;
  }
}

export function highlightNav(name) {
  for (const a of document.querySelectorAll("[data-view]")) {
    a.classList.toggle("active", a.dataset.view === name);
  }
}

/** Open hash; opening the hash already shown renders it again. */
export function go(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

