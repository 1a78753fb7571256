// Stand-ins for what the browser gives the shared modules (server/static/js), for Node's test
// runner: a WebSocket the test drives from the server's side, a clock whose timers run when the
// test says, a fetch that answers from a table, and an RTCPeerConnection that records calls.
// Each has helpers named after what a test does with it (ws.serverSends, clock.advance).

/** A WebSocket whose server side the test plays. Every socket made is in `FakeWebSocket.made`. */
export class FakeWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static made = [];

  static reset() {
    FakeWebSocket.made = [];
  }

  /** The newest socket. */
  static get last() {
    return FakeWebSocket.made[FakeWebSocket.made.length - 1];
  }

  constructor(url) {
    this.url = url;
    this.readyState = FakeWebSocket.CONNECTING;
    this.sent = []; // what the page sent, parsed
    this.closedByPage = false;
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    FakeWebSocket.made.push(this);
  }

  send(text) {
    if (this.readyState !== FakeWebSocket.OPEN) throw new Error("send on a socket that is not open");
    this.sent.push(JSON.parse(text));
  }

  close() {
    this.closedByPage = true;
    this.readyState = FakeWebSocket.CLOSED;
  }

  /** The server accepts the connection. */
  accept() {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen?.({});
  }

  /** The server sends `message` (an object, sent as JSON; a string is sent as it is). */
  serverSends(message) {
    this.onmessage?.({ data: typeof message === "string" ? message : JSON.stringify(message) });
  }

  /** The connection ends with `code` (1006: lost without a close frame). */
  serverCloses(code = 1006) {
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose?.({ code });
  }

  /** The types of the messages sent so far. */
  get sentTypes() {
    return this.sent.map((message) => message.type);
  }
}

/** Timers that run only when the test advances the clock. */
export class FakeClock {
  constructor(start = 1_000_000) {
    this.time = start;
    this.timers = new Map();
    this.nextId = 1;
  }

  now = () => this.time;

  setTimeout = (callback, ms = 0) => {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + ms, callback });
    return id;
  };

  clearTimeout = (id) => {
    this.timers.delete(id);
  };

  /** Move time on by `ms`, running every timer that falls due on the way, in order. */
  async advance(ms) {
    const until = this.time + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      const [id, timer] = due;
      this.timers.delete(id);
      this.time = timer.at;
      await timer.callback();
      await settle();
    }
    this.time = until;
  }

  /** Delays of the timers still pending, from now. */
  get pending() {
    return [...this.timers.values()].map((t) => t.at - this.time).sort((a, b) => a - b);
  }
}

