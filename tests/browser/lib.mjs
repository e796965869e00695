// lib.mjs - helpers of the browser tests: Chromium, pages signed in to a
// room, the HTTP API, restarting parleyd and reading HAProxy's log.
// tests/browser/run starts redis-server, parleyd (and in its second pass
// HAProxy in front of two of them) and passes them in the environment.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with tests/browser/run`);
  return v;
}

/** Where the pages go: parleyd itself, or HAProxy's https address. */
export const BASE = env('PARLEY_URL');
export const OUT = env('PARLEY_BROWSER_OUT');
const PARLEYD = env('PARLEYD');
/** The parleyd behind BASE, [{port, conf, log}]: one, or HAProxy's servers. */
const INSTANCES = JSON.parse(env('PARLEY_INSTANCES'));
const PIDLIST = env('PARLEY_PIDLIST');
const SESSION_KEY = env('PARLEY_SESSION_KEY');
/** Every token and ticket of the pass, one "kind value" a line (see recordSecrets). */
const SECRETS = env('PARLEY_SECRETS');
/** HAProxy's log and runtime API, in the pass through HAProxy only. */
export const HAPROXY_LOG = process.env.PARLEY_HAPROXY_LOG;
const HAPROXY_SOCKET = process.env.PARLEY_HAPROXY_SOCKET;

function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    return '';
  }
}

/** What the parleyd behind BASE have logged so far. */
export function serverLog() {
  return INSTANCES.map((i) => readText(i.log)).join('');
}

/** Every parleyd log of this pass, the other instance's too: {file: text}. */
export function parleydLogs() {
  const dir = path.dirname(INSTANCES[0].log);
  const files = fs.readdirSync(dir).filter((f) => /^parleyd.*\.log$/.test(f));
  return Object.fromEntries(files.map((f) => [f, readText(path.join(dir, f))]));
}

export { sleep };

export function unique(prefix) {
  return `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/**
 * Headless Debian Chromium; Playwright gives it a fresh, empty profile.  The
 * HAProxy pass's certificate is self-signed: Chromium ignores that.
 */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--ignore-certificate-errors',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A new browser context (OPTS as Playwright's) whose tokens and tickets are recorded. */
export async function newContext(browser, opts = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, ...opts });
  recordSecrets(context);
  return context;
}

function noteSecret(kind, value) {
  if (typeof value === 'string' && value.length >= 16) fs.appendFileSync(SECRETS, `${kind} ${value}\n`);
}

function noteUrlSecrets(url) {
  const q = new URL(url).searchParams;
  noteSecret('token', q.get('token'));
  noteSecret('ticket', q.get('ticket'));
}

/**
 * Writes down every token and ticket CONTEXT's pages use, from their
 * requests (Authorization, URLs of event streams and WebSockets) and from
 * the answers that hand them out, so that a test can look for them in the
 * logs afterwards.
 */
function recordSecrets(context) {
  context.on('request', (req) => {
    noteUrlSecrets(req.url());
    const auth = req.headers().authorization || '';
    if (auth.startsWith('Bearer ')) noteSecret('token', auth.slice(7));
  });
  context.on('response', async (resp) => {
    const where = new URL(resp.url()).pathname;
    if (resp.request().method() !== 'POST' || !['/api/sessions', '/api/tickets'].includes(where)) return;
    try {
      const doc = await resp.json();
      noteSecret('token', doc.token);
      noteSecret('ticket', doc.ticket);
    } catch (err) {
      // An error answer, or the page closed first: its requests were noted.
    }
  });
  context.on('page', (page) => page.on('websocket', (ws) => noteUrlSecrets(ws.url())));
}

/** The tokens and tickets written down so far in this pass: {token: Set, ticket: Set}. */
export function recordedSecrets() {
  const found = { token: new Set(), ticket: new Set() };
  for (const line of readText(SECRETS).split('\n').filter(Boolean)) {
    const [kind, value] = line.split(' ');
    found[kind].add(value);
  }
  return found;
}

/**
 * A new browser context (its own localStorage) with one page, signed in as
 * USER to ROOM. opts: query ("?transport=sse"), viewport, before(context)
 * to set routes up before the page loads, base (another parleyd's address,
 * e.g. startOtherInstance's; BASE by default).
 */
export async function openChat(browser, user, room, opts = {}) {
  const context = await newContext(browser, { viewport: opts.viewport || { width: 1100, height: 760 } });
  if (opts.before) await opts.before(context);
  const page = await context.newPage();
  await recordHandshakes(context, page);
  page.dialogs = [];
  page.errors = [];
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => page.errors.push(String(e)));
  await page.goto(`${opts.base || BASE}/${opts.query || ''}`);
  await page.fill('#login-name', user);
  await page.fill('#login-room', room);
  await page.click('#login-submit');
  await waitOnline(page, opts.mode);
  assertCompressed(page);
  // The first page of history has been asked for once the label settles.
  await page.waitForFunction(() => document.getElementById('history-label').textContent !== 'loading…');
  return page;
}

/**
 * Records the Sec-WebSocket-Extensions of every WebSocket handshake PAGE
 * makes, as Chromium's network stack received it (DevTools protocol), in
 * page.wsExtensions.  A WebSocket a test relays (routeWebSocket) never
 * reaches the network and is not recorded.
 */
async function recordHandshakes(context, page) {
  page.wsExtensions = [];
  const cdp = await context.newCDPSession(page);
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
    const headers = e.response.headers || {};
    const name = Object.keys(headers).find((h) => h.toLowerCase() === 'sec-websocket-extensions');
    page.wsExtensions.push(name ? headers[name] : null);
  });
  await cdp.send('Network.enable');
}

/**
 * Every WebSocket the page opened negotiated permessage-deflate, answered
 * with no context takeover both ways (parley's default): everything the
 * browser tests do runs compressed.
 */
export function assertCompressed(page) {
  for (const ext of page.wsExtensions) {
    assert.equal(ext, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
      'the WebSocket negotiated compression');
  }
}

export async function waitOnline(page, mode, timeout = 15000) {
  const sel = mode ? `#status[data-state="online"][data-mode="${mode}"]` : '#status[data-state="online"]';
  await page.waitForSelector(sel, { timeout });
}

