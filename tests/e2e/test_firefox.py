"""The advisor's workspace and the citizen's join page in Firefox (Debian's firefox-esr, as it
is: no H.264 in WebRTC, so a booth sends it VP8).

Playwright cannot drive a stock Firefox, so these tests use the small WebDriver BiDi client in
tests/e2e/firefox.py: real mouse clicks and key presses, nothing of the pages stubbed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.e2e.conftest import BoothProcess, Server, appointment_start, login_advisor, poll
from tests.e2e.journeys import invite_link

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

# The remote video's size and play position, once it shows decoded frames.
VIDEO_PLAYING = """(() => {
  const v = document.getElementById('remote-video');
  return v && v.videoWidth > 0 && v.currentTime > 0
    ? { width: v.videoWidth, height: v.videoHeight, time: v.currentTime } : null;
})()"""


# The booth's tile on the citizen's (an interpreter's) call page, once it plays.
BOOTH_TILE_PLAYING = """(() => {
  const v = document.querySelector('#tiles li video');
  return v && v.videoWidth > 0 && v.currentTime > 0 ? { time: v.currentTime } : null;
})()"""

# The workspace's statistics of the booth's video, from its peer connection's getStats():
# inbound-rtp's codec and framesDecoded.
VIDEO_IN = """(() => {
  const d = document.getElementById('stat-video-in');
  const frames = Number(d.dataset.frames);
  return frames > 0 ? { codec: d.textContent.split(' ')[0], frames, text: d.textContent } : null;
})()"""

# Audio packets the workspace received from the booth (inbound-rtp, audio).
AUDIO_IN = "Number(document.getElementById('stat-audio').dataset.in)"

# Frames of the booth's video painted in two seconds, counted with requestVideoFrameCallback.
COUNT_PAINTED = """new Promise((resolve) => {
  const v = document.getElementById('remote-video');
  let painted = 0;
  const count = () => { painted += 1; v.requestVideoFrameCallback(count); };
  v.requestVideoFrameCallback(count);
  setTimeout(() => resolve(painted), 2000);
})"""


def visible(view: str) -> str:
    return f"!document.getElementById({view!r}).hidden"


async def video_moves(evaluate: Any, who: str) -> dict[str, Any]:
    """The remote video has frames and its play position advances by about a second."""
    first = await poll(lambda: evaluate(VIDEO_PLAYING), 20, f"video at the {who}")
    await asyncio.sleep(1.0)
    second = await evaluate(VIDEO_PLAYING)
    assert second and second["time"] - first["time"] > 0.5, (who, first, second)
    print(f"{who} sees {second['width']}x{second['height']}, playing {second['time']:.1f} s")
    return dict(second)


async def booth_status(booth: BoothProcess, check: Any, timeout: float, what: str) -> Any:
    # BoothProcess.wait_for sleeps; in a thread the BiDi connection keeps being read.
    return await asyncio.to_thread(booth.wait_for, check, timeout, what)


async def test_advisor_in_firefox_takes_a_booth_call(
    relayed_server: Server, start_booth: Any, firefox: Any
) -> None:
    """Debian's Firefox ESR as it is (no H.264 in WebRTC): the booth sends it VP8, Firefox
    decodes it, sends its own camera in VP8, and the call's audio goes both ways."""
    started = time.monotonic()
    await firefox.navigate(f"{relayed_server.url}/advisor/")
    await firefox.poll(visible("login-view"), 10, "the login form")
    codecs = await firefox.evaluate(
        "RTCRtpReceiver.getCapabilities('video').codecs.map((c) => c.mimeType)"
    )
    assert "video/VP8" in codecs and "video/H264" not in codecs, codecs
    await firefox.type("#username", "advisor")
    await firefox.type("#password", relayed_server.advisor_password)
    await firefox.click("#login-form button[type=submit]")
    await firefox.poll(
        visible("queue-view") + " && document.getElementById('connection-state').textContent"
        " === 'online'",
        10,
        "the workspace, online",
    )

    booth = start_booth(relayed_server, "Branch 1 booth", "--call")
    await booth_status(
        booth, lambda s: s.get("state") == "waiting", 30, "the booth to wait for an advisor"
    )
    await firefox.click('#queue button[aria-label="Accept call from Branch 1 booth"]', timeout=15)
    await firefox.poll(visible("call-view"), 10, "the call view")

    # Firefox decodes the booth's VP8 and the picture moves.
    await video_moves(firefox.evaluate, "advisor (Firefox)")
    first = await firefox.poll(VIDEO_IN, 10, "the call statistics to count decoded frames")
    assert first["codec"] == "video/VP8", first
    painted = await firefox.evaluate(COUNT_PAINTED)
    second = await firefox.evaluate(VIDEO_IN)
    decoded = second["frames"] - first["frames"]
    # Two seconds of the booth's 15 or more frames a second (it may still be ramping up).
    assert decoded >= 20 and painted >= 20, (first, second, painted)
    print(
        f"advisor (Firefox) decoded {decoded} VP8 frames of {second['text']} in 2 s "
        f"({second['frames']} in all), painted {painted}"
    )

    # Audio both ways and Firefox's camera: the booth receives Firefox's microphone and
    # decodes its VP8 video; Firefox keeps receiving the booth's microphone.
    audio_in = await firefox.evaluate(AUDIO_IN)
    status = await booth_status(
        booth,
        lambda s: (
            s.get("state") == "in_call"
            and s.get("call", {}).get("audio_packets_received", 0) > 50
            and s["call"].get("video_frames_received", 0) > 30
            and s["call"].get("selected_pair") is not None
        ),
        20,
        "the booth to receive Firefox's microphone and camera",
    )
    call = status["call"]
    assert call["video_codec"] == "video/VP8", call
    assert call["selected_pair"]["local_type"] == "relay", call["selected_pair"]
    later = await booth_status(
        booth,
        lambda s: s.get("call", {}).get("audio_frames_received", 0) > call["audio_frames_received"],
        10,
        "the booth's received audio frames to grow",
    )
    assert audio_in > 0
    audio_in_later = await firefox.poll(
        f"{AUDIO_IN} > {audio_in} && {AUDIO_IN}", 10, "Firefox's received audio packets to grow"
    )
    print(
        f"booth receives {later['call']['audio_frames_received']} audio frames and "
        f"{later['call']['video_frames_received']} VP8 video frames from Firefox through "
        f"{call['selected_pair']['local_address']} (relay); Firefox received "
        f"{audio_in_later} audio packets from the booth"
    )

    await firefox.click("#hangup")
    await booth_status(
        booth,
        lambda s: s.get("state") in ("ended", "idle") and s.get("calls_completed") == 1,
        15,
        "the booth to leave the call",
    )
    await firefox.poll(visible("queue-view"), 10, "the workspace after the call")
    assert firefox.tripwire.requests == [], f"Firefox reached out: {firefox.tripwire.requests}"
    print(f"test took {time.monotonic() - started:.1f} s")


