/**
 * The console's webhooks page in headless Chromium against the real platform (embedded backend, the
 * real tiny model, the gateway's own delivery loop) and a real receiver on loopback, which
 * WEBHOOK_ALLOW_PRIVATE=true lets the platform send to. Register an endpoint from the form, see its
 * secret once (and copy it with the button), run a prompt in the playground and see the receiver get
 * the event signed with that secret (the openai client's webhooks.unwrap checks it) and the page show
 * it delivered; a URL the API refuses shows the API's message; an endpoint the platform gave up on
 * says why; delete asks first, and then the endpoint is gone from the page and from the API.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { submit, waitForFinal, type Platform } from "../support/platform.js";
import { requireStoriesModel } from "../support/model.js";
import { startReceiver, type Receiver } from "../support/webhook-receiver.js";
import { waitFor } from "../support/wait.js";
import { WEBHOOK_EVENT_TYPES } from "../../src/domain/webhooks.js";
import { requireChromium, signIn, startConsoleHarness, withPage } from "./support.js";

const skip = requireStoriesModel() ?? requireChromium();
/** Short enough that giving up on a failing receiver is seen here; retries 30 → 60 → 100 ms apart. */
const MAX_AGE_MS = 2_500;

type Endpoint = { id: string; url: string; events: string[] | "all"; status: string };
type Event = { id: string; type: string; object: string; data: { id: string } };

