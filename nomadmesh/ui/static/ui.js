// Live updates: listen on the UI's server-sent events and, on each "changed" event, refetch the
// page's live fragment (#live[data-src]) and swap it in. No reload, no framework; forms outside
// #live (the intention form) keep what is being typed.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var text = document.getElementById("live-text");
  var body = document.body;
  var inflight = null, again = false;

  function status(state, label) {
    body.setAttribute("data-live", state);
    if (text) text.textContent = label;
  }

  function refresh() {
    if (!live) return;
    if (inflight) { again = true; return; }
    inflight = fetch(live.getAttribute("data-src"), { headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        // Keep focus on the same control (by its form values) when the fragment is replaced.
        var active = document.activeElement, key = null;
        if (active && live.contains(active) && active.getAttribute("aria-label")) key = active.getAttribute("aria-label");
        live.innerHTML = html;
        if (key) {
          var again_ = live.querySelector('[aria-label="' + key.replace(/"/g, '\\"') + '"]');
          if (again_) again_.focus();
        }
        body.setAttribute("data-version", String(Number(body.getAttribute("data-version") || "0") + 1));
        status("ready", "Live · updated " + new Date().toLocaleTimeString());
      })
      .catch(function () { status("error", "Live updates: cannot reach the UI server"); })
      .finally(function () { inflight = null; if (again) { again = false; refresh(); } });
  }

  // Figures that move without any catalog change (a sidecar's Envoy counters) carry
  // data-refresh-s: refetch the fragment that often while the page is visible.
  function every() {
    var el = live && live.querySelector("[data-refresh-s]");
    return Math.max(1, el ? Number(el.getAttribute("data-refresh-s")) || 3 : 3) * 1000;
  }
  function poll() {
    if (live && live.querySelector("[data-refresh-s]") && !document.hidden) refresh();
    setTimeout(poll, every());
  }
  setTimeout(poll, every());

  if (!window.EventSource) { status("off", "Live updates need EventSource; reload to refresh"); return; }
  var events = new EventSource(body.getAttribute("data-events"));
  // "ready": the server now watches; one refetch covers changes made since this page was rendered.
  events.addEventListener("ready", refresh);
  events.addEventListener("changed", refresh);
  events.onerror = function () { status("connecting", "Reconnecting…"); };
})();
