import { api, flash, getKey } from "./api.js";
import { clear, h } from "./dom.js";
import { fmtDateTime, fmtMs, timeEl, valueText } from "./format.js";
import { go } from "./router.js";
import { snippetBlock } from "./view-setup.js";
import { card, clickableRow, emptyRow, liveIndicator, pageHeader, section, setLiveStatus, statusBadge, table } from "./widgets.js";

// ==========================================================================
// View: Cron monitors
// ==========================================================================

export async function viewCrons(ctx, root) {
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

export function monitorRow(m) {
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

export function monitorForm(onCreated) {
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

export function heartbeatHelp() {
  const snippet = 'curl -s -X POST "' + location.origin + '/ingest/v1/heartbeat" \\\n' +
    '  -H "Content-Type: application/json" \\\n' +
    '  -H "X-SeeStack-Key: ' + getKey() + '" \\\n' +
    '  -d \'{"slug": "nightly-backup", "status": "success", "durationMs": 1200}\'';
  return snippetBlock("Heartbeat (run at the end of each job)", snippet, "snippet-heartbeat");
}

export async function viewCron(ctx, root, query, slug) {
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

export function monitorDetail(m, history) {
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
