/** API keys: generated once, shown once, stored only as a SHA-256 hash. */
import { createHash, randomBytes } from "node:crypto";

const KEY_PREFIX = "mli_";

export function generateApiKey(): { keyId: string; key: string; keyHash: string } {
  const secret = randomBytes(24).toString("base64url");
  const key = `${KEY_PREFIX}${secret}`;
  return { keyId: `key_${randomBytes(6).toString("hex")}`, key, keyHash: hashApiKey(key) };
}

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** Reads `Authorization: Bearer <key>`; undefined when absent, null when malformed. */
export function bearerToken(header: string | undefined): string | undefined | null {
  if (header === undefined || header === "") return undefined;
  const match = /^Bearer\s+([\x21-\x7e]{1,256})$/i.exec(header.trim());
  return match ? (match[1] as string) : null;
}
