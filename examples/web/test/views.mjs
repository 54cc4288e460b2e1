// End to end, issue 28: search (and its tenant wall), event rooms, display settings, phones, and a screenshot of
// every view at desktop and phone widths (.local/test-output/web/screenshots/; the README shows the committed copies), each checked for being
// non-empty, without horizontal overflow, with its required elements on screen, and with no serious or critical axe
// violation. Registered by chat.test.mjs after its own tests.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdir, readFile, stat } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { BASE, axeViolations, launch, message, openRoom, send, sessionToken, signedIn, uniqueTenant, waitFor } from "./browser.mjs";

// Written under .local/ (ignored by git) so a test run leaves the tree clean; the committed copies in
// examples/web/screenshots/ are refreshed on purpose with SCREENSHOTS_DIR=examples/web/screenshots scripts/web.sh test.
const SCREENSHOTS = process.env.SCREENSHOTS_DIR
  ? `${new URL(`../../../${process.env.SCREENSHOTS_DIR.replace(/\/*$/, "")}/`, import.meta.url).pathname}`
  : new URL("../../../.local/test-output/web/screenshots/", import.meta.url).pathname;
const PHONE = { viewport: { width: 360, height: 740 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 };

export function views(errors) {
  describe("search, event rooms, settings, phones, screenshots", () => {
    const tenant = uniqueTenant("view");
    const run = Date.now().toString(36);
    let browser;
    let a;
    let b;
    let phone;
    let otherTenant;

    before(async () => {
      await mkdir(SCREENSHOTS, { recursive: true });
      browser = await launch();
      a = await signedIn(browser, tenant, "Alice Adams", errors);
      b = await signedIn(browser, tenant, "Bob Baker", errors);
      phone = await signedIn(browser, tenant, "Bob Baker", errors, { contextOptions: PHONE });
      otherTenant = await signedIn(browser, uniqueTenant("other"), "Carol Chen", errors);
    });

    after(async () => {
      await browser?.close();
    });

    test("search finds an old message and opens it in context; another tenant's person finds nothing", async () => {
      const word = `zebra${run}`;
      await send(a.page, `before the find ${run}`);
      await send(a.page, `an old message about the ${word} crossing`);
      await send(a.page, `after the find ${run}`);
      await message(b.page, `after the find ${run}`).waitFor();
      await b.page.locator("#search-input").fill(word);
      await b.page.locator("#search-input").press("Enter");
      const hit = b.page.locator("#search-results .search-hit", { hasText: `${word} crossing` });
      await hit.waitFor();
      assert.match(await hit.textContent(), /Riverside Hikers · Alice Adams/);
      await hit.click();
      const context = b.page.locator("#search-context");
      await context.locator('.context-item.hit[aria-current="true"]', { hasText: word }).waitFor();
      await context.locator(".context-item", { hasText: `before the find ${run}` }).waitFor();
      await context.locator(".context-item", { hasText: `after the find ${run}` }).waitFor();

      // Carol of another tenant searches for the same word: nothing, in the page and as a raw call with her token.
      const token = await sessionToken(otherTenant.page);
      await otherTenant.page.locator("#search-input").fill(word);
      await otherTenant.page.locator("#search-input").press("Enter");
      await otherTenant.page.locator("#search-status", { hasText: `Nothing found for “${word}”` }).waitFor();
      const raw = await fetch(`${token.homeserver}/_matrix/client/v3/search`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token.accessToken}`, "Content-Type": "application/json" },
        body: JSON.stringify({ search_categories: { room_events: { search_term: word } } }),
      });
      assert.equal(raw.status, 200);
      const body = await raw.json();
      assert.equal(body.search_categories.room_events.count ?? 0, 0, JSON.stringify(body));
      assert.deepEqual(body.search_categories.room_events.results, []);
    });

    test("an event room shows its time and place from the room's state, the platform's reminder, then its cancellation", async () => {
      await b.page.locator("#search-close").click();
      await openRoom(b.page, "sunday-ridge-walk");
      const info = b.page.locator("#room-event");
      await info.locator(".event-status", { hasText: "Upcoming" }).waitFor();
      assert.match(await info.textContent(), /2030/);
      assert.match(await info.textContent(), /North bridge/);
      assert.equal(await info.locator("time").getAttribute("datetime"), "2030-06-02T09:00:00Z");
      // The platform's reminder job, run as the schedule would half an hour before the start.
      const report = JSON.parse((await runLocal(["ops", "reminders", "--tenant", tenant, "--now", "2030-06-02T08:30:00Z", "--json"])).trim().split("\n").at(-1));
      assert.deepEqual(report.posted, [`${tenant}/events/sunday-ridge-walk soon`]);
      await b.page.locator("#messages > li.message.notice", { hasText: "Reminder: “Sunday ridge walk” starts at 2030-06-02 09:00:00 UTC." }).waitFor();
      const cancelled = await fetch(`${BASE}/v1/events/sunday-ridge-walk/room/cancel`, {
        method: "POST",
        headers: { Authorization: `Bearer ${await serviceJwt(tenant)}`, "Content-Type": "application/json" },
        body: JSON.stringify({ reason: `Storm warning ${run}` }),
      });
      assert.ok(cancelled.ok, `cancel answered ${cancelled.status}`);
      await info.locator(".event-status", { hasText: "Cancelled" }).waitFor();
      await b.page.locator("#messages > li.message.notice", { hasText: `Storm warning ${run}` }).waitFor();
    });

    test("text size and high contrast are the person's own settings, kept across reloads", async () => {
      const page = a.page;
      await page.locator(".display-settings summary").click();
      await page.locator('#display-form select[name="text-size"]').selectOption("large");
      await page.locator('#display-form select[name="contrast"]').selectOption("high");
      assert.equal(await page.evaluate(() => getComputedStyle(document.documentElement).fontSize), "20px");
      assert.equal(await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--text").trim()), "#000000");
      await page.reload();
      await openRoom(page, "riverside-hikers");
      assert.equal(await page.evaluate(() => document.documentElement.dataset.contrast), "high");
      assert.equal(await page.evaluate(() => getComputedStyle(document.documentElement).fontSize), "20px");
      // Bob, on the same kind of browser, keeps his own defaults.
      assert.equal(await b.page.evaluate(() => getComputedStyle(document.documentElement).fontSize), "16px");
      // "As the system" follows prefers-contrast: more.
      await b.page.emulateMedia({ contrast: "more" });
      assert.equal(await b.page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--text").trim()), "#000000");
      await b.page.emulateMedia({ contrast: "no-preference", reducedMotion: "reduce" });
      assert.equal(await b.page.evaluate(() => getComputedStyle(document.querySelector("#messages")).scrollBehavior), "auto");
      await page.locator(".display-settings summary").click();
    });

    test("on a phone (360 px, touch) the room list and the chat are one tap apart, every target at least 44 px", async () => {
      const page = phone.page;
      await page.locator('#phone-nav button[data-pane="rooms"]').tap();
      await page.locator('.room-button[data-slug="riverside-hikers"]').tap();
      await waitFor(page, () => document.querySelector("#chat").dataset.pane === "room");
      await send(page, `from my phone ${run}`);
      await message(a.page, `from my phone ${run}`).waitFor();
      await send(a.page, `to your phone ${run}`);
      await message(page, `to your phone ${run}`).waitFor();
      assert.deepEqual(await smallTargets(page), [], "touch targets");
      assert.deepEqual(await overflow(page), { scrollWidth: 360, clientWidth: 360 });
      // The navigation bar sits at the bottom, where a thumb reaches.
      const bar = await page.locator("#phone-nav").boundingBox();
      assert.ok(bar.y + bar.height >= 740 - 1 && bar.y > 600, JSON.stringify(bar));
      await page.locator('#phone-nav button[data-pane="rooms"]').tap();
      assert.deepEqual(await smallTargets(page), [], "touch targets in the room list");
    });

    const VIEWS = [
      ["chat", async (page) => openRoom(page, "riverside-hikers"), ["#messages", "#composer-input"]],
      ["rooms", async (page) => page.locator('#phone-nav button[data-pane="rooms"]').click(), [".room-button"]],
      ["event", async (page) => openRoom(page, "sunday-ridge-walk"), ["#room-event", "#messages"]],
      ["direct", openDirect, ["#messages", "#composer-input"]],
      ["search", async (page) => searchFor(page, `zebra${run}`), ["#search-results .search-hit", "#search-context .hit"]],
      ["thread", openThread, ["#thread-messages", "#thread-input"]],
      ["settings", openSettings, ["#display-form"]],
      ["image", openImage, ["#image-viewer[open] img"]],
    ];
    test("the sign-in page at both widths: a screenshot, no overflow, no serious axe violation", async () => {
      const problems = [];
      for (const [width, options] of [["desktop", { viewport: { width: 1280, height: 800 } }], ["phone", PHONE]]) {
        const context = await browser.newContext({ bypassCSP: true, ...options });
        const page = await context.newPage();
        await page.goto(`${BASE}/web/?tenant=${tenant}`);
        await page.getByRole("button", { name: "Sign in as Carol Chen" }).waitFor();
        await page.screenshot({ path: `${SCREENSHOTS}${width}-sign-in.png` });
        const { scrollWidth, clientWidth } = await overflow(page);
        if (scrollWidth > clientWidth) problems.push(`${width}: ${scrollWidth - clientWidth} px of horizontal overflow`);
        if (width === "phone") problems.push(...(await smallTargets(page)).map((target) => `${width}: small target ${target}`));
        problems.push(...(await axeViolations(page)).map((violation) => `${width}: ${violation}`));
        await context.close();
      }
      assert.deepEqual(problems, []);
    });

    for (const [width, pageOf] of [["desktop", () => b.page], ["phone", () => phone.page]]) {
      test(`every view at ${width} width: a screenshot on disk, no overflow, its elements on screen, no serious axe violation`, async () => {
        const page = pageOf();
        const problems = [];
        for (const [name, show, required] of VIEWS) {
          if (name === "rooms" && width === "desktop") continue;
          await closeSides(page);
          await show(page);
          await page.waitForTimeout(300);
          const file = `${SCREENSHOTS}${width}-${name}.png`;
          await page.screenshot({ path: file });
          if ((await stat(file)).size < 5_000) problems.push(`${name}: the screenshot is nearly empty`);
          const { scrollWidth, clientWidth } = await overflow(page);
          if (scrollWidth > clientWidth) problems.push(`${name}: ${scrollWidth - clientWidth} px of horizontal overflow`);
          for (const selector of required) {
            if (!(await onScreen(page, selector))) problems.push(`${name}: ${selector} is not on screen`);
          }
          problems.push(...(await axeViolations(page)).map((violation) => `${name}: ${violation}`));
        }
        assert.deepEqual(problems, []);
        assert.ok((await readFile(`${SCREENSHOTS}${width}-chat.png`)).subarray(1, 4).toString() === "PNG");
      });
    }

    async function openDirect(page) {
      const direct = page.locator('.room-button[data-kind="direct"]');
      if (!(await direct.count())) {
        await openRoom(page, "riverside-hikers");
        await message(page, `after the find ${run}`).locator('button.sender[data-action="direct"]').click();
      } else {
        if (await page.locator('#phone-nav button[data-pane="rooms"]').isVisible()) await page.locator('#phone-nav button[data-pane="rooms"]').click();
        await direct.first().click();
      }
      await waitFor(page, () => document.querySelector('.room-button[aria-current="true"]')?.dataset.kind === "direct");
    }

    let imageSent = false;
    async function openImage(page) {
      if (!imageSent) {
        imageSent = true;
        await openRoom(a.page, "riverside-hikers");
        const png = await a.page.screenshot({ clip: { x: 0, y: 0, width: 320, height: 200 } });
        await a.page.locator("#attach").setInputFiles({ name: `ridge-${run}.png`, mimeType: "image/png", buffer: png });
        await a.page.locator("#send").click();
      }
      await openRoom(page, "riverside-hikers");
      await message(page, `ridge-${run}.png`).getByRole("button", { name: `Open ridge-${run}.png large` }).click();
      await page.locator('#image-viewer[open] img[src^="blob:"]').waitFor();
    }

    async function openThread(page) {
      await openRoom(page, "riverside-hikers");
      const item = message(page, `after the find ${run}`);
      // On a phone a message's actions show once it is tapped.
      await item.tap({ position: { x: 4, y: 4 } }).catch(() => item.focus());
      await item.locator('[data-action="thread"]').first().click();
      await page.locator("#thread-input").waitFor();
    }
  });
}

async function searchFor(page, word) {
  await page.locator("#search-input").fill(word);
  await page.locator("#search-input").press("Enter");
  await page.locator("#search-results .search-hit").first().click();
  await page.locator("#search-context .hit").waitFor();
}

async function openSettings(page) {
  await openRoom(page, "riverside-hikers");
  await page.locator(".display-settings summary").click();
  await page.locator("#display-form").waitFor();
}

/** Back to the plain room view: search, thread and settings closed. */
async function closeSides(page) {
  if (await page.locator("#image-viewer[open]").count()) await page.keyboard.press("Escape");
  if (await page.locator(".display-settings[open]").count()) await page.locator(".display-settings summary").click();
  if (await page.locator("#search-close").isVisible()) await page.locator("#search-close").click();
  if (await page.locator("#thread-close").isVisible()) await page.locator("#thread-close").click();
}

function overflow(page) {
  return page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth }));
}

