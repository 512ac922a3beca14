// Reference web client for the concierge messaging API (SPEC §4, §6).
//
// One module, no framework, no build step. Serve this folder from any static server and open
//   index.html?api=https://messaging.example#token=<JWT>
// (or type both into the form). Reading order:
//   1. configuration (API URL, token)          5. conversation pane (history, paging)
//   2. HTTP helpers and problem details       6. sending with retries, editing
//   3. state and small DOM helpers            7. read tracking (IntersectionObserver)
//   4. inbox and property threads             8. live updates (EventSource)
// Every piece of text that came from the API is put in the page with textContent, never innerHTML.

// --- 1. configuration ---------------------------------------------------------------------------

const DEFAULT_API = 'http://127.0.0.1:8000';
const API_KEY = 'concierge.api';       // localStorage: the API base URL is not a secret
const TOKEN_KEY = 'concierge.token';   // sessionStorage: the token lives as long as the tab

/** The API base URL: ?api=… wins, then what was used last, then the default. */
function initialApi() {
  const fromQuery = new URLSearchParams(location.search).get('api');
  return (fromQuery || localStorage.getItem(API_KEY) || DEFAULT_API).replace(/\/+$/, '');
}

/** The token: #token=… (then removed from the address bar and history), else this tab's stored one. */
function initialToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get('token');
  if (token) {
    history.replaceState(null, '', location.pathname + location.search);
    return token;
  }
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

// --- 2. HTTP ------------------------------------------------------------------------------------

/** A non-2xx response; `problem` is its RFC 9457 body (title, detail, status, errors?, requestId?). */
class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter; // seconds, or null
  }
}

/**
 * Calls the API with the bearer token. Resolves to the parsed JSON body (null for 204); rejects with
 * ApiError for a non-2xx response, or with a TypeError when the network (or CORS) fails.
 * Cross-origin and bearer-only: fetch's default `credentials: 'same-origin'` sends no cookies there.
 */
async function request(method, path, body, extraHeaders = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, ...extraHeaders };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(state.api + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: handled below */ }
  if (!response.ok) {
    const problem = data && typeof data === 'object' ? data : { title: response.statusText, detail: text };
    throw new ApiError(response.status, problem, parseRetryAfter(response.headers.get('Retry-After')));
  }
  return data;
}

const get = (path) => request('GET', path);
const post = (path, body, headers) => request('POST', path, body, headers);

/** Retry-After is either seconds or an HTTP date. */
function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}

/** Shows an error to the person. 401 means the token is no longer good: ask for a new one. */
function report(error) {
  if (error instanceof ApiError && error.status === 401) {
    showConnect();
    showError('Your token was refused (expired or invalid). Paste a new one.', error.problem);
    return;
  }
  if (error instanceof ApiError) showError(error.problem.detail || error.problem.title, error.problem);
  else showError(`Cannot reach the API at ${state.api} (${error.message}).`);
  console.error(error);
}

function showError(message, problem = {}) {
  const box = $('#error .text');
  const lines = [el('div', {}, message)];
  if (Array.isArray(problem.errors) && problem.errors.length) {
    lines.push(el('ul', {}, ...problem.errors.map((e) => el('li', {}, `${e.field}: ${e.message}`))));
  }
  if (problem.requestId) lines.push(el('small', {}, `request id ${problem.requestId}`));
  box.replaceChildren(...lines);
  $('#error').hidden = false;
}

// --- 3. state and DOM helpers -------------------------------------------------------------------

const state = {
  api: initialApi(),
  token: initialToken(),
  me: null,                 // GET /v1/me: { userId, role, name, email }
  inbox: new Map(),         // conversation id → Conversation resource
  inboxCursor: null,
  threads: new Map(),       // property conversation id → Property conversation resource
  threadsCursor: null,
  open: null,               // the open conversation: see openConversation()
  pending: new Map(),       // Idempotency-Key → a message being sent (survives switching conversations)
  source: null,             // the EventSource
  lastEventId: null,        // last live event id seen, to resume after a manual reconnect
};

const $ = (selector) => document.querySelector(selector);

