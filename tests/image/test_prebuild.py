"""The hand-over of image builds made ahead (tests/image/prebuild.py) to the image tests: a
finished build's outputs are taken (by as many tests as need them); a test waits for one still
being made; a failed one is not taken, and its builder is stopped so that the test's own build
has the cache alone."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image import conftest
from tests.image.conftest import PREBUILDS, _prebuilt


def _made(folder: Path, name: str, returncode: int = 0) -> None:
    target = folder / name
    (target / "out").mkdir(parents=True)
    (target / "out" / "booth.img").write_text("an image")
    (target / "build.log").write_text("[  1s] this is the GENERIC variant\n")
    done = {"returncode": returncode, "arguments": list(PREBUILDS[name]), "seconds": 1.0}
    (target / "done.json").write_text(json.dumps(done))


@pytest.fixture
def builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[subprocess.Popen[bytes]]:
    """A stand-in prebuilder: a process in a session of its own, named in the pid file."""
    folder = tmp_path / "prebuilt"
    folder.mkdir()
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    (folder / "pid").write_text(str(process.pid))
    monkeypatch.setattr(conftest, "PREBUILT", str(folder))
    yield process
    process.kill()
    process.wait()


def test_a_finished_build_is_taken(tmp_path: Path, builder: subprocess.Popen[bytes]) -> None:
    _made(tmp_path / "prebuilt", "image")
    log = _prebuilt(tmp_path / "out", PREBUILDS["image"])
    assert log is not None and "GENERIC variant" in log
    assert (tmp_path / "out" / "booth.img").read_text() == "an image"
    assert builder.poll() is None  # the builder goes on with the next one
    # Arguments no build was made ahead with: the test builds itself.
    assert _prebuilt(tmp_path / "other", ("--release", "9.9.9")) is None


def test_two_takers_get_the_same_build(tmp_path: Path, builder: subprocess.Popen[bytes]) -> None:
    """The image tests and the update test (in a pytest of its own beside the others) both take
    the shared image: linked, not moved, so the second finds it too."""
    _made(tmp_path / "prebuilt", "image")
    for taker in ("image-tests", "update-test"):
        assert _prebuilt(tmp_path / taker, PREBUILDS["image"]) is not None
        assert (tmp_path / taker / "booth.img").read_text() == "an image"
    assert (tmp_path / "update-test" / "booth.img").stat().st_nlink == 3


def test_builds_on_the_cache_take_turns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "CACHE", tmp_path / "cache")
    order: list[str] = []

    def other() -> None:
        with conftest.build_lock():
            order.append("second")

    with conftest.build_lock():
        waiting = threading.Thread(target=other)
        waiting.start()
        time.sleep(0.3)
        order.append("first")
    waiting.join(timeout=10)
    assert order == ["first", "second"]


def test_a_build_still_being_made_is_waited_for(
    tmp_path: Path, builder: subprocess.Popen[bytes]
) -> None:
    later = threading.Timer(1.0, _made, (tmp_path / "prebuilt", "v2"))
    later.start()
    started = time.monotonic()
    assert _prebuilt(tmp_path / "out", PREBUILDS["v2"]) is not None
    assert time.monotonic() - started >= 0.9
    later.join()


def test_a_failed_build_is_not_taken_and_its_builder_stops(
    tmp_path: Path, builder: subprocess.Popen[bytes]
) -> None:
    _made(tmp_path / "prebuilt", "v3", returncode=2)
    assert _prebuilt(tmp_path / "out", PREBUILDS["v3"]) is None
    assert builder.wait(timeout=10) != 0
    assert not (tmp_path / "out").exists()


def test_a_builder_gone_without_the_build_is_not_waited_for(
    tmp_path: Path, builder: subprocess.Popen[bytes]
) -> None:
    builder.kill()
    builder.wait()
    assert _prebuilt(tmp_path / "out", PREBUILDS["again"]) is None
