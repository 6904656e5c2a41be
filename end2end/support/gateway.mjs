// Starts a real mcpgateway on a free loopback port with a fresh SQLite database,
// and a headless Debian chromium driven by playwright-core.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const root = resolve(import.meta.dirname, '..', '..');

export const ADMIN_EMAIL = 'admin@example.com';
export const ADMIN_PASSWORD = 'e2e-password-1234';

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

async function waitUntilHealthy(url, child, seconds = 60) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`mcpgateway exited with ${child.exitCode}`);
    try {
      const response = await fetch(`${url}/health`);
      if (response.ok) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`mcpgateway did not answer ${url}/health within ${seconds}s`);
}

/**
 * A running gateway: `{ url, cli(args), stop() }`; `seed: true` fills it with the seed data
 * set first; `env` adds settings; `cli` runs another subcommand on the same database.
 */
export async function startGateway({ seed = false, env: extra = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-e2e-'));
  const port = await freePort();
  const bin = process.env.MCPGATEWAY_BIN ?? join(root, 'target', 'debug', 'mcpgateway');
  const env = {
    PATH: process.env.PATH,
    DATABASE_URL: `sqlite://${join(dir, 'gateway.db')}`,
    MCPGATEWAY_ADMIN_PASSWORD: ADMIN_PASSWORD,
    LEPTOS_SITE_ROOT: process.env.MCPGATEWAY_SITE_ROOT ?? join(root, 'target', 'site'),
    LOG_LEVEL: 'warn',
    ...extra,
  };
  if (seed) execFileSync(bin, ['seed'], { cwd: dir, env, stdio: ['ignore', 'ignore', 'inherit'] });
  const child = spawn(bin, ['serve', '--host', '127.0.0.1', '--port', String(port)], {
    cwd: dir,
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntilHealthy(url, child);
  return {
    url,
    cli: (args) => execFileSync(bin, args, { cwd: dir, env, encoding: 'utf8' }),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Headless Debian chromium, with the flags this sandbox needs. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/** Content-Security-Policy violations reported by the pages given to `watchCsp`. */
export const cspViolations = [];

/** Records every CSP violation `page` reports in its console (Chromium logs each one). */
export function watchCsp(page) {
  page.on('console', (message) => {
    if (message.type() === 'error' && message.text().includes('Content Security Policy')) {
      cspViolations.push(`${page.url()}: ${message.text()}`);
    }
  });
  return page;
}

/** Signs in through the login form and waits for the dashboard; watches the page's CSP. */
export async function signIn(page, url) {
  watchCsp(page);
  await page.goto(`${url}/login`);
  await page.fill('#email', ADMIN_EMAIL);
  await page.fill('#password', ADMIN_PASSWORD);
  await Promise.all([page.waitForURL(`${url}/ui`), page.click('button[type=submit]')]);
}

/** Creates an entity through the REST API with `token`; fails the test unless it is 201. */
export async function createEntity(url, token, path, body) {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (response.status !== 201) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/**
 * A REST upstream on loopback that records each request (`seen`: path, method, headers,
 * body) and answers with `respond(request, body)`: `{ status, text }`.
 */
export function startUpstream(respond) {
  const seen = [];
  const server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      seen.push({ path: req.url, method: req.method, headers: req.headers, body });
      const { status, text } = respond(req, body);
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(text);
    });
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => {
    ok({ url: `http://127.0.0.1:${server.address().port}`, seen, close: () => server.close() });
  }));
}
