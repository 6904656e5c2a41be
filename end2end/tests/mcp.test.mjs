// MCP clients that are not ours against a real gateway: the official TypeScript SDK
// (connect, list, call a tool whose upstream must receive the stored credential), and
// the official conformance suite on every scenario that applies to a gateway.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, request as httpRequest } from 'node:http';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { ADMIN_EMAIL, createEntity, startGateway, startUpstream } from '../support/gateway.mjs';

const root = resolve(import.meta.dirname, '..', '..');
const UPSTREAM_SECRET = 'tok-upstream-e2e-31';

/** The conformance tools' upstream: `/fail` answers 500, anything else a text. */
function respond(req) {
  if (req.url.startsWith('/fail')) {
    return { status: 500, text: 'This tool intentionally returns an error for testing' };
  }
  return { status: 200, text: 'This is a simple text response for testing.' };
}

/**
 * A loopback proxy that adds the bearer token, as an MCP client's configuration would:
 * the conformance suite has no option for one. Host and Origin pass through unchanged,
 * so the DNS-rebinding scenario still reaches the gateway's own checks.
 */
function startTokenProxy(target, token) {
  const { port: targetPort } = new URL(target);
  const server = createServer((req, res) => {
    const headers = { ...req.headers, authorization: `Bearer ${token}` };
    const upstream = httpRequest(
      { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => {
    ok({ port: server.address().port, close: () => server.closeAllConnections() || server.close() });
  }));
}

let gateway;
let upstream;
let token;

function create(path, body) {
  return createEntity(gateway.url, token, path, body);
}

/** What the conformance fixtures ask for, stored as ordinary gateway entities. */
async function seedConformanceServer() {
  const bearer = { type: 'bearer', token: UPSTREAM_SECRET };
  await create('/tools', { name: 'test_simple_text', url: `${upstream.url}/text`, request_type: 'GET',
    description: 'Tests simple text content response', auth: bearer });
  await create('/tools', { name: 'test_error_handling', url: `${upstream.url}/fail`, request_type: 'GET',
    description: 'Tests error response handling' });
  await create('/prompts', { name: 'test_simple_prompt', description: 'A simple prompt without arguments',
    template: 'This is a simple prompt for testing.' });
  await create('/prompts', { name: 'test_prompt_with_arguments', description: 'A prompt with arguments',
    template: "Prompt with arguments: arg1='{{ arg1 }}', arg2='{{ arg2 }}'",
    input_schema: { type: 'object', properties: { arg1: { type: 'string', description: 'First test argument' },
      arg2: { type: 'string', description: 'Second test argument' } }, required: ['arg1', 'arg2'] } });
  await create('/resources', { name: 'static-text', uri: 'test://static-text', mime_type: 'text/plain',
    content: 'This is the content of the static text resource.' });
  await create('/resources', { name: 'static-binary', uri: 'test://static-binary', mime_type: 'image/png',
    blob: 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==' });
  // The json-schema-2020-12 scenario: 2020-12 keywords kept as stored, not stripped.
  await create('/tools', { name: 'json_schema_2020_12_tool', url: `${upstream.url}/text`, request_type: 'POST',
    description: 'Tool with JSON Schema 2020-12 features', input_schema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object',
      $defs: { address: { type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } } },
      properties: { name: { type: 'string' }, address: { $ref: '#/$defs/address' } },
      additionalProperties: false } });
  await create('/servers', { name: 'conformance',
    tool_ids: ['test_simple_text', 'test_error_handling', 'json_schema_2020_12_tool'],
    prompt_ids: ['test_simple_prompt', 'test_prompt_with_arguments'],
    resource_ids: ['test://static-text', 'test://static-binary'] });
}

before(async () => {
  upstream = await startUpstream(respond);
  gateway = await startGateway({ env: { MCPGATEWAY_ALLOW_PRIVATE_NETWORKS: 'true' } });
  const out = gateway.cli(['token', 'create', '--email', ADMIN_EMAIL, '--name', 'mcp-e2e']);
  token = out.trim().split('\n').at(-1).trim();
  assert.match(token, /^mcpg_/);
  await seedConformanceServer();
});

after(async () => {
  await gateway?.stop();
  upstream?.close();
});

test('the official TypeScript SDK connects, lists and calls a tool with its stored credential', async () => {
  const client = new Client({ name: 'ts-sdk-e2e', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`${gateway.url}/servers/conformance/mcp`), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(),
    ['json_schema_2020_12_tool', 'test_error_handling', 'test_simple_text']);
  const before = upstream.seen.length;
  const result = await client.callTool({ name: 'test_simple_text', arguments: {} });
  assert.equal(result.isError, false);
  assert.equal(result.content[0].text, 'This is a simple text response for testing.');
  const received = upstream.seen.slice(before);
  assert.equal(received.length, 1);
  assert.equal(received[0].headers.authorization, `Bearer ${UPSTREAM_SECRET}`);
  await client.close();
});

test("the SDK's legacy SSE client lists and calls a tool at /servers/{id}/sse", async () => {
  const client = new Client({ name: 'ts-sdk-sse-e2e', version: '1.0.0' });
  const transport = new SSEClientTransport(new URL(`${gateway.url}/servers/conformance/sse`), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(),
    ['json_schema_2020_12_tool', 'test_error_handling', 'test_simple_text']);
  const result = await client.callTool({ name: 'test_simple_text', arguments: {} });
  assert.equal(result.content[0].text, 'This is a simple text response for testing.');
  const { messages } = await client.getPrompt({ name: 'test_simple_prompt' });
  assert.equal(messages[0].content.text, 'This is a simple prompt for testing.');
  await client.close();
});

test('the legacy SSE client without a token is refused with 401', async () => {
  const client = new Client({ name: 'ts-sdk-sse-e2e', version: '1.0.0' });
  const transport = new SSEClientTransport(new URL(`${gateway.url}/servers/conformance/sse`));
  await assert.rejects(client.connect(transport), /401|Unauthorized/i);
});

test('the TypeScript SDK without a token is refused with 401', async () => {
  const client = new Client({ name: 'ts-sdk-e2e', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`${gateway.url}/servers/conformance/mcp`));
  await assert.rejects(client.connect(transport), /401|Unauthorized/i);
});

/**
 * Every server scenario of @modelcontextprotocol/conformance 0.1.13 that applies to a
 * gateway, each served by stored entities. Left out (`conformance list` names them all):
 * - tools-call-image, -audio, -embedded-resource, -mixed-content: a REST tool's result is
 *   the upstream's HTTP answer as text (and structuredContent); no stored tool returns
 *   image, audio or resource content.
 * - tools-call-with-logging, -with-progress, -sampling, -elicitation,
 *   elicitation-sep1034-defaults, elicitation-sep1330-enums, server-sse-polling: a tool
 *   that logs, reports progress, asks the client (sampling, elicitation) or has its
 *   stream closed mid-call by the server; a REST tool call is one HTTP request upstream.
 * - prompts-get-embedded-resource, prompts-get-with-image: a stored prompt renders to
 *   one text message.
 * - resources-subscribe, resources-unsubscribe: the gateway does not declare
 *   resources.subscribe (a stored resource changes by REST or import, heard as list_changed).
 * - resources-templates-read: a stored resource template is listed, not read (its
 *   content is not rendered from the URI's variables).
 */
const SCENARIOS = [
  'server-initialize', 'ping', 'logging-set-level', 'dns-rebinding-protection',
  'server-sse-multiple-streams',
  'tools-list', 'tools-call-simple-text', 'tools-call-error', 'json-schema-2020-12',
  'prompts-list', 'prompts-get-simple', 'prompts-get-with-args', 'completion-complete',
  'resources-list', 'resources-read-text', 'resources-read-binary',
];

test('the official conformance suite passes every scenario that applies', async (t) => {
  const proxy = await startTokenProxy(gateway.url, token);
  t.after(() => proxy.close());
  const cli = resolve(root, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js');
  // `localhost`: the DNS-rebinding scenario runs only against a loopback name.
  const url = `http://localhost:${proxy.port}/servers/conformance/mcp`;
  // The suite writes its results under its working directory.
  const results = mkdtempSync(join(tmpdir(), 'mcpgw-conformance-'));
  t.after(() => rmSync(results, { recursive: true, force: true }));
  for (const scenario of SCENARIOS) {
    // Not spawnSync: the proxy runs on this process's event loop.
    const run = await runNode([cli, 'server', '--url', url, '--scenario', scenario], results);
    assert.equal(run.code, 0, `conformance scenario ${scenario} failed:\n${run.out}`);
  }
});

function runNode(args, cwd) {
  return new Promise((ok) => {
    const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('close', (code) => ok({ code, out }));
  });
}
