// The admin UI shell in a real browser: sign in, hydration, tabs, sign out; and the
// same pages readable with JavaScript off.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_EMAIL, cspViolations, launchBrowser, signIn, startGateway, watchCsp } from '../support/gateway.mjs';

const TABS = ['Tools', 'Gateways', 'Servers', 'Prompts', 'Resources', 'Roots'];
let gateway;
let browser;

before(async () => {
  gateway = await startGateway();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
});

test('a visitor without a session lands on the login page', async () => {
  const page = watchCsp(await browser.newPage());
  const response = await page.goto(`${gateway.url}/ui/tools`);
  assert.equal(new URL(page.url()).pathname, '/login');
  const policy = response.headers()['content-security-policy'];
  const nonce = /'nonce-([^']+)'/.exec(policy)?.[1];
  assert.ok(nonce, `a script nonce in ${policy}`);
  assert.equal(await page.locator('script[type=module]').evaluate((s) => s.nonce), nonce);
  assert.equal(await page.locator('h1.brand').textContent(), 'mcpgateway');
  await page.close();
});

test('a wrong password shows an error and no session', async () => {
  const page = watchCsp(await browser.newPage());
  await page.goto(`${gateway.url}/login`);
  await page.fill('#email', ADMIN_EMAIL);
  await page.fill('#password', 'not-the-password');
  await Promise.all([page.waitForURL(/\/login\?error=invalid$/), page.click('button[type=submit]')]);
  assert.equal(await page.getByRole('alert').textContent(), 'Invalid email or password.');
  await page.close();
});

test('sign in, hydrate, switch every tab without a page load, sign out', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  await signIn(page, gateway.url);
  await page.waitForSelector('html[data-hydrated="true"]', { timeout: 20000 });
  assert.equal(await page.locator('.user-email').textContent(), ADMIN_EMAIL);
  assert.equal(await page.locator('dd.database').textContent(), 'sqlite');

  // A value on `window` survives client-side navigation, and is lost on a page load.
  await page.evaluate(() => { window.__sameDocument = true; });
  for (const tab of TABS) {
    await page.getByRole('navigation').getByRole('link', { name: tab, exact: true }).click();
    await page.waitForURL(`${gateway.url}/ui/${tab.toLowerCase()}`);
    await page.locator('h1.tab-title', { hasText: tab }).waitFor();
    assert.equal(await page.locator('table.entities').getAttribute('data-kind'), tab.toLowerCase());
    assert.equal(await page.evaluate(() => window.__sameDocument), true, `${tab}: switched without a page load`);
  }
  assert.equal(await page.getByRole('navigation').getByRole('link', { name: 'Roots', exact: true }).getAttribute('aria-current'), 'page');

  await Promise.all([page.waitForURL(`${gateway.url}/login`), page.getByRole('button', { name: 'Sign out' }).click()]);
  await page.goto(`${gateway.url}/ui`);
  assert.equal(new URL(page.url()).pathname, '/login', 'the session ended');
  assert.deepEqual(errors, [], 'no errors in the page');
  await context.close();
});

test('pages are rendered on the server and work with JavaScript off', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await signIn(page, gateway.url);
  assert.equal(await page.locator('h1').first().textContent(), 'Dashboard');
  assert.equal(await page.locator('.user-email').textContent(), ADMIN_EMAIL);
  await page.getByRole('navigation').getByRole('link', { name: 'Gateways', exact: true }).click();
  await page.waitForURL(`${gateway.url}/ui/gateways`);
  assert.equal(await page.locator('h1.tab-title').textContent(), 'Gateways');
  assert.equal(await page.locator('html').getAttribute('data-hydrated'), null, 'nothing hydrated');
  await context.close();
});

test('the Content-Security-Policy blocked nothing on these pages', () => {
  assert.deepEqual(cspViolations, []);
});
