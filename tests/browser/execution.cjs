// Opens the dashboard on one execution, signs in with $HIVE_TOKEN, waits for its interrupt, resumes it with
// the resume button, and waits for it to complete.
// usage: HIVE_TOKEN=... node execution.cjs BASE_URL EXECUTION_ID SCREENSHOT_PATH
"use strict";
const path = require("path");
const { chromium } = require(path.resolve(__dirname, "../../.hive/node/node_modules/playwright-core"));

const [baseUrl, executionId, screenshot] = process.argv.slice(2);
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run"];

(async () => {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
    const errors = [];
    page.on("pageerror", (err) => errors.push(String(err)));
    await page.goto(`${baseUrl}/?execution=${encodeURIComponent(executionId)}`, { waitUntil: "load" });
    await page.waitForSelector("#login:not([hidden])", { timeout: 60000 });
    await page.fill("#login-token", process.env.HIVE_TOKEN);
    await page.click('#login button[type="submit"]');
    await page.waitForSelector("#execution-interrupt:not([hidden])", { timeout: 120000 });
    const waiting = await page.textContent("#interrupt-id");
    await page.fill("#resume-payload", '{"approved": true, "by": "browser"}');
    await page.click("#resume");
    await page.waitForSelector('#execution-status[data-status="completed"]', { timeout: 120000 });
    const values = JSON.parse(await page.textContent("#execution-values"));
    const steps = await page.$$eval("#execution-steps tr", (rows) => rows.length);
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ waiting, values, steps, errors }));
  } finally {
    await browser.close();
  }
})().catch((err) => { console.error(err); process.exit(1); });
