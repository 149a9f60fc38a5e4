// The ranker comparison: B against A, each metric with its interval and verdict, and
// the interleaving preference where results were labelled with their ranker's team.

import { get } from "./api.js";
import { el, format, table } from "./format.js";

const $ = (id) => document.getElementById(id);
const METRICS = {
  ctr: ["CTR", format.percent, format.points],
  conversion_rate: ["Conversion rate", format.percent, format.points],
  mrr: ["MRR", format.fixed(3), format.delta(3)],
  zero_result_rate: ["Zero-result rate (lower is better)", format.percent, format.points],
};
const verdict = (text) => el("span", { className: `verdict ${text}` }, text);

// Fill the ranker names from the by=ranker groups: the two with the most sessions,
// unless names are already there. True if the form has two names to compare.
export function offerRankers(groups) {
  const names = groups
    .filter((g) => g.key !== null)
    .sort((x, y) => y.sessions - x.sessions)
    .map((g) => String(g.key));
  $("rankers").replaceChildren(...names.map((n) => el("option", { value: n })));
  const [a, b] = [$("ranker-a"), $("ranker-b")];
  if (!a.value && !b.value && names.length >= 2) [a.value, b.value] = names;
  if (a.value && b.value) return true;
  const why = names.length
    ? `Only one ranker in this range (${names[0]}): name two to compare.`
    : "No session in this range names its ranker (search_meta); name two to compare.";
  $("compare-result").replaceChildren(el("p", { className: "hint" }, why));
  return false;
}

function interleavingLine(r) {
  const i = r.interleaving;
  if (!i) {
    return "Interleaving: no interleaved session with results of both rankers (a result's meta names its team).";
  }
  const [low, high] = i.ci95.map(format.delta(3));
  return (
    `Interleaving: ${i.sessions} session(s), ${r.a} won ${i.wins_a}, ${r.b} won ${i.wins_b}, ` +
    `${i.ties} tie(s); preference for ${r.b} ${format.delta(3)(i.preference_b)} [${low}, ${high}]: `
  );
}

function render(r) {
  const rows = r.metrics.map((m) => {
    const [label, show, diff] = METRICS[m.metric] ?? [m.metric, format.fixed(3), format.delta(3)];
    const interval = m.ci95 ? `[${diff(m.ci95[0])}, ${diff(m.ci95[1])}]` : "—";
    return el(
      "tr",
      { dataset: { metric: m.metric } },
      el("td", {}, label),
      el("td", { className: "num" }, show(m.a)),
      el("td", { className: "num" }, show(m.b)),
      el("td", { className: "num" }, diff(m.difference)),
      el("td", { className: "num" }, interval),
      el("td", { className: "num" }, verdict(m.verdict)),
    );
  });
  const grid = el("table");
  table(grid, ["Metric", r.a, r.b, `${r.b} − ${r.a}`, "95% interval", "Verdict"], rows, "");
  const counts = `${r.a} ${format.count(r.sessions_a)}, ${r.b} ${format.count(r.sessions_b)}`;
  const sessions = el("p", { className: "hint" }, `Sessions: ${counts}. Method: ${r.method}.`);
  const line = el("p", { id: "interleaving" }, interleavingLine(r));
  if (r.interleaving) line.append(verdict(r.interleaving.verdict));
  $("compare-result").replaceChildren(grid, sessions, line);
}

let asked = 0; // the comparison asked last: an older answer arriving late is dropped

export async function compare(range, onError) {
  const mine = ++asked;
  const [a, b] = [$("ranker-a").value.trim(), $("ranker-b").value.trim()];
  $("compare-result").replaceChildren(el("p", { className: "hint" }, "Comparing…"));
  try {
    const answer = await get("/compare", { ...range, ranker: [a, b] });
    if (mine === asked) render(answer);
  } catch (error) {
    if (mine !== asked) return;
    $("compare-result").replaceChildren();
    onError(error);
  }
}
