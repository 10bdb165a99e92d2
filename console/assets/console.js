// trustlog console: refreshes the page's live parts (elements with
// data-refresh and an id) every few seconds without reloading, and
// wires the "select all" box of the dead list. No framework, nothing
// loaded from elsewhere; the pages work without it.
(function () {
  "use strict";
  var every = Number(document.body && document.body.dataset.refreshEvery) || 5000;
  var refreshes = 0;

  function busy(el) {
    // Never swap a part the operator is working in.
    if (el.querySelector("input:checked")) return true;
    var a = document.activeElement;
    return a && a !== document.body && el.contains(a);
  }

  function refresh() {
    var parts = document.querySelectorAll("[data-refresh][id]");
    if (!parts.length || document.hidden) return;
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (res) {
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        parts.forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh && !busy(el)) el.replaceWith(document.importNode(fresh, true));
        });
        refreshes++;
        document.body.dataset.refreshes = String(refreshes);
        document.body.classList.remove("stale");
      })
      .catch(function () {
        document.body.classList.add("stale");
      });
  }

  function wireSelectAll() {
    document.addEventListener("change", function (ev) {
      if (ev.target && ev.target.id === "select-all") {
        document.querySelectorAll('input[name="op_id"][form="requeue"]').forEach(function (b) {
          b.checked = ev.target.checked;
        });
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    every = Number(document.body.dataset.refreshEvery) || every;
    wireSelectAll();
    setInterval(refresh, every);
  });
})();
