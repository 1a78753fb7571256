"""Figures a test shows in the run's output whether or not it passes (and without ``-s``)."""

from __future__ import annotations

import contextlib

import pytest


def show(config: pytest.Config, lines: list[str]) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    # Past the capture of the test's own output, straight to the terminal (or the CI log).
    uncaptured = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with uncaptured:
        for line in lines:
            if reporter is not None:
                reporter.write_line(line)
            else:  # pragma: no cover - pytest always has one when it prints anything
                print(line)
