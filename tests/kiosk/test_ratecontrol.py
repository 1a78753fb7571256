"""Adaptive quality: the policy on its own, then under real loss between two aiortc peers."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError

from kiosk.media import TestPatternSource, VideoFanout
from kiosk.media.ratecontrol import RateController, RatePolicy, profiles_for

PROFILES = profiles_for(1280, 720, (1.0, 0.75, 0.5))


def _policy(bitrate: float = 1_000_000) -> RatePolicy:
    return RatePolicy(
        min_bitrate=300_000, max_bitrate=2_500_000, profiles=PROFILES, bitrate=bitrate
    )


def test_profiles_keep_the_aspect_ratio_and_even_sizes() -> None:
    assert PROFILES == ((1280, 720), (960, 540), (640, 360))
    assert profiles_for(640, 480, (1.0, 0.75, 0.5)) == ((640, 480), (480, 360), (320, 240))


def test_clean_delivery_probes_up_to_the_ceiling() -> None:
    policy = _policy()
    for _ in range(40):
        decision = policy.step(0.0, None)
    assert decision.bitrate == 2_500_000
    assert decision.profile == 0


def test_heavy_loss_backs_off_in_proportion() -> None:
    policy = _policy()
    assert policy.step(0.20, None).bitrate == 900_000
    assert policy.step(0.05, None).bitrate == 900_000  # moderate loss: hold


def test_remb_caps_the_bitrate() -> None:
    policy = _policy()
    assert policy.step(0.0, 700_000).bitrate == 700_000


def test_persistent_loss_at_the_floor_steps_resolution_down_but_not_below_the_last() -> None:
    policy = _policy(300_000)
    profiles = [policy.step(0.3, None).profile for _ in range(12)]
    assert profiles[2] == 1  # three bad intervals at the floor
    assert profiles[5] == 2  # three more
    assert max(profiles) == 2  # never past 640x360
    # Once the link is clean again for long enough, the resolution comes back.
    for _ in range(60):
        decision = policy.step(0.0, None)
    assert decision.profile == 0


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_controller_applies_only_changes_worth_an_idr() -> None:
    source = TestPatternSource(width=640, height=480, fps=30, bitrate=1_000_000)
    clock = _Clock()
    controller = RateController(
        source=source, min_bitrate=200_000, max_bitrate=1_500_000, clock=clock
    )

    class Sender:
        _ssrc = 1

        async def _handle_rtcp_packet(self, packet: Any) -> None:
            pass

    sender = Sender()
    controller.watch(sender)
    assert controller.tick() is None  # no report yet: no decision
    feedback = next(iter(controller._peers.values()))
    feedback.reports, feedback.loss = 1, 0.0
    controller.tick()  # +8 %: below the 10 % worth an IDR
    assert source.bitrate == 1_000_000
    clock.now += 5
    assert controller.tick() is None  # no report since the last tick: silence is not "clean"
    feedback.reports += 1
    controller.tick()  # now +16 % in all
    assert source.bitrate > 1_100_000
    feedback.loss = 0.5
    for _ in range(12):
        clock.now += 5
        feedback.reports += 1
        controller.tick()
    assert (source.width, source.height) == (320, 240)  # stepped down twice
    assert source.fps == 30  # the frame rate is never traded


async def _consume(track: Any) -> None:
    try:
        while True:
            await track.recv()
    except MediaStreamError:
        pass


async def test_real_loss_between_two_peers_lowers_the_bitrate(loopback_ice: None) -> None:
    fanout = VideoFanout(TestPatternSource(width=640, height=480, fps=30, bitrate=1_500_000))
    await fanout.start()
    booth, advisor = RTCPeerConnection(), RTCPeerConnection()
    consumers: list[asyncio.Task[None]] = []
    advisor.on("track", lambda track: consumers.append(asyncio.ensure_future(_consume(track))))
    try:
        track = fanout.subscribe()
        transceiver = booth.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
        )
        sender = transceiver.sender
        track.install_keyframe_hook(sender)
        controller = RateController(
            source=fanout.source, min_bitrate=200_000, max_bitrate=1_500_000, interval=0.5
        )
        controller.watch(sender)
        controller.start()

        # 40 % of the booth's RTP packets never arrive (retransmissions repair some).
        dtls = sender.transport
        send_rtp = dtls._send_rtp
        rng = random.Random(7)

        async def lossy_send_rtp(data: bytes) -> None:
            if rng.random() >= 0.40:
                await send_rtp(data)

        dtls._send_rtp = lossy_send_rtp

        await booth.setLocalDescription(await booth.createOffer())
        await advisor.setRemoteDescription(booth.localDescription)
        await advisor.setLocalDescription(await advisor.createAnswer())
        await booth.setRemoteDescription(advisor.localDescription)

        def backed_off_for_loss() -> bool:
            return any("loss" in d.reason for d in controller.decisions)

        for _ in range(100):
            if backed_off_for_loss():
                break
            await asyncio.sleep(0.2)
        (feedback,) = controller._peers.values()
        assert feedback.worst_loss > 0.10, feedback
        assert backed_off_for_loss(), controller.decisions
        assert fanout.source.bitrate < 1_500_000
        await controller.stop()
    finally:
        await booth.close()
        await advisor.close()
        await fanout.close()
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
