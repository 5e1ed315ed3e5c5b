// Builds everything the server serves from web/dist (see signaling/webfiles.py):
//
//   dist/tandem.js                 the snippet loader (tiny, always loaded by host pages)
//   dist/tandem/<chunk>-<hash>.js  lazily loaded snippet chunks (the chat widget; later rrweb)
//   dist/console/                  the agent console (ES modules; lazy chunks in chunks/)
//   dist/demo/                     the demo shop
//   dist/index.html                the landing page
//
// Snippet chunks are classic scripts (IIFE with a global name), not ES modules: a host page on
// another origin can load them with a plain <script> tag, which needs no CORS headers. The loader
// learns their hashed names through the `__TANDEM_CHUNKS__` define. To add a chunk (rrweb's
// recorder), add it to SNIPPET_CHUNKS and load it with `loadChunk("name")` in the loader.
//
// Usage: node build.mjs [--dev]   (--dev: no minification, inline source maps)

import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import { cp, mkdir, readFile, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = path.dirname(fileURLToPath(import.meta.url));
const finalDist = path.join(root, "dist");
// Built aside and swapped in at the end, so a running server never sees a half-built tree.
const dist = path.join(root, ".dist-build");
const dev = process.argv.includes("--dev");

/** Lazily loaded snippet chunks: name -> entry point. */
const SNIPPET_CHUNKS = {
  widget: "src/snippet/widget.js",
  cobrowse: "src/snippet/cobrowse/index.js", // rrweb's recorder + the sharing UI (after consent)
  call: "src/snippet/call/index.js", // WebRTC calls, screen share and uploads (once in a session)
};

const common = {
  bundle: true,
  minify: !dev,
  sourcemap: dev ? "inline" : false,
  target: "es2020",
  legalComments: "none",
  logLevel: "warning",
  charset: "utf8",
  plugins: [shadowCss(), rrwebPatches()],
};

/**
 * Two changes to the bundled rrweb, made at build time (the build fails if rrweb no longer has
 * the lines; re-check on every rrweb upgrade):
 *
 * 1. rrweb's recorder parses an element's previous style attribute by setting it on a span of a
 * detached document (`old.setAttribute("style", ...)`). That document inherits the host page's
 * CSP, so on a site whose `style-src` has no 'unsafe-inline' every style change the page makes
 * (even through CSSOM, which the CSP allows) logs a violation while co-browsing: hundreds a
 * minute with an animated element. Parsing through CSSOM (`old.style.cssText = ...`) gives the
 * same declarations and is not an inline style under CSP.
 * 2. Every stylesheet rule rrweb copies goes through src/snippet/cobrowse/css-rules.js, which
 *    restores the shorthands Chromium's `rule.cssText` loses (a var() shorthand with one longhand
 *    overridden).
 */
function rrwebPatches() {
  const patches = [
    ['if (m.oldValue) old.setAttribute("style", m.oldValue);', "if (m.oldValue) old.style.cssText = m.oldValue;"],
    // A rule's text with the shorthands Chromium's serialization loses restored (see
    // src/snippet/cobrowse/css-rules.js): every stylesheet rrweb copies goes through it.
    ["let ruleStringified = rule.cssText;", "let ruleStringified = __tandemRuleText(rule);"],
  ];
  const ruleText = JSON.stringify(path.join(root, "src/snippet/cobrowse/css-rules.js"));
  return {
    name: "rrweb-patches",
    setup(build) {
      build.onLoad({ filter: /[\\/]node_modules[\\/]rrweb[\\/]dist[\\/]rrweb\.js$/ }, async (args) => {
        let code = await readFile(args.path, "utf8");
        for (const [needle, replacement] of patches) {
          if (!code.includes(needle)) throw new Error(`rrweb changed: "${needle}" not found in ${args.path}`);
          code = code.replace(needle, replacement);
        }
        code = `import { ruleText as __tandemRuleText } from ${ruleText};\n${code}`;
        return { contents: code, loader: "js", resolveDir: path.dirname(args.path) };
      });
    },
  };
}

/** `import css from "./x.shadow.css"` gives the minified stylesheet as a string (for Shadow DOM). */
function shadowCss() {
  return {
    name: "shadow-css",
    setup(build) {
      build.onLoad({ filter: /\.shadow\.css$/ }, async (args) => {
        const out = await esbuild.build({
          entryPoints: [args.path],
          bundle: true,
          minify: !dev,
          write: false,
          logLevel: "silent",
        });
        return { contents: out.outputFiles[0].text, loader: "text" };
      });
    },
  };
}

/** The rrweb version bundled (the co-browse stream names its recorder, e.g. "rrweb@2.2.2"). */
const rrwebVersion = async () =>
  JSON.parse(await readFile(path.join(root, "node_modules/rrweb/package.json"), "utf8")).version;

const hash = (text) => createHash("sha256").update(text).digest("hex").slice(0, 10);

async function buildSnippet() {
  const chunks = {};
  for (const [name, entry] of Object.entries(SNIPPET_CHUNKS)) {
    const out = await esbuild.build({
      ...common,
      entryPoints: [path.join(root, entry)],
      format: "iife",
      globalName: `__tandem_${name}`,
      write: false,
      define: { __RRWEB_VERSION__: JSON.stringify(await rrwebVersion()) },
    });
    const code = out.outputFiles[0].text;
    const file = `tandem/${name}-${hash(code)}.js`;
    await mkdir(path.join(dist, "tandem"), { recursive: true });
    await writeFile(path.join(dist, file), code);
    chunks[name] = file;
  }
  await esbuild.build({
    ...common,
    entryPoints: [path.join(root, "src/snippet/loader.js")],
    format: "iife",
    outfile: path.join(dist, "tandem.js"),
    define: { __TANDEM_CHUNKS__: JSON.stringify(chunks) },
  });
  return chunks;
}

async function buildConsole() {
  await esbuild.build({
    ...common,
    entryPoints: { app: path.join(root, "src/console/main.js") },
    outdir: path.join(dist, "console"),
    format: "esm",
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
    loader: { ".svg": "text" },
  });
  await esbuild.build({
    ...common,
    entryPoints: { app: path.join(root, "src/console/console.css") },
    outdir: path.join(dist, "console"),
  });
}

/** The co-browse replay page (console/replay.html): rrweb's Replayer in its own bundle, so the
 * console never loads it and the page can have its own CSP (signaling/webfiles.py). */
async function buildReplay() {
  await esbuild.build({
    ...common,
    entryPoints: {
      replay: path.join(root, "src/console/cobrowse/replay-page.js"),
    },
    outdir: path.join(dist, "console"),
    format: "iife",
  });
}

async function buildDemo() {
  await esbuild.build({
    ...common,
    entryPoints: {
      "assets/shop": path.join(root, "src/demo/shop.js"),
    },
    outdir: path.join(dist, "demo"),
    format: "iife",
  });
  await esbuild.build({
    ...common,
    entryPoints: { "assets/shop": path.join(root, "src/demo/shop.css") },
    outdir: path.join(dist, "demo"),
  });
}

async function buildLanding() {
  await esbuild.build({
    ...common,
    entryPoints: { landing: path.join(root, "src/landing.css") },
    outdir: dist,
  });
}

/** Copy web/public to dist, stamping local .js/.css URLs in HTML with a content version. */
async function copyPublic(dir = path.join(root, "public")) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const from = path.join(dir, entry.name);
    const to = path.join(dist, path.relative(path.join(root, "public"), from));
    if (entry.isDirectory()) {
      await mkdir(to, { recursive: true });
      await copyPublic(from);
    } else if (entry.name.endsWith(".html")) {
      const html = await readFile(from, "utf8");
      await writeFile(to, await stampAssets(html));
    } else {
      await cp(from, to);
    }
  }
}

