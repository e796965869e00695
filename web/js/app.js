// app.js - the chat page: sign-in, rooms, the message log, presence,
// typing, direct messages and the agent, wired to a RoomConnection.

import {
  ApiError, askStreamUrl, cancelAnswer, cancelPrivateAnswer, compareIds, createSession, createTicket, endSession,
  fetchMessages, getConfig, newClientMsgId, validName, whoAmI,
} from './api.js';
import { RoomConnection } from './connection.js';
import {
  MessageLog, el, messageNode, noticeNode, renderMembers, renderRooms, renderStatus, renderTyping, setNodeState,
  setNodeText, setNodeTime, setStopButton,
} from './ui.js';

const TYPING_SEND_MS = 3000;        // at most one typing event this often
const TYPING_SHOW_MS = 4000;        // how long someone shows as typing
const MAX_CONTENT_BYTES = 4096;     // the server's default max_content
const OLDER_PAGE = 50;
const RECENT_ROOMS = 12;
const STREAM_STALL_MS = 60000;      // an agent answer silent this long is marked as stalled
const STREAM_RENDER_MS = 50;        // a streaming answer's Markdown is redone at most this often
                                    // (a reload's replay brings hundreds of chunks at once)
const PRIVATE_RESUME_TRIES = 6;     // a private answer's stream is resumed this often in a row
const CANCEL_RACE_MS = 5000;        // a refused stop this soon after the answer ended is no news

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// ?transport=sse forces the fallback (for testing); ws disables it.
const TRANSPORT = ['ws', 'sse'].includes(params.get('transport')) ? params.get('transport') : 'auto';

const app = {
  session: null,              // {user, token, kind}: kind 'open' (picked a name here) or
                              // 'given' (the application's token; '' when its cookie)
  openSignIn: true,           // the server lets anyone pick a name (/api/config)
  room: null,
  conn: null,
  log: new MessageLog($('scroller'), $('log'), $('pending')),
  members: new Set(),
  typing: new Map(),          // user → timer
  dmTarget: null,
  lastTypingSent: 0,
  olderLoading: false,
  historyComplete: false,
  historyLoaded: false,
  streams: new Map(),         // answers streaming here: request_id (a private one: a key of
                              // the page's) → {node, rid, text, lastChunk, asker, ...}
  ended: new Set(),           // request ids whose answer has ended: late chunks are dropped
  cancels: new Map(),         // request id → when this page asked to stop it
  pendingDirects: [],         // cmids of directs not yet acknowledged
  agentName: 'agent',         // the agent's name (/api/config): only its messages show as the agent's
  noticeSeq: 0,
  statusTimer: null,
};

// ---- storage -----------------------------------------------------------

function loadJson(key, fallback) {
  try {
    const v = JSON.parse(localStorage.getItem(key));
    return v === null ? fallback : v;
  } catch (err) {
    return fallback;
  }
}

function saveJson(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  } catch (err) {
    // Private mode or full storage: the page still works for this visit.
  }
}

function loadSession() {
  const s = loadJson('parley.session', null);
  if (!s || !validName(s.user) || typeof s.token !== 'string') return null;
  return { user: s.user, token: s.token, kind: s.kind === 'given' ? 'given' : 'open' };
}

function setSession(s) {
  app.session = s;
  saveJson('parley.session', s);
}

function recentRooms() {
  const rooms = loadJson('parley.rooms', []);
  return Array.isArray(rooms) ? rooms.filter(validName) : [];
}

function rememberRoom(room) {
  saveJson('parley.rooms', [room, ...recentRooms().filter((r) => r !== room)].slice(0, RECENT_ROOMS));
}

const auth = {
  get token() {
    return app.session ? app.session.token : '';
  },
  /**
   * The token was refused.  A name picked here is signed in again; a token
   * the application gave cannot be renewed here: the person is told so.
   */
  async renew() {
    if (!app.session || app.session.kind !== 'open') {
      signedOut('Your session has ended. Open the chat from your application again.');
      throw new ApiError(401, 'session_ended', 'the session has ended');
    }
    try {
      const s = await createSession(app.session.user);
      setSession({ user: s.user, token: s.token, kind: 'open' });
    } catch (err) {
      if (err.status !== 0) showLogin(`Please sign in again: ${err.message}`);
      throw err;
    }
  },
};

// ---- sign-in -----------------------------------------------------------

