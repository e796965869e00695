// markdown.js - the agent's answers as Markdown, with marked 4.2.3
// (web/vendor/marked, a classic script loaded before the modules: it is
// window.marked).  An answer is text the agent made out of what someone
// typed, so nothing in it may become markup of its own: HTML in it is shown
// as text, links lead only to http:, https: and mailto: (anything else stays
// text), images are never fetched (they become links), and what marked
// produces is checked once more against a short list of elements and
// attributes before it reaches the page.  People's own messages never come
// here: they are text (ui.js).

const LINK_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

// Element → the attributes it may keep (each checked by ATTRIBUTE_OK).
const ALLOWED = {
  p: [], br: [], hr: [], strong: [], em: [], del: [], blockquote: [], pre: [], code: ['class'],
  ul: [], ol: ['start'], li: [], h1: [], h2: [], h3: [], h4: [], h5: [], h6: [],
  table: [], thead: [], tbody: [], tr: [], th: ['align'], td: ['align'],
  a: ['href'], span: ['class'],
};

const ATTRIBUTE_OK = {
  class: (v, tag) => (tag === 'code' ? /^language-[\w+#.-]{1,40}$/.test(v) : tag === 'span' && v === 'raw-html'),
  start: (v) => /^\d{1,9}$/.test(v),
  align: (v) => ['left', 'center', 'right'].includes(v),
  href: (v) => safeUrl(v) !== null,
};

// marked emits a newline after each block; between blocks it means nothing
// (the body is not pre-formatted) and would only get into textContent.
const BLOCK_PARENTS = new Set(['ul', 'ol', 'blockquote', 'table', 'thead', 'tbody', 'tr']);

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

/** What marked's own escaping did to an autolink's address, undone (a plain link's is raw). */
function unescapeHtml(s) {
  return String(s).replace(/&(amp|lt|gt|quot|#39);/g, (m, e) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e]);
}

/**
 * The address as the browser would follow it, or null unless it is an
 * absolute http:, https: or mailto: URL.  Parsing it the way the browser
 * does (tabs and newlines dropped, case folded) is what makes the check
 * hold: "JaVa\tScript:" is refused here exactly as it would run there.
 */
function safeUrl(raw) {
  try {
    const url = new URL(unescapeHtml(raw).trim());
    return LINK_PROTOCOLS.has(url.protocol) ? url.href : null;
  } catch (err) {
    return null;                // relative, or not a URL at all
  }
}

function linkHtml(href, inner) {
  return `<a href="${escapeHtml(href)}" target="_blank" rel="noopener noreferrer">${inner}</a>`;
}

// marked 4's renderer hooks; TEXT arguments are HTML marked made safe
// (escaped text and the inline elements it produced).
const renderer = {
  // Raw HTML, block or inline, is shown as what was written.
  html(html) {
    return `<span class="raw-html">${escapeHtml(html.replace(/\n+$/, ''))}</span>`;
  },
  link(href, title, text) {
    const url = safeUrl(href);
    return url === null ? text : linkHtml(url, text);
  },
  // Never loaded: an image becomes a link to it (its alt text, else its address).
  image(href, title, text) {
    const url = safeUrl(href);
    const label = text || escapeHtml(url || href);
    return url === null ? label : linkHtml(url, `image: ${label}`);
  },
  // Task lists without form controls.
  checkbox(checked) {
    return checked ? '☑ ' : '☐ ';
  },
};

let configured = false;

function markedLib() {
  const lib = window.marked;
  if (!lib || typeof lib.parse !== 'function') return null;
  if (!configured) {
    configured = true;
    // headerIds off: an answer's "# input" must not give an element the id
    // of one of the page's own.  mangle off: mail addresses stay readable.
    lib.use({ gfm: true, breaks: true, headerIds: false, mangle: false, renderer });
  }
  return lib;
}

/** Keeps only the ALLOWED elements and attributes below NODE; anything else becomes its text. */
function clean(node) {
  for (const child of [...node.childNodes]) {
    if (child.nodeType === Node.TEXT_NODE) {
      const tag = node.nodeType === Node.ELEMENT_NODE ? node.localName : '';
      if ((tag === '' || BLOCK_PARENTS.has(tag)) && !child.data.trim()) child.remove();
      continue;
    }
    if (child.nodeType !== Node.ELEMENT_NODE) {
      child.remove();                     // comments, processing instructions
      continue;
    }
    const tag = child.localName;
    const keep = Object.prototype.hasOwnProperty.call(ALLOWED, tag) ? ALLOWED[tag] : null;
    if (keep === null) {
      child.replaceWith(document.createTextNode(child.textContent));
      continue;
    }
    for (const { name, value } of [...child.attributes]) {
      if (!keep.includes(name) || !ATTRIBUTE_OK[name](value, tag)) child.removeAttribute(name);
    }
    if (tag === 'a') {
      if (!child.hasAttribute('href')) {
        child.replaceWith(document.createTextNode(child.textContent));
        continue;
      }
      child.setAttribute('target', '_blank');
      child.setAttribute('rel', 'noopener noreferrer');
    }
    clean(child);
  }
}

/**
 * Shows TEXT in CONTAINER as Markdown.  The HTML is parsed in a <template>,
 * whose content is inert (no script runs, no image loads, no handler
 * fires), cleaned there, and only then moved into the page.  Without
 * marked (it failed to load) the text is shown as it is.
 */
export function renderMarkdown(container, text) {
  const lib = markedLib();
  let html = null;
  if (lib) {
    try {
      html = lib.parse(String(text));
    } catch (err) {
      html = null;
    }
  }
  if (html === null) {
    container.textContent = text;
    return;
  }
  const tpl = document.createElement('template');
  tpl.innerHTML = html;
  clean(tpl.content);
  container.replaceChildren(tpl.content);
}