export async function send(page, text) {
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}

/** Texts of the message bodies in the log (pending entries excluded). */
export function bodies(page, selector = '#log .msg') {
  return page.$$eval(`${selector} .body`, (nodes) => nodes.map((n) => n.textContent));
}

/** Waits until TEXT is shown in the log; returns how many times it is. */
export async function waitForText(page, text, timeout = 10000) {
  await page.waitForFunction((t) => [...document.querySelectorAll('#log .msg .body')].some((n) => n.textContent === t),
    text, { timeout });
  return countText(page, text);
}

export async function countText(page, text, selector = '.msg .body') {
  return page.$$eval(selector, (nodes, t) => nodes.filter((n) => n.textContent === t).length, text);
}

export async function screenshot(page, name) {
  fs.mkdirSync(OUT, { recursive: true });
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

// ---- the HTTP API, as a test client ------------------------------------

/** A session for USER, made as the application backend makes one (with the key). */
export async function session(user, base = BASE) {
  const r = await fetch(`${base}/api/sessions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${SESSION_KEY}` },
    body: JSON.stringify({ user }),
  });
  if (r.status !== 201) throw new Error(`POST /api/sessions: ${r.status} ${await r.text()}`);
  const { token } = await r.json();
  noteSecret('token', token);
  return token;
}

