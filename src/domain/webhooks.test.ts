import { test } from "node:test";
import assert from "node:assert/strict";
import { deliveryHeaders, eventBody, generateWebhookSecret, isWebhookEventType, nextAttempt, signWebhook } from "./webhooks.js";

test("signing matches the Standard Webhooks test vector", () => {
  // From the Standard Webhooks specification's reference libraries (and Svix's).
  const signature = signWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}');
  assert.equal(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
});

test("a change to the id, the timestamp, the body or the secret changes the signature", () => {
  const base = signWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1", 1, "{}");
  assert.notEqual(signWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_2", 1, "{}"), base);
  assert.notEqual(signWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1", 2, "{}"), base);
  assert.notEqual(signWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1", 1, "{ }"), base);
  assert.notEqual(signWebhook(generateWebhookSecret(), "msg_1", 1, "{}"), base);
});

test("secrets are whsec_ and 32 random bytes", () => {
  const secret = generateWebhookSecret();
  assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  assert.equal(Buffer.from(secret.slice(6), "base64").length, 32);
  assert.notEqual(generateWebhookSecret(), secret);
});

test("the body is OpenAI's event shape, the same bytes every time; the headers carry the event id", () => {
  const event = { eventId: "evt_1", type: "batch.completed", subjectId: "batch_9", createdAt: new Date(1_700_000_000_500) };
  const body = eventBody(event);
  assert.deepEqual(JSON.parse(body), { id: "evt_1", type: "batch.completed", created_at: 1_700_000_000, object: "event", data: { id: "batch_9" } });
  assert.equal(eventBody({ ...event }), body);
  const headers = deliveryHeaders("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", event, body, new Date(1_700_000_100_000));
  assert.equal(headers["webhook-id"], "evt_1");
  assert.equal(headers["webhook-timestamp"], "1700000100");
  assert.equal(headers["webhook-signature"], signWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "evt_1", 1_700_000_100, body));
});

test("event types", () => {
  assert.ok(isWebhookEventType("response.incomplete"));
  assert.ok(isWebhookEventType("inference.failed"));
  assert.ok(!isWebhookEventType("chat.completed"));
});

test("back-off doubles from the base with jitter in [half, all], is capped, and gives up at the max age", () => {
  const policy = { baseMs: 1_000, maxDelayMs: 60_000, maxAgeMs: 3_600_000 };
  const created = new Date(0);
  const now = new Date(10_000);
  const wait = (attempts: number, random: number) => {
    const decision = nextAttempt(policy, attempts, created, now, random);
    assert.ok("retryAt" in decision);
    return decision.retryAt.getTime() - now.getTime();
  };
  assert.equal(wait(1, 0), 500);
  assert.equal(wait(1, 0.5), 750);
  assert.equal(wait(2, 0), 1_000);
  assert.equal(wait(3, 0.5), 3_000);
  assert.equal(wait(20, 0), 30_000);
  assert.ok(wait(20, 0.9999) <= 60_000);
  assert.ok(wait(1_000, 0.5) <= 60_000, "huge attempt counts stay capped");
  // The last attempt is at the max age, not after it; at or past it the delivery is given up.
  const late = nextAttempt(policy, 50, created, new Date(3_599_000), 0.9);
  assert.ok("retryAt" in late && late.retryAt.getTime() === 3_600_000);
  assert.deepEqual(nextAttempt(policy, 51, created, new Date(3_600_000), 0.5), { giveUp: true });
});
