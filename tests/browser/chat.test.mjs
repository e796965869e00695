// chat.test.mjs - parley's web client in headless Chromium against the real
// parleyd: chatting, the agent's stream, a restart, HTML injection, the SSE
// fallback, history on scroll and a phone-sized screen.  tests/browser/run
// runs it twice: against one parleyd, then through HAProxy (HTTP/2, TLS) in
// front of two.  The tests run one after another (one of them restarts the
// servers).

import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import {
  BASE, bodies, countText, history, launch, newContext, openChat, post, screenshot, send, serverLog, session, sleep,
  startOtherInstance, startParleyd, stopParleyd, unique, waitForText, waitOnline,
} from './lib.mjs';

let browser;
const pages = [];

before(async () => {
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
});

// Open sign-in keeps a name for as long as its session lives: each test
// signs its people in under names of its own.
let testSeq = 0;
beforeEach(() => {
  testSeq += 1;
});

function who(name) {
  return `${name}-${testSeq}`;
}

async function chat(user, room, opts) {
  const page = await openChat(browser, who(user), room, opts);
  pages.push(page);
  return page;
}

async function closeAll() {
  while (pages.length) await pages.pop().context().close();
}

function noPageErrors(...list) {
  for (const p of list) assert.deepEqual(p.errors, [], 'uncaught errors in the page');
}

test('two pages chat with each other and see every message once', async () => {
  const room = unique('duo');
  const alice = await chat('alice', room);
  const bob = await chat('bob', room);
  try {
    // Presence: bob's welcome lists alice; alice hears bob join.
    await bob.waitForSelector(`#members [data-user="${who('alice')}"]`);
    await alice.waitForSelector(`#members [data-user="${who('bob')}"]`);

    const lines = ['hello bob', 'hi alice!', 'how are you?', 'fine, thanks', 'bye'];
    for (const [i, line] of lines.entries()) {
      await send(i % 2 ? bob : alice, line);
    }
    for (const page of [alice, bob]) {
      for (const line of lines) await waitForText(page, line);
    }
    await sleep(300);                   // late duplicates would show up by now
    for (const page of [alice, bob]) {
      for (const line of lines) assert.equal(await countText(page, line), 1, `"${line}" once`);
      assert.deepEqual(await bodies(page), lines, 'in the order sent');
      assert.equal(await page.locator('#pending .msg').count(), 0, 'nothing left pending');
    }
    assert.equal(await alice.locator('#log .msg.mine').count(), 3);
    assert.equal(await bob.locator('#log .msg.mine').count(), 2);

    // Typing: shown to the other side for a few seconds.
    await bob.fill('#input', 'still typ');
    await bob.type('#input', 'ing');
    await alice.waitForFunction((name) => document.getElementById('typing').textContent === `${name} is typing…`,
      who('bob'));
    await bob.fill('#input', '');

    // A direct message: pick bob in the member list.
    await alice.click(`#members [data-user="${who('bob')}"]`);
    await alice.waitForSelector('#dm-target:not([hidden])');
    await send(alice, 'just between us');
    await bob.waitForSelector('#log .msg.direct-in');
    assert.equal(await bob.locator('#log .msg.direct-in .from').textContent(), who('alice'));
    assert.equal(await bob.locator('#log .msg.direct-in .body').textContent(), 'just between us');
    await alice.waitForSelector('#log .msg.direct-out');
    assert.equal(await countText(alice, 'just between us'), 1);
    assert.equal(await countText(bob, 'just between us'), 1);

    // Nothing of this reached the room's history.
    const token = await session('carol');
    const stored = (await history(token, room)).map((m) => m.content);
    assert.deepEqual(stored, lines);

    await screenshot(alice, 'chat-alice');
    await screenshot(bob, 'chat-bob');
    noPageErrors(alice, bob);

    // The pages' tokens never travelled in a URL: the servers' logs (which
    // have every request's path) hold none of them.
    const log = serverLog();
    for (const page of [alice, bob]) {
      const { token: pageToken } = await page.evaluate(() => JSON.parse(localStorage.getItem('parley.session')));
      assert.ok(pageToken.length === 43, 'the page keeps its token');
      assert.ok(!log.includes(pageToken), 'a page token in the server log');
    }
    assert.match(log, /path=\/ws\/chat\/[^ ]+ status=101/);
  } finally {
    await closeAll();
  }
});

