/** The ML Service's graceful stop: no new work, running generations finish (bounded), then close. */
import type { FastifyInstance } from "fastify";
import type { Engine } from "../../engines/types.js";

/** How long a stop lets running generations finish before aborting them. */
const DRAIN_TIMEOUT_MS = 10_000;
/** After the generations: how long connections may stay open before they are cut. */
const CONNECTION_GRACE_MS = 2_000;

export async function drain(app: FastifyInstance, engine: Engine): Promise<void> {
  // Stop accepting at once, let running generations finish (bounded), then abort the rest and free the model.
  const closing = app.close();
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  while (engine.stats().running + engine.stats().waiting > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  engine.abortAll();
  // Answers are complete or aborted now: close the keep-alive connections they leave behind,
  // then, after a short grace, whatever is still open.
  const server = app.server;
  const sweep = setInterval(() => server.closeIdleConnections(), 25);
  const grace = setTimeout(() => server.closeAllConnections(), CONNECTION_GRACE_MS);
  try {
    await closing;
  } finally {
    clearInterval(sweep);
    clearTimeout(grace);
  }
  await engine.close();
}
