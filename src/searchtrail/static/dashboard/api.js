// The metrics API and the read key.
//
// The page first asks without a key: a service with no keys answers (it listens on
// loopback only). A 401 or 403 raises NeedKey, and the page asks its user for a key
// with the read scope. The key is kept in sessionStorage: it reads every search the
// service recorded, so it stays with this tab and is gone when the tab closes, never
// written to disk for the next user of the browser profile. It travels in the
// Authorization header only, never in a URL.

// Relative to the page, so a proxy serving the service under a path prefix keeps it.
const INTERNAL = new URL("../api/v1/clickstream/internal/", document.baseURI);
const BASE = new URL("metrics", INTERNAL);
const CLICKMODEL = new URL("clickmodel", INTERNAL);
// The click models this service fits (the page's own file list, no key): see dashboard.py.
const MODELS = new URL("clickmodels.json", document.baseURI);
const STORED = "searchtrail.dashboard.readKey";

export class NeedKey extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

let key = null;
try {
  key = sessionStorage.getItem(STORED);
} catch {
  // storage disabled: the key lives as long as the page
}

export const currentKey = () => key;

export function setKey(value) {
  key = value || null;
  try {
    if (key) sessionStorage.setItem(STORED, key);
    else sessionStorage.removeItem(STORED);
  } catch {
    // storage disabled: kept by this page alone
  }
}

// GET BASE + path with params (arrays repeat the name); the parsed JSON answer.
export const get = (path, params = {}) => getUrl(new URL(BASE.href + path), params);

// A click model's fit over a range: GET .../clickmodel?model=NAME&since=&until=.
export const getClickModel = (model, params) => getUrl(new URL(CLICKMODEL), { ...params, model });

// The names of the click models the API accepts, e.g. ["coec", "pbm"].
export async function clickModelNames() {
  const response = await fetch(MODELS, { credentials: "omit", cache: "no-store" });
  if (!response.ok) throw new Error(`${MODELS.pathname}: HTTP ${response.status}`);
  return (await response.json()).models;
}

async function getUrl(url, params) {
  for (const [name, value] of Object.entries(params)) {
    for (const v of [].concat(value)) {
      if (v !== null && v !== undefined) url.searchParams.append(name, String(v));
    }
  }
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(url, { headers, credentials: "omit", cache: "no-store" });
  if (response.status === 401 || response.status === 403) {
    throw new NeedKey(response.status, await detail(response));
  }
  if (!response.ok) {
    throw new Error(`${url.pathname}: HTTP ${response.status} ${await detail(response)}`);
  }
  return response.json();
}

async function detail(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return "";
  }
}
