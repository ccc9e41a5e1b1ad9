// Build: bundle the page (src/page.ts -> dist/app.js), emit the library as an ES module
// (src/client.ts -> dist/client.js, used by the node tests), copy index.html.
// Type checking is `tsc` (run first by `npm run build`); esbuild only strips types.
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";

const common = { bundle: true, format: "esm", target: "es2022", sourcemap: true, logLevel: "warning" };
await mkdir("dist", { recursive: true });
await Promise.all([
  build({ ...common, entryPoints: ["src/page.ts"], outfile: "dist/app.js", platform: "browser" }),
  build({ ...common, entryPoints: ["src/client.ts"], outfile: "dist/client.js", platform: "neutral" }),
  copyFile("index.html", "dist/index.html"),
]);
console.log("frontend built: dist/index.html, dist/app.js, dist/client.js");
