// The citizen's side: open the link (1), agree and turn on the camera (2), join (3).
// The same page serves an appointment's link, a running call's invitation link (an
// interpreter) and, at /now/, asking for an advisor now on a topic (a walk-in).
// Plain ES module, no dependencies, nothing loaded from outside this server.

import { api } from "/static/js/api.js";
import { ready as brandingReady, showBrandTexts } from "/static/js/branding.js";
import { clearCallView, removeTile, showCallState, showRemote as showRemoteMedia, wireToggles } from "/static/js/call-view.js";
import { showChatMessage, wireChat } from "/static/js/chat.js";
import { $, notice, showOnly } from "/static/js/dom.js";
import { chosenLanguage, languagePicker, setLanguage, t } from "/static/js/i18n.js";
import { Mesh } from "/static/js/mesh.js";
import { SignallingClient } from "/static/js/signalling.js";
import { Clock } from "/static/js/time.js";

// Opened on joining. A wait or call whose signalling is lost is taken up again every second
// until the server's resume window has passed; nothing is reconnected otherwise.
const signalling = new SignallingClient({
  // 4001: the same link was opened on another page, which goes on; 4003: the pass no longer
  // opens anything (the appointment was cancelled). Nothing to come back to.
  finalCodes: [4001, 4003],
  onOpen: onSocketOpen,
  onMessage: handle,
  onDown: onSocketDown,
});
const send = (type, fields) => signalling.send(type, fields);

const state = {
  mode: null, // "appointment" | "invitation" | "walk_in"
  details: null, // what the server said about the link
  stream: null,
  me: null,
  waitingFor: null, // session id while waiting
  position: null, // {position, estimated_wait_seconds} while waiting in a walk-in queue
  session: null, // {id, mesh, peer}
  meterStop: null,
  branding: null, // the organisation's texts (welcome, privacy notice, after the call)
  clock: new Clock(), // times in the organisation's zone, as the invitation says them
};

function show(view) {
  showOnly(["welcome-view", "prejoin-view", "lobby-view", "call-view", "ended-view"], view);
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
  wireToggles(() => state.stream);
  wireChat($("chat-form"), $("chat-input"), sendChat);

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
  signalling.connect();
}

function onSocketOpen({ resuming }) {
  if (resuming) return; // "resume" went first: the wait or the call goes on
  if (state.mode === "walk_in") {
    const fields = {};
    if (!$("topic-select").hidden && $("topic-select").value) fields.topic_id = $("topic-select").value;
    if (!$("region-choice").hidden && $("region-select").value) fields.region = $("region-select").value;
    send("call_request", fields);
  } else {
    send("lobby_join");
  }
}

function onSocketDown({ code, resuming }) {
  if (code === 4001 || code === 4003) {
    endCall();
    notice(code === 4001 ? t("citizen.replaced") : t("citizen.pass_ended"));
  } else if (resuming) {
    updateCallState();
  } else if (state.session) {
    endCall();
  } else if ($("ended-view").hidden) {
    notice(t("citizen.server_lost"));
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
      break;
    case "call_waiting":
      state.waitingFor = message.session_id;
      // Takes the wait (and the call it becomes) up again after a lost connection.
      signalling.resumeWith({ sessionId: message.session_id, token: message.resume_token });
      break;
    case "resumed":
      state.me = message.participant_id;
      // Who is in the call now, as the server says: nobody else is answered.
      if (state.session && message.session_id === state.session.id) {
        state.session.mesh.knowOnly(message.peers);
      }
      updateCallState(); // the chat typed meanwhile goes out next (signalling.js)
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
      if (message.ref === "resume") { endCall(); break; }
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
  signalling.resumeWith({ sessionId: message.session_id, token: message.resume_token || signalling.ticket?.token });
  const mesh = new Mesh({
    sessionId: message.session_id,
    config: message,
    localStream: state.stream,
    send,
    onTrack: showRemote,
    onState: updateCallState,
    onGone: (peer) => removeTile(peer.participant_id),
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
  showRemoteMedia(peer, stream, state.session?.peer.participant_id);
  updateCallState();
}

function updateCallState() {
  const session = state.session;
  if (!session) return;
  showCallState(session.mesh, session.peer.participant_id, { reconnecting: signalling.lost });
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
  signalling.forget();
  signalling.stop();
  if (session) session.mesh.close();
  if (state.meterStop) state.meterStop();
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
  clearCallView();
  $("rejoin").hidden = state.mode !== "appointment";
  show("ended-view");
}

// What the citizen types while the connection is lost goes out after the resume, in order.
function sendChat(text) {
  if (!state.session) return false;
  signalling.sendAfterResume("chat", { session_id: state.session.id, text });
  return true;
}

function showChat(message) {
  if (!inSession(message)) return;
  showChatMessage($("chat-log"), message, { mine: message.sender === state.me });
}

boot();
