"""Booth configuration: clear refusals a technician can act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.config import AudioConfig, BoothConfig, BoothConfigError, DisplayMode, load_config

GOOD = 'server_url = "https://vb.example.org"\ncredential = "abc.def"\n'


def test_minimal_config_and_websocket_url(tmp_path: Path) -> None:
    path = tmp_path / "booth.toml"
    path.write_text(GOOD + "[video]\nwidth = 1280\nheight = 720\n")
    config = load_config(path)
    assert config.websocket_url == "wss://vb.example.org/api/v1/ws"
    assert (config.video.width, config.video.height, config.video.fps) == (1280, 720, 30)
    assert config.display is DisplayMode.AUTO
    assert "def" not in repr(config)  # the credential stays out of logs
    # Production default: a real camera, never a synthetic picture by accident.
    assert (config.camera.kind, config.camera.allow_test_pattern) == ("auto", False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('credential = "a.b"\n', "server_url: required"),
        ('server_url = "ftp://x"\ncredential = "a.b"\n', "must be an http:// or https:// URL"),
        ('server_url = "http://x"\ncredential = "nodot"\n', "expected '<booth id>.<secret>'"),
        (
            'server_url = "https://vb.example.org/advisor/"\ncredential = "a.b"\n',
            "server_url: 'https://vb.example.org/advisor/': give the server's address without a "
            "path, e.g. https://vb.example.org",
        ),
        (GOOD + "colour = 1\n", "unknown setting(s): colour"),
        (GOOD + "[video]\nfps = 500\n", "video.fps: expected a whole number from 5 to 60"),
        (GOOD + "[video]\nwidth = 641\n", "must be even"),
        (GOOD + 'display = "projector"\n', "display: must be"),
        (GOOD + 'call_on_start = "yes"\n', "call_on_start: expected true or false"),
        (GOOD + '[camera]\nkind = "webcam"\n', "camera.kind: must be one of"),
        (GOOD + "[camera]\nallow_test_pattern = 1\n", "camera.allow_test_pattern"),
        ("server_url = \n", "not valid TOML"),
        (GOOD + "heartbeat_seconds = true\n", "heartbeat_seconds: expected a positive number"),
        (GOOD + 'stats_seconds = "5"\n', "stats_seconds: expected a positive number"),
        (GOOD + "[audio]\nvolume = 2\n", "audio.volume: expected a number from 0 to 1"),
        (GOOD + "[audio]\ncapture = 3\n", "audio.capture: expected a device name"),
        (GOOD + "[video]\nwidth = 640\nfps = 30\ncolour = 1\nhue = 2\n", "in [video]: colour, hue"),
        (GOOD + "video = 3\n", "[video] must be a table"),
        (GOOD + 'source = "/tmp/other.toml"\n', "unknown setting(s): source"),
        (GOOD + "identity_dir = 5\n", "identity_dir: expected a path"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "booth.toml"
    path.write_text(text)
    with pytest.raises(BoothConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_technician_pin_digest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import sys

    from kiosk.__main__ import main
    from kiosk.flow import pin_digest

    sys_stdin = sys.stdin
    try:
        sys.stdin = io.StringIO("2468\n")
        assert main(["--pin-digest"]) == 0
    finally:
        sys.stdin = sys_stdin
    digest = capsys.readouterr().out.strip()
    assert digest == pin_digest("2468")
    path = tmp_path / "booth.toml"
    path.write_text(
        f'server_url = "http://127.0.0.1:1"\ncredential = "a.b"\n'
        f'technician_pin_digest = "{digest}"\n'
    )
    assert load_config(path).technician_pin_digest == digest
    path.write_text(
        'server_url = "http://127.0.0.1:1"\ncredential = "a.b"\ntechnician_pin_digest = "2468"\n'
    )
    with pytest.raises(BoothConfigError, match="technician_pin_digest: expected 64 hex"):
        load_config(path)


def test_a_configuration_built_in_code_is_checked_as_a_file_is(tmp_path: Path) -> None:
    with pytest.raises(BoothConfigError, match=r"^audio.volume: expected a number from 0 to 1$"):
        AudioConfig(volume=1.5)
    with pytest.raises(BoothConfigError, match=r"^call_on_start: expected true or false$"):
        BoothConfig(server_url="https://vb.example.org", call_on_start=1)  # type: ignore[arg-type]
    with pytest.raises(BoothConfigError, match=r"^unknown setting\(s\): colour$"):
        BoothConfig(server_url="https://vb.example.org", colour=1)  # type: ignore[call-arg]
    path = tmp_path / "booth.toml"
    path.write_text(GOOD + "reconnect_max_seconds = 2\n[audio]\nvolume = 1\n")
    config = load_config(path)
    assert config.reconnect_max_seconds == 2.0 and isinstance(config.reconnect_max_seconds, float)
    assert config.audio.volume == 1.0 and isinstance(config.audio.volume, float)
    assert config.with_overrides(call_on_start=True, status_file=None).call_on_start
    with pytest.raises(BoothConfigError, match="call_on_start: expected true or false"):
        config.with_overrides(call_on_start="yes")
