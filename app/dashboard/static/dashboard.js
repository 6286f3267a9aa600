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
  // The sign-in link carries its token in the fragment, which no server or log sees.
  function takeLinkToken() {
    var field = document.getElementById("link-token");
    if (!field || location.hash.indexOf("#t=") !== 0) { return; }
    field.value = decodeURIComponent(location.hash.slice(3));
    history.replaceState(null, "", location.pathname);
  }
  document.addEventListener("DOMContentLoaded", function () {
    takeLinkToken();
    document.querySelectorAll("[data-live-src]").forEach(follow);
  });
})();
