// Places orders on the page in headless Chromium and writes what the page saw.
//
//   node test/drive.mjs --url http://127.0.0.1:8080/ --orders 20 --out orders.json [--screenshot page.png]
//
// Uses the system's Chromium (/usr/bin/chromium, or STITCH_CHROMIUM); never
// downloads a browser.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    orders: { type: 'string', default: '10' },
    out: { type: 'string' },
    screenshot: { type: 'string' },
  },
});
if (!values.url || !values.out) {
  console.error('usage: drive.mjs --url URL --orders N --out FILE [--screenshot FILE]');
  process.exit(2);
}
const orders = Number(values.orders);
const executablePath = process.env.STITCH_CHROMIUM || '/usr/bin/chromium';
const profile = mkdtempSync(join(tmpdir(), 'stitch-chromium-'));

const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    // The check's partner API and its look-alikes are names under
    // `localhost`: on loopback's IPv4 address, where they listen.
    '--host-resolver-rules=MAP *.localhost 127.0.0.1',
  ],
  viewport: { width: 1100, height: 560 },
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (message) => console.error(`page: ${message.text()}`));
  page.on('pageerror', (error) => console.error(`page error: ${error}`));
  await page.goto(values.url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 15_000 });
  // One order at a time, as a person would click: each its own trace.
  const results = await page.evaluate(async (count) => {
    const results = [];
    for (let i = 0; i < count; i++) results.push(await window.stitch.placeOrder());
    await window.stitch.flush();
    return results;
  }, orders);
  if (values.screenshot) await page.screenshot({ path: values.screenshot });
  writeFileSync(values.out, JSON.stringify(results, null, 1));
  console.error(`placed ${results.length} orders`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
