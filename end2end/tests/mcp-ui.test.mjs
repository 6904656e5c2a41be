// The admin UI's MCP parts against a real gateway: a server's page shows its MCP URL
// (which answers an MCP initialize with a token limited to that server), copies it to
// the clipboard, and gives a client configuration without any real token; a tool's Test
// dialog calls a real loopback upstream through the gateway's one tool-call path, and a
// missing required argument is named by its pointer without calling the upstream.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADMIN_EMAIL, createEntity, cspViolations, launchBrowser, signIn, startGateway, startUpstream,
} from '../support/gateway.mjs';

let gateway;
let upstream;
let browser;
let context;
let page;
let restToken;
let serverId;
let toolId;

/** The weather tool's upstream: a text made of the JSON arguments it received. */
function forecast(_req, body) {
  const args = JSON.parse(body || '{}');
  return { status: 200, text: `forecast for ${args.city}: sunny for ${args.days} days` };
}

function create(path, body) {
  return createEntity(gateway.url, restToken, path, body);
}

function tokenFrom(out) {
  const token = out.trim().split('\n').at(-1).trim();
  assert.match(token, /^mcpg_/);
  return token;
}

before(async () => {
  upstream = await startUpstream(forecast);
  gateway = await startGateway({ env: { MCPGATEWAY_ALLOW_PRIVATE_NETWORKS: 'true' } });
  restToken = tokenFrom(gateway.cli(['token', 'create', '--email', ADMIN_EMAIL, '--name', 'ui-rest']));
  const tool = await create('/tools', {
    name: 'weather', url: `${upstream.url}/weather`, request_type: 'POST',
    description: 'The forecast for a city',
    input_schema: {
      type: 'object', required: ['city'],
      properties: { city: { type: 'string', description: 'Which city' }, days: { type: 'integer' } },
    },
  });
  toolId = tool.id;
  const server = await create('/servers', { name: 'weather-desk', tool_ids: ['weather'] });
  serverId = server.id;
  browser = await launchBrowser();
  context = await browser.newContext({ permissions: ['clipboard-read', 'clipboard-write'] });
  page = await context.newPage();
  await signIn(page, gateway.url);
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
  upstream?.close();
});

async function open(path) {
  await page.goto(`${gateway.url}${path}`);
  await page.waitForSelector('html[data-hydrated="true"]', { timeout: 20000 });
}

test("a server's page shows its MCP URL, which answers MCP with a token limited to it", async () => {
  await open(`/ui/servers/${serverId}`);
  const expected = `${gateway.url}/servers/${serverId}/mcp`;
  await page.waitForFunction((want) => document.querySelector('.mcp-url')?.textContent === want, expected);
  const url = await page.locator('.mcp-url').textContent();

  const command = await page.locator('.mcp-token-command').textContent();
  assert.match(command, /^mcpgateway token create --email .+ --name .+ --server weather-desk$/);
  const token = tokenFrom(gateway.cli(['token', 'create', '--email', ADMIN_EMAIL, '--name', 'desk', '--server', 'weather-desk']));
  const answer = await fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`, 'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0', id: 1, method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'ui-e2e', version: '1' } },
    }),
  });
  assert.equal(answer.status, 200, await answer.clone().text());
  assert.match(await answer.text(), /"serverInfo"/);

  const config = JSON.parse(await page.locator('.mcp-config').textContent());
  assert.deepEqual(config, {
    mcpServers: { 'weather-desk': { type: 'http', url, headers: { Authorization: 'Bearer <your token>' } } },
  });
  const html = await page.content();
  assert.ok(!html.includes(token) && !html.includes(restToken), 'no real token on the page');
});

test('Copy puts the MCP URL on the clipboard and says so', async () => {
  await open(`/ui/servers/${serverId}`);
  const url = `${gateway.url}/servers/${serverId}/mcp`;
  await page.waitForFunction((want) => document.querySelector('.mcp-url')?.textContent === want, url);
  await page.getByRole('button', { name: 'Copy URL' }).click();
  await page.locator('.copy-status', { hasText: 'Copied' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), url);

  await page.getByRole('button', { name: 'Copy configuration' }).click();
  const copied = JSON.parse(await page.evaluate(() => navigator.clipboard.readText()));
  assert.equal(copied.mcpServers['weather-desk'].url, url);
});

test("a tool's Test dialog calls the real upstream and shows its answer", async () => {
  await open(`/ui/tools/${toolId}`);
  await page.getByRole('button', { name: 'Test', exact: true }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  assert.deepEqual(await dialog.locator('.field[data-required="true"] label code').allTextContents(), ['city']);

  const before = upstream.seen.length;
  await dialog.getByLabel('city').fill('Oslo');
  await dialog.getByLabel('days').fill('3');
  await dialog.getByRole('button', { name: 'Call tool' }).click();
  await dialog.locator('.result-text').waitFor();
  assert.equal(await dialog.locator('.result-text').textContent(), 'forecast for Oslo: sunny for 3 days');
  const received = upstream.seen.slice(before);
  assert.equal(received.length, 1);
  assert.equal(received[0].method, 'POST');
  assert.deepEqual(JSON.parse(received[0].body), { city: 'Oslo', days: 3 });
});

test('a missing required argument is named by its pointer and the upstream is not called', async () => {
  await open(`/ui/tools/${toolId}`);
  await page.getByRole('button', { name: 'Test', exact: true }).click();
  const dialog = page.getByRole('dialog');
  const before = upstream.seen.length;
  await dialog.getByLabel('days').fill('2');
  await dialog.getByRole('button', { name: 'Call tool' }).click();
  await dialog.locator('.problems .pointer').first().waitFor();
  assert.deepEqual(await dialog.locator('.problems .pointer').allTextContents(), ['/city']);
  assert.equal(upstream.seen.length, before, 'the upstream was not called');
});

test('the Test call is refused without a session, and the upstream is not called', async () => {
  await open(`/ui/tools/${toolId}`);
  await page.getByRole('button', { name: 'Test', exact: true }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('city').fill('Bergen');
  const [call] = await Promise.all([
    page.waitForRequest((r) => r.method() === 'POST' && r.url().includes('test_tool')),
    dialog.getByRole('button', { name: 'Call tool' }).click(),
  ]);
  await dialog.locator('.result-text').waitFor();
  const before = upstream.seen.length;
  // The same request, without the session cookie.
  const replay = await fetch(call.url(), {
    method: 'POST',
    headers: { 'content-type': call.headers()['content-type'] },
    body: call.postData(),
    redirect: 'manual',
  });
  assert.ok(replay.status >= 300, `refused, not ${replay.status}`);
  assert.equal(upstream.seen.length, before, 'the upstream was not called');
});

test('no page broke the Content-Security-Policy', () => {
  assert.deepEqual(cspViolations, []);
});