async def test_citizen_in_firefox_joins_and_is_admitted(
    relayed_server: Server, browser: Any, firefox: Any
) -> None:
    started = time.monotonic()
    advisor = await login_advisor(browser, relayed_server)
    starts = await appointment_start()
    await advisor.get_by_text("New appointment").click()
    await advisor.get_by_label("Date and time").fill(starts)
    await advisor.get_by_role("button", name="Create appointment").click()
    await advisor.wait_for_selector("#invitation:not([hidden])")
    join_link = await advisor.inner_text("#invitation-link")

    # (1) open the link, (2) agree and turn on the camera, (3) join.
    await firefox.navigate(join_link)
    await firefox.poll(visible("welcome-view"), 10, "the welcome view")
    title = await firefox.evaluate("document.getElementById('welcome-title').textContent")
    assert "Alex Advisor" in title, title
    await firefox.click("#consent")
    await firefox.poll(visible("prejoin-view"), 10, "the pre-join view")
    await firefox.poll(
        "document.getElementById('preview').videoWidth > 0", 10, "the camera preview"
    )
    await firefox.poll(
        "Number(document.getElementById('mic-level').dataset.level || 0) > 0.005",
        10,
        "the microphone level meter to move",
    )
    devices = await firefox.evaluate(
        "[document.querySelectorAll('#camera-select option').length,"
        " document.querySelectorAll('#mic-select option').length]"
    )
    assert devices[0] >= 1 and devices[1] >= 1, devices
    await firefox.click("#join")
    await firefox.poll(visible("lobby-view"), 10, "the lobby")

    await advisor.wait_for_selector("#appointments .status.waiting")
    await advisor.get_by_role("button", name="Admit Citizen to the appointment").click(
        timeout=15_000
    )
    await firefox.poll(visible("call-view"), 10, "the citizen's call view")
    await video_moves(lambda expression: advisor.evaluate(expression), "advisor (Chromium)")
    await video_moves(firefox.evaluate, "citizen (Firefox)")

    # Chat from Firefox, typed key by key and sent with Enter.
    await firefox.type("#chat-input", "Hallo aus Firefox")
    await firefox.press("Enter")
    await advisor.wait_for_selector("#chat-log li:has-text('Hallo aus Firefox')")

    await firefox.click("#hangup")
    await firefox.poll(visible("ended-view"), 10, "the ended view")
    await advisor.wait_for_selector("#queue-view:not([hidden])")
    assert firefox.tripwire.requests == [], f"Firefox reached out: {firefox.tripwire.requests}"
    print(f"test took {time.monotonic() - started:.1f} s")


