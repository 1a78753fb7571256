// The citizen's side: open the link (1), agree and turn on the camera (2), join (3).
// Plain ES module, no dependencies, nothing loaded from outside this server.

const $ = (id) => document.getElementById(id);
const PROTOCOL_VERSION = 1;

const state = {
  appointment: null,
  stream: null,
  ws: null,
  session: null, // {id, pc, peer}
  meterStop: null,
};

function show(view) {
  for (const id of ["welcome-view", "prejoin-view", "lobby-view", "call-view", "ended-view"]) {
    $(id).hidden = id !== view;
  }
}

function notice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

async function boot() {
  $("consent").addEventListener("click", onConsent);
  $("join").addEventListener("click", onJoin);
  $("camera-select").addEventListener("change", restartPreview);
  $("mic-select").addEventListener("change", restartPreview);
  $("hangup").addEventListener("click", hangUp);
  $("mute").addEventListener("click", () => toggle("mute", "audio", "Unmute microphone", "Mute microphone"));
  $("camera").addEventListener("click", () => toggle("camera", "video", "Turn camera on", "Turn camera off"));
  $("chat-form").addEventListener("submit", sendChat);

  const token = decodeURIComponent(location.pathname.split("/").pop() || "");
  const response = await fetch("/api/v1/join", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    notice(body.detail || "This link cannot be used.");
    return;
  }
  state.appointment = body;
  $("advisor-name").textContent = body.advisor_name;
  $("lobby-advisor").textContent = body.advisor_name;
  const start = new Date(body.starts_at);
  $("when").textContent = `${start.toLocaleDateString()} ${start.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}, ${body.duration_minutes} minutes`;
  show("welcome-view");
}

// ------------------------------------------------------------------ pre-join

async function openMedia() {
  const camera = $("camera-select").value;
  const mic = $("mic-select").value;
  const stream = await navigator.mediaDevices.getUserMedia({
    video: camera ? { deviceId: { exact: camera } } : true,
    audio: mic ? { deviceId: { exact: mic } } : true,
  });
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  state.stream = stream;
  $("preview").srcObject = stream;
  startMeter(stream);
}

async function onConsent() {
  try {
    await openMedia();
  } catch (error) {
    notice(`Your camera or microphone cannot be used: ${error.message}. Allow them in the browser and try again.`);
    return;
  }
  notice("");
  await listDevices();
  show("prejoin-view");
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, id] of [["videoinput", "camera-select"], ["audioinput", "mic-select"]]) {
    const select = $(id);
    const current = state.stream.getTracks().find((t) => t.kind === (kind === "videoinput" ? "video" : "audio"));
    const currentId = current?.getSettings().deviceId;
    select.replaceChildren();
    for (const device of devices.filter((d) => d.kind === kind)) {
      const option = document.createElement("option");
      option.value = device.deviceId;
      option.textContent = device.label || kind;
      option.selected = device.deviceId === currentId;
      select.append(option);
    }
  }
}

async function restartPreview() {
  try { await openMedia(); } catch (error) { notice(error.message); }
}

function startMeter(stream) {
  if (state.meterStop) state.meterStop();
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  context.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let running = true;
  const tick = () => {
    if (!running) return;
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const v of samples) sum += v * v;
    const level = Math.min(1, Math.sqrt(sum / samples.length) * 4);
    $("mic-level").value = level;
    $("mic-level").dataset.level = String(level);
    setTimeout(tick, 100);
  };
  tick();
  state.meterStop = () => { running = false; context.close(); };
}

// ------------------------------------------------------------------ lobby and call

function onJoin() {
  if (state.meterStop) state.meterStop();
  show("lobby-view");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/ws`);
  state.ws = ws;
  ws.onopen = () => send("lobby_join");
  ws.onmessage = (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    handle(message).catch((error) => console.error("handling", message.type, error));
  };
  ws.onclose = () => {
    if (state.session) endCall();
    else if (!$("ended-view").hidden) return;
    else notice("The connection to the server was lost. Open the link again to rejoin.");
  };
}

function send(type, fields = {}) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type, ...fields }));
  }
}

async function handle(message) {
  switch (message.type) {
    case "call_started": await startCall(message); break;
    case "answer":
      if (state.session && message.session_id === state.session.id) {
        await state.session.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
      }
      break;
    case "ice_candidate":
      if (state.session && message.session_id === state.session.id && message.candidate) {
        await state.session.pc.addIceCandidate({
          candidate: message.candidate, sdpMid: message.sdp_mid ?? null,
          sdpMLineIndex: message.sdp_mline_index ?? 0,
        });
      }
      break;
    case "chat": showChat(message); break;
    case "hangup": endCall(); break;
    case "error": notice(`The server refused a request: ${message.message}`); break;
    default: break;
  }
}

async function startCall(message) {
  const pc = new RTCPeerConnection({
    iceServers: message.ice_servers.map((s) => ({ urls: s.urls, username: s.username, credential: s.credential })),
    iceTransportPolicy: message.ice_transport_policy,
    bundlePolicy: "max-bundle",
  });
  state.session = { id: message.session_id, pc, peer: message.peer };
  show("call-view");
  $("local-video").srcObject = state.stream;
  pc.ontrack = (event) => {
    const stream = event.streams[0] || new MediaStream([event.track]);
    if ($("remote-video").srcObject !== stream) $("remote-video").srcObject = stream;
  };
  pc.onicecandidate = (event) => {
    const c = event.candidate;
    send("ice_candidate", {
      session_id: message.session_id, candidate: c ? c.candidate : null,
      sdp_mid: c ? c.sdpMid : null, sdp_mline_index: c ? c.sdpMLineIndex : null,
    });
  };
  pc.onconnectionstatechange = () => { $("call-state").textContent = pc.connectionState; };
  for (const track of state.stream.getTracks()) pc.addTrack(track, state.stream);
  // The joining side always offers (the booth does too); the advisor answers.
  await pc.setLocalDescription(await pc.createOffer());
  send("offer", { session_id: message.session_id, sdp: pc.localDescription.sdp });
}

function hangUp() {
  if (state.session) send("hangup", { session_id: state.session.id, reason: "citizen_hangup" });
  endCall();
}

function endCall() {
  const session = state.session;
  state.session = null;
  if (session) session.pc.close();
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
  $("remote-video").srcObject = null;
  $("local-video").srcObject = null;
  $("chat-log").replaceChildren();
  if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
  show("ended-view");
}

function toggle(buttonId, kind, onText, offText) {
  const button = $(buttonId);
  const pressed = button.getAttribute("aria-pressed") !== "true";
  for (const track of state.stream?.getTracks() || []) if (track.kind === kind) track.enabled = !pressed;
  button.setAttribute("aria-pressed", String(pressed));
  button.textContent = pressed ? onText : offText;
}

function sendChat(event) {
  event.preventDefault();
  const text = $("chat-input").value.trim();
  if (!state.session || !text) return;
  send("chat", { session_id: state.session.id, text });
  $("chat-input").value = "";
}

function showChat(message) {
  if (!state.session || message.session_id !== state.session.id) return;
  const item = document.createElement("li");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = message.sender === state.session.peer.participant_id ? message.sender_name : "You";
  const text = document.createElement("span");
  text.textContent = message.text;
  item.append(who, text);
  $("chat-log").append(item);
}

boot();
