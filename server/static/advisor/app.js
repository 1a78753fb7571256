// The advisor's workspace: log in, see waiting calls, take one, talk, hang up.
// Plain ES module, no dependencies, nothing loaded from outside this server.

import { changePassword, fetchAccount } from "/static/js/account.js";
import { ready as brandingReady } from "/static/js/branding.js";
import { chosenLanguage, languagePicker, setLanguage, t } from "/static/js/i18n.js";
import { Mesh } from "/static/js/mesh.js";
import { Clock } from "/static/js/time.js";

const $ = (id) => document.getElementById(id);
const PROTOCOL_VERSION = 1;
// A call whose signalling stays lost longer than the server waits for it (its welcome says how
// long) ends here; until then the workspace reconnects every second and resumes the call.
let reconnectLimitMs = 90000;

const state = {
  ws: null,
  me: null, // this workspace's participant id (from the server's welcome)
  session: null, // {id, mesh, peer, appointmentId}
  waiting: [],
  joinRequests: new Map(), // participant id -> peer waiting to join the running call
  localStream: null,
  statsTimer: null,
  reconnectDelay: 1000,
  appointments: [],
  lobby: new Map(), // appointment id -> waiting entry
  completed: new Set(), // appointments whose call ended in this workspace
  clock: new Clock(), // times in the organisation's zone, as the invitations say them
};

function show(view) {
  for (const id of ["login-view", "queue-view", "call-view"]) $(id).hidden = id !== view;
  // The workspace is the queue and the day's appointments together.
  $("appointments-view").hidden = view !== "queue-view";
}

function notice(text) {
  const el = $("notice");
  el.textContent = text || "";
  el.hidden = !text;
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    ...options,
  });
  let body = null;
  try { body = await response.json(); } catch { /* empty body */ }
  return { ok: response.ok, status: response.status, body };
}

// ------------------------------------------------------------------ login

async function boot() {
  await setLanguage(chosenLanguage());
  state.clock = new Clock((await brandingReady)?.timezone);
  languagePicker($("language"), () => {
    renderAppointments();
    renderZone();
    renderQueue(state.waiting, { quiet: true });
    renderJoinRequests();
    if (state.session) updateCallState();
  });
  setInterval(() => renderQueue(state.waiting, { quiet: true }), 15000); // waiting times
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("change-password").addEventListener("click", onChangePassword);
  $("hangup").addEventListener("click", () => hangUp("advisor_hangup"));
  $("mute").addEventListener("click", toggleMute);
  $("camera").addEventListener("click", toggleCamera);
  $("chat-form").addEventListener("submit", sendChat);
  $("appointment-form").addEventListener("submit", createAppointment);
  defaultStart();
  renderZone();
  $("invitation-copy").addEventListener("click", () => navigator.clipboard.writeText($("invitation-text").value));
  $("invite-form").addEventListener("submit", createInvitation);
  $("invite-copy").addEventListener("click", () => navigator.clipboard.writeText($("invite-link").href));
  const me = await api("/api/v1/me");
  if (me.ok) enterWorkspace(me.body);
  else show("login-view");
}

async function onLogin(event) {
  event.preventDefault();
  const result = await api("/api/v1/auth/login", {
    method: "POST",
    body: JSON.stringify({ username: $("username").value, password: $("password").value }),
  });
  if (!result.ok) {
    notice(result.body?.detail || t("login.failed", { status: result.status }));
    return;
  }
  $("password").value = "";
  notice("");
  enterWorkspace(result.body);
}

function loginEnded() {
  state.ws = null;
  $("who").hidden = true;
  $("logout").hidden = true;
  $("change-password").hidden = true;
  show("login-view");
  notice(t("login.ended"));
}

async function onChangePassword() {
  if (await changePassword()) notice(t("account.changed"));
}

async function onLogout() {
  await api("/api/v1/auth/logout", { method: "POST", body: "{}" });
  if (state.ws) state.ws.close();
  location.reload();
}