test("the agent's answer streams into the page, then stays once", async () => {
  const room = unique('agent');
  const alice = await chat('alice', room);
  const bob = await chat('bob', room);
  try {
    // Record the streamed text's length at every change, from inside each page.
    for (const page of [alice, bob]) {
      await page.evaluate(() => {
        window.samples = [];
        const log = document.getElementById('log');
        new MutationObserver(() => {
          const node = log.querySelector('.msg.agent.streaming .body');
          if (node) window.samples.push({ t: performance.now(), n: node.textContent.length });
        }).observe(log, { subtree: true, childList: true, characterData: true });
      });
    }
    await alice.fill('#input', 'help');
    await alice.click('#ask');
    await alice.waitForSelector('#log .msg.question');
    for (const page of [alice, bob]) {
      await page.waitForSelector('#log .msg.agent:not(.streaming)', { timeout: 15000 });
    }

    const [answer] = (await history(await session('carol'), room)).filter((m) => m.content !== 'help');
    assert.ok(answer, 'the answer is stored in the room');
    assert.match(answer.content, /who is here/);
    for (const page of [alice, bob]) {
      const samples = await page.evaluate(() => window.samples);
      const lengths = [...new Set(samples.map((s) => s.n))];
      assert.ok(lengths.length >= 4, `the answer grew in steps (saw ${lengths.join(',')})`);
      for (let i = 1; i < lengths.length; i++) assert.ok(lengths[i] > lengths[i - 1], 'and only grew');
      assert.ok(samples.at(-1).t - samples[0].t >= 60, 'over time, not at once');
      assert.ok(lengths.at(-1) <= answer.content.length);
      await sleep(200);
      const agentBodies = await bodies(page, '#log .msg.agent');
      assert.deepEqual(agentBodies, [answer.content], 'the final text, shown once');
      assert.equal(await page.locator(`#log .msg.agent[data-key="m:${answer.id}"]`).count(), 1);
    }

    // A page opened afterwards gets it from history, once.
    const carol = await chat('carol', room);
    await waitForText(carol, answer.content);
    assert.equal(await countText(carol, answer.content), 1);
    await screenshot(alice, 'agent-alice');

    noPageErrors(alice, bob, carol);
  } finally {
    await closeAll();
  }
});

test('a restarted parleyd: the pages reconnect, send their outbox and show what they missed', async () => {
  const room = unique('restart');
  const alice = await chat('alice', room);
  const erin = await chat('erin', room, { query: '?transport=sse', mode: 'sse' });
  try {
    await send(alice, 'before the restart');
    await waitForText(alice, 'before the restart');
    await waitForText(erin, 'before the restart');

    await stopParleyd();
    for (const page of [alice, erin]) {
      await page.waitForSelector('#status:not([data-state="online"])', { timeout: 10000 });
    }
    await send(alice, 'typed while down 1');
    await send(alice, 'typed while down 2');
    await send(erin, 'erin typed while down');
    await alice.waitForFunction(() => document.querySelectorAll('#pending .msg.pending').length === 2);
    await erin.waitForFunction(() => document.querySelectorAll('#pending .msg.pending').length === 1);
    assert.equal(await alice.locator('#pending .msg .state').first().textContent(), 'waiting for connection');
    await screenshot(alice, 'restart-offline');

    // Meanwhile bob writes through another instance of the same deployment.
    const other = await startOtherInstance();
    try {
      const bob = await session('bob', other.base);
      await post(bob, room, 'missed 1', other.base);
      await post(bob, room, 'missed 2', other.base);
    } finally {
      await other.stop();
    }

    await startParleyd();
    await waitOnline(alice, 'ws', 20000);
    await waitOnline(erin, 'sse', 20000);
    const all = ['before the restart', 'missed 1', 'missed 2', 'typed while down 1', 'typed while down 2',
      'erin typed while down'];
    for (const page of [alice, erin]) {
      await page.waitForFunction(() => document.querySelectorAll('#pending .msg').length === 0, null, { timeout: 10000 });
      for (const t of all) await waitForText(page, t);
    }
    await sleep(300);
    // Stored once each; the two pages' queued messages in the order each typed them.
    const stored = (await history(await session('carol'), room)).map((m) => m.content);
    assert.deepEqual(stored.slice(0, 3), all.slice(0, 3));
    assert.deepEqual([...stored].sort(), [...all].sort());
    assert.ok(stored.indexOf('typed while down 1') < stored.indexOf('typed while down 2'));
    for (const page of [alice, erin]) {
      assert.deepEqual(await bodies(page), stored, 'every page shows the room as stored, once');
    }

    // And the pages are live again.
    const carol = await chat('carol', room);
    await send(carol, 'welcome back');
    assert.equal(await waitForText(alice, 'welcome back'), 1);
    assert.equal(await waitForText(erin, 'welcome back'), 1);
    await screenshot(alice, 'restart-after');
    noPageErrors(alice, erin, carol);
  } finally {
    await closeAll();
  }
});

