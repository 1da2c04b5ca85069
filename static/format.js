import { h } from "./dom.js";

// ==========================================================================
// Formatting
// ==========================================================================

export function toDate(iso) {
  if (!iso) return null;
  const d = new Date(iso);
  return isNaN(d.getTime()) ? null : d;
}

export function pad(n, width) {
  return String(n).padStart(width || 2, "0");
}

export function fmtDateTime(iso) {
  const d = toDate(iso);
  if (!d) return iso ? String(iso) : "—";
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
    pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}

export function fmtClock(iso) {
  const d = toDate(iso);
  if (!d) return iso ? String(iso) : "—";
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) +
    "." + pad(d.getMilliseconds(), 3);
}

export function fmtAgo(iso) {
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
export function timeEl(iso, mode) {
  const text = mode === "abs" ? fmtDateTime(iso) : mode === "clock" ? fmtClock(iso) : fmtAgo(iso);
  return h("time", { class: mode ? "time" : "time rel", title: iso ? fmtDateTime(iso) + " (" + iso + ")" : "", datetime: iso || undefined }, text);
}

/** A number formatter from fn(finite number): "—" when missing, the value as text when not a number. */
export function numberFormat(fn) {
  return (value) => {
    if (value === undefined || value === null || value === "") return "—";
    const num = Number(value);
    return isFinite(num) ? fn(num) : String(value);
  };
}

export const fmtNum = numberFormat((num) => num.toLocaleString("en-US", { maximumFractionDigits: 2 }));

export function fmtCompact(n) {
  const num = Number(n) || 0;
  if (Math.abs(num) >= 1e9) return (num / 1e9).toFixed(1).replace(/\.0$/, "") + "B";
  if (Math.abs(num) >= 1e6) return (num / 1e6).toFixed(1).replace(/\.0$/, "") + "M";
  if (Math.abs(num) >= 1e4) return (num / 1e3).toFixed(1).replace(/\.0$/, "") + "k";
  return fmtNum(num);
}

export const fmtMs = numberFormat((num) => {
  if (num >= 60000) return (num / 60000).toFixed(1) + " min";
  if (num >= 1000) return (num / 1000).toFixed(2) + " s";
  return (num >= 10 ? Math.round(num) : Math.round(num * 10) / 10) + " ms";
});

export const fmtUsd = numberFormat((num) => {
  if (num === 0) return "$0.00";
  if (Math.abs(num) < 0.01) return "$" + num.toFixed(5);
  if (Math.abs(num) < 1) return "$" + num.toFixed(4);
  if (Math.abs(num) < 10) return "$" + num.toFixed(3);
  return "$" + num.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
});

export const fmtBytes = numberFormat((num) => {
  if (num >= 1048576) return (num / 1048576).toFixed(1) + " MB";
  if (num >= 1024) return (num / 1024).toFixed(1) + " KB";
  return num + " B";
});

export function prettyJson(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch (e) {
    return String(value);
  }
}

/** Show a value as text; objects as compact JSON. */
export function valueText(value) {
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

export function truncate(text, max) {
  const str = String(text == null ? "" : text);
  return str.length > max ? str.slice(0, max - 1) + "…" : str;
}
