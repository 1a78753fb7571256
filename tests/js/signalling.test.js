// server/static/js/signalling.js: reconnecting, resuming a wait or a call, and the outbox of
// what was typed while the connection was lost.
import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";

import { SignallingClient } from "../../server/static/js/signalling.js";
import { FakeClock, FakeWebSocket, settle } from "./fakes.js";

const CHAT = { session_id: "s-1", text: "still there?" };

function client(options = {}) {
  const clock = new FakeClock();
  const heard = { opened: [], messages: [], down: [] };
  const signalling = new SignallingClient({
    url: "ws://videobooth.test/api/v1/ws",
    WebSocket: FakeWebSocket,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: clock.now,
    onOpen: (info) => heard.opened.push(info),
    onMessage: (message) => heard.messages.push(message),
    onDown: (info) => heard.down.push(info),
    ...options,
  });
  return { signalling, clock, heard };
}

// Connected, with a call that can be resumed.
async function inCall(options = {}) {
  const made = client(options);
  made.signalling.connect();
  FakeWebSocket.last.accept();
  FakeWebSocket.last.serverSends({ type: "welcome", participant_id: "p-1", resume_grace_seconds: 20 });
  await settle();
  made.signalling.resumeWith({ sessionId: "s-1", token: "token-1" });
  return made;
}

beforeEach(() => FakeWebSocket.reset());

