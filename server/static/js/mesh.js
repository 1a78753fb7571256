// One call's peer connections: one with each other participant (a mesh of up to four).
// Whoever is already in a call offers to the one who joins; the server relays each offer,
// answer and candidate only to the participant named in "to". Only participants the server
// announced (call_started, participant_joined, resumed) are answered: an offer from anyone
// else is dropped, so nothing is ever sent to a person the page shows no tile for.

export class Mesh {
  // sessionId: the call; config: {ice_servers, ice_transport_policy} from call_started;
  // localStream: what this page sends; send(type, fields): the signalling WebSocket;
  // onTrack(peer, stream), onState(peer, state), onGone(peer): for the page to show.
  constructor({ sessionId, config, localStream, send, onTrack, onState, onGone }) {
    this.sessionId = sessionId;
    this.config = {
      iceServers: config.ice_servers.map((s) => ({
        urls: s.urls, username: s.username, credential: s.credential,
      })),
      iceTransportPolicy: config.ice_transport_policy,
      bundlePolicy: "max-bundle",
    };
    this.localStream = localStream;
    this.send = send;
    this.onTrack = onTrack;
    this.onState = onState;
    this.onGone = onGone;
    this.known = new Map(); // participant id -> peer {participant_id, role, name}
    this.legs = new Map(); // participant id -> {peer, pc, stream, offerer}
  }

  know(peers) {
    for (const peer of peers) this.known.set(peer.participant_id, peer);
  }

  // The server says who is in the call now (a resume): anyone else's connection goes.
  knowOnly(peers) {
    const present = new Set(peers.map((peer) => peer.participant_id));
    for (const id of [...this.known.keys()]) if (!present.has(id)) this.remove(id);
    this.know(peers);
  }

  leg(peer, offerer) {
    const existing = this.legs.get(peer.participant_id);
    if (existing) return existing;
    const pc = new RTCPeerConnection(this.config);
    const leg = { peer, pc, stream: null, offerer };
    this.legs.set(peer.participant_id, leg);
    this.known.set(peer.participant_id, peer);
    pc.ontrack = (event) => {
      const stream = event.streams[0] || new MediaStream([event.track]);
      leg.stream = stream;
      this.onTrack(peer, stream, event.track);
    };
    pc.onicecandidate = (event) => {
      const c = event.candidate;
      this.send("ice_candidate", {
        session_id: this.sessionId,
        to: peer.participant_id,
        candidate: c ? c.candidate : null,
        sdp_mid: c ? c.sdpMid : null,
        sdp_mline_index: c ? c.sdpMLineIndex : null,
      });
    };
    pc.oniceconnectionstatechange = () => {
      const ice = pc.iceConnectionState;
      // "disconnected" often heals by itself (ICE keeps checking); say so meanwhile.
      if (ice === "disconnected") this.onState(peer, "reconnecting");
      else if (ice === "failed") {
        this.onState(peer, "reconnecting");
        // Between two browsers the offerer restarts ICE; a booth leg recovers from its side.
        if (leg.offerer && peer.role !== "booth") this.restart(leg);
      } else if (ice === "connected" || ice === "completed") this.onState(peer, "connected");
    };
    // Every change is told: "connected" comes after ICE connects (DTLS), and a page that
    // showed "connecting" until then must hear of it.
    pc.onconnectionstatechange = () => this.onState(peer, pc.connectionState);
    for (const track of this.localStream.getTracks()) pc.addTrack(track, this.localStream);
    return leg;
  }

  async restart(leg) {
    try {
      await leg.pc.setLocalDescription(await leg.pc.createOffer({ iceRestart: true }));
      this.sendDescription("offer", leg);
    } catch (error) {
      console.error("ICE restart", error);
    }
  }

  sendDescription(type, leg) {
    this.send(type, {
      session_id: this.sessionId, to: leg.peer.participant_id, sdp: leg.pc.localDescription.sdp,
    });
  }

  async offerTo(peer) {
    const leg = this.leg(peer, true);
    await leg.pc.setLocalDescription(await leg.pc.createOffer());
    this.sendDescription("offer", leg);
  }

  async onOffer(message) {
    const peer = this.known.get(message.sender);
    if (!peer) {
      console.warn("ignored an offer from a participant the server did not announce");
      return;
    }
    // "restart": the sender made a new connection in place of one that did not heal (a booth
    // cannot restart ICE); the old one goes, the same person stays.
    if (message.restart) this.replace(message.sender);
    const leg = this.leg(peer, false);
    await leg.pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
    await leg.pc.setLocalDescription(await leg.pc.createAnswer());
    this.sendDescription("answer", leg);
  }

  async onAnswer(message) {
    const leg = this.legs.get(message.sender);
    if (leg) await leg.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
  }

  async onCandidate(message) {
    const leg = this.legs.get(message.sender);
    if (!leg || !message.candidate) return;
    await leg.pc.addIceCandidate({
      candidate: message.candidate,
      sdpMid: message.sdp_mid ?? null,
      sdpMLineIndex: message.sdp_mline_index ?? 0,
    });
  }

  replace(participantId) {
    const old = this.legs.get(participantId);
    if (!old) return;
    this.legs.delete(participantId);
    old.pc.close();
  }

  // The participant left or was removed: its connection closes and it is not answered again.
  remove(participantId) {
    const peer = this.known.get(participantId);
    this.known.delete(participantId);
    const leg = this.legs.get(participantId);
    if (leg) {
      this.legs.delete(participantId);
      leg.pc.close();
    }
    if (peer || leg) this.onGone(peer || leg.peer);
  }

  close() {
    for (const leg of this.legs.values()) leg.pc.close();
    this.legs.clear();
  }

  // Any leg whose path is interrupted makes the call "reconnecting".
  get reconnecting() {
    for (const leg of this.legs.values()) {
      if (["disconnected", "failed"].includes(leg.pc.iceConnectionState)) return true;
    }
    return false;
  }
}
