// Rova dashboard: refreshes every element with a data-live attribute
// from that URL (an HTML fragment) every two seconds, without reloading
// the page. A part the keyboard is in is left alone until focus leaves.
// Fragments carry an ETag: the browser revalidates ("no-cache") and an
// unchanged part comes back as a bodiless 304.
(function () {
  "use strict";
  var PERIOD = 2000;
  function refresh(el) {
    var url = el.getAttribute("data-live");
    return fetch(url, { credentials: "same-origin", redirect: "manual", cache: "no-cache" })
      .then(function (r) {
        if (r.type === "opaqueredirect" || r.status === 401) {
          window.location.reload();
          return;
        }
        if (!r.ok) { return; }
        return r.text().then(function (html) {
          if (el.contains(document.activeElement) && document.activeElement !== document.body) { return; }
          if (el.innerHTML !== html) {
            el.innerHTML = html;
            el.setAttribute("data-updated", String(Date.now()));
          }
        });
      })
      .catch(function () {});
  }
  function tick() {
    if (!document.hidden) {
      var els = document.querySelectorAll("[data-live]");
      for (var i = 0; i < els.length; i++) { refresh(els[i]); }
    }
    window.setTimeout(tick, PERIOD);
  }
  window.setTimeout(tick, PERIOD);
}());
