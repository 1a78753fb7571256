"""The booth's platform line: its exact form (the image's health script greps for it), and
what the booth puts in it, its health report and technician mode after its start self-tests.

ALSA runs for real: PyAV's own libasound, in a fresh process (it reads ``ALSA_CONFIG_DIR`` once)
with no configuration, then with one that defines ALSA's ``null`` device, which opens for
capture and playback on any machine.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

import kiosk.platform
from kiosk.audio import AudioCheck, DeviceCheck
from kiosk.booth import Booth
from kiosk.clock import ClockReading, ClockState
from kiosk.config import AudioConfig, BoothConfig, HardwareConfig
from kiosk.hardware import READY, FakeHardware, open_hardware
from kiosk.media import SourceError, VideoSource
from kiosk.platform import PlatformReport

REPO = Path(__file__).resolve().parents[2]
#: The contract with the image's health script, word for word.
FORMAT = (
    "booth platform: gpio=<factory> gpio_readback=<ok|bad|none> "
    "alsa=<capture+playback|capture|playback|none> clock=<synchronised|unsynchronised>"
)
SYNCED = ClockReading(
    ClockState.SYNCHRONISED, datetime(2026, 12, 5, 9, 30, tzinfo=UTC), "the kernel says so"
)
UNSET = ClockReading(
    ClockState.UNSYNCHRONISED, datetime(1970, 1, 1, tzinfo=UTC), "before 2026-01-01: never set"
)
BOTH = AudioCheck(DeviceCheck("default", True, "opened"), DeviceCheck("default", True, "opened"))


def test_the_platform_line_has_the_form_the_image_reads() -> None:
    assert kiosk.platform.__doc__ is not None
    assert f"    {FORMAT}\n" in kiosk.platform.__doc__
    report = PlatformReport("lgpio", {"status_led": True}, True, BOTH, SYNCED)
    assert report.line() == (
        "booth platform: gpio=lgpio gpio_readback=ok alsa=capture+playback clock=synchronised"
    )
    assert report.line() in kiosk.platform.__doc__  # the example under QEMU


@pytest.mark.parametrize(
    ("driver", "readback", "lights", "audio", "clock", "line"),
    [
        (
            "none",
            {},
            False,
            AudioCheck(DeviceCheck(None, None, "tone"), DeviceCheck(None, None, "none")),
            UNSET,
            "gpio=none gpio_readback=none alsa=none clock=unsynchronised",
        ),
        (
            "none",  # lights configured, no driver could drive them
            {},
            True,
            AudioCheck(DeviceCheck("hw:1", False, "x"), DeviceCheck("default", True, "opened")),
            SYNCED,
            "gpio=none gpio_readback=bad alsa=playback clock=synchronised",
        ),
        (
            "native",
            {"status_led": True, "camera_led": False},
            True,
            AudioCheck(DeviceCheck("default", True, "opened"), DeviceCheck(None, None, "none")),
            SYNCED,
            "gpio=native gpio_readback=bad alsa=capture clock=synchronised",
        ),
    ],
)
def test_hardware_platform_line_values(
    driver: str,
    readback: dict[str, bool],
    lights: bool,
    audio: AudioCheck,
    clock: ClockReading,
    line: str,
) -> None:
    report = PlatformReport(driver, readback, lights, audio, clock)
    assert report.line() == f"booth platform: {line}"


async def test_hardware_booth_reports_its_platform_after_the_start_self_tests(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO)
    config = BoothConfig(
        server_url="http://127.0.0.1:9",
        credential="booth.secret",
        identity_dir=tmp_path,
        hardware=HardwareConfig(call_button=17, status_led=24, pin_factory="mock"),
    )
    hardware = await open_hardware(config.hardware)
    booth = Booth(config, hardware=hardware, clock=lambda: UNSET)
    try:
        report = await booth.check_platform()
    finally:
        await hardware.close()
        MockFactory().reset()
    line = "booth platform: gpio=mock gpio_readback=ok alsa=none clock=unsynchronised"
    assert report.line() == line
    platform_lines = [r for r in caplog.records if r.name == "kiosk.platform"]
    assert [(r.levelno, r.getMessage()) for r in platform_lines] == [(logging.INFO, line)]
    # The line comes after the self-tests' own reports (the clock's warning among them).
    assert caplog.records[-1] is platform_lines[0]
    health = booth.heartbeat().health
    assert health is not None
    assert (health.pin_driver, health.lights_ok, health.clock_synchronised) == ("mock", True, False)
    assert (health.microphone_ok, health.speaker_ok, health.audio_problem) == (None, None, None)
    info = booth.technician_info()
    assert info["buttons and lights"] == "pins driven by mock; lights read back ok"
    assert info["clock"] == "unsynchronised, 1970-01-01 00:00 UTC (before 2026-01-01: never set)"
    assert "ALSA" not in info  # no ALSA device configured


def _booth_platform_in_fresh_process(
    tmp_path: Path, alsa_dir: Path, capture: str, playback: str
) -> dict[str, object]:
    program = textwrap.dedent(
        f"""
        import asyncio, json, logging
        from pathlib import Path
        from kiosk.booth import Booth
        from kiosk.clock import read_clock
        from kiosk.config import AudioConfig, BoothConfig

        async def main():
            config = BoothConfig(
                server_url="http://127.0.0.1:9",
                credential="booth.secret",
                identity_dir=Path({str(tmp_path)!r}),
                audio=AudioConfig(capture={capture!r}, playback={playback!r}),
            )
            booth = Booth(config)
            report = await booth.check_platform()
            health = booth.heartbeat().health
            print(json.dumps({{
                "line": report.line(),
                "alsa": booth.technician_info().get("ALSA"),
                "microphone_ok": health.microphone_ok,
                "speaker_ok": health.speaker_ok,
                "audio_problem": health.audio_problem,
            }}))

        logging.basicConfig(level=logging.ERROR)
        asyncio.run(main())
        """
    )
    environ = {**os.environ, "PYTHONPATH": str(REPO), "ALSA_CONFIG_DIR": str(alsa_dir)}
    done = subprocess.run(
        [sys.executable, "-c", program],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_hardware_alsa_without_configuration_names_alsa_config_dir(tmp_path: Path) -> None:
    empty = tmp_path / "no-alsa"
    empty.mkdir()
    result = _booth_platform_in_fresh_process(tmp_path, empty, "default", "default")
    assert isinstance(result["line"], str)
    assert " alsa=none " in result["line"]
    assert (result["microphone_ok"], result["speaker_ok"]) == (False, False)
    problem = result["audio_problem"]
    assert isinstance(problem, str)
    assert problem.startswith(
        "cannot open the microphone 'default': ALSA finds no configuration: the libasound PyAV "
        "loaded (libasound"
    )
    assert f"looks for {empty}/alsa.conf, which does not exist; set ALSA_CONFIG_DIR=" in problem
    assert "; cannot open the loudspeaker 'default': ALSA finds no configuration: " in problem
    assert result["alsa"] == (
        "capture 'default' FAULT, playback 'default' FAULT: ALSA finds no configuration: set "
        "ALSA_CONFIG_DIR=/usr/share/alsa"
    )


def test_hardware_alsa_devices_that_open_are_reported(tmp_path: Path) -> None:
    configured = tmp_path / "alsa"
    configured.mkdir()
    (configured / "alsa.conf").write_text("pcm.null {\n  type null\n}\n")
    result = _booth_platform_in_fresh_process(tmp_path, configured, "null", "null")
    assert isinstance(result["line"], str)
    assert " alsa=capture+playback " in result["line"]
    assert (result["microphone_ok"], result["speaker_ok"], result["audio_problem"]) == (
        True,
        True,
        None,
    )
    # ALSA's configuration is found, the device is not: ALSA's own words, and where to look.
    result = _booth_platform_in_fresh_process(tmp_path, configured, "nosuch", "null")
    assert " alsa=playback " in str(result["line"])
    assert result["audio_problem"] == (
        "cannot open the microphone 'nosuch': Input/output error (list the capture devices "
        "with 'arecord -L'; ALSA's own message is in the log)"
    )
    assert result["alsa"] == (
        "capture 'nosuch' FAULT: Input/output error (list the capture devices with 'arecord "
        "-L'; ALSA's own message is in the log); playback 'null' opens"
    )


def test_audio_config_defaults_are_not_alsa_devices() -> None:
    assert (AudioConfig().capture, AudioConfig().playback) == ("tone", "none")


async def test_hardware_remote_self_test_reads_the_lights_back_and_shows_them_again(
    tmp_path: Path,
) -> None:
    async def no_camera() -> VideoSource:
        raise SourceError("no camera here")

    fakes = FakeHardware()
    config = BoothConfig(server_url="http://127.0.0.1:9", credential="b.s", identity_dir=tmp_path)
    booth = Booth(config, hardware=fakes.hardware, camera=no_camera, clock=lambda: SYNCED)
    booth.lights.status.show(READY)
    fakes.camera_led.line_follows = False
    results = await booth.run_self_test()
    assert results["lights"] is False
    assert fakes.status_led.history[-2:] == ["checked", "on"]  # READY again
    assert fakes.camera_led.history[-2:] == ["checked", "off"]  # the camera is off
    fakes.camera_led.line_follows = True
    assert (await booth.run_self_test())["lights"] is True
