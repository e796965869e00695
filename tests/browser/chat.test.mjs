// chat.test.mjs - parley's web client in headless Chromium against the real
// parleyd: chatting (compressed: permessage-deflate), the agent's stream, a restart, HTML injection, the SSE
// fallback, history on scroll and a phone-sized screen; the agent's answers
// resumed after a reload or a cut, rendered as safe Markdown, stopped by
// their asker, and a private answer's stream resumed.  tests/browser/run
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

test('the WebSocket is compressed both ways and long messages arrive whole', async () => {
  const room = unique('deflate');
  const alice = await chat('alice', room);
  const bob = await chat('bob', room);
  try {
    // openChat holds every handshake to permessage-deflate; here, that there was one.
    assert.ok(alice.wsExtensions.length >= 1 && bob.wsExtensions.length >= 1, 'a WebSocket handshake was seen');
    // Chromium compresses what it sends (parley inflates it) and inflates
    // what parley compressed once for both pages.
    const long = Array.from({ length: 120 }, (_, i) => `word${i % 17} of a long message`).join(' ');
    await send(alice, long);
    await send(bob, 'short reply');
    for (const page of [alice, bob]) {
      await waitForText(page, 'short reply');
      assert.deepEqual(await bodies(page), [long, 'short reply'], 'both, whole, in order');
    }
    noPageErrors(alice, bob);
  } finally {
    await closeAll();
  }
});

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
  for (const [path, type] of [['/', 'text/html'], ['/style.css', 'text/css'], ['/js/app.js', 'javascript'],
    ['/js/markdown.js', 'javascript'], ['/vendor/marked/marked.min.js', 'javascript']]) {
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

// ---- the agent's answers: resumable, Markdown, stoppable -------------------

/** A question the built-in agent echoes word by word ("You said: ..."). */
function words(n, prefix = 'word') {
  return Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`).join(' ');
}

/**
 * Records, from inside PAGE (and again after each reload of it), the text
 * of every agent answer in the log at each change (window.samples), and
 * any element that must never come from a message (window.bad).
 */
async function watchAnswers(page) {
  const install = () => {
    const start = () => {
      if (window.samples) return;
      window.samples = [];
      window.bad = [];
      const log = document.getElementById('log');
      new MutationObserver((records) => {
        for (const r of records) {
          for (const n of r.addedNodes) {
            if (n.nodeType === 1 && (n.matches('img, script, iframe, object, embed, input')
              || n.querySelector('img, script, iframe, object, embed, input'))) window.bad.push(n.outerHTML);
          }
        }
        for (const b of log.querySelectorAll('.msg.agent .body')) window.samples.push(b.textContent);
      }).observe(log, { subtree: true, childList: true, characterData: true });
    };
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
    else start();
  };
  await page.context().addInitScript(install);
  await page.evaluate(install);
}

/** The text of the (one) agent answer streaming in PAGE, or null. */
function streamingText(page) {
  return page.evaluate(() => {
    const b = document.querySelector('#log .msg.agent.streaming .body');
    return b ? b.textContent : null;
  });
}

async function ask(page, question) {
  await page.fill('#input', question);
  await page.click('#ask');
}

test('a page reloaded in the middle of an answer shows it from its start, and it goes on', async () => {
  // One word every 150 ms: the answer takes about 7 s.
  const other = await startOtherInstance({ agent_delay: '150ms' });
  const room = unique('reload');
  try {
    const alice = await chat('alice', room, { base: other.base });
    const bob = await chat('bob', room, { base: other.base });
    for (const page of [alice, bob]) await watchAnswers(page);
    const answer = `You said: ${words(45)}`;
    await ask(alice, words(45));
    await alice.waitForFunction(() => /word6\b/.test(document.querySelector('#log .msg.agent.streaming .body')
      ?.textContent || ''), null, { timeout: 15000 });
    const before = await streamingText(alice);
    assert.ok(answer.startsWith(before), `a part of the answer before the reload: ${before}`);

    await alice.reload();
    await waitOnline(alice);
    // Back with the text so far (the chunks are replayed after the
    // welcome), still streaming, and it goes on.
    await alice.waitForFunction((t) => document.querySelector('#log .msg.agent.streaming .body')?.textContent
      .startsWith(t), before, { timeout: 5000 });
    const after = await streamingText(alice);
    assert.ok(after.startsWith(before), `after the reload "${after}" begins with "${before}"`);
    assert.ok(answer.startsWith(after), `and is the answer's beginning: ${after}`);
    await alice.waitForFunction((n) => (document.querySelector('#log .msg.agent.streaming .body')?.textContent
      .length || 0) > n, after.length, { timeout: 5000 });
    assert.equal(await alice.locator('#log .msg.agent .stop').count(), 1, 'the asker can still stop it');

    for (const page of [alice, bob]) {
      await page.waitForSelector('#log .msg.agent:not(.streaming)', { timeout: 20000 });
    }
    const stored = (await history(await session('carol'), room)).filter((m) => m.from === 'agent');
    assert.equal(stored.length, 1);
    assert.equal(stored[0].content, answer);
    assert.equal(stored[0].status, undefined, 'complete');
    await sleep(300);
    for (const page of [alice, bob]) {
      assert.deepEqual(await bodies(page, '#log .msg.agent'), [answer], 'the whole answer, shown once');
      assert.equal(await page.locator(`#log .msg.agent[data-key="m:${stored[0].id}"]`).count(), 1);
      assert.equal(await page.locator('#log .msg.agent .state').textContent(), '');
      assert.equal(await page.locator('#log .msg.agent .stop').count(), 0);
      // Whatever it showed on the way was a beginning of the answer: no
      // chunk twice, none left out.
      const samples = await page.evaluate(() => window.samples);
      assert.ok(samples.length > 5);
      for (const s of samples) assert.ok(answer.startsWith(s), `shown on the way: "${s}"`);
    }
    await screenshot(alice, 'reload-mid-answer');
    noPageErrors(alice, bob);
  } finally {
    await closeAll();
    await other.stop();
  }
});

