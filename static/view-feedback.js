import { api } from "./api.js";
import { h, urlText } from "./dom.js";
import { timeEl, truncate, valueText } from "./format.js";
import { pageHeader, pagedTable, replayLink } from "./widgets.js";

// ==========================================================================
// View: User feedback (the project's feedback, newest first)
// ==========================================================================

export async function viewFeedback(ctx, root) {
  const list = pagedTable(ctx, {
    columns: ["Feedback", "From", "Page", "About", "Received"],
    cls: "feedback-table", testid: "feedback-table", moreTestid: "feedback-load-more",
    fetch: (page) => api("/api/v1/feedback", page),
    items: (data) => data.feedback, row: feedbackRow,
    empty: "No feedback yet. Sentry's feedback widget and captureFeedback() send it here.",
  });
  root.appendChild(pageHeader("User feedback", "What people told you, with the error and replay it came with"));
  root.append(...list.elements);
  await list.load(true);
}

function feedbackRow(fb) {
  const event = fb.event && fb.event.id != null ? fb.event : null;
  return h("tr", { testid: "feedback-row", data: { feedbackId: fb.id } },
    h("td", { class: "wrap", testid: "feedback-row-message" }, truncate(fb.message == null ? "" : valueText(fb.message), 500)),
    h("td", null, h("div", null, fb.name || "Anonymous"), fb.email ? h("div", { class: "muted small mono" }, fb.email) : null),
    h("td", { class: "small" }, fb.url ? urlText(fb.url) : "—"),
    h("td", null,
      event ? h("a", { href: "#/issues/" + encodeURIComponent(event.issueId) + "/events/" + encodeURIComponent(event.id), testid: "feedback-issue-link" }, "Issue #" + event.issueId) : null,
      fb.replayId ? [event ? " " : null, replayLink(fb.replayId, "feedback-replay-link")] : null,
      !event && !fb.replayId ? h("span", { class: "muted" }, "—") : null),
    h("td", null, timeEl(fb.timestamp)));
}
