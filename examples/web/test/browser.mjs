// Shared by the end-to-end test and the benchmark: Debian's chromium driven by playwright-core (nothing downloads
// a browser), the local stack's URLs, demo sign-in and a few page helpers.

import { mkdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

export const BASE = process.env.OPENMEET_API_URL ?? "http://127.0.0.1:3000";
export const OUTPUT = new URL("../../../.local/test-output/web/", import.meta.url).pathname;
const WAIT_MS = Number(process.env.WEB_TEST_WAIT_MS ?? 30_000);

export async function launch() {
  await mkdir(OUTPUT, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    // Root in a container has no user namespaces for the sandbox; containers often have a tiny /dev/shm.
    args: ["--disable-dev-shm-usage", ...(process.getuid?.() === 0 ? ["--no-sandbox"] : [])],
  });
}

/** A browser context with one signed-in demo user, the group room open. */
export async function signedIn(browser, tenant, displayName, errors, { notifications = false, contextOptions = {} } = {}) {
  // bypassCSP only so that the test can inject axe-core; the page itself runs under its CSP.
  const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 800 }, ...contextOptions });
  if (notifications) {
    // As if the person had pressed "Turn on notifications" and said yes; each notification shown is recorded.
    await context.grantPermissions(["notifications"], { origin: BASE });
    await context.addInitScript(recordNotifications);
  }
  const page = await context.newPage();
  page.on("pageerror", (error) => errors.push(`${displayName}: ${error.message}`));
  // The session the API handed the page (its lifetime and whether it has a refresh token).
  const session = page
    .waitForResponse((response) => response.url().endsWith("/v1/me/matrix-session") && response.request().method() === "POST")
    .then((response) => response.json());
  await page.goto(`${BASE}/web/?tenant=${tenant}`);
  await page.getByRole("button", { name: `Sign in as ${displayName}` }).click();
  await openRoom(page, "riverside-hikers");
  return { context, page, session: await session };
}

function recordNotifications() {
  const Original = window.Notification;
  window.notifications = [];
  class Recorded extends Original {
    constructor(title, options = {}) {
      window.notifications.push({ title, body: options.body ?? "", tag: options.tag ?? "" });
      super(title, options);
    }
  }
  Object.defineProperty(Recorded, "permission", { get: () => Original.permission });
  Recorded.requestPermission = (...args) => Original.requestPermission(...args);
  window.Notification = Recorded;
}

export async function openRoom(page, slug) {
  const button = page.locator(`.room-button[data-slug="${slug}"]`);
  await button.waitFor({ state: "attached", timeout: WAIT_MS });
  // On a phone the room list is a pane of its own, one tap away.
  const rooms = page.locator('#phone-nav button[data-pane="rooms"]');
  if (!(await button.isVisible()) && (await rooms.isVisible())) await rooms.click();
  await button.click();
  await page.waitForFunction((s) => document.querySelector(`.room-button[data-slug="${s}"]`)?.getAttribute("aria-current") === "true", slug, { timeout: WAIT_MS });
  await page.locator("#composer-input:not([disabled])").waitFor({ timeout: WAIT_MS });
}

/** The message item (main list) whose text contains `text`. */
export function message(page, text, list = "#messages") {
  return page.locator(`${list} > li.message`, { hasText: text });
}

export async function waitFor(page, predicate, arg) {
  return page.waitForFunction(predicate, arg, { timeout: WAIT_MS });
}

export async function send(page, text) {
  const input = page.locator("#composer-input");
  await input.fill(text);
  await input.press("Enter");
}

/** The demo user's JWT and tenant-scoped API access, as the page gets it. */
export async function demoToken(tenant, userId) {
  const response = await fetch(`${BASE}/local/demo/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ tenant, userId }),
  });
  if (!response.ok) throw new Error(`demo token: ${response.status} ${await response.text()}`);
  return (await response.json()).token;
}

export async function axeViolations(page) {
  const require = createRequire(import.meta.url);
  const source = await readFile(require.resolve("axe-core/axe.min.js"), "utf8");
  await page.addScriptTag({ content: source });
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return result.violations
    .filter((violation) => ["serious", "critical"].includes(violation.impact))
    .map((violation) => `${violation.id} (${violation.impact}): ${violation.help} at ${violation.nodes.map((node) => node.target.join(" ")).join(", ")}`);
}

export function uniqueTenant(prefix) {
  return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
}

/** A fresh Matrix session (new device) of the person signed in on `page`, for raw calls with their own token. */
export async function sessionToken(page) {
  const answer = await page.evaluate(async () => {
    const jwt = await fetch("/local/demo/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(JSON.parse(sessionStorage.getItem("openmeet-demo")) && { tenant: JSON.parse(sessionStorage.getItem("openmeet-demo")).tenant, userId: JSON.parse(sessionStorage.getItem("openmeet-demo")).user }),
    }).then((response) => response.json());
    return fetch("/v1/me/matrix-session", { method: "POST", headers: { Authorization: `Bearer ${jwt.token}`, "Content-Type": "application/json" }, body: "{}" }).then((response) => response.json());
  });
  return { accessToken: answer.accessToken, homeserver: answer.homeserverUrl };
}