/** Let promise chains (an inbox, an awaited fetch) run to their end. */
export async function settle() {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A fetch that answers from `routes` ({"GET /api/v1/me": {status, body}|Error}) and records
 * every request as {url, method, headers, body} in `fetch.requests`. */
export function fakeFetch(routes) {
  const requests = [];
  const fetch = async (url, options = {}) => {
    const method = options.method || "GET";
    requests.push({ url, method, headers: options.headers || {}, body: options.body, credentials: options.credentials });
    const answer = routes[`${method} ${url}`];
    if (answer === undefined) return response(404, { detail: "not found" });
    if (answer instanceof Error) throw answer;
    return response(answer.status ?? 200, answer.body);
  };
  fetch.requests = requests;
  return fetch;
}

function response(status, body) {
  return {
    ok: status >= 200 && status < 300,
    status,
    json: async () => {
      if (body === undefined) throw new SyntaxError("Unexpected end of JSON input");
      return body;
    },
  };
}

/** A peer connection that records what the mesh does with it. */
export class FakePeerConnection {
  static made = [];

  static reset() {
    FakePeerConnection.made = [];
  }

  constructor(config) {
    this.config = config;
    this.calls = [];
    this.tracks = [];
    this.candidates = [];
    this.localDescription = null;
    this.remoteDescription = null;
    this.iceConnectionState = "new";
    this.connectionState = "new";
    this.closed = false;
    this.offers = 0;
    FakePeerConnection.made.push(this);
  }

  addTrack(track, stream) {
    this.tracks.push({ track, stream });
  }

  async createOffer(options = {}) {
    this.offers += 1;
    this.calls.push(["createOffer", options]);
    return { type: "offer", sdp: `offer-${this.offers}${options.iceRestart ? "-restart" : ""}` };
  }

  async createAnswer() {
    this.calls.push(["createAnswer"]);
    return { type: "answer", sdp: "answer" };
  }

  async setLocalDescription(description) {
    this.localDescription = description;
  }

  async setRemoteDescription(description) {
    this.remoteDescription = description;
  }

  async addIceCandidate(candidate) {
    this.candidates.push(candidate);
  }

  close() {
    this.closed = true;
  }

  /** ICE reaches `state` (and the handlers hear of it). */
  iceBecomes(state) {
    this.iceConnectionState = state;
    this.oniceconnectionstatechange?.();
  }
}

/** A local stream with one audio and one video track. */
export function fakeStream() {
  const tracks = [
    { kind: "audio", enabled: true, stop() {} },
    { kind: "video", enabled: true, stop() {} },
  ];
  return {
    getTracks: () => tracks,
    getAudioTracks: () => tracks.filter((t) => t.kind === "audio"),
    getVideoTracks: () => tracks.filter((t) => t.kind === "video"),
  };
}

/** Just enough of the DOM for the modules that build elements: elements with text, classes,
 * attributes, children and listeners. Setting innerHTML throws (the pages never do); outerHTML
 * escapes text as a browser would, so a test can see what the markup would be. */
export class FakeDocument {
  constructor() {
    this.body = new FakeElement("body", this);
    this.activeElement = null;
  }

  createElement(tag) {
    return new FakeElement(tag, this);
  }

  createTextNode(text) {
    return new FakeText(text);
  }

  getElementById(id) {
    return this.body.find((node) => node.getAttribute?.("id") === id);
  }

  /** A new element with this id in the body (what the page's HTML would have). */
  add(tag, id) {
    const node = this.createElement(tag);
    node.setAttribute("id", id);
    this.body.append(node);
    return node;
  }
}

class FakeText {
  constructor(text) {
    this.textContent = String(text);
  }

  get outerHTML() {
    return escapeHtml(this.textContent);
  }
}

export class FakeElement {
  constructor(tag, ownerDocument) {
    this.tagName = tag.toUpperCase();
    this.ownerDocument = ownerDocument;
    this.childNodes = [];
    this.parentNode = null;
    this.attributes = new Map();
    this.dataset = {};
    this.listeners = new Map();
    this.hidden = false;
    this.scrolledIntoView = 0;
  }

  get children() {
    return this.childNodes.filter((node) => node instanceof FakeElement);
  }

  get className() {
    return this.attributes.get("class") ?? "";
  }

  set className(value) {
    this.attributes.set("class", String(value));
  }

  get textContent() {
    return this.childNodes.map((node) => node.textContent).join("");
  }

  set textContent(value) {
    this.replaceChildren(new FakeText(value ?? ""));
  }

  set innerHTML(_) {
    throw new Error("innerHTML set: text must go in as textContent");
  }

  get outerHTML() {
    const tag = this.tagName.toLowerCase();
    const attrs = [...this.attributes].map(([name, value]) => ` ${name}="${escapeHtml(value)}"`).join("");
    return `<${tag}${attrs}>${this.childNodes.map((node) => node.outerHTML).join("")}</${tag}>`;
  }

  setAttribute(name, value) {
    this.attributes.set(name, String(value));
  }

  getAttribute(name) {
    return this.attributes.has(name) ? this.attributes.get(name) : null;
  }

  append(...nodes) {
    for (const node of nodes) {
      const child = typeof node === "string" ? new FakeText(node) : node;
      child.parentNode = this;
      this.childNodes.push(child);
    }
  }

  replaceChildren(...nodes) {
    this.childNodes = [];
    this.append(...nodes);
  }

  remove() {
    if (!this.parentNode) return;
    this.parentNode.childNodes = this.parentNode.childNodes.filter((node) => node !== this);
    this.parentNode = null;
  }

  /** The first element at or under this one for which `test` holds. */
  find(test) {
    if (test(this)) return this;
    for (const child of this.children) {
      const found = child.find(test);
      if (found) return found;
    }
    return null;
  }

  addEventListener(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(listener);
  }

  /** The browser delivers an event of `type`; gives the event (defaultPrevented, ...). */
  dispatch(type, fields = {}) {
    const event = { type, target: this, currentTarget: this, defaultPrevented: false, ...fields };
    event.preventDefault = () => { event.defaultPrevented = true; };
    for (const listener of this.listeners.get(type) || []) listener(event);
    return event;
  }

  click() {
    return this.dispatch("click");
  }

  scrollIntoView() {
    this.scrolledIntoView += 1;
  }
}

function escapeHtml(text) {
  return String(text).replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}