async function enterWorkspace(me) {
  $("who").textContent = me.name;
  $("who").hidden = false;
  $("logout").hidden = false;
  $("change-password").hidden = false;
  // A password an administrator generated is changed before anything else (the server
  // refuses everything else until then).
  const account = await fetchAccount();
  if (account && account.must_change_password) {
    show("password");
    await changePassword({ required: true });
    notice(t("account.changed"));
  }
  show("queue-view");
  connect();
  loadAppointments();
}

// ------------------------------------------------------------------ signalling

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/ws`);
  state.ws = ws;
  ws.onopen = () => {
    state.reconnectDelay = 1000;
    $("connection-state").dataset.i18n = "online";
    $("connection-state").textContent = t("online");
    const session = state.session;
    // First of all: take the call up again (media went on meanwhile, peer to peer).
    if (session && session.resumeToken) {
      send("resume", { id: "resume", session_id: session.id, token: session.resumeToken });
    }
    if (session === null) loadAppointments(); // anything may have changed meanwhile
  };
  ws.onmessage = (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    // One at a time, in order: an offer must be applied before its candidates.
    state.inbox = (state.inbox || Promise.resolve())
      .then(() => handle(message))
      .catch((error) => console.error("handling", message.type, error));
  };
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    $("connection-state").dataset.i18n = "offline";
    $("connection-state").textContent = t("offline");
    if (event.code === 4003) {
      // The login ended (logged out elsewhere, disabled, password reset, expired).
      if (state.session) endCall("");
      loginEnded();
      return;
    }
    if (event.code === 1008 || event.code === 4001 || event.code === 4002) {
      // Refused, or this call was taken up in another window: nothing to come back to.
      if (state.session) endCall(t("call.server_lost"));
      return;
    }
    const session = state.session;
    if (session) {
      session.lostAt = session.lostAt || Date.now();
      if (Date.now() - session.lostAt > reconnectLimitMs) {
        endCall(t("call.server_lost"));
      } else {
        updateCallState();
        setTimeout(connect, 1000); // a call is going on: every second counts
        return;
      }
    }
    setTimeout(reconnect, state.reconnectDelay);
    state.reconnectDelay = Math.min(state.reconnectDelay * 2, 30000);
  };
}

// A socket refused at its handshake says nothing about why: ask whether the login still holds
// (it expired while the workspace was away, say) before trying again.
async function reconnect() {
  const me = await api("/api/v1/me").catch(() => ({ ok: false, status: 0 }));
  if (me.status === 401) loginEnded();
  else connect();
}

function send(type, fields = {}) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type, ...fields }));
  }
}

function inSession(message) {
  return state.session && message.session_id === state.session.id;
}

async function handle(message) {
  const mesh = state.session?.mesh;
  switch (message.type) {
    case "welcome":
      state.me = message.participant_id;
      // A little longer than the server waits: its verdict (resumed or ended) comes first.
      if (message.resume_grace_seconds) reconnectLimitMs = (message.resume_grace_seconds + 10) * 1000;
      break;
    case "resumed":
      if (inSession(message)) {
        state.me = message.participant_id;
        state.session.lostAt = null;
        state.session.away = new Set(message.away);
        // Who is in the call now, as the server says: nobody else is answered.
        state.session.mesh.knowOnly(message.peers);
        updateCallState();
        flushChat();
      }
      break;
    case "participant_away":
    case "participant_back":
      if (inSession(message)) {
        const away = state.session.away;
        if (message.type === "participant_away") away.add(message.participant_id);
        else away.delete(message.participant_id);
        updateCallState();
      }
      break;
    case "queue": renderQueue(message.waiting); break;
    case "call_started": await startCall(message); break;
    case "offer": if (inSession(message)) await mesh.onOffer(message); break;
    case "answer": if (inSession(message)) await mesh.onAnswer(message); break;
    case "ice_candidate": if (inSession(message)) await mesh.onCandidate(message); break;
    case "participant_waiting":
      if (inSession(message)) {
        state.joinRequests.set(message.peer.participant_id, message.peer);
        renderJoinRequests();
        chime();
      }
      break;
    case "participant_joined":
      if (inSession(message)) {
        state.joinRequests.delete(message.peer.participant_id);
        renderJoinRequests();
        tileFor(message.peer); // with its "remove" control, before any media arrives
        await mesh.offerTo(message.peer); // whoever is in the call offers to the newcomer
      }
      break;
    case "participant_left":
      if (inSession(message)) {
        state.joinRequests.delete(message.participant_id);
        renderJoinRequests();
        mesh.remove(message.participant_id);
      }
      break;
    case "call_stats": showPeerStats(message); break;
    case "chat": showChat(message); break;
    case "hangup":
      if (inSession(message)) {
        const lost = ["peer_disconnected", "connection_lost"].includes(message.reason);
        endCall(lost ? t("call.peer_lost") : t("call.peer_ended"));
      }
      break;
    case "error":
      if (message.ref === "resume" && state.session) endCall(t("call.server_lost"));
      else notice(t("server_refused", { message: message.message }));
      break;
    default: break;
  }
}

// ------------------------------------------------------------------ queue

function chime() {
  // A short, soft two-tone chime made here: no sound file, nothing fetched.
  try {
    const context = new AudioContext();
    const gain = context.createGain();
    gain.gain.value = 0.08;
    gain.connect(context.destination);
    [660, 880].forEach((frequency, index) => {
      const tone = context.createOscillator();
      tone.frequency.value = frequency;
      tone.connect(gain);
      tone.start(context.currentTime + index * 0.18);
      tone.stop(context.currentTime + index * 0.18 + 0.15);
    });
    setTimeout(() => context.close(), 1000);
  } catch { /* no audio output: the title still changes */ }
}

function minutesSince(when) {
  return Math.max(0, Math.floor((Date.now() - new Date(when).getTime()) / 60000));
}

function queueName(call) {
  const topic = call.topic_name || t("queue.any_topic");
  return call.region ? `${topic} · ${call.region}` : topic;
}

// The lists are rebuilt on every update: a keyboard user's focus stays on the same button.
function focusedButton() {
  const el = document.activeElement;
  return el?.closest("#queues, #queue, #appointments") ? el.getAttribute("aria-label") : null;
}

function refocus(label) {
  if (!label) return;
  const buttons = document.querySelectorAll("#queues button, #queue button, #appointments button");
  [...buttons].find((b) => b.getAttribute("aria-label") === label)?.focus();
}

function renderQueue(waiting, { quiet = false } = {}) {
  const focused = focusedButton();
  const known = state.waitingIds || new Set();
  state.waiting = waiting;
  state.waitingIds = new Set(waiting.map((w) => w.session_id));
  if (!quiet && waiting.some((w) => !known.has(w.session_id)) && !state.session) chime();
  state.lobby = new Map(waiting.filter((w) => w.appointment_id).map((w) => [w.appointment_id, w]));
  renderAppointments();
  $("queue-empty").hidden = waiting.length > 0;

  // The walk-in queues (per topic and region): how many wait, for how long, take the next.
  const queues = new Map();
  for (const call of waiting.filter((w) => !w.appointment_id)) {
    const key = queueName(call);
    if (!queues.has(key)) queues.set(key, []);
    queues.get(key).push(call);
  }
  const summary = $("queues");
  summary.replaceChildren();
  for (const [name, calls] of queues) {
    const box = document.createElement("div");
    box.className = "queue-summary";
    box.dataset.queue = name;
    const title = document.createElement("span");
    title.className = "name";
    title.textContent = name;
    const figures = document.createElement("span");
    figures.className = "since";
    figures.textContent = t("queue.summary", { count: calls.length, minutes: minutesSince(calls[0].waiting_since) });
    const next = document.createElement("button");
    next.type = "button";
    next.textContent = t("queue.accept_next");
    next.setAttribute("aria-label", t("queue.accept_next_label", { queue: name }));
    next.addEventListener("click", () => accept_(calls[0].session_id, next));
    box.append(title, figures, next);
    summary.append(box);
  }

  const list = $("queue");
  list.replaceChildren();
  for (const call of waiting) {
    const item = document.createElement("li");
    item.dataset.sessionId = call.session_id;
    item.dataset.callerRole = call.caller_role;
    const name = document.createElement("span");
    name.className = "name";
    const where = call.caller_role === "booth" ? t("queue.at_booth") : t("queue.from_home");
    name.textContent = call.appointment_id
      ? t("queue.in_lobby", { name: call.caller_name, where })
      : `${call.caller_name} (${where}) · ${queueName(call)}`;
    const since = document.createElement("span");
    since.className = "since";
    since.textContent = t("queue.waiting_minutes", { minutes: minutesSince(call.waiting_since) });
    const accept = document.createElement("button");
    accept.type = "button";
    accept.textContent = call.appointment_id ? t("queue.admit") : t("queue.accept");
    accept.setAttribute("aria-label", call.appointment_id
      ? t("queue.admit_label", { name: call.caller_name })
      : t("queue.accept_label", { name: call.caller_name }));
    accept.addEventListener("click", () => accept_(call.session_id, accept));
    item.append(name, since, accept);
    list.append(item);
  }
  const title = t("advisor.title");
  document.title = waiting.length ? `(${waiting.length}) ${title}` : title;
  refocus(focused);
}

// Booths send H.264 (encoded once, in hardware where the booth has it). A browser without an
// H.264 decoder (Debian's Firefox without the OpenH264 plug-in) could not show the booth.
function canShowBoothVideo() {
  const codecs = window.RTCRtpReceiver?.getCapabilities?.("video")?.codecs || [];
  return codecs.some((c) => c.mimeType.toLowerCase() === "video/h264");
}

async function accept_(sessionId, button) {
  if (state.session) return;
  const call = state.waiting.find((w) => w.session_id === sessionId);
  if (call && call.caller_role === "booth" && !canShowBoothVideo()) {
    notice(t("queue.no_h264"));
    return;
  }
  button.disabled = true;
  try {
    // Ask for the camera first, so the call starts with media ready.
    state.localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  } catch (error) {
    notice(t("camera_unavailable", { message: error.message }));
    button.disabled = false;
    return;
  }
  $("local-video").srcObject = state.localStream;
  send("call_accept", { session_id: sessionId });
}

// ------------------------------------------------------------------ appointments

// The form starts at the next quarter hour; times are the organisation's, as in the invitation.
function defaultStart() {
  if (!$("appointment-start").value) $("appointment-start").value = state.clock.nextQuarterHour();
}

function renderZone() {
  $("appointment-zone").hidden = !state.clock.foreign;
  $("appointment-zone").textContent = t("appointments.zone", { zone: state.clock.zone });
}

async function loadAppointments() {
  const day = state.clock.today(); // the organisation's day, which the server lists
  const result = await api(`/api/v1/appointments?day=${day}`);
  if (result.ok) {
    state.appointments = result.body.appointments;
    renderAppointments();
  }
}

function appointmentState(appointment) {
  if (appointment.status !== "scheduled") return appointment.status;
  if (state.session && state.session.appointmentId === appointment.id) return "in_call";
  if (state.lobby && state.lobby.has(appointment.id)) return "waiting";
  if (state.completed.has(appointment.id)) return "done";
  return new Date(appointment.join_closes_at) < new Date() ? "done" : "not arrived";
}

const STATE_KEYS = { waiting: "state.waiting", in_call: "state.in_call", done: "state.done", cancelled: "state.cancelled", "not arrived": "state.not_arrived" };

function renderAppointments() {
  const focused = focusedButton();
  const list = $("appointments");
  const items = state.appointments || [];
  list.replaceChildren();
  $("appointments-empty").hidden = items.length > 0;
  for (const appointment of items) {
    const item = document.createElement("li");
    item.dataset.appointmentId = appointment.id;
    const when = document.createElement("span");
    when.className = "name";
    when.textContent = `${state.clock.time(appointment.starts_at)} · ${appointment.duration_minutes} min` +
      (appointment.citizen_label ? ` · ${appointment.citizen_label}` : "");
    const status = document.createElement("span");
    const current = appointmentState(appointment);
    status.className = `status ${current.replace(" ", "_")}`;
    status.textContent = STATE_KEYS[current] ? t(STATE_KEYS[current]) : current;
    item.append(when, status);
    if (appointment.status === "scheduled") {
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.textContent = t("appointments.cancel");
      cancel.setAttribute("aria-label", t("appointments.cancel_label", { when: when.textContent }));
      cancel.addEventListener("click", async () => {
        if (!confirm(t("appointments.cancel_confirm"))) return;
        await api(`/api/v1/appointments/${appointment.id}/cancel`, { method: "POST", body: "{}" });
        loadAppointments();
      });
      item.append(cancel);
    }
    list.append(item);
  }
  refocus(focused);
}

async function createAppointment(event) {
  event.preventDefault();
  const start = state.clock.fromInput($("appointment-start").value);
  if (!start || Number.isNaN(start.getTime())) { notice(t("appointments.choose_time")); return; }
  const label = $("appointment-label").value.trim();
  const result = await api("/api/v1/appointments", {
    method: "POST",
    body: JSON.stringify({
      starts_at: start.toISOString(),
      duration_minutes: Number($("appointment-duration").value),
      channel: $("appointment-channel").value,
      ...(label ? { citizen_label: label } : {}),
    }),
  });
  if (!result.ok) { notice(result.body?.detail || t("appointments.failed", { status: result.status })); return; }
  notice("");
  const created = result.body;
  $("invitation-link").textContent = created.join_link;
  $("invitation-link").href = created.join_link;
  $("invitation-code").textContent = created.join_code;
  $("invitation-qr").src = `data:image/svg+xml;base64,${btoa(created.qr_svg)}`;
  $("invitation-text").value = `${created.invitation.de}\n\n${created.invitation.en}`;
  $("invitation").hidden = false;
  $("appointment-form").reset();
  defaultStart();
  loadAppointments();
}

// ------------------------------------------------------------------ call

async function startCall(message) {
  if (!state.localStream) {
    state.localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    $("local-video").srcObject = state.localStream;
  }
  const waiting = [...(state.lobby || new Map()).values()].find((w) => w.session_id === message.session_id);
  const remote = $("remote-video");
  delete remote.dataset.firstFrameAt;
  const mesh = new Mesh({
    sessionId: message.session_id,
    config: message,
    localStream: state.localStream,
    send,
    onTrack: (peer, stream, track) => showRemote(peer, stream, track),
    onState: () => updateCallState(),
    onGone: (peer) => removeTile(peer.participant_id),
  });
  mesh.know(message.peers || [message.peer]);
  state.session = {
    id: message.session_id, mesh, peer: message.peer,
    appointmentId: waiting ? waiting.appointment_id : null,
    resumeToken: message.resume_token || null,
    lostAt: null, // when the signalling connection was lost (null: it is up)
    outbox: [], // chat typed while the connection was lost
    away: new Set(), // participants whose own signalling is lost for the moment
  };
  state.joinRequests.clear();
  renderJoinRequests();
  $("peer-name").textContent = message.peer.name;
  $("mute").setAttribute("aria-pressed", "false");
  $("camera").setAttribute("aria-pressed", "false");
  $("invite-result").hidden = true;
  $("tiles").replaceChildren();
  updateCallState();
  show("call-view");
  if (message.offerer) await mesh.offerTo(message.peer);
  state.statsTimer = setInterval(updateStats, 1000);
}

// The caller (booth or citizen) fills the stage; anyone invited gets a tile beside it.
function showRemote(peer, stream, track) {
  const session = state.session;
  if (!session) return;
  let video;
  if (peer.participant_id === session.peer.participant_id) {
    video = $("remote-video");
  } else {
    video = tileFor(peer).querySelector("video");
  }
  if (video.srcObject !== stream) video.srcObject = stream;
  if (track.kind === "video") watchFirstFrame(video);
  updateCallState();
}

// Someone admitted into the call (an interpreter, a colleague): a tile with their video and a
// control that takes them out of the call again.
function tileFor(peer) {
  const existing = document.querySelector(`#tiles li[data-participant-id="${CSS.escape(peer.participant_id)}"]`);
  if (existing) return existing;
  const tile = document.createElement("li");
  tile.dataset.participantId = peer.participant_id;
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  video.setAttribute("aria-label", t("call.video_of", { name: peer.name }));
  const caption = document.createElement("span");
  caption.textContent = peer.name;
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "secondary remove";
  remove.textContent = t("call.remove");
  remove.setAttribute("aria-label", t("call.remove_label", { name: peer.name }));
  remove.addEventListener("click", () => {
    if (!state.session || !confirm(t("call.remove_confirm", { name: peer.name }))) return;
    remove.disabled = true;
    send("remove", { session_id: state.session.id, participant_id: peer.participant_id });
  });
  tile.append(video, caption, remove);
  $("tiles").append(tile);
  return tile;
}

