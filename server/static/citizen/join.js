// The citizen's side: open the link (1), agree and turn on the camera (2), join (3).
// The same page serves an appointment's link, a running call's invitation link (an
// interpreter) and, at /now/, asking for an advisor now on a topic (a walk-in).
// Plain ES module, no dependencies, nothing loaded from outside this server.

import { api } from "/static/js/api.js";
import { ready as brandingReady, showBrandTexts } from "/static/js/branding.js";
import { chosenLanguage, languagePicker, setLanguage, t } from "/static/js/i18n.js";
import { Mesh } from "/static/js/mesh.js";
import { Clock } from "/static/js/time.js";

const $ = (id) => document.getElementById(id);
const PROTOCOL_VERSION = 1;
// A wait or call whose signalling stays lost longer than the server waits for it (its welcome
// says how long) ends here; until then the page reconnects every second and takes it up again.
let reconnectLimitMs = 90000;

const state = {
  mode: null, // "appointment" | "invitation" | "walk_in"
  details: null, // what the server said about the link
  stream: null,
  ws: null,
  me: null,
  waitingFor: null, // session id while waiting
  resumeToken: null, // takes the wait or the call up again after a lost connection
  lostAt: null, // when the signalling connection was lost during a wait or call
  position: null, // {position, estimated_wait_seconds} while waiting in a walk-in queue
  session: null, // {id, mesh, peer}
  meterStop: null,
  inbox: Promise.resolve(),
  outbox: [], // chat typed while the connection was lost, sent once the call is taken up again
  branding: null, // the organisation's texts (welcome, privacy notice, after the call)
  clock: new Clock(), // times in the organisation's zone, as the invitation says them
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
  await setLanguage(chosenLanguage());
  languagePicker($("language"), renderTexts);
  state.branding = await brandingReady;
  state.clock = new Clock(state.branding?.timezone);
  showBrandTexts(state.branding);
  $("consent").addEventListener("click", onConsent);
  $("join").addEventListener("click", onJoin);
  $("camera-select").addEventListener("change", restartPreview);
  $("mic-select").addEventListener("change", restartPreview);
  $("hangup").addEventListener("click", hangUp);
  // The link opens the appointment again until its window closes: join again from here.
  $("rejoin").addEventListener("click", () => location.reload());
  $("cancel-wait").addEventListener("click", cancelWait);
  $("mute").addEventListener("click", () => toggle("mute", "audio", "call.unmute", "call.mute"));
  $("camera").addEventListener("click", () => toggle("camera", "video", "call.camera_on", "call.camera_off"));
  $("chat-form").addEventListener("submit", sendChat);

  const walkIn = location.pathname.replace(/\/+$/, "") === "/now";
  const result = walkIn
    ? await api("/walk-in", { method: "POST", body: {} })
    : await api("/join", { method: "POST", body: { token: decodeURIComponent(location.pathname.split("/").pop() || "") } });
  const body = result.body || {};
  if (!result.ok) {
    notice(refusal(body));
    return;
  }
  state.mode = walkIn ? "walk_in" : body.kind;
  state.details = body;
  if (walkIn) fillWalkInChoice(body);
  renderTexts();
  show("welcome-view");
}

function fillWalkInChoice(body) {
  $("walk-in-choice").hidden = false;
  const topics = $("topic-select");
  topics.replaceChildren();
  for (const topic of body.topics) {
    const option = document.createElement("option");
    option.value = topic.id;
    topics.append(option);
  }
  nameTopics();
  topics.parentElement.querySelector("label[for=topic-select]").hidden = body.topics.length === 0;
  topics.hidden = body.topics.length === 0;
  const regions = $("region-select");
  regions.replaceChildren();
  for (const region of body.regions) {
    const option = document.createElement("option");
    option.value = region;
    option.textContent = region;
    regions.append(option);
  }
  $("region-choice").hidden = body.regions.length < 2;
}

// A topic's name in the page's language, its own name where it has none there.
function nameTopics() {
  const language = document.documentElement.lang;
  const topics = state.details?.topics || [];
  for (const option of $("topic-select").options) {
    const topic = topics.find((t_) => t_.id === option.value);
    if (topic) option.textContent = (topic.names && topic.names[language]) || topic.name;
  }
}

