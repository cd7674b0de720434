// Opens the dashboard, signs in with $HIVE_TOKEN, says "ready" once its live feed is open, then waits for a
// task to complete.
// usage: HIVE_TOKEN=... node dashboard.cjs BASE_URL TASK_ID SCREENSHOT_PATH
"use strict";
const path = require("path");
const { chromium } = require(path.resolve(__dirname, "../../.hive/node/node_modules/playwright-core"));

const [baseUrl, taskId, screenshot] = process.argv.slice(2);
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run"];

(async () => {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors = [];
    page.on("pageerror", (err) => errors.push(String(err)));
    page.on("console", (msg) => { if (msg.type() === "error") errors.push(msg.text()); });
    await page.goto(baseUrl + "/", { waitUntil: "load" });
    await page.waitForSelector("#login:not([hidden])", { timeout: 60000 });  // no data without a session
    await page.fill("#login-token", process.env.HIVE_TOKEN);
    await page.click('#login button[type="submit"]');
    await page.waitForSelector('#connection[data-state="live"]', { timeout: 60000 });
    console.log("ready");
    const row = `#tasks tr[data-task-id="${taskId}"]`;
    await page.waitForSelector(`${row}[data-status="completed"]`, { timeout: 180000 });
    await page.click(row);
    await page.waitForFunction(() => {
      const nodes = document.querySelectorAll("#graph [data-node]");
      return nodes.length > 0 && [...nodes].every((n) => n.dataset.status === "completed");
    }, null, { timeout: 60000 });
    const nodes = await page.$$eval("#graph [data-node]", (els) => els.map((e) => e.dataset.node));
    const agents = await page.$$eval("#agents tr", (els) => els.map((e) => e.dataset.agentId));
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ nodes, agents, errors }));
  } finally {
    await browser.close();
  }
})().catch((err) => { console.error(err); process.exit(1); });
