/**
 * Registering and listing endpoints, shared by the gateway's routes and the admin CLI: the checks
 * a new endpoint passes (its URL, its address, its event types, the user's limit) and how an
 * endpoint is shown to its owner.
 */
import { parsedBySchema } from "../../http/schema-body.js";
import { z } from "zod";
import type { WebhookConfig } from "../../config.js";
import { AppError } from "../../errors.js";
import { generateWebhookSecret, isWebhookEventType, newEndpointId, WEBHOOK_EVENT_TYPES, type WebhookEndpoint, type WebhookStore } from "../../domain/webhooks.js";
import { AddressRefused, hostOf, publicAddresses } from "./address-policy.js";

const URL_MAX = 2_048;

/** POST /api/v1/webhooks (exported for the API reference). */
export const createWebhookBody = z.strictObject({
  url: z.string().meta({ description: "Where events are POSTed: an absolute http(s) URL on a public address." }),
  events: z.array(z.string()).min(1).max(32).optional().meta({ description: "The event types to send; left out: every type." }),
});

export function parseCreateWebhookBody(value: unknown): { url: string; events: string[] } {
  const body = parsedBySchema(createWebhookBody, value);
  return { url: body.url, events: body.events ?? [] };
}

/** The URL, checked: absolute http(s), bounded, no credentials in it, a host that resolves only to public addresses. */
export async function checkWebhookUrl(raw: string, allowPrivate: boolean): Promise<string> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AppError("invalid_webhook_url", "url: not an absolute URL", { details: { field: "url" } });
  }
  if (raw.length > URL_MAX) throw new AppError("invalid_webhook_url", `url: longer than ${URL_MAX} characters`, { details: { field: "url" } });
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new AppError("invalid_webhook_url", "url: must be http or https", { details: { field: "url" } });
  if (url.username || url.password) throw new AppError("invalid_webhook_url", "url: must not hold credentials", { details: { field: "url" } });
  if (!allowPrivate) {
    try {
      await publicAddresses(hostOf(url));
    } catch (error) {
      const message = error instanceof AddressRefused ? error.message : `${hostOf(url).slice(0, 253)} could not be resolved`;
      throw new AppError("webhook_address_refused", `url: ${message}`, { details: { field: "url" } });
    }
  }
  return url.toString();
}

export function checkEventTypes(events: string[]): string[] {
  events.forEach((type, i) => {
    if (!isWebhookEventType(type)) throw new AppError("unknown_webhook_event", `events[${i}]: no event type "${type.slice(0, 64)}"`, { details: { field: `events.${i}` } });
  });
  return [...new Set(events)];
}

/** Creates an endpoint after every check; the secret is in the answer and nowhere else it is shown. */
export async function createEndpoint(store: WebhookStore, config: Pick<WebhookConfig, "allowPrivate" | "maxEndpointsPerUser">, userId: string, input: { url: string; events: string[] }) {
  const url = await checkWebhookUrl(input.url, config.allowPrivate);
  const events = checkEventTypes(input.events);
  if ((await store.countEndpoints(userId)) >= config.maxEndpointsPerUser) {
    throw new AppError("webhook_limit_reached", `at most ${config.maxEndpointsPerUser} webhook endpoints per user`);
  }
  const endpoint = { endpointId: newEndpointId(), userId, url, events, secret: generateWebhookSecret() };
  await store.createEndpoint(endpoint);
  return { id: endpoint.endpointId, object: "webhook_endpoint", url, events: events.length > 0 ? events : "all", status: "enabled", secret: endpoint.secret };
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** An endpoint as its owner sees it: whether it is enabled, why not, how its deliveries go; never its secret. */
export function endpointView(e: WebhookEndpoint) {
  return {
    id: e.endpointId,
    object: "webhook_endpoint",
    url: e.url,
    events: e.events.length > 0 ? e.events : "all",
    status: e.disabledAt ? "disabled" : "enabled",
    disabled_reason: e.disabledReason,
    disabled_at: iso(e.disabledAt),
    last_error: e.lastError,
    last_error_at: iso(e.lastErrorAt),
    last_delivered_at: iso(e.lastDeliveredAt),
    pending_deliveries: e.pending,
    created_at: e.createdAt.toISOString(),
  };
}

/**
 * GET /api/v1/webhooks: the owner's endpoints, and every event type an endpoint may ask for, so a
 * client (the console's form) offers exactly what registration accepts without a copy of the list.
 */
export function endpointList(endpoints: WebhookEndpoint[]) {
  return { object: "list", data: endpoints.map(endpointView), event_types: [...WEBHOOK_EVENT_TYPES] };
}
