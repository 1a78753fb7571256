"""What every booth screen is drawn with: the view of one frame, touch targets, and the
drawing primitives (text that fits its box, buttons of at least 15 mm, video frames, the
layout mirrored for right-to-left languages)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pygame

from kiosk import flow
from kiosk.flow import State, Visit
from kiosk.i18n import Catalogue, rtl
from kiosk.ui.actions import TargetAction
from kiosk.ui.framerate import FrameMeter
from kiosk.ui.text import Colour, Fitted, Fonts, fit, wrap
from kiosk.ui.theme import Theme

#: Smallest touch target edge, in millimetres on the panel.
MIN_TARGET_MM = 15.0
#: Panel widths (mm) of common booth screens, by pixel width; others assume 96 dpi.
PANEL_WIDTH_MM = {800: 154.0, 1024: 154.0, 1280: 217.0, 1920: 344.0}
#: Body text height (mm), and how much larger text is in the accessibility mode: body text,
#: the least size text is stepped down to, and titles (already large).
BODY_MM = 5.0
TITLE_MM = 8.0
LARGE_TEXT = 1.3
LARGE_TITLES = 1.1
#: Texts kept fitted (a few screens' worth in a few languages).
FITTED_KEPT = 512
#: The participant the call's stage shows unless someone else is pinned there.
ADVISOR = "advisor"


@dataclass(frozen=True)
class Tile:
    """Another participant's video on the call screen (an interpreter)."""

    key: str  # the participant's id
    name: str
    frame: np.ndarray[Any, Any] | None = None  # RGB, height x width x 3
    #: Tells a new frame from the one drawn before (counted by the frame meter).
    frame_id: object = None


@dataclass
class View:
    """Everything one frame is drawn from."""

    state: State
    visit: Visit = field(default_factory=Visit)
    topics: list[tuple[str, str]] = field(default_factory=list)
    remote_frame: np.ndarray[Any, Any] | None = None  # RGB, height x width x 3
    #: Tells the advisor's new frame from the one drawn before (the frame meter counts them).
    remote_frame_id: object = None
    advisor_name: str = ""
    #: The call's further participants (an interpreter): the first is shown as a tile ...
    others: list[Tile] = field(default_factory=list)
    #: ... and the one pinned to the stage, if any (the advisor then takes the tile).
    pinned: str | None = None
    self_view: np.ndarray[Any, Any] | None = None
    muted: bool = False
    camera_off: bool = False
    volume: float = 1.0
    technician: dict[str, str] = field(default_factory=dict)
    pin_digits: int = 0
    enrolment_problem: str | None = None
    now: float = 0.0
    #: The connection to the server or to someone in the call is interrupted for the moment.
    reconnecting: bool = False
    #: Why the last call ended (the "ended" screen explains a lost connection).
    ended_reason: str | None = None
    #: The server's address answered HTTP 404: booth.toml names the wrong address.
    server_not_found: bool = False
    #: Out of service because it installs an update (it restarts by itself afterwards).
    updating: bool = False


@dataclass(frozen=True)
class Target:
    rect: pygame.Rect
    label: str
    event: flow.Event | None = None
    action: TargetAction | None = None


def target_at(targets: list[Target], pos: tuple[int, int]) -> Target | None:
    for target in reversed(targets):  # the last drawn is on top
        if target.rect.collidepoint(pos):
            return target
    return None


#: Video this much larger than its box (a 480-line camera on a 475-line stage) is cropped,
#: not scaled: scaling every frame is the largest cost of drawing a call.
NATIVE_SLACK = 0.03


@dataclass(frozen=True)
class Placed:
    """Where a video frame was drawn: its pixel (x, y) is on the screen at
    ``(left + x * scale, top + y * scale)``, if inside ``rect`` (the part drawn)."""

    rect: pygame.Rect
    left: int
    top: int
    scale: float
    #: The frame's width and height in pixels, as it was drawn from.
    size: tuple[int, int]
    frame_id: object = None


