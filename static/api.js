import { $ } from "./dom.js";
import { valueText } from "./format.js";

// ==========================================================================
// Key storage and API client
// ==========================================================================

export const KEY_STORAGE = "errorcapture.key";

/** A value kept in localStorage or sessionStorage ("" when the browser keeps none). */
export function stored(storage, name) {
  try {
    return storage.getItem(name) || "";
  } catch (e) {
    return "";
  }
}

/** Keep value (or forget it when empty); in private mode it lives for this page only. */
export function store(storage, name, value) {
  try {
    if (value) storage.setItem(name, value);
    else storage.removeItem(name);
  } catch (e) {
    /* private mode */
  }
}

export function getKey() {
  return stored(localStorage, KEY_STORAGE);
}

export function setKey(key) {
  store(localStorage, KEY_STORAGE, key);
  state.project = null;
  updateProjectName();
}

export class ApiError extends Error {
  /** details: the answer's "details" object (a bad search query names its key there). */
  constructor(message, status, details) {
    super(message);
    this.status = status;
    this.details = details && typeof details === "object" ? details : {};
  }
}

/** Call the read API.  opts: method, body, noKey, headers. */
export async function api(path, params, opts) {
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
    throw new ApiError(msg, res.status, data && data.details);
  }
  return data || {};
}

export let busy = 0;

/** Thin progress bar under the header while user-visible requests run. */
export function setBusy(delta) {
  busy = Math.max(0, busy + delta);
  document.body.classList.toggle("busy", busy > 0);
}

// ==========================================================================
// App state, flash messages, header
// ==========================================================================

export const state = {
  project: null, // {id, key, name, dsn, endpoints}
};

export let flashTimer = null;

export function flash(message, kind) {
  const box = $("#flash");
  if (!box) return;
  box.textContent = message;
  box.className = "flash flash-" + (kind || "error");
  box.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { box.hidden = true; }, kind === "ok" ? 3000 : 8000);
}

export async function loadProject() {
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

export function updateProjectName() {
  const el = $("#project-name");
  if (!el) return;
  el.textContent = state.project ? state.project.name || "project " + state.project.id : "";
  el.title = state.project ? "Project key " + state.project.key : "";
}
