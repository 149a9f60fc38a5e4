// The charts, drawn by uPlot (vendor/, a global loaded before the modules).
/* global uPlot */

import { format } from "./format.js";

const HEIGHT = 170;
const charts = []; // [uPlot, container], redrawn on resize, destroyed on reload

const widthOf = (container) => Math.max(240, container.clientWidth);
// Axis labels: whole counts only; rates as percentages without a needless ".0".
const countTicks = (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? format.count(t) : ""));
const percentTicks = (_u, ticks) => ticks.map((t) => `${+(t * 100).toFixed(1)}%`);
// From 0 to a little above the largest value; 0..1 while there is none.
const fromZero = (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1];

function add(container, options, data) {
  const size = { width: widthOf(container), height: HEIGHT };
  const chart = new uPlot({ ...size, ...options }, data, container);
  charts.push([chart, container]);
  return chart;
}

// Every chart, or only those drawn into `container`.
export function clearCharts(container = null) {
  for (let i = charts.length - 1; i >= 0; i--) {
    if (container && charts[i][1] !== container) continue;
    charts[i][0].destroy();
    charts.splice(i, 1);
  }
}

let pending = null;
window.addEventListener("resize", () => {
  clearTimeout(pending);
  pending = setTimeout(() => {
    for (const [chart, container] of charts) {
      chart.setSize({ width: widthOf(container), height: HEIGHT });
    }
  }, 100);
});

// One value per UTC day: days are epoch seconds, values numbers or null (no sessions).
export function dailyChart(container, days, values, { label, percent, color }) {
  const show = percent ? format.percent : format.count;
  add(
    container,
    {
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      scales: { x: { time: true }, y: { range: fromZero } },
      axes: [{}, { size: 56, values: percent ? percentTicks : countTicks }],
      series: [
        { label: "Day", value: "{YYYY}-{MM}-{DD}" },
        { label, stroke: color, fill: `${color}22`, width: 2, value: (_u, v) => show(v) },
      ],
    },
    [days, values],
  );
}

// The click-through rate at positions 1..n, as bars.
export function positionChart(container, rates, color) {
  const positions = rates.map((_r, i) => i + 1);
  add(
    container,
    {
      scales: { x: { time: false, range: [0.5, rates.length + 0.5] }, y: { range: fromZero } },
      axes: [
        { values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? t : "")) },
        { size: 56, values: percentTicks },
      ],
      series: [
        { label: "position", value: (_u, v) => v },
        {
          label: "CTR",
          fill: `${color}bb`,
          stroke: color,
          paths: uPlot.paths.bars({ size: [0.7, 40] }),
          points: { show: false },
          value: (_u, v) => format.percent(v),
        },
      ],
    },
    [positions, rates],
  );
}

// A click model's examination at positions 1..n relative to position 1, as a line. The
// values plotted are kept on the container (data-plotted, JSON) for the browser tests.
export function examinationChart(container, examination, color) {
  const positions = examination.map((_e, i) => i + 1);
  const chart = add(
    container,
    {
      scales: { x: { time: false, range: [0.5, examination.length + 0.5] }, y: { range: fromZero } },
      axes: [
        { values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? t : "")) },
        { size: 56, values: (_u, ticks) => ticks.map((t) => +t.toFixed(2)) },
      ],
      series: [
        { label: "position", value: (_u, v) => v },
        {
          label: "examination",
          stroke: color,
          fill: `${color}22`,
          width: 2,
          points: { show: true, size: 6, fill: color },
          value: (_u, v) => format.fixed(3)(v),
        },
      ],
    },
    [positions, examination],
  );
  container.dataset.plotted = JSON.stringify(chart.data[1]);
  return chart;
}