// Texts that depend on the link and the language.
function renderTexts() {
  showBrandTexts(state.branding);
  const details = state.details;
  if (!details) return;
  if (state.mode === "walk_in") nameTopics();
  let title, lobby;
  if (state.mode === "appointment") {
    title = t("citizen.appointment_with", { name: details.advisor_name });
    lobby = t("citizen.lobby_appointment", { name: details.advisor_name });
    $("when").textContent = t("citizen.when", {
      date: state.clock.date(details.starts_at),
      time: state.clock.time(details.starts_at),
      minutes: details.duration_minutes,
    });
  } else if (state.mode === "invitation") {
    title = t("citizen.invited", { label: details.label });
    lobby = t("citizen.lobby_invited");
  } else {
    title = t("citizen.walk_in_title");
    lobby = t("citizen.lobby_walk_in");
    $("page-title").textContent = t("citizen.walk_in_title");
  }
  $("welcome-title").textContent = title;
  $("lobby-text").textContent = lobby;
  renderPosition();
  if (state.session) updateCallState();
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
    notice(t("citizen.media_refused", { message: error.message }));
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
    const current = state.stream.getTracks().find((t_) => t_.kind === (kind === "videoinput" ? "video" : "audio"));
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
  state.meterStop = () => { if (!running) return; running = false; context.close(); };
}

// ------------------------------------------------------------------ waiting and call

function onJoin() {
  if (state.meterStop) state.meterStop();
  show("lobby-view");
  openSocket(() => {
    if (state.mode === "walk_in") {
      const fields = {};
      if (!$("topic-select").hidden && $("topic-select").value) fields.topic_id = $("topic-select").value;
      if (!$("region-choice").hidden && $("region-select").value) fields.region = $("region-select").value;
      send("call_request", fields);
    } else {
      send("lobby_join");
    }
  });
}

function openSocket(onOpen) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/ws`);
  state.ws = ws;
  ws.onopen = onOpen;
  ws.onmessage = (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    // One at a time, in order: an offer must be applied before its candidates.
    state.inbox = state.inbox
      .then(() => handle(message))
      .catch((error) => console.error("handling", message.type, error));
  };
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    if (event.code === 4001 || event.code === 4003) {
      // 4001: the same link was opened on another page, which goes on; 4003: the pass no
      // longer opens anything (the appointment was cancelled). Nothing to come back to.
      state.ws = null;
      endCall();
      notice(event.code === 4001 ? t("citizen.replaced") : t("citizen.pass_ended"));
      return;
    }
    const sessionId = state.session?.id || state.waitingFor;
    if (sessionId && state.resumeToken) {
      state.lostAt = state.lostAt || Date.now();
      if (Date.now() - state.lostAt <= reconnectLimitMs) {
        updateCallState();
        setTimeout(() => openSocket(() => send("resume", {
          id: "resume", session_id: sessionId, token: state.resumeToken,
        })), 1000);
        return;
      }
    }
    if (state.session) endCall();
    else if (!$("ended-view").hidden) return;
    else notice(t("citizen.server_lost"));
  };
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
    case "call_waiting":
      state.waitingFor = message.session_id;
      state.resumeToken = message.resume_token || null;
      break;
    case "resumed":
      state.me = message.participant_id;
      state.lostAt = null;
      // Who is in the call now, as the server says: nobody else is answered.
      if (state.session && message.session_id === state.session.id) {
        state.session.mesh.knowOnly(message.peers);
      }
      updateCallState();
      flushChat();
      break;
    case "queue_position":
      state.position = message;
      renderPosition();
      break;
    case "call_started": await startCall(message); break;
    case "offer": if (inSession(message)) await mesh.onOffer(message); break;
    case "answer": if (inSession(message)) await mesh.onAnswer(message); break;
    case "ice_candidate": if (inSession(message)) await mesh.onCandidate(message); break;
    case "participant_joined": if (inSession(message)) await mesh.offerTo(message.peer); break;
    case "participant_left": if (inSession(message)) mesh.remove(message.participant_id); break;
    case "chat": showChat(message); break;
    case "hangup":
      endCall();
      if (message.reason === "removed") notice(t("citizen.removed"));
      break;
    case "error":
      if (message.ref === "resume") { state.lostAt = null; endCall(); break; }
      notice(refusal({ reason: message.code, detail: message.message }, "citizen.error."));
      break;
    default: break;
  }
}

function renderPosition() {
  const el = $("queue-position");
  const place = state.position;
  el.hidden = !place;
  if (!place) return;
  el.dataset.position = String(place.position);
  el.textContent = t("citizen.position", {
    position: place.position,
    minutes: Math.max(1, Math.round(place.estimated_wait_seconds / 60)),
  });
}

function cancelWait() {
  if (state.waitingFor) send("call_cancel", { session_id: state.waitingFor });
  endCall();
}

async function startCall(message) {
  state.position = null;
  state.waitingFor = null;
  state.resumeToken = message.resume_token || state.resumeToken;
  const mesh = new Mesh({
    sessionId: message.session_id,
    config: message,
    localStream: state.stream,
    send,
    onTrack: showRemote,
    onState: updateCallState,
    onGone: (peer) => {
      document.querySelector(`#tiles li[data-participant-id="${CSS.escape(peer.participant_id)}"]`)?.remove();
    },
  });
  mesh.know(message.peers || [message.peer]);
  state.session = { id: message.session_id, mesh, peer: message.peer };
  show("call-view");
  updateCallState();
  $("local-video").srcObject = state.stream;
  // A caller offers to the advisor; someone invited into a running call waits for offers.
  if (message.offerer) await mesh.offerTo(message.peer);
}

