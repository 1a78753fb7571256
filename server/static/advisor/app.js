// The advisor's workspace: log in, see waiting calls, take one, talk, hang up.
// Plain ES module, no dependencies, nothing loaded from outside this server.
// Its length: the workspace's own parts (login, the queue, taking a call, invitations, the
// call's participants) share one page state; the call's machinery is in the shared modules.

import { changePassword, fetchAccount } from "/static/js/account.js";
import { api } from "/static/js/api.js";
import { ready as brandingReady } from "/static/js/branding.js";
import { clearCallView, removeTile, showCallState, showRemote as showRemoteMedia, tileFor as callTile, wireToggles } from "/static/js/call-view.js";
import { showChatMessage, wireChat } from "/static/js/chat.js";
import { $, button, element, keepingFocus, notice, showOnly } from "/static/js/dom.js";
import { chosenLanguage, languagePicker, setLanguage, t } from "/static/js/i18n.js";
import { Mesh } from "/static/js/mesh.js";
import { applyQueueChange } from "/static/js/queue.js";
import { afterLogout, offerSingleSignOn } from "/static/js/signin.js";
import { SignallingClient } from "/static/js/signalling.js";
import { Clock } from "/static/js/time.js";

// The lists rebuilt on every update, where a keyboard user's focus is kept.
const LISTS = "#queues, #queue, #appointments";

// The workspace stays connected (the queue comes over the socket); a call whose signalling is
// lost is resumed every second until the server's resume window has passed.
const signalling = new SignallingClient({
  keepConnected: true,
  // 4003: the login ended (logged out elsewhere, disabled, password reset, expired); 1008,
  // 4001, 4002: refused, or this call was taken up in another window.
  finalCodes: [1008, 4001, 4002, 4003],
  onOpen: onSocketOpen,
  onMessage: handle,
  onDown: onSocketDown,
  beforeReconnect: loginHolds,
});
const send = (type, fields) => signalling.send(type, fields);

const state = {
  me: null, // this workspace's participant id (from the server's welcome)
  session: null, // {id, mesh, peer, appointmentId}
  waiting: [],
  joinRequests: new Map(), // participant id -> peer waiting to join the running call
  localStream: null,
  statsTimer: null,
  appointments: [],
  lobby: new Map(), // appointment id -> waiting entry
  completed: new Set(), // appointments whose call ended in this workspace
  clock: new Clock(), // times in the organisation's zone, as the invitations say them
};

function show(view) {
  showOnly(["login-view", "queue-view", "call-view"], view);
  // The workspace is the queue and the day's appointments together.
  $("appointments-view").hidden = view !== "queue-view";
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
  wireToggles(() => state.localStream);
  wireChat($("chat-form"), $("chat-input"), sendChat);
  $("appointment-form").addEventListener("submit", createAppointment);
  defaultStart();
  renderZone();
  $("invitation-copy").addEventListener("click", () => navigator.clipboard.writeText($("invitation-text").value));
  $("invite-form").addEventListener("submit", createInvitation);
  $("invite-copy").addEventListener("click", () => navigator.clipboard.writeText($("invite-link").href));
  // The login view (now, or when a login ends) offers the identity provider where there is one.
  await offerSingleSignOn(api, { link: $("sso"), form: $("login-form"), next: "/advisor/" });
  const me = await api("/me");
  if (me.ok) enterWorkspace(me.body);
  else show("login-view");
}

