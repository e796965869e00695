// ui.js - DOM rendering. Everything a person wrote goes in through
// textContent, never as markup; the agent's answers are Markdown, made
// safe by markdown.js.

import { compareIds } from './api.js';
import { renderMarkdown } from './markdown.js';

/** Makes an element: el('div', {class: 'x', text: 'hi', title: '..'}, child...). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function timeText(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  const today = new Date();
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toDateString() === today.toDateString() ? hm : `${d.toLocaleDateString()} ${hm}`;
}

/**
 * The message log: confirmed entries ordered by stream id, then entries
 * still pending (outbox, unacknowledged directs) in the order typed.
 * Each entry has a key ("m:<id>", "d:<id>", "p:<cmid>", "s:<request>",
 * ...) so nothing is shown twice.
 */
export class MessageLog {
  constructor(scroller, ordered, pending) {
    this.scroller = scroller;
    this.ordered = ordered;
    this.pending = pending;
    this.entries = new Map();
  }

  has(key) {
    return this.entries.has(key);
  }

  get(key) {
    return this.entries.get(key);
  }

  clear() {
    this.entries.clear();
    this.ordered.replaceChildren();
    this.pending.replaceChildren();
  }

  oldestId() {
    for (const node of this.ordered.children) {
      if (node.dataset.stored === '1') return node.dataset.sort;
    }
    return null;
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 60;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /** Puts NODE in the ordered part at stream id SORT. */
  place(key, node, sort) {
    node.dataset.key = key;
    node.dataset.sort = sort;
    const old = this.entries.get(key);
    if (old && old !== node) old.remove();
    this.entries.set(key, node);
    const first = this.ordered.firstElementChild;
    if (first && compareIds(sort, first.dataset.sort) < 0) {
      this.ordered.prepend(node);
      return node;
    }
    let after = this.ordered.lastElementChild;
    while (after && (after === node || compareIds(after.dataset.sort, sort) > 0)) {
      after = after.previousElementSibling;
    }
    if (after) after.after(node);
    else this.ordered.prepend(node);
    return node;
  }

  addPending(key, node) {
    node.dataset.key = key;
    this.entries.set(key, node);
    this.pending.append(node);
    return node;
  }

  remove(key) {
    const node = this.entries.get(key);
    if (node) {
      node.remove();
      this.entries.delete(key);
    }
  }

  /** Re-keys an entry (a pending message that got its id). */
  rekey(oldKey, newKey, sort) {
    const node = this.entries.get(oldKey);
    if (!node) return null;
    this.entries.delete(oldKey);
    return this.place(newKey, node, sort);
  }
}

/**
 * One message's element. kind: 'message' | 'direct-in' | 'direct-out' |
 * 'question'. Flags: mine, agent (the body is Markdown), state (see
 * setNodeState).
 */
export function messageNode({ kind = 'message', from, to, content, ts, mine, agent, state }) {
  const classes = ['msg', kind];
  if (mine) classes.push('mine');
  if (agent) classes.push('agent');
  const meta = el('div', { class: 'meta' });
  if (kind === 'direct-in') {
    meta.append(el('span', { class: 'tag', text: 'direct' }), el('span', { class: 'from', text: from }),
      el('span', { class: 'arrow', text: '→ you' }));
  } else if (kind === 'direct-out') {
    meta.append(el('span', { class: 'tag', text: 'direct' }), el('span', { class: 'from', text: 'you' }),
      el('span', { class: 'arrow', text: '→' }), el('span', { class: 'to', text: to }));
  } else {
    meta.append(el('span', { class: 'from', text: from }));
    if (agent) meta.append(el('span', { class: 'tag', text: 'agent' }));
  }
  meta.append(el('time', { class: 'time', text: timeText(ts) }), el('span', { class: 'state', text: '' }));
  const node = el('article', { class: classes.join(' ') }, meta, el('div', { class: agent ? 'body md' : 'body' }));
  setNodeText(node, content);
  setNodeState(node, state);
  return node;
}

/** The body's text: the agent's as Markdown, anyone else's as it is. */
export function setNodeText(node, content) {
  const body = node.querySelector('.body');
  if (body.classList.contains('md')) renderMarkdown(body, content);
  else body.textContent = content;
}

export function setNodeTime(node, ts) {
  node.querySelector('.time').textContent = timeText(ts);
}

const STATE_LABELS = {
  queued: 'waiting for connection',
  sending: 'sending…',
  streaming: 'typing…',
  stopping: 'stopping…',
  stopped: 'stopped',
  incomplete: 'incomplete',
};

/**
 * state: undefined | 'queued' | 'sending' | 'streaming' | 'stopping' (an
 * answer still streaming: its end is asked for) | 'stopped' | 'incomplete'
 * (how an answer ended short) | 'failed: ...'
 */
export function setNodeState(node, state) {
  node.classList.toggle('pending', state === 'queued' || state === 'sending');
  node.classList.toggle('streaming', state === 'streaming' || state === 'stopping');
  node.classList.toggle('stopped', state === 'stopped');
  node.classList.toggle('incomplete', state === 'incomplete');
  node.classList.toggle('failed', typeof state === 'string' && state.startsWith('failed'));
  node.querySelector('.state').textContent = STATE_LABELS[state] || state || '';
}

/** An answer's stop button (ONSTOP null: none), for the one who asked. */
export function setStopButton(node, onStop) {
  const old = node.querySelector('.meta .stop');
  if (old) old.remove();
  if (!onStop) return;
  node.querySelector('.meta').append(el('button', { type: 'button', class: 'link-btn stop', title: 'Stop this answer',
    onclick: (ev) => {
      ev.currentTarget.disabled = true;
      onStop();
    } }, 'stop'));
}

export function noticeNode(text, level = 'info') {
  return el('div', { class: `notice ${level}`, role: level === 'error' ? 'alert' : undefined, text });
}

/** The connection badge: a dot and a short phrase. */
export function renderStatus(node, { state, mode, retryAt }) {
  const via = mode === 'sse' ? 'SSE + HTTP' : 'WebSocket';
  let text;
  if (state === 'online') text = `online · ${via}`;
  else if (state === 'connecting') text = 'connecting…';
  else if (state === 'waiting') {
    const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    text = `offline · retry in ${s}s`;
  } else text = 'offline · reconnecting…';
  node.dataset.state = state;
  node.dataset.mode = mode;
  node.querySelector('.label').textContent = text;
}

/** The member list; clicking someone else starts a direct message. */
export function renderMembers(list, members, me, onPick) {
  const names = [...members].sort((a, b) => (a === me ? -1 : b === me ? 1 : a.localeCompare(b)));
  list.replaceChildren(...names.map((name) => {
    if (name === me) {
      return el('li', { class: 'member me' }, el('span', { class: 'dot' }), el('span', { text: name }),
        el('span', { class: 'you', text: '(you)' }));
    }
    return el('li', { class: 'member' },
      el('button', { type: 'button', class: 'member-btn', title: `Send ${name} a direct message`,
        dataset: { user: name }, onclick: () => onPick(name) },
      el('span', { class: 'dot' }), el('span', { text: name })));
  }));
}

export function renderTyping(node, users) {
  const names = [...users];
  if (names.length === 0) node.textContent = '';
  else if (names.length === 1) node.textContent = `${names[0]} is typing…`;
  else if (names.length === 2) node.textContent = `${names[0]} and ${names[1]} are typing…`;
  else node.textContent = `${names.length} people are typing…`;
}

export function renderRooms(list, rooms, current, onPick) {
  list.replaceChildren(...rooms.map((room) => el('li', {},
    el('button', { type: 'button', class: room === current ? 'room-btn current' : 'room-btn',
      'aria-current': room === current ? 'true' : undefined, onclick: () => onPick(room) },
    el('span', { class: 'hash', text: '#' }), el('span', { text: room })))));
}
