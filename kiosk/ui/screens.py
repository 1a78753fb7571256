"""Every screen of the booth, drawn from the flow's state at any resolution.

:meth:`BoothScreens.draw` paints one frame and returns the touch targets on it; a target
carries the flow event it stands for (or an action the booth handles itself: mute, volume,
...). Sizes come from the panel's physical size: every target is at least 15 mm, text is large
and high-contrast, and the layout mirrors for Arabic. Text that does not fit its box after
stepping the font down is recorded in :attr:`BoothScreens.overflows` (the tests demand none).

The organisation's own texts (:attr:`Theme.texts`) take the place of the built-in ones on the
idle, consent and ended screens in the visitor's language; where it wrote none in that
language the built-in text stays, except for its privacy notice, which is shown in English or
German (or any language it exists in) rather than not at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pygame

from kiosk import flow
from kiosk.flow import LANGUAGES, State, Visit
from kiosk.i18n import LANGUAGES_IN_ORDER, Catalogue, rtl
from kiosk.ui.text import Colour, Fonts, fit

#: Smallest touch target edge, in millimetres on the panel.
MIN_TARGET_MM = 15.0
#: Panel widths (mm) of common booth screens, by pixel width; others assume 96 dpi.
#: Reasons a call ended that the "ended" screen explains as a lost connection.
LOST_CONNECTION = frozenset(
    {"connection_lost", "peer_disconnected", "connection_failed", "server_unreachable"}
)
PANEL_WIDTH_MM = {800: 154.0, 1024: 154.0, 1280: 217.0, 1920: 344.0}
#: The organisation's texts that are shown in another language rather than not at all, and the
#: languages looked at first then (the server's branding module states the same rule).
ALWAYS_SHOWN = frozenset({"privacy_notice"})
FALLBACK_LANGUAGES = ("en", "de")
#: Why an enrolment was refused (the server's codes) with a text of their own on the screen.
ENROLMENT_REFUSALS = frozenset(
    {"token_used", "token_expired", "token_unknown", "booth_revoked", "key_taken", "not_a_token"}
)


def _hex(colour: str, default: Colour) -> Colour:
    if len(colour) == 7 and colour.startswith("#"):
        try:
            return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))
        except ValueError:
            return default
    return default


@dataclass(frozen=True)
class Theme:
    """Colours (every text/background pair at WCAG AA or better), name and logo."""

    background: Colour = (245, 247, 250)
    text: Colour = (26, 31, 41)
    muted: Colour = (74, 83, 99)
    primary: Colour = (11, 92, 173)  # buttons; white text on it
    on_primary: Colour = (255, 255, 255)
    secondary: Colour = (255, 255, 255)  # quiet buttons; primary-coloured text
    danger: Colour = (179, 38, 30)
    stage: Colour = (0, 0, 0)  # behind video; white text on it
    on_stage: Colour = (255, 255, 255)
    problem: Colour = (255, 244, 206)
    organisation: str = "Videobooth"
    logo: pygame.Surface | None = None
    #: The organisation's texts: language -> key (welcome, booth_idle, privacy_notice, ended)
    #: -> text.
    texts: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_branding(
        cls,
        name: str | None,
        primary: str | None,
        logo: pygame.Surface | None = None,
        texts: dict[str, dict[str, str]] | None = None,
    ) -> Theme:
        """The organisation's theme; its colours were checked for contrast by the server."""
        default = cls()
        return cls(
            primary=_hex(primary or "", default.primary),
            organisation=name or default.organisation,
            logo=logo,
            texts=texts or {},
        )

    def text_for(self, language: str, key: str) -> tuple[str, str] | None:
        """The organisation's text *key* for a visitor in *language*, and the language it is
        written in; None where the built-in text stays."""
        order = [language]
        if key in ALWAYS_SHOWN:
            order += [*FALLBACK_LANGUAGES, *LANGUAGES]
        for candidate in order:
            text = self.texts.get(candidate, {}).get(key, "").strip()
            if text:
                return text, candidate
        return None


