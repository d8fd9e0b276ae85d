// Builds the console into dist/: every src/pages/<name>.js is bundled (with the CSS it
// imports) to dist/assets/<name>.js|css, and every pages/<name>.html is copied. No CDN:
// the npm packages are bundled, so the pages work offline and from S3 as they are.
import { build } from "esbuild";
import { cpSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");
// Built beside dist and swapped in, so a server (or a test) reading dist never sees
// it half-written or gone.
const out = join(root, `.dist-${process.pid}`);
const entries = readdirSync(join(root, "src/pages"))
  .filter((name) => name.endsWith(".js"))
  .map((name) => join(root, "src/pages", name));

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });
await build({
  entryPoints: entries,
  outdir: join(out, "assets"),
  bundle: true,
  format: "esm",
  splitting: true,
  minify: true,
  sourcemap: true,
  target: "es2022",
  loader: { ".woff": "file", ".woff2": "file", ".ttf": "file" },
  logLevel: "warning",
});
cpSync(join(root, "pages"), out, { recursive: true });
// make's freshness stamp: written last, so a failed build is rebuilt next time.
writeFileSync(join(out, ".built"), new Date().toISOString() + "\n");
const old = join(root, `.dist-old-${process.pid}`);
try {
  renameSync(dist, old);
} catch {
  // first build: nothing to move aside
}
renameSync(out, dist);
rmSync(old, { recursive: true, force: true });
