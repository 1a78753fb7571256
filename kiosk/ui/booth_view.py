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
from kiosk.ui.canvas import NATIVE_SLACK
from kiosk.ui.screens import ADVISOR, Theme, Tile, View

log = logging.getLogger(__name__)


#: Boxes video is converted to fit when the screen's own are not known: the call's stage,
#: and the tiles beside it.
STAGE_BOX = (960, 720)
TILE_BOX = (480, 360)

Box = tuple[int, int]


def rgb(frame: Any, width: int) -> Any:
    """An av.VideoFrame as a small RGB array for the screen (scaled once, by swscale)."""
    if frame is None:
        return None
    height = max(2, round(frame.height * width / max(1, frame.width)) // 2 * 2)
    return frame.to_ndarray(format="rgb24", width=width, height=height)


def fitting_width(frame: Any, box: Box) -> int:
    """The width at which ``frame``, its aspect kept, fills ``box`` (even, for swscale):
    converted at that size it is drawn without scaling again."""
    width = min(box[0], int(box[1] * frame.width / max(1, frame.height)))
    if width <= frame.width <= width / (1 - NATIVE_SLACK):
        return int(frame.width)  # a few pixels too large: cropped when drawn, never scaled
    return max(2, width // 2 * 2)


class FrameCache:
    """Each source's last frame as converted: the screen is drawn more often than video
    arrives, and a frame is converted once, not at every drawing."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[Any, int, Any]] = {}

    def rgb(self, source: str, frame: Any, box: Box) -> Any:
        if frame is None:
            self._last.pop(source, None)
            return None
        width = fitting_width(frame, box)
        last = self._last.get(source)
        if last is not None and last[0] is frame and last[1] == width:
            return last[2]
        array = rgb(frame, width)
        self._last[source] = (frame, width, array)
        return array


def _convert(frames: FrameCache | None, source: str, frame: Any, box: Box) -> Any:
    if frames is not None:
        return frames.rgb(source, frame, box)
    return None if frame is None else rgb(frame, fitting_width(frame, box))


def theme_for(info: ServerInfo) -> Theme:
    logo = None
    if info.logo:
        try:
            logo = pygame.image.load(io.BytesIO(info.logo))
        except (pygame.error, ValueError) as exc:
            log.info("the organisation's logo cannot be shown on the booth: %s", exc)
    return Theme.from_branding(info.organisation_name, info.primary_color, logo, info.texts)


def stage_frame(booth: Booth) -> Any:
    """The newest video frame of whoever is on the call's stage (None outside a call): the
    screen is drawn as each arrives."""
    pinned = booth.media.others.get(booth.pinned) if booth.pinned else None
    leg = pinned or booth.call
    return leg.received.newest_video if leg is not None else None


def view_of(
    booth: Booth, frames: FrameCache | None = None, boxes: tuple[Box, Box] | None = None
) -> View:
    """What the screen shows now; ``frames`` keeps conversions from one drawing to the next,
    ``boxes`` are the call screen's video sizes (:meth:`BoothScreens.video_boxes`)."""
    stage_box, tile_box = boxes or (STAGE_BOX, TILE_BOX)
    call = booth.call
    pinned = booth.pinned if booth.pinned in booth.media.others else None
    advisor = call.received.newest_video if call else None
    others = []
    for participant_id, leg in booth.media.others.items():
        frame = leg.received.newest_video
        box = stage_box if participant_id == pinned else tile_box
        array = _convert(frames, participant_id, frame, box)
        others.append(Tile(participant_id, leg.peer.name, array, frame_id=frame))
    preview = booth.fanout.source.latest_preview if booth.fanout else None
    return View(
        state=booth.state,
        visit=booth.flow.visit,
        topics=topics_in(booth.info, booth.flow.visit.language),
        remote_frame=_convert(frames, ADVISOR, advisor, tile_box if pinned else stage_box),
        # The frame itself tells a new one from the last (the frame meter holds no reference
        # longer than until the next).
        remote_frame_id=advisor,
        advisor_name=call.peer.name if call else "",
        others=others,
        pinned=pinned,
        # The call's self-view is a tile; other screens show it larger.
        self_view=_convert(
            frames, "self", preview, tile_box if booth.state is State.IN_CALL else TILE_BOX
        ),
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