test('a message whose ack was lost is sent again on reconnect and stored once', async () => {
  const room = unique('lostack');
  let connections = 0;
  let cut = false;
  const sent = [];                      // client_msg_id of every message the page sent
  // The first WebSocket goes through a relay that, once the page has sent
  // "lost ack", swallows everything from the server and then drops the line:
  // the server stored the message but the page never heard so.
  const relay = (context) => context.routeWebSocket(/\/ws\//, (ws) => {
    connections += 1;
    const first = connections === 1;
    const server = ws.connectToServer();
    ws.onMessage((m) => {
      server.send(m);
      const doc = JSON.parse(String(m));
      if (doc.type === 'message') sent.push(doc.client_msg_id);
      if (!first) return;               // later connections: plain relay
      if (String(m).includes('lost ack') && !cut) {
        cut = true;
        setTimeout(() => {
          ws.close({ code: 1001, reason: 'cut' }).catch(() => {});
          server.close().catch(() => {});
        }, 400);
      }
    });
    server.onMessage((m) => {
      if (!first || !cut) ws.send(m);
    });
  });
  const alice = await chat('alice', room, { before: relay, mode: 'ws' });
  try {
    await send(alice, 'lost ack');
    await alice.waitForFunction(() => document.querySelector('#status').dataset.state !== 'online');
    await waitOnline(alice, 'ws', 15000);
    await waitForText(alice, 'lost ack');
    await alice.waitForFunction(() => document.querySelectorAll('#pending .msg').length === 0, null, { timeout: 10000 });
    await sleep(300);
    assert.equal(connections, 2, 'the page reconnected once');
    assert.equal(sent.length, 2, 'the page sent it again after reconnecting');
    assert.equal(sent[0], sent[1], 'with the same client_msg_id');
    assert.equal(await countText(alice, 'lost ack'), 1, 'shown once');
    const stored = (await history(await session('carol'), room)).map((m) => m.content);
    assert.deepEqual(stored, ['lost ack'], 'stored once though sent twice');
    noPageErrors(alice);
  } finally {
    await closeAll();
  }
});

test('HTML in a message is shown as text', async () => {
  const room = unique('xss');
  const evil = '<img src=x onerror=alert(1)>';
  const alice = await chat('alice', room);
  const bob = await chat('bob', room);
  try {
    await send(alice, evil);
    const token = await session('mallory');
    await post(token, room, `<b>bold</b><script>alert(2)</script>`);
    for (const page of [alice, bob]) {
      assert.equal(await waitForText(page, evil), 1);
      await waitForText(page, '<b>bold</b><script>alert(2)</script>');
      assert.equal(await page.locator('#log img').count(), 0, 'no img element');
      assert.equal(await page.locator('#log b, #log script').count(), 0, 'no markup from messages');
    }
    await sleep(300);
    for (const page of [alice, bob]) assert.deepEqual(page.dialogs, [], 'no dialog opened');
    await screenshot(bob, 'xss-bob');
    noPageErrors(alice, bob);
  } finally {
    await closeAll();
  }
});