function removeTile(participantId) {
  document.querySelector(`#tiles li[data-participant-id="${CSS.escape(participantId)}"]`)?.remove();
  updateCallState();
}

function updateCallState() {
  const session = state.session;
  if (!session) return;
  const leg = session.mesh.legs.get(session.peer.participant_id);
  let current = leg ? leg.pc.connectionState : "connecting";
  if (session.mesh.reconnecting || session.lostAt || session.away.has(session.peer.participant_id)) {
    current = "reconnecting";
  }
  const pill = $("call-state");
  pill.dataset.state = current;
  pill.textContent = t(`call.state.${current}`);
  $("reconnecting").hidden = current !== "reconnecting";
}

function renderJoinRequests() {
  const list = $("join-requests");
  list.replaceChildren();
  $("join-requests-view").hidden = state.joinRequests.size === 0;
  for (const peer of state.joinRequests.values()) {
    const item = document.createElement("li");
    item.dataset.participantId = peer.participant_id;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = peer.name;
    const admit = document.createElement("button");
    admit.type = "button";
    admit.textContent = t("queue.admit");
    admit.setAttribute("aria-label", t("call.admit_label", { name: peer.name }));
    admit.addEventListener("click", () => {
      admit.disabled = true;
      send("admit", { session_id: state.session.id, participant_id: peer.participant_id });
    });
    const decline = document.createElement("button");
    decline.type = "button";
    decline.className = "secondary";
    decline.textContent = t("call.decline");
    decline.setAttribute("aria-label", t("call.decline_label", { name: peer.name }));
    decline.addEventListener("click", () => {
      send("remove", { session_id: state.session.id, participant_id: peer.participant_id });
      state.joinRequests.delete(peer.participant_id);
      renderJoinRequests();
    });
    item.append(name, admit, decline);
    list.append(item);
  }
}