def _frame_surface(frame: np.ndarray[Any, Any], box: pygame.Rect) -> tuple[pygame.Surface, Placed]:
    """The frame scaled into ``box`` keeping its aspect, and where it goes."""
    height, width = frame.shape[:2]
    # Rows as they are (no transposing copy, as surfarray would make): video is drawn every
    # frame, and this is its cost.
    surface = pygame.image.frombuffer(np.ascontiguousarray(frame).data, (width, height), "RGB")
    scale = min(box.width / width, box.height / height)
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    if scale >= 1 - NATIVE_SLACK and width <= box.width / (1 - NATIVE_SLACK):
        # Converted for this box already (kiosk.ui.booth_view), or a few pixels larger: drawn
        # as it is, the edges cropped, not scaled again.
        crop = pygame.Rect(0, 0, min(width, box.width), min(height, box.height))
        crop.center = (width // 2, height // 2)
        placed = pygame.Rect((0, 0), crop.size)
        placed.center = box.center
        image = surface.subsurface(crop) if crop.size != (width, height) else surface
        left, top = placed.x - crop.x, placed.y - crop.y
        return image, Placed(placed, left, top, 1.0, (width, height))
    placed = pygame.Rect((0, 0), size)
    placed.center = box.center
    return pygame.transform.smoothscale(surface, size), Placed(
        placed, placed.x, placed.y, size[0] / width, (width, height)
    )


class Canvas:
    """The primitives and layout helpers the screens are drawn with."""

    def __init__(
        self,
        size: tuple[int, int],
        theme: Theme,
        catalogue: Catalogue,
        *,
        panel_width_mm: float | None = None,
        fonts: Fonts | None = None,
    ) -> None:
        self.size = size
        self.theme = theme
        self.catalogue = catalogue
        width = panel_width_mm or PANEL_WIDTH_MM.get(size[0], size[0] / 96 * 25.4)
        self.px_per_mm = size[0] / width
        self.min_target = math.ceil(MIN_TARGET_MM * self.px_per_mm)
        self.fonts = fonts or Fonts()
        self.margin = max(12, size[0] // 40)
        self.body = self.title = 0
        #: The accessibility mode: large text, high contrast, a bar with "repeat" on top.
        self.accessible = False
        self._toolbar = False
        self._toolbar_label = pygame.Rect(0, 0, 0, 0)
        self._use_mode(accessible=False)
        #: Video frames drawn per participant (EN 301 549's 20 frames per second).
        self.meter = FrameMeter()
        #: Where each participant's frame was drawn last (read by kiosk.ui.glass).
        self.placed: dict[str, Placed] = {}
        self._fitted: dict[tuple[object, ...], Fitted] = {}
        self.overflows: list[str] = []
        #: The text boxes of the last frame outside buttons (tests check nothing covers them).
        self.text_boxes: list[tuple[pygame.Rect, str]] = []
        #: Every text of the last frame, labels included, as drawn (tests read the screen).
        self.drawn: list[str] = []
        #: The smallest text of the last frame, in pixels (tests check the mode's large text).
        self.smallest_text: int | None = None
        #: The size of each text of the last frame, in pixels, by its name.
        self.text_sizes: dict[str, int] = {}
        self._targets: list[Target] = []
        self._state = State.IDLE
        self._language = "de"

    # ------------------------------------------------------------ drawing

    def _use_mode(self, *, accessible: bool, toolbar: bool = False) -> None:
        """Text sizes for the mode: body text about 5 mm tall (readable at arm's length),
        titles larger; in the accessibility mode larger still."""
        self.accessible, self._toolbar = accessible, toolbar
        scale = LARGE_TEXT if accessible else 1.0
        self.body = max(18, int(BODY_MM * scale * self.px_per_mm))
        self.title = max(24, int(TITLE_MM * (LARGE_TITLES if accessible else 1.0) * self.px_per_mm))

    @property
    def rtl(self) -> bool:
        return rtl(self._language)

    def t(self, key: str, **values: object) -> str:
        return self.catalogue.text(self._language, key, **values)

    def _mirror(self, rect: pygame.Rect) -> pygame.Rect:
        """Right to left, the layout is mirrored (the first button sits on the right)."""
        if not self.rtl:
            return rect
        mirrored = rect.copy()
        mirrored.x = self.size[0] - rect.right
        return mirrored

    def text(
        self,
        surface: pygame.Surface,
        text: str,
        box: pygame.Rect,
        *,
        size: int | None = None,
        colour: Colour | None = None,
        bold: bool = False,
        centre: bool = False,
        name: str = "",
        language_rtl: bool | None = None,
        min_mm: float = 3.5,
        middle: bool = False,
        record: bool = True,
    ) -> None:
        is_rtl = self.rtl if language_rtl is None else language_rtl
        self.drawn.append(text)
        if record:
            self.text_boxes.append((box.copy(), name or text[:30]))
        ink = colour or self.theme.text
        least = max(14, int(min_mm * (LARGE_TEXT if self.accessible else 1) * self.px_per_mm))
        # The same text in the same box is fitted once: the call screen is drawn with every
        # video frame, and fitting renders each line at every size it tries.
        key = (text, box.size, ink, size or self.body, least, bold, is_rtl)
        fitted = self._fitted.get(key)
        if fitted is None:
            if len(self._fitted) >= FITTED_KEPT:
                self._fitted.clear()
            fitted = fit(
                self.fonts,
                text,
                box,
                ink,
                size=size or self.body,
                min_size=least,
                bold=bold,
                rtl=is_rtl,
            )
            self._fitted[key] = fitted
        if text.strip():
            self.text_sizes[name or text[:30]] = fitted.size
            if self.smallest_text is None or fitted.size < self.smallest_text:
                self.smallest_text = fitted.size
        if not fitted.fits:
            self.overflows.append(f"{self._state.value}/{self._language}: {name or text[:30]}")
        y = box.y
        if middle:
            total = sum(int(line.get_height() * 1.15) for line in fitted.lines)
            y = box.y + max(0, (box.height - total) // 2)
        for line in fitted.lines:
            if centre:
                x = box.centerx - line.get_width() // 2
            elif is_rtl:
                x = box.right - line.get_width()
            else:
                x = box.x
            surface.blit(line, (x, y))
            y += int(line.get_height() * 1.15)

    def button(
        self,
        surface: pygame.Surface,
        label: str,
        rect: pygame.Rect,
        *,
        event: flow.Event | None = None,
        action: TargetAction | None = None,
        kind: str = "primary",
        language_rtl: bool | None = None,
        mirror: bool = True,
        min_mm: float = 3.0,
    ) -> None:
        rect = self._mirror(rect) if mirror else rect
        theme = self.theme
        fill, ink = {
            "primary": (theme.primary, theme.on_primary),
            "secondary": (theme.secondary, theme.primary),
            "danger": (theme.danger, theme.on_primary),
        }[kind]
        radius = max(6, self.min_target // 8)
        pygame.draw.rect(surface, fill, rect, border_radius=radius)
        if kind == "secondary":
            pygame.draw.rect(surface, theme.primary, rect, width=3, border_radius=radius)
        inner = rect.inflate(-2 * max(4, rect.height // 14), -2 * max(4, rect.height // 10))
        self.text(
            surface,
            label,
            inner,
            colour=ink,
            bold=True,
            centre=True,
            name=f"button {label[:20]}",
            language_rtl=language_rtl,
            min_mm=min_mm,  # a short label on a large target
            middle=True,
            record=False,
        )
        self._targets.append(Target(rect, label, event=event, action=action))

    def frame(
        self,
        surface: pygame.Surface,
        frame: np.ndarray[Any, Any] | None,
        box: pygame.Rect,
        *,
        who: str | None = None,
        frame_id: object = None,
    ) -> None:
        """Draw ``frame`` into ``box``; ``who``'s frames are counted (:attr:`meter`)."""
        pygame.draw.rect(surface, self.theme.stage, box)
        if frame is not None:
            image, placed = _frame_surface(frame, box)
            surface.blit(image, placed.rect)
            if who is not None:
                self.meter.drawn(who, frame_id)
                self.placed[who] = dataclasses.replace(placed, frame_id=frame_id)

    # ------------------------------------------------------------ layout helpers

    def _content(self) -> pygame.Rect:
        """The screen inside its margins, below the accessibility mode's bar when shown."""
        m = self.margin
        top = self.toolbar_height if self._toolbar else 0
        return pygame.Rect(m, m + top, self.size[0] - 2 * m, self.size[1] - 2 * m - top)

    @property
    def toolbar_height(self) -> int:
        return self.min_target + self.margin // 2

    def _header(self, surface: pygame.Surface, key: str, **values: object) -> int:
        """The screen's title; returns the y below it."""
        content = self._content()
        height = int(self.title * 2.6)
        title = self.t(key, **values)
        if self.accessible:
            # Room for two lines is kept only when the title takes two: the large text below
            # needs the rest.
            lines = wrap(self.fonts, title, self.title, content.width, bold=True, rtl=self.rtl)
            if len(lines) == 1:
                height = int(self.fonts.get(self.title, bold=True).get_linesize() * 1.15)
        self.text(
            surface,
            title,
            pygame.Rect(content.x, content.y, content.width, height),
            size=self.title,
            bold=True,
            name=key,
        )
        return content.y + height + self.margin // 2

    def _bottom_row(self, height: int | None = None) -> pygame.Rect:
        content = self._content()
        h = height or self.min_target
        return pygame.Rect(content.x, content.bottom - h, content.width, h)

    def _row(self, box: pygame.Rect, count: int, gap: int | None = None) -> list[pygame.Rect]:
        gap = self.margin // 2 if gap is None else gap
        width = (box.width - gap * (count - 1)) // count
        return [
            pygame.Rect(box.x + i * (width + gap), box.y, width, box.height) for i in range(count)
        ]

    # ------------------------------------------------------------ screens

    def _keypad(
        self,
        surface: pygame.Surface,
        box: pygame.Rect,
        digit: Callable[[str], tuple[flow.Event | None, TargetAction | None]],
        extra: list[tuple[str, flow.Event | None, TargetAction | None, str]],
    ) -> None:
        gap = self.margin // 3
        rows = [["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"]]
        height = (box.height - 3 * gap) // 4
        width = (box.width - 2 * gap) // 3
        for r, row in enumerate(rows):
            for c, d in enumerate(row):
                event, action = digit(d)
                self.button(
                    surface,
                    d,
                    pygame.Rect(
                        box.x + c * (width + gap), box.y + r * (height + gap), width, height
                    ),
                    event=event,
                    action=action,
                    kind="secondary",
                    mirror=False,
                )
        y = box.y + 3 * (height + gap)
        (
            (left_label, left_event, left_action, left_kind),
            (right_label, right_event, right_action, right_kind),
        ) = extra
        # "Delete" and "OK" beside the digits: in the mode they may be set smaller than other
        # large text rather than cut.
        least = 2.5 if self.accessible else 3.0
        self.button(
            surface,
            left_label,
            pygame.Rect(box.x, y, width, height),
            event=left_event,
            action=left_action,
            kind=left_kind,
            mirror=False,
            min_mm=least,
        )
        event, action = digit("0")
        self.button(
            surface,
            "0",
            pygame.Rect(box.x + width + gap, y, width, height),
            event=event,
            action=action,
            kind="secondary",
            mirror=False,
        )
        self.button(
            surface,
            right_label,
            pygame.Rect(box.x + 2 * (width + gap), y, width, height),
            event=right_event,
            action=right_action,
            kind=right_kind,
            mirror=False,
            min_mm=least,
        )

    def _split(self) -> tuple[pygame.Rect, pygame.Rect]:
        """Text side and keypad side, mirrored for right-to-left languages."""
        content = self._content()
        # In the accessibility mode the keys keep their least size and the large text the rest.
        share = 0.4 if self.accessible else 0.42
        pad_width = max(int(content.width * share), self.min_target * 3 + self.margin)
        text = pygame.Rect(
            content.x, content.y, content.width - pad_width - self.margin, content.height
        )
        pad = pygame.Rect(text.right + self.margin, content.y, pad_width, content.height)
        if self.rtl:
            pad.x, text.x = content.x, content.x + pad_width + self.margin
        return text, pad

    def _banner(self, surface: pygame.Surface, text: str) -> None:
        """A band across the top of the screen that says what is going on."""
        width, _ = self.size
        if self._toolbar:  # in the place of the accessibility mode's label, beside its buttons
            band = self._toolbar_label
            pygame.draw.rect(surface, self.theme.background, band)
            self.text(surface, text, band, name="reconnecting", bold=True, min_mm=3.0)
            return
        band = pygame.Rect(0, 0, width, int(self.body * 2.6))
        pygame.draw.rect(surface, self.theme.background, band)
        self.text(surface, text, band.inflate(-2 * self.margin, -8), name="reconnecting")

    def _message(
        self,
        surface: pygame.Surface,
        title: str,
        body: str,
        text: str | None = None,
        *,
        button: bool = True,
    ) -> pygame.Rect:
        """A title and a text: the catalogue's *body*, or *text* given instead of it; room
        for a button below unless ``button`` is False."""
        y = self._header(surface, title)
        content = self._content()
        below = self.min_target + self.margin if button else 0
        box = pygame.Rect(content.x, y, content.width, content.bottom - y - below)
        self.text(
            surface,
            self.t(body) if text is None else text,
            box,
            size=int(self.body * 1.15),
            name=body,
            min_mm=3.0 if text is not None else 3.5,
        )
        return box
