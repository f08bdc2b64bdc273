/**
 * Where the model file comes from: a local GGUF path, an `hf:` (or https) reference downloaded into
 * the cache folder, or — when nothing is configured — the generated demo model in the data folder.
 * node-llama-cpp's resolver hangs for minutes without network, so the download is bounded by a
 * timeout and fails with a clear error naming the model and the timeout.
 */
import { existsSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { AppError } from "../errors.js";
import { ensureDemoModel } from "./generated-models.js";

export interface ResolvedModel {
  path: string;
  demo: boolean;
  /** Default client-facing name: the file name without `.gguf`. */
  name: string;
}

export function isRemoteModelRef(model: string): boolean {
  return /^(hf:|huggingface:|https?:\/\/)/i.test(model);
}

export function modelNameFromPath(path: string): string {
  return basename(path).replace(/\.gguf$/i, "");
}

export async function resolveModelSource(options: {
  model: string | undefined;
  dataDir: string;
  cacheDir: string;
  downloadTimeoutMs: number;
  /** Injected for tests; defaults to node-llama-cpp's resolveModelFile. */
  download?: (ref: string, directory: string, signal: AbortSignal) => Promise<string>;
}): Promise<ResolvedModel> {
  const { model } = options;
  if (model === undefined) {
    const path = resolve(await ensureDemoModel(options.dataDir));
    return { path, demo: true, name: "demo-llama" };
  }
  if (isRemoteModelRef(model)) {
    const directory = resolve(options.cacheDir);
    await mkdir(directory, { recursive: true });
    const download =
      options.download ??
      (async (ref: string, dir: string, signal: AbortSignal) => {
        const { resolveModelFile } = await import("node-llama-cpp");
        return resolveModelFile(ref, { directory: dir, cli: false, signal });
      });
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(
          new AppError(
            "model_not_found",
            `could not download model ${model} into ${directory} within ${options.downloadTimeoutMs} ms ` +
              `(no network access to the hub?). Put the GGUF file there or set MODEL to a local path.`,
          ),
        );
      }, options.downloadTimeoutMs);
    });
    try {
      const path = await Promise.race([download(model, directory, controller.signal), timeout]);
      return { path: resolve(path), demo: false, name: modelNameFromPath(path) };
    } catch (error) {
      if (error instanceof AppError) throw error;
      throw new AppError("model_not_found", `could not resolve model ${model}: ${(error as Error).message}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }
  const path = resolve(model);
  if (!existsSync(path) || !statSync(path).isFile()) {
    throw new AppError("model_not_found", `model file not found: ${path} (MODEL=${model})`);
  }
  return { path, demo: false, name: modelNameFromPath(path) };
}