/** Creates an element; string children become text nodes (never parsed as HTML). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const formatTime = (iso) => new Date(iso).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });

/** crypto.randomUUID exists only in secure contexts (https, localhost); fall back to getRandomValues. */
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// The two kinds of conversation differ in URLs and message fields; everything else is shared.
const KINDS = {
  conversation: {
    messages: (id) => `/v1/conversations/${encodeURIComponent(id)}/messages`,
    read: (id) => `/v1/conversations/${encodeURIComponent(id)}/read`,
    edit: (id) => `/v1/messages/${encodeURIComponent(id)}`,
    list: () => state.inbox,
    maxLength: 1500,
  },
  property: {
    messages: (id) => `/v1/property-conversations/${encodeURIComponent(id)}/messages`,
    read: (id) => `/v1/property-conversations/${encodeURIComponent(id)}/read`,
    edit: (id) => `/v1/property-messages/${encodeURIComponent(id)}`,
    list: () => state.threads,
    maxLength: 5000,
  },
};

/** One shape for both Message and Property message, so the pane renders either. */
function normalize(kind, raw) {
  const property = kind === 'property';
  return {
    id: raw.id,
    conversationId: raw.conversationId,
    authorId: property ? raw.authorId : raw.userId,
    senderType: property ? 'user' : raw.senderType, // user | concierge | staff | deleted
    text: raw.message,
    edited: property ? raw.editedAt != null : raw.isEdit,
    read: property ? raw.readAt != null : raw.read,
    createdAt: raw.createdAt,
  };
}

// --- 4. inbox and property threads --------------------------------------------------------------

/** A conversation's title: its name, else the other participants' names. */
function conversationTitle(c) {
  if (c.name) return c.name;
  const others = c.participants.filter((p) => p.userId !== state.me?.userId);
  return others.map((p) => p.name || p.userId).join(', ') || '(only you)';
}

function threadTitle(t) {
  const who = state.me?.userId === t.travelerId ? '' : ` · ${t.travelerId}`;
  const dates = t.plannedCheckIn ? ` · ${t.plannedCheckIn} → ${t.plannedCheckOut ?? '?'}` : '';
  return `Property #${t.propertyId}${who}${dates}`;
}

const activity = (c) => c.lastMessage?.createdAt ?? c.createdAt;

/** Concierge first, then latest activity first. */
function byInboxOrder(a, b) {
  if (a.isConcierge !== b.isConcierge) return a.isConcierge ? -1 : 1;
  return Date.parse(activity(b)) - Date.parse(activity(a));
}

function listItem(kind, item, title) {
  const isOpen = state.open?.kind === kind && state.open.id === item.id;
  const attrs = kind === 'conversation'
    ? { 'data-testid': 'conversation-item', 'data-conversation-id': item.id }
    : { 'data-testid': 'property-thread-item', 'data-thread-id': item.id };
  return el('li', {
    ...attrs,
    class: item.isConcierge ? 'pinned' : '',
    'aria-current': isOpen ? 'true' : 'false',
    tabindex: '0',
    onclick: () => openConversation(kind, item.id),
    onkeydown: (e) => { if (e.key === 'Enter') openConversation(kind, item.id); },
  },
  el('span', { class: 'title' }, title),
  item.unreadCount > 0 ? el('span', { class: 'badge', 'data-testid': 'unread-badge' }, String(item.unreadCount)) : null,
  el('span', { class: 'preview' }, item.lastMessage?.message ?? 'No messages yet'));
}

function renderInbox() {
  const items = [...state.inbox.values()].sort(byInboxOrder);
  $('#inbox').replaceChildren(...items.map((c) => listItem('conversation', c, conversationTitle(c))));
  if (!items.length) $('#inbox').append(el('li', { class: 'empty' }, 'No conversations yet.'));
  $('#inbox-more').hidden = !state.inboxCursor;

  const threads = [...state.threads.values()].sort((a, b) => Date.parse(activity(b)) - Date.parse(activity(a)));
  $('#threads').replaceChildren(...threads.map((t) => listItem('property', t, threadTitle(t))));
  if (!threads.length) $('#threads').append(el('li', { class: 'empty' }, 'No property inquiries.'));
  $('#threads-more').hidden = !state.threadsCursor;
}

/** Loads the first inbox page (reset = true) or the next one ("load more"). */
async function loadInbox(reset = true) {
  const query = reset || !state.inboxCursor ? '' : `&before=${encodeURIComponent(state.inboxCursor)}`;
  const page = await get(`/v1/conversations?limit=50${query}`);
  if (reset) {
    state.inbox.clear();
    // The concierge chat is created on first use; asking for it keeps it pinned even beyond page one.
    const concierge = await get('/v1/concierge');
    state.inbox.set(concierge.id, concierge);
  }
  for (const c of page.items) state.inbox.set(c.id, c);
  state.inboxCursor = page.nextCursor;
  renderInbox();
}

