/**
 * A body (or query) checked against a zod schema, the first problem named as the API names them:
 * a field the schema does not know is `unknown_field`, anything else `invalid_parameter`, each with
 * `details.field`. For the gateway's own JSON routes (files, batches, webhooks, admin).
 */
import type { z } from "zod";
import { AppError } from "../errors.js";

export function parsedBySchema<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0] as z.core.$ZodIssue;
  if (issue.code === "unrecognized_keys") {
    const field = String(issue.keys[0]).slice(0, 64);
    throw new AppError("unknown_field", `unknown field "${field}"`, { details: { field } });
  }
  const field = issue.path.join(".") || "body";
  throw new AppError("invalid_parameter", `${field}: ${issue.message}`, { details: { field } });
}
