// The signalling WebSocket of the advisor's and the citizen's pages: one connection to
// /api/v1/ws, messages in and out as JSON ({v, type, ...}), and what happens when it is lost.
//
// While a wait or a call can be taken up again (the page gave it a resume ticket with
// resumeWith), a lost connection is opened again every second and the first thing sent is
// "resume"; after the server's resume window (its welcome says how long, plus a margin so its
// verdict comes first) the page hears that the client gave up. Without a ticket the client
// reconnects with a backoff (1 s, doubling to 30 s) if the page asked to stay connected.
// Messages queued with sendAfterResume (chat typed while disconnected) go out, in order, once
// the server says "resumed".
//
//   const signalling = new SignallingClient({ onOpen, onMessage, onDown, keepConnected: true });
//   signalling.connect();
//   signalling.send("call_accept", { session_id });
//   signalling.resumeWith({ sessionId, token });   // from call_started / call_waiting
//   signalling.forget();                           // the call ended: nothing to take up again

export const PROTOCOL_VERSION = 1;
export const RESUME_RETRY_MS = 1000; // a call is going on: every second counts
export const BACKOFF_FIRST_MS = 1000;
export const BACKOFF_MAX_MS = 30000;
export const DEFAULT_RESUME_LIMIT_MS = 90000;
const RESUME_MARGIN_S = 10;

/** The signalling endpoint on this page's server (wss: on an https: page). */
export function socketUrl(where = globalThis.location) {
  const scheme = where.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${where.host}/api/v1/ws`;
}

export class SignallingClient {
  // onOpen({resuming}): the socket is open (resuming: "resume" has been sent already);
  // onMessage(message): each message, one at a time and in order (an offer is applied before
  // its candidates); onDown({code, resuming, gaveUp}): the socket closed, and whether it is
  // being opened again to resume, or the resume window passed. finalCodes: close codes after
  // which nothing is tried again. beforeReconnect(): asked before a backoff reconnect; false
  // stops (the advisor's login ended meanwhile). The rest stands in for the browser in tests.
  constructor({
    url = undefined,
    onOpen = () => {},
    onMessage = () => {},
    onDown = () => {},
    keepConnected = false,
    finalCodes = [],
    beforeReconnect = async () => true,
    WebSocket = globalThis.WebSocket,
    setTimeout = (...args) => globalThis.setTimeout(...args),
    clearTimeout = (...args) => globalThis.clearTimeout(...args),
    now = () => Date.now(),
    log = console,
  } = {}) {
    this.url = url ?? socketUrl();
    this.onOpen = onOpen;
    this.onMessage = onMessage;
    this.onDown = onDown;
    this.keepConnected = keepConnected;
    this.finalCodes = new Set(finalCodes);
    this.beforeReconnect = beforeReconnect;
    this.WebSocket = WebSocket;
    this.timers = { setTimeout, clearTimeout };
    this.now = now;
    this.log = log;
    this.ws = null;
    this.ticket = null; // {sessionId, token}: what "resume" takes up again
    this.lostAt = null; // when the connection was lost while there was something to resume
    this.outbox = []; // [type, fields] waiting for the connection to be resumed
    this.resumeLimitMs = DEFAULT_RESUME_LIMIT_MS;
    this.backoffMs = BACKOFF_FIRST_MS;
    this.retry = null; // the pending reconnect timer
    this.inbox = Promise.resolve();
  }

  /** Open the connection (again, after stop()). */
  connect() {
    this.cancelRetry();
    const ws = new this.WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.backoffMs = BACKOFF_FIRST_MS;
      const resuming = Boolean(this.ticket);
      if (resuming) {
        // First of all: take the wait or the call up again (media went on meanwhile).
        this.send("resume", { id: "resume", session_id: this.ticket.sessionId, token: this.ticket.token });
      }
      this.onOpen({ resuming });
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      this.inbox = this.inbox
        .then(() => this.receive(message))
        .catch((error) => this.log.error("handling", message.type, error));
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.closed(event.code);
    };
  }

  /** Whether the connection is open now. */
  get open() {
    return Boolean(this.ws) && this.ws.readyState === this.WebSocket.OPEN;
  }

  /** Whether the connection is lost while a wait or call waits to be resumed. */
  get lost() {
    return this.lostAt !== null;
  }

  /** Send a message now; dropped when the connection is not open. */
  send(type, fields = {}) {
    if (this.open) this.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type, ...fields }));
  }

  /** Send a message now, or once the lost connection has been resumed; in order either way. */
  sendAfterResume(type, fields = {}) {
    this.outbox.push([type, fields]);
    this.flush();
  }

  /** What to take up again after a lost connection (the server's resume token). */
  resumeWith({ sessionId, token }) {
    this.ticket = token ? { sessionId, token } : null;
  }

  /** Nothing to resume any more: the ticket, the lost time and the outbox are dropped. */
  forget() {
    this.ticket = null;
    this.lostAt = null;
    this.outbox = [];
  }

  /** Close for good (until connect() again): no reconnect, nothing more heard. */
  stop() {
    this.cancelRetry();
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
  }

  async receive(message) {
    if (message.type === "welcome" && message.resume_grace_seconds) {
      this.resumeLimitMs = (message.resume_grace_seconds + RESUME_MARGIN_S) * 1000;
    }
    if (message.type === "resumed") this.lostAt = null;
    await this.onMessage(message);
    if (message.type === "resumed") this.flush();
  }

  flush() {
    if (this.lost || !this.open) return;
    for (const [type, fields] of this.outbox.splice(0)) this.send(type, fields);
  }

  closed(code) {
    if (this.finalCodes.has(code)) {
      this.ws = null;
      this.onDown({ code, resuming: false, gaveUp: false });
      return;
    }
    let gaveUp = false;
    if (this.ticket) {
      this.lostAt = this.lostAt ?? this.now();
      if (this.now() - this.lostAt <= this.resumeLimitMs) {
        this.onDown({ code, resuming: true, gaveUp: false });
        if (this.ticket) this.later(RESUME_RETRY_MS, () => this.connect()); // unless forgotten meanwhile
        return;
      }
      gaveUp = true;
    }
    this.onDown({ code, resuming: false, gaveUp });
    if (!this.keepConnected) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    this.later(delay, async () => {
      if (await this.beforeReconnect()) this.connect();
    });
  }

  later(ms, action) {
    this.cancelRetry();
    const ws = this.ws;
    if (ws === null) return; // stopped by the page
    this.retry = this.timers.setTimeout(() => {
      this.retry = null;
      if (this.ws === ws) action(); // not if stopped or connected meanwhile
    }, ms);
  }

  cancelRetry() {
    if (this.retry !== null) this.timers.clearTimeout(this.retry);
    this.retry = null;
  }
}
