/** The admin routes in the API reference (src/http/openapi/routes.ts spreads these into its table). */
import type { RouteDoc } from "../../../http/openapi/routes.js";
import type { JsonSchema } from "../../../http/openapi/requests.js";

const str = { type: "string" };
const int = { type: "integer" };
const limit = { anyOf: [int, { type: "null" }], description: "null: unlimited." };
const obj = (properties: Record<string, JsonSchema>): JsonSchema => ({ type: "object", properties, required: Object.keys(properties) });
const list = (item: JsonSchema): JsonSchema => obj({ data: { type: "array", items: item } });

const user = obj({ user_id: str, tier: str, disabled: { type: "boolean" }, active_keys: int, created_at: { type: "string", format: "date-time" } });
const tier = obj({ name: str, limits: obj({ daily_requests: limit, daily_tokens: limit, monthly_requests: limit, monthly_tokens: limit }) });
const createdKey = obj({ user_id: str, key_id: str, api_key: { type: "string", description: "The key itself: shown in this answer only." } });
const queue = obj({
  queue: str,
  ready: { type: "integer", description: "Messages waiting for a worker." },
  unacked: { type: "integer", description: "Messages a worker is generating (the embedded broker says; RabbitMQ reports 0)." },
  open_requests: { type: "integer", description: "Requests queued or processing." },
  finished_recently: { type: "integer", description: "Requests finished within window_seconds." },
  window_seconds: int,
  throughput_per_second: { type: "number" },
});

const admin = { part: "gateway", tag: "Admin", auth: "bearer" } as const;
const ADMIN_DESCRIPTION = "Demands `Authorization: Bearer <ADMIN_API_KEY>`; any other key is answered 403 `admin_required`.";

export const ADMIN_ROUTE_DOCS: RouteDoc[] = [
  {
    ...admin, method: "get", path: "/api/v1/admin/users", summary: "List users", description: ADMIN_DESCRIPTION,
    success: { 200: { description: "Every user, its tier and its active keys.", content: { "application/json": list(user) } } }, errors: ["admin_required"],
  },
  {
    ...admin, method: "post", path: "/api/v1/admin/users", body: "AdminUserBody", summary: "Create a user", description: ADMIN_DESCRIPTION,
    success: { 201: { description: "The user.", content: { "application/json": obj({ user_id: str, tier: str }) } } },
    errors: ["admin_required", "invalid_parameter", "unknown_field", "conflict", "not_found"],
  },
  {
    ...admin, method: "post", path: "/api/v1/admin/users/{id}/keys", parameters: ["AdminUserId"], summary: "Create an API key for a user",
    description: `${ADMIN_DESCRIPTION} Takes no body. The key is in this answer only (stored as a hash).`,
    success: { 201: { description: "The key, once.", content: { "application/json": createdKey } } }, errors: ["admin_required", "invalid_parameter", "not_found"],
  },
  {
    ...admin, method: "delete", path: "/api/v1/admin/keys/{id}", parameters: ["AdminKeyId"], summary: "Revoke an API key",
    description: `${ADMIN_DESCRIPTION} The key stops working within AUTH_CACHE_TTL_MS.`,
    success: { 200: { description: "Revoked.", content: { "application/json": obj({ key_id: str, revoked: { const: true } }) } } }, errors: ["admin_required", "not_found"],
  },
  {
    ...admin, method: "get", path: "/api/v1/admin/tiers", summary: "List tiers and their limits", description: ADMIN_DESCRIPTION,
    success: { 200: { description: "Every tier.", content: { "application/json": list(tier) } } }, errors: ["admin_required"],
  },
  {
    ...admin, method: "get", path: "/api/v1/admin/queue", summary: "Queue depth and throughput now", description: ADMIN_DESCRIPTION,
    success: { 200: { description: "The request queue and the requests finished in the last minute.", content: { "application/json": queue } } }, errors: ["admin_required"],
  },
];

export const ADMIN_PARAMETERS: Record<string, JsonSchema> = {
  AdminUserId: { name: "id", in: "path", required: true, description: "The user id.", schema: { type: "string", pattern: "^[A-Za-z0-9._@-]{1,128}$" } },
  AdminKeyId: { name: "id", in: "path", required: true, description: "The key id (`key_…`).", schema: { type: "string" } },
};