@dataclass
class View:
    """Everything one frame is drawn from."""

    state: State
    visit: Visit = field(default_factory=Visit)
    topics: list[tuple[str, str]] = field(default_factory=list)
    remote_frame: np.ndarray[Any, Any] | None = None  # RGB, height x width x 3
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


@dataclass(frozen=True)
class Target:
    rect: pygame.Rect
    label: str
    event: flow.Event | None = None
    action: str | None = None


def target_at(targets: list[Target], pos: tuple[int, int]) -> Target | None:
    for target in reversed(targets):  # the last drawn is on top
        if target.rect.collidepoint(pos):
            return target
    return None


def _frame_surface(
    frame: np.ndarray[Any, Any], box: pygame.Rect
) -> tuple[pygame.Surface, pygame.Rect]:
    """The frame scaled into ``box`` keeping its aspect, and where it goes."""
    surface = pygame.surfarray.make_surface(np.ascontiguousarray(frame.swapaxes(0, 1)))
    scale = min(box.width / surface.get_width(), box.height / surface.get_height())
    size = (max(1, int(surface.get_width() * scale)), max(1, int(surface.get_height() * scale)))
    placed = pygame.Rect((0, 0), size)
    placed.center = box.center
    return pygame.transform.smoothscale(surface, size), placed


