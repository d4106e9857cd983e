// The Madre console's script. The pages work without it (plain forms and links); with it,
// ids copy with one click, relative times keep ageing, and a page follows the event
// stream: on each event it fetches itself again and swaps the parts marked data-live,
// leaving alone a part you are typing in (it is swapped when you leave it).
"use strict";
(function () {
  var state = document.querySelector("[data-live-state]");
  var say = function (text) { if (state) { state.textContent = text; } };

  // ------------------------------------------------------------------ copy
  function copyOldWay(text) {  // plain http, or a browser that refuses the clipboard API
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "vh";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
  }
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { copyOldWay(text); });
    }
    copyOldWay(text);
    return Promise.resolve();
  }
  function armCopies(root) {
    root.querySelectorAll("button.copy[hidden]").forEach(function (b) { b.hidden = false; });
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.copy");
    if (!button) { return; }
    var before = state ? state.textContent : "";
    copyText(button.getAttribute("data-copy")).then(function () {
      button.textContent = "Copied";
      say("Copied " + button.getAttribute("data-copy"));
      setTimeout(function () { button.textContent = "Copy"; say(before); }, 1500);
    });
  });

  // ------------------------------------------------------------------ relative times
  var UNITS = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
  function span(seconds) {
    seconds = Math.abs(seconds);
    for (var i = 0; i < UNITS.length; i++) {
      if (seconds >= UNITS[i][0]) { return Math.floor(seconds / UNITS[i][0]) + " " + UNITS[i][1]; }
    }
    return "0 s";
  }
  function relative(iso) {  // as madre/http/console/humane.py writes it
    var delta = (Date.parse(iso) - Date.now()) / 1000;
    if (Math.abs(delta) < 5) { return "just now"; }
    return delta > 0 ? "in " + span(delta) : span(delta) + " ago";
  }
  function ageTimes(root) {
    root.querySelectorAll("time[data-relative]").forEach(function (t) {
      var when = t.getAttribute("datetime");
      if (when) { t.textContent = relative(when); }
    });
  }
  setInterval(function () { ageTimes(document); }, 15000);

  // ------------------------------------------------------------------ live parts
  function busy(part) {
    if (part.contains(document.activeElement) && document.activeElement !== document.body) {
      return true;
    }
    return Array.prototype.some.call(part.querySelectorAll("input, textarea"), function (f) {
      return f.type !== "hidden" && f.value !== f.defaultValue;
    });
  }
  function swap(doc) {
    var waiting = false;
    doc.querySelectorAll("[data-live]").forEach(function (fresh) {
      var name = fresh.getAttribute("data-live");
      var old = document.querySelector('[data-live="' + name + '"]');
      if (!old) { return; }
      if (busy(old)) { waiting = true; return; }
      var open = Array.prototype.map.call(old.querySelectorAll("details"), function (d) { return d.open; });
      old.replaceWith(fresh);
      fresh.querySelectorAll("details").forEach(function (d, i) { if (open[i]) { d.open = true; } });
      armCopies(fresh);
      ageTimes(fresh);
    });
    document.title = doc.title;
    return waiting;
  }
  var timer = null, pending = false, deferred = false, fetching = false, refreshes = 0;
  function refresh() {
    if (fetching) { pending = true; return; }
    fetching = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected && response.url.indexOf("/console/sign-in") !== -1) {
          window.location.assign(response.url);  // the session ended
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html === null) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        deferred = swap(doc);
        refreshes += 1;
        document.body.setAttribute("data-refreshes", String(refreshes));
      })
      .catch(function () { say("Could not refresh; retrying with the next event."); })
      .then(function () {
        fetching = false;
        if (pending) { pending = false; later(); }
      });
  }
  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 200);
  }
  document.addEventListener("focusout", function () {
    if (deferred) { deferred = false; later(); }  // what you were in may be swapped now
  });

  var url = document.body.getAttribute("data-stream");
  if (url && window.EventSource) {
    var stream = new EventSource(url);
    stream.addEventListener("open", function () {
      say("Live");
      document.body.setAttribute("data-live-open", "true");
    });
    stream.addEventListener("change", later);
    stream.addEventListener("dropped", function () { later(); });
    stream.addEventListener("error", function () {
      say(stream.readyState === EventSource.CLOSED
          ? "Live updates stopped; reload the page." : "Reconnecting…");
    });
  }
  var every = parseInt(document.body.getAttribute("data-refresh") || "", 10);
  if (every > 0) { setInterval(refresh, every * 1000); }

  armCopies(document);
  ageTimes(document);
})();