describe("SignallingClient", () => {
  it("sends each message as JSON with the protocol version, only while open", () => {
    const { signalling } = client();
    signalling.connect();
    const ws = FakeWebSocket.last;
    assert.equal(ws.url, "ws://videobooth.test/api/v1/ws");
    signalling.send("lobby_join"); // not open yet: dropped
    ws.accept();
    signalling.send("call_request", { topic_id: "t-1" });
    assert.deepEqual(ws.sent, [{ v: 1, type: "call_request", topic_id: "t-1" }]);
  });

  it("hands messages on one at a time, in order, and skips what is not JSON", async () => {
    const order = [];
    const { signalling } = client({
      onMessage: async (message) => {
        order.push(`start ${message.type}`);
        await new Promise((resolve) => setImmediate(resolve));
        order.push(`end ${message.type}`);
      },
    });
    signalling.connect();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.serverSends({ type: "offer" });
    FakeWebSocket.last.serverSends("not json");
    FakeWebSocket.last.serverSends({ type: "ice_candidate" });
    await settle();
    assert.deepEqual(order, ["start offer", "end offer", "start ice_candidate", "end ice_candidate"]);
  });

  it("reconnects with a doubling backoff, up to 30 s, and starts again at 1 s once open", async () => {
    const { signalling, clock, heard } = client({ keepConnected: true });
    signalling.connect();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.serverCloses(1006);
    assert.deepEqual(heard.down, [{ code: 1006, resuming: false, gaveUp: false }]);
    const delays = [];
    for (let i = 0; i < 7; i++) {
      delays.push(clock.pending[0]);
      const before = FakeWebSocket.made.length;
      await clock.advance(clock.pending[0]);
      assert.equal(FakeWebSocket.made.length, before + 1);
      FakeWebSocket.last.serverCloses(1006); // refused at the handshake
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    await clock.advance(clock.pending[0]);
    FakeWebSocket.last.accept();
    FakeWebSocket.last.serverCloses(1006);
    assert.deepEqual(clock.pending, [1000]);
  });

  it("asks before a backoff reconnect, and stays closed when told", async () => {
    let holds = false;
    const { signalling, clock } = client({ keepConnected: true, beforeReconnect: async () => holds });
    signalling.connect();
    FakeWebSocket.last.serverCloses(1006);
    await clock.advance(1000);
    assert.equal(FakeWebSocket.made.length, 1);
    holds = true;
    signalling.connect();
    FakeWebSocket.last.serverCloses(1006);
    await clock.advance(clock.pending[0]);
    assert.equal(FakeWebSocket.made.length, 3);
  });

  it("does not reconnect without something to resume unless asked to stay connected", async () => {
    const { signalling, clock, heard } = client();
    signalling.connect();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.serverCloses(1006);
    await clock.advance(60000);
    assert.equal(FakeWebSocket.made.length, 1);
    assert.deepEqual(heard.down, [{ code: 1006, resuming: false, gaveUp: false }]);
  });

  it("tries nothing again after a final close code", async () => {
    const { signalling, clock, heard } = await inCall({ keepConnected: true, finalCodes: [4001, 4003] });
    FakeWebSocket.last.serverCloses(4003);
    await clock.advance(60000);
    assert.equal(FakeWebSocket.made.length, 1);
    assert.deepEqual(heard.down, [{ code: 4003, resuming: false, gaveUp: false }]);
    assert.equal(signalling.open, false);
  });

  it("resumes a lost call every second, sending resume first", async () => {
    const { signalling, clock, heard } = await inCall();
    FakeWebSocket.last.serverCloses(1006);
    assert.equal(signalling.lost, true);
    assert.deepEqual(heard.down, [{ code: 1006, resuming: true, gaveUp: false }]);
    assert.deepEqual(clock.pending, [1000]);
    await clock.advance(1000);
    FakeWebSocket.last.serverCloses(1006); // the server is still away
    await clock.advance(1000);
    const ws = FakeWebSocket.last;
    assert.equal(FakeWebSocket.made.length, 3);
    ws.accept();
    assert.deepEqual(ws.sent, [{ v: 1, type: "resume", id: "resume", session_id: "s-1", token: "token-1" }]);
    assert.deepEqual(heard.opened.at(-1), { resuming: true });
    ws.serverSends({ type: "resumed", session_id: "s-1", participant_id: "p-2", peers: [] });
    await settle();
    assert.equal(signalling.lost, false);
    assert.equal(heard.messages.at(-1).type, "resumed");
  });

  it("sends what was typed while disconnected after the resume, in order", async () => {
    const seenWhenResumed = [];
    const { signalling, clock } = await inCall({
      onMessage: (message) => {
        if (message.type === "resumed") seenWhenResumed.push(...FakeWebSocket.last.sentTypes);
      },
    });
    FakeWebSocket.last.serverCloses(1006);
    signalling.sendAfterResume("chat", CHAT);
    signalling.sendAfterResume("chat", { ...CHAT, text: "hello?" });
    await clock.advance(1000);
    const ws = FakeWebSocket.last;
    ws.accept();
    assert.deepEqual(ws.sentTypes, ["resume"]); // not before the server took the call up again
    ws.serverSends({ type: "resumed", session_id: "s-1", participant_id: "p-1", peers: [] });
    await settle();
    assert.deepEqual(seenWhenResumed, ["resume"]); // the page heard of it first
    assert.deepEqual(ws.sent.slice(1), [
      { v: 1, type: "chat", ...CHAT },
      { v: 1, type: "chat", ...CHAT, text: "hello?" },
    ]);
    signalling.sendAfterResume("chat", { ...CHAT, text: "now" }); // connected: at once
    assert.equal(ws.sent.at(-1).text, "now");
  });

  it("drops the outbox when the call is forgotten", async () => {
    const { signalling, clock } = await inCall({ keepConnected: true });
    FakeWebSocket.last.serverCloses(1006);
    signalling.sendAfterResume("chat", CHAT);
    signalling.forget();
    assert.equal(signalling.lost, false);
    await clock.advance(1000);
    const ws = FakeWebSocket.last;
    ws.accept();
    ws.serverSends({ type: "resumed", session_id: "s-1", participant_id: "p-1", peers: [] });
    await settle();
    assert.deepEqual(ws.sent, []); // no ticket: no resume, and no chat
  });

  it("gives up once the server's resume window (and a margin) has passed", async () => {
    const { clock, heard } = await inCall({ keepConnected: true });
    FakeWebSocket.last.serverCloses(1006);
    for (let second = 1; second <= 31; second++) {
      await clock.advance(1000);
      FakeWebSocket.last.serverCloses(1006);
    }
    // 20 s from the welcome, plus 10: resumed until then (the first loss and 30 more), given up after.
    assert.equal(heard.down.filter((d) => d.resuming).length, 31);
    assert.deepEqual(heard.down.at(-1), { code: 1006, resuming: false, gaveUp: true });
    assert.deepEqual(clock.pending, [1000]); // the backoff of a page that stays connected
  });

  it("stop() ends it: no reconnect, nothing more heard from the old socket", async () => {
    const { signalling, clock, heard } = await inCall({ keepConnected: true });
    const ws = FakeWebSocket.last;
    FakeWebSocket.last.serverCloses(1006);
    signalling.stop();
    await clock.advance(60000);
    assert.equal(FakeWebSocket.made.length, 1);
    ws.serverSends({ type: "chat" });
    await settle();
    assert.equal(heard.messages.some((m) => m.type === "chat"), false);
    signalling.connect(); // and connect() opens it again
    assert.equal(FakeWebSocket.made.length, 2);
  });
});
