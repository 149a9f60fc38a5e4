/* searchtrail browser script: records searches and clicks, and gets them to the service
 * even when the page is left. No dependencies; never blocks or breaks the page.
 *
 *   <script src="https://clicks.example/t/st.js" data-key="st_..._..." async></script>
 *
 * The endpoint is where the script came from (override: data-endpoint). The key, if the
 * service has keys, must be an ingest-only key: it is sent as ?key=, the only way
 * navigator.sendBeacon can carry one. Docs: docs/browser.md.
 */
(function () {
  "use strict";
  var w = window;
  if (w.searchtrail && w.searchtrail.version) return;

  var me = document.currentScript;
  var attr = function (name) { return (me && me.getAttribute(name)) || ""; };
  var base = attr("data-endpoint") ||
    (me && me.src ? me.src.replace(/\/st\.js(\?.*)?$/, "") : "");
  var key = attr("data-key");
  var flushMs = parseInt(attr("data-flush-ms"), 10);
  if (!(flushMs >= 0)) flushMs = 1000;
  var STORE = "searchtrail:queue";
  var MAX_ATTEMPTS = 10;
  var KEEPALIVE_BYTES = 60000; // browsers allow 64 KiB of keepalive bodies in flight

  var queue = load();     // [{id, kind: "session"|"events", sid, body, attempts, due}]
  var inflight = {};      // item id -> true while a request carries it
  var beaconed = {};      // item id -> true once handed to sendBeacon
  var timer = null;
  var current = attr("data-session") || null;

  function uid() {
    var c = w.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    return Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
  }

  function load() {
    try { return JSON.parse(w.sessionStorage.getItem(STORE) || "[]") || []; } catch (e) { return []; }
  }

  function save() {
    try { w.sessionStorage.setItem(STORE, JSON.stringify(queue)); } catch (e) { /* full or off */ }
  }

  function url(path) {
    return base + path + (key ? "?key=" + encodeURIComponent(key) : "");
  }

  function push(item) {
    item.id = uid();
    item.attempts = 0;
    item.due = 0;
    queue.push(item);
    save();
  }

  function schedule(ms) {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(function () { timer = null; pump(); }, Math.max(0, ms));
  }

  // The next request to make: a session registration, or the due events of one session
  // whose registration (if queued here) has gone through.
  function nextBatch(now, all) {
    var pendingSession = {};
    for (var i = 0; i < queue.length; i++) {
      var it = queue[i];
      if (inflight[it.id]) { if (it.kind === "session") pendingSession[it.sid] = true; continue; }
      if (!all && it.due > now) { if (it.kind === "session") pendingSession[it.sid] = true; continue; }
      if (it.kind === "session") return { path: "/session", body: it.body, items: [it] };
      if (pendingSession[it.sid] && !all) continue;
      var items = [], events = [];
      for (var j = i; j < queue.length && events.length < 500; j++) {
        var o = queue[j];
        if (o.kind === "events" && o.sid === it.sid && !inflight[o.id] && (all || o.due <= now)) {
          items.push(o);
          events.push(o.body);
        }
      }
      return { path: "/session/events", body: { session_id: it.sid, events: events }, items: items };
    }
    return null;
  }

  function done(items) {
    var ids = {};
    items.forEach(function (it) { ids[it.id] = true; delete inflight[it.id]; });
    queue = queue.filter(function (it) { return !ids[it.id]; });
    save();
  }

  function retry(items, afterMs) {
    var now = Date.now();
    var dropped = [];
    items.forEach(function (it) {
      delete inflight[it.id];
      it.attempts += 1;
      if (it.attempts >= MAX_ATTEMPTS) { dropped.push(it); return; }
      var backoff = Math.min(60000, 1000 * Math.pow(2, it.attempts - 1)) * (0.5 + Math.random() / 2);
      it.due = now + Math.max(backoff, afterMs || 0);
    });
    if (dropped.length) { warn("giving up after " + MAX_ATTEMPTS + " attempts", dropped); done(dropped); }
    save();
  }

  function warn(msg, detail) {
    try { if (w.console) w.console.warn("searchtrail: " + msg, detail); } catch (e) { /* ignore */ }
  }

  function send(batch, unloading) {
    var body = JSON.stringify(batch.body);
    var small = body.length < KEEPALIVE_BYTES;
    batch.items.forEach(function (it) { inflight[it.id] = true; });
    if (typeof w.fetch === "function" && (small || !unloading)) {
      // text/plain keeps this a "simple" request: no CORS preflight, fine during unload.
      return w.fetch(url(batch.path), {
        method: "POST", body: body, keepalive: small, credentials: "omit", mode: "cors",
        headers: { "Content-Type": "text/plain;charset=UTF-8" }
      }).then(function (r) { answer(batch, r.status, r.headers.get("Retry-After")); },
              function () { retry(batch.items); });
    }
    var beacon = w.navigator && w.navigator.sendBeacon &&
      w.navigator.sendBeacon(url(batch.path), new Blob([body], { type: "text/plain;charset=UTF-8" }));
    // A beacon's answer is never seen: the items stay queued (at least once; the service
    // drops repeated event ids), and count as in flight until the page is left.
    batch.items.forEach(function (it) { if (beacon) beaconed[it.id] = true; else delete inflight[it.id]; });
    return null;
  }

  function answer(batch, status, retryAfter) {
    if (status >= 200 && status < 300) { done(batch.items); return; }
    if (status === 400 && !batch.items[0].untimed) {
      // A client clock off the service's window: let the service stamp the time.
      batch.items.forEach(function (it) { delete it.body.created_at; it.untimed = true; delete inflight[it.id]; });
      save();
      return;
    }
    if (status === 404 || status === 408 || status === 429 || status >= 500 || status === 0) {
      retry(batch.items, (parseInt(retryAfter, 10) || 0) * 1000);
      return;
    }
    warn("the service refused " + batch.path + " with " + status, batch.body);
    done(batch.items);
  }

  function pump() {
    try {
      var now = Date.now();
      var batch = nextBatch(now, false);
      if (!batch) {
        var due = Infinity;
        queue.forEach(function (it) { if (!inflight[it.id]) due = Math.min(due, it.due); });
        if (due !== Infinity) schedule(due - now);
        return;
      }
      var p = send(batch, false);
      if (p) p.then(function () { schedule(0); });
    } catch (e) {
      warn("error", e);
    }
  }

  // The page is going away (or may never come back from the background): send all that
  // is queued now, with keepalive fetches, or beacons for what does not fit.
  function flushAll() {
    try {
      if (timer !== null) { clearTimeout(timer); timer = null; }
      var batch;
      var guard = 0;
      while ((batch = nextBatch(Date.now(), true)) && guard++ < 100) send(batch, true);
    } catch (e) {
      warn("error", e);
    }
  }

  function session(data) {
    data = data || {};
    var body = {};
    for (var k in data) if (Object.prototype.hasOwnProperty.call(data, k)) body[k] = data[k];
    if (!body.session_id) body.session_id = uid();
    if (body.created_at === undefined) body.created_at = Date.now();
    current = body.session_id;
    push({ kind: "session", sid: body.session_id, body: body });
    schedule(0); // registered at once, so later events find it
    return body.session_id;
  }

  function event(type, objectId, meta, sessionId) {
    var sid = sessionId || current;
    if (!sid) { warn("no session: call searchtrail.session() or searchtrail.use(id) first"); return null; }
    var body = { event_id: uid(), event_type: type || "click", created_at: Date.now() };
    if (objectId != null) body.object_id = String(objectId);
    if (meta) body.meta = meta;
    push({ kind: "events", sid: sid, body: body });
    if (timer === null) schedule(flushMs);
    return body.event_id;
  }

  // Clicks on anything marked data-st-object="ID" (inside data-st-session="SID", or the
  // current session) are recorded without any code.
  document.addEventListener("click", function (e) {
    try {
      var el = e.target && e.target.closest ? e.target.closest("[data-st-object]") : null;
      if (!el) return;
      var holder = el.closest("[data-st-session]");
      event(el.getAttribute("data-st-event") || "click", el.getAttribute("data-st-object"), null,
            holder ? holder.getAttribute("data-st-session") : null);
    } catch (err) {
      warn("error", err);
    }
  }, true);
  w.addEventListener("pagehide", flushAll);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") { flushAll(); return; }
    // Back in view: what went by beacon may not have arrived; send it again, the service
    // keeps one copy.
    for (var id in beaconed) delete inflight[id];
    beaconed = {};
    if (queue.length) schedule(flushMs);
  });

  w.searchtrail = {
    version: "1",
    session: session,
    use: function (sid) { current = sid; },
    event: event,
    click: function (objectId, meta) { return event("click", objectId, meta); },
    flush: function () { queue.forEach(function (it) { it.due = 0; }); pump(); },
    pending: function () { return queue.length; }
  };
  if (queue.length) schedule(0); // what a previous page of this tab left unsent
})();
