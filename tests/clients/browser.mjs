// Opens each page URL given on the command line in a fresh headless
// Chromium (Debian's, /usr/bin/chromium), one after another, and prints
// every "RPCGATE <json>" console line of the page to stdout as it comes,
// until the page reports {"done": true}. Page errors are printed too.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const print = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const timeoutMs = Number(process.env.PAGE_TIMEOUT_MS || 120000);

for (const url of process.argv.slice(2)) {
  const dir = mkdtempSync(join(tmpdir(), "rpcgate-chromium-"));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = await context.newPage();
    const done = new Promise((resolve) => {
      page.on("console", (msg) => {
        const text = msg.text();
        if (!text.startsWith("RPCGATE ")) return;
        const o = JSON.parse(text.slice("RPCGATE ".length));
        print({ url, ...o });
        if (o.done) resolve();
      });
      page.on("pageerror", (e) => print({ url, pageerror: String(e) }));
    });
    await page.goto(url);
    let timer;
    await Promise.race([
      done,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no result from ${url} in ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  } finally {
    await context.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