function roomFromLocation() {
  const h = decodeURIComponent(location.hash.replace(/^#/, ''));
  return validName(h) ? h : null;
}

/**
 * The application hands a token over in the fragment, which browsers never
 * send to a server: "#token=T" or "#room=R&token=T".  It is taken out of
 * the address bar at once (and so out of the history).
 */
function takeHandoff() {
  const h = location.hash.replace(/^#/, '');
  if (!h.includes('token=')) return {};
  const q = new URLSearchParams(h);
  const room = validName(q.get('room')) ? q.get('room') : null;
  history.replaceState(null, '', `${location.pathname}${location.search}${room ? '#' + room : ''}`);
  return { token: q.get('token') || '', room };
}

/** Without open sign-in there is no name to pick here. */
function signedOut(message) {
  showLogin(message);
}

function showLogin(message = '') {
  leaveRoom();
  $('chat').hidden = true;
  $('login').hidden = false;
  $('login-fields').hidden = !app.openSignIn;
  $('login-submit').hidden = !app.openSignIn;
  $('login-closed').hidden = app.openSignIn;
  const last = loadJson('parley.lastUser', '');
  if (!$('login-name').value && typeof last === 'string') $('login-name').value = last;
  const room = roomFromLocation() || recentRooms()[0];
  if (room) $('login-room').value = room;
  $('login-error').textContent = message;
  if (app.openSignIn) $('login-name').focus();
}

async function onLogin(ev) {
  ev.preventDefault();
  const name = $('login-name').value.trim();
  const room = $('login-room').value.trim();
  if (!validName(name)) {
    $('login-error').textContent = 'Pick a name of 1–64 letters, digits, “_”, “.” or “-”.';
    return;
  }
  if (!validName(room)) {
    $('login-error').textContent = 'Room names are 1–64 letters, digits, “_”, “.” or “-”.';
    return;
  }
  $('login-submit').disabled = true;
  $('login-error').textContent = '';
  try {
    const s = await createSession(name);
    setSession({ user: s.user, token: s.token, kind: 'open' });
    saveJson('parley.lastUser', s.user);
    enterRoom(room);
  } catch (err) {
    $('login-error').textContent = err.status === 0 ? 'The server cannot be reached; try again in a moment.'
      : err.status === 409 ? `The name “${name}” is in use right now; pick another.`
        : `Could not sign in: ${err.message}`;
  } finally {
    $('login-submit').disabled = false;
  }
}

function logout() {
  // Signing out ends the session on the server too, so the name is free.
  if (app.session) endSession(app.session.token).catch(() => {});
  setSession(null);
  showLogin(app.openSignIn ? '' : 'You have left the chat. Open it from your application to come back.');
}

// ---- rooms -------------------------------------------------------------

function leaveRoom() {
  if (app.conn) app.conn.stop();
  app.conn = null;
  clearInterval(app.statusTimer);
  for (const t of app.typing.values()) clearTimeout(t);
  app.typing.clear();
  for (const s of app.streams.values()) {
    clearTimeout(s.timer);
    clearTimeout(s.retryTimer);
    clearTimeout(s.renderTimer);
    if (s.source) s.source.close();
  }
  app.streams.clear();
  app.ended.clear();
  app.cancels.clear();
  app.members.clear();
  app.pendingDirects = [];
  app.log.clear();
  app.historyComplete = false;
  app.historyLoaded = false;
  app.olderLoading = false;
  setDmTarget(null);
}

function enterRoom(room) {
  leaveRoom();
  app.room = room;
  rememberRoom(room);
  if (roomFromLocation() !== room) history.replaceState(null, '', `${location.pathname}${location.search}#${room}`);
  document.title = `#${room} · parley`;
  $('login').hidden = true;
  $('chat').hidden = false;
  $('room-name').textContent = room;
  $('me-name').textContent = app.session.user;
  $('side-me-name').textContent = app.session.user;
  for (const id of ['logout', 'side-logout']) $(id).textContent = app.session.kind === 'open' ? 'change name' : 'sign out';
  $('input').placeholder = `Message #${room}`;
  $('input').title = 'Enter sends, Shift+Enter starts a new line, /ask … asks the agent';
  renderRooms($('rooms'), recentRooms(), room, switchRoom);
  app.members = new Set([app.session.user]);
  renderPresence();
  renderTyping($('typing'), []);
  updateHistoryState();
  openSidebar(false);

  const conn = new RoomConnection({ room, user: app.session.user, auth, transport: TRANSPORT });
  app.conn = conn;
  conn.on('state', onState)
    .on('welcome', (w) => {
      app.members = new Set(w.members || []);
      app.members.add(app.session.user);
      renderPresence();
    })
    .on('messages', onMessages)
    .on('message', (m) => withScroll(() => addMessage(m), m.from === app.session.user))
    .on('delivered', onDelivered)
    .on('failed', ({ cmid, reason }) => {
      const node = app.log.get(`p:${cmid}`);
      if (node) setNodeState(node, `failed: ${reason}`);
    })
    .on('presence', onPresence)
    .on('typing', onTyping)
    .on('direct', onDirect)
    .on('ack', onDirectAck)
    .on('ai_chunk', onAiChunk)
    .on('ai_done', onAiDone)
    .on('error', onServerError)
    .on('reset', () => notice('Some older messages are no longer kept and could not be loaded.', 'warn'))
    .on('notice', ({ text, quiet }) => {
      if (!quiet) notice(text);
    });
  for (const item of conn.pending()) addPendingMessage(item, 'queued');
  app.statusTimer = setInterval(() => {
    if (app.conn && app.conn.state === 'waiting') renderStatus($('status'), app.conn);
  }, 500);
  conn.start();
  $('input').focus();
}

function switchRoom(room) {
  if (room !== app.room) enterRoom(room);
  else openSidebar(false);
}

function onJoin(ev) {
  ev.preventDefault();
  const room = $('join-room').value.trim();
  if (!validName(room)) {
    $('join-error').textContent = 'Room names are 1–64 letters, digits, “_”, “.” or “-”.';
    return;
  }
  $('join-error').textContent = '';
  $('join-room').value = '';
  switchRoom(room);
}

// ---- connection state ----------------------------------------------------

function onState(s) {
  renderStatus($('status'), s);
  $('retry-now').hidden = s.state !== 'waiting';
  // Pending messages say whether they are going out or waiting.
  const label = s.state === 'online' ? 'sending' : 'queued';
  for (const item of app.conn.pending()) {
    const node = app.log.get(`p:${item.cmid}`);
    if (node && !node.classList.contains('failed')) setNodeState(node, label);
  }
  const live = s.mode === 'ws';
  $('members-hint').textContent = live ? 'Pick a name to send a direct message.'
    : 'Without WebSocket this list shows who joined since you came; direct messages need WebSocket.';
  if (s.state !== 'online') {
    for (const t of app.typing.values()) clearTimeout(t);
    app.typing.clear();
    renderTyping($('typing'), []);
  }
}

// ---- the log -----------------------------------------------------------

/** Runs FN; keeps the view at the bottom if it was there (or FORCE). */
function withScroll(fn, force = false) {
  const stick = force || app.log.nearBottom();
  fn();
  if (stick) app.log.scrollToBottom();
  else if (!app.log.nearBottom()) $('jump').hidden = false;
}

/** A sort key just after the newest entry, for local entries (notices, streams). */
function sortAfterNewest() {
  const last = $('log').lastElementChild;
  if (!last) return '0-1';
  const [ms, seq] = last.dataset.sort.split('-');
  return `${ms}-${Number(seq) + 0.001}`;
}

function notice(text, level = 'info') {
  withScroll(() => {
    app.noticeSeq += 1;
    app.log.place(`n:${app.noticeSeq}`, noticeNode(text, level), sortAfterNewest());
  });
}

function isAgent(name) {
  return name === app.agentName;
}

/** How an answer ended, as a node state: complete shows nothing. */
function answerState(status) {
  return { cancelled: 'stopped', incomplete: 'incomplete' }[status];
}

/**
 * A stored message: shown once, whatever path it came by (live, a resume's
 * replay, HTTP history).  An answer of the agent (it has a request_id)
 * replaces its streamed text on screen, before or after its ai_done.
 */
function addMessage(m) {
  if (!m || typeof m.id !== 'string') return;
  const key = `m:${m.id}`;
  stopTyping(m.from);
  // Only the agent's own messages are answers: anyone can post its words.
  const rid = isAgent(m.from) && typeof m.request_id === 'string' ? m.request_id : null;
  if (rid) app.ended.add(rid);
  const existing = app.log.get(key);
  if (existing) {
    // A streamed answer that ai_done made this message: the stored text is final.
    if (existing.dataset.request) {
      setNodeText(existing, m.content);
      setNodeTime(existing, m.ts);
      setNodeState(existing, answerState(m.status));
    }
    return;
  }
  const s = rid ? app.streams.get(rid) : undefined;
  if (s && !s.private) {
    endStream(rid, s);
    adoptStream(rid, s, m.id, m);
    return;
  }
  const node = messageNode({ from: m.from, content: m.content, ts: m.ts,
    mine: m.from === app.session.user, agent: isAgent(m.from), state: rid ? answerState(m.status) : undefined });
  node.dataset.stored = '1';
  if (rid) node.dataset.request = rid;
  app.log.place(key, node, m.id);
}

function onMessages({ messages, initial, complete }) {
  const first = !app.historyLoaded;
  withScroll(() => messages.forEach(addMessage), first);
  if (initial) {
    app.historyLoaded = true;
    app.historyComplete = complete;
    updateHistoryState();
  }
}

function addPendingMessage(item, state) {
  const node = messageNode({ from: app.session.user, content: item.content, ts: item.ts, mine: true, state });
  app.log.addPending(`p:${item.cmid}`, node);
}

function onDelivered({ cmid, id }) {
  const key = `p:${cmid}`;
  if (!app.log.has(key)) return;
  if (app.log.has(`m:${id}`)) {
    app.log.remove(key);            // the broadcast came first
    return;
  }
  withScroll(() => {
    const node = app.log.rekey(key, `m:${id}`, id);
    node.dataset.stored = '1';
    setNodeState(node, undefined);
  });
}

async function loadOlder() {
  if (app.olderLoading || app.historyComplete || !app.historyLoaded || !app.conn) return;
  const before = app.log.oldestId();
  if (!before) {
    app.historyComplete = true;
    updateHistoryState();
    return;
  }
  const room = app.room;
  app.olderLoading = true;
  updateHistoryState();
  try {
    let messages;
    try {
      messages = await fetchMessages(auth.token, room, { before, limit: OLDER_PAGE });
    } catch (err) {
      if (err.status !== 401) throw err;
      await auth.renew();
      messages = await fetchMessages(auth.token, room, { before, limit: OLDER_PAGE });
    }
    if (room !== app.room) return;
    const scroller = $('scroller');
    const height = scroller.scrollHeight;
    messages.forEach(addMessage);
    scroller.scrollTop += scroller.scrollHeight - height;   // keep what the reader looks at in place
    if (messages.length < OLDER_PAGE) app.historyComplete = true;
  } catch (err) {
    if (room === app.room) notice(`Could not load older messages: ${err.message}`, 'error');
  } finally {
    if (room === app.room) {
      app.olderLoading = false;
      updateHistoryState();
    }
  }
}

function updateHistoryState() {
  const button = $('load-older');
  const label = $('history-label');
  if (!app.historyLoaded || app.olderLoading) {
    button.hidden = true;
    label.textContent = 'loading…';
  } else if (app.historyComplete) {
    button.hidden = true;
    label.textContent = `This is the beginning of #${app.room}.`;
  } else {
    button.hidden = false;
    label.textContent = '';
  }
}

function onScroll() {
  const scroller = $('scroller');
  if (scroller.scrollTop < 120) loadOlder();
  if (app.log.nearBottom()) $('jump').hidden = true;
}

// ---- presence and typing -------------------------------------------------

function renderPresence() {
  renderMembers($('members'), app.members, app.session.user, (name) => {
    setDmTarget(name);
    openSidebar(false);
  });
  $('member-count').textContent = String(app.members.size);
}

function onPresence(p) {
  if (p.event === 'join') app.members.add(p.user);
  else if (p.event === 'leave' && p.user !== app.session.user) {
    app.members.delete(p.user);
    stopTyping(p.user);
    if (app.dmTarget === p.user) setDmTarget(null);
  }
  renderPresence();
}

function onTyping({ user }) {
  if (!user || user === app.session.user) return;
  clearTimeout(app.typing.get(user));
  app.typing.set(user, setTimeout(() => stopTyping(user), TYPING_SHOW_MS));
  renderTyping($('typing'), app.typing.keys());
}

function stopTyping(user) {
  if (!app.typing.has(user)) return;
  clearTimeout(app.typing.get(user));
  app.typing.delete(user);
  renderTyping($('typing'), app.typing.keys());
}

function onInput() {
  const input = $('input');
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  const now = Date.now();
  if (input.value.trim() && app.conn && app.conn.live && now - app.lastTypingSent > TYPING_SEND_MS) {
    app.lastTypingSent = now;
    app.conn.send({ type: 'typing' });
  }
}

// ---- direct messages -----------------------------------------------------

function setDmTarget(name) {
  app.dmTarget = name;
  $('dm-target').hidden = !name;
  $('dm-name').textContent = name || '';
  $('composer').classList.toggle('direct', Boolean(name));
  if (name) $('input').focus();
}

function sendDirect(to, content) {
  if (!app.conn.live) {
    notice('Direct messages need a live WebSocket connection; try again when online.', 'warn');
    return false;
  }
  const cmid = newClientMsgId();
  app.conn.send({ type: 'direct', to, content, client_msg_id: cmid });
  app.pendingDirects.push(cmid);
  withScroll(() => app.log.addPending(`pd:${cmid}`,
    messageNode({ kind: 'direct-out', to, content, ts: Date.now(), mine: true, state: 'sending' })), true);
  return true;
}

function onDirect(d) {
  if (typeof d.id !== 'string') return;
  const mine = d.from === app.session.user;
  if (app.log.has(`d:${d.id}`)) return;
  withScroll(() => app.log.place(`d:${d.id}`, messageNode({ kind: mine ? 'direct-out' : 'direct-in',
    from: d.from, to: d.to, content: d.content, ts: d.ts, mine }), d.id));
}

function onDirectAck({ client_msg_id: cmid, id }) {
  const i = app.pendingDirects.indexOf(cmid);
  if (i < 0) return;
  app.pendingDirects.splice(i, 1);
  if (app.log.has(`d:${id}`)) {
    app.log.remove(`pd:${cmid}`);
    return;
  }
  const node = app.log.rekey(`pd:${cmid}`, `d:${id}`, id);
  if (node) setNodeState(node, undefined);
}

// ---- the agent -----------------------------------------------------------

function askAgent(question) {
  if (app.conn.live) {
    app.conn.send({ type: 'ask', content: question });
    showQuestion(question, false);
    return true;
  }
  if (app.conn.state === 'online') {
    askOverHttp(question);          // SSE fallback: a private answer stream
    return true;
  }
  notice('The agent can be asked once the connection is back.', 'warn');
  return false;
}

function showQuestion(question, isPrivate) {
  app.noticeSeq += 1;
  const node = messageNode({ kind: 'question', from: app.session.user, content: question, ts: Date.now(), mine: true });
  node.querySelector('.from').after(el('span', { class: 'tag', text: isPrivate ? 'asked the agent privately' : 'asked the agent' }));
  withScroll(() => app.log.place(`q:${app.noticeSeq}`, node, sortAfterNewest()), true);
}

/**
 * The node of an answer being streamed, made at its first chunk: placed at
 * that chunk's id, so that a page reloaded mid-answer shows it where it
 * was.  ASKER (who asked it) gets a stop button.
 */
function streamNode(key, { rid = key, isPrivate = false, sort = null, asker = null } = {}) {
  let s = app.streams.get(key);
  if (s) return s;
  const ts = sort ? Number(sort.split('-')[0]) : Date.now();
  const node = messageNode({ kind: 'message', from: app.agentName, content: '', ts, agent: true, state: 'streaming' });
  node.dataset.request = rid || '';
  if (isPrivate) node.querySelector('.meta .tag').textContent = 'agent · only you see this';
  s = { key, node, rid, text: '', shown: 0, lastChunk: null, asker, private: isPrivate, source: null,
    resumeId: null, attempts: 0, timer: null, retryTimer: null, renderTimer: null, last: Date.now(),
    stalled: false, stopping: false };
  app.streams.set(key, s);
  app.log.place(`s:${key}`, node, sort || sortAfterNewest());
  if (rid && asker === app.session.user) setStopButton(node, () => stopAnswer(s));
  return s;
}

/** Adds TEXT to the answer S: shown at once, then at most every STREAM_RENDER_MS. */
function growStream(s, text) {
  s.text += text;
  s.last = Date.now();
  if (s.stalled) {
    s.stalled = false;
    setNodeState(s.node, s.stopping ? 'stopping' : 'streaming');
  }
  if (s.renderTimer === null) renderStream(s);
}

function renderStream(s) {
  setNodeText(s.node, s.text);
  s.shown = s.text.length;
  s.renderTimer = setTimeout(() => {
    s.renderTimer = null;
    if (s.shown !== s.text.length) withScroll(() => renderStream(s));
  }, STREAM_RENDER_MS);
}

/**
 * A chunk of an answer in the room: live, replayed after the welcome of a
 * fresh join (the answer so far), or after a resume.  Each is applied once:
 * its id is after the last one applied, or it is a repeat.
 */
function onAiChunk({ id, request_id: rid, asker, content }) {
  if (typeof rid !== 'string' || typeof content !== 'string' || app.ended.has(rid)) return;
  const chunkId = typeof id === 'string' ? id : null;
  const known = app.streams.get(rid);
  if (known && chunkId && known.lastChunk && compareIds(chunkId, known.lastChunk) <= 0) return;
  withScroll(() => {
    const s = known || streamNode(rid, { sort: chunkId, asker: typeof asker === 'string' ? asker : null });
    if (chunkId) s.lastChunk = chunkId;
    growStream(s, content);
    watchStream(rid, s);
  });
}

/**
 * An answer silent this long is marked (the server ends a failed one with
 * ai_done, but a page can lose track); more text takes the mark away.
 */
function watchStream(key, s) {
  clearTimeout(s.timer);
  s.timer = setTimeout(() => {
    if (app.streams.get(key) !== s) return;
    s.stalled = true;
    setNodeState(s.node, 'failed: the answer stopped');
  }, STREAM_STALL_MS);
}

/** The answer KEY is over here: its text all shown; no more chunks, timers or stop button. */
function endStream(key, s) {
  clearTimeout(s.timer);
  clearTimeout(s.retryTimer);
  clearTimeout(s.renderTimer);
  s.renderTimer = null;
  if (s.shown !== s.text.length) setNodeText(s.node, s.text);
  if (s.source) s.source.close();
  s.source = null;
  app.streams.delete(key);
  setStopButton(s.node, null);
}

/** The stream RID became the stored message ID (M when it is known). */
function adoptStream(rid, s, id, m) {
  const node = app.log.rekey(`s:${rid}`, `m:${id}`, id);
  node.dataset.stored = '1';
  setNodeState(node, m ? answerState(m.status) : undefined);
  if (m) {
    setNodeText(node, m.content);
    setNodeTime(node, m.ts);
  }
}

/** The end of an answer: ID is its stored message (null: it had no text), STATUS how it ended. */
function onAiDone({ request_id: rid, id, status }) {
  if (typeof rid !== 'string') return;
  app.ended.add(rid);
  const s = app.streams.get(rid);
  if (!s || s.private) return;      // not seen streaming here: its stored message shows it
  endStream(rid, s);
  if (typeof id !== 'string') {
    if (s.text) setNodeState(s.node, answerState(status) || 'incomplete');
    else app.log.remove(`s:${rid}`);
    return;
  }
  if (app.log.get(`m:${id}`)) {
    app.log.remove(`s:${rid}`);     // the stored message is on screen already
    return;
  }
  // The stored message comes next: until then the streamed text stands for it.
  withScroll(() => adoptStream(rid, s, id, null));
  setNodeState(s.node, answerState(status));
}

/**
 * The asker stops answer S: over the WebSocket when there is one, else
 * over HTTP; a private answer over HTTP.  Everyone then gets its end as
 * "cancelled" (the stop button went with the click).
 */
async function stopAnswer(s) {
  if (s.stopping || app.streams.get(s.key) !== s) return;
  s.stopping = true;
  setNodeState(s.node, 'stopping');
  app.cancels.set(s.rid, Date.now());
  try {
    if (s.private) await withToken((token) => cancelPrivateAnswer(token, s.rid));
    else if (!app.conn.send({ type: 'cancel', request_id: s.rid })) {
      const room = app.room;
      await withToken((token) => cancelAnswer(token, room, s.rid));
    }
  } catch (err) {
    if (err.status === 404 || app.streams.get(s.key) !== s) return;   // it ended meanwhile
    s.stopping = false;
    setNodeState(s.node, 'streaming');
    setStopButton(s.node, () => stopAnswer(s));
    notice(`Could not stop the answer: ${err.message}`, 'error');
  }
}

/** FN(token), once more with a new session if the token was refused. */
async function withToken(fn) {
  try {
    return await fn(auth.token);
  } catch (err) {
    if (err.status !== 401) throw err;
    await auth.renew();
    return fn(auth.token);
  }
}

/**
 * Without a WebSocket the agent answers on a stream of its own, seen by the
 * asker alone.  Its chunks carry ids ("<rid>/<stream id>"): when the stream
 * breaks, the rest is asked for from the last one with a new ticket (a
 * ticket is used up once, so the browser's own reconnect is refused).
 */
function askOverHttp(question) {
  showQuestion(question, true);
  const key = `http-${newClientMsgId()}`;
  const s = streamNode(key, { rid: null, isPrivate: true, asker: app.session.user });
  followPrivate(key, s, question);
}

async function followPrivate(key, s, question) {
  let ticket = null;
  try {
    ticket = await createTicket(auth.token);
  } catch (err) {
    // The server is out of reach: as a broken stream, below.
  }
  if (app.streams.get(key) !== s) return;         // ended, or the room was left
  if (ticket === null) {
    privateBroken(key, s, question);
    return;
  }
  const source = new EventSource(askStreamUrl(question, ticket, s.resumeId));
  s.source = source;
  const finish = (state) => {
    endStream(key, s);
    setNodeState(s.node, state);
  };
  const data = (ev) => {
    try {
      return JSON.parse(ev.data);
    } catch (err) {
      return null;
    }
  };
  source.addEventListener('ai_chunk', (ev) => {
    const d = data(ev);
    if (s.source !== source || !d || typeof d.content !== 'string') return;
    const chunkId = ev.lastEventId.split('/')[1];
    if (chunkId && s.lastChunk && compareIds(chunkId, s.lastChunk) <= 0) return;
    if (chunkId) {
      s.lastChunk = chunkId;
      s.resumeId = ev.lastEventId;
    }
    s.attempts = 0;
    if (!s.rid && typeof d.request_id === 'string') {
      s.rid = d.request_id;
      s.node.dataset.request = s.rid;
      setStopButton(s.node, () => stopAnswer(s));
    }
    withScroll(() => growStream(s, d.content));
  });
  source.addEventListener('ai_done', (ev) => {
    const d = data(ev);
    if (s.source === source) finish(answerState(d && d.status));
  });
  source.addEventListener('error', (ev) => {
    if (s.source !== source) return;
    if (typeof ev.data === 'string') {
      // The server's "event: error": the answer ended without ai_done.
      const d = data(ev) || {};
      if (s.text) finish('incomplete');
      else finish(`failed: ${ERROR_TEXT[d.code] || d.message || 'the agent is not reachable'}`);
      return;
    }
    // The connection broke (or the browser's reconnect was refused).
    source.close();
    s.source = null;
    privateBroken(key, s, question);
  });
}

/** The private stream S broke: resume it from its last chunk, a few times, else give up. */
function privateBroken(key, s, question) {
  if (!s.resumeId || s.attempts >= PRIVATE_RESUME_TRIES) {
    endStream(key, s);
    setNodeState(s.node, s.text ? 'failed: the answer was cut off' : 'failed: the agent is not reachable');
    return;
  }
  s.attempts += 1;
  const delay = Math.min(8000, 500 * 2 ** (s.attempts - 1));
  s.retryTimer = setTimeout(() => {
    if (app.streams.get(key) === s) followPrivate(key, s, question);
  }, delay / 2 + (Math.random() * delay) / 2);
}

// ---- errors from the server ------------------------------------------------

const ERROR_TEXT = {
  user_offline: 'That person is not connected any more.',
  rate_limited: 'Slow down: messages are being sent too fast.',
  too_large: 'That message is too long.',
  agent_busy: 'The agent is busy; ask again in a moment.',
  agent_timeout: 'The agent took too long to answer.',
  agent_unavailable: 'The agent is not available.',
  redis_unavailable: 'The server cannot store messages right now.',
};

function onServerError({ code, message }) {
  if (code === 'user_offline' && app.pendingDirects.length) {
    const cmid = app.pendingDirects.shift();
    const node = app.log.get(`pd:${cmid}`);
    if (node) setNodeState(node, 'failed: not delivered, they are offline');
  }
  // An answer's failure ends it for everyone with ai_done (and its message):
  // the error, the asker's alone, only says why.  A stop that came too late
  // (the answer had just ended) is refused: that is no news.
  if (code === 'bad_request' && stopCameTooLate()) return;
  const base = ERROR_TEXT[code] || 'The server refused that.';
  notice(message ? `${base} (${message})` : base, 'error');
}

function stopCameTooLate() {
  const now = Date.now();
  for (const [rid, at] of app.cancels) {
    if (now - at > CANCEL_RACE_MS) app.cancels.delete(rid);
    else if (app.ended.has(rid)) {
      app.cancels.delete(rid);
      return true;
    }
  }
  return false;
}

// ---- composing -------------------------------------------------------------

function contentTooLong(text) {
  return new TextEncoder().encode(text).length > MAX_CONTENT_BYTES;
}

function submit(asAsk) {
  const input = $('input');
  const text = input.value;
  if (!text.trim() || !app.conn) return;
  if (contentTooLong(text)) {
    notice(`Messages are limited to ${MAX_CONTENT_BYTES} bytes.`, 'error');
    return;
  }
  let ok;
  const ask = text.match(/^\/ask\s+([\s\S]+)$/);
  if (asAsk || ask) ok = askAgent(ask ? ask[1].trim() : text.trim());
  else if (app.dmTarget) ok = sendDirect(app.dmTarget, text);
  else {
    const item = app.conn.enqueue(text);
    withScroll(() => addPendingMessage(item, app.conn.state === 'online' ? 'sending' : 'queued'), true);
    ok = true;
  }
  if (ok) {
    input.value = '';
    input.style.height = 'auto';
    app.lastTypingSent = 0;
  }
  input.focus();
}

function onKeyDown(ev) {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    submit(false);
  } else if (ev.key === 'Escape' && app.dmTarget) {
    setDmTarget(null);
  }
}

// ---- layout ----------------------------------------------------------------

function openSidebar(open) {
  document.body.classList.toggle('side-open', open);
  $('toggle-side').setAttribute('aria-expanded', String(open));
  $('backdrop').hidden = !open;
}

// ---- start -----------------------------------------------------------------

function start() {
  $('login-form').addEventListener('submit', onLogin);
  $('join-form').addEventListener('submit', onJoin);
  $('logout').addEventListener('click', logout);
  $('side-logout').addEventListener('click', logout);
  $('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit(false);
  });
  $('ask').addEventListener('click', () => submit(true));
  $('input').addEventListener('keydown', onKeyDown);
  $('input').addEventListener('input', onInput);
  $('dm-cancel').addEventListener('click', () => setDmTarget(null));
  $('scroller').addEventListener('scroll', onScroll, { passive: true });
  $('load-older').addEventListener('click', loadOlder);
  $('jump').addEventListener('click', () => {
    app.log.scrollToBottom();
    $('jump').hidden = true;
  });
  $('retry-now').addEventListener('click', () => app.conn && app.conn.reconnectNow());
  $('toggle-side').addEventListener('click', () => openSidebar(!document.body.classList.contains('side-open')));
  $('backdrop').addEventListener('click', () => openSidebar(false));
  window.addEventListener('online', () => app.conn && app.conn.reconnectNow());
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && app.conn) app.conn.reconnectNow();
  });
  window.addEventListener('hashchange', () => {
    if (location.hash.includes('token=')) {
      signIn();
      return;
    }
    const room = roomFromLocation();
    if (room && app.session && room !== app.room) enterRoom(room);
  });

  signIn();
}

