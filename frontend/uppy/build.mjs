// Bundles src/main.js (Uppy, its Dashboard and tus plugin, tus-js-client) and their CSS into dist/.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  format: "iife",
  target: "es2020",
  minify: true,
  sourcemap: false,
  outfile: "dist/uppy.js",
  logLevel: "warning",
});
copyFileSync("index.html", "dist/index.html");
