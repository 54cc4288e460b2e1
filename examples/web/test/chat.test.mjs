// End to end: two people chat through the example page in Debian's headless chromium, against the running local
// stack (scripts/stack.sh start). Alice (context A) and Bob (context B) sign in as demo users of a fresh tenant.
// Run: scripts/web.sh test (builds the page first). Screenshots: .local/test-output/web/*.png.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { OUTPUT, axeViolations, launch, message, openRoom, send, signedIn, uniqueTenant, waitFor } from "./browser.mjs";
import { features } from "./features.mjs";
import { views } from "./views.mjs";

const tenant = uniqueTenant("web");
const run = Date.now().toString(36);
const errors = [];
let browser;
let a;
let b;
/** The newest Matrix access token A's page sent to the homeserver (seen on the wire, never exposed by the page). */
let aToken = null;
let homeserver = null;

before(async () => {
  browser = await launch();
  a = await signedIn(browser, tenant, "Alice Adams", errors);
  b = await signedIn(browser, tenant, "Bob Baker", errors);
  a.page.on("request", (request) => {
    const auth = request.headers().authorization;
    if (auth && request.url().includes("/_matrix/client/")) {
      aToken = auth.replace(/^Bearer /, "");
      homeserver = new URL(request.url()).origin;
    }
  });
  // Set once: still there at the end means B never reloaded.
  await b.page.evaluate(() => (window.noReloadMarker = true));
});

after(async () => {
  await browser?.close();
});

const shot = (page, name) => page.screenshot({ path: `${OUTPUT}${name}.png`, fullPage: true });

test("A types, B sees the typing indicator", async () => {
  await a.page.locator("#composer-input").pressSequentially("Hello Bo", { delay: 20 });
  await waitFor(b.page, () => document.querySelector("#typing").textContent.includes("Alice Adams is typing"));
  await shot(b.page, "01-b-typing");
  await a.page.locator("#composer-input").fill("");
});

test("A sends markdown, B sees it rendered live; B reads, A sees the receipt", async () => {
  await send(a.page, `Hi **team ${run}** — see _this_ and \`code\`, @bob`);
  const atB = message(b.page, `team ${run}`);
  await atB.locator("strong", { hasText: `team ${run}` }).waitFor();
  assert.equal(await atB.locator("em").textContent(), "this");
  assert.equal(await atB.locator("code").textContent(), "code");
  assert.ok(await atB.evaluate((li) => li.classList.contains("mentions-me")), "the mention of @bob reaches Bob");
  assert.equal(await b.page.evaluate(() => window.noReloadMarker), true, "no reload");
  const announced = await b.page.locator("#announcer").textContent();
  assert.match(announced, new RegExp(`Alice Adams: Hi team ${run}`), "the live region announces the message");
  await message(a.page, `team ${run}`).locator(".receipts", { hasText: "Seen by Bob Baker" }).waitFor();
  await shot(a.page, "02-a-receipt");
});

test("A edits and deletes; B sees both", async () => {
  await send(a.page, `draft ${run}`);
  const mine = message(a.page, `draft ${run}`);
  await mine.locator("time").waitFor();
  await mine.locator('[data-action="edit"]').click();
  await a.page.locator("#composer-input").fill(`final ${run}`);
  await a.page.locator("#composer-input").press("Enter");
  const atB = message(b.page, `final ${run}`);
  await atB.locator(".edited").waitFor();
  assert.equal(await message(b.page, `draft ${run}`).count(), 0, "the old text is gone");
  const key = await atB.getAttribute("data-key");
  await message(a.page, `final ${run}`).locator('[data-action="delete"]').click();
  await message(a.page, `final ${run}`).locator('[data-action="delete-confirm"]').click();
  await b.page.locator(`#messages > li[data-key="${key}"] .deleted`).waitFor();
  await shot(b.page, "03-b-deleted");
});

