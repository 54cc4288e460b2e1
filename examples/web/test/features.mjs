// End to end, issue 28 and issue 23 item 5: unread and mention badges, a browser notification while the tab is
// hidden, direct rooms, files (any type, images large, 20 MB straight to the homeserver, a refusal), drafts.
// Two people of a fresh tenant in two browser contexts; registered by chat.test.mjs after its own tests.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { OUTPUT, launch, message, openRoom, send, sessionToken, signedIn, uniqueTenant, waitFor } from "./browser.mjs";

export function features(errors) {
  describe("notifications, direct rooms, files, drafts", () => {
    const tenant = uniqueTenant("feat");
    const run = Date.now().toString(36);
    let browser;
    let a;
    let b;
    let aToken = null;
    let homeserver = null;

    before(async () => {
      browser = await launch();
      a = await signedIn(browser, tenant, "Alice Adams", errors);
      b = await signedIn(browser, tenant, "Bob Baker", errors, { notifications: true });
    });

    after(async () => {
      await browser?.close();
    });

    test("B's room list shows unread and mention counts from the homeserver; opening the room clears them", async () => {
      await openRoom(b.page, "sunday-ridge-walk");
      await send(a.page, `count one ${run}`);
      await send(a.page, `hey @bob count two ${run}`);
      const button = b.page.locator('.room-button[data-slug="riverside-hikers"]');
      await button.locator(".badge.unread").waitFor();
      await button.locator(".badge.highlight", { hasText: "@1" }).waitFor();
      assert.ok(Number(await button.locator(".badge.unread").getAttribute("data-count")) >= 2, "both messages count");
      assert.match(await button.textContent(), /, 1 mention of you.*, \d+ unread/, "screen readers hear what the numbers count");
      await b.page.screenshot({ path: `${OUTPUT}10-b-badges.png` });
      await openRoom(b.page, "riverside-hikers");
      const mention = message(b.page, `count two ${run}`);
      assert.ok(await mention.evaluate((li) => li.classList.contains("mentions-me")), "the mention is highlighted");
      assert.equal(await message(b.page, `count one ${run}`).evaluate((li) => li.classList.contains("mentions-me")), false);
      // B's read receipt clears both counts at the homeserver, which the next sync brings back.
      await waitFor(b.page, () => !document.querySelector('.room-button[data-slug="riverside-hikers"] .badge'));
      // A, who sent them, counts nothing.
      assert.equal(await a.page.locator('.room-button[data-slug="riverside-hikers"] .badge').count(), 0);
    });

    test("a mention while B's tab is hidden becomes a browser notification; none while it is visible", async () => {
      await openRoom(b.page, "riverside-hikers");
      assert.equal(await b.page.locator("#enable-notifications").isHidden(), true, "permission granted: no button");
      assert.equal(await a.page.locator("#enable-notifications").isVisible(), true, "A has not decided: the button offers it");
      await send(a.page, `@bob ${run} while visible`);
      await message(b.page, `${run} while visible`).waitFor();
      await setHidden(b.page, true);
      await send(a.page, `psst @bob ${run}`);
      await send(a.page, `no mention ${run}`);
      await waitFor(b.page, (text) => window.notifications.some((n) => n.body.includes(text)), `psst`);
      await message(b.page, `no mention ${run}`).waitFor();
      const shown = await b.page.evaluate(() => window.notifications);
      assert.equal(shown.length, 1, JSON.stringify(shown));
      assert.equal(shown[0].title, "Alice Adams mentioned you in Riverside Hikers");
      await setHidden(b.page, false);
    });

    test("A starts a direct room from Bob's name; both list it by the other's name and chat in it", async () => {
      await openRoom(a.page, "riverside-hikers");
      await openRoom(b.page, "riverside-hikers");
      await send(b.page, `hello from bob ${run}`);
      const fromBob = message(a.page, `hello from bob ${run}`);
      await fromBob.locator('button.sender[data-action="direct"]').click();
      await waitFor(a.page, () => document.querySelector('.room-button[aria-current="true"]')?.dataset.kind === "direct");
      assert.equal(await a.page.locator("#room-name").textContent(), "Bob Baker");
      await send(a.page, `just between us ${run}`);
      const atB = b.page.locator('.room-button[data-kind="direct"]', { hasText: "Alice Adams" });
      await atB.locator(".avatar").waitFor();
      await atB.click();
      await message(b.page, `just between us ${run}`).waitFor();
      await send(b.page, `direct answer ${run}`);
      await message(a.page, `direct answer ${run}`).waitFor();
      assert.equal(await a.page.locator("#notifications").isVisible(), false, "no notification level route for direct rooms");
      await b.page.screenshot({ path: `${OUTPUT}11-b-direct.png` });
    });

    test("any accepted file shows its name, size and download; an image opens large and Esc closes it", async () => {
      await openRoom(a.page, "riverside-hikers");
      await openRoom(b.page, "riverside-hikers");
      const text = Buffer.from(`minutes of the walk ${run}\n`.repeat(100));
      await a.page.locator("#attach").setInputFiles({ name: `minutes-${run}.txt`, mimeType: "text/plain", buffer: text });
      await a.page.locator("#send").click();
      const file = message(b.page, `minutes-${run}.txt`);
      await file.locator(".file-card .file-name", { hasText: `minutes-${run}.txt` }).waitFor();
      assert.equal(await file.locator(".file-size").textContent(), `${(text.length / 1024).toFixed(1)} KB`);
      const [download] = await Promise.all([b.page.waitForEvent("download"), file.getByRole("button", { name: /^Download minutes/ }).click()]);
      assert.deepEqual(await readFile(await download.path()), text);

      const png = await a.page.screenshot({ clip: { x: 0, y: 0, width: 200, height: 150 } });
      await a.page.locator("#attach").setInputFiles({ name: `view-${run}.png`, mimeType: "image/png", buffer: png });
      await a.page.locator("#send").click();
      const image = message(b.page, `view-${run}.png`);
      await image.locator('img[src^="blob:"]').waitFor();
      await image.getByRole("button", { name: `Open view-${run}.png large` }).click();
      await b.page.locator('#image-viewer[open] img[src^="blob:"]').waitFor();
      await b.page.screenshot({ path: `${OUTPUT}12-b-image-large.png` });
      await b.page.keyboard.press("Escape");
      await b.page.locator("#image-viewer").waitFor({ state: "hidden" });
    });

    test("a 20 MB file goes straight to the homeserver with progress and arrives whole", async () => {
      const big = Buffer.alloc(20 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE((i * 2654435761) >>> 0, i);
      const uploads = [];
      a.page.on("request", (request) => request.url().includes("/_matrix/media/v3/upload") && uploads.push(request.url()));
      await a.page.locator("#attach").setInputFiles({ name: `archive-${run}.zip`, mimeType: "application/zip", buffer: big });
      await a.page.locator("#send").click();
      const file = message(b.page, `archive-${run}.zip`);
      await file.locator(".file-size", { hasText: "20.0 MB" }).waitFor({ timeout: 120_000 });
      assert.equal(uploads.length, 1, "uploaded to the homeserver, not through the API");
      assert.ok(Number(await a.page.locator("#upload-progress").getAttribute("data-events")) >= 1, "progress was shown");
      const [download] = await Promise.all([b.page.waitForEvent("download"), file.getByRole("button", { name: /^Download archive/ }).click()]);
      const got = await readFile(await download.path());
      assert.equal(got.length, big.length);
      assert.equal(sha(got), sha(big));
    });

    test("a file over the homeserver's limit is refused with a clear message, also for a raw upload with A's token", async () => {
      ({ accessToken: aToken, homeserver } = await sessionToken(a.page));
      const config = await (await fetch(`${homeserver}/_matrix/client/v1/media/config`, { headers: { Authorization: `Bearer ${aToken}` } })).json();
      const limit = config["m.upload.size"];
      assert.ok(Number.isFinite(limit), JSON.stringify(config));
      const over = Buffer.alloc(limit + 1024);
      // Playwright hands over buffers up to 50 MB only: a file on disk instead.
      const path = join(await mkdtemp(join(tmpdir(), "openmeet-web-")), `too-big-${run}.zip`);
      await writeFile(path, over);
      await a.page.locator("#attach").setInputFiles(path);
      await a.page.locator("#send").click();
      await a.page.locator("#upload-error", { hasText: `too-big-${run}.zip is too large` }).waitFor();
      await a.page.screenshot({ path: `${OUTPUT}13-a-refused.png` });
      assert.equal(await rawUploadStatus(`${homeserver}/_matrix/media/v3/upload?filename=raw.zip`, aToken, over.length), 413, "the homeserver itself refuses it");
      await a.page.locator("#attachment-cancel").click();
      await rm(dirname(path), { recursive: true, force: true });
    });

    test("the homeserver refuses to preview loopback, private and metadata URLs (raw calls with A's token)", async () => {
      ({ accessToken: aToken, homeserver } = await sessionToken(a.page));
      for (const blocked of ["http://127.0.0.1:8008/_matrix/client/versions", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::1]:8008/", "http://[fd00:ec2::254]/"]) {
        const raw = await fetch(`${homeserver}/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(blocked)}`, { headers: { Authorization: `Bearer ${aToken}` } });
        const body = await raw.json().catch(() => ({}));
        assert.notEqual(raw.status, 200, `${blocked} must not be previewed`);
        assert.doesNotMatch(JSON.stringify(body), /og:|versions/, blocked);
      }
    });

    test("in a direct room the page asks for no link preview (the homeserver would fetch a private link)", async () => {
      const previews = [];
      b.page.on("request", (request) => request.url().includes("/preview_url") && previews.push(request.url()));
      await b.page.locator('.room-button[data-kind="direct"]').click();
      await a.page.locator('.room-button[data-kind="direct"]').click();
      // Direct messages go as plain text (no markdown), and the page would not ask for a preview there anyway.
      await send(a.page, `private route https://example.org/private-${run} ${run}`);
      await message(b.page, `private-${run}`).waitFor();
      await b.page.waitForTimeout(500);
      assert.equal(await message(b.page, "private route").locator(".preview-card").count(), 0);
      assert.deepEqual(previews, [], "no preview asked in a direct room");
    });

    test("a link shows the homeserver's preview as a card", async () => {
      // The test has no internet: it serves the page on 127.0.0.2, the one address the local stack lets previews
      // reach (scripts/synapse/homeserver.yaml.tmpl); everything else private is blacklisted, as in production.
      const png = await a.page.screenshot({ clip: { x: 0, y: 0, width: 64, height: 64 } });
      const server = createServer((request, response) => {
        if (request.url === "/walk.png") return response.writeHead(200, { "Content-Type": "image/png" }).end(png);
        response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
        response.end(`<!doctype html><html><head><title>x</title><meta property="og:title" content="Ridge walk ${run}">
          <meta property="og:description" content="Ten kilometres along the ridge"><meta property="og:site_name" content="Trails">
          <meta property="og:image" content="http://127.0.0.2:${server.address().port}/walk.png"></head><body>walk</body></html>`);
      });
      await new Promise((resolve) => server.listen(0, "127.0.0.2", resolve));
      try {
        const url = `http://127.0.0.2:${server.address().port}/walk.html`;
        await openRoom(a.page, "riverside-hikers");
        await openRoom(b.page, "riverside-hikers");
        await send(a.page, `the route: <${url}> ${run}`);
        const card = message(b.page, `the route: ${url}`).locator(".preview-card");
        await card.locator(".preview-title", { hasText: `Ridge walk ${run}` }).waitFor();
        assert.equal(await card.locator(".preview-description").textContent(), "Ten kilometres along the ridge");
        await card.locator('img[src^="blob:"]').waitFor();
        await b.page.screenshot({ path: `${OUTPUT}14-b-preview.png` });


      } finally {
        server.close();
      }
    });

    test("a draft is kept per room across a reload", async () => {
      await openRoom(a.page, "sunday-ridge-walk");
      await a.page.locator("#composer-input").fill(`walk draft ${run}`);
      await openRoom(a.page, "riverside-hikers");
      await a.page.locator("#composer-input").fill(`hikers draft ${run}`);
      await a.page.reload();
      await openRoom(a.page, "sunday-ridge-walk");
      assert.equal(await a.page.locator("#composer-input").inputValue(), `walk draft ${run}`);
      await openRoom(a.page, "riverside-hikers");
      assert.equal(await a.page.locator("#composer-input").inputValue(), `hikers draft ${run}`);
      await a.page.locator("#composer-input").press("Enter");
      await message(b.page, `hikers draft ${run}`).waitFor();
      await a.page.reload();
      await openRoom(a.page, "riverside-hikers");
      assert.equal(await a.page.locator("#composer-input").inputValue(), "", "a sent draft is gone");
    });
  });
}

const sha = (bytes) => createHash("sha256").update(bytes).digest("hex");

/**
 * The status a raw upload of `length` bytes gets. The homeserver answers an oversized one from its Content-Length
 * alone and hangs up, so only the headers are sent (a client that sends the body sees the connection reset).
 */
function rawUploadStatus(url, token, length) {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/zip", "Content-Length": length } });
    request.on("response", (response) => {
      resolve(response.statusCode);
      response.resume();
      request.destroy();
    });
    request.on("error", reject);
    request.flushHeaders();
  });
}

/** Emulates a hidden tab (headless pages are always visible): the page reads visibilityState and its event. */
async function setHidden(page, hidden) {
  await page.evaluate((value) => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (value ? "hidden" : "visible") });
    Object.defineProperty(document, "hidden", { configurable: true, get: () => value });
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}
