/** The trained tiny model shared by the project (see ../shared/models/README.md). */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

export const STORIES_MODEL_PATH = resolve(process.env.TEST_MODEL_PATH ?? "../shared/models/stories260K.gguf");
const STORIES_SHA256 = "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d";

let verified: string | undefined | null = null;

/**
 * Returns a skip reason when the model is missing or corrupt, else undefined. Under CI=true a
 * missing model fails instead of skipping.
 */
export function requireStoriesModel(): string | undefined {
  if (verified !== null) return verified;
  let reason: string | undefined;
  if (!existsSync(STORIES_MODEL_PATH)) reason = `model file not found at ${STORIES_MODEL_PATH}`;
  else {
    const digest = createHash("sha256").update(readFileSync(STORIES_MODEL_PATH)).digest("hex");
    if (digest !== STORIES_SHA256) reason = `model at ${STORIES_MODEL_PATH} has sha256 ${digest}, expected ${STORIES_SHA256}`;
  }
  if (reason && process.env.CI === "true") throw new Error(`${reason}; CI needs the shared model`);
  if (reason) console.log(`# skipping suite: ${reason}`);
  verified = reason;
  return reason;
}