/** Property threads: a host sees threads about their properties (?role=host), others their own inquiries. */
async function loadThreads(reset = true) {
  const role = state.me.role === 'host' ? 'host' : 'traveler';
  const query = reset || !state.threadsCursor ? '' : `&before=${encodeURIComponent(state.threadsCursor)}`;
  const page = await get(`/v1/property-conversations?role=${role}&limit=50${query}`);
  if (reset) state.threads.clear();
  for (const t of page.items) state.threads.set(t.id, t);
  state.threadsCursor = page.nextCursor;
  renderInbox();
}

/** Looks up a conversation or thread the list does not hold yet (a new one, or beyond the loaded pages). */
async function fetchListEntry(kind, id) {
  const path = kind === 'conversation' ? `/v1/conversations/${encodeURIComponent(id)}`
    : `/v1/property-conversations/${encodeURIComponent(id)}`;
  const resource = await get(path);
  KINDS[kind].list().set(id, resource);
  renderInbox();
  return resource;
}

// --- 5. the conversation pane -------------------------------------------------------------------

/**
 * state.open = { kind, id, messages: Map(id → { msg, el, seq }), olderCursor, firstSeq, lastSeq,
 *               readSeq, visibleSeq, readTimer }
 * `seq` orders the messages in view: older pages get lower numbers, new messages higher ones, so
 * "newer than what was marked read" is one comparison.
 */
async function openConversation(kind, id) {
  closeConversation();
  const open = { kind, id, messages: new Map(), olderCursor: null, firstSeq: 0, lastSeq: -1,
    readSeq: -Infinity, visibleSeq: -Infinity, readTimer: null };
  state.open = open;
  document.body.classList.add('conversation-open');
  const entry = KINDS[kind].list().get(id);
  $('#pane-title').textContent = entry ? (kind === 'property' ? threadTitle(entry) : conversationTitle(entry)) : '…';
  $('#composer').disabled = $('#send').disabled = false;
  $('#composer').maxLength = KINDS[kind].maxLength;
  renderInbox(); // highlights the open item

  try {
    const page = await get(`${KINDS[kind].messages(id)}?limit=50`);
    if (state.open !== open) return; // another conversation was opened meanwhile
    // Prepended newest-first: a live message that arrived while this page loaded stays below it.
    for (const raw of page.items.reverse()) prependMessage(normalize(kind, raw));
    open.olderCursor = page.nextCursor;
    $('#older').hidden = !open.olderCursor;
    for (const p of state.pending.values()) if (p.kind === kind && p.convId === id) $('#message-items').append(p.el);
    scrollToBottom();
  } catch (error) { report(error); }
}

function closeConversation() {
  if (state.open) clearTimeout(state.open.readTimer);
  readObserver.disconnect();
  state.open = null;
  $('#message-items').replaceChildren();
  $('#older').hidden = true;
  $('#pane-title').textContent = 'Choose a conversation';
  $('#composer').disabled = $('#send').disabled = true;
  document.body.classList.remove('conversation-open');
}

/** Prepends the next older page, keeping what the person was looking at in place. */
async function loadOlder() {
  const open = state.open;
  if (!open?.olderCursor) return;
  const list = $('#message-list');
  const fromBottom = list.scrollHeight - list.scrollTop;
  try {
    const page = await get(`${KINDS[open.kind].messages(open.id)}?limit=50&before=${encodeURIComponent(open.olderCursor)}`);
    if (state.open !== open) return;
    // The page is oldest→newest; prepend from its newest so the order stays right.
    for (const raw of page.items.reverse()) prependMessage(normalize(open.kind, raw));
    open.olderCursor = page.nextCursor;
    $('#older').hidden = !open.olderCursor;
    list.scrollTop = list.scrollHeight - fromBottom;
  } catch (error) { report(error); }
}

function appendMessage(msg) { addMessage(msg, ++state.open.lastSeq, (node) => placeInOrder(node, msg)); }