test('with WebSocket blocked the page falls back to SSE + HTTP POST', async () => {
  const room = unique('fallback');
  let blocked = 0;
  // Every WebSocket to /ws/ is refused before the server sees it.
  const block = (context) => context.routeWebSocket(/\/ws\//, (ws) => {
    blocked += 1;
    ws.close({ code: 1006, reason: 'blocked' });
  });
  const alice = await chat('alice', room, { before: block, mode: 'sse' });
  const bob = await chat('bob', room, { mode: 'ws' });
  const carol = await chat('carol', room, { query: '?transport=sse', mode: 'sse' });
  try {
    assert.ok(blocked >= 2, 'the page tried the WebSocket first');
    await alice.waitForSelector('#log .notice:has-text("WebSocket unavailable")');

    await send(alice, 'sent by POST');
    await send(bob, 'received over SSE');
    await send(carol, 'carol via the flag');
    for (const page of [alice, bob, carol]) {
      for (const t of ['sent by POST', 'received over SSE', 'carol via the flag']) {
        assert.equal(await waitForText(page, t), 1, `${t} once`);
      }
    }
    await sleep(300);
    for (const page of [alice, bob, carol]) {
      assert.deepEqual(await bodies(page), ['sent by POST', 'received over SSE', 'carol via the flag']);
      assert.equal(await page.locator('#pending .msg').count(), 0);
    }
    // Over SSE the user still counts as present.
    await bob.waitForSelector(`#members [data-user="${who('alice')}"]`);

    // The agent answers privately over /api/chat/stream.
    await alice.fill('#input', 'help');
    await alice.click('#ask');
    await alice.waitForSelector('#log .msg.agent:not(.streaming)', { timeout: 15000 });
    assert.match(await alice.locator('#log .msg.agent .body').textContent(), /who is here/);
    assert.equal(await alice.locator('#log .msg.agent.failed').count(), 0);
    await screenshot(alice, 'fallback-alice');
    noPageErrors(alice, bob, carol);
  } finally {
    await closeAll();
  }
});

test('older history loads on scroll; the page fits a phone screen', async () => {
  const room = unique('long');
  const token = await session('dave');
  for (let i = 1; i <= 120; i++) await post(token, room, `old message ${i}`);
  const phone = { width: 390, height: 740 };
  const alice = await chat('alice', room, { viewport: phone });
  try {
    await waitForText(alice, 'old message 120');
    assert.equal(await alice.locator('#log .msg').count(), 50, 'the newest page first');
    // Scrolling to the top loads more, keeping order and never repeating.
    for (let i = 0; i < 10 && (await alice.locator('#log .msg').count()) < 120; i++) {
      await alice.evaluate(() => { document.getElementById('scroller').scrollTop = 0; });
      await sleep(250);
    }
    const all = await bodies(alice);
    assert.deepEqual(all, Array.from({ length: 120 }, (_, i) => `old message ${i + 1}`));
    await alice.waitForFunction(() => document.getElementById('history-label').textContent.startsWith('This is the beginning'));

    // Nothing wider than the screen; the composer is on screen.
    const fits = await alice.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
    assert.ok(fits, 'no horizontal scrolling');
    const box = await alice.locator('#input').boundingBox();
    assert.ok(box && box.y + box.height <= phone.height, 'the composer is visible');
    await alice.evaluate(() => { const s = document.getElementById('scroller'); s.scrollTop = s.scrollHeight; });
    await send(alice, 'from a phone');
    await waitForText(alice, 'from a phone');
    await screenshot(alice, 'phone');
    await alice.click('#toggle-side');
    await sleep(300);             // the drawer slides in
    await screenshot(alice, 'phone-sidebar');
    noPageErrors(alice);
  } finally {
    await closeAll();
  }
});

