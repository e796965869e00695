// haproxy.test.mjs - the web client through HAProxy (the shipped
// etc/haproxy.cfg) over HTTP/2 with TLS, in front of two parleyd: what only
// the way through a proxy can break.  The page's WebSocket really runs over
// HTTP/2 (RFC 8441), an event stream is relayed event by event, and no
// token or ticket reaches a log.  tests/browser/run runs this file in its
// HAProxy pass only, after the others: the last test checks the logs of
// every page of the pass.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  HAPROXY_LOG, haproxyLog, haproxyRequests, launch, openChat, parleydLogs, post, recordedSecrets, send, session, sleep,
  unique, waitForRequestLog, waitForText,
} from './lib.mjs';

let browser;

before(async () => {
  assert.ok(HAPROXY_LOG, 'run by tests/browser/run in its HAProxy pass');
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
});

/** The page's token, as the web client keeps it. */
function pageToken(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem('parley.session')).token);
}

test('the WebSocket runs over HTTP/2, on the connection the page came on', async () => {
  const room = unique('h2ws');
  const alice = await openChat(browser, unique('alice'), room, { mode: 'ws' });
  try {
    await send(alice, 'over h2');
    assert.equal(await waitForText(alice, 'over h2'), 1);
  } finally {
    await alice.context().close();
  }
  // HAProxy logs a WebSocket when it ends: the extended CONNECT of RFC 8441
  // appears as the GET it became towards parleyd, with parleyd's 101.
  const ws = await waitForRequestLog((r) => r.route === `/ws/chat/${room}`, `the WebSocket of ${room}`);
  assert.equal(ws.status, 101, `the upgrade: ${JSON.stringify(ws)}`);
  assert.equal(ws.version, 'HTTP/2.0', `the WebSocket over HTTP/2: ${JSON.stringify(ws)}`);
  assert.equal(ws.frontend, 'fe_parley~', 'over TLS (~)');
  // Chromium only does this on an HTTP/2 connection it has open: the one
  // its history request for the room went on.
  const historyReqs = haproxyRequests().filter((r) => r.route === `/api/rooms/${room}/messages`);
  assert.ok(historyReqs.length >= 1, 'the page asked for history');
  assert.ok(historyReqs.some((r) => r.client === ws.client && r.version === 'HTTP/2.0'),
    `one connection: ${JSON.stringify(historyReqs)} and ${ws.client}`);
});

test('an event stream over HTTP/2 shows each message as it is sent', async (t) => {
  const room = unique('h2sse');
  const erin = await openChat(browser, unique('erin'), room, { query: '?transport=sse', mode: 'sse' });
  const texts = [1, 2, 3, 4, 5].map((i) => `tick ${i}`);
  const gap = 500;                      // ms from one message stored to the next sent
  const sent = [];
  try {
    // When each text first shows up in the page, on the page's clock (the
    // machine's wall clock, as the test's own).
    await erin.evaluate(() => {
      window.arrivals = {};
      const log = document.getElementById('log');
      new MutationObserver(() => {
        for (const n of log.querySelectorAll('.msg .body')) {
          if (!(n.textContent in window.arrivals)) window.arrivals[n.textContent] = Date.now();
        }
      }).observe(log, { subtree: true, childList: true, characterData: true });
    });
    // The room's first message (and the test's first request) out of the way.
    const token = await session(unique('pub'));
    await post(token, room, 'warming up');
    await waitForText(erin, 'warming up');
    for (const text of texts) {
      if (sent.length) await sleep(Math.max(0, sent.at(-1).done + gap - Date.now()));
      const at = Date.now();
      await post(token, room, text);
      sent.push({ text, at, done: Date.now() });
    }
    for (const text of texts) await waitForText(erin, text);
    const arrivals = await erin.evaluate(() => window.arrivals);
    const report = sent
      .map((s) => `${s.text}: stored in ${s.done - s.at} ms, shown ${arrivals[s.text] - s.done} ms later`).join('\n');
    t.diagnostic(report);
    for (const [i, s] of sent.entries()) {
      const shown = arrivals[s.text];
      assert.ok(shown >= s.at, `shown before it was sent?\n${report}`);
      // Well before the next one is sent: nothing held back in HAProxy's
      // HTTP/2 relay until more comes or the stream ends.
      assert.ok(shown - s.done < gap / 2, `each one at once, not held back:\n${report}`);
      if (i + 1 < sent.length) assert.ok(shown < sent[i + 1].at, `one by one:\n${report}`);
    }
  } finally {
    await erin.context().close();
  }
  const stream = await waitForRequestLog((r) => r.route === `/api/rooms/${room}/events`, `the event stream of ${room}`);
  assert.equal(stream.status, 200);
  assert.equal(stream.version, 'HTTP/2.0', `the stream over HTTP/2: ${JSON.stringify(stream)}`);
});

