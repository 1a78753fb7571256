"""Pieces of JavaScript the benchmarks put into Chromium's pages (statements, for the scripts
that need them to include)."""

from __future__ import annotations

#: Every RTCPeerConnection the page makes from here on is kept in ``window.__pcs``.
KEEP_CONNECTIONS = """
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__pcs.push(this); }
  };
"""

#: Waits until ``pc`` has gathered its candidates (aiortc takes no trickled ones: the
#: description must carry them all).
CANDIDATES_GATHERED = """
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((done) => {
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') done();
      });
    });
  }
"""
