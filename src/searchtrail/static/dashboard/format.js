// Numbers and DOM helpers shared by the page's modules. Text from the API (queries,
// object ids) is user data: it only ever goes into textContent, never into HTML.

export const DASH = "—";
export const DAY_MS = 86_400_000;

const signed = (x, text) => (x > 0 ? "+" : x < 0 ? "−" : "±") + text;

export const format = {
  count: (v) => (v == null ? DASH : v.toLocaleString("en-US")),
  percent: (v) => (v == null ? DASH : `${(v * 100).toFixed(1)}%`),
  fixed: (digits) => (v) => (v == null ? DASH : v.toFixed(digits)),
  // A relative change (0.1: +10.0%).
  relative: (d) => (d == null ? DASH : signed(d, `${Math.abs(d * 100).toFixed(1)}%`)),
  // A difference of two rates, in percentage points.
  points: (d) => (d == null ? DASH : signed(d, `${Math.abs(d * 100).toFixed(1)} pp`)),
  delta: (digits) => (d) => (d == null ? DASH : signed(d, Math.abs(d).toFixed(digits))),
};

// The day of an epoch-ms time, as YYYY-MM-DD (UTC).
export const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

// Create an element: el("td", {className: "x", dataset: {k: "v"}}, "text", child, ...).
export function el(tag, { dataset, ...props } = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.dataset, dataset);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function table(target, head, rows, empty) {
  const headRow = el("tr", {}, ...head.map((h) => el("th", {}, h)));
  const body = el("tbody");
  for (const row of rows) body.append(row);
  if (!rows.length) {
    body.append(el("tr", {}, el("td", { colSpan: head.length, className: "empty" }, empty)));
  }
  target.replaceChildren(el("thead", {}, headRow), body);
}
