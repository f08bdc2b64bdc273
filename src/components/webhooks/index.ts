/**
 * Signed webhooks: the user's endpoints (routes.ts, endpoints.ts), the delivery loop (delivery.ts)
 * that sends what the database triggers put into the outbox (migration 0005), and the admin CLI's
 * commands (admin-commands.ts). The gateway registers the routes and starts and stops the loop.
 */
export { registerWebhookRoutes, type WebhookRouteDeps } from "./routes.js";
export { WebhookDeliveryLoop, type DeliveryLoopDeps } from "./delivery.js";
export { createWebhookBody } from "./endpoints.js";
