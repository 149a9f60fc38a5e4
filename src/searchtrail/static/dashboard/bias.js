// The position bias panel: a click model fitted over the page's range, its examination by
// position relative to position 1, and its held-out fit quality in one line.
//
// A fit can take a moment on big data, so the panel loads on its own: the page starts it
// with the metrics (fitBias) and draws it once its answer comes (drawBias), without
// holding up the other panels; an answer for an older range or model is dropped.

import { clickModelNames, getClickModel } from "./api.js";
import { clearCharts, examinationChart } from "./charts.js";
import { DASH, format } from "./format.js";

const $ = (id) => document.getElementById(id);
const COLOR = "#6a4c93";
// The select's order: the models with an examination of their own first, COEC last (its
// "examination" is the CTR by position), any other the API accepts after, by name.
const ORDER = ["pbm", "ubm", "cascade", "dbn", "sdbn", "coec"];
const rank = (name) => (ORDER.includes(name) ? ORDER.indexOf(name) : ORDER.length);

let names = null; // the promise of the select's names, asked once per page
let asked = 0; // the fit asked last
let scope = null; // the range the panel shows, as API parameters

// The models the API accepts (dashboard.py lists its registry), into the select:
// pbm by default when there is one, else coec.
function models() {
  names ??= clickModelNames().then(
    (found) => {
      const sorted = [...found].sort((x, y) => rank(x) - rank(y) || (x < y ? -1 : 1));
      const select = $("bias-model");
      select.replaceChildren(...sorted.map((n) => new Option(n, n)));
      select.value = sorted.includes("pbm") ? "pbm" : sorted.includes("coec") ? "coec" : sorted[0];
      select.disabled = false;
      return sorted;
    },
    (error) => {
      names = null; // asked again with the next load
      throw error;
    },
  );
  return names;
}

function state(name, caption, title = "") {
  const panel = $("bias");
  panel.dataset.state = name;
  panel.classList.toggle("loading", name === "loading");
  $("bias-fit").textContent = caption;
  $("bias-fit").title = title;
  $("bias-fit").classList.toggle("error", name === "error");
}

// Ask for the fit of the selected model over `params` ({since, until}); returns what
// drawBias needs. The request starts at once, while the page may still be hidden.
export function fitBias(params) {
  const mine = ++asked;
  scope = params;
  const model = $("bias-model").value;
  state("loading", model ? `Fitting ${model}…` : "Fitting the click model…");
  const answer = models()
    .then(() => getClickModel($("bias-model").value, params))
    .then(
      (fit) => ({ fit }),
      (error) => ({ error }),
    );
  return { mine, params, answer };
}

// Draw the fit once it comes, unless a newer one was asked meanwhile. The page must be
// shown by then: the chart takes its container's width.
export async function drawBias({ mine, params, answer }) {
  const { fit, error } = await answer;
  if (mine !== asked) return;
  const box = $("chart-bias");
  if (error) {
    clearCharts(box);
    delete box.dataset.plotted;
    state("error", `Could not fit the click model: ${error.message}`);
    return;
  }
  clearCharts(box);
  examinationChart(box, fit.examination.length ? fit.examination : [null], COLOR);
  Object.assign($("bias").dataset, { model: fit.model, since: params.since, until: params.until });
  if (!fit.counts.sessions) {
    state("empty", "No sessions in this range: nothing to fit.");
    return;
  }
  const q = fit.fit;
  const ll = q.log_likelihood == null ? DASH : format.fixed(3)(q.log_likelihood);
  const pp = q.perplexity == null ? DASH : format.fixed(3)(q.perplexity);
  const title =
    `Scored on the latest ${format.count(q.test_sessions)} session(s) by time, fitted on ` +
    `the other ${format.count(q.train_sessions)}; the curve is from a fit on all ` +
    `${format.count(fit.counts.sessions)}. Log-likelihood: natural log per session, ` +
    "higher is better; perplexity: 1 is perfect.";
  state("ready", `${fit.model}: held-out log-likelihood ${ll}, perplexity ${pp}`, title);
}

// Another model from the select: fitted over the range shown.
export function watchModelSelect() {
  $("bias-model").addEventListener("change", () => {
    if (scope) drawBias(fitBias(scope));
  });
}
