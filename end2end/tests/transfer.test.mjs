// Export and import in the admin UI, in real Chromium against a real gateway:
// Export Selected with its dependency preview, Export All Configuration, and the
// import wizard (drag and drop, browser-side validation, conflicts, progress, summary).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cspViolations, launchBrowser, signIn, startGateway } from '../support/gateway.mjs';

let gateway;
let browser;
let page;

// Set SCREENSHOTS_DIR (e.g. docs/screenshots) to keep pictures of each step.
async function snap(name) {
  const dir = process.env.SCREENSHOTS_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

before(async () => {
  gateway = await startGateway({ seed: true });
  browser = await launchBrowser();
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  await signIn(page, gateway.url);
  await page.waitForSelector('html[data-hydrated="true"]', { timeout: 20000 });
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
});

async function openTab(title, plural) {
  await page.getByRole('navigation').getByRole('link', { name: title, exact: true }).click();
  await page.waitForURL(`${gateway.url}/ui/${plural}`);
  await page.locator(`table.entities[data-kind="${plural}"] tr.entity-row`).first().waitFor();
}

/** Clicks `button` and returns the downloaded file, parsed, with its name. */
async function download(button) {
  const [file] = await Promise.all([page.waitForEvent('download'), button.click()]);
  const path = await file.path();
  return { name: file.suggestedFilename(), json: JSON.parse(readFileSync(path, 'utf8')) };
}

const names = (list = []) => list.map((e) => e.name ?? e.uri).sort();

test('Export Selected previews the dependencies and downloads exactly that', async () => {
  await openTab('Tools', 'tools');
  await page.getByLabel('Select seed-tool-01-basic').check();
  await page.getByLabel('Select seed-tool-07-bearer').check();
  await openTab('Servers', 'servers');
  await page.getByLabel('Select seed-server-1').check();
  const button = page.locator('button.export-selected');
  assert.equal(await button.textContent(), 'Export Selected (3)');

  await button.click();
  const dialog = page.getByRole('dialog', { name: 'Export Selected' });
  await dialog.locator('.dependency-list li').first().waitFor();
  const dependencies = await dialog.locator('.dependency-list li').evaluateAll((items) =>
    items.map((li) => ({ kind: li.dataset.kind, name: li.dataset.name })));
  const dependentTools = dependencies.filter((d) => d.kind === 'tools').map((d) => d.name);
  assert.ok(dependentTools.length > 0, 'the server brings its tools');
  assert.ok(dependencies.some((d) => d.kind === 'prompts'), 'and its prompts');
  assert.equal(await dialog.locator('svg.dependency-graph line').count(), dependencies.length);
  await snap('export-selected-modal');

  const file = await download(dialog.getByRole('button', { name: 'Download Export' }));
  assert.match(file.name, /^export-\d{8}-\d{6}\.json$/);
  const expectedTools = [...new Set(['seed-tool-01-basic', 'seed-tool-07-bearer', ...dependentTools])].sort();
  assert.deepEqual(names(file.json.entities.tools), expectedTools);
  assert.deepEqual(names(file.json.entities.servers), ['seed-server-1']);
  assert.deepEqual(names(file.json.entities.prompts), dependencies.filter((d) => d.kind === 'prompts').map((d) => d.name).sort());
  assert.equal(file.json.entities.roots, undefined);
  assert.equal(file.json.entities.gateways, undefined);
  await dialog.locator('.download-status').getByText(/^Exported \d+ total items/).waitFor();

  // Escape closes the dialog.
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  await page.locator('button.clear-selection').click();
  assert.equal(await button.isDisabled(), true);
});

test('Export All Configuration confirms the counts and reports the totals', async () => {
  await page.getByRole('navigation').getByRole('link', { name: 'Dashboard', exact: true }).click();
  await page.waitForURL(`${gateway.url}/ui`);
  await page.getByRole('button', { name: 'Export All Configuration' }).click();
  const dialog = page.getByRole('dialog', { name: 'Export All Configuration' });
  assert.equal(await dialog.locator('tr[data-kind="tools"] td').textContent(), '15');
  assert.equal(await dialog.locator('tr[data-kind="roots"] td').textContent(), '6');
  const file = await download(dialog.getByRole('button', { name: 'Export' }));
  const total = Object.values(file.json.entities).reduce((n, list) => n + list.length, 0);
  assert.equal(total, 49);
  await page.locator('.download-status').getByText('Exported 49 total items across 6 categories').waitFor();
});

/** Drops `text` as a file named `name` onto the wizard's drop zone. */
async function drop(text, name) {
  const dataTransfer = await page.evaluateHandle(({ text, name }) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([text], name, { type: 'application/json' }));
    return transfer;
  }, { text, name });
  await page.dispatchEvent('.dropzone', 'drop', { dataTransfer });
}

async function fetchExport() {
  return page.evaluate(async () => (await fetch('/admin/export')).json());
}

