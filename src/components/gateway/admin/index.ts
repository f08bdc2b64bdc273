/** The admin HTTP routes (users, keys, tiers, queue) behind ADMIN_API_KEY; see routes.ts. */
export { registerAdminRoutes, THROUGHPUT_WINDOW_S, type AdminRouteDeps } from "./routes.js";
export { createUserBody } from "./shapes.js";
export { ADMIN_PARAMETERS, ADMIN_ROUTE_DOCS } from "./docs.js";
