#!/usr/bin/env node
// Runs every test file (pure unit tests beside the code in src/, server suites in test/) with
// node's own test runner. Node 20's --test takes no globs, so the files are listed here.
// Usage: npm test [-- <path filter> ...]   e.g. npm test -- quota
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "node:child_process";

function walk(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const full = join(dir, name);
    if (statSync(full).isDirectory()) walk(full, out);
    else if (name.endsWith(".test.ts")) out.push(full);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = ["src", "test", "bench"].flatMap((d) => walk(d)).filter((f) => filters.length === 0 || filters.some((x) => f.includes(x))).sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(" ")}`);
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? "2";
const child = spawn(
  process.execPath,
  ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...files],
  { stdio: "inherit" },
);
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
