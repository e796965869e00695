// api.js - parley's HTTP API: sessions, history, publishing, stopping the
// agent's answers, and the URLs of the WebSocket, the room's event stream
// and the agent's private answer stream.

const REQUEST_TIMEOUT_MS = 10000;

/** A failed API call: status 0 means the server could not be reached. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = 0) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** Room and user names: 1..64 of [A-Za-z0-9_.-], not "." or "..". */
export function validName(name) {
  return typeof name === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(name) && name !== '.' && name !== '..';
}

/** Orders Redis stream ids ("<ms>-<seq>"); negative when a comes first. */
export function compareIds(a, b) {
  const [am, as = '0'] = a.split('-');
  const [bm, bs = '0'] = b.split('-');
  return (Number(am) - Number(bm)) || (Number(as) - Number(bs));
}

/** A random client_msg_id (crypto.getRandomValues works outside secure contexts too). */
export function newClientMsgId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return 'c' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function request(method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      signal: abort.signal,
    });
  } catch (err) {
    throw new ApiError(0, 'unreachable', 'the server could not be reached');
  } finally {
    clearTimeout(timer);
  }
  let doc = null;
  try {
    doc = await resp.json();
  } catch (err) {
    doc = null;
  }
  if (!resp.ok) {
    const e = (doc && doc.error) || {};
    const retry = Number(resp.headers.get('Retry-After')) || 0;
    throw new ApiError(resp.status, e.code || 'http_' + resp.status, e.message || resp.statusText, retry);
  }
  return doc;
}

/** POST /api/sessions → {token, user, expires_in} (open sign-in). */
export function createSession(user) {
  return request('POST', '/api/sessions', { body: { user } });
}

/**
 * GET /api/sessions/current → {user, kind, expires_in}: who TOKEN is, or
 * - without a token - who the parley_token cookie is.
 */
export function whoAmI(token) {
  return request('GET', '/api/sessions/current', { token });
}

/** DELETE /api/sessions/current: ends the session (and frees its name). */
export function endSession(token) {
  return request('DELETE', '/api/sessions/current', { token });
}

/** GET /api/config → {open_sessions, agent_name, max_content, ...}. */
export function getConfig() {
  return request('GET', '/api/config');
}

/** GET /api/rooms/{room}/messages → messages, oldest first. */
export async function fetchMessages(token, room, { before, after, limit } = {}) {
  const q = new URLSearchParams();
  if (before) q.set('before', before);
  if (after) q.set('after', after);
  if (limit) q.set('limit', String(limit));
  const doc = await request('GET', `/api/rooms/${encodeURIComponent(room)}/messages?${q}`, { token });
  return (doc && doc.messages) || [];
}

/** POST /api/rooms/{room}/messages → the stored message's id. */
export async function postMessage(token, room, content, clientMsgId) {
  const body = { content };
  if (clientMsgId) body.client_msg_id = clientMsgId;
  const doc = await request('POST', `/api/rooms/${encodeURIComponent(room)}/messages`, { token, body });
  return doc.id;
}

/**
 * POST /api/tickets → a single-use ticket that stands for TOKEN (or, without
 * one, the parley_token cookie) for 30 s.  Browsers cannot put a token in
 * the headers of a WebSocket or an EventSource, and a token in a URL ends
 * up in the logs of every proxy on the way: a used-up ticket does no harm
 * there.
 */
export async function createTicket(token) {
  return (await request('POST', '/api/tickets', { token })).ticket;
}

/**
 * DELETE /api/rooms/{room}/answers/{rid}: the asker stops an answer in the
 * room (everyone then gets it as "cancelled").  404 when it has ended.
 */
export function cancelAnswer(token, room, rid) {
  return request('DELETE', `/api/rooms/${encodeURIComponent(room)}/answers/${encodeURIComponent(rid)}`, { token });
}

/** DELETE /api/chat/answers/{rid}: stops one's own private answer. */
export function cancelPrivateAnswer(token, rid) {
  return request('DELETE', `/api/chat/answers/${encodeURIComponent(rid)}`, { token });
}

/**
 * The room's WebSocket.  With LASTID (the newest event the page has seen)
 * the server first sends everything stored after it - messages and the
 * chunks of answers - or a reset when it no longer knows that id.
 */
export function wsUrl(room, ticket, lastId) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = new URLSearchParams({ ticket });
  if (lastId) q.set('last_event_id', lastId);
  return `${scheme}//${location.host}/ws/chat/${encodeURIComponent(room)}?${q}`;
}

export function eventsUrl(room, ticket, lastId) {
  const q = new URLSearchParams({ ticket });
  if (lastId) q.set('last_event_id', lastId);
  return `/api/rooms/${encodeURIComponent(room)}/events?${q}`;
}

/**
 * The agent's private answer to QUERY; or, with LASTEVENTID ("<rid>/<id>",
 * the id of the last chunk received), the rest of that answer - nothing is
 * asked again.
 */
export function askStreamUrl(query, ticket, lastEventId) {
  const q = new URLSearchParams({ ticket });
  if (lastEventId) q.set('last_event_id', lastEventId);
  else q.set('query', query);
  return `/api/chat/stream?${q}`;
}
