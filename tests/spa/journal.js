// The client the README's "For SPA developers" section describes, as a page on another
// origin than the API: the access token lives in memory only, the refresh token is an
// HttpOnly cookie the browser sends by itself with credentials: "include".
"use strict";

(function () {
  const API = new URLSearchParams(location.search).get("api") + "/api/v1";
  const log = document.getElementById("log");
  let accessToken = null; // memory only

  const bearer = () => (accessToken ? { Authorization: `Bearer ${accessToken}` } : {});

  async function call(path, options = {}) {
    const response = await fetch(`${API}${path}`, options);
    const text = await response.text();
    const result = {
      status: response.status,
      body: text ? JSON.parse(text) : null,
      location: response.headers.get("Location"),
      etag: response.headers.get("ETag"),
    };
    log.textContent += `${options.method || "GET"} ${path} -> ${response.status}\n`;
    return result;
  }

  function json(method, body, extra = {}) {
    return { method, headers: { "Content-Type": "application/json", ...bearer() }, body: JSON.stringify(body), ...extra };
  }

  function remember(result) {
    if (result.status === 200) accessToken = result.body.access_token;
    return result;
  }

  window.journal = {
    token: () => accessToken,
    register: (email, password, fullName) =>
      call("/auth/register", json("POST", { email, password, full_name: fullName })),
    login: async (email, password) =>
      remember(await call("/auth/login", json("POST", { email, password }, { credentials: "include" }))),
    me: (token = accessToken) => call("/auth/me", { headers: token ? { Authorization: `Bearer ${token}` } : {} }),
    create: (item) => call("/achievements", json("POST", item)),
    list: () => call("/achievements", { headers: bearer() }),
    // One refresh at a time in the whole browser: a rotated refresh token must never be reused.
    refresh: () => navigator.locks.request("journal-refresh", async () =>
      remember(await call("/auth/refresh", { method: "POST", credentials: "include" }))),
    logout: async () => {
      const result = await call("/auth/logout", { method: "POST", credentials: "include", headers: bearer() });
      if (result.status === 204) accessToken = null;
      return result;
    },
  };
})();
