"""In real Chromium: an interpreter the advisor removed keeps its page, its guest pass and the
resume token from ``call_started``, and tries to come back into the call on a connection of its
own, offering to the advisor. The server refuses the resume and relays nothing, the advisor's
page answers nobody it was not told of, and the removed page receives no media.

Real coturn, server, headless booth and two Chromium pages."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.e2e.conftest import Server, login_advisor, poll
from tests.e2e.journeys import citizen_page, invite_link, playing, three_clicks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# Every peer connection a page makes, so the test can tell which are still open.
TRACK_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();
"""

OPEN_CONNECTIONS = """
() => window.__pcs.filter((pc) => pc.connectionState !== "closed").length
"""

# What a removed participant's page could do with what it kept: resume, then offer to the
# advisor to receive their camera and microphone.
COME_BACK = """
async ([token, sessionId, advisorId]) => {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/ws`);
  const replies = [];
  await new Promise((resolve) => { ws.onopen = resolve; });
  const pc = new RTCPeerConnection({ iceServers: [] });
  ws.onmessage = async (event) => {
    const m = JSON.parse(event.data);
    replies.push(m);
    if (m.type === "answer") await pc.setRemoteDescription({ type: "answer", sdp: m.sdp });
    if (m.type === "ice_candidate" && m.candidate) {
      await pc.addIceCandidate({
        candidate: m.candidate, sdpMid: m.sdp_mid, sdpMLineIndex: m.sdp_mline_index });
    }
  };
  const send = (fields) => ws.send(JSON.stringify({ v: 1, ...fields }));
  send({ type: "resume", id: "resume", session_id: sessionId, token });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const resumed = replies.find((m) => m.type === "resumed");
  if (resumed) {
    pc.setConfiguration({ iceServers: resumed.ice_servers.map((s) => ({
      urls: s.urls, username: s.username, credential: s.credential })) });
  }
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.onicecandidate = (e) => send({
    type: "ice_candidate", session_id: sessionId, to: advisorId,
    candidate: e.candidate ? e.candidate.candidate : null,
    sdp_mid: e.candidate ? e.candidate.sdpMid : null,
    sdp_mline_index: e.candidate ? e.candidate.sdpMLineIndex : null,
  });
  await pc.setLocalDescription(await pc.createOffer());
  const sdp = pc.localDescription.sdp;
  send({ type: "offer", session_id: sessionId, to: advisorId, sdp, restart: true });
  await new Promise((resolve) => setTimeout(resolve, 8000));
  let bytes = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp") bytes += s.bytesReceived || 0;
  });
  return { replies: replies.map((m) => m.type === "error" ? `error:${m.code}` : m.type),
           bytes, state: pc.connectionState };
}
"""


async def test_security_a_removed_interpreter_gets_no_media_in_chromium(
    relayed_server: Server, start_booth: Any, browser: Any
) -> None:
    advisor = await login_advisor(browser, relayed_server)
    await advisor.add_init_script(TRACK_CONNECTIONS)
    await advisor.reload()
    await advisor.wait_for_selector("#queue-view:not([hidden])")
    start_booth(relayed_server, "Branch 1 booth", "--call")
    await advisor.get_by_role("button", name="Accept call from Branch 1 booth").click(
        timeout=30_000
    )
    await playing(advisor, "#remote-video", "the booth's video at the advisor")

    link = await invite_link(advisor, "Interpreter")

    guest_context, interpreter = await citizen_page(browser)
    received: list[dict[str, Any]] = []

    def on_socket(ws: Any) -> None:
        ws.on("framereceived", lambda payload: received.append(json.loads(payload)))

    interpreter.on("websocket", on_socket)
    await three_clicks(interpreter, link)
    await advisor.get_by_role("button", name="Admit Interpreter into the call").click(
        timeout=15_000
    )
    await playing(advisor, "#tiles li video", "the interpreter's video at the advisor")
    started = next(m for m in received if m["type"] == "call_started")
    advisor_id = next(p["participant_id"] for p in started["peers"] if p["role"] == "advisor")
    assert await advisor.evaluate(OPEN_CONNECTIONS) == 2  # the booth and the interpreter

    # The advisor removes the interpreter with the control on its tile.
    advisor.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await advisor.get_by_role("button", name="Remove Interpreter from the call").click()
    await interpreter.wait_for_selector("#ended-view:not([hidden])")
    await poll(
        lambda: advisor.evaluate("() => document.querySelectorAll('#tiles li').length === 0"),
        10,
        "the interpreter's tile to go",
    )
    assert await advisor.evaluate(OPEN_CONNECTIONS) == 1

    attempt = await interpreter.evaluate(
        COME_BACK, [started["resume_token"], started["session_id"], advisor_id]
    )
    print(f"\nremoved interpreter's attempt: {attempt}")
    assert "error:cannot_resume" in attempt["replies"]
    assert "resumed" not in attempt["replies"] and "answer" not in attempt["replies"]
    assert attempt["bytes"] == 0 and attempt["state"] != "connected"
    # The advisor's page made no connection for it and still talks to the booth only.
    assert await advisor.evaluate(OPEN_CONNECTIONS) == 1
    assert await advisor.evaluate("() => window.__pcs.length") == 2
    await playing(advisor, "#remote-video", "the booth's video at the advisor, still")
    await guest_context.close()


# The pages' own defence, should a server ever relay such an offer: mesh.js answers only
# participants the server announced, and forgets one that left or was removed.
MESH_ANSWERS_ONLY_ANNOUNCED = """
async () => {
  const { Mesh } = await import("/static/js/mesh.js");
  const sent = [];
  const mesh = new Mesh({
    sessionId: "s1",
    config: { ice_servers: [], ice_transport_policy: "all" },
    localStream: new MediaStream(),
    send: (type, fields) => sent.push(type),
    onTrack: () => {}, onState: () => {}, onGone: () => {},
  });
  const offerer = new RTCPeerConnection();
  offerer.addTransceiver("video", { direction: "recvonly" });
  await offerer.setLocalDescription(await offerer.createOffer());
  const sdp = offerer.localDescription.sdp;
  const offer = (sender) => ({ type: "offer", session_id: "s1", sender, sdp });
  await mesh.onOffer(offer("stranger"));
  const afterStranger = [mesh.legs.size, sent.filter((t) => t === "answer").length];
  mesh.know([{ participant_id: "guest", role: "citizen", name: "Interpreter" }]);
  await mesh.onOffer(offer("guest"));
  const afterGuest = [mesh.legs.size, sent.filter((t) => t === "answer").length];
  mesh.remove("guest");
  await mesh.onOffer({ ...offer("guest"), restart: true });
  const afterRemoved = [mesh.legs.size, sent.filter((t) => t === "answer").length];
  mesh.close();
  offerer.close();
  return { afterStranger, afterGuest, afterRemoved };
}
"""


async def test_security_pages_answer_only_announced_participants(
    relayed_server: Server, browser: Any
) -> None:
    page = await browser.new_page()
    await page.goto(f"{relayed_server.url}/advisor/")
    result = await page.evaluate(MESH_ANSWERS_ONLY_ANNOUNCED)
    assert result == {
        "afterStranger": [0, 0],  # nobody announced it: no connection, no answer
        "afterGuest": [1, 1],  # announced: answered
        "afterRemoved": [0, 1],  # removed: not answered again
    }
    await page.close()