/**
 * Who the person is: a token the application handed over, a session kept
 * from before, or the application's parley_token cookie; failing those, a
 * name picked here - if the server offers open sign-in.
 */
async function signIn() {
  const handoff = takeHandoff();
  const room = handoff.room || roomFromLocation() || recentRooms()[0] || 'lobby';
  try {
    const config = await getConfig();
    app.openSignIn = config.open_sessions === true;
    if (validName(config.agent_name)) app.agentName = config.agent_name;
  } catch (err) {
    app.openSignIn = true;      // unreachable now: the form says so when used
  }
  if (handoff.token !== undefined) {
    try {
      const who = await whoAmI(handoff.token);
      setSession({ user: who.user, token: handoff.token, kind: 'given' });
    } catch (err) {
      setSession(null);
      signedOut(`The link's sign-in was refused (${err.message}). Open the chat from your application again.`);
      return;
    }
  }
  if (!app.session) app.session = loadSession();
  if (!app.session) {
    try {
      const who = await whoAmI();
      setSession({ user: who.user, token: '', kind: 'given' });
    } catch (err) {
      // No cookie either.
    }
  }
  if (app.session) enterRoom(room);
  else showLogin(app.openSignIn ? '' : 'This chat is opened from your application, which signs you in.');
}

start();

