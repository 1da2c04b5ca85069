import { h, s } from "./dom.js";
import { fmtCompact, fmtNum, truncate } from "./format.js";

// ----- SVG charts ---------------------------------------------------------

/** Tiny 24-bar sparkline (issue list). */
export function sparkline(values, width, height) {
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
export function barChart(buckets, series, opts) {
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
export function niceMax(value, integer) {
  if (!(value > 0)) return integer ? 4 : 1;
  const exp = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 1.2, 1.6, 2, 2.4, 3, 4, 6, 8, 10]) {
    const candidate = step * exp;
    if (candidate >= value && (!integer || (candidate >= 4 && Number.isInteger(candidate / 4)))) return candidate;
  }
  return integer ? Math.max(4, Math.ceil(value / 4) * 4) : 10 * exp;
}

export function legend(series) {
  return h("div", { class: "legend" }, series.map((se) =>
    h("span", { class: "legend-item" }, h("span", { class: "swatch " + se.cls }), se.name)));
}

/** Horizontal bar used in breakdown lists; width set through CSSOM (CSP-safe). */
export function meter(fraction, cls) {
  const fill = h("span", { class: "meter-fill " + (cls || "") });
  fill.style.width = Math.max(0, Math.min(100, fraction * 100)).toFixed(1) + "%";
  return h("span", { class: "meter" }, fill);
}
