// The dashboard: the date range, the headline tiles, and loading everything in turn.

import { NeedKey, currentKey, get, setKey } from "./api.js";
import { drawBias, fitBias, watchModelSelect } from "./bias.js";
import { clearCharts, dailyChart, positionChart } from "./charts.js";
import { compare, offerRankers } from "./compare.js";
import { DASH, DAY_MS, el, format, isoDay } from "./format.js";
import { openQuery, renderLists } from "./queries.js";

const $ = (id) => document.getElementById(id);

const TILES = [
  // name, label, value format, change format, whether higher is better
  ["sessions", "Sessions", format.count, null, true],
  ["ctr", "CTR", format.percent, format.points, true],
  ["conversion_rate", "Conversion rate", format.percent, format.points, true],
  ["zero_result_rate", "Zero-result rate", format.percent, format.points, false],
  ["mrr", "MRR", format.fixed(3), format.delta(3), true],
  ["mean_click_position", "Mean click position", format.fixed(2), format.delta(2), false],
];
const SERIES = [
  ["sessions", "Sessions", false, "#3366cc"],
  ["ctr", "CTR", true, "#2a9d8f"],
  ["conversion_rate", "Conversion", true, "#e07a1f"],
  ["zero_result_rate", "Zero-result rate", true, "#b5179e"],
];

// -- the range: whole UTC days, [from 00:00, the day after `to` 00:00) ----------------

function setDefaultRange() {
  const now = new Date();
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  $("from").value = isoDay(today - 29 * DAY_MS);
  $("to").value = isoDay(today);
}

// {since, until} in epoch ms, or null when the inputs make no range.
function selectedRange() {
  const since = Date.parse(`${$("from").value}T00:00:00Z`);
  const until = Date.parse(`${$("to").value}T00:00:00Z`) + DAY_MS;
  return since < until ? { since, until } : null;
}

const iso = (ms) => new Date(ms).toISOString();
const asParams = (r) => ({ since: iso(r.since), until: iso(r.until) });
const describe = (r) => `${isoDay(r.since)} – ${isoDay(r.until - DAY_MS)}`;

// -- what the page shows -----------------------------------------------------------

function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

function change(now, before, changeFormat) {
  if (now == null || before == null) return [DASH, ""];
  if (!changeFormat) {
    // Counts: relative change; none when there was nothing before.
    if (before === 0) return [now === 0 ? "±0%" : "new", now === 0 ? "" : "up"];
    const d = (now - before) / before;
    return [format.relative(d), d > 0 ? "up" : d < 0 ? "down" : ""];
  }
  const d = now - before;
  return [changeFormat(d), d > 0 ? "up" : d < 0 ? "down" : ""];
}

// previous: the range before, as long as the one shown.
function renderTiles(now, before, previous) {
  const days = Math.round((previous.until - previous.since) / DAY_MS);
  const tiles = TILES.map(([name, label, show, changeFormat, higherIsBetter]) => {
    const [text, direction] = change(now[name], before[name], changeFormat);
    const good = !direction ? "" : (direction === "up") === higherIsBetter ? "good" : "bad";
    // The numbers themselves, as data: what the browser tests hold to the API's.
    const dataset = { metric: name, value: String(now[name]), previous: String(before[name]) };
    return el(
      "div",
      { className: "tile", dataset },
      el("div", { className: "label" }, label),
      el("div", { className: "value" }, show(now[name])),
      el(
        "div",
        { className: `change ${good}`, title: `${describe(previous)}: ${show(before[name])}` },
        text,
        el("span", { className: "hint" }, ` vs previous ${days} days`),
      ),
    );
  });
  $("tiles").replaceChildren(...tiles);
}

// The metrics' charts (the position bias panel draws its own, when its fit comes).
function renderCharts(days, summary, range) {
  for (const name of [...SERIES.map(([n]) => n), "position"]) clearCharts($(`chart-${name}`));
  const byDay = new Map(days.groups.map((g) => [g.key, g]));
  const xs = [];
  for (let t = range.since; t < range.until; t += DAY_MS) xs.push(t / 1000);
  for (const [name, label, percent, color] of SERIES) {
    const values = xs.map((x) => {
      const g = byDay.get(isoDay(x * 1000));
      return g ? g[name] : name === "sessions" ? 0 : null;
    });
    dailyChart($(`chart-${name}`), xs, values, { label, percent, color });
  }
  positionChart($("chart-position"), summary.ctr_at_position, "#3366cc");
}

// -- loading -------------------------------------------------------------------------

let generation = 0; // a newer load makes an older one's answers moot
let current = null; // the range shown, as API parameters

function failed(error) {
  if (!(error instanceof NeedKey)) {
    status(`Could not load the metrics: ${error.message}`, true);
    return;
  }
  const had = currentKey();
  if (had) setKey(null); // revoked, mistyped or without read: ask for another
  $("key-message").textContent = had
    ? `The key was refused: ${error.message}`
    : "This service needs an API key to show its metrics.";
  $("content").hidden = true;
  $("key-form").hidden = false;
  $("forget-key").hidden = !currentKey();
  status("");
  $("key-input").focus();
}

async function load() {
  const mine = ++generation;
  const range = selectedRange();
  if (!range) {
    status("The range is empty: From must not be after To.", true);
    return;
  }
  const previous = { since: 2 * range.since - range.until, until: range.since };
  const params = asParams(range);
  status("Loading…");
  // The click model's fit starts now and is drawn when it comes, holding nothing up.
  const bias = fitBias(params);
  try {
    const [now, before, days, rankers, lists] = await Promise.all([
      get("", params),
      get("", asParams(previous)),
      get("", { ...params, by: "day" }),
      get("", { ...params, by: "ranker" }),
      get("/queries", { ...params, limit: 10 }),
    ]);
    if (mine !== generation) return;
    current = params;
    $("key-form").hidden = true;
    $("content").hidden = false; // before the charts: they size to their containers
    $("forget-key").hidden = !currentKey();
    $("drill").hidden = true;
    renderTiles(now, before, previous);
    renderCharts(days, now, range);
    renderLists(lists, (query) => openQuery(query, current, failed));
    drawBias(bias);
    document.body.dataset.since = params.since;
    document.body.dataset.until = params.until;
    status(`${format.count(now.sessions)} session(s), ${describe(range)} (UTC)`);
    if (offerRankers(rankers.groups)) await compare(current, failed);
    // Which load is fully drawn (the browser tests wait on it).
    if (mine === generation) document.body.dataset.loaded = String(mine);
  } catch (error) {
    if (mine === generation) failed(error);
  }
}

$("range").addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});
$("compare-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (current) compare(current, failed);
});
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setKey($("key-input").value.trim());
  $("key-input").value = "";
  load();
});
$("forget-key").addEventListener("click", () => {
  setKey(null);
  load();
});

watchModelSelect();
setDefaultRange();
load();