async function createInvitation(event) {
  event.preventDefault();
  if (!state.session) return;
  const label = $("invite-label").value.trim();
  const result = await api(`/api/v1/calls/${state.session.id}/invitations`, {
    method: "POST", body: JSON.stringify({ label }),
  });
  if (!result.ok) { notice(result.body?.detail || t("call.invite_failed")); return; }
  notice("");
  $("invite-link").href = result.body.link;
  $("invite-link").textContent = result.body.link;
  $("invite-result").hidden = false;
  $("invite-label").value = "";
}

function watchFirstFrame(video) {
  if (!("requestVideoFrameCallback" in video)) return;
  video.requestVideoFrameCallback(() => {
    if (!video.dataset.firstFrameAt) video.dataset.firstFrameAt = String(Date.now());
  });
}

function hangUp(reason) {
  if (!state.session) return;
  send("hangup", { session_id: state.session.id, reason });
  endCall("");
}

function endCall(text) {
  const session = state.session;
  state.session = null;
  if (session && session.appointmentId) state.completed.add(session.appointmentId);
  clearInterval(state.statsTimer);
  if (session) session.mesh.close();
  if (state.localStream) for (const track of state.localStream.getTracks()) track.stop();
  state.localStream = null;
  state.joinRequests.clear();
  $("remote-video").srcObject = null;
  $("local-video").srcObject = null;
  $("tiles").replaceChildren();
  $("invite-result").hidden = true;
  $("reconnecting").hidden = true;
  for (const id of ["stat-booth-sent", "stat-booth-received"]) $(id).textContent = "–";
  $("chat-log").replaceChildren(); // the chat is gone with the call
  show("queue-view");
  renderAppointments();
  notice(text);
}

