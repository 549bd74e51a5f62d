// Live updates: listen on the UI's server-sent events and, on each "changed" event, refetch the
// page's live fragment (#live[data-src]) and swap it in. No reload, no framework; forms outside
// #live (the intention form) keep what is being typed.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var text = document.getElementById("live-text");
  var body = document.body;
  var inflight = null, again = false;

  // A form in the live fragment that someone is filling in (form[data-keep], the edge panel's L7 rule)
  // keeps what was typed when the fragment is swapped: its fields are saved by name and put back.
  document.addEventListener("input", function (ev) {
    var form = ev.target && ev.target.form;
    if (form && form.hasAttribute("data-keep")) form.setAttribute("data-dirty", "1");
  });
  function fieldsOf(root) {
    return Array.prototype.slice.call(root.querySelectorAll("form[data-keep] [name]"))
      .filter(function (el) { return el.type !== "hidden"; });
  }
  function keyOf(el) {
    var box = el.type === "checkbox" || el.type === "radio";
    return el.form.getAttribute("data-keep") + "|" + el.name + (box ? "|" + el.value : "");
  }
  function saveTyped() {
    var saved = {};
    fieldsOf(live).forEach(function (el) {
      if (!el.form.hasAttribute("data-dirty")) return;
      saved[keyOf(el)] = (el.type === "checkbox" || el.type === "radio") ? el.checked : el.value;
    });
    return saved;
  }
  function restoreTyped(saved) {
    fieldsOf(live).forEach(function (el) {
      var k = keyOf(el);
      if (!(k in saved)) return;
      if (el.type === "checkbox" || el.type === "radio") el.checked = saved[k]; else el.value = saved[k];
      el.form.setAttribute("data-dirty", "1");
    });
  }

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
        if (active && live.contains(active)) key = active.getAttribute("aria-label") || active.id || null;
        var typed = saveTyped();
        live.innerHTML = html;
        restoreTyped(typed);
        if (key) {
          var q = key.replace(/"/g, '\\"');
          var again_ = live.querySelector('[aria-label="' + q + '"]') || live.querySelector('[id="' + q + '"]');
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