/**
 * Puts a new (or just confirmed) message at the bottom, in the server's order: after the shown messages created
 * before it, before any created later (one replayed after a reconnection can be older than a message of ours
 * that was confirmed first) and before the bubbles still being sent, which stay last until the server has them.
 */
function placeInOrder(node, msg) {
  const items = $('#message-items');
  const at = Date.parse(msg.createdAt);
  let next = null;
  for (let other = items.lastElementChild; other; other = other.previousElementSibling) {
    if (other === node) continue;
    const shown = other.dataset.messageId ? state.open.messages.get(other.dataset.messageId) : null;
    if (shown && Date.parse(shown.msg.createdAt) <= at) break;
    next = other;
  }
  items.insertBefore(node, next);
}
function prependMessage(msg) { addMessage(msg, --state.open.firstSeq, (node) => $('#message-items').prepend(node)); }

/** Adds a message to the open pane unless it is there already (dedupe by id). */
function addMessage(msg, seq, place) {
  const open = state.open;
  if (open.messages.has(msg.id)) return;
  const node = el('li', { 'data-testid': 'message', 'data-message-id': msg.id });
  open.messages.set(msg.id, { msg, el: node, seq });
  fillMessage(node, msg);
  place(node);
  readObserver.observe(node);
}

/** Who wrote a message, as the person should read it. */
function authorLabel(msg) {
  if (msg.senderType === 'concierge') return 'Concierge';
  if (msg.senderType === 'deleted') return 'deleted user';
  if (msg.authorId === state.me.userId) return 'You';
  if (msg.senderType === 'staff') return 'Staff';
  if (state.open.kind === 'property') {
    return state.threads.get(state.open.id)?.travelerId === msg.authorId ? 'Traveler' : 'Host';
  }
  const participant = state.inbox.get(state.open.id)?.participants.find((p) => p.userId === msg.authorId);
  return participant?.name || msg.authorId;
}

/** (Re)draws one message element; the element itself stays (it is observed for read tracking). */
function fillMessage(node, msg) {
  const mine = msg.senderType === 'user' && msg.authorId === state.me.userId;
  node.className = `message ${msg.senderType}${mine ? ' mine' : ''}`;
  node.dataset.senderType = msg.senderType;
  node.replaceChildren(
    el('div', { class: 'meta' },
      el('span', { class: 'author' }, authorLabel(msg)),
      el('time', { datetime: msg.createdAt }, formatTime(msg.createdAt)),
      msg.edited ? el('span', { 'data-testid': 'edited' }, '(edited)') : null,
      mine && msg.read ? el('span', { title: 'Read by everyone else' }, '✓ read') : null,
      mine ? el('span', { class: 'actions' },
        el('button', { type: 'button', 'data-testid': 'edit', onclick: () => startEdit(node, msg) }, 'Edit')) : null),
    el('div', { class: 'text', 'data-testid': 'message-text' }, msg.text));
}

function isNearBottom() {
  const list = $('#message-list');
  return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
}
function scrollToBottom() { const list = $('#message-list'); list.scrollTop = list.scrollHeight; }

// --- 6. sending and editing ---------------------------------------------------------------------

const MAX_AUTO_RETRIES = 4;

/** Composer submit: one pending bubble and one Idempotency-Key per composed message. */
function sendComposed() {
  const text = $('#composer').value.trim();
  if (!text || !state.open) return;
  const p = { key: newKey(), kind: state.open.kind, convId: state.open.id, text, el: null };
  p.el = el('li', { 'data-testid': 'message', 'data-pending': 'true', class: 'message user mine' });
  state.pending.set(p.key, p);
  $('#composer').value = '';
  $('#message-items').append(p.el);
  scrollToBottom();
  deliver(p);
}

function renderPending(p, status, error) {
  const failed = status === 'failed';
  p.el.classList.toggle('failed', failed);
  p.el.replaceChildren(
    el('div', { class: 'meta' }, el('span', { class: 'author' }, 'You'),
      el('span', { class: 'status', 'data-testid': 'send-status' }, failed ? 'failed' : 'sending…'),
      failed ? el('span', { class: 'actions' },
        el('button', { type: 'button', 'data-testid': 'retry', onclick: () => deliver(p) }, 'retry'), ' ',
        el('button', { type: 'button', onclick: () => discardPending(p) }, 'discard')) : null),
    el('div', { class: 'text' }, p.text),
    error ? el('div', { class: 'status' }, error) : null);
}

