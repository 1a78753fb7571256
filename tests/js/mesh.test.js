// server/static/js/mesh.js: who is answered, who offers, and what a restart replaces.
import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";

import { Mesh } from "../../server/static/js/mesh.js";
import { FakePeerConnection, fakeStream } from "./fakes.js";

globalThis.RTCPeerConnection = FakePeerConnection;
globalThis.MediaStream = class { constructor(tracks) { this.tracks = tracks; } };

const BOOTH = { participant_id: "p-booth", role: "booth", name: "Branch 1 booth" };
const ADVISOR = { participant_id: "p-advisor", role: "advisor", name: "Ada" };
const GUEST = { participant_id: "p-guest", role: "guest", name: "Interpreter" };
const CONFIG = {
  ice_servers: [{ urls: ["turn:relay.test:3478"], username: "u", credential: "c" }],
  ice_transport_policy: "relay",
};

function mesh() {
  const events = { sent: [], tracks: [], states: [], gone: [] };
  const m = new Mesh({
    sessionId: "s1",
    config: CONFIG,
    localStream: fakeStream(),
    send: (type, fields) => events.sent.push({ type, ...fields }),
    onTrack: (peer) => events.tracks.push(peer.participant_id),
    onState: (peer, state) => events.states.push([peer.participant_id, state]),
    onGone: (peer) => events.gone.push(peer.participant_id),
  });
  return { m, events };
}

describe("Mesh", () => {
  beforeEach(() => FakePeerConnection.reset());

  it("gives the relay's servers and policy to each peer connection", async () => {
    const { m } = mesh();
    await m.offerTo(BOOTH);
    const [pc] = FakePeerConnection.made;
    assert.deepEqual(pc.config, {
      iceServers: [{ urls: ["turn:relay.test:3478"], username: "u", credential: "c" }],
      iceTransportPolicy: "relay",
      bundlePolicy: "max-bundle",
    });
    assert.equal(pc.tracks.length, 2, "the local audio and video are sent");
  });

  it("offers to the one named and addresses the offer to them", async () => {
    const { m, events } = mesh();
    await m.offerTo(ADVISOR);
    assert.deepEqual(events.sent, [{ type: "offer", session_id: "s1", to: "p-advisor", sdp: "offer-1" }]);
  });

  it("answers an offer only from a participant the server announced", async () => {
    const { m, events } = mesh();
    await m.onOffer({ sender: "p-stranger", sdp: "offer" });
    assert.equal(FakePeerConnection.made.length, 0, "no connection for a stranger");
    assert.deepEqual(events.sent, []);

    m.know([ADVISOR]);
    await m.onOffer({ sender: "p-advisor", sdp: "offer" });
    assert.equal(FakePeerConnection.made.length, 1);
    assert.deepEqual(FakePeerConnection.made[0].remoteDescription, { type: "offer", sdp: "offer" });
    assert.deepEqual(events.sent, [{ type: "answer", session_id: "s1", to: "p-advisor", sdp: "answer" }]);
  });

  it("no longer answers a participant who left, and tells the page once", async () => {
    const { m, events } = mesh();
    m.know([ADVISOR, GUEST]);
    await m.onOffer({ sender: "p-guest", sdp: "offer" });
    m.remove("p-guest");
    assert.equal(FakePeerConnection.made[0].closed, true);
    assert.deepEqual(events.gone, ["p-guest"]);

    await m.onOffer({ sender: "p-guest", sdp: "offer again" });
    assert.equal(FakePeerConnection.made.length, 1, "the removed guest gets no new connection");
    m.remove("p-guest");
    assert.deepEqual(events.gone, ["p-guest"], "told only once");
  });

  it("keeps, after a resume, only the participants the server names", async () => {
    const { m, events } = mesh();
    m.know([ADVISOR, GUEST]);
    await m.onOffer({ sender: "p-guest", sdp: "offer" });
    m.knowOnly([ADVISOR]);
    assert.deepEqual(events.gone, ["p-guest"]);
    assert.equal(FakePeerConnection.made[0].closed, true);
    await m.onOffer({ sender: "p-guest", sdp: "offer" });
    assert.equal(FakePeerConnection.made.length, 1);
  });

  it("replaces the connection when the sender restarts, keeping the person", async () => {
    const { m, events } = mesh();
    m.know([BOOTH]);
    await m.onOffer({ sender: "p-booth", sdp: "first" });
    await m.onOffer({ sender: "p-booth", sdp: "second", restart: true });
    const [old, fresh] = FakePeerConnection.made;
    assert.equal(old.closed, true);
    assert.equal(fresh.closed, false);
    assert.deepEqual(fresh.remoteDescription, { type: "offer", sdp: "second" });
    assert.deepEqual(events.gone, [], "the booth is still in the call");
  });

  it("applies candidates to the sender's connection and ignores the end-of-candidates null", async () => {
    const { m } = mesh();
    m.know([ADVISOR]);
    await m.onOffer({ sender: "p-advisor", sdp: "offer" });
    await m.onCandidate({ sender: "p-advisor", candidate: "candidate:1 1 udp 1 10.0.0.1 9 typ relay", sdp_mid: "0", sdp_mline_index: 0 });
    await m.onCandidate({ sender: "p-advisor", candidate: null });
    await m.onCandidate({ sender: "p-stranger", candidate: "candidate:2" });
    assert.deepEqual(FakePeerConnection.made[0].candidates, [
      { candidate: "candidate:1 1 udp 1 10.0.0.1 9 typ relay", sdpMid: "0", sdpMLineIndex: 0 },
    ]);
  });

  it("restarts ICE as the offerer between browsers, never towards a booth", async () => {
    const { m, events } = mesh();
    await m.offerTo(GUEST);
    await m.offerTo(BOOTH);
    const [toGuest, toBooth] = FakePeerConnection.made;
    events.sent.length = 0;

    toGuest.iceBecomes("failed");
    toBooth.iceBecomes("failed");
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(events.sent, [{ type: "offer", session_id: "s1", to: "p-guest", sdp: "offer-2-restart" }]);
    assert.deepEqual(events.states, [["p-guest", "reconnecting"], ["p-booth", "reconnecting"]]);
    assert.equal(m.reconnecting, true);
  });

  it("the answerer waits for the offerer's restart", async () => {
    const { m, events } = mesh();
    m.know([GUEST]);
    await m.onOffer({ sender: "p-guest", sdp: "offer" });
    events.sent.length = 0;
    FakePeerConnection.made[0].iceBecomes("failed");
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(events.sent, []);
  });

  it("sends each local candidate to its peer, and the end of candidates as null", async () => {
    const { m, events } = mesh();
    await m.offerTo(ADVISOR);
    const [pc] = FakePeerConnection.made;
    events.sent.length = 0;
    pc.onicecandidate({ candidate: { candidate: "candidate:9", sdpMid: "0", sdpMLineIndex: 0 } });
    pc.onicecandidate({ candidate: null });
    assert.deepEqual(events.sent, [
      { type: "ice_candidate", session_id: "s1", to: "p-advisor", candidate: "candidate:9", sdp_mid: "0", sdp_mline_index: 0 },
      { type: "ice_candidate", session_id: "s1", to: "p-advisor", candidate: null, sdp_mid: null, sdp_mline_index: null },
    ]);
  });
});