test('a WebSocket cut in the middle of an answer resumes from the last event seen', async () => {
  const other = await startOtherInstance({ agent_delay: '100ms' });
  const room = unique('blip');
  const urls = [];
  let chunks = 0;
  let cut = false;
  let lastChunkId = null;
  // The first WebSocket goes through a relay that, after the fifth chunk of
  // the answer, passes nothing more and drops the line.
  const relay = (context) => context.routeWebSocket(/\/ws\//, (ws) => {
    urls.push(ws.url());
    const first = urls.length === 1;
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => {
      if (first && cut) return;
      const doc = JSON.parse(String(m));
      ws.send(m);
      if (!first || doc.type !== 'ai_chunk') return;
      lastChunkId = doc.id;
      if (++chunks === 5) {
        cut = true;
        ws.close({ code: 1001, reason: 'cut' }).catch(() => {});
        server.close().catch(() => {});
      }
    });
  });
  try {
    const alice = await chat('alice', room, { base: other.base, before: relay, mode: 'ws' });
    await watchAnswers(alice);
    const answer = `You said: ${words(40)}`;
    await ask(alice, words(40));
    await alice.waitForFunction(() => document.querySelector('#status').dataset.state !== 'online');
    await waitOnline(alice, 'ws', 15000);
    assert.equal(urls.length, 2, 'the page reconnected once');
    assert.equal(new URL(urls[0]).searchParams.get('last_event_id'), null, 'the first join is fresh');
    assert.equal(new URL(urls[1]).searchParams.get('last_event_id'), lastChunkId,
      'the reconnect resumes from the last chunk seen');
    await alice.waitForSelector('#log .msg.agent:not(.streaming)', { timeout: 20000 });
    await sleep(300);
    assert.deepEqual(await bodies(alice, '#log .msg.agent'), [answer]);
    const samples = await alice.evaluate(() => window.samples);
    for (const s of samples) assert.ok(answer.startsWith(s), `shown on the way: "${s}"`);
    // The cut came at its third word: it went on streaming after the
    // reconnect (not only its stored message came).
    assert.ok(samples.some((s) => /word10\b/.test(s) && s.length < answer.length), 'streamed after the reconnect');
    noPageErrors(alice);
  } finally {
    await closeAll();
    await other.stop();
  }
});