export async function post(token, room, content, base = BASE, clientMsgId = undefined) {
  const body = { content };
  if (clientMsgId) body.client_msg_id = clientMsgId;
  const r = await fetch(`${base}/api/rooms/${room}/messages`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  if (r.status !== 201) throw new Error(`POST messages: ${r.status} ${await r.text()}`);
  return (await r.json()).id;
}

export async function history(token, room, query = 'limit=200') {
  const r = await fetch(`${BASE}/api/rooms/${room}/messages?${query}`, { headers: { Authorization: `Bearer ${token}` } });
  if (r.status !== 200) throw new Error(`GET messages: ${r.status} ${await r.text()}`);
  return (await r.json()).messages;
}

// ---- parleyd -----------------------------------------------------------

/** Whether PID is a live parleyd started with "-c CONF". */
function isParleyd(pid, conf) {
  try {
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[0];
    return args[0].includes('parleyd') && args[args.indexOf('-c') + 1] === conf && state !== 'Z';
  } catch (err) {
    return false;
  }
}

/** The PID of the parleyd running with CONF (the newest one listed). */
function parleydPid(conf) {
  const pids = fs.readFileSync(PIDLIST, 'utf8').split('\n').filter(Boolean).map(Number);
  return pids.reverse().find((pid) => isParleyd(pid, conf));
}

async function waitFor(pred, timeout, what) {
  const end = Date.now() + timeout;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function countMatches(file, re) {
  return (readText(file).match(re) || []).length;
}

function spawnParleyd(args, logFile, conf) {
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(PARLEYD, ['-c', conf, ...args], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  fs.appendFileSync(PIDLIST, `${child.pid}\n`);     // tests/browser/run stops it at the end
  child.unref();
  return child;
}

async function stopPid(pid, conf) {
  process.kill(pid, 'SIGTERM');
  await waitFor(() => !isParleyd(pid, conf), 15000, `parleyd ${pid} to exit`);
}

/**
 * Stops the service behind BASE: every parleyd instance there, at once, with
 * SIGTERM, and waits until they are gone.  Behind HAProxy that leaves it
 * without a server (it answers 503), as when the whole deployment restarts.
 */
export async function stopParleyd() {
  const running = INSTANCES.map(({ conf }) => ({ conf, pid: parleydPid(conf) }));
  const missing = running.filter((r) => !r.pid).map((r) => r.conf);
  if (missing.length) throw new Error(`no parleyd running with ${missing.join(', ')}`);
  await Promise.all(running.map(({ pid, conf }) => stopPid(pid, conf)));
}

/**
 * Starts the instances stopped by stopParleyd again, with the same
 * configuration on the same ports; behind HAProxy, returns once its health
 * checks have taken every one back.
 */
export async function startParleyd() {
  await Promise.all(INSTANCES.map(({ port, conf, log }) => {
    const ready = countMatches(log, /event=ready /g);
    spawnParleyd(['--listen', `127.0.0.1:${port}`], log, conf);
    return waitFor(() => countMatches(log, /event=ready /g) > ready, 15000, 'parleyd to be ready again');
  }));
  if (HAPROXY_SOCKET) await waitFor(haproxyAllUp, 15000, 'HAProxy to take every instance back');
}

/**
 * A second parleyd on another port, sharing the same Redis, not behind
 * HAProxy: a client of the same deployment that can post while the first
 * instance is down.  SETTINGS ({key: value}) change its configuration file.
 */
export async function startOtherInstance(settings = {}) {
  const dir = path.dirname(INSTANCES[0].log);
  const log = path.join(dir, 'parleyd-other.log');
  const conf = path.join(dir, 'parley-other.conf');
  const lines = readText(INSTANCES[0].conf).split('\n').filter((l) => !(l.split('=')[0].trim() in settings));
  fs.writeFileSync(conf, [...lines.filter(Boolean), ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`), ''].join('\n'));
  const before = readText(log).length;
  const child = spawnParleyd(['--listen', '127.0.0.1:0'], log, conf);
  let port = null;
  await waitFor(() => {
    const text = readText(log).slice(before);
    const m = text.match(/event=listening addr=127\.0\.0\.1:(\d+)/);
    if (m && /event=ready /.test(text)) port = m[1];
    return port !== null;
  }, 15000, 'the other parleyd to be ready');
  return {
    base: `http://127.0.0.1:${port}`,
    stop: () => stopPid(child.pid, conf),
  };
}

// ---- HAProxy -------------------------------------------------------------

/** One command on HAProxy's runtime API; its answer. */
function haproxyCommand(command) {
  return new Promise((resolve, reject) => {
    let answer = '';
    const sock = net.connect(HAPROXY_SOCKET, () => sock.write(`${command}\n`));
    sock.setEncoding('utf8');
    sock.on('data', (d) => { answer += d; });
    sock.on('end', () => resolve(answer));
    sock.on('error', reject);
  });
}

/** Whether every server of the room backend is up (srv_op_state 2) for HAProxy. */
async function haproxyAllUp() {
  const rows = (await haproxyCommand('show servers state be_rooms')).split('\n')
    .filter((l) => /^\d+ be_rooms /.test(l)).map((l) => l.split(' '));
  return rows.length === INSTANCES.length && rows.every((r) => r[5] === '2');
}

/** HAProxy's log so far. */
export function haproxyLog() {
  return readText(HAPROXY_LOG);
}

// The shipped log-format: "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B
// %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %ID %HM %HPO %HV".
const HAPROXY_LINE = /^([\d.]+):(\d+) \[[^\]]+\] (\S+) (\S+) \S+ (-?\d+) \S+ (\S+) \S+ \S+ (\S+) (\S+) (\S+) (\S+)$/;

/**
 * HAProxy's request log lines so far: {client ("address:port"), frontend,
 * server, status, term (%tsc), id, method, path (as logged), route (the
 * path alone, whatever else was logged), version}.  A WebSocket or an event
 * stream is logged when it ends.
 */
export function haproxyRequests() {
  const rows = [];
  for (const line of haproxyLog().split('\n')) {
    const m = HAPROXY_LINE.exec(line);
    if (!m) continue;
    rows.push({ client: `${m[1]}:${m[2]}`, frontend: m[3], server: m[4], status: Number(m[5]), term: m[6],
      id: m[7], method: m[8], path: m[9], route: new URL(m[9], 'http://any').pathname, version: m[10] });
  }
  return rows;
}

/**
 * Waits until HAProxy has logged a request for which PRED(request, its index
 * in haproxyRequests()) holds; returns it.
 */
export async function waitForRequestLog(pred, what, timeout = 10000) {
  let found;
  await waitFor(() => {
    found = haproxyRequests().find(pred);
    return found !== undefined;
  }, timeout, `HAProxy to log ${what}`);
  return found;
}