class BoothScreens:
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
        # Body text about 5 mm tall (readable at arm's length); titles larger.
        self.body = max(18, int(5.0 * self.px_per_mm))
        self.title = max(24, int(8.0 * self.px_per_mm))
        self.overflows: list[str] = []
        #: The text boxes of the last frame outside buttons (tests check nothing covers them).
        self.text_boxes: list[tuple[pygame.Rect, str]] = []
        #: Every text of the last frame, labels included, as drawn (tests read the screen).
        self.drawn: list[str] = []
        self._targets: list[Target] = []
        self._state = State.IDLE
        self._language = "de"

    # ------------------------------------------------------------ drawing

    def draw(self, surface: pygame.Surface, view: View) -> list[Target]:
        self._targets = []
        self.text_boxes = []
        self.drawn = []
        self._state = view.state
        self._language = view.visit.language
        surface.fill(self.theme.background)
        painter: Callable[[pygame.Surface, View], None] = getattr(self, f"_draw_{view.state.value}")
        painter(surface, view)
        return list(self._targets)

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
        fitted = fit(
            self.fonts,
            text,
            box,
            colour or self.theme.text,
            size=size or self.body,
            min_size=max(14, int(min_mm * self.px_per_mm)),
            bold=bold,
            rtl=is_rtl,
        )
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
        action: str | None = None,
        kind: str = "primary",
        language_rtl: bool | None = None,
        mirror: bool = True,
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
            min_mm=3.0,  # a short label on a large target
            middle=True,
            record=False,
        )
        self._targets.append(Target(rect, label, event=event, action=action))

    def frame(
        self, surface: pygame.Surface, frame: np.ndarray[Any, Any] | None, box: pygame.Rect
    ) -> None:
        pygame.draw.rect(surface, self.theme.stage, box)
        if frame is not None:
            image, placed = _frame_surface(frame, box)
            surface.blit(image, placed)

    # ------------------------------------------------------------ layout helpers

    def _content(self) -> pygame.Rect:
        m = self.margin
        return pygame.Rect(m, m, self.size[0] - 2 * m, self.size[1] - 2 * m)

    def _header(self, surface: pygame.Surface, key: str, **values: object) -> int:
        """The screen's title; returns the y below it."""
        content = self._content()
        height = int(self.title * 2.6)
        self.text(
            surface,
            self.t(key, **values),
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

    def _draw_idle(self, surface: pygame.Surface, view: View) -> None:
        content = self._content()
        theme = self.theme
        org_h = max(int(self.body * 1.5), self.min_target // 2)
        x = content.x
        if theme.logo is not None:
            logo = theme.logo
            scale = min(1.0, org_h / max(1, logo.get_height()))
            image = pygame.transform.smoothscale(
                logo, (int(logo.get_width() * scale), int(logo.get_height() * scale))
            )
            surface.blit(image, (content.x, content.y))
            x += image.get_width() + self.margin // 2
        self.text(
            surface,
            theme.organisation,
            pygame.Rect(x, content.y, content.right - x, org_h),
            colour=theme.muted,
            name="organisation",
            language_rtl=False,
        )
        languages = self._bottom_row()
        label_h = int(self.body * 1.4)
        label = pygame.Rect(content.x, languages.y - label_h - 4, content.width, label_h)
        start = pygame.Rect(0, 0, max(content.width // 3, self.min_target * 3), self.min_target)
        start.midbottom = (content.centerx, label.y - self.margin)
        middle_top = content.y + org_h
        middle_h = start.y - self.margin - middle_top
        title_box = pygame.Rect(content.x, middle_top, content.width, int(middle_h * 0.5))
        sub_box = pygame.Rect(
            content.x, title_box.bottom, content.width, middle_h - title_box.height
        )
        # The organisation's welcome and idle text, or the built-in ones.
        welcome = self.theme.text_for(self._language, "welcome")
        self.text(
            surface,
            welcome[0] if welcome else self.t("idle.title"),
            title_box,
            size=int(self.title * 1.3),
            bold=True,
            centre=True,
            middle=True,
            name="welcome" if welcome else "idle.title",
            min_mm=3.0,
        )
        idle = self.theme.text_for(self._language, "booth_idle")
        self.text(
            surface,
            idle[0] if idle else self.t("idle.subtitle"),
            sub_box,
            centre=True,
            name="booth_idle" if idle else "idle.subtitle",
            min_mm=3.0,
        )
        # Calm motion: a soft ring around Start that slowly grows and fades, every 4 s.
        phase = (view.now % 4.0) / 4.0
        grow = int(phase * self.margin // 2) * 2
        ring = start.inflate(grow, grow)
        glow = tuple(int(c + (255 - c) * phase) for c in theme.primary)
        pygame.draw.rect(surface, glow, ring, width=3, border_radius=self.min_target // 4)
        self.button(surface, self.t("idle.start"), start, event=flow.Start(), mirror=False)
        self.text(
            surface,
            self.t("idle.language"),
            label,
            colour=theme.muted,
            centre=True,
            name="idle.language",
        )
        rects = self._row(languages, len(LANGUAGES_IN_ORDER))
        for rect, language in zip(rects, LANGUAGES_IN_ORDER, strict=True):
            self.button(
                surface,
                self.catalogue.language_name(language),
                rect,
                event=flow.LanguageChosen(language),
                kind="secondary",
                language_rtl=rtl(language),
                mirror=False,
            )

    def _draw_choose(self, surface: pygame.Surface, view: View) -> None:
        y = self._header(surface, "choose.title")
        content = self._content()
        gap = self.margin // 2
        # First row: back (a third) and the appointment (the rest); then the topics.
        first = pygame.Rect(content.x, y, content.width, self.min_target)
        back = pygame.Rect(first.x, first.y, first.width // 3 - gap // 2, first.height)
        appointment = pygame.Rect(
            back.right + gap, first.y, first.right - back.right - gap, first.height
        )
        self.button(surface, self.t("back"), back, event=flow.Back(), kind="secondary")
        self.button(
            surface, self.t("choose.appointment"), appointment, event=flow.ChooseAppointment()
        )
        y = first.bottom + self.margin
        topics = view.topics[:6]
        if not topics:
            self.button(
                surface,
                self.t("choose.walk_in"),
                pygame.Rect(content.x, y, content.width, int(self.min_target * 1.2)),
                event=flow.ChooseWalkIn(None),
            )
            return
        label_h = int(self.body * 1.5)
        self.text(
            surface,
            self.t("choose.topics"),
            pygame.Rect(content.x, y, content.width, label_h),
            name="choose.topics",
        )
        y += label_h + gap
        columns = min(3, len(topics)) if content.width >= self.min_target * 6 else 2
        rows = math.ceil(len(topics) / columns)
        available = content.bottom - y
        height = max(
            self.min_target, min(int(self.min_target * 1.2), (available - gap * (rows - 1)) // rows)
        )
        width = (content.width - gap * (columns - 1)) // columns
        for index, (topic_id, name) in enumerate(topics):
            row, column = divmod(index, columns)
            rect = pygame.Rect(
                content.x + column * (width + gap), y + row * (height + gap), width, height
            )
            self.button(surface, name, rect, event=flow.ChooseWalkIn(topic_id), kind="secondary")

    def _keypad(
        self,
        surface: pygame.Surface,
        box: pygame.Rect,
        digit: Callable[[str], tuple[flow.Event | None, str | None]],
        extra: list[tuple[str, flow.Event | None, str | None, str]],
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
        self.button(
            surface,
            left_label,
            pygame.Rect(box.x, y, width, height),
            event=left_event,
            action=left_action,
            kind=left_kind,
            mirror=False,
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
        )

    def _split(self) -> tuple[pygame.Rect, pygame.Rect]:
        """Text side and keypad side, mirrored for right-to-left languages."""
        content = self._content()
        pad_width = max(int(content.width * 0.42), self.min_target * 3 + self.margin)
        text = pygame.Rect(
            content.x, content.y, content.width - pad_width - self.margin, content.height
        )
        pad = pygame.Rect(text.right + self.margin, content.y, pad_width, content.height)
        if self.rtl:
            pad.x, text.x = content.x, content.x + pad_width + self.margin
        return text, pad

    def _draw_code_entry(self, surface: pygame.Surface, view: View) -> None:
        text, pad = self._split()
        pad.height = max(pad.height - 0, self.min_target * 4)
        self._keypad(
            surface,
            pygame.Rect(pad.x, pad.y, pad.width, self._content().height),
            lambda d: (flow.Digit(d), None),
            [
                (self.t("code.delete"), flow.Backspace(), None, "secondary"),
                (self.t("code.ok"), flow.SubmitCode(), None, "primary"),
            ],
        )
        y = text.y
        self.text(
            surface,
            self.t("code.title"),
            pygame.Rect(text.x, y, text.width, int(self.title * 2.6)),
            size=self.title,
            bold=True,
            name="code.title",
        )
        y += int(self.title * 2.6)
        code = view.visit.code.ljust(8, "·")
        shown = f"{code[:4]}  {code[4:]}"
        self.text(
            surface,
            shown,
            pygame.Rect(text.x, y, text.width, int(self.title * 1.6)),
            size=int(self.title * 1.2),
            bold=True,
            name="code digits",
            language_rtl=False,
            centre=True,
        )
        y += int(self.title * 1.7)
        back = pygame.Rect(
            text.x, self._content().bottom - self.min_target, text.width, self.min_target
        )
        if view.visit.checking:
            checking_h = int(self.body * 1.8)
            self.text(
                surface,
                self.t("code.checking"),
                pygame.Rect(text.x, y, text.width, checking_h),
                colour=self.theme.muted,
                name="code.checking",
            )
            y += checking_h
        if view.visit.problem:
            key = "code.rate_limited" if view.visit.problem == "rate_limited" else "code.wrong_code"
            box = pygame.Rect(text.x, y, text.width, int(self.body * 3.6))
            pygame.draw.rect(surface, self.theme.problem, box)
            self.text(surface, self.t(key), box.inflate(-8, -8), name=key)
            y = box.bottom + self.margin // 2
        hint_h = min(int(self.body * 4.6), back.y - self.margin // 2 - y)
        self.text(
            surface,
            self.t("code.hint"),
            pygame.Rect(text.x, y, text.width, hint_h),
            colour=self.theme.muted,
            name="code.hint",
        )
        y += hint_h
        if back.y - y > self.min_target:
            self.frame(
                surface,
                view.self_view,
                pygame.Rect(text.x, y, text.width, back.y - y - self.margin // 2),
            )
        self.button(
            surface, self.t("back"), back, event=flow.Back(), kind="secondary", mirror=False
        )

    def _draw_consent(self, surface: pygame.Surface, view: View) -> None:
        y = self._header(surface, "consent.title")
        content = self._content()
        bottom = self._bottom_row(max(self.min_target, int(self.min_target * 1.15)))
        notice = self.theme.text_for(self._language, "privacy_notice")
        if notice is not None:
            # The organisation's notice in place of the built-in points; it may be long (up to
            # 1000 characters), so it may be set smaller than other text.
            text, language = notice
            self.text(
                surface,
                text,
                pygame.Rect(content.x, y, content.width, bottom.y - self.margin - y),
                name="privacy_notice",
                language_rtl=rtl(language),
                min_mm=2.8,
            )
        else:
            line_h = (bottom.y - self.margin - y) // 3
            for key in ("consent.recorded", "consent.chat", "consent.camera"):
                self.text(
                    surface,
                    "• " + self.t(key),
                    pygame.Rect(content.x, y, content.width, line_h),
                    name=key,
                )
                y += line_h
        back, agree = self._row(bottom, 3)[0], pygame.Rect(0, bottom.y, 0, bottom.height)
        agree.x = back.right + self.margin // 2
        agree.width = bottom.right - agree.x
        self.button(surface, self.t("back"), back, event=flow.Back(), kind="secondary")
        self.button(surface, self.t("consent.agree"), agree, event=flow.Consent())

    def _draw_waiting(self, surface: pygame.Surface, view: View) -> None:
        y = self._header(surface, "waiting.title")
        content = self._content()
        bottom = self._bottom_row()
        preview = pygame.Rect(
            content.x, y, content.width // 2 - self.margin // 2, bottom.y - y - self.margin
        )
        info = pygame.Rect(
            preview.right + self.margin,
            y,
            content.right - preview.right - self.margin,
            preview.height,
        )
        preview, info = self._mirror(preview), self._mirror(info)
        self.frame(surface, view.self_view, preview)
        visit = view.visit
        if visit.walk_in and visit.queue_position is not None:
            minutes = max(1, round((visit.estimated_wait_seconds or 0) / 60))
            lines = [
                self.t("waiting.position", position=visit.queue_position),
                self.t("waiting.estimate", minutes=minutes),
            ]
        elif visit.walk_in:
            lines = [""]
        else:
            lines = [self.t("waiting.lobby")]
        self.text(surface, "\n".join(lines), info, size=int(self.body * 1.2), name="waiting info")
        if view.reconnecting:
            self._banner(surface, self.t("call.reconnecting"))
        self.button(
            surface,
            self.t("cancel"),
            pygame.Rect(bottom.x, bottom.y, bottom.width // 3, bottom.height),
            event=flow.Cancel(),
            kind="secondary",
        )

    def _draw_in_call(self, surface: pygame.Surface, view: View) -> None:
        width, height = self.size
        bar = pygame.Rect(
            0, height - self.min_target - self.margin, width, self.min_target + self.margin
        )
        stage = pygame.Rect(0, 0, width, bar.y)
        self.frame(surface, view.remote_frame, stage)
        small = pygame.Rect(0, 0, width // 4, width // 4 * 3 // 4)
        small.topright = (width - self.margin, self.margin)
        small = self._mirror(small)
        if view.self_view is not None and not view.camera_off:
            self.frame(surface, view.self_view, small)
        chat = view.visit.chat[-3:]
        if chat:
            box_h = int(self.body * 1.3) * len(chat) * 2
            box = pygame.Rect(
                self.margin, bar.y - box_h - self.margin, width - 2 * self.margin, box_h
            )
            shade = pygame.Surface(box.size, pygame.SRCALPHA)
            shade.fill((0, 0, 0, 200))
            surface.blit(shade, box)
            self.text(
                surface,
                "\n".join(f"{who}: {text}" for who, text in chat),
                box.inflate(-12, -8),
                colour=self.theme.on_stage,
                name="chat",
            )
        pygame.draw.rect(surface, self.theme.background, bar)
        row = pygame.Rect(
            self.margin, bar.y + self.margin // 2, width - 2 * self.margin, self.min_target
        )
        cells = self._row(row, 5)
        self.button(
            surface,
            self.t("call.unmute" if view.muted else "call.mute"),
            cells[0],
            action="mute",
            kind="secondary",
        )
        self.button(
            surface,
            self.t("call.camera_on" if view.camera_off else "call.camera_off"),
            cells[1],
            action="camera",
            kind="secondary",
        )
        self.button(
            surface, self.t("call.quieter"), cells[2], action="volume_down", kind="secondary"
        )
        self.button(surface, self.t("call.louder"), cells[3], action="volume_up", kind="secondary")
        self.button(surface, self.t("call.end"), cells[4], event=flow.Cancel(), kind="danger")
        if view.reconnecting:
            self._banner(surface, self.t("call.reconnecting"))

    def _banner(self, surface: pygame.Surface, text: str) -> None:
        """A band across the top of the screen that says what is going on."""
        width, _ = self.size
        band = pygame.Rect(0, 0, width, int(self.body * 2.6))
        pygame.draw.rect(surface, self.theme.background, band)
        self.text(surface, text, band.inflate(-2 * self.margin, -8), name="reconnecting")

    def _message(
        self, surface: pygame.Surface, title: str, body: str, text: str | None = None
    ) -> pygame.Rect:
        """A title and a text: the catalogue's *body*, or *text* given instead of it."""
        y = self._header(surface, title)
        content = self._content()
        box = pygame.Rect(
            content.x, y, content.width, content.bottom - y - self.min_target - self.margin
        )
        self.text(
            surface,
            self.t(body) if text is None else text,
            box,
            size=int(self.body * 1.15),
            name=body,
            min_mm=3.0 if text is not None else 3.5,
        )
        return box

    def _draw_ended(self, surface: pygame.Surface, view: View) -> None:
        lost = view.ended_reason in LOST_CONNECTION
        own = self.theme.text_for(self._language, "ended")
        if lost:
            # What happened and what to do first; the organisation's words after it.
            text = self.t("ended.connection_lost") + (f"\n\n{own[0]}" if own else "")
            self._message(surface, "ended.title", "ended.connection_lost", text)
        else:
            self._message(surface, "ended.title", "ended.text", own[0] if own else None)
        bottom = self._bottom_row()
        done = pygame.Rect(0, bottom.y, bottom.width // 3, bottom.height)
        done.centerx = bottom.centerx
        self.button(surface, self.t("ended.done"), done, event=flow.Start(), mirror=False)

    def _draw_offline(self, surface: pygame.Surface, view: View) -> None:
        # A wrong address is not a passing outage: say what must be corrected.
        body = "offline.not_found" if view.server_not_found else "offline.text"
        self._message(surface, "offline.title", body)

    def _draw_out_of_service(self, surface: pygame.Surface, view: View) -> None:
        self._message(surface, "oos.title", "oos.text")

    def _draw_technician_pin(self, surface: pygame.Surface, view: View) -> None:
        text, pad = self._split()
        self._keypad(
            surface,
            pad,
            lambda d: (None, f"pin:{d}"),
            [
                (self.t("code.delete"), None, "pin:delete", "secondary"),
                (self.t("code.ok"), None, "pin:ok", "primary"),
            ],
        )
        self.text(
            surface,
            self.t("pin.title"),
            pygame.Rect(text.x, text.y, text.width, int(self.title * 2.6)),
            size=self.title,
            bold=True,
            name="pin.title",
        )
        self.text(
            surface,
            "●" * view.pin_digits or "—",
            pygame.Rect(text.x, text.y + int(self.title * 2.8), text.width, int(self.title * 1.5)),
            size=self.title,
            name="pin dots",
            language_rtl=False,
        )
        back = pygame.Rect(text.x, text.bottom - self.min_target, text.width, self.min_target)
        self.button(
            surface, self.t("cancel"), back, event=flow.Cancel(), kind="secondary", mirror=False
        )

    def _draw_technician(self, surface: pygame.Surface, view: View) -> None:
        content = self._content()
        # A one-line title (the checks need the room); the overflow test holds every language.
        title = int(self.title * 1.25)
        self.text(
            surface,
            self.t("tech.title"),
            pygame.Rect(content.x, content.y, content.width, title),
            size=self.title,
            bold=True,
            name="tech.title",
        )
        y = content.y + title + self.margin // 2
        bottom = self._bottom_row()
        # The checks get three quarters: a booth in trouble (no clock, no ALSA configuration) has
        # a dozen long lines, each saying what to do; the preview needs only to show a picture.
        split = content.width * 3 // 4
        checks = pygame.Rect(
            content.x, y, split - self.margin // 2, bottom.y - y - self.margin // 2
        )
        preview = pygame.Rect(
            content.x + split + self.margin // 2,
            y,
            content.width - split - self.margin // 2,
            checks.height,
        )
        checks, preview = self._mirror(checks), self._mirror(preview)
        lines = [f"{name}: {value}" for name, value in view.technician.items()]
        self.text(
            surface,
            "\n".join(lines) or "…",
            checks,
            size=max(14, int(self.body * 0.8)),
            name="technician checks",
            language_rtl=False,
            min_mm=2.5,  # read by a technician standing at the panel, not by a visitor
        )
        self.frame(surface, view.self_view, preview)
        cells = self._row(bottom, 4)
        self.button(surface, self.t("tech.tone"), cells[0], action="tone", kind="secondary")
        self.button(
            surface, self.t("tech.network"), cells[1], action="network_check", kind="secondary"
        )
        self.button(surface, self.t("tech.restart"), cells[2], action="restart", kind="danger")
        self.button(surface, self.t("tech.exit"), cells[3], event=flow.Back())

    def _draw_enrolment(self, surface: pygame.Surface, view: View) -> None:
        y = self._header(surface, "enrol.title")
        content = self._content()
        text_h = int(self.body * 3.5)
        self.text(
            surface,
            self.t("enrol.text"),
            pygame.Rect(content.x, y, content.width, text_h),
            name="enrol.text",
        )
        y += text_h
        if view.server_not_found:
            box = pygame.Rect(content.x, y, content.width, int(self.body * 4.4))
            pygame.draw.rect(surface, self.theme.problem, box)
            self.text(
                surface,
                self.t("offline.not_found"),
                box.inflate(-8, -8),
                name="offline.not_found",
                min_mm=3.0,
            )
            y = box.bottom + self.margin // 2
        elif view.enrolment_problem:
            # What went wrong and what to do, in the booth's language (the server's English
            # message is in the log and the status file).
            reason = view.enrolment_problem
            key = f"enrol.{reason if reason in ENROLMENT_REFUSALS else 'refused'}"
            box = pygame.Rect(content.x, y, content.width, int(self.body * 4.4))
            pygame.draw.rect(surface, self.theme.problem, box)
            self.text(surface, self.t(key), box.inflate(-8, -8), name=key, min_mm=3.0)
            y = box.bottom + self.margin // 2
        self.frame(
            surface,
            view.self_view,
            pygame.Rect(content.x + content.width // 4, y, content.width // 2, content.bottom - y),
        )
