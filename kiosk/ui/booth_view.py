"""From the running booth to what its screen shows: the view of each frame and the theme."""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import pygame

from kiosk.booth import Booth
from kiosk.booth.updates import UPDATING
from kiosk.flow import State
from kiosk.serverinfo import ServerInfo, topics_in
from kiosk.ui.screens import ADVISOR, Theme, Tile, View

log = logging.getLogger(__name__)


#: Widths video is converted at: the call's stage, and the tiles beside it.
STAGE_WIDTH = 960
TILE_WIDTH = 480


def rgb(frame: Any, width: int) -> Any:
    """An av.VideoFrame as a small RGB array for the screen (scaled once, by swscale)."""
    if frame is None:
        return None
    height = max(2, round(frame.height * width / max(1, frame.width)) // 2 * 2)
    return frame.to_ndarray(format="rgb24", width=width, height=height)


class FrameCache:
    """Each source's last frame as converted: the screen is drawn more often than video
    arrives, and a frame is converted once, not at every drawing."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[Any, int, Any]] = {}

    def rgb(self, source: str, frame: Any, width: int) -> Any:
        if frame is None:
            self._last.pop(source, None)
            return None
        last = self._last.get(source)
        if last is not None and last[0] is frame and last[1] == width:
            return last[2]
        array = rgb(frame, width)
        self._last[source] = (frame, width, array)
        return array


def _convert(frames: FrameCache | None, source: str, frame: Any, width: int) -> Any:
    return rgb(frame, width) if frames is None else frames.rgb(source, frame, width)


def theme_for(info: ServerInfo) -> Theme:
    logo = None
    if info.logo:
        try:
            logo = pygame.image.load(io.BytesIO(info.logo))
        except (pygame.error, ValueError) as exc:
            log.info("the organisation's logo cannot be shown on the booth: %s", exc)
    return Theme.from_branding(info.organisation_name, info.primary_color, logo, info.texts)


def view_of(booth: Booth, frames: FrameCache | None = None) -> View:
    """What the screen shows now; ``frames`` keeps conversions from one drawing to the next."""
    call = booth.call
    pinned = booth.pinned if booth.pinned in booth.media.others else None
    advisor = call.received.newest_video if call else None
    others = []
    for participant_id, leg in booth.media.others.items():
        frame = leg.received.newest_video
        width = STAGE_WIDTH if participant_id == pinned else TILE_WIDTH
        array = _convert(frames, participant_id, frame, width)
        others.append(Tile(participant_id, leg.peer.name, array, frame_id=frame))
    preview = booth.fanout.source.latest_preview if booth.fanout else None
    return View(
        state=booth.state,
        visit=booth.flow.visit,
        topics=topics_in(booth.info, booth.flow.visit.language),
        remote_frame=_convert(frames, ADVISOR, advisor, TILE_WIDTH if pinned else STAGE_WIDTH),
        # The frame itself tells a new one from the last (the frame meter holds no reference
        # longer than until the next).
        remote_frame_id=advisor,
        advisor_name=call.peer.name if call else "",
        others=others,
        pinned=pinned,
        self_view=_convert(frames, "self", preview, TILE_WIDTH),
        muted=booth.media.muted,
        camera_off=booth.camera.off,
        volume=booth.media.volume,
        technician=booth.technician_info() if booth.state is State.TECHNICIAN else {},
        enrolment_problem=booth.flow.enrolment_problem,
        now=time.monotonic(),
        reconnecting=booth.reconnecting,
        ended_reason=booth.flow.ended_reason,
        server_not_found=booth.flow.server_not_found,
        updating=booth.flow.service_reason == UPDATING,
    )
