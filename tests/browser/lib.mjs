// lib.mjs - helpers of the browser tests: Chromium, pages signed in to a
// room, the HTTP API, and restarting parleyd.  tests/browser/run starts
// redis-server and parleyd and passes them in the environment.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with tests/browser/run`);
  return v;
}

export const BASE = env('PARLEY_URL');
export const OUT = env('PARLEY_BROWSER_OUT');
const PORT = env('PARLEY_PORT');
const PARLEYD = env('PARLEYD');
const CONF = env('PARLEY_CONF');
const LOG = env('PARLEY_LOG');

/** What parleyd has logged so far. */
export function serverLog() {
  return fs.readFileSync(LOG, 'utf8');
}
const PIDLIST = env('PARLEY_PIDLIST');
const SESSION_KEY = env('PARLEY_SESSION_KEY');

export { sleep };

export function unique(prefix) {
  return `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/** Headless Debian Chromium; Playwright gives it a fresh, empty profile. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * A new browser context (its own localStorage) with one page, signed in as
 * USER to ROOM. opts: query ("?transport=sse"), viewport, before(context)
 * to set routes up before the page loads.
 */
export async function openChat(browser, user, room, opts = {}) {
  const context = await browser.newContext({ viewport: opts.viewport || { width: 1100, height: 760 } });
  if (opts.before) await opts.before(context);
  const page = await context.newPage();
  page.dialogs = [];
  page.errors = [];
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => page.errors.push(String(e)));
  await page.goto(`${BASE}/${opts.query || ''}`);
  await page.fill('#login-name', user);
  await page.fill('#login-room', room);
  await page.click('#login-submit');
  await waitOnline(page, opts.mode);
  // The first page of history has been asked for once the label settles.
  await page.waitForFunction(() => document.getElementById('history-label').textContent !== 'loading…');
  return page;
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
  return (await r.json()).token;
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

function isParleyd(pid) {
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[0];
    return cmd.includes('parleyd') && state !== 'Z';
  } catch (err) {
    return false;
  }
}

/** The PID of the parleyd that serves PARLEY_PORT (the newest one listed). */
function currentParleyd() {
  const pids = fs.readFileSync(PIDLIST, 'utf8').split('\n').filter(Boolean).map(Number);
  return pids.reverse().find((pid) => pid !== extraPid && isParleyd(pid));
}

let extraPid = 0;

async function waitFor(pred, timeout, what) {
  const end = Date.now() + timeout;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function countMatches(file, re) {
  try {
    return (fs.readFileSync(file, 'utf8').match(re) || []).length;
  } catch (err) {
    return 0;
  }
}

function spawnParleyd(args, logFile, conf = CONF) {
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(PARLEYD, ['-c', conf, ...args], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  fs.appendFileSync(PIDLIST, `${child.pid}\n`);     // tests/browser/run stops it at the end
  child.unref();
  return child;
}

async function stopPid(pid) {
  process.kill(pid, 'SIGTERM');
  await waitFor(() => !isParleyd(pid), 15000, `parleyd ${pid} to exit`);
}

/** Stops the parleyd on PARLEY_PORT with SIGTERM and waits until it is gone. */
export async function stopParleyd() {
  const pid = currentParleyd();
  if (!pid) throw new Error('no parleyd running');
  await stopPid(pid);
}

/** Starts parleyd again with the same configuration on the same port. */
export async function startParleyd() {
  const ready = countMatches(LOG, /event=ready /g);
  spawnParleyd(['--listen', `127.0.0.1:${PORT}`], LOG);
  await waitFor(() => countMatches(LOG, /event=ready /g) > ready, 15000, 'parleyd to be ready again');
}

/**
 * A second parleyd on another port, sharing the same Redis: a client of the
 * same deployment that can post while the first instance is down.  SETTINGS
 * ({key: value}) change its configuration file.
 */
export async function startOtherInstance(settings = {}) {
  const log = path.join(path.dirname(LOG), 'parleyd-other.log');
  const conf = path.join(path.dirname(LOG), 'parley-other.conf');
  const lines = fs.readFileSync(CONF, 'utf8').split('\n').filter((l) => !(l.split('=')[0].trim() in settings));
  fs.writeFileSync(conf, [...lines.filter(Boolean), ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`), ''].join('\n'));
  const before = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').length : 0;
  const child = spawnParleyd(['--listen', '127.0.0.1:0'], log, conf);
  extraPid = child.pid;
  let port = null;
  await waitFor(() => {
    const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(before) : '';
    const m = text.match(/event=listening addr=127\.0\.0\.1:(\d+)/);
    if (m && /event=ready /.test(text)) port = m[1];
    return port !== null;
  }, 15000, 'the other parleyd to be ready');
  return {
    base: `http://127.0.0.1:${port}`,
    stop: async () => {
      await stopPid(child.pid);
      extraPid = 0;
    },
  };
}