// ------------------------------------------------------------------ chat

function sendChat(event) {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!state.session || !text) return;
  state.session.outbox.push({ session_id: state.session.id, text });
  flushChat();
  input.value = "";
}

function flushChat() {
  // What the advisor typed while the connection was lost goes out after the resume, in order.
  const session = state.session;
  if (!session || session.lostAt || !state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  for (const fields of session.outbox.splice(0)) send("chat", fields);
}

function showChat(message) {
  if (!state.session || message.session_id !== state.session.id) return;
  const item = document.createElement("li");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = message.sender === state.me ? t("chat.you") : message.sender_name;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message.text; // never innerHTML: the text is the other party's
  item.append(who, text);
  $("chat-log").append(item);
  item.scrollIntoView({ block: "nearest" });
}

function toggleMute() {
  const button = $("mute");
  const muted = button.getAttribute("aria-pressed") !== "true";
  for (const track of state.localStream?.getAudioTracks() || []) track.enabled = !muted;
  button.setAttribute("aria-pressed", String(muted));
  button.dataset.i18n = muted ? "call.unmute" : "call.mute";
  button.textContent = t(button.dataset.i18n);
}

function toggleCamera() {
  const button = $("camera");
  const off = button.getAttribute("aria-pressed") !== "true";
  for (const track of state.localStream?.getVideoTracks() || []) track.enabled = !off;
  button.setAttribute("aria-pressed", String(off));
  button.dataset.i18n = off ? "call.camera_on" : "call.camera_off";
  button.textContent = t(button.dataset.i18n);
}

// ------------------------------------------------------------------ statistics

function describe(direction) {
  const parts = [];
  if (direction.width) parts.push(`${direction.width}×${direction.height}`);
  if (direction.fps !== undefined) parts.push(`${Math.round(direction.fps)} fps`);
  if (direction.bitrate_kbps !== undefined) parts.push(`${Math.round(direction.bitrate_kbps)} kbit/s`);
  if (direction.loss_pct !== undefined) parts.push(`loss ${direction.loss_pct} %`);
  if (direction.rtt_ms !== undefined) parts.push(`RTT ${Math.round(direction.rtt_ms)} ms`);
  if (direction.jitter_ms !== undefined) parts.push(`jitter ${direction.jitter_ms} ms`);
  return parts.join(", ") || "–";
}

function showPeerStats(message) {
  if (!state.session || message.session_id !== state.session.id) return;
  for (const [id, direction] of [["stat-booth-sent", message.sent], ["stat-booth-received", message.received]]) {
    const el = $(id);
    el.textContent = describe(direction);
    el.dataset.fps = String(direction.fps ?? "");
    el.dataset.bitrateKbps = String(direction.bitrate_kbps ?? "");
  }
}

async function updateStats() {
  const session = state.session;
  const leg = session?.mesh.legs.get(session.peer.participant_id);
  if (!leg) return;
  updateCallState();
  const report = await leg.pc.getStats();
  let audioIn = 0, audioOut = 0, video = null, pair = null;
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") audioIn = s.packetsReceived;
    if (s.type === "outbound-rtp" && s.kind === "audio") audioOut = s.packetsSent;
    if (s.type === "inbound-rtp" && s.kind === "video") video = s;
    if (s.type === "transport" && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
  });
  const videoEl = $("stat-video-in");
  if (video) {
    const codec = byId.get(video.codecId)?.mimeType || "?";
    videoEl.dataset.fps = String(video.framesPerSecond || 0);
    videoEl.dataset.frames = String(video.framesDecoded || 0);
    videoEl.textContent = `${codec} ${video.frameWidth || 0}×${video.frameHeight || 0} ` +
      `${Math.round(video.framesPerSecond || 0)} fps, lost ${video.packetsLost || 0}`;
  }
  const audioEl = $("stat-audio");
  audioEl.dataset.in = String(audioIn);
  audioEl.dataset.out = String(audioOut);
  audioEl.textContent = `${audioIn} / ${audioOut}`;
  if (pair) {
    const local = byId.get(pair.localCandidateId);
    const remote = byId.get(pair.remoteCandidateId);
    const pathEl = $("stat-path");
    pathEl.dataset.localType = local?.candidateType || "";
    pathEl.dataset.remoteType = remote?.candidateType || "";
    const rtt = pair.currentRoundTripTime ? ` RTT ${Math.round(pair.currentRoundTripTime * 1000)} ms` : "";
    pathEl.textContent = `${local?.candidateType} → ${remote?.candidateType}${rtt}`;
  }
}

boot();