/** Whether the first element matching `selector` is visible inside the viewport. */
function onScreen(page, selector) {
  return page.evaluate((s) => {
    const node = document.querySelector(s);
    if (!node) return false;
    const box = node.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && box.bottom > 0 && box.right > 0 && box.top < innerHeight && box.left < innerWidth;
  }, selector);
}

/** Visible controls smaller than 44 × 44 px (WCAG 2.5.5), by their text. */
function smallTargets(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("button, select, summary, textarea, input:not([type=file]), .file-button")]
      .filter((node) => node.checkVisibility?.() ?? node.offsetParent !== null)
      .map((node) => [node, node.getBoundingClientRect()])
      .filter(([, box]) => box.width > 0 && (box.width < 44 || box.height < 44))
      .map(([node, box]) => `${node.tagName.toLowerCase()} "${(node.textContent || node.getAttribute("aria-label") || "").trim().slice(0, 30)}" ${Math.round(box.width)}×${Math.round(box.height)}`),
  );
}

/** `openmeet-local ARGS` (e.g. `ops reminders …`; the stack's own binary, built by scripts/web.sh) with the stack's configuration. */
async function runLocal(args) {
  const root = new URL("../../../", import.meta.url).pathname;
  const env = { ...process.env };
  for (const line of (await readFile(`${root}.local/stack.env`, "utf8")).split("\n")) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (match) env[match[1]] = match[2].replace(/^["']|["']$/g, "");
  }
  const bin = `${process.env.CARGO_TARGET_DIR ?? `${root}target`}/debug/openmeet-local`;
  const { stdout } = await promisify(execFile)(bin, args, { env, timeout: 60_000 });
  return stdout;
}

/** A service JWT of the local stack (its secret in .local/stack.env), as OpenMeet's backend holds one. */
async function serviceJwt(tenant) {
  const env = await readFile(new URL("../../../.local/stack.env", import.meta.url), "utf8");
  const secret = /^OPENMEET_JWT_SECRET=(.*)$/m.exec(env)?.[1]?.replace(/^["']|["']$/g, "");
  assert.ok(secret, "the local stack's JWT secret");
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part({ sub: "openmeet-web-test", tenant, role: "service", exp: Math.floor(Date.now() / 1000) + 300 })}`;
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
}