test('a dropped export previews conflicts, updates, and shows progress to a summary', async () => {
  const file = await fetchExport();
  file.entities.tools[0].description = 'changed by the wizard test';
  file.entities.tools[1].description = 'changed too';
  file.entities.tools.push({ ...file.entities.tools[2], name: 'wizard-new-tool', auth_type: null, auth_value: null });

  await page.getByRole('navigation').getByRole('link', { name: 'Import', exact: true }).click();
  await page.waitForURL(`${gateway.url}/ui/import`);
  await drop(JSON.stringify(file), 'changed.json');
  await page.locator('.conflict-count').waitFor();
  assert.equal(await page.locator('.conflict-count').textContent(), '49 conflict(s) with existing names');
  assert.equal(await page.locator('.import-summary tr[data-kind="tools"] .count').textContent(), '16');
  assert.equal(await page.locator('.import-summary tr[data-kind="tools"] .new').textContent(), '1');

  await page.getByLabel('Update existing items').check();
  const start = page.getByRole('button', { name: 'Import', exact: true });
  await page.waitForFunction(() => !document.querySelector('button.start-import').disabled);
  await start.click();
  await page.locator('.job-summary').waitFor({ timeout: 30000 });
  assert.equal(await page.getByRole('progressbar').getAttribute('aria-valuenow'), '100');
  assert.equal(await page.locator('.job-summary').getAttribute('data-status'), 'completed');
  const row = page.locator('.job-summary tr[data-kind="tools"]');
  assert.equal(await row.locator('.created').textContent(), '1');
  assert.equal(await row.locator('.updated').textContent(), '2');
  assert.equal(await row.locator('.unchanged').textContent(), '13');
  // Per-entity results are fetched a page at a time (the status carries their count).
  assert.equal(await page.locator('.job-summary details.results summary').textContent(), '50 entities');
  await page.locator('.job-summary details.results summary').click();
  await page.waitForFunction(() => document.querySelectorAll('.job-summary details.results li').length === 50);
  await snap('import-summary');

  const tools = await page.evaluate(async () => (await fetch('/tools?limit=100')).json());
  assert.equal(tools.total, 16, 'the database holds what the summary says');
  assert.equal(tools.items.find((t) => t.name === 'seed-tool-01-basic' || t.description === 'changed by the wizard test') !== undefined, true);
});

test('schema errors are listed with their fields and block the import until unticked', async () => {
  const file = await fetchExport();
  delete file.entities.tools[3].url;
  file.entities.tools[5].request_type = 42;

  await page.goto(`${gateway.url}/ui/import`);
  await page.waitForSelector('html[data-hydrated="true"]');
  // The keyboard path: a real file input.
  await page.locator('input.file-input').setInputFiles({
    name: 'broken.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(file)),
  });
  await page.locator('.validation-errors').waitFor();
  const pointers = await page.locator('.validation-errors code.pointer').allTextContents();
  assert.ok(pointers.includes('/entities/tools/3/url'), pointers.join());
  assert.ok(pointers.some((p) => p.startsWith('/entities/tools/5/request_type')), pointers.join());
  assert.equal(await page.locator('tr.import-row.invalid').count(), 2);
  const start = page.locator('button.start-import');
  assert.equal(await start.isDisabled(), true);
  await snap('import-wizard-errors');

  for (const row of await page.locator('tr.import-row.invalid').all()) {
    await row.locator('input.row-include').uncheck();
  }
  await page.waitForFunction(() => !document.querySelector('button.start-import').disabled, null, { timeout: 15000 });
  assert.equal(await page.locator('.import-summary tr[data-kind="tools"] .count').textContent(), String(file.entities.tools.length - 2));
});

test('a failed import lists every conflict with its field and entity', async () => {
  const file = await fetchExport();
  file.entities.tools[0].description = 'first conflict';
  file.entities.tools[4].description = 'second conflict';

  await page.goto(`${gateway.url}/ui/import`);
  await page.waitForSelector('html[data-hydrated="true"]');
  await page.locator('input.file-input').setInputFiles({
    name: 'conflicts.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(file)),
  });
  await page.locator('.conflict-count').waitFor();
  await page.getByLabel('Fail on any conflict').check();
  await page.waitForFunction(() => !document.querySelector('button.start-import').disabled, null, { timeout: 15000 });
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await page.locator('.job-summary').waitFor({ timeout: 30000 });
  assert.equal(await page.locator('.job-summary').getAttribute('data-status'), 'failed');
  const errors = await page.locator('.job-summary ul.errors li').allTextContents();
  assert.equal(errors.length, 2, errors.join('\n'));
  assert.ok(errors[0].startsWith('/entities/tools/0') && errors[0].includes(file.entities.tools[0].name), errors[0]);
  assert.ok(errors[1].startsWith('/entities/tools/4') && errors[1].includes(file.entities.tools[4].name), errors[1]);
  assert.equal(await page.locator('.job-summary tr[data-kind="tools"] .failed').textContent(), '2');
  await snap('import-failed-conflicts');
});

test('the Content-Security-Policy blocked nothing on these pages', () => {
  assert.deepEqual(cspViolations, []);
});