// The advisor fills the stage; anyone else in the call gets a tile beside it.
function showRemote(peer, stream) {
  let video;
  if (peer.participant_id === state.session?.peer.participant_id) {
    video = $("remote-video");
  } else {
    let tile = document.querySelector(`#tiles li[data-participant-id="${CSS.escape(peer.participant_id)}"]`);
    if (!tile) {
      tile = document.createElement("li");
      tile.dataset.participantId = peer.participant_id;
      const element = document.createElement("video");
      element.autoplay = true;
      element.playsInline = true;
      element.setAttribute("aria-label", t("call.video_of", { name: peer.name }));
      const caption = document.createElement("span");
      caption.textContent = peer.name;
      tile.append(element, caption);
      $("tiles").append(tile);
    }
    video = tile.querySelector("video");
  }
  if (video.srcObject !== stream) video.srcObject = stream;
  updateCallState();
}

function updateCallState() {
  const session = state.session;
  if (!session) return;
  const leg = session.mesh.legs.get(session.peer.participant_id);
  let current = leg ? leg.pc.connectionState : "connecting";
  if (session.mesh.reconnecting || state.lostAt) current = "reconnecting";
  $("call-state").dataset.state = current;
  $("call-state").textContent = t(`call.state.${current}`);
  $("reconnecting").hidden = current !== "reconnecting";
}

function hangUp() {
  if (state.session) send("hangup", { session_id: state.session.id, reason: "citizen_hangup" });
  endCall();
}

// What the server refused, in the citizen's language and with what to do: a text per reason
// (problem details' "reason", a socket error's "code"); the server's own words otherwise.
function refusal(body, prefix = "citizen.refused.") {
  const key = `${prefix}${body?.reason}`;
  if (body?.reason && t(key) !== key) {
    return t(key, {
      time: body.opens_at ? state.clock.time(body.opens_at) : "",
      seconds: body.retry_after ?? 60,
    });
  }
  return body?.detail ? t("server_refused", { message: body.detail }) : t("citizen.link_unusable");
}

function endCall() {
  const session = state.session;
  state.session = null;
  state.position = null;
  state.waitingFor = null;
  state.resumeToken = null;
  state.outbox = [];
  state.lostAt = null;
  if (session) session.mesh.close();
  if (state.meterStop) state.meterStop();
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
  $("remote-video").srcObject = null;
  $("local-video").srcObject = null;
  $("tiles").replaceChildren();
  $("chat-log").replaceChildren();
  if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
  $("rejoin").hidden = state.mode !== "appointment";
  show("ended-view");
}

function toggle(buttonId, kind, onKey, offKey) {
  const button = $(buttonId);
  const pressed = button.getAttribute("aria-pressed") !== "true";
  for (const track of state.stream?.getTracks() || []) if (track.kind === kind) track.enabled = !pressed;
  button.setAttribute("aria-pressed", String(pressed));
  button.dataset.i18n = pressed ? onKey : offKey;
  button.textContent = t(button.dataset.i18n);
}

function sendChat(event) {
  event.preventDefault();
  const text = $("chat-input").value.trim();
  if (!state.session || !text) return;
  state.outbox.push({ session_id: state.session.id, text });
  flushChat();
  $("chat-input").value = "";
}

function flushChat() {
  // What the citizen typed while the connection was lost goes out after the resume, in order.
  if (state.lostAt || !state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  for (const fields of state.outbox.splice(0)) send("chat", fields);
}

function showChat(message) {
  if (!inSession(message)) return;
  const item = document.createElement("li");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = message.sender === state.me ? t("chat.you") : message.sender_name;
  const text = document.createElement("span");
  text.textContent = message.text; // never innerHTML: the text is someone else's
  item.append(who, text);
  $("chat-log").append(item);
  item.scrollIntoView({ block: "nearest" });
}

boot();
