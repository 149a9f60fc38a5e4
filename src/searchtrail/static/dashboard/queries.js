// The three query lists, and a query's sessions: what each showed, what was done.

import { get } from "./api.js";
import { el, format, table } from "./format.js";

const $ = (id) => document.getElementById(id);
const count = (f) => (q) => format.count(f(q));
const COLUMNS = {
  sessions: ["Sessions", count((q) => q.sessions)],
  zero: ["Without results", count((q) => q.sessions - q.sessions_with_results)],
  idle: [
    "Without interaction",
    count((q) => q.sessions_with_results - q.sessions_with_interaction),
  ],
  ctr: ["CTR", (q) => format.percent(q.ctr)],
  zero_rate: ["Zero-result", (q) => format.percent(q.zero_result_rate)],
  mrr: ["MRR", (q) => format.fixed(3)(q.mrr)],
};
// Each list: its columns after the query, and what it says when empty.
const LISTS = {
  top: [["sessions", "ctr", "zero_rate", "mrr"], "No sessions in this range."],
  zero_results: [["sessions", "zero", "zero_rate"], "No query went without results."],
  no_interaction: [["sessions", "idle", "ctr"], "Every query with results got an interaction."],
};
const queryText = (q) => (q === "" ? "(empty query)" : q);

// lists: the answer of /metrics/queries; open(query) shows that query's sessions.
export function renderLists(lists, open) {
  for (const [name, [columns, empty]] of Object.entries(LISTS)) {
    const rows = lists[name].map((q) => {
      const props = { type: "button", className: "link query", onclick: () => open(q.query) };
      const button = el("button", props, queryText(q.query));
      const cells = columns.map((c) => el("td", { className: "num" }, COLUMNS[c][1](q)));
      return el("tr", {}, el("td", {}, button), ...cells);
    });
    table($(`list-${name}`), ["Query", ...columns.map((c) => COLUMNS[c][0])], rows, empty);
  }
}

// Results up to the last one acted on, and at least this many.
const SHOWN = 10;

function sessionView(s) {
  const when = s.created_at.replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC");
  const head = el("h3", {}, when, " ", el("code", {}, s.session_id));
  if (s.is_irrelevant) head.append(" ", el("span", { className: "tag" }, "irrelevant"));
  const article = el("article", { className: "session" }, head);
  if (!s.results.length) {
    article.append(el("p", { className: "empty" }, "No results shown."));
  } else {
    const acted = s.results.filter((r) => r.interactions.length).map((r) => r.position);
    const last = Math.max(SHOWN, ...acted);
    const list = el("ol", { className: "results" });
    for (const r of s.results.slice(0, last)) {
      const props = { className: r.interactions.length ? "hit" : "" };
      const item = el("li", props, el("code", {}, r.object_id));
      for (const type of r.interactions) item.append(" ", el("span", { className: "badge" }, type));
      list.append(item);
    }
    article.append(list);
    if (s.results.length > last) {
      article.append(el("p", { className: "hint" }, `… and ${s.results.length - last} more`));
    }
  }
  if (s.unshown_events) {
    const text = `${s.unshown_events} event(s) on objects this session did not show`;
    article.append(el("p", { className: "hint" }, text));
  }
  return article;
}

let opened = 0; // the query asked last: an older answer arriving late is dropped

// Show the newest sessions of a query in the range; errors go to onError.
export async function openQuery(query, range, onError) {
  const mine = ++opened;
  const body = $("drill-body");
  $("drill").hidden = false;
  $("drill-title").textContent = `Sessions of “${queryText(query)}”`;
  body.replaceChildren(el("p", { className: "hint" }, "Loading…"));
  $("drill").scrollIntoView({ block: "start" });
  try {
    const sessions = await get("/sessions", { ...range, query, limit: 50 });
    if (mine !== opened) return;
    const text = `${sessions.length} newest session(s): the results shown, in order, and what was done to each.`;
    const note = el("p", { className: "hint" }, text);
    body.replaceChildren(note, ...sessions.map(sessionView));
  } catch (error) {
    if (mine !== opened) return;
    body.replaceChildren();
    onError(error);
  }
}

$("drill-close").addEventListener("click", () => {
  $("drill").hidden = true;
});
