/*
 * ErrorCapture web viewer: the entry module (index.html loads it as
 * <script type="module">).  It owns the routing table and boot; every view
 * and widget lives in its own module beside it in static/.
 *
 * Plain JavaScript modules, no build step, nothing loaded from the internet.  Runs under
 *   default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'
 * so: no inline scripts, no style attributes, no eval.
 *
 * Safety rule for every module: data from the server is only ever put into the
 * page as text (textContent / text nodes) or through setAttribute on a short list
 * of harmless attributes: all DOM is built by h() and s() in dom.js.  Nothing
 * assigns innerHTML.  Links built from data go through safeUrl(), which only lets
 * http: and https: through.
 *
 * Only paged or aggregated endpoints are requested (see docs/read-api.md), so the
 * page stays fast on a project with millions of events.
 */
import { getKey, loadProject } from "./api.js";
import { $, clear, h } from "./dom.js";
import { viewEvent } from "./event.js";
import { fmtAgo } from "./format.js";
import { switcherFollowsKey, viewSettings } from "./projects.js";
import { highlightNav, parseHash, safeDecode, ViewContext } from "./router.js";
import { viewAI } from "./view-ai.js";
import { viewCron, viewCrons } from "./view-crons.js";
import { viewFeedback } from "./view-feedback.js";
import { viewIssue } from "./view-issue.js";
import { viewIssues } from "./view-issues.js";
import { viewLogs } from "./view-logs.js";
import { viewPerformance, viewTransaction } from "./view-performance.js";
import { viewRelease, viewReleases } from "./view-releases.js";
import { viewReplay, viewReplays } from "./view-replays.js";
import { viewRequests } from "./view-requests.js";
import { viewSetup } from "./view-setup.js";
import { viewTrace } from "./view-trace.js";
import { errorBox } from "./widgets.js";

// ==========================================================================
// Routing
// ==========================================================================

// [path pattern, view, nav entry]
const ROUTES = [
  [/^\/?$/, viewIssues, "issues"],
  [/^\/issues$/, viewIssues, "issues"],
  [/^\/issues\/([^/]+)$/, viewIssue, "issues"],
  [/^\/issues\/([^/]+)\/events\/([^/]+)$/, viewIssue, "issues"],
  [/^\/events\/([^/]+)$/, viewEvent, "issues"],
  [/^\/requests$/, viewRequests, "requests"],
  [/^\/replays$/, viewReplays, "replays"],
  [/^\/replays\/(.+)$/, viewReplay, "replays"],
  [/^\/logs$/, viewLogs, "logs"],
  [/^\/performance$/, viewPerformance, "performance"],
  [/^\/transactions\/([^/]+)$/, viewTransaction, "performance"],
  [/^\/traces\/([^/]+)$/, viewTrace, "performance"],
  [/^\/releases$/, viewReleases, "releases"],
  [/^\/releases\/(.+)$/, viewRelease, "releases"],
  [/^\/feedback$/, viewFeedback, "feedback"],
  [/^\/ai$/, viewAI, "ai"],
  [/^\/crons$/, viewCrons, "crons"],
  [/^\/crons\/(.+)$/, viewCron, "crons"],
  [/^\/setup$/, viewSetup, "setup"],
  [/^\/settings$/, viewSettings, "settings"],
];

let currentView = null;

async function route() {
  if (currentView) currentView.dispose();
  const ctx = new ViewContext();
  currentView = ctx;
  const { path, query } = parseHash();
  let match = null;
  let handler = viewNotFound;
  let navName = "";
  for (const [re, view, name] of ROUTES) {
    match = path.match(re);
    if (match) {
      handler = view;
      navName = name;
      break;
    }
  }
  if (!getKey() && handler !== viewSetup) {
    // No key yet: show setup, and make the hash say so, so "#/issues" links fire later.
    handler = viewSetup;
    navName = "setup";
    match = null;
    history.replaceState(null, "", "#/setup");
  }
  highlightNav(navName);
  const main = clear($("#main"));
  main.dataset.view = navName || "none";
  const args = match ? match.slice(1).map(safeDecode) : [];
  try {
    if (handler !== viewSetup) await loadProject();
    switcherFollowsKey();
    if (ctx.dead) return;
    await handler(ctx, main, query, ...args);
  } catch (e) {
    if (!ctx.dead) main.appendChild(errorBox(e));
  }
}

function viewNotFound(ctx, root) {
  root.appendChild(h("div", { class: "empty" }, "Nothing here. ", h("a", { href: "#/issues" }, "Back to issues")));
}

// ==========================================================================
// Boot
// ==========================================================================

function boot() {
  window.addEventListener("hashchange", route);
  // Refresh relative times once a minute without refetching anything.
  setInterval(() => {
    for (const t of document.querySelectorAll("time.rel[datetime]")) t.textContent = fmtAgo(t.getAttribute("datetime"));
  }, 60000);
  if (!location.hash) history.replaceState(null, "", "#" + (getKey() ? "/issues" : "/setup"));
  route();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