test('the sign-in page: served with content types, refuses bad names', async () => {
  for (const [path, type] of [['/', 'text/html'], ['/style.css', 'text/css'], ['/js/app.js', 'javascript']]) {
    const r = await fetch(`${BASE}${path}`);
    await r.arrayBuffer();
    assert.equal(r.status, 200, path);
    assert.ok((r.headers.get('content-type') || '').includes(type), `${path}: ${r.headers.get('content-type')}`);
  }
  const context = await newContext(browser, { viewport: { width: 390, height: 740 } });
  try {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${BASE}/`);
    await page.fill('#login-name', 'no spaces allowed');
    await page.click('#login-submit');
    await page.waitForFunction(() => document.getElementById('login-error').textContent !== '');
    assert.equal(await page.locator('#chat').isHidden(), true);
    await screenshot(page, 'login-phone');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('open sign-in: a name in use cannot be taken, the agent\'s name never', async () => {
  const room = unique('names');
  const name = unique('ann');
  const first = await openChat(browser, name, room);
  pages.push(first);
  const context = await newContext(browser);
  try {
    const page = await context.newPage();
    await page.goto(`${BASE}/`);
    for (const [taken, want] of [[name, /in use right now/], ['agent', /reserved/], ['Agent', /reserved/]]) {
      await page.fill('#login-name', taken);
      await page.fill('#login-room', room);
      await page.click('#login-submit');
      await page.waitForFunction((re) => new RegExp(re).test(document.getElementById('login-error').textContent),
        want.source);
      assert.equal(await page.locator('#chat').isHidden(), true);
    }
    // Signing out (here: "change name") ends the session: the name is free.
    await first.click('#logout');
    await first.waitForSelector('#login-name', { state: 'visible' });
    await page.fill('#login-name', name);
    await page.click('#login-submit');
    await waitOnline(page);
    assert.equal(await page.textContent('#me-name'), name);
  } finally {
    await context.close();
  }
});

test('without open sign-in the page takes the token the application hands over', async () => {
  const other = await startOtherInstance({ open_sessions: 'off' });
  const context = await newContext(browser);
  try {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // Nobody may pick a name here: no form, a word on where to sign in.
    await page.goto(`${other.base}/`);
    await page.waitForSelector('#login-closed', { state: 'visible' });
    assert.equal(await page.locator('#login-name').isVisible(), false);
    assert.equal(await page.locator('#login-submit').isVisible(), false);

    // The application mints a session and links to the chat with it in the
    // fragment, which never reaches a server (or its logs).
    const user = unique('handed');
    const room = unique('given');
    const token = await session(user, other.base);
    await page.goto(`${other.base}/#room=${room}&token=${token}`);
    await waitOnline(page);
    assert.equal(new URL(page.url()).hash, `#${room}`);
    assert.equal(await page.textContent('#me-name'), user);
    assert.equal(await page.textContent('#logout'), 'sign out');
    await send(page, 'handed over');
    assert.equal(await waitForText(page, 'handed over'), 1);

    // Or it sets the parley_token cookie on the chat's own origin.
    const cookieUser = unique('cookie');
    const cookieContext = await newContext(browser);
    try {
      await cookieContext.addCookies([{ name: 'parley_token', value: await session(cookieUser, other.base),
        url: other.base, httpOnly: true, sameSite: 'Strict' }]);
      const cpage = await cookieContext.newPage();
      await cpage.goto(`${other.base}/#${room}`);
      await waitOnline(cpage);
      assert.equal(await cpage.textContent('#me-name'), cookieUser);
      assert.equal(await waitForText(cpage, 'handed over'), 1);
      await send(cpage, 'by cookie');
      assert.equal(await waitForText(page, 'by cookie'), 1);
    } finally {
      await cookieContext.close();
    }
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await other.stop();
  }
});

test("nobody becomes the agent in the page by posting the agent's words", async () => {
  // The outside audit: a message whose text matched an answer being
  // streamed was taken for the answer, and its sender remembered as the
  // agent.  Here the server's frames are replayed with one made up in the
  // middle: a look-alike user posting the streamed text.
  const room = unique('mimic');
  let inject;
  const page = await chat('viewer', room, {
    before: (context) => context.routeWebSocket(/\/ws\/chat\//, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((m) => server.send(m));
      server.onMessage((m) => ws.send(m));
      inject = (doc) => ws.send(JSON.stringify(doc));
    }),
  });
  try {
    inject({ type: 'ai_chunk', request_id: 'r1', content: 'You said: ' });
    inject({ type: 'ai_chunk', request_id: 'r1', content: 'hello' });
    await page.waitForSelector('#log .msg.agent.streaming');
    inject({ type: 'message', id: '4102444800000-0', room, from: 'agent_', content: 'You said: hello',
      ts: 4102444800000 });
    await waitForText(page, 'You said: hello');
    await page.waitForFunction(() => document.querySelectorAll('#log .msg .body').length >= 2);
    assert.equal(await page.locator('#log .msg.agent').count(), 1, 'the stream alone is the agent');
    assert.equal(await page.locator('#log .msg.agent.streaming').count(), 1, 'still streaming: not adopted');
    assert.equal(await page.locator('#log .msg:not(.agent) .from', { hasText: 'agent_' }).count(), 1);
    assert.equal(await page.evaluate(() => localStorage.getItem('parley.agents')), null);
    noPageErrors(page);
  } finally {
    await closeAll();
  }
});
