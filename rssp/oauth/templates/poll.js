(function () {
  "use strict";
  var field = document.querySelector("input[name=request]");
  if (!field || !window.fetch) { return; }
  var url = "status?request=" + encodeURIComponent(field.value);
  function show(message) {
    var main = document.querySelector("main");
    while (main.firstChild) { main.removeChild(main.firstChild); }
    var h = document.createElement("h1");
    h.textContent = "Request abandoned";
    var p = document.createElement("p");
    p.className = "error";
    p.id = "abandoned";
    p.setAttribute("role", "alert");
    p.textContent = message;
    main.appendChild(h);
    main.appendChild(p);
    document.title = "Request abandoned";
  }
  function poll() {
    fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { state: "retry" }; })
      .then(function (s) {
        if (s.state === "abandoned") { show(s.message); return; }
        if (s.state === "gone") { return; }
        setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 2000);
})();
