// The web console: Preact, bundled by Vite into dist/console/ (served by src/http/console.ts under
// /console). Everything it needs is in the bundle: no CDN, no web fonts, so it works offline.
import { defineConfig } from "vite";
import preact from "@preact/preset-vite";
import { fileURLToPath } from "node:url";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/console/",
  plugins: [preact()],
  // Vite's own .env lookup would read the platform's settings from the checkout: the console has none.
  envDir: false,
  build: {
    outDir: fileURLToPath(new URL("../dist/console", import.meta.url)),
    emptyOutDir: true,
    // The page's CSP allows no inline script or style: keep every asset a file of its own.
    assetsInlineLimit: 0,
    sourcemap: false,
    target: "es2022",
  },
  // `vite` (dev) serves the console and forwards the API to a platform started with `npm start`.
  server: {
    proxy: Object.fromEntries(["/api", "/v1", "/events"].map((p) => [p, process.env.CONSOLE_API ?? "http://127.0.0.1:8080"])),
  },
});
