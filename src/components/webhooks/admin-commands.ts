/**
 * The admin CLI's `webhooks` commands, talking to the database directly like `users` and `keys`:
 * create (the secret is printed once), list (one user's or everyone's), delete.
 */
import type { WebhookConfig } from "../../config.js";
import { AppError } from "../../errors.js";
import type { WebhookStore } from "../../domain/webhooks.js";
import type { UserStore } from "../../domain/ports.js";
import { createEndpoint, endpointView } from "./endpoints.js";

export const WEBHOOK_ADMIN_HELP = `  webhooks create <user-id> <url> [--events e1,e2]
                                              register a webhook endpoint; its signing secret is shown once
  webhooks list [<user-id>]                   list endpoints (all users' without one): status, why disabled, last error
  webhooks delete <endpoint-id>               delete an endpoint and its undelivered events
`;

export interface WebhookCommandDeps {
  store: WebhookStore;
  users: Pick<UserStore, "findUser">;
  config: WebhookConfig;
}

/** Runs `webhooks <sub> …`; answers what to print, or null when `sub` is not a webhooks command. */
export async function runWebhookCommand(sub: string | undefined, args: string[], options: Map<string, string>, deps: WebhookCommandDeps): Promise<unknown | null> {
  const [a, b] = args;
  switch (sub) {
    case "create": {
      if (!a || !b) throw new AppError("invalid_parameter", "usage: webhooks create <user-id> <url> [--events e1,e2]");
      if (!(await deps.users.findUser(a))) throw new AppError("not_found", `no user ${a}; create it first with "users create ${a}"`);
      const events = (options.get("events") ?? "").split(",").map((e) => e.trim()).filter(Boolean);
      const created = await createEndpoint(deps.store, deps.config, a, { url: b, events });
      return { user_id: a, ...created, note: "store this secret now: it is not shown again" };
    }
    case "list":
      return (await deps.store.listEndpoints(a ?? null)).map((e) => ({ user_id: e.userId, ...endpointView(e) }));
    case "delete": {
      if (!a) throw new AppError("invalid_parameter", "usage: webhooks delete <endpoint-id>");
      if (!(await deps.store.deleteEndpoint(a, null))) throw new AppError("not_found", `no webhook endpoint ${a}`);
      return { id: a, deleted: true };
    }
    default:
      return null;
  }
}
