// The advisor's workspace: log in, see waiting calls, take one, talk, hang up.
// Plain ES module, no dependencies, nothing loaded from outside this server.

const $ = (id) => document.getElementById(id);
const PROTOCOL_VERSION = 1;

const state = {
  ws: null,
  session: null, // {id, pc, peer}
  localStream: null,
  statsTimer: null,
  reconnectDelay: 1000,
  appointments: [],
  lobby: new Map(), // appointment id -> waiting entry
  completed: new Set(), // appointments whose call ended in this workspace
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
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("hangup").addEventListener("click", () => hangUp("advisor_hangup"));
  $("mute").addEventListener("click", toggleMute);
  $("camera").addEventListener("click", toggleCamera);
  $("chat-form").addEventListener("submit", sendChat);
  $("appointment-form").addEventListener("submit", createAppointment);
  $("invitation-copy").addEventListener("click", () => navigator.clipboard.writeText($("invitation-text").value));
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
    notice(result.body?.detail || `Login failed (${result.status})`);
    return;
  }
  $("password").value = "";
  notice("");
  enterWorkspace(result.body);
}

async function onLogout() {
  await api("/api/v1/auth/logout", { method: "POST", body: "{}" });
  if (state.ws) state.ws.close();
  location.reload();
}

function enterWorkspace(me) {
  $("who").textContent = me.name;
  $("who").hidden = false;
  $("logout").hidden = false;
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
    $("connection-state").textContent = "online";
  };
  ws.onmessage = (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    handle(message).catch((error) => console.error("handling", message.type, error));
  };
  ws.onclose = (event) => {
    $("connection-state").textContent = "offline";
    if (state.session) endCall("Connection to the server lost.");
    if (event.code === 1008 || event.code === 4001) return;
    setTimeout(connect, state.reconnectDelay);
    state.reconnectDelay = Math.min(state.reconnectDelay * 2, 30000);
  };
}

function send(type, fields = {}) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type, ...fields }));
  }
}