test("B reacts, replies in a thread and replies; A sees all three", async () => {
  const atB = message(b.page, `team ${run}`);
  await atB.locator('[data-action="react"]').click();
  await atB.locator('[data-action="react:👍"]').click();
  await message(a.page, `team ${run}`).locator(".reaction", { hasText: "👍 1" }).waitFor();
  await atB.locator('[data-action="thread"]').click();
  await b.page.locator("#thread-input").fill(`thread reply ${run}`);
  await b.page.locator("#thread-input").press("Enter").catch(() => {});
  await b.page.locator("#thread-composer button[type=submit]").click();
  await message(a.page, `team ${run}`).locator(".thread-link", { hasText: "1 reply in thread" }).waitFor();
  await message(a.page, `team ${run}`).locator(".thread-link").click();
  await message(a.page, `thread reply ${run}`, "#thread-messages").waitFor();
  assert.equal(await message(a.page, `thread reply ${run}`).count(), 0, "thread replies stay out of the main list");
  await a.page.locator("#thread-close").click();
  await atB.locator('[data-action="reply"]').click();
  await send(b.page, `a reply ${run}`);
  const reply = message(a.page, `a reply ${run}`);
  await reply.locator(".reply-quote", { hasText: `In reply to Alice Adams: Hi team ${run}` }).waitFor();
});

test("A attaches an image; B sees its thumbnail and a download button", async () => {
  const png = await a.page.screenshot({ clip: { x: 0, y: 0, width: 160, height: 120 } });
  await a.page.locator("#attach").setInputFiles({ name: `chart-${run}.png`, mimeType: "image/png", buffer: png });
  await a.page.locator("#composer-input").fill(`the chart ${run}`);
  await a.page.locator("#send").click();
  const atB = message(b.page, `the chart ${run}`);
  await atB.locator('img[src^="blob:"]').waitFor();
  assert.equal(await atB.locator("img").getAttribute("alt"), `chart-${run}.png`);
  await atB.getByRole("button", { name: `Download chart-${run}.png` }).waitFor();
});

test("B sets the room's notifications to mentions only", async () => {
  await b.page.locator("#notifications:not([disabled])").waitFor();
  await b.page.locator("#notifications").selectOption("mentions");
  await waitFor(b.page, () => document.querySelector("#announcer").textContent.includes("Mentions only"));
  await openRoom(b.page, "sunday-ridge-walk");
  await openRoom(b.page, "riverside-hikers");
  await waitFor(b.page, () => document.querySelector("#notifications").value === "mentions" && !document.querySelector("#notifications").disabled);
});

test("A goes offline, writes, comes back: B gets it exactly once, A catches up on what it missed", async () => {
  await a.context.setOffline(true);
  await send(a.page, `offline ${run}`);
  await message(a.page, `offline ${run}`).locator(".pending-state", { hasText: "Waiting for connection" }).waitFor();
  assert.match(await a.page.evaluate(() => localStorage.getItem(Object.keys(localStorage).find((k) => k.startsWith("openmeet-outbox:")))), new RegExp(`offline ${run}`), "kept in the browser");
  await send(b.page, `while you were away ${run}`);
  await message(b.page, `while you were away ${run}`).locator("time").waitFor();
  await shot(a.page, "04-a-offline");
  await a.context.setOffline(false);
  await message(b.page, `offline ${run}`).waitFor();
  await message(a.page, `while you were away ${run}`).waitFor();
  // A later message arriving at B proves the offline one had its chance to arrive twice.
  await send(a.page, `back ${run}`);
  await message(b.page, `back ${run}`).waitFor();
  assert.equal(await message(b.page, `offline ${run}`).count(), 1, "exactly once at B");
  await waitFor(a.page, (text) => [...document.querySelectorAll("#messages > li.message")].filter((li) => li.textContent.includes(text)).length === 1 && !document.querySelector("#messages > li.pending"), `offline ${run}`);
});

