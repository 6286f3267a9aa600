// Live conversation turns: server-sent events append server-rendered (escaped) rows.
// EventSource reconnects by itself and sends Last-Event-ID, so nothing is shown twice.
(function () {
  "use strict";
  function follow(list) {
    var source = new EventSource(list.getAttribute("data-live-src"));
    source.addEventListener("turn", function (event) {
      var id = "turn-" + event.lastEventId;
      if (document.getElementById(id)) { return; }
      list.insertAdjacentHTML("beforeend", event.data);
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-src]").forEach(follow);
  });
})();