test("the agent's answers are Markdown, made safe; people's messages stay text", async () => {
  const room = unique('markdown');
  const alice = await chat('alice', room);
  const bob = await chat('bob', room);
  try {
    for (const page of [alice, bob]) await watchAnswers(page);
    const question = [
      'Here is **bold** and a list:',
      '',
      '- first item',
      '- second item',
      '',
      '```',
      'const x = 1 < 2 && "<b>";',
      '```',
      '',
      '### input',
      '',
      '[a safe link](https://example.com/page) [a bad one](javascript:window.__pwned=1)'
        + ' [another](JaVaScRiPt:window.__pwned=3) ![pic](https://example.com/x.png)',
      '',
      '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script>',
      '',
      '<iframe src="javascript:window.__pwned=4"></iframe>',
    ].join('\n');
    await ask(alice, question);
    // The question, as the asker typed it, is text.
    await alice.waitForSelector('#log .msg.question');
    assert.equal(await alice.locator('#log .msg.question .body').textContent(), question);
    for (const page of [alice, bob]) {
      await page.waitForSelector('#log .msg.agent:not(.streaming)', { timeout: 15000 });
    }
    const carol = await chat('carol', room);              // the stored message, from history
    await carol.waitForSelector('#log .msg.agent');
    for (const page of [alice, bob, carol]) {
      const answer = page.locator('#log .msg.agent .body');
      assert.equal(await answer.locator('pre > code').count(), 1, 'a code block');
      assert.equal(await answer.locator('pre > code').textContent(), 'const x = 1 < 2 && "<b>";\n');
      assert.deepEqual(await answer.locator('ul > li').allTextContents(), ['first item', 'second item']);
      assert.equal(await answer.locator('strong').textContent(), 'bold');
      const link = answer.locator('a[href="https://example.com/page"]');
      assert.equal(await link.textContent(), 'a safe link');
      assert.equal(await link.getAttribute('rel'), 'noopener noreferrer');
      assert.equal(await link.getAttribute('target'), '_blank');
      // Only http(s) and mailto links; the others are their text.
      const hrefs = await answer.locator('a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
      assert.deepEqual(hrefs, ['https://example.com/page', 'https://example.com/x.png']);
      assert.equal(await answer.locator('a[href="https://example.com/x.png"]').textContent(), 'image: pic',
        'an image is a link to it, never loaded');
      const text = await answer.textContent();
      assert.ok(text.includes('a bad one') && text.includes('another'));
      // Raw HTML is shown as written; nothing of it is an element.
      assert.ok(text.includes('<img src=x onerror="window.__pwned=1">'), text);
      assert.ok(text.includes('<script>window.__pwned=2</script>'), text);
      assert.ok(text.includes('<iframe src="javascript:window.__pwned=4"></iframe>'), text);
      assert.equal(await page.locator('#log img, #log script, #log iframe, #log input').count(), 0);
      // A heading named "input" does not take the composer's id.
      assert.equal(await page.locator('[id="input"]').count(), 1);
      assert.equal(await answer.locator('h3').textContent(), 'input');
      assert.equal(await answer.locator('[id]').count(), 0);
    }

    // People's messages are never Markdown.
    const plain = '**not bold** [not a link](https://example.com/) `not code` <i>x</i>';
    await send(bob, plain);
    for (const page of [alice, bob, carol]) {
      assert.equal(await waitForText(page, plain), 1);
      assert.equal(await page.locator('#log .msg:not(.agent) :is(strong, a, code, i)').count(), 0);
    }
    await sleep(300);
    for (const page of [alice, bob]) {
      assert.deepEqual(await page.evaluate(() => window.bad), [], 'no such element ever, streaming or stored');
    }
    for (const page of [alice, bob, carol]) {
      assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no script of the answer ran');
      assert.deepEqual(page.dialogs, []);
    }
    await screenshot(bob, 'markdown-bob');
    noPageErrors(alice, bob, carol);
  } finally {
    await closeAll();
  }
});

test('the asker can stop an answer, nobody else; it ends as stopped for everyone', async () => {
  const other = await startOtherInstance({ agent_delay: '150ms' });
  const room = unique('stop');
  try {
    const alice = await chat('alice', room, { base: other.base });
    const bob = await chat('bob', room, { base: other.base });
    const answer = `You said: ${words(45)}`;
    await ask(alice, words(45));
    for (const page of [alice, bob]) {
      await page.waitForFunction(() => /word3\b/.test(document.querySelector('#log .msg.agent.streaming .body')
        ?.textContent || ''), null, { timeout: 15000 });
    }
    assert.equal(await alice.locator('#log .msg.agent.streaming .stop').count(), 1, 'the asker has a stop button');
    assert.equal(await bob.locator('#log .msg.agent .stop').count(), 0, 'the others have none');
    await alice.click('#log .msg.agent.streaming .stop');
    for (const page of [alice, bob]) {
      await page.waitForSelector('#log .msg.agent.stopped:not(.streaming)', { timeout: 10000 });
    }
    const [stored] = (await history(await session('carol'), room)).filter((m) => m.from === 'agent');
    assert.equal(stored.status, 'cancelled');
    assert.ok(answer.startsWith(stored.content) && stored.content.length < answer.length, stored.content);
    await sleep(600);                       // nothing more comes
    for (const page of [alice, bob]) {
      assert.deepEqual(await bodies(page, '#log .msg.agent'), [stored.content]);
      assert.equal(await page.locator('#log .msg.agent .state').textContent(), 'stopped');
      assert.equal(await page.locator(`#log .msg.agent[data-key="m:${stored.id}"]`).count(), 1);
      assert.equal(await page.locator('#log .msg.agent .stop').count(), 0);
      assert.equal(await page.locator('#log .notice.error').count(), 0, 'no error shown');
    }
    // A page opened afterwards shows it as stopped too.
    const carol = await chat('carol', room, { base: other.base });
    await carol.waitForSelector('#log .msg.agent.stopped');
    assert.deepEqual(await bodies(carol, '#log .msg.agent'), [stored.content]);

    // A private answer (the SSE fallback) is stopped over HTTP.
    const erin = await chat('erin', `${room}-sse`, { base: other.base, query: '?transport=sse', mode: 'sse' });
    await ask(erin, words(45, 'private'));
    await erin.waitForFunction(() => /private3\b/.test(document.querySelector('#log .msg.agent.streaming .body')
      ?.textContent || ''), null, { timeout: 15000 });
    await erin.click('#log .msg.agent.streaming .stop');
    await erin.waitForSelector('#log .msg.agent.stopped:not(.streaming)', { timeout: 10000 });
    const privateText = await erin.locator('#log .msg.agent.stopped .body').textContent();
    assert.ok(`You said: ${words(45, 'private')}`.startsWith(privateText));
    assert.ok(privateText.length < `You said: ${words(45, 'private')}`.length);
    await screenshot(alice, 'stopped-alice');
    noPageErrors(alice, bob, carol, erin);
  } finally {
    await closeAll();
    await other.stop();
  }
});

test("a private answer's broken stream is resumed from its last chunk", async () => {
  const other = await startOtherInstance({ agent_delay: '100ms' });
  const room = unique('private');
  // Keeps every EventSource the page opens within reach of the test.
  const keep = (context) => context.addInitScript(() => {
    const Native = window.EventSource;
    window.sources = [];
    window.EventSource = class extends Native {
      constructor(...args) {
        super(...args);
        window.sources.push(this);
      }
    };
  });
  try {
    const erin = await chat('erin', room, { base: other.base, query: '?transport=sse', mode: 'sse', before: keep });
    await watchAnswers(erin);
    const answer = `You said: ${words(40, 'p')}`;
    await ask(erin, words(40, 'p'));
    await erin.waitForFunction(() => /p5\b/.test(document.querySelector('#log .msg.agent.streaming .body')
      ?.textContent || ''), null, { timeout: 15000 });
    // The network drops the answer's stream: it is closed, and the page
    // hears what it would hear then.
    const url = await erin.evaluate(() => {
      const es = window.sources.find((s) => s.url.includes('/api/chat/stream'));
      es.close();
      es.dispatchEvent(new Event('error'));
      return es.url;
    });
    assert.ok(new URL(url).searchParams.get('query'), 'the first stream asked');
    await erin.waitForSelector('#log .msg.agent:not(.streaming)', { timeout: 20000 });
    const urls = await erin.evaluate(() => window.sources.map((s) => s.url).filter((u) => u.includes('/api/chat/stream')));
    assert.equal(urls.length, 2, 'one more stream');
    const again = new URL(urls[1]).searchParams;
    assert.equal(again.get('query'), null, 'nothing asked again');
    assert.match(again.get('last_event_id'), /^[0-9a-f]{16}\/\d+-\d+$/);
    await sleep(300);
    assert.deepEqual(await bodies(erin, '#log .msg.agent'), [answer]);
    assert.equal(await erin.locator('#log .msg.agent .state').textContent(), '');
    for (const s of await erin.evaluate(() => window.samples)) assert.ok(answer.startsWith(s), `shown: "${s}"`);
    noPageErrors(erin);
  } finally {
    await closeAll();
    await other.stop();
  }
});