/**
 * POSTs a pending message, retrying on network errors, 5xx, 429 and 409 (409: the same key is still
 * being handled — our earlier attempt may have reached the server). The same Idempotency-Key is
 * reused on every attempt, so the server creates the message at most once.
 */
async function deliver(p) {
  for (let attempt = 0; ; attempt++) {
    renderPending(p, 'sending');
    try {
      const raw = await post(KINDS[p.kind].messages(p.convId), { message: p.text }, { 'Idempotency-Key': p.key });
      confirmSent(p, normalize(p.kind, raw));
      return;
    } catch (error) {
      const retryable = !(error instanceof ApiError) || error.status >= 500 || [409, 429].includes(error.status);
      if (!retryable || attempt >= MAX_AUTO_RETRIES) {
        renderPending(p, 'failed', error.message);
        if (!retryable) report(error);
        return;
      }
      // Exponential backoff (1, 2, 4, 8 s) unless the server said how long to wait.
      const seconds = error.retryAfter ?? 2 ** attempt;
      await sleep(Math.min(seconds, 60) * 1000);
    }
  }
}

/** The server has the message: the pending bubble becomes it, unless the live event already drew it. */
function confirmSent(p, msg) {
  state.pending.delete(p.key);
  const open = state.open;
  if (open && open.kind === p.kind && open.id === p.convId && !open.messages.has(msg.id)) {
    delete p.el.dataset.pending;
    p.el.dataset.messageId = msg.id;
    open.messages.set(msg.id, { msg, el: p.el, seq: ++open.lastSeq });
    fillMessage(p.el, msg);
    placeInOrder(p.el, msg);
    readObserver.observe(p.el);
  } else {
    p.el.remove();
  }
  noteNewMessage(p.kind, msg);
}

function discardPending(p) {
  state.pending.delete(p.key);
  p.el.remove();
}

/** Replaces the message text with an editor; saves with PATCH. */
function startEdit(node, msg) {
  const input = el('textarea', { 'data-testid': 'edit-input', maxlength: KINDS[state.open.kind].maxLength });
  input.value = msg.text;
  const kind = state.open.kind;
  const save = async () => {
    try {
      const raw = await request('PATCH', KINDS[kind].edit(msg.id), { message: input.value });
      applyUpdate(kind, normalize(kind, raw));
    } catch (error) { report(error); }
  };
  node.querySelector('.text').replaceChildren(input,
    el('div', { class: 'actions' },
      el('button', { type: 'button', 'data-testid': 'edit-save', onclick: save }, 'Save'), ' ',
      el('button', { type: 'button', onclick: () => fillMessage(node, state.open.messages.get(msg.id).msg) }, 'Cancel')));
  input.focus();
}

/** A message changed (our PATCH, or a live *.updated event): redraw it where it is shown. */
function applyUpdate(kind, msg) {
  const shown = state.open?.kind === kind && state.open.id === msg.conversationId
    ? state.open.messages.get(msg.id) : null;
  if (shown) { shown.msg = msg; fillMessage(shown.el, msg); }
  const entry = KINDS[kind].list().get(msg.conversationId);
  if (entry?.lastMessage?.id === msg.id) {
    entry.lastMessage = { ...entry.lastMessage, message: msg.text };
    renderInbox();
  }
}

// --- 7. read tracking ---------------------------------------------------------------------------

/**
 * A message counts as seen when half of it (or half of the list's height, for long ones) is visible.
 * The newest seen message is sent as `upTo`, debounced, and only when it is newer than the last one sent.
 */
const readObserver = new IntersectionObserver((entries) => {
  const open = state.open;
  if (!open) return;
  for (const entry of entries) {
    const seen = entry.intersectionRatio >= 0.5
      || (entry.rootBounds && entry.intersectionRect.height >= entry.rootBounds.height / 2);
    const shown = open.messages.get(entry.target.dataset.messageId);
    if (seen && shown && shown.seq > open.visibleSeq) open.visibleSeq = shown.seq;
  }
  scheduleRead();
}, { root: document.querySelector('#message-list'), threshold: [0, 0.25, 0.5, 0.75, 1] });

function scheduleRead() {
  const open = state.open;
  if (!open || open.visibleSeq <= open.readSeq || document.visibilityState !== 'visible') return;
  clearTimeout(open.readTimer);
  open.readTimer = setTimeout(() => markRead(open), 600);
}