async function onLogin(event) {
  event.preventDefault();
  const result = await api("/auth/login", {
    method: "POST",
    body: { username: $("username").value, password: $("password").value },
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
  signalling.stop();
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
  const result = await api("/auth/logout", { method: "POST", body: {} });
  signalling.stop();
  afterLogout(result);
}

async function enterWorkspace(me) {
  // Invitations by e-mail where the server sends them ([mail]).
  $("appointment-mail").hidden = !me.features?.email_invitations;
  $("who").textContent = me.name;
  $("who").hidden = false;
  $("logout").hidden = false;
  $("change-password").hidden = false;
  // A password an administrator generated is changed before anything else (the server
  // refuses everything else until then).
  const account = await fetchAccount();
  if (account?.single_sign_on) $("change-password").hidden = true;
  if (account && account.must_change_password) {
    show("password");
    await changePassword({ required: true });
    notice(t("account.changed"));
  }
  show("queue-view");
  signalling.connect();
  loadAppointments();
}

// ------------------------------------------------------------------ signalling

function onSocketOpen() {
  $("connection-state").dataset.i18n = "online";
  $("connection-state").textContent = t("online");
  if (state.session === null) loadAppointments(); // anything may have changed meanwhile
}

function onSocketDown({ code, resuming, gaveUp }) {
  $("connection-state").dataset.i18n = "offline";
  $("connection-state").textContent = t("offline");
  if (code === 4003) {
    if (state.session) endCall("");
    loginEnded();
  } else if (resuming) {
    updateCallState();
  } else if (state.session && (gaveUp || code === 1008 || code === 4001 || code === 4002)) {
    endCall(t("call.server_lost"));
  }
}

// A socket refused at its handshake says nothing about why: ask whether the login still holds
// (it expired while the workspace was away, say) before trying again.
async function loginHolds() {
  const me = await api("/me"); // status 0 when the server cannot be reached
  if (me.status !== 401) return true;
  loginEnded();
  return false;
}

function inSession(message) {
  return state.session && message.session_id === state.session.id;
}

async function handle(message) {
  const mesh = state.session?.mesh;
  switch (message.type) {
    case "welcome":
      state.me = message.participant_id;
      break;
    case "resumed":
      if (inSession(message)) {
        state.me = message.participant_id;
        state.session.away = new Set(message.away);
        // Who is in the call now, as the server says: nobody else is answered.
        state.session.mesh.knowOnly(message.peers);
        updateCallState(); // the chat typed meanwhile goes out next (signalling.js)
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
    case "queue_changed": renderQueue(applyQueueChange(state.waiting, message)); break;
    case "call_started": await startCall(message); break;
    case "offer": if (inSession(message)) await mesh.onOffer(message); break;
    case "answer": if (inSession(message)) await mesh.onAnswer(message); break;
    case "ice_candidate": if (inSession(message)) await mesh.onCandidate(message); break;
    case "participant_waiting":
      if (inSession(message)) {
        state.joinRequests.set(message.peer.participant_id, message.peer);
        renderJoinRequests();
        chime(t("call.join_request_caption", { name: message.peer.name }));
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

// The chime, and its caption for those who cannot hear it (shown for CAPTION_SECONDS, and said
// to screen readers: the caption is a polite live region).
const CAPTION_SECONDS = 12;
let captionTimer = null;

function chime(caption) {
  const line = $("chime-caption");
  line.textContent = t("chime.caption", { text: caption });
  line.hidden = false;
  clearTimeout(captionTimer);
  captionTimer = setTimeout(() => { line.hidden = true; line.textContent = ""; }, CAPTION_SECONDS * 1000);
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

function renderQueue(waiting, { quiet = false } = {}) {
  const known = state.waitingIds || new Set();
  state.waiting = waiting;
  state.waitingIds = new Set(waiting.map((w) => w.session_id));
  const arrived = waiting.filter((w) => !known.has(w.session_id));
  if (!quiet && arrived.length && !state.session) {
    chime(t("queue.new_caller_caption", { names: arrived.map((w) => w.caller_name).join(", ") }));
  }
  state.lobby = new Map(waiting.filter((w) => w.appointment_id).map((w) => [w.appointment_id, w]));
  // The lists are rebuilt on every update: a keyboard user's focus stays on the same button.
  keepingFocus(LISTS, () => {
    renderAppointments();
    $("queue-empty").hidden = waiting.length > 0;
    renderQueueSummary(waiting);
    renderQueueList(waiting);
  });
  const title = t("advisor.title");
  document.title = waiting.length ? `(${waiting.length}) ${title}` : title;
}

// The walk-in queues (per topic and region): how many wait, for how long, take the next.
function renderQueueSummary(waiting) {
  const queues = new Map();
  for (const call of waiting.filter((w) => !w.appointment_id)) {
    const key = queueName(call);
    if (!queues.has(key)) queues.set(key, []);
    queues.get(key).push(call);
  }
  const summary = $("queues");
  summary.replaceChildren();
  for (const [name, calls] of queues) {
    const box = element("div", { className: "queue-summary" });
    box.dataset.queue = name;
    const figures = t("queue.summary", { count: calls.length, minutes: minutesSince(calls[0].waiting_since) });
    box.append(
      element("span", { text: name, className: "name" }),
      element("span", { text: figures, className: "since" }),
      button(t("queue.accept_next"), (event) => accept_(calls[0].session_id, event.currentTarget), {
        label: t("queue.accept_next_label", { queue: name }),
      }),
    );
    summary.append(box);
  }
}

function renderQueueList(waiting) {
  const list = $("queue");
  list.replaceChildren();
  for (const call of waiting) {
    const item = element("li");
    item.dataset.sessionId = call.session_id;
    item.dataset.callerRole = call.caller_role;
    const where = call.caller_role === "booth" ? t("queue.at_booth") : t("queue.from_home");
    const name = call.appointment_id
      ? t("queue.in_lobby", { name: call.caller_name, where })
      : `${call.caller_name} (${where}) · ${queueName(call)}`;
    const accept = call.appointment_id
      ? [t("queue.admit"), t("queue.admit_label", { name: call.caller_name })]
      : [t("queue.accept"), t("queue.accept_label", { name: call.caller_name })];
    item.append(
      element("span", { text: name, className: "name" }),
      element("span", { text: t("queue.waiting_minutes", { minutes: minutesSince(call.waiting_since) }), className: "since" }),
      button(accept[0], (event) => accept_(call.session_id, event.currentTarget), { label: accept[1] }),
    );
    list.append(item);
  }
}

// Booths send H.264 (encoded once, in hardware where the booth has it), and VP8 to a browser
// without an H.264 decoder (Debian's Firefox without the OpenH264 plug-in). Only a browser with
// neither could not show the booth.
const BOOTH_VIDEO_CODECS = ["video/h264", "video/vp8"];

function canShowBoothVideo() {
  const codecs = window.RTCRtpReceiver?.getCapabilities?.("video")?.codecs || [];
  return codecs.some((c) => BOOTH_VIDEO_CODECS.includes(c.mimeType.toLowerCase()));
}

async function accept_(sessionId, button) {
  if (state.session) return;
  const call = state.waiting.find((w) => w.session_id === sessionId);
  if (call && call.caller_role === "booth" && !canShowBoothVideo()) {
    notice(t("queue.no_video_codec"));
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
  const result = await api(`/appointments?day=${day}`);
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
  keepingFocus(LISTS, () => {
    const list = $("appointments");
    const items = state.appointments || [];
    list.replaceChildren();
    $("appointments-empty").hidden = items.length > 0;
    for (const appointment of items) list.append(appointmentItem(appointment));
  });
}

function appointmentItem(appointment) {
  const item = element("li");
  item.dataset.appointmentId = appointment.id;
  const when = element("span", {
    text: `${state.clock.time(appointment.starts_at)} · ${appointment.duration_minutes} min` +
      (appointment.citizen_label ? ` · ${appointment.citizen_label}` : ""),
    className: "name",
  });
  const current = appointmentState(appointment);
  const status = element("span", {
    text: STATE_KEYS[current] ? t(STATE_KEYS[current]) : current,
    className: `status ${current.replace(" ", "_")}`,
  });
  item.append(when, status);
  if (appointment.status === "scheduled") {
    item.append(button(t("appointments.cancel"), async () => {
      if (!confirm(t("appointments.cancel_confirm"))) return;
      await api(`/appointments/${appointment.id}/cancel`, { method: "POST", body: {} });
      loadAppointments();
    }, { label: t("appointments.cancel_label", { when: when.textContent }) }));
  }
  return item;
}

async function createAppointment(event) {
  event.preventDefault();
  const start = state.clock.fromInput($("appointment-start").value);
  if (!start || Number.isNaN(start.getTime())) { notice(t("appointments.choose_time")); return; }
  const label = $("appointment-label").value.trim();
  const email = $("appointment-mail").hidden ? "" : $("appointment-email").value.trim();
  const result = await api("/appointments", {
    method: "POST",
    body: {
      starts_at: start.toISOString(),
      duration_minutes: Number($("appointment-duration").value),
      channel: $("appointment-channel").value,
      ...(label ? { citizen_label: label } : {}),
      ...(email ? { citizen_email: email, citizen_language: $("appointment-language").value } : {}),
    },
  });
  if (!result.ok) { notice(result.body?.detail || t("appointments.failed", { status: result.status })); return; }
  notice(email ? t("invitation.mailed") : "");
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
    onGone: (peer) => {
      removeTile(peer.participant_id);
      updateCallState();
    },
  });
  mesh.know(message.peers || [message.peer]);
  state.session = {
    id: message.session_id, mesh, peer: message.peer,
    appointmentId: waiting ? waiting.appointment_id : null,
    away: new Set(), // participants whose own signalling is lost for the moment
  };
  signalling.resumeWith({ sessionId: message.session_id, token: message.resume_token });
  state.joinRequests.clear();
  renderJoinRequests();
  $("peer-name").textContent = message.peer.name;
  $("mute").setAttribute("aria-pressed", "false");
  $("camera").setAttribute("aria-pressed", "false");
  $("invite-result").hidden = true;
  $("tiles").replaceChildren();
  $("call-view").classList.remove("pinned-view");
  updateCallState();
  show("call-view");
  if (message.offerer) await mesh.offerTo(message.peer);
  state.statsTimer = setInterval(updateStats, 1000);
}

// The caller (booth or citizen) fills the stage; anyone invited gets a tile beside it.
function showRemote(peer, stream, track) {
  const session = state.session;
  if (!session) return;
  const video = showRemoteMedia(peer, stream, session.peer.participant_id, { onRemove: removeFromCall });
  if (track.kind === "video") watchFirstFrame(video);
  updateCallState();
}

// Someone admitted into the call (an interpreter, a colleague): a tile with their video and a
// control that takes them out of the call again.
function tileFor(peer) {
  return callTile(peer, { onRemove: removeFromCall });
}

function removeFromCall(peer, control) {
  if (!state.session || !confirm(t("call.remove_confirm", { name: peer.name }))) return;
  control.disabled = true;
  send("remove", { session_id: state.session.id, participant_id: peer.participant_id });
}

function updateCallState() {
  const session = state.session;
  if (!session) return;
  const peerId = session.peer.participant_id;
  showCallState(session.mesh, peerId, { reconnecting: signalling.lost || session.away.has(peerId) });
}

function renderJoinRequests() {
  const list = $("join-requests");
  list.replaceChildren();
  $("join-requests-view").hidden = state.joinRequests.size === 0;
  for (const peer of state.joinRequests.values()) {
    const item = element("li");
    item.dataset.participantId = peer.participant_id;
    const admit = button(t("queue.admit"), () => {
      admit.disabled = true;
      send("admit", { session_id: state.session.id, participant_id: peer.participant_id });
    }, { label: t("call.admit_label", { name: peer.name }) });
    const decline = button(t("call.decline"), () => {
      send("remove", { session_id: state.session.id, participant_id: peer.participant_id });
      state.joinRequests.delete(peer.participant_id);
      renderJoinRequests();
    }, { className: "secondary", label: t("call.decline_label", { name: peer.name }) });
    item.append(element("span", { text: peer.name, className: "name" }), admit, decline);
    list.append(item);
  }
}

async function createInvitation(event) {
  event.preventDefault();
  if (!state.session) return;
  const label = $("invite-label").value.trim();
  const result = await api(`/calls/${state.session.id}/invitations`, {
    method: "POST", body: { label },
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
  signalling.forget();
  if (session) session.mesh.close();
  if (state.localStream) for (const track of state.localStream.getTracks()) track.stop();
  state.localStream = null;
  state.joinRequests.clear();
  clearCallView(); // the chat is gone with the call
  $("invite-result").hidden = true;
  $("reconnecting").hidden = true;
  for (const id of ["stat-booth-sent", "stat-booth-received"]) $(id).textContent = "–";
  show("queue-view");
  renderAppointments();
  notice(text);
}

// ------------------------------------------------------------------ chat

// What the advisor types while the connection is lost goes out after the resume, in order.
function sendChat(text) {
  if (!state.session) return false;
  signalling.sendAfterResume("chat", { session_id: state.session.id, text });
  return true;
}

function showChat(message) {
  if (!state.session || message.session_id !== state.session.id) return;
  showChatMessage($("chat-log"), message, { mine: message.sender === state.me });
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