describe("console webhooks page in Chromium", { skip, timeout: 180_000 }, () => {
  let platform: Platform;
  let consoleUrl = "";
  let harness: Awaited<ReturnType<typeof startConsoleHarness>> | undefined;
  let browser: Awaited<ReturnType<typeof startConsoleHarness>>["browser"];
  let receiver: Receiver;
  let user: { userId: string; authorization: string };
  /** The endpoint the first test registers, and its secret as the page showed it. */
  let hook: { id: string; url: string; secret: string } | undefined;
  const openai = new OpenAI({ apiKey: "unused", baseURL: "http://127.0.0.1:1/v1" });

  const endpoints = async (): Promise<Endpoint[]> => {
    const answer = await fetch(`${platform.url}/api/v1/webhooks`, { headers: { authorization: user.authorization } });
    assert.equal(answer.status, 200);
    return ((await answer.json()) as { data: Endpoint[] }).data;
  };
  const openWebhooks = async (page: import("playwright-core").Page) => {
    await signIn(page, consoleUrl, user.authorization);
    await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Webhooks" }).click();
    await page.getByRole("heading", { level: 2, name: "Webhooks" }).waitFor();
  };

  before(async () => {
    receiver = await startReceiver();
    harness = await startConsoleHarness({
      backend: "embedded",
      env: {
        WEBHOOK_ALLOW_PRIVATE: "true",
        WEBHOOK_POLL_INTERVAL_MS: "50",
        WEBHOOK_RETRY_BASE_MS: "30",
        WEBHOOK_RETRY_MAX_MS: "100",
        WEBHOOK_MAX_ATTEMPT_AGE_MS: String(MAX_AGE_MS),
      },
    });
    ({ platform, consoleUrl, browser } = harness);
    await browser.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: consoleUrl });
    user = await platform.createUser({ dailyTokens: 200_000, dailyRequests: 500 });
  });

  after(async () => {
    await harness?.stop();
    await receiver?.close();
  });

  it("registers an endpoint from the form, shows its secret once, and the receiver gets the playground request's signed event", async () => {
    const url = receiver.path("console");
    await withPage(browser.context, "webhooks-register", async (page) => {
      await openWebhooks(page);
      assert.equal(await page.getByRole("link", { name: "Webhooks" }).getAttribute("aria-current"), "page");
      await page.getByText("No endpoints yet.").waitFor();

      // The form offers exactly the event types the platform has, as the API lists them.
      const events = page.getByRole("group", { name: "Events", exact: true }).getByRole("checkbox");
      await events.first().waitFor();
      const offered = await page.locator("fieldset.events label").allTextContents();
      assert.deepEqual(offered, [...WEBHOOK_EVENT_TYPES]);

      // The keyboard only: from the heading to the URL, then Space on two events, then Enter.
      await page.waitForFunction(() => document.activeElement?.tagName === "H2");
      await page.keyboard.press("Tab");
      assert.equal(await page.evaluate(() => document.activeElement?.id), "webhook-url");
      await page.keyboard.type(url);
      for (const type of ["inference.completed", "inference.failed"]) {
        await page.getByLabel(type, { exact: true }).focus();
        await page.keyboard.press("Space");
        assert.ok(await page.getByLabel(type, { exact: true }).isChecked(), `${type} is checked`);
      }
      await page.getByLabel("Endpoint URL").focus();
      await page.keyboard.press("Enter");

      // The secret, once: it takes the focus, says so, and copies.
      const shown = page.getByTestId("webhook-secret");
      await shown.waitFor();
      await page.waitForFunction(() => document.activeElement?.getAttribute("data-testid") === "webhook-secret");
      assert.match((await shown.textContent()) ?? "", /You will not see this secret again/);
      const secret = await page.getByLabel("Signing secret", { exact: true }).inputValue();
      assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
      await page.getByRole("button", { name: "Copy" }).click();
      await shown.getByRole("status").filter({ hasText: "Copied to the clipboard." }).waitFor();
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);

      // Listed, with what was chosen; the API agrees.
      const [registered] = await endpoints();
      assert.ok(registered, "the API lists no endpoint");
      assert.equal(registered.url, url);
      assert.deepEqual(registered.events, ["inference.completed", "inference.failed"]);
      const row = page.locator(`tr[data-endpoint-id="${registered.id}"]`);
      await row.waitFor();
      const text = (await row.textContent()) ?? "";
      for (const part of [url, registered.id, "inference.completed, inference.failed", "enabled", "never"]) assert.ok(text.includes(part), `the row lacks ${part}: ${text}`);
      hook = { id: registered.id, url, secret };

      // A request from the playground: its event reaches the receiver, signed with that secret.
      await page.getByRole("link", { name: "Playground" }).click();
      await page.getByLabel("Max tokens").fill("8");
      await page.getByLabel("Prompt").fill("Once upon a time");
      await page.getByRole("button", { name: "Generate" }).click();
      await page.getByTestId("run-status").filter({ hasText: /completed|failed|cancelled/ }).waitFor({ timeout: 60_000 });
      const requestId = (await page.getByRole("link", { name: /^[0-9a-f-]{36}$/ }).textContent()) ?? "";
      await waitFor("the event at the receiver", () => receiver.at("console").length > 0, 30_000);
      const delivery = receiver.at("console")[0]!;
      const event = (await openai.webhooks.unwrap(delivery.body, delivery.headers, secret)) as unknown as Event;
      assert.equal(event.type, "inference.completed");
      assert.equal(event.data.id, requestId);

      // Back on the page the secret is gone for good, and the row shows the delivery.
      await page.getByRole("link", { name: "Webhooks" }).click();
      await page.getByRole("heading", { level: 2, name: "Webhooks" }).waitFor();
      await row.waitFor();
      assert.equal(await page.getByTestId("webhook-secret").count(), 0);
      assert.ok(!(await page.content()).includes(secret), "the secret is still in the page");
      const deliveries = row.getByTestId("deliveries");
      await deliveries.filter({ hasText: /Last delivered: (?!never)\S/ }).waitFor({ timeout: 15_000 });
      assert.match((await deliveries.textContent()) ?? "", /Waiting: 0/);
    });
  });

  it("a URL the API refuses shows the API's message in words, on the field", async () => {
    await withPage(browser.context, "webhooks-refused", async (page) => {
      await openWebhooks(page);
      await page.getByRole("button", { name: "Register endpoint" }).click();
      await page.getByRole("alert").filter({ hasText: "Enter the URL the events are sent to" }).waitFor();

      const refused = "ftp://example.com/hooks";
      const answer = await fetch(`${platform.url}/api/v1/webhooks`, {
        method: "POST",
        headers: { authorization: user.authorization, "content-type": "application/json" },
        body: JSON.stringify({ url: refused }),
      });
      assert.equal(answer.status, 400);
      const expected = ((await answer.json()) as { error: { message: string } }).error.message;
      await page.getByLabel("Endpoint URL").fill(refused);
      await page.getByRole("button", { name: "Register endpoint" }).click();
      await page.getByRole("alert").filter({ hasText: expected }).waitFor();
      assert.equal(await page.getByLabel("Endpoint URL").getAttribute("aria-invalid"), "true");
      assert.equal(await page.getByTestId("webhook-secret").count(), 0);
      assert.equal((await endpoints()).length, 1, "nothing was registered");
    });
  });

  it("an endpoint whose deliveries kept failing shows that it is disabled, and why", async () => {
    const created = await fetch(`${platform.url}/api/v1/webhooks`, {
      method: "POST",
      headers: { authorization: user.authorization, "content-type": "application/json" },
      body: JSON.stringify({ url: receiver.path("dead", { kind: "always-fail" }), events: ["inference.completed"] }),
    });
    assert.equal(created.status, 201);
    const dead = (await created.json()) as { id: string };
    const admitted = await submit(platform.url, { prompt: "The sun was", max_length: 6 }, user.authorization);
    await waitForFinal(platform.url, admitted.body.request_id, user.authorization);
    await withPage(browser.context, "webhooks-disabled", async (page) => {
      await openWebhooks(page);
      // The page reads the list again by itself: the row turns disabled once the platform gives up.
      const row = page.locator(`tr[data-endpoint-id="${dead.id}"][data-status="disabled"]`);
      await row.waitFor({ timeout: MAX_AGE_MS + 20_000 });
      const reason = (await row.getByTestId("disabled-reason").textContent()) ?? "";
      assert.match(reason, /could not be delivered in \d+ attempts .*answered 500/);
      assert.match((await row.getByTestId("deliveries").textContent()) ?? "", /Last error .*answered 500/);
      assert.equal(await page.locator(`tr[data-endpoint-id="${hook?.id}"][data-status="enabled"]`).count(), 1, "the other endpoint is still enabled");
    });
  });

  it("fits a phone's width", async () => {
    await withPage(browser.context, "webhooks-phone", async (page) => {
      await page.setViewportSize({ width: 360, height: 740 });
      await openWebhooks(page);
      await page.locator('tr[data-status="disabled"]').waitFor();
      const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
      assert.ok(scroll <= width, `the webhooks page is ${scroll}px wide on a ${width}px screen`);
    });
  });

  it("delete asks first (keeping it keeps it), then the endpoint is gone from the page and the API", async () => {
    assert.ok(hook, "the first test registered no endpoint");
    await withPage(browser.context, "webhooks-delete", async (page) => {
      await openWebhooks(page);
      const row = page.locator(`tr[data-endpoint-id="${hook!.id}"]`);
      await row.waitFor();
      const ask = row.getByRole("button", { name: `Delete the endpoint ${hook!.url}` });

      await ask.click();
      const question = row.getByRole("group", { name: `Delete ${hook!.url}?` });
      await question.waitFor();
      await page.waitForFunction(() => document.activeElement?.textContent === "Yes, delete");
      await question.getByRole("button", { name: "Keep it" }).click();
      await ask.waitFor();
      await page.waitForFunction(() => document.activeElement?.getAttribute("aria-label")?.startsWith("Delete the endpoint") === true);
      assert.ok((await endpoints()).some((e) => e.id === hook!.id), "keeping it deleted it");

      // With the keyboard: Enter on Delete, Enter on the focused "Yes, delete".
      await ask.focus();
      await page.keyboard.press("Enter");
      await page.waitForFunction(() => document.activeElement?.textContent === "Yes, delete");
      await page.keyboard.press("Enter");
      await page.getByRole("status").filter({ hasText: `Deleted the endpoint ${hook!.url}.` }).waitFor();
      await row.waitFor({ state: "detached" });
      assert.equal(await page.evaluate(() => document.activeElement?.textContent), "My endpoints", "the focus went to the list's heading");
      assert.deepEqual((await endpoints()).map((e) => e.id).filter((id) => id === hook!.id), [], "the API still lists it");
    });
  });
});
