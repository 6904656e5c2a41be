// The six tabs over the seed data set: rows from the database, checkboxes, select-all,
// filters, a detail page with dependencies, and dashboard counts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cspViolations, launchBrowser, signIn, startGateway } from '../support/gateway.mjs';

const SEEDED = { tools: 15, gateways: 3, servers: 5, prompts: 12, resources: 8, roots: 6 };
let gateway;
let browser;
let page;

before(async () => {
  gateway = await startGateway({ seed: true });
  browser = await launchBrowser();
  page = await browser.newPage();
  await signIn(page, gateway.url);
  await page.waitForSelector('html[data-hydrated="true"]', { timeout: 20000 });
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
});

test('the dashboard counts every type', async () => {
  for (const [plural, n] of Object.entries(SEEDED)) {
    assert.equal(await page.locator(`.kind-card[data-kind="${plural}"] .kind-count`).textContent(), String(n), plural);
  }
});

test('each tab lists its seeded rows', async () => {
  for (const [plural, n] of Object.entries(SEEDED)) {
    const title = plural[0].toUpperCase() + plural.slice(1);
    await page.getByRole('navigation').getByRole('link', { name: title, exact: true }).click();
    await page.waitForURL(`${gateway.url}/ui/${plural}`);
    await page.locator(`table.entities[data-kind="${plural}"]`).waitFor();
    assert.equal(await page.locator('tr.entity-row').count(), n, plural);
  }
});

test('two checkboxes, then select-all, then none', async () => {
  await page.getByRole('navigation').getByRole('link', { name: 'Tools', exact: true }).click();
  await page.waitForURL(`${gateway.url}/ui/tools`);
  await page.locator('tr.entity-row').first().waitFor();
  await page.getByLabel('Select seed-tool-01-basic').check();
  await page.getByLabel('Select seed-tool-07-bearer').check();
  assert.equal(await page.locator('.selected-count').textContent(), '2');
  assert.equal(await page.locator('tr.entity-row.selected').count(), 2);
  assert.equal(await page.getByLabel('Select all tools').isChecked(), false);

  await page.getByLabel('Select all tools').check();
  assert.equal(await page.locator('.selected-count').textContent(), '15');
  assert.equal(await page.locator('input.row-select:checked').count(), 15);

  await page.getByLabel('Select all tools').uncheck();
  assert.equal(await page.locator('.selected-count').textContent(), '0');
});

test('the tag filter and the name search narrow the list', async () => {
  await page.goto(`${gateway.url}/ui/tools`);
  await page.getByLabel('Filter by tag').fill('production');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/tag=production/);
  await page.waitForFunction(() => document.querySelectorAll('tr.entity-row').length === 5);
  const keys = await page.locator('tr.entity-row').evaluateAll((rows) => rows.map((r) => r.dataset.key));
  assert.deepEqual(keys, ['seed-tool-03-basic', 'seed-tool-06-bearer', 'seed-tool-09-bearer', 'seed-tool-12-apikey', 'seed-tool-15-apikey']);

  await page.goto(`${gateway.url}/ui/tools?q=apikey`);
  assert.equal(await page.locator('tr.entity-row').count(), 5);
});

test('a server shows what it uses, a tool which servers use it, and no secret', async () => {
  await page.goto(`${gateway.url}/ui/servers`);
  await page.getByRole('link', { name: 'seed-server-1' }).click();
  await page.locator('h1.detail-title', { hasText: 'seed-server-1' }).waitFor();
  const uses = await page.locator('ul.uses li').allTextContents();
  assert.deepEqual(uses, ['tool seed-tool-01-basic', 'tool seed-tool-02-basic', 'tool seed-tool-03-basic',
    'prompt seed-prompt-01', 'prompt seed-prompt-02', 'resource seed://resources/readme']);

  await page.goto(`${gateway.url}/ui/tools`);
  await page.getByRole('link', { name: 'seed-tool-01-basic' }).click();
  await page.locator('h1.detail-title', { hasText: 'seed-tool-01-basic' }).waitFor();
  assert.deepEqual(await page.locator('ul.used-by li').allTextContents(), ['server seed-server-1', 'server seed-server-5']);
  const json = await page.locator('pre.json').textContent();
  assert.match(json, /"auth_set": true/);
  assert.doesNotMatch(json, /seed-secret|auth_value/);
});

test('each gateway shows its health: a badge on the tab, a card on its page', async () => {
  // The seed's peers (*.peers.example.com) do not answer: each is checked, then unreachable.
  const statuses = async () => {
    await page.goto(`${gateway.url}/ui/gateways`);
    await page.locator('tr.entity-row').first().waitFor();
    return page.locator('tr.entity-row .badge.health').evaluateAll((b) => b.map((e) => e.dataset.status));
  };
  let seen = await statuses();
  for (let i = 0; i < 40 && !seen.every((s) => s === 'unreachable'); i += 1) {
    await new Promise((r) => setTimeout(r, 500));
    seen = await statuses();
  }
  assert.deepEqual(seen, ['unreachable', 'unreachable', 'unreachable']);
  assert.equal(await page.locator('tr.entity-row[data-key="seed-gw-alpha"] .badge.health').textContent(), 'unreachable');

  await page.getByRole('link', { name: 'seed-gw-alpha' }).click();
  await page.locator('h1.detail-title', { hasText: 'seed-gw-alpha' }).waitFor();
  const card = page.locator('section.gateway-health');
  assert.equal(await card.locator('.badge.health').getAttribute('data-status'), 'unreachable');
  assert.equal(await card.locator('.last-seen').textContent(), 'never');
  assert.ok((await card.locator('.last-error').textContent()).length > 0);
  assert.doesNotMatch(await card.textContent(), /seed-secret/);
});

test('the Content-Security-Policy blocked nothing on these pages', () => {
  assert.deepEqual(cspViolations, []);
});