async function markRead(open) {
  const seq = open.visibleSeq;
  if (seq <= open.readSeq || state.open !== open) return;
  const entry = KINDS[open.kind].list().get(open.id);
  open.readSeq = seq;
  if (entry && entry.unreadCount === 0) return; // nothing to tell the server
  let body;
  if (open.kind === 'conversation') {
    body = { upTo: [...open.messages.values()].find((m) => m.seq === seq).msg.id };
  } else if (seq !== open.lastSeq) {
    // A property thread's read call marks the whole thread read: wait until its newest message is seen.
    open.readSeq = seq - 1;
    return;
  }
  try {
    const { unreadCount } = await post(KINDS[open.kind].read(open.id), body);
    if (entry) { entry.unreadCount = unreadCount; renderInbox(); }
  } catch (error) { report(error); }
}

document.addEventListener('visibilitychange', scheduleRead);

// --- 8. live updates ----------------------------------------------------------------------------

function setLiveStatus(status) {
  const badge = $('#live-status');
  badge.textContent = status;
  badge.dataset.state = status;
  $('#live-reopen').hidden = status !== 'closed';
}

/**
 * Opens the stream. The browser reconnects by itself (sending Last-Event-ID); it gives up only on an
 * HTTP error such as 401, which leaves readyState CLOSED. A manual re-open passes the last id seen
 * as ?last_event_id= so nothing is missed (or the server answers with `reset`).
 */
