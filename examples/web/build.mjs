// Bundles the page into dist/ with esbuild: everything the page loads comes from this origin, nothing from a CDN.
import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";

const here = new URL(".", import.meta.url).pathname;
const out = `${here}dist`;

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: [`${here}src/main.js`],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["chrome110", "firefox115", "safari16"],
  minify: true,
  sourcemap: true,
  legalComments: "linked",
  outfile: `${out}/app.js`,
  logLevel: "warning",
});
for (const file of ["index.html", "styles.css", "favicon.svg"]) {
  await copyFile(`${here}src/${file}`, `${out}/${file}`);
}
console.log(`built ${out}`);
