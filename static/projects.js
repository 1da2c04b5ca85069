import { api, flash, getKey, setKey, state, store, stored, updateProjectName } from "./api.js";
import { $, clear, h } from "./dom.js";
import { fmtNum, timeEl } from "./format.js";
import { go } from "./router.js";
import { clickableRow, emptyRow, pageHeader, section, table } from "./widgets.js";

// ==========================================================================
// Projects: the server's project list, the header switcher, settings
// ==========================================================================
// The list needs the admin token, or a server bound to loopback without one
// (GET /api/v1/projects answers 401/403 otherwise); then the viewer only
// knows the project whose key it holds.

const TOKEN_STORAGE = "errorcapture.adminToken";

export function adminToken() {
  return stored(sessionStorage, TOKEN_STORAGE);
}

export function setAdminToken(token) {
  store(sessionStorage, TOKEN_STORAGE, token);
}

export function adminHeaders() {
  const token = adminToken();
  return token ? { Authorization: "Bearer " + token } : {};
}

/** Every project on the server, or null when this viewer may not list them. */
export async function listProjects() {
  try {
    const data = await api("/api/v1/projects", null, { noKey: true, quiet: true, headers: adminHeaders() });
    return data.projects || [];
  } catch (e) {
    if (e.status === 401 || e.status === 403) return null;
    throw e;
  }
}

/** Open another project: its key becomes the viewer's, and the issues list shows. */
export function switchProject(project) {
  setKey(project.key);
  state.project = project;
  updateProjectName();
  refreshSwitcher();
  go("#/issues");
}

let switcherProjects = [];
let switcherKey = null;

/** The header's project switcher: shown when the server lists projects and there is more than one. */
export async function refreshSwitcher() {
  const select = $("#project-switcher");
  if (!select) return;
  if (!select.dataset.bound) {
    select.dataset.bound = "1";
    select.addEventListener("change", () => {
      const chosen = switcherProjects.find((p) => p.key === select.value);
      if (chosen) switchProject(chosen);
    });
  }
  switcherKey = getKey();
  let projects = null;
  try {
    projects = await listProjects();
  } catch (e) {
    projects = null;
  }
  switcherProjects = projects || [];
  clear(select);
  if (!projects || projects.length < 2) {
    select.hidden = true;
    return;
  }
  select.appendChild(h("option", { value: "" }, "Switch project…"));
  for (const p of projects) {
    const opt = h("option", { value: p.key }, (p.name || "project " + p.id) + (p.events != null ? " · " + fmtNum(p.events) + " events" : ""));
    if (p.key === getKey()) opt.disabled = true;
    select.appendChild(opt);
  }
  select.value = "";
  select.hidden = false;
}

/** Refresh the switcher when the viewer's key changed since it was filled. */
export function switcherFollowsKey() {
  if (switcherKey !== getKey()) refreshSwitcher();
}

/** The setup page's list of projects with their counts; a click opens one. */
export function projectList(ctx) {
  const box = h("div", { testid: "projects-list" }, h("div", { class: "muted" }, "Loading…"));
  const load = async () => {
    const projects = await listProjects();
    if (ctx.dead) return;
    clear(box);
    if (projects === null) {
      box.appendChild(tokenForm(load));
      return;
    }
    const { table: tbl, tbody } = table(["Project", { label: "Events", cls: "num" }, { label: "Issues", cls: "num" }, "Last error", "Created", ""], "projects-table", "projects-table");
    for (const p of projects) {
      const current = p.key === getKey();
      tbody.appendChild(clickableRow(h("tr", { testid: "project-row", class: current ? "selected" : "", data: { projectId: p.id } },
        h("td", null, h("span", { class: "project-row-name", testid: "project-row-name" }, p.name || "project " + p.id), h("span", { class: "muted small" }, " #" + p.id)),
        h("td", { class: "num", testid: "project-row-events" }, p.events == null ? "—" : fmtNum(p.events)),
        h("td", { class: "num" }, p.issues == null ? "—" : fmtNum(p.issues)),
        h("td", null, p.lastSeen ? timeEl(p.lastSeen) : "—"),
        h("td", null, timeEl(p.created)),
        h("td", null, current ? h("span", { class: "badge" }, "open") : h("button", { type: "button", class: "btn btn-small", testid: "project-open" }, "Open"))),
      () => switchProject(p)));
      const open = tbody.lastChild.querySelector("button");
      if (open) open.addEventListener("click", () => switchProject(p));
    }
    if (!projects.length) tbody.appendChild(emptyRow(6, "No projects yet."));
    box.appendChild(h("div", { class: "table-wrap" }, tbl));
  };
  load().catch((e) => { clear(box).appendChild(h("div", { class: "muted" }, "Could not list projects: " + e.message)); });
  return box;
}