test("no token or ticket in HAProxy's log or any parleyd's; HAProxy logs no query string", async () => {
  // Pages of its own, with every kind of ticket in a URL: the WebSocket's,
  // the event stream's and the agent's answer stream's.
  const room = unique('secrets');
  const start = haproxyRequests().length;
  const alice = await openChat(browser, unique('alice'), room, { mode: 'ws' });
  const erin = await openChat(browser, unique('erin'), room, { query: '?transport=sse', mode: 'sse' });
  const tokens = [];
  try {
    // Over SSE the page asks the agent on a stream of its own.
    await erin.fill('#input', 'help');
    await erin.click('#ask');
    await erin.waitForSelector('#log .msg.agent:not(.streaming)', { timeout: 15000 });
    await send(erin, 'sent by POST');
    await waitForText(alice, 'sent by POST');
    await send(alice, 'sent over the WebSocket');
    await waitForText(erin, 'sent over the WebSocket');
    for (const page of [alice, erin]) tokens.push(await pageToken(page));
  } finally {
    await alice.context().close();
    await erin.context().close();
  }
  for (const token of tokens) assert.equal(token.length, 43, 'the page keeps its token');
  // The streams are logged when they end.
  for (const path of [`/ws/chat/${room}`, `/api/rooms/${room}/events`, '/api/chat/stream']) {
    await waitForRequestLog((r, i) => i >= start && r.route === path, path);
  }

  // Every token and ticket of the pass: this file's pages and the other
  // test files' (tests/browser/run runs them first).
  const secrets = recordedSecrets();
  for (const token of tokens) assert.ok(secrets.token.has(token), 'the pages\' tokens were recorded');
  assert.ok(secrets.ticket.size >= 3, `the tickets were recorded (${secrets.ticket.size})`);
  const logs = { 'haproxy.log': haproxyLog(), ...parleydLogs() };
  assert.ok(Object.keys(logs).length >= 3, `HAProxy's log and both instances': ${Object.keys(logs)}`);
  for (const [file, text] of Object.entries(logs)) {
    assert.ok(text.length > 0, `${file} is not empty`);
    for (const [kind, values] of Object.entries(secrets)) {
      for (const value of values) assert.ok(!text.includes(value), `a ${kind} in ${file}: ${value}`);
    }
    assert.doesNotMatch(text, /[?&](token|ticket)=/, `a token or ticket parameter in ${file}`);
  }

  // HAProxy logs paths alone: the pages' URLs had queries (?ticket=,
  // ?limit=) that are not there.
  const requests = haproxyRequests();
  assert.deepEqual(requests.filter((r) => r.path !== r.route), [], 'paths alone, no query strings');
  for (const path of [`/ws/chat/${room}`, `/api/rooms/${room}/events`, `/api/rooms/${room}/messages`,
    '/api/chat/stream']) {
    assert.ok(requests.some((r) => r.route === path), `${path} logged`);
  }
});
