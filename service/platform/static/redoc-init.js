// ReDoc for /docs/redoc, started from a file so the page needs no inline script.
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var root = document.getElementById("redoc");
  Redoc.init(root.getAttribute("data-spec-url"), {
    hideDownloadButton: false,
    expandResponses: "200,201",
    requiredPropsFirst: true,
    sortPropsAlphabetically: false,
    theme: { typography: { fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
                           headings: { fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" } } }
  }, root);
});
