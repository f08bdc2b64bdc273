/**
 * The console's batches and admin pages in headless Chromium against the real platform (embedded
 * backend, the real tiny model, the gateway's own batch dispatcher). Admin: sign in with
 * ADMIN_API_KEY, create a user and a key (shown once, and it works), see the queue depth the API
 * reports while no worker runs, and the page follow it to empty once one does. Batches: upload a small JSONL file from the page, watch its
 * progress reach completed, download the output and read its lines. A user's key sees no admin page.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { submit, type Platform } from "../support/platform.js";
import { requireStoriesModel } from "../support/model.js";
import { requireChromium, signIn, startConsoleHarness, withPage } from "./support.js";

const skip = requireStoriesModel() ?? requireChromium();
const ADMIN_KEY = "admin-key-of-the-browser-test-0123456789abcdef";

const chatLine = (id: string, content: string) =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "default", messages: [{ role: "user", content }], max_tokens: 8, temperature: 0 } });

describe("console batches and admin pages in Chromium", { skip, timeout: 240_000 }, () => {
  let platform: Platform;
  let consoleUrl = "";
  let harness: Awaited<ReturnType<typeof startConsoleHarness>> | undefined;
  let browser: Awaited<ReturnType<typeof startConsoleHarness>>["browser"];
  let user: { userId: string; authorization: string };
  let consuming: Promise<void> | undefined;
  /** The worker and collector, started once by whichever test needs them first. */
  const consume = () => (consuming ??= platform.startConsumers());

  before(async () => {
    // No worker until the admin test has seen requests wait in the queue.
    harness = await startConsoleHarness({ backend: "embedded", consumers: false, env: { ADMIN_API_KEY: ADMIN_KEY, BATCH_DISPATCH_INTERVAL_MS: "100" } });
    ({ platform, consoleUrl, browser } = harness);
    user = await platform.createUser({ dailyTokens: 200_000, dailyRequests: 500 });
  });

  after(async () => {
    await harness?.stop();
  });

  it("admin: signs in with the admin key, sees the queue depth follow the queue live, creates a user and a key shown once that works", async () => {
    const waiting = [];
    for (const prompt of ["Once upon a time", "A cat"]) waiting.push(await submit(platform.url, { prompt, max_length: 8 }, user.authorization));
    assert.deepEqual(waiting.map((w) => w.status), [202, 202]);
    await withPage(browser.context, "admin", async (page) => {
      await signIn(page, consoleUrl, ADMIN_KEY);
      await page.getByRole("heading", { level: 2, name: "Admin" }).waitFor();
      const nav = page.getByRole("navigation", { name: "Console" });
      assert.deepEqual(await nav.getByRole("link").allTextContents(), ["Admin"], "the admin key opens the admin page only");

      const queue = await (await fetch(`${platform.url}/api/v1/admin/queue`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).json();
      assert.equal(queue.ready, 2, JSON.stringify(queue));
      await page.getByTestId("queue-ready").filter({ hasText: /^2$/ }).waitFor();
      assert.equal(await page.getByTestId("queue-open").textContent(), "2");

      // The form with the keyboard: type the id, Enter submits.
      await page.getByLabel("User id").focus();
      await page.keyboard.type("erin");
      await page.keyboard.press("Enter");
      const row = page.locator('tr[data-user-id="erin"]');
      await row.waitFor();
      assert.match((await row.textContent()) ?? "", /erin\s*free\s*0/);

      await page.getByRole("button", { name: "Create a key for erin" }).click();
      const shown = page.getByTestId("new-key-value");
      await shown.waitFor();
      const key = (await shown.textContent()) ?? "";
      assert.match(key, /^mli_/);
      assert.match((await page.getByTestId("new-key").textContent()) ?? "", /not shown again/);
      await row.filter({ hasText: /erin\s*free\s*1/ }).waitFor();
      const quota = await fetch(`${platform.url}/api/v1/quota`, { headers: { authorization: `Bearer ${key}` } });
      assert.equal(quota.status, 200);
      assert.equal((await quota.json()).user_id, "erin");

      // A duplicate is refused in words, from the API's message.
      await page.getByLabel("User id").fill("erin");
      await page.getByRole("button", { name: "Create user" }).click();
      await page.getByRole("alert").filter({ hasText: "user erin exists already" }).waitFor();

      await page.getByRole("button", { name: "Revoke this key" }).click();
      await page.getByTestId("new-key").filter({ hasText: "(revoked)" }).waitFor();
      assert.equal((await fetch(`${platform.url}/api/v1/quota`, { headers: { authorization: `Bearer ${key}` } })).status, 401);
      assert.ok((await page.getByTestId("tiers-table").textContent())?.includes("free"), "the tiers are listed");

      // Live: once a worker runs, the page (read every 2 s) sees the queue empty and the two finished.
      await consume();
      await page.getByTestId("queue-ready").filter({ hasText: /^0$/ }).waitFor({ timeout: 30_000 });
      await page.waitForFunction(() => Number(document.querySelector('[data-testid="queue-finished"]')?.textContent) >= 2, undefined, { timeout: 30_000 });
      assert.notEqual(await page.getByTestId("queue-throughput").textContent(), "0.00");
    });
  });

  it("a user's key has no admin page, and #/admin does not open it", async () => {
    await withPage(browser.context, "no-admin", async (page) => {
      await signIn(page, consoleUrl, user.authorization);
      assert.equal(await page.getByRole("link", { name: "Admin" }).count(), 0);
      await page.evaluate(() => (location.hash = "#/admin"));
      await page.getByRole("heading", { level: 2, name: "Playground" }).waitFor();
    });
  });

  it("batches: uploads a JSONL file, watches it reach completed, downloads the output", async () => {
    await consume();
    const lines = [chatLine("first", "Once upon a time"), chatLine("second", "The little dog"), chatLine("third", "A cat")];
    await withPage(browser.context, "batches", async (page) => {
      await signIn(page, consoleUrl, user.authorization);
      await page.getByRole("link", { name: "Batches" }).click();
      await page.getByRole("heading", { level: 2, name: "Batches" }).waitFor();

      // The keyboard's order: heading, file, endpoint, the button; Enter on it says in words that no file was chosen.
      await page.waitForFunction(() => document.activeElement?.tagName === "H2");
      const tabTo = async () => {
        await page.keyboard.press("Tab");
        return page.evaluate(() => document.activeElement?.id || document.activeElement?.textContent);
      };
      assert.equal(await tabTo(), "batch-file");
      assert.equal(await tabTo(), "batch-endpoint");
      assert.equal(await tabTo(), "Upload and create batch");
      await page.keyboard.press("Enter");
      await page.getByRole("alert").filter({ hasText: "Choose a JSONL file first" }).waitFor();

      await page.getByLabel("JSONL file").setInputFiles({ name: "three.jsonl", mimeType: "application/jsonl", buffer: Buffer.from(lines.join("\n") + "\n") });
      assert.equal(await page.getByLabel("Endpoint").inputValue(), "/v1/chat/completions");
      await page.getByRole("button", { name: "Upload and create batch" }).click();
      const created = page.getByRole("status").filter({ hasText: "Created batch" });
      await created.waitFor();
      const id = /batch_\w+/.exec((await created.textContent()) ?? "")?.[0];
      assert.ok(id);

      const row = page.locator(`tr[data-batch-id="${id}"]`);
      await page.locator(`tr[data-batch-id="${id}"][data-status="completed"]`).waitFor({ timeout: 60_000 });
      const bar = row.getByRole("progressbar");
      assert.equal(await bar.getAttribute("aria-valuenow"), "3");
      assert.equal(await bar.getAttribute("aria-valuemax"), "3");
      assert.match((await bar.getAttribute("aria-valuetext")) ?? "", /3 of 3 done: 3 completed, 0 failed/);

      const [download] = await Promise.all([page.waitForEvent("download"), row.getByRole("button", { name: `Download the output of ${id}` }).click()]);
      assert.equal(download.suggestedFilename(), `${id}-output.jsonl`);
      const output = readFileSync(await download.path(), "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(output.map((l) => l.custom_id).sort(), ["first", "second", "third"]);
      for (const l of output) assert.equal(typeof l.response.body.choices[0].message.content, "string");
      assert.equal(await row.getByRole("button", { name: /Download the errors/ }).count(), 0, "no line failed: no error file");

      // The README's picture (CONSOLE_BATCHES_SCREENSHOT=docs/console-batches.png).
      const screenshot = process.env.CONSOLE_BATCHES_SCREENSHOT;
      if (screenshot) {
        await page.setViewportSize({ width: 1024, height: 700 });
        await page.screenshot({ path: screenshot });
      }

      // A file with a bad line: a failed batch whose row names the line.
      await page.getByLabel("JSONL file").setInputFiles({ name: "bad.jsonl", mimeType: "application/jsonl", buffer: Buffer.from(`${lines[0]}\nnot json\n`) });
      await page.getByRole("button", { name: "Upload and create batch" }).click();
      await page.locator('tr[data-status="failed"]').filter({ hasText: /line 2/i }).waitFor();
    });
  });

  it("fits a phone's width on the batches and admin pages", async () => {
    for (const [key, hash, heading] of [[user.authorization, "#/batches", "Batches"], [ADMIN_KEY, "#/admin", "Admin"]] as const) {
      await withPage(browser.context, `phone-${heading}`, async (page) => {
        await page.setViewportSize({ width: 360, height: 740 });
        await signIn(page, consoleUrl, key);
        await page.evaluate((h) => (location.hash = h), hash);
        await page.getByRole("heading", { level: 2, name: heading }).waitFor();
        await page.locator("table").first().waitFor();
        const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
        assert.ok(scroll <= width, `${hash} is ${scroll}px wide on a ${width}px screen`);
      });
    }
  });
});
