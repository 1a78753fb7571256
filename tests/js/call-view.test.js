// server/static/js/call-view.js: the microphone and camera toggles, and the call's state pill.
import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";

import { showCallState, toggleTracks } from "../../server/static/js/call-view.js";
import { FakeDocument, fakeStream } from "./fakes.js";

let page;
beforeEach(() => {
  page = new FakeDocument();
  globalThis.document = page;
});

describe("toggleTracks", () => {
  it("turns the tracks of one kind off, then on again, and says what pressing does next", () => {
    const button = page.add("button", "mute");
    button.setAttribute("aria-pressed", "false");
    const stream = fakeStream();
    toggleTracks(button, stream, "audio", "call.unmute", "call.mute");
    assert.deepEqual(stream.getTracks().map((t) => [t.kind, t.enabled]), [["audio", false], ["video", true]]);
    assert.equal(button.getAttribute("aria-pressed"), "true");
    assert.equal(button.dataset.i18n, "call.unmute");
    toggleTracks(button, stream, "audio", "call.unmute", "call.mute");
    assert.deepEqual(stream.getTracks().map((t) => t.enabled), [true, true]);
    assert.equal(button.getAttribute("aria-pressed"), "false");
    assert.equal(button.dataset.i18n, "call.mute");
  });

  it("works before there is a stream (the button still says its state)", () => {
    const button = page.add("button", "camera");
    toggleTracks(button, null, "video", "call.camera_on", "call.camera_off");
    assert.equal(button.getAttribute("aria-pressed"), "true");
  });
});

describe("showCallState", () => {
  function mesh(state, { reconnecting = false } = {}) {
    const legs = new Map(state ? [["p-booth", { pc: { connectionState: state } }]] : []);
    return { legs, reconnecting };
  }

  beforeEach(() => {
    page.add("span", "call-state");
    page.add("div", "reconnecting");
  });

  it("shows the stage peer's connection", () => {
    assert.equal(showCallState(mesh(null), "p-booth"), "connecting");
    assert.equal(showCallState(mesh("connected"), "p-booth"), "connected");
    assert.equal(page.getElementById("call-state").dataset.state, "connected");
    assert.equal(page.getElementById("call-state").textContent, "call.state.connected");
    assert.equal(page.getElementById("reconnecting").hidden, true);
  });

  it("says reconnecting while ICE restarts or the signalling is lost", () => {
    assert.equal(showCallState(mesh("connected", { reconnecting: true }), "p-booth"), "reconnecting");
    assert.equal(showCallState(mesh("connected"), "p-booth", { reconnecting: true }), "reconnecting");
    assert.equal(page.getElementById("reconnecting").hidden, false);
  });
});
