// Send → appear latency as browser B sees it: a message sent through the API (POST .../messages, what the page
// does) beside the same message sent straight to the homeserver (PUT /rooms/{id}/send, the baseline), alternating,
// in the same run, against the running local stack. Appearance is the moment B's page shows the message.
//   node bench/latency.mjs [COUNT]   (default 50 of each; scripts/web.sh bench)

import { readFile } from "node:fs/promises";
import { BASE, demoToken, launch, signedIn, uniqueTenant } from "../test/browser.mjs";

const COUNT = Number(process.argv[2] ?? 50);
const PAUSE_MS = 100;
// `bench-free*` tenants have no API write limit in the local stack (OPENMEET_RATE_OVERRIDES in stack.env); the
// homeserver's own per-user message limit is lifted for the sender below, so both paths measure delivery, not
// throttling.
const tenant = uniqueTenant("bench-free");
const errors = [];

const browser = await launch();
try {
  const b = await signedIn(browser, tenant, "Bob Baker", errors);
  await b.page.evaluate(() => {
    window.seenAt = {};
    new MutationObserver(() => {
      for (const li of document.querySelectorAll("#messages > li.message")) {
        const marker = li.textContent.match(/bench-\w+-\d+/)?.[0];
        if (marker && !(marker in window.seenAt)) window.seenAt[marker] = Date.now();
      }
    }).observe(document.querySelector("#messages"), { childList: true, subtree: true, characterData: true });
  });

  const jwt = await demoToken(tenant, "alice");
  const api = (method, path, body, headers = {}) =>
    fetch(`${BASE}${path}`, {
      method,
      headers: { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json", ...headers },
      body: body && JSON.stringify(body),
    });
  const session = await (await api("POST", "/v1/me/matrix-session", { deviceId: "BENCHDIRECT" })).json();
  await liftHomeserverLimit(session.homeserverUrl, session.matrixUserId);
  const room = await (await api("GET", "/v1/groups/riverside-hikers/room")).json();

  const viaApi = (marker) =>
    api("POST", "/v1/groups/riverside-hikers/messages", { body: marker, format: "plain" }, { "Idempotency-Key": marker });
  const direct = (marker) =>
    fetch(`${session.homeserverUrl}/_matrix/client/v3/rooms/${encodeURIComponent(room.roomId)}/send/m.room.message/${marker}`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${session.accessToken}`, "Content-Type": "application/json" },
      body: JSON.stringify({ msgtype: "m.text", body: marker }),
    });

  const results = { api: [], direct: [] };
  for (let i = 0; i < COUNT; i += 1) {
    for (const [name, sendOne] of [["api", viaApi], ["direct", direct]]) {
      const marker = `bench-${name}-${i}`;
      let started = Date.now();
      let response = await sendOne(marker);
      // Should a limit still apply, wait it out and resend (same transaction / Idempotency-Key): not timed.
      for (let retry = 0; response.status === 429 && retry < 5; retry += 1) {
        await new Promise((resolve) => setTimeout(resolve, retryAfterMs(response)));
        started = Date.now();
        response = await sendOne(marker);
      }
      if (!response.ok) throw new Error(`${name} send answered ${response.status}: ${await response.text()}`);
      await b.page.waitForFunction((m) => m in window.seenAt, marker, { timeout: 30_000, polling: 5 });
      results[name].push((await b.page.evaluate((m) => window.seenAt[m], marker)) - started);
      await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
    }
  }
  const pct = (list, p) => [...list].sort((x, y) => x - y)[Math.min(list.length - 1, Math.floor((p / 100) * list.length))];
  const line = (name, list) => `${name.padEnd(34)} p50 ${String(pct(list, 50)).padStart(5)} ms   p95 ${String(pct(list, 95)).padStart(5)} ms   (n=${list.length})`;
  console.log(`send → appear in browser B (${COUNT} each, alternating, tenant ${tenant})`);
  console.log(line("through the API (POST .../messages)", results.api));
  console.log(line("direct to the homeserver (PUT send)", results.direct));
  console.log(`ratio of p50 (API / direct): ${(pct(results.api, 50) / Math.max(1, pct(results.direct, 50))).toFixed(2)}`);
  if (errors.length) throw new Error(errors.join("\n"));
} finally {
  await browser.close();
}

function retryAfterMs(response) {
  return Number(response.headers.get("Retry-After") ?? 1) * 1000;
}

/** Synapse's admin API (as the platform's appservice user, a server admin): no message rate limit for `userId`. */
async function liftHomeserverLimit(homeserverUrl, userId) {
  const env = await readFile(new URL("../../../.local/stack.env", import.meta.url), "utf8");
  const asToken = env.match(/^MATRIX_AS_TOKEN=(.*)$/m)?.[1]?.trim();
  if (!asToken) throw new Error("MATRIX_AS_TOKEN not found in .local/stack.env");
  const response = await fetch(`${homeserverUrl}/_synapse/admin/v1/users/${encodeURIComponent(userId)}/override_ratelimit`, {
    method: "POST",
    headers: { Authorization: `Bearer ${asToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ messages_per_second: 0, burst_count: 0 }),
  });
  if (!response.ok) throw new Error(`override_ratelimit answered ${response.status}`);
}