function openStream() {
  state.source?.close();
  const params = new URLSearchParams({ access_token: state.token });
  if (state.lastEventId) params.set('last_event_id', state.lastEventId);
  const source = new EventSource(`${state.api}/v1/stream?${params}`);
  state.source = source;
  setLiveStatus('reconnecting');
  source.onopen = () => setLiveStatus('live');
  source.onerror = () => {
    if (state.source !== source) return;
    setLiveStatus(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
  };
  for (const [type, handler] of Object.entries(LIVE_HANDLERS)) {
    source.addEventListener(type, (event) => {
      if (event.lastEventId) state.lastEventId = event.lastEventId;
      try { handler(JSON.parse(event.data)); } catch (error) { console.error(type, error); }
    });
  }
}

/** Named events of GET /v1/stream (messaging/live.py EVENT_TYPES, plus `reset`). */
const LIVE_HANDLERS = {
  'message.created': (raw) => onMessageCreated('conversation', normalize('conversation', raw)),
  'message.updated': (raw) => applyUpdate('conversation', normalize('conversation', raw)),
  'property_message.created': (raw) => onMessageCreated('property', normalize('property', raw)),
  'property_message.updated': (raw) => applyUpdate('property', normalize('property', raw)),
  'conversation.created': (conversation) => { state.inbox.set(conversation.id, conversation); renderInbox(); },
  'conversation.read': onConversationRead,
  // Events after our Last-Event-ID are gone: refetch everything, then carry on with the stream.
  reset: () => reloadAll(),
};

function onMessageCreated(kind, msg) {
  const open = state.open;
  const mine = msg.authorId === state.me.userId;
  // Our own message still waiting for its POST response: that response will draw it (no duplicate).
  const awaited = mine && [...state.pending.values()].some(
    (p) => p.kind === kind && p.convId === msg.conversationId && p.text === msg.text);
  if (!awaited && open?.kind === kind && open.id === msg.conversationId) {
    const follow = isNearBottom();
    appendMessage(msg);
    if (follow) scrollToBottom();
  }
  if (!awaited) noteNewMessage(kind, msg);
}

/** Updates the list entry's preview and unread count for a new message (fetching the entry if unknown). */
async function noteNewMessage(kind, msg) {
  const list = KINDS[kind].list();
  let entry = list.get(msg.conversationId);
  if (!entry) {
    try { await fetchListEntry(kind, msg.conversationId); } catch (error) { console.error(error); }
    return; // the fetched resource already counts the message
  }
  if (entry.lastMessage?.id === msg.id) return;
  entry.lastMessage = kind === 'property'
    ? { id: msg.id, authorId: msg.authorId, message: msg.text, createdAt: msg.createdAt }
    : { id: msg.id, userId: msg.authorId, senderType: msg.senderType, message: msg.text, createdAt: msg.createdAt };
  if (msg.authorId !== state.me.userId) entry.unreadCount += 1;
  renderInbox();
}

/** Someone's read cursor moved: {conversationId, userId, lastReadAt}. */
async function onConversationRead({ conversationId, userId, lastReadAt }) {
  const conversation = state.inbox.get(conversationId);
  if (!conversation) return;
  if (userId === state.me.userId) {
    // Our own cursor moved. If it was this tab, the read call's answer already set the count; if it
    // was another tab or device, the server knows the new unread count (a read only lowers it).
    if (conversation.unreadCount === 0) return;
    try { await fetchListEntry('conversation', conversationId); } catch (error) { console.error(error); }
    return;
  }
  const participant = conversation.participants.find((p) => p.userId === userId);
  if (participant) participant.lastReadAt = lastReadAt;
  refreshReadMarks(conversation);
}

/** A message of ours is `read` once every other participant's cursor has reached it. */
function refreshReadMarks(conversation) {
  const open = state.open;
  if (open?.kind !== 'conversation' || open.id !== conversation.id) return;
  const others = conversation.participants.filter((p) => p.userId !== state.me.userId);
  for (const shown of open.messages.values()) {
    const msg = shown.msg;
    if (msg.read || msg.authorId !== state.me.userId) continue;
    const at = Date.parse(msg.createdAt);
    if (others.every((p) => p.lastReadAt && Date.parse(p.lastReadAt) >= at)) {
      msg.read = true;
      fillMessage(shown.el, msg);
    }
  }
}

/** After a `reset` (or reconnecting by hand): reload the lists and the open conversation. */
async function reloadAll() {
  try {
    await Promise.all([loadInbox(true), loadThreads(true)]);
    if (state.open) {
      const { kind, id } = state.open;
      const list = $('#message-list');
      const keep = list.scrollTop;
      await openConversation(kind, id);
      if (keep) list.scrollTop = keep;
    }
  } catch (error) { report(error); }
}

// --- start, connect, sign out -------------------------------------------------------------------

/** The sign-in form; `keepToken` keeps what was typed (when only the network failed). */
function showConnect(keepToken = false) {
  state.source?.close();
  state.source = null;
  setLiveStatus('closed');
  $('#live-reopen').hidden = true;
  $('#app').hidden = true;
  $('#connect').hidden = false;
  $('#sign-out').hidden = true;
  $('#api-input').value = state.api;
  $('#token-input').value = keepToken ? state.token : '';
}

async function connect() {
  sessionStorage.setItem(TOKEN_KEY, state.token);
  localStorage.setItem(API_KEY, state.api);
  try {
    state.me = await get('/v1/me');
  } catch (error) {
    report(error);
    showConnect(!(error instanceof ApiError)); // keep a typed token when only the network failed
    return;
  }
  $('#me').textContent = `${state.me.name || state.me.userId} (${state.me.role})`;
  $('#connect').hidden = true;
  $('#app').hidden = false;
  $('#sign-out').hidden = false;
  $('#error').hidden = true;
  openStream(); // first, so nothing published while the lists load is missed
  try { await Promise.all([loadInbox(true), loadThreads(true)]); } catch (error) { report(error); }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  Object.assign(state, { token: '', me: null, lastEventId: null, inboxCursor: null, threadsCursor: null });
  state.inbox.clear();
  state.threads.clear();
  state.pending.clear();
  closeConversation();
  $('#me').textContent = '';
  showConnect();
}

function wireUp() {
  $('#connect').addEventListener('submit', (e) => {
    e.preventDefault();
    state.api = $('#api-input').value.trim().replace(/\/+$/, '');
    state.token = $('#token-input').value.trim();
    connect();
  });
  $('#composer-form').addEventListener('submit', (e) => { e.preventDefault(); sendComposed(); });
  $('#composer').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendComposed(); }
  });
  $('#older').addEventListener('click', loadOlder);
  $('#inbox-more').addEventListener('click', () => loadInbox(false).catch(report));
  $('#threads-more').addEventListener('click', () => loadThreads(false).catch(report));
  $('#back').addEventListener('click', () => { closeConversation(); renderInbox(); });
  $('#error-dismiss').addEventListener('click', () => { $('#error').hidden = true; });
  $('#sign-out').addEventListener('click', signOut);
  $('#live-reopen').addEventListener('click', () => { openStream(); reloadAll(); });
}

wireUp();
if (state.token) connect(); else showConnect();