async function handle(message) {
  switch (message.type) {
    case "queue": renderQueue(message.waiting); break;
    case "call_started": await startCall(message); break;
    case "offer": await onOffer(message); break;
    case "answer": await onAnswer(message); break;
    case "ice_candidate": await onRemoteCandidate(message); break;
    case "call_stats": showPeerStats(message); break;
    case "chat": showChat(message); break;
    case "hangup":
      if (state.session && message.session_id === state.session.id) {
        endCall(message.reason === "peer_disconnected"
          ? "The other party lost its connection." : "The other party ended the call.");
      }
      break;
    case "error": notice(`The server refused a request: ${message.message}`); break;
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

function renderQueue(waiting) {
  const known = state.waitingIds || new Set();
  state.waitingIds = new Set(waiting.map((w) => w.session_id));
  if (waiting.some((w) => !known.has(w.session_id)) && !state.session) chime();
  state.lobby = new Map(waiting.filter((w) => w.appointment_id).map((w) => [w.appointment_id, w]));
  renderAppointments();
  const list = $("queue");
  list.replaceChildren();
  $("queue-empty").hidden = waiting.length > 0;
  for (const call of waiting) {
    const item = document.createElement("li");
    item.dataset.sessionId = call.session_id;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = call.appointment_id
      ? `${call.caller_name} (appointment, in the lobby)`
      : call.topic_name ? `${call.caller_name} · ${call.topic_name}` : call.caller_name;
    const since = document.createElement("span");
    since.className = "since";
    since.textContent = `waiting since ${new Date(call.waiting_since).toLocaleTimeString()}`;
    const accept = document.createElement("button");
    accept.type = "button";
    const verb = call.appointment_id ? "Admit" : "Accept";
    accept.textContent = verb;
    accept.setAttribute("aria-label", call.appointment_id
      ? `Admit ${call.caller_name} to the appointment` : `Accept call from ${call.caller_name}`);
    accept.addEventListener("click", () => accept_(call.session_id, accept));
    item.append(name, since, accept);
    list.append(item);
  }
  document.title = waiting.length ? `(${waiting.length}) Videobooth · Advisor` : "Videobooth · Advisor";
}

async function accept_(sessionId, button) {
  if (state.session) return;
  button.disabled = true;
  try {
    // Ask for the camera first, so the call starts with media ready.
    state.localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  } catch (error) {
    notice(`Camera or microphone not available: ${error.message}`);
    button.disabled = false;
    return;
  }
  $("local-video").srcObject = state.localStream;
  send("call_accept", { session_id: sessionId });
}

// ------------------------------------------------------------------ appointments

async function loadAppointments() {
  const today = new Date();
  const day = `${today.getFullYear()}-${String(today.getMonth() + 1).padStart(2, "0")}-${String(today.getDate()).padStart(2, "0")}`;
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

const STATE_TEXT = { waiting: "waiting in the lobby", in_call: "in call", done: "done", cancelled: "cancelled", "not arrived": "not arrived" };

function renderAppointments() {
  const list = $("appointments");
  const items = state.appointments || [];
  list.replaceChildren();
  $("appointments-empty").hidden = items.length > 0;
  for (const appointment of items) {
    const item = document.createElement("li");
    item.dataset.appointmentId = appointment.id;
    const when = document.createElement("span");
    when.className = "name";
    const start = new Date(appointment.starts_at);
    when.textContent = `${start.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })} · ${appointment.duration_minutes} min` +
      (appointment.citizen_label ? ` · ${appointment.citizen_label}` : "");
    const status = document.createElement("span");
    const current = appointmentState(appointment);
    status.className = `status ${current.replace(" ", "_")}`;
    status.textContent = STATE_TEXT[current] || current;
    item.append(when, status);
    if (appointment.status === "scheduled") {
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.textContent = "Cancel";
      cancel.setAttribute("aria-label", `Cancel the appointment at ${when.textContent}`);
      cancel.addEventListener("click", async () => {
        if (!confirm("Cancel this appointment? Its link and code stop working.")) return;
        await api(`/api/v1/appointments/${appointment.id}/cancel`, { method: "POST", body: "{}" });
        loadAppointments();
      });
      item.append(cancel);
    }
    list.append(item);
  }
}

async function createAppointment(event) {
  event.preventDefault();
  const start = new Date($("appointment-start").value);
  if (Number.isNaN(start.getTime())) { notice("Choose a date and time."); return; }
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
  if (!result.ok) { notice(result.body?.detail || `Could not create the appointment (${result.status})`); return; }
  notice("");
  const created = result.body;
  $("invitation-link").textContent = created.join_link;
  $("invitation-link").href = created.join_link;
  $("invitation-code").textContent = created.join_code;
  $("invitation-qr").src = `data:image/svg+xml;base64,${btoa(created.qr_svg)}`;
  $("invitation-text").value = `${created.invitation.de}\n\n${created.invitation.en}`;
  $("invitation").hidden = false;
  $("appointment-form").reset();
  loadAppointments();
}

// ------------------------------------------------------------------ call

async function startCall(message) {
  const pc = new RTCPeerConnection({
    iceServers: message.ice_servers.map((s) => ({
      urls: s.urls, username: s.username, credential: s.credential,
    })),
    iceTransportPolicy: message.ice_transport_policy,
    bundlePolicy: "max-bundle",
  });
  const waiting = [...(state.lobby || new Map()).values()].find((w) => w.session_id === message.session_id);
  state.session = {
    id: message.session_id, pc, peer: message.peer, offerer: message.offerer,
    appointmentId: waiting ? waiting.appointment_id : null,
  };
  $("peer-name").textContent = message.peer.name;
  $("call-state").textContent = "connecting";
  $("mute").setAttribute("aria-pressed", "false");
  $("camera").setAttribute("aria-pressed", "false");
  const remote = $("remote-video");
  delete remote.dataset.firstFrameAt;
  show("call-view");

  pc.ontrack = (event) => {
    const stream = event.streams[0] || new MediaStream([event.track]);
    if (remote.srcObject !== stream) remote.srcObject = stream;
    if (event.track.kind === "video") watchFirstFrame(remote);
  };
  pc.onicecandidate = (event) => {
    const c = event.candidate;
    send("ice_candidate", {
      session_id: message.session_id,
      candidate: c ? c.candidate : null,
      sdp_mid: c ? c.sdpMid : null,
      sdp_mline_index: c ? c.sdpMLineIndex : null,
    });
  };
  pc.onconnectionstatechange = () => {
    $("call-state").textContent = pc.connectionState;
  };
  if (!state.localStream) {
    state.localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    $("local-video").srcObject = state.localStream;
  }
  state.statsTimer = setInterval(updateStats, 1000);
}

function watchFirstFrame(video) {
  if (!("requestVideoFrameCallback" in video)) return;
  video.requestVideoFrameCallback(() => {
    if (!video.dataset.firstFrameAt) video.dataset.firstFrameAt = String(Date.now());
  });
}

async function onOffer(message) {
  const session = state.session;
  if (!session || session.id !== message.session_id) return;
  const { pc } = session;
  await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
  for (const track of state.localStream.getTracks()) pc.addTrack(track, state.localStream);
  await pc.setLocalDescription(await pc.createAnswer());
  send("answer", { session_id: session.id, sdp: pc.localDescription.sdp });
}

async function onAnswer(message) {
  const session = state.session;
  if (!session || session.id !== message.session_id) return;
  await session.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
}

async function onRemoteCandidate(message) {
  const session = state.session;
  if (!session || session.id !== message.session_id || !message.candidate) return;
  await session.pc.addIceCandidate({
    candidate: message.candidate,
    sdpMid: message.sdp_mid ?? null,
    sdpMLineIndex: message.sdp_mline_index ?? 0,
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
  if (session) session.pc.close();
  if (state.localStream) for (const track of state.localStream.getTracks()) track.stop();
  state.localStream = null;
  $("remote-video").srcObject = null;
  $("local-video").srcObject = null;
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
  send("chat", { session_id: state.session.id, text });
  input.value = "";
}

function showChat(message) {
  if (!state.session || message.session_id !== state.session.id) return;
  const item = document.createElement("li");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = message.sender === state.session.peer.participant_id ? message.sender_name : "You";
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
  button.textContent = muted ? "Unmute microphone" : "Mute microphone";
}

function toggleCamera() {
  const button = $("camera");
  const off = button.getAttribute("aria-pressed") !== "true";
  for (const track of state.localStream?.getVideoTracks() || []) track.enabled = !off;
  button.setAttribute("aria-pressed", String(off));
  button.textContent = off ? "Turn camera on" : "Turn camera off";
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
  if (!session) return;
  const report = await session.pc.getStats();
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
