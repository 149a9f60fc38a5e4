// The metrics API and the read key.
//
// The page first asks without a key: a service with no keys answers (it listens on
// loopback only). A 401 or 403 raises NeedKey, and the page asks its user for a key
// with the read scope. The key is kept in sessionStorage: it reads every search the
// service recorded, so it stays with this tab and is gone when the tab closes, never
// written to disk for the next user of the browser profile. It travels in the
// Authorization header only, never in a URL.

// Relative to the page, so a proxy serving the service under a path prefix keeps it.
const BASE = new URL("../api/v1/clickstream/internal/metrics", document.baseURI);
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
export async function get(path, params = {}) {
  const url = new URL(BASE.href + path);
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
