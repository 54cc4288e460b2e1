// The client package's outbox: Idempotency-Keys kept across reloads, order, retries (no browser).

import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiError, NetworkError, Outbox } from "../index.js";

/** An API whose sends fail as scripted, recording every attempt. */
function scriptedApi(outcomes) {
  const attempts = [];
  return {
    attempts,
    async send(room, message, key) {
      attempts.push({ body: message.body, key });
      const outcome = outcomes.shift() ?? "ok";
      if (outcome === "offline") throw new NetworkError("offline");
      if (outcome === "429") throw new ApiError(429, "rate_limited", "slow down", true, 1);
      if (outcome === "400") throw new ApiError(400, "invalid_body", "bad", false);
      return { status: 201, eventId: `$${attempts.length}` };
    },
  };
}

function memoryStorage() {
  const data = new Map();
  globalThis.localStorage = {
    getItem: (key) => data.get(key) ?? null,
    setItem: (key, value) => data.set(key, String(value)),
  };
  return data;
}

const room = { kind: "group", slug: "g" };
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

test("a message written offline keeps its Idempotency-Key, survives a reload and is sent once", async () => {
  const storage = memoryStorage();
  const offline = scriptedApi(["offline"]);
  const first = new Outbox(offline, "box", () => {});
  first.add(room, "!r", { body: "hello", format: "markdown" });
  await settle();
  clearTimeout(first.timer);
  assert.equal(first.items[0].state, "offline");
  assert.match(storage.get("box"), /hello/);

  // The page is reloaded while offline; back online, the new page sends what was kept.
  const online = scriptedApi([]);
  const second = new Outbox(online, "box", () => {});
  await second.flush();
  assert.equal(online.attempts.length, 1);
  assert.equal(online.attempts[0].key, offline.attempts[0].key, "the same Idempotency-Key");
  assert.deepEqual(JSON.parse(storage.get("box")), []);
  assert.equal(second.forRoom("!r")[0].eventId, "$1", "shown as sent until the timeline has it");
  assert.ok(second.seen("$1"));
  assert.deepEqual(second.forRoom("!r"), []);
});

test("order is kept, a rate limit is waited out, a refused message stops nothing behind it", async () => {
  memoryStorage();
  const api = scriptedApi(["429", "ok", "400", "ok"]);
  const box = new Outbox(api, "box", () => {});
  box.flushing = true; // queue three without sending yet
  for (const body of ["one", "two", "three"]) box.add(room, "!r", { body, format: "plain" });
  box.flushing = false;
  await box.flush();
  await settle();
  await box.flush();
  assert.deepEqual(api.attempts.map((attempt) => attempt.body), ["one", "one", "two", "three"]);
  assert.equal(api.attempts[0].key, api.attempts[1].key);
  assert.deepEqual(box.items.map((item) => [item.message.body, item.state]), [["two", "failed"]]);
});

test("a message written while another is being sent goes right after it", async () => {
  memoryStorage();
  let release;
  const api = scriptedApi([]);
  const slow = { attempts: api.attempts, send: (...args) => (api.attempts.length ? api.send(...args) : new Promise((resolve) => (release = () => resolve(api.send(...args))))) };
  const box = new Outbox(slow, "box", () => {});
  box.add(room, "!r", { body: "first", format: "plain" });
  box.add(room, "!r", { body: "second", format: "plain" });
  release();
  await settle();
  assert.deepEqual(api.attempts.map((attempt) => attempt.body), ["first", "second"]);
  assert.deepEqual(box.items, []);
});
