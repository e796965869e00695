// connection.js - one room's live connection: WebSocket first, SSE + HTTP
// POST when the WebSocket cannot connect; reconnects with exponential
// backoff and jitter, resuming from the newest event seen (the server sends
// what was missed, the chunks of an answer in progress too), and keeps an
// outbox of messages that are sent (once, by client_msg_id) when the
// connection is back.

import {
  compareIds, createTicket, eventsUrl, fetchMessages, newClientMsgId, postMessage, wsUrl,
} from './api.js';

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 10000;
const WELCOME_TIMEOUT_MS = 8000;
const WS_FAILURES_BEFORE_SSE = 2;   // failed WebSockets while HTTP works
const RESEND_AFTER_MS = 5000;       // an unacknowledged message is sent again
const CATCHUP_PAGE = 200;
const INITIAL_PAGE = 50;
const SSE_TYPES = ['message', 'presence', 'typing', 'direct', 'ai_chunk', 'ai_done', 'reset', 'error'];

/**
 * Events (conn.on(type, fn)):
 *   state     {state: 'connecting'|'online'|'offline'|'waiting', mode: 'ws'|'sse', retryAt}
 *   welcome   the WebSocket welcome ({members, last_id, ...}), or null over SSE
 *   messages  {messages, initial, complete}: stored messages fetched over HTTP
 *   delivered {cmid, id}: an outbox message was stored under id
 *   failed    {cmid, reason}: an outbox message was refused and dropped
 *   reset     the resume point was lost (history trimmed): what was missed
 *             comes over HTTP, messages only
 *   notice    {text}
 *   and every server event by its type: message, presence, typing, direct,
 *   ai_chunk, ai_done, ack, error.  A message or chunk may come twice (a
 *   resume overlaps what HTTP brought): the page keeps one by its id.
 *
 * auth is {token, renew()}: renew() gets a new session when the token is refused.
 */
export class RoomConnection {
  constructor({ room, user, auth, transport = 'auto' }) {
    this.room = room;
    this.user = user;
    this.auth = auth;
    this.transport = transport;               // 'auto' | 'ws' | 'sse'
    this.mode = transport === 'sse' ? 'sse' : 'ws';
    this.state = 'idle';
    this.retryAt = 0;
    // The newest event of the room's stream seen (a message or a chunk of an
    // answer): a reconnect resumes from it.  Only ids the server gave, in
    // its order, over the live connection (or its welcome's cut): an id
    // taken from HTTP history could skip chunks not yet received.
    this.lastId = null;
    this.resumeFrom = null;                   // lastId when this connection was opened
    this.cut = null;                          // the welcome's last_id
    this.initialLoaded = false;               // the newest page of history is in
    this.attempt = 0;
    this.wsFailures = 0;
    this.generation = 0;
    this.ws = null;
    this.es = null;
    this.timer = null;
    this.resendTimer = null;
    this.posting = false;
    this.stopped = false;
    this.listeners = new Map();
    this.storeKey = `parley.outbox.${user}.${room}`;
    this.outbox = this.loadOutbox();
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
    return this;
  }

  emit(type, detail) {
    for (const fn of this.listeners.get(type) || []) {
      try {
        fn(detail);
      } catch (err) {
        console.error('parley: handler for', type, 'failed', err);
      }
    }
  }

  start() {
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.generation += 1;           // answers still on their way are dropped
    clearTimeout(this.timer);
    clearTimeout(this.resendTimer);
    this.closeTransports();
  }

  /** Skips the rest of the backoff wait (e.g. the browser came back online). */
  reconnectNow() {
    if (this.state === 'waiting') {
      this.attempt = 0;
      this.connect();
    }
  }

  /** True when typing, directs and asks can go out over the WebSocket. */
  get live() {
    return this.mode === 'ws' && this.state === 'online' && this.ws !== null;
  }

  /** Sends a WebSocket-only client message; false when that is not possible now. */
  send(obj) {
    if (!this.live) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  /** Queues a chat message; it is sent now if possible, else on reconnect. */
  enqueue(content) {
    const item = { cmid: newClientMsgId(), content, ts: Date.now(), sentAt: 0, gen: -1 };
    this.outbox.push(item);
    this.saveOutbox();
    this.flushOutbox();
    return item;
  }

  pending() {
    return this.outbox.slice();
  }

  // ---- connecting -------------------------------------------------------

  connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.closeTransports();
    this.generation += 1;
    this.resumeFrom = this.lastId;
    this.cut = null;
    this.setState('connecting');
    if (this.mode === 'ws') this.openWs();
    else this.openSse();
  }

  closeTransports() {
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
    if (this.es) {
      this.es.close();
      this.es = null;
    }
  }

  /** A ticket for the next transport, or null when this attempt is over. */
  async ticket() {
    const gen = this.generation;
    let ticket = null;
    try {
      ticket = await createTicket(this.auth.token);
    } catch (err) {
      if (!this.stopped && gen === this.generation) this.transportFailed();
      return null;
    }
    return this.stopped || gen !== this.generation ? null : ticket;
  }

