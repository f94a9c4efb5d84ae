// Swagger UI for /docs. Kept out of the HTML so the page runs under a CSP without
// 'unsafe-inline' scripts; nothing here loads from another origin.
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    deepLinking: true,
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    // No spec validator badge: it would send the spec to validator.swagger.io.
    validatorUrl: null,
    // The token entered under "Authorize" lives in this tab's memory only.
    persistAuthorization: false,
    queryConfigEnabled: false,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
    tryItOutEnabled: false
  });
});
