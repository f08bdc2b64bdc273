/**
 * The OpenAI Batch API: routes (files and batches) and the dispatcher that validates new batches
 * (validator.ts) and runs batch lines through admission. The gateway wires both: the routes on its
 * app, the dispatcher started and stopped with it.
 */
export { registerBatchRoutes, type BatchRouteDeps } from "./routes.js";
export { BatchDispatcher, type BatchDispatcherDeps } from "./dispatcher.js";
export { batchUserResolver, lineOutcomeOf } from "./line-requests.js";
export { validateBatchFile, lineAdmission, type BatchLimits } from "./lines.js";
