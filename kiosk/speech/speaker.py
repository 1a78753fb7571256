"""The loudspeaker for spoken prompts: one utterance at a time, stopped at once when asked.

A worker thread writes 10 ms chunks to an :class:`~kiosk.media.audio_playback.AudioOutput`
(ALSA on a booth), which blocks like a device playing in real time; between chunks it looks
whether it was told to stop. The event loop only starts and stops it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from kiosk.media.audio import AudioError
from kiosk.media.audio_playback import AudioOutput
from kiosk.speech.voice import Utterance

log = logging.getLogger(__name__)

CHUNK_SECONDS = 0.010


class SilentOutput:
    """An output that plays nowhere, in real time (a booth without a loudspeaker, tests): a
    prompt still takes as long as it would be heard, and can be stopped meanwhile."""

    def __init__(self) -> None:
        self._rate = 0
        self._channels = 1

    def open(self, sample_rate: int, channels: int) -> None:
        self._rate, self._channels = sample_rate, channels

    def write(self, pcm: bytes) -> None:
        time.sleep(len(pcm) / (2 * self._channels * max(1, self._rate)))

    def close(self) -> None:
        pass


class Speaker:
    """Plays utterances through a new output each (``output`` makes one)."""

    def __init__(self, output: Callable[[], AudioOutput]) -> None:
        self._output = output
        self._stop: threading.Event | None = None
        #: Utterances played to their end, and those stopped before it.
        self.finished = 0
        self.stopped = 0

    @property
    def playing(self) -> bool:
        return self._stop is not None and not self._stop.is_set()

    def stop(self) -> None:
        """Stop what is playing (the worker notices within one chunk)."""
        if self._stop is not None:
            self._stop.set()

    async def play(self, utterance: Utterance) -> bool:
        """Play ``utterance`` (stopping anything playing first); True when it played to its
        end, False when stopped or the output failed (logged)."""
        self.stop()
        stop = threading.Event()
        self._stop = stop
        try:
            done = await asyncio.to_thread(self._write, utterance, stop)
        except AudioError as exc:
            log.error("speech: the loudspeaker cannot play the prompt: %s", exc)
            return False
        finally:
            stop.set()
        if done:
            self.finished += 1
        else:
            self.stopped += 1
        return done

    def _write(self, utterance: Utterance, stop: threading.Event) -> bool:
        output = self._output()
        output.open(utterance.sample_rate, 1)
        try:
            step = max(2, int(utterance.sample_rate * CHUNK_SECONDS) * 2)
            for start in range(0, len(utterance.pcm), step):
                if stop.is_set():
                    return False
                output.write(utterance.pcm[start : start + step])
            return True
        finally:
            output.close()
