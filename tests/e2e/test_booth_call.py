"""The spine, end to end: a booth calls, an advisor in Chromium takes it, through coturn."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import (
    RELAY_MAX_PORT,
    RELAY_MIN_PORT,
    Coturn,
    Server,
    login_advisor,
    poll,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

READ_STAMP = """
async () => {
  const { readStamp } = await import('/static/js/stamp.js');
  const video = document.getElementById('remote-video');
  if (!video.videoWidth) return null;
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const g = canvas.getContext('2d', { willReadFrequently: true });
  g.drawImage(video, 0, 0);
  const stamp = readStamp(g.getImageData(0, 0, canvas.width, canvas.height));
  return stamp && { ...stamp, now: Date.now() };
}
"""


async def _stamp(page: Any) -> dict[str, int] | None:
    result: dict[str, int] | None = await page.evaluate(READ_STAMP)
    return result


async def test_booth_call_through_relay_to_advisor_browser(
    relayed_server: Server, coturn: Coturn, start_booth: Any, browser: Any
) -> None:
    page = await login_advisor(browser, relayed_server)
    booth = start_booth(relayed_server, "Branch 1 booth", "--call")

    waiting = booth.wait_for(
        lambda s: s.get("state") == "waiting" and s.get("session_id"),
        30,
        "the booth to wait for an advisor",
    )
    session_id = waiting["session_id"]
    requested_at = waiting["call_requested_at"]

    accept = page.get_by_role("button", name="Accept call from Branch 1 booth")
    await accept.click(timeout=15_000)
    clicked_at = time.time()

    # Polled with evaluate: wait_for_function evaluates strings, which the page's CSP forbids.
    first_frame_ms = await poll(
        lambda: page.evaluate("() => document.getElementById('remote-video').dataset.firstFrameAt"),
        20,
        "the first frame of the booth's video in the browser",
    )
    first_frame_at = float(first_frame_ms) / 1000.0
    print(
        f"\ncall set-up: booth request -> first frame in the browser "
        f"{first_frame_at - requested_at:.3f} s (accept click -> first frame "
        f"{first_frame_at - clicked_at:.3f} s)"
    )

    # The advisor sees the booth's test pattern, and it moves: the decoded frame number grows.
    first = await poll(lambda: _stamp(page), 10, "a readable stamp in the advisor's video")
    await page.wait_for_timeout(1000)
    second = await poll(lambda: _stamp(page), 10, "a second readable stamp")
    assert second["frameNumber"] > first["frameNumber"], (first, second)
    assert second["frameNumber"] - first["frameNumber"] >= 15, (first, second)
    age_ms = (second["now"] - second["captureMs"]) % 2**32
    print(f"stamp: frame {second['frameNumber']}, captured {age_ms} ms before it was read")

    # The booth's media goes through that coturn: its selected local candidate is a relay
    # candidate on the relay's port range, and coturn allocated for this session's credential.
    status = booth.wait_for(
        lambda s: (
            s.get("state") == "in_call"
            and s.get("call", {}).get("selected_pair") is not None
            and s["call"].get("video_fps_received", 0) >= 15
            and s["call"].get("audio_packets_received", 0) > 50
            and s["call"].get("audio_packets_sent", 0) > 50
        ),
        20,
        "the booth to receive the browser's camera at >= 15 fps and audio both ways",
    )
    call = status["call"]
    # Chromium takes H.264: the booth's encode-once (on a Pi 4, hardware) path, no VP8 encode.
    assert call["video_codec"] == "video/H264", call
    video_in = await poll(
        lambda: page.evaluate(
            "() => { const text = document.getElementById('stat-video-in').textContent;"
            " return text.startsWith('video/') && text; }"
        ),
        10,
        "the advisor's video statistics",
    )
    assert video_in.startswith("video/H264"), video_in
    pair = call["selected_pair"]
    assert pair["local_type"] == "relay", pair
    relay_host, relay_port = pair["local_address"].rsplit(":", 1)
    assert relay_host == "127.0.0.1"
    assert RELAY_MIN_PORT <= int(relay_port) <= RELAY_MAX_PORT, pair
    coturn_log = coturn.log.read_text(errors="replace")
    assert session_id in coturn_log, "coturn never saw this session's TURN credential"
    assert call["ice_policy"] == "relay"
    print(
        f"booth: relay {pair['local_address']} -> {pair['remote_type']} "
        f"{pair['remote_address']}; receiving {call['video_fps_received']} fps"
    )

    # Audio flows both ways, seen from both ends.
    assert call["audio_packets_sent"] > 50, call
    assert call["audio_packets_received"] > 50, call

    async def browser_audio() -> bool:
        counts = await page.eval_on_selector(
            "#stat-audio", "el => [Number(el.dataset.in), Number(el.dataset.out)]"
        )
        return bool(counts[0] > 50 and counts[1] > 50)

    await poll(browser_audio, 10, "the advisor page to count audio packets both ways")

    # The booth's live call statistics reach the advisor's call view.
    async def booth_stats_shown() -> bool:
        fps = await page.eval_on_selector("#stat-booth-sent", "el => el.dataset.fps")
        return bool(fps) and float(fps) > 15

    await poll(booth_stats_shown, 15, "the booth's statistics in the advisor's call view")
    print("advisor sees booth stats:", await page.inner_text("#stat-booth-sent"))

    # Chat from the advisor's page reaches the booth (which reports how many lines, not what).
    await page.get_by_label("Message").fill("Hello from the advisor")
    await page.get_by_role("button", name="Send").click()
    booth.wait_for(lambda s: s.get("call", {}).get("chat_lines") == 1, 10, "the chat line")
    await page.wait_for_selector("#chat-log li")

    # Hanging up in the browser returns the booth to idle and closes its peer connection.
    await page.get_by_role("button", name="End call").click()
    ended = booth.wait_for(
        lambda s: s.get("state") in ("ended", "idle") and s.get("calls_completed") == 1,
        15,
        "the booth to return to idle",
    )
    assert ended["session_id"] is None
    assert "call" not in ended
    assert ended["last_call_ended"]["peer_connection_state"] == "closed"
    await page.wait_for_selector("#queue-view:not([hidden])")