function tokenForm(reload) {
  const input = h("input", { type: "password", name: "admin-token", testid: "projects-token", placeholder: "admin token", autocomplete: "off" });
  const form = h("form", { class: "filters", testid: "projects-token-form" },
    h("div", { class: "muted grow-text" }, "This server lists its projects only with the admin token (--admin-token)."),
    h("label", { class: "filter" }, h("span", { class: "filter-label" }, "Admin token"), input),
    h("button", { type: "submit", class: "btn" }, "List projects"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setAdminToken(input.value.trim());
    reload().catch((e) => flash(e.message));
    refreshSwitcher();
  });
  return form;
}

// ----- settings page --------------------------------------------------------

const SETTINGS_FIELDS = [
  ["rateLimit", "Rate limit", "events a minute; empty for the server's default", "settings-rate-limit"],
  ["retentionEvents", "Keep at most", "events; empty for the server's default", "settings-retention-events"],
  ["retentionDays", "Keep for", "days; empty for the server's default", "settings-retention-days"],
];

export async function viewSettings(ctx, root) {
  const data = await api("/api/v1/project");
  if (ctx.dead) return;
  const project = data.project;
  const settings = project.settings || {};
  const name = h("input", { name: "name", value: project.name || "", testid: "settings-name", required: true, maxlength: 200 });
  const webhook = h("input", { name: "webhookUrl", type: "url", value: settings.webhookUrl || "", placeholder: "https://hooks.slack.com/services/…", testid: "settings-webhook" });
  const numbers = SETTINGS_FIELDS.map(([field, label, hint, testid]) => ({
    field: field, label: label, hint: hint,
    input: h("input", { name: field, type: "number", min: 0, step: 1, value: settings[field] == null ? "" : String(settings[field]), testid: testid }),
  }));
  const error = h("div", { class: "form-error", testid: "settings-error", hidden: true });
  const form = h("form", { class: "stack-form settings-form", testid: "settings-form", autocomplete: "off" },
    h("label", { class: "form-field" }, h("span", null, "Project name"), name),
    h("label", { class: "form-field" }, h("span", null, "Webhook (a POST for every new issue and regression)"), webhook),
    numbers.map((n) => h("label", { class: "form-field" }, h("span", null, n.label + " (" + n.hint + ")"), n.input)),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary", testid: "settings-save" }, "Save settings")),
    error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const body = { name: name.value.trim(), webhookUrl: webhook.value.trim() || null };
    for (const n of numbers) {
      const text = n.input.value.trim();
      body[n.field] = text === "" ? null : Number(text);
    }
    try {
      const res = await api("/api/v1/project", null, { method: "PUT", body: body });
      state.project = Object.assign({}, state.project || {}, res.project || {});
      updateProjectName();
      refreshSwitcher();
      flash("Settings saved", "ok");
    } catch (e) {
      error.textContent = "Could not save: " + e.message;
      error.hidden = false;
    }
  });
  root.appendChild(pageHeader("Settings", "Project " + (project.name || project.id)));
  root.appendChild(section("Project settings", form, "settings-panel"));
}
