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
from kiosk.ui.screens import Theme, View

log = logging.getLogger(__name__)


def rgb(frame: Any, width: int) -> Any:
    """An av.VideoFrame as a small RGB array for the screen (scaled once, by swscale)."""
    if frame is None:
        return None
    height = max(2, round(frame.height * width / max(1, frame.width)) // 2 * 2)
    return frame.to_ndarray(format="rgb24", width=width, height=height)


def theme_for(info: ServerInfo) -> Theme:
    logo = None
    if info.logo:
        try:
            logo = pygame.image.load(io.BytesIO(info.logo))
        except (pygame.error, ValueError) as exc:
            log.info("the organisation's logo cannot be shown on the booth: %s", exc)
    return Theme.from_branding(info.organisation_name, info.primary_color, logo, info.texts)


def view_of(booth: Booth) -> View:
    call = booth.call
    return View(
        state=booth.state,
        visit=booth.flow.visit,
        topics=topics_in(booth.info, booth.flow.visit.language),
        remote_frame=rgb(call.received.newest_video if call else None, 960),
        self_view=rgb(booth.fanout.source.latest_preview if booth.fanout else None, 480),
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