async function stampAssets(html) {
  const urls = new Set([...html.matchAll(/(?:src|href)="(\/[^"?#]+\.(?:js|css))"/g)].map((m) => m[1]));
  for (const url of urls) {
    if (url === "/tandem.js") continue; // host pages embed this exact URL; it is tiny and no-cache
    const file = path.join(dist, url);
    const content = await readFile(file).catch(() => null);
    if (content === null) throw new Error(`${url} is referenced by an HTML page but was not built`);
    html = html.replaceAll(`"${url}"`, `"${url}?v=${hash(content)}"`);
  }
  return html;
}

async function report(chunks) {
  const rows = [["tandem.js (loader, always loaded)", "tandem.js"]];
  for (const [name, file] of Object.entries(chunks)) rows.push([`${file} (lazy)`, file]);
  rows.push(["console/app.js", "console/app.js"], ["console/app.css", "console/app.css"]);
  rows.push(["console/replay.js (co-browse replay page)", "console/replay.js"]);
  const lines = [];
  for (const [label, file] of rows) {
    const data = await readFile(path.join(finalDist, file));
    const kb = (n) => (n / 1024).toFixed(1).padStart(6) + " KB";
    lines.push(`  ${label.padEnd(44)} ${kb(data.length)}  ${kb(gzipSync(data, { level: 9 }).length)} gz`);
  }
  console.log(lines.join("\n"));
}

const started = Date.now();
await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
const chunks = await buildSnippet();
await buildConsole();
await buildReplay();
await buildDemo();
await buildLanding();
await copyPublic();
await stat(path.join(dist, "index.html"));
await rm(finalDist, { recursive: true, force: true });
await rename(dist, finalDist);
await report(chunks);
console.log(`web/dist built in ${Date.now() - started} ms${dev ? " (dev)" : ""}`);