test("A's session expires mid-conversation; the page renews it and carries on in place", async () => {
  assert.ok(aToken && homeserver, "A's page talks to the homeserver");
  const before = Number((await a.page.locator("#connection").getAttribute("data-renewals")) ?? 0);
  await a.page.locator("#composer-input").fill(`unsent draft ${run}`);
  // The homeserver forgets A's access token (and its refresh token): the next request of A's page gets
  // 401 M_UNKNOWN_TOKEN, exactly what an expired token gets.
  const logout = await fetch(`${homeserver}/_matrix/client/v3/logout`, { method: "POST", headers: { Authorization: `Bearer ${aToken}` } });
  assert.equal(logout.status, 200);
  await send(b.page, `wake up ${run}`);
  await message(a.page, `wake up ${run}`).waitFor();
  await waitFor(a.page, (n) => Number(document.querySelector("#connection").dataset.renewals ?? 0) > n, before);
  await send(b.page, `after renewal ${run}`);
  await message(a.page, `after renewal ${run}`).waitFor();
  assert.equal(await a.page.locator("#composer-input").inputValue(), `unsent draft ${run}`, "the draft is kept");
  assert.equal(await a.page.locator('.room-button[aria-current="true"]').getAttribute("data-slug"), "riverside-hikers");
  await a.page.locator("#composer-input").press("Enter");
  await message(b.page, `unsent draft ${run}`).waitFor();
  await shot(a.page, "05-a-after-renewal");
});

test("A's token reaches the end of its lifetime; the page refreshes it ahead and carries on", async () => {
  // The local stack's browser sessions live 30 s (OPENMEET_LOCAL_SESSION_LIFETIME), so a refresh comes soon.
  assert.ok(a.session.refreshToken, "the session has a refresh token");
  assert.ok(a.session.expiresInMs <= 120_000, `a short session lifetime in the local stack (got ${a.session.expiresInMs} ms)`);
  const refreshed = await a.page.waitForResponse((response) => response.url().endsWith("/_matrix/client/v3/refresh"), {
    timeout: a.session.expiresInMs + 30_000,
  });
  assert.equal(refreshed.status(), 200);
  await send(b.page, `after refresh ${run}`);
  await message(a.page, `after refresh ${run}`).waitFor();
  await send(a.page, `still chatting ${run}`);
  await message(b.page, `still chatting ${run}`).waitFor();
});

test("keyboard: arrows move through rooms and messages", async () => {
  const page = a.page;
  await page.locator('.room-button[aria-current="true"]').focus();
  await page.keyboard.press("ArrowDown");
  assert.equal(await page.evaluate(() => document.activeElement.dataset.slug), "sunday-ridge-walk");
  await page.keyboard.press("Enter");
  await waitFor(page, () => document.querySelector('.room-button[data-slug="sunday-ridge-walk"]').getAttribute("aria-current") === "true");
  await page.keyboard.press("ArrowUp");
  await page.keyboard.press("Enter");
  await waitFor(page, () => document.querySelector('.room-button[data-slug="riverside-hikers"]').getAttribute("aria-current") === "true");
  await message(page, `unsent draft ${run}`).waitFor();
  await page.locator('#messages > li.message[tabindex="0"]').focus();
  const last = await page.evaluate(() => document.activeElement.dataset.key);
  await page.keyboard.press("ArrowUp");
  const previous = await page.evaluate(() => document.activeElement.dataset.key);
  assert.ok(previous && previous !== last, "ArrowUp moves to the previous message");
  await page.keyboard.press("End");
  assert.equal(await page.evaluate(() => document.activeElement.dataset.key), last);
});

test("axe-core finds no serious or critical violation", async () => {
  await shot(a.page, "06-a-chat");
  await shot(b.page, "06-b-chat");
  const violations = [...(await axeViolations(a.page)), ...(await axeViolations(b.page))];
  const signInPage = await (await browser.newContext({ bypassCSP: true })).newPage();
  await signInPage.goto(`${(await import("./browser.mjs")).BASE}/web/?tenant=${tenant}`);
  await signInPage.getByRole("button", { name: "Sign in as Carol Chen" }).waitFor();
  violations.push(...(await axeViolations(signInPage)));
  await signInPage.screenshot({ path: `${OUTPUT}00-sign-in.png` });
  assert.deepEqual(violations, []);
});

features(errors);
views(errors);

test("no script error in any page", () => {
  assert.deepEqual(errors, []);
});
