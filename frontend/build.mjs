// Build: bundle the page (src/page.ts -> dist/app.js) with the client package it imports
// as `@pdf-upload/client` (clients/typescript, from its source: tsconfig.json's `paths`,
// which esbuild follows too), emit the page's pure text helpers as an ES module
// (src/text.ts -> dist/text.js, for the node tests), copy index.html.
// Type checking is `tsc` (run first by `npm run build`); esbuild only strips types.
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";

const common = { bundle: true, format: "esm", target: "es2022", sourcemap: true, logLevel: "warning" };
await mkdir("dist", { recursive: true });
await Promise.all([
  build({ ...common, entryPoints: ["src/page.ts"], outfile: "dist/app.js", platform: "browser" }),
  build({ ...common, entryPoints: ["src/text.ts"], outfile: "dist/text.js", platform: "neutral" }),
  copyFile("index.html", "dist/index.html"),
]);
console.log("frontend built: dist/index.html, dist/app.js, dist/text.js");
