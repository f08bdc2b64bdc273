/**
 * What `ml-inference <component>` runs: opens the infrastructure the component needs (real servers,
 * or the embedded adapters in `all`), assembles the component on it, and returns how to stop both.
 */
import type { Config } from "../config.js";
import type { Logger } from "../observability/logger.js";
import { openInfrastructure } from "../runtime.js";
import { assemble, needsOf, type ComponentName } from "./assemble.js";

export type { ComponentName } from "./assemble.js";

export interface Running {
  /** Where each HTTP endpoint listens, e.g. { gateway: "http://127.0.0.1:8080" }. */
  urls: Record<string, string>;
  stop(): Promise<void>;
}

export async function startComponent(name: ComponentName, config: Config, logger: Logger): Promise<Running> {
  const all = name === "all";
  const log = all ? logger : logger.child({ component: name });
  const infra = await openInfrastructure(config, needsOf(name), log, { embeddedAllowed: all, migrate: all });
  if (name !== "ml-service") log.info({ mode: config.mode, infrastructure: infra.describe() }, "infrastructure ready");
  const assembly = await assemble(name, config, infra, { logger }).catch(async (error: unknown) => {
    await infra.close();
    throw error;
  });
  if (all) announce(config, assembly.urls, log);
  let stopping: Promise<void> | undefined;
  return {
    urls: assembly.urls,
    stop: () =>
      (stopping ??= (async () => {
        await assembly.stop();
        await infra.close();
      })()),
  };
}

function announce(config: Config, urls: Record<string, string>, log: Logger): void {
  const base = urls.gateway ?? "";
  log.info(
    {
      gateway: base,
      ml_service: urls.mlService,
      try: `curl -X POST ${base}/api/v1/inference -d '{"prompt": "test prompt"}'`,
    },
    `ml-inference is up: send requests to ${base}/api/v1/inference`,
  );
  const model = urls.mlService ?? config.worker.mlServiceUrl;
  process.stderr.write(
    `\nml-inference is running (${config.mode} mode)\n  submit:  curl -X POST ${base}/api/v1/inference -d '{"prompt": "Once upon a time"}'\n  status:  curl ${base}/api/v1/status/<request_id>\n  events:  curl -N ${base}/events/<request_id>\n  quota:   curl ${base}/api/v1/quota\n  model:   ${model}/health\n\n`,
  );
}
