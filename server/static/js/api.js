// The server's JSON API (/api/v1) for every page: one request, one {ok, status, body} answer.
// A network failure is an answer too (status 0), never an exception, so a caller has one thing
// to look at; a body that is not JSON (an empty 204) is null.
//
//   import { api } from "/static/js/api.js";
//   const me = await api("/me");                                       // GET
//   await api("/auth/login", { method: "POST", body: { username, password } });   // JSON
//   await api("/branding/logo", { method: "PUT", raw: file, contentType: "image/png" });
//
// A page that must hear of an ended login makes its own: createApi({ onUnauthorized }).

export const API_BASE = "/api/v1";

/** An api() for `base`; `onUnauthorized(path)` hears of every 401 answer. */
export function createApi({ base = API_BASE, fetch = (...args) => globalThis.fetch(...args), onUnauthorized } = {}) {
  return async function api(path, { method = "GET", body, raw, contentType } = {}) {
    const options = { method, credentials: "same-origin", headers: {} };
    if (raw !== undefined) {
      options.body = raw;
      options.headers["Content-Type"] = contentType;
    } else if (body !== undefined) {
      options.body = JSON.stringify(body);
      options.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(base + path, options);
    } catch {
      return { ok: false, status: 0, body: null };
    }
    let data = null;
    try { data = await response.json(); } catch { /* empty body */ }
    if (response.status === 401 && onUnauthorized) onUnauthorized(path);
    return { ok: response.ok, status: response.status, body: data };
  };
}

/** The API as a page that handles a 401 where it asks. */
export const api = createApi();
