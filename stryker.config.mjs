// Mutation testing, shared options (`npm run mutate` runs scripts/mutate.mjs, one file group at a
// time with its own test files; not part of `npm test`). Node's own test runner prints TAP when
// its output is not a terminal, so Stryker's tap-runner runs each test file as `node --import tsx`.
// Per-file coverage analysis runs only the test files that reach a mutant; concurrency stays low
// because the machine has two cores.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: "tap",
  plugins: ["@stryker-mutator/tap-runner"],
  tap: {
    testFiles: [
      "src/domain/*.test.ts",
      "src/adapters/memory/*.test.ts",
      "test/contract/quota-store.test.ts",
      "test/platform/collector*.test.ts",
    ],
    nodeArgs: ["--import", "tsx", "--test-reporter=tap"],
  },
  mutate: [
    "src/domain/**/*.ts",
    "!src/domain/**/*.test.ts",
    "!src/domain/ports.ts",
    "src/adapters/memory/quota-store.ts",
    "src/adapters/redis/quota-store.ts",
    "src/components/collector/index.ts",
  ],
  coverageAnalysis: "perTest",
  concurrency: 1,
  timeoutMS: 10_000,
  ignorePatterns: ["dist", "data", ".data", "coverage", "reports", "bench", "docs", "manifests", "*.log"],
  reporters: ["clear-text", "progress", "json"],
  thresholds: { high: 90, low: 80, break: null },
  tempDirName: ".stryker-tmp",
  cleanTempDir: "always",
};
