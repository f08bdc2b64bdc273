/**
 * The admin credential: `Authorization: Bearer <ADMIN_API_KEY>`. Compared as SHA-256 digests with
 * timingSafeEqual, so neither the key's length nor its first differing byte shows in the timing.
 * No admin key set: every admin route is refused (there is no default admin).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { AppError } from "../../../errors.js";
import { bearerToken } from "../../../domain/api-keys.js";

const digest = (value: string) => createHash("sha256").update(value, "utf8").digest();

export function adminGuard(adminApiKey: string | undefined): (authorization: string | undefined) => void {
  const expected = adminApiKey ? digest(adminApiKey) : undefined;
  return (authorization) => {
    const token = bearerToken(authorization);
    if (token === null) throw new AppError("unauthorized", "malformed Authorization header: expected 'Bearer <admin key>'");
    if (token === undefined) throw new AppError("unauthorized", "missing admin key: send 'Authorization: Bearer <ADMIN_API_KEY>'");
    if (!expected || !timingSafeEqual(digest(token), expected)) {
      throw new AppError("admin_required", expected ? "this key is not the admin key (ADMIN_API_KEY)" : "the platform has no admin key (ADMIN_API_KEY is not set)");
    }
  };
}