  async openWs() {
    const ticket = await this.ticket();
    if (ticket === null) return;
    let ws;
    try {
      ws = new WebSocket(wsUrl(this.room, ticket, this.resumeFrom));
    } catch (err) {
      this.transportFailed();
      return;
    }
    this.ws = ws;
    let welcomed = false;
    // A handshake that hangs (a proxy that swallows upgrades) counts as a failure.
    const welcomeTimer = setTimeout(() => {
      if (!welcomed) ws.close();
    }, WELCOME_TIMEOUT_MS);
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (err) {
        return;
      }
      if (!welcomed) {
        if (msg.type !== 'welcome') return;
        welcomed = true;
        clearTimeout(welcomeTimer);
        this.wsFailures = 0;
        this.online(msg);
        return;
      }
      this.dispatch(msg);
    };
    ws.onclose = (ev) => {
      clearTimeout(welcomeTimer);
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (welcomed) {
        this.emit('notice', { text: `connection lost (${ev.code || 'network'})`, quiet: true });
        this.setState('offline');
        this.scheduleReconnect();
      } else {
        this.transportFailed();
      }
    };
  }

  async openSse() {
    const ticket = await this.ticket();
    if (ticket === null) return;
    // The ticket is used up once the stream is open: when the browser
    // reconnects by itself it is refused, and connect() starts afresh,
    // resuming from lastId.
    const es = new EventSource(eventsUrl(this.room, ticket, this.resumeFrom));
    this.es = es;
    es.onopen = () => {
      if (this.es === es) this.online(null);
    };
    es.onerror = () => {
      if (this.es !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        // Refused (401, 503...): the browser gives up; decide here.
        this.es = null;
        es.close();
        this.transportFailed();
      } else {
        // The browser reconnects by itself, sending Last-Event-ID.
        this.setState('offline');
      }
    };
    for (const type of SSE_TYPES) {
      es.addEventListener(type, (ev) => {
        if (this.es !== es || typeof ev.data !== 'string') return;
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch (err) {
          return;
        }
        this.dispatch(msg);
      });
    }
  }

  /** The transport did not come up: find out why before trying again. */
  async transportFailed() {
    const gen = this.generation;
    this.setState('offline');
    let verdict;
    try {
      await fetchMessages(this.auth.token, this.room, { limit: 1 });
      verdict = 'up';
    } catch (err) {
      verdict = err.status === 401 ? 'auth' : 'down';
    }
    if (this.stopped || gen !== this.generation) return;
    if (verdict === 'auth') {
      try {
        await this.auth.renew();
      } catch (err) {
        // The server went away meanwhile: the backoff below covers it.
      }
    } else if (verdict === 'up' && this.mode === 'ws' && this.transport === 'auto') {
      // HTTP works with this token but the WebSocket does not: blocked.
      this.wsFailures += 1;
      if (this.wsFailures >= WS_FAILURES_BEFORE_SSE) {
        this.mode = 'sse';
        this.emit('notice', { text: 'WebSocket unavailable: using server-sent events and HTTP instead' });
        this.connect();
        return;
      }
    }
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    clearTimeout(this.timer);
    // Exponential backoff with jitter: half the ceiling plus a random half.
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState('waiting');
    this.timer = setTimeout(() => this.connect(), delay);
  }

  setState(state) {
    this.state = state;
    this.emit('state', { state, mode: this.mode, retryAt: this.retryAt });
  }

  online(welcome) {
    this.attempt = 0;
    this.cut = welcome ? welcome.last_id : null;
    this.setState('online');
    if (welcome) this.emit('welcome', welcome);
    this.flushOutbox();
    // Joined afresh: up to the welcome's cut is history (HTTP), the chunks
    // of answers in progress come next on the socket, everything after it
    // live - so the cut is where a reconnect resumes until newer arrives.
    // Resumed: the server sends what was missed; nothing to fetch.
    if (!this.resumeFrom) {
      this.noteId(this.cut);
      this.loadNewest();
    } else if (!this.initialLoaded) {
      this.loadNewest();
    }
  }

  // ---- history ----------------------------------------------------------

  noteId(id) {
    if (typeof id === 'string' && (!this.lastId || compareIds(id, this.lastId) > 0)) this.lastId = id;
  }

  /** The newest page of history (the page shows each message once, whatever path it came by). */
  async loadNewest() {
    const gen = this.generation;
    try {
      const messages = await fetchMessages(this.auth.token, this.room, { limit: INITIAL_PAGE });
      if (gen !== this.generation) return;
      this.initialLoaded = true;
      this.emit('messages', { messages, initial: true, complete: messages.length < INITIAL_PAGE });
    } catch (err) {
      if (gen === this.generation) this.emit('notice', { text: 'could not load messages: ' + err.message });
    }
  }

  /** Stored messages after AFTER over HTTP, up to UNTIL (or all), a page at a time. */
  async catchUp(after, until) {
    const gen = this.generation;
    try {
      for (;;) {
        const messages = await fetchMessages(this.auth.token, this.room, { after, limit: CATCHUP_PAGE });
        if (gen !== this.generation) return;
        if (messages.length === 0) break;
        this.emit('messages', { messages, initial: false, complete: false });
        after = messages[messages.length - 1].id;
        if (messages.length < CATCHUP_PAGE || (until && compareIds(after, until) >= 0)) break;
      }
    } catch (err) {
      if (gen === this.generation) this.emit('notice', { text: 'could not load missed messages: ' + err.message });
    }
  }

  /**
   * The server no longer knows the id this connection resumed from (the
   * history was trimmed, or Redis started afresh): it sends nothing of the
   * past, only live events.  The messages missed come over HTTP as before
   * resuming existed; the chunks of an answer in progress that were missed
   * are lost, but its stored message replaces them when it ends.  From now
   * on the connection resumes from the welcome's cut (a WebSocket) or from
   * the next event (SSE).
   */
  resumeLost() {
    const from = this.resumeFrom;
    this.emit('reset', {});
    this.lastId = this.cut;
    if (from) this.catchUp(from, this.cut);
    else this.loadNewest();
  }

  // ---- incoming ---------------------------------------------------------

  dispatch(msg) {
    switch (msg.type) {
      case 'message':
      case 'ai_chunk':
        this.noteId(msg.id);
        break;
      case 'reset':
        this.resumeLost();
        return;
      case 'ack':
        if (this.takeFromOutbox(msg.client_msg_id, msg.id)) return;
        break;
      case 'error':
        if (msg.code === 'rate_limited') this.armResend(1000);
        if (msg.code === 'too_large') this.failOldestInFlight(msg.message);
        break;
      default:
        break;
    }
    this.emit(msg.type, msg);
  }

  // ---- outbox -----------------------------------------------------------

  loadOutbox() {
    try {
      const items = JSON.parse(localStorage.getItem(this.storeKey) || '[]');
      return items.filter((i) => i && typeof i.cmid === 'string' && typeof i.content === 'string')
        .map((i) => ({ cmid: i.cmid, content: i.content, ts: i.ts || Date.now(), sentAt: 0, gen: -1 }));
    } catch (err) {
      return [];
    }
  }

  saveOutbox() {
    try {
      const items = this.outbox.map(({ cmid, content, ts }) => ({ cmid, content, ts }));
      if (items.length) localStorage.setItem(this.storeKey, JSON.stringify(items));
      else localStorage.removeItem(this.storeKey);
    } catch (err) {
      // Storage full or disabled: the outbox still lives in memory.
    }
  }

  takeFromOutbox(cmid, id) {
    const i = this.outbox.findIndex((item) => item.cmid === cmid);
    if (i < 0) return false;
    this.outbox.splice(i, 1);
    this.saveOutbox();
    this.emit('delivered', { cmid, id });
    return true;
  }

  failOldestInFlight(reason) {
    const item = this.outbox.find((i) => i.sentAt);
    if (!item) return;
    this.outbox.splice(this.outbox.indexOf(item), 1);
    this.saveOutbox();
    this.emit('failed', { cmid: item.cmid, reason });
  }

  armResend(ms) {
    clearTimeout(this.resendTimer);
    this.resendTimer = setTimeout(() => {
      for (const item of this.outbox) item.sentAt = 0;
      this.flushOutbox();
    }, ms);
  }

  flushOutbox() {
    if (this.state !== 'online' || this.outbox.length === 0) return;
    if (this.mode === 'sse') {
      this.postOutbox();
      return;
    }
    const now = Date.now();
    for (const item of this.outbox) {
      // Sent on this connection and not yet overdue: wait for its ack.
      if (item.gen === this.generation && now - item.sentAt < RESEND_AFTER_MS) continue;
      // A repeat of a client_msg_id is answered with the first id: resending is safe.
      this.ws.send(JSON.stringify({ type: 'message', content: item.content, client_msg_id: item.cmid }));
      item.sentAt = now;
      item.gen = this.generation;
    }
    this.armResend(RESEND_AFTER_MS);
  }

  /** Over SSE the outbox goes out by HTTP POST, one at a time, in order. */
  async postOutbox() {
    if (this.posting) return;
    this.posting = true;
    let renewed = false;
    try {
      while (this.outbox.length && this.state === 'online' && !this.stopped) {
        const item = this.outbox[0];
        item.sentAt = Date.now();
        try {
          const id = await postMessage(this.auth.token, this.room, item.content, item.cmid);
          this.takeFromOutbox(item.cmid, id);
        } catch (err) {
          if (err.status === 401 && !renewed) {
            renewed = true;
            await this.auth.renew();
          } else if (err.status === 429) {
            await new Promise((r) => setTimeout(r, (err.retryAfter || 1) * 1000));
          } else if (err.status === 0 || err.status >= 500 || err.status === 401) {
            this.armResend(RESEND_AFTER_MS);    // try again later, same client_msg_id
            break;
          } else {
            this.outbox.shift();
            this.saveOutbox();
            this.emit('failed', { cmid: item.cmid, reason: err.message });
          }
        }
      }
    } catch (err) {
      this.armResend(RESEND_AFTER_MS);
    } finally {
      this.posting = false;
    }
  }
}