async def test_a_firefox_interpreter_in_a_booth_call_gets_vp8_the_advisor_h264(
    relayed_server: Server, start_booth: Any, browser: Any, firefox: Any
) -> None:
    """A mixed call: the advisor's Chromium takes H.264, the interpreter's Firefox (no H.264)
    VP8; each decodes the booth, and the booth decodes both."""
    started = time.monotonic()
    advisor = await login_advisor(browser, relayed_server)
    booth = start_booth(relayed_server, "Branch 1 booth", "--call")
    await advisor.get_by_role("button", name="Accept call from Branch 1 booth").click(
        timeout=30_000
    )
    await video_moves(lambda expression: advisor.evaluate(expression), "advisor (Chromium)")
    link = await invite_link(advisor, "Interpreter (Turkish)")

    await firefox.navigate(link)
    await firefox.poll(visible("welcome-view"), 10, "the welcome view")
    await firefox.click("#consent")
    await firefox.poll(visible("prejoin-view"), 10, "the pre-join view")
    await firefox.click("#join")
    await firefox.poll(visible("lobby-view"), 10, "the lobby")
    await advisor.get_by_role("button", name="Admit Interpreter (Turkish) into the call").click(
        timeout=15_000
    )
    await firefox.poll(visible("call-view"), 10, "the interpreter's call view")
    first = await firefox.poll(BOOTH_TILE_PLAYING, 25, "the booth's tile playing in Firefox")
    await asyncio.sleep(1.0)
    second = await firefox.evaluate(BOOTH_TILE_PLAYING)
    assert second and second["time"] - first["time"] > 0.5, (first, second)
    caption = await firefox.evaluate("document.querySelector('#tiles li span').textContent")
    assert caption == "Branch 1 booth", caption

    status = await booth_status(
        booth,
        lambda s: (
            len(s.get("others") or []) == 1
            and s["others"][0].get("video_frames_received", 0) > 30
            and s.get("call", {}).get("video_frames_received", 0) > 30
        ),
        25,
        "the booth to decode both the advisor's and the interpreter's cameras",
    )
    advisor_leg, interpreter_leg = status["call"], status["others"][0]
    assert advisor_leg["video_codec"] == "video/H264", advisor_leg
    assert interpreter_leg["video_codec"] == "video/VP8", interpreter_leg
    print(
        f"booth sends the advisor H.264 ({advisor_leg['video_frames_sent']} frames) and the "
        f"Firefox interpreter VP8 ({interpreter_leg['video_frames_sent']} frames); it receives "
        f"{advisor_leg['video_fps_received']} and {interpreter_leg['video_fps_received']} fps"
    )

    await firefox.click("#hangup")
    await firefox.poll(visible("ended-view"), 10, "the interpreter's ended view")
    await advisor.get_by_role("button", name="End call").click()
    await advisor.wait_for_selector("#queue-view:not([hidden])")
    assert firefox.tripwire.requests == [], f"Firefox reached out: {firefox.tripwire.requests}"
    print(f"test took {time.monotonic() - started:.1f} s")
