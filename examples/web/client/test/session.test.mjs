// The client package without a browser: session renewal inside the SDK's fetch, the API's error shape, and where
// each write goes (the API for group and event rooms, the person's Matrix session for direct rooms).

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { Api, ApiError, MatrixSession, Writes, directContent } from "../index.js";

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

/** A fetch answering from `handler(url, init)`, recording every call. */
function fakeFetch(handler) {
  const calls = [];
  globalThis.fetch = async (url, init = {}) => {
    calls.push({ url: String(url), init, auth: new Headers(init.headers).get("Authorization") });
    return handler(String(url), init);
  };
  return calls;
}

const json = (status, body, headers = {}) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
const answer = (token, refresh = "r1") => ({ homeserverUrl: "https://hs", matrixUserId: "@om_t.a:hs", deviceId: "WEB1", accessToken: token, refreshToken: refresh, expiresInMs: 300_000 });

test("an expired token is renewed with /refresh inside fetch and the request repeated, unseen by the SDK", async () => {
  const api = { createSession: async () => answer("old") };
  const session = await new MatrixSession(api, "WEB1").start();
  session.stop();
  const calls = fakeFetch((url, init) => {
    if (url.endsWith("/refresh")) return json(200, { access_token: "new", refresh_token: "r2", expires_in_ms: 300_000 });
    const auth = new Headers(init.headers).get("Authorization");
    return auth === "Bearer old" ? json(401, { errcode: "M_UNKNOWN_TOKEN" }) : json(200, { ok: true });
  });
  const response = await session.fetch("https://hs/_matrix/client/v3/sync", { headers: { Authorization: "Bearer old" } });
  session.stop();
  assert.equal(response.status, 200);
  assert.deepEqual(calls.map((call) => [call.url.replace("https://hs/_matrix/client/v3", ""), call.auth]), [
    ["/sync", "Bearer old"],
    ["/refresh", null],
    ["/sync", "Bearer new"],
  ]);
  assert.equal(session.accessToken, "new");
  assert.equal(session.refreshToken, "r2");
});

test("the API's errors carry code, retryable and Retry-After; a 401 re-mints the JWT once", async () => {
  let minted = 0;
  const api = new Api(async () => `jwt${minted}`, async () => (minted += 1), { baseUrl: "https://api" });
  const calls = fakeFetch((url, init) => {
    if (new Headers(init.headers).get("Authorization") === "Bearer jwt0") return json(401, { error: { code: "unauthorized" } });
    return json(429, { error: { code: "rate_limited", message: "slow down" } }, { "Retry-After": "3" });
  });
  const error = await api.send({ kind: "group", slug: "g" }, { body: "x" }, "key1").catch((e) => e);
  assert.ok(error instanceof ApiError);
  assert.deepEqual([error.status, error.code, error.retryable, error.retryAfterMs], [429, "rate_limited", true, 3000]);
  assert.equal(calls.length, 2);
  assert.equal(calls[1].url, "https://api/v1/groups/g/messages");
  assert.equal(new Headers(calls[1].init.headers).get("Idempotency-Key"), "key1");
});

test("a direct room's message goes to the homeserver with the person's token, the outbox key as transaction id", async () => {
  const session = { homeserverUrl: "https://hs", accessToken: "tok", fetch: (...args) => globalThis.fetch(...args) };
  const api = { send: async () => assert.fail("a direct room has no API message route") };
  const calls = fakeFetch(() => json(200, { event_id: "$e" }));
  const writes = new Writes(api, session, null);
  const sent = await writes.send({ kind: "direct", roomId: "!r:hs" }, { body: "hi", replyToId: "$p" }, "key-1");
  assert.deepEqual(sent, { eventId: "$e" });
  assert.equal(calls[0].url, "https://hs/_matrix/client/v3/rooms/!r%3Ahs/send/m.room.message/key-1");
  assert.equal(calls[0].init.method, "PUT");
  assert.equal(calls[0].auth, "Bearer tok");
  assert.deepEqual(JSON.parse(calls[0].init.body), { msgtype: "m.text", body: "hi", "m.mentions": {}, "m.relates_to": { "m.in_reply_to": { event_id: "$p" } } });
});

test("an attachment becomes Matrix file content by its type", () => {
  const file = { contentUri: "mxc://hs/abc", mimeType: "application/zip", size: 20, filename: "a.zip" };
  assert.deepEqual(directContent({ body: "", attachment: file }), {
    msgtype: "m.file",
    body: "a.zip",
    "m.mentions": {},
    url: "mxc://hs/abc",
    filename: "a.zip",
    info: { mimetype: "application/zip", size: 20 },
  });
  assert.equal(directContent({ attachment: { ...file, mimeType: "image/png", width: 2, height: 3 } }).msgtype, "m.image");
});
