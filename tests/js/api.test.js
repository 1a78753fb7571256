// server/static/js/api.js: one answer shape for every request, whatever the network does.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { createApi } from "../../server/static/js/api.js";
import { fakeFetch } from "./fakes.js";

describe("api", () => {
  it("sends GET to /api/v1 with the session cookie and gives the JSON answer", async () => {
    const fetch = fakeFetch({ "GET /api/v1/me": { status: 200, body: { name: "Ada" } } });
    const api = createApi({ fetch });
    assert.deepEqual(await api("/me"), { ok: true, status: 200, body: { name: "Ada" } });
    assert.deepEqual(fetch.requests, [
      { url: "/api/v1/me", method: "GET", headers: {}, body: undefined, credentials: "same-origin" },
    ]);
  });

  it("sends a body as JSON with its content type", async () => {
    const fetch = fakeFetch({ "POST /api/v1/auth/login": { status: 200, body: { name: "Ada" } } });
    await createApi({ fetch })("/auth/login", { method: "POST", body: { username: "ada", password: "pw" } });
    const [request] = fetch.requests;
    assert.equal(request.body, '{"username":"ada","password":"pw"}');
    assert.deepEqual(request.headers, { "Content-Type": "application/json" });
  });

  it("sends a raw body (a logo) with the type given", async () => {
    const fetch = fakeFetch({ "PUT /api/v1/branding/logo": { status: 200, body: {} } });
    const file = { name: "logo.svg" };
    await createApi({ fetch })("/branding/logo", { method: "PUT", raw: file, contentType: "image/svg+xml" });
    const [request] = fetch.requests;
    assert.equal(request.body, file);
    assert.deepEqual(request.headers, { "Content-Type": "image/svg+xml" });
  });

  it("answers status 0 when the server cannot be reached", async () => {
    const fetch = fakeFetch({ "GET /api/v1/me": new TypeError("Failed to fetch") });
    assert.deepEqual(await createApi({ fetch })("/me"), { ok: false, status: 0, body: null });
  });

  it("gives a refusal's problem details, and null for an empty body", async () => {
    const fetch = fakeFetch({
      "POST /api/v1/join": { status: 410, body: { reason: "expired", detail: "The link has expired." } },
      "POST /api/v1/auth/logout": { status: 204 },
    });
    const api = createApi({ fetch });
    assert.deepEqual(await api("/join", { method: "POST", body: {} }), {
      ok: false, status: 410, body: { reason: "expired", detail: "The link has expired." },
    });
    assert.deepEqual(await api("/auth/logout", { method: "POST", body: {} }), { ok: true, status: 204, body: null });
  });

  it("tells the page of every 401 with the path asked", async () => {
    const heard = [];
    const fetch = fakeFetch({ "GET /api/v1/users": { status: 401, body: { detail: "log in" } } });
    const api = createApi({ fetch, onUnauthorized: (path) => heard.push(path) });
    const result = await api("/users");
    assert.equal(result.status, 401);
    assert.deepEqual(heard, ["/users"]);
  });
});
