import { api, getKey, loadProject, setKey, state, updateProjectName } from "./api.js";
import { clear, h } from "./dom.js";
import { adminHeaders, projectList, refreshSwitcher, setAdminToken } from "./projects.js";
import { go } from "./router.js";
import { copyButton, kvTable, pageHeader, section } from "./widgets.js";

// ==========================================================================
// View: Setup (enter a key, create a project, integration snippets)
// ==========================================================================

export async function viewSetup(ctx, root, query) {
  const key = getKey();
  root.appendChild(pageHeader("Project & setup", key ? "Connect your apps to this project, or switch project" : "Paste a project key or create a new project"));
  const current = h("div", { testid: "current-project" });
  root.appendChild(current);
  root.appendChild(section("Projects on this server", projectList(ctx), "projects-panel"));
  root.appendChild(h("div", { class: "grid-2" },
    section("Use an existing project", keyForm(), "key-panel"),
    section("Create a project", createForm(current), "create-panel")));
  if (key) {
    const project = await loadProject();
    if (ctx.dead) return;
    if (project) current.appendChild(projectInfo(project, false));
  }
}

export function keyForm() {
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

export function createForm(target) {
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
    // a token typed here also lists the projects (kept for this browser session)
    if (token.value.trim()) setAdminToken(token.value.trim());
    const headers = adminHeaders();
    try {
      const data = await api("/api/v1/projects", null, { method: "POST", body: { name: name.value.trim() }, noKey: true, headers: headers });
      const project = data.project;
      setKey(project.key);
      state.project = project;
      updateProjectName();
      clear(target).appendChild(projectInfo(project, true));
      refreshSwitcher();
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
export function dsnFor(project) {
  const origin = new URL(location.origin);
  return origin.protocol + "//" + project.key + "@" + origin.host + "/" + project.id;
}

export function projectInfo(project, isNew) {
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

export function snippetBlock(title, code, testid) {
  return h("div", { class: "snippet", testid: testid },
    h("div", { class: "snippet-head" }, h("span", null, title), copyButton(() => code, testid + "-copy")),
    h("pre", { class: "code" }, code));
}

export function buildSnippets(origin, key, dsn) {
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
