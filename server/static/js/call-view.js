// What the advisor's and the citizen's pages show of a call: the other party on the stage
// (#remote-video), anyone else in a tile beside it (#tiles), the connection's state
// (#call-state, #reconnecting), and the microphone and camera toggles (#mute, #camera).

import { $, announce, element } from "./dom.js";
import { t } from "./i18n.js";

function tileOf(participantId) {
  return document.querySelector(`#tiles li[data-participant-id="${CSS.escape(participantId)}"]`);
}

/** The tile of `peer` (made when there is none): their video and name, and with `onRemove` a
 * control that takes them out of the call. */
export function tileFor(peer, { onRemove } = {}) {
  const existing = tileOf(peer.participant_id);
  if (existing) return existing;
  const tile = element("li");
  tile.dataset.participantId = peer.participant_id;
  const video = element("video", { attrs: { "aria-label": t("call.video_of", { name: peer.name }) } });
  video.autoplay = true;
  video.playsInline = true;
  tile.append(video, element("span", { text: peer.name }));
  // Pinned, the tile takes the width of the call (a sign-language interpreter, large enough to
  // read); the stage gives way. One tile at a time.
  const pin = element("button", {
    text: t("call.pin"),
    className: "secondary pin",
    attrs: { type: "button", "aria-pressed": "false", "aria-label": t("call.pin_label", { name: peer.name }) },
  });
  pin.addEventListener("click", () => pinTile(tile));
  tile.append(pin);
  if (onRemove) {
    const remove = element("button", {
      text: t("call.remove"),
      className: "secondary remove",
      attrs: { type: "button", "aria-label": t("call.remove_label", { name: peer.name }) },
    });
    remove.addEventListener("click", () => onRemove(peer, remove));
    tile.append(remove);
  }
  $("tiles").append(tile);
  return tile;
}

/** Pin `tile` large, or unpin it when it is pinned already. */
export function pinTile(tile) {
  const pinning = !tile.classList.contains("pinned");
  for (const other of document.querySelectorAll("#tiles li.pinned")) {
    other.classList.remove("pinned");
    other.querySelector("button.pin").setAttribute("aria-pressed", "false");
  }
  tile.classList.toggle("pinned", pinning);
  tile.querySelector("button.pin").setAttribute("aria-pressed", String(pinning));
  $("call-view").classList.toggle("pinned-view", pinning);
}

/** Take away the tile of a participant who left. */
export function removeTile(participantId) {
  const tile = tileOf(participantId);
  if (tile?.classList.contains("pinned")) pinTile(tile);
  tile?.remove();
}

/** Show `stream` of `peer`: on the stage when they are `stagePeerId`, in their tile otherwise.
 * Gives the <video>. */
export function showRemote(peer, stream, stagePeerId, tileOptions = {}) {
  const video = peer.participant_id === stagePeerId ? $("remote-video") : tileFor(peer, tileOptions).querySelector("video");
  if (video.srcObject !== stream) video.srcObject = stream;
  return video;
}

/** The call's state as the pill shows it: the stage peer's connection, or "reconnecting" while
 * the mesh restarts ICE or `reconnecting` says so (signalling lost, the peer away). */
export function showCallState(mesh, stagePeerId, { reconnecting = false } = {}) {
  const leg = mesh.legs.get(stagePeerId);
  let current = leg ? leg.pc.connectionState : "connecting";
  if (mesh.reconnecting || reconnecting) current = "reconnecting";
  const pill = $("call-state");
  // Screen-reader users hear each change of the call's state (the pill only shows it).
  if (pill.dataset.state !== current || !pill.dataset.announced) {
    pill.dataset.announced = "yes";
    announce(t("call.state_announced", { state: t(`call.state.${current}`) }));
  }
  pill.dataset.state = current;
  pill.textContent = t(`call.state.${current}`);
  $("reconnecting").hidden = current !== "reconnecting";
  return current;
}

/** Turn the `kind` ("audio", "video") tracks of `stream` off or on again with `button`; its
 * text says what pressing it next does (`pressedKey` while pressed). */
export function toggleTracks(button, stream, kind, pressedKey, releasedKey) {
  const pressed = button.getAttribute("aria-pressed") !== "true";
  for (const track of stream?.getTracks() || []) if (track.kind === kind) track.enabled = !pressed;
  button.setAttribute("aria-pressed", String(pressed));
  button.dataset.i18n = pressed ? pressedKey : releasedKey;
  button.textContent = t(button.dataset.i18n);
}

/** #mute and #camera switch the microphone and the camera of `stream()`. */
export function wireToggles(stream) {
  $("mute").addEventListener("click", () => toggleTracks($("mute"), stream(), "audio", "call.unmute", "call.mute"));
  $("camera").addEventListener("click", () => toggleTracks($("camera"), stream(), "video", "call.camera_on", "call.camera_off"));
}

/** The call is over: no media on the stage or in the tiles, the chat gone with it. */
export function clearCallView() {
  $("remote-video").srcObject = null;
  $("local-video").srcObject = null;
  $("tiles").replaceChildren();
  $("call-view").classList.remove("pinned-view");
  $("chat-log").replaceChildren();
  delete $("call-state").dataset.announced;
}
