"""Every screen of the booth, drawn from the flow's state at any resolution.

:meth:`BoothScreens.draw` paints one frame with the screen its table names for the state and
returns the touch targets on it; a target carries the flow event it stands for (or an
:class:`~kiosk.ui.actions.Action` the booth handles itself: mute, volume, ...). Sizes come from
the panel's physical size: every target is at least 15 mm, text is large and high-contrast,
and the layout mirrors for Arabic (:mod:`kiosk.ui.canvas`). In the accessibility mode (the visit's
``accessible``) the text is larger, the colours are the theme's high-contrast ones, and a bar
on top says so and offers "repeat" (the spoken prompt) and the standard view; the call screen
keeps its whole height for the video. Text that does not fit its box
after stepping the font down is recorded in :attr:`BoothScreens.overflows` (the tests demand
none). The organisation's texts and colours are :mod:`kiosk.ui.theme`'s; the screens for the
booth's keepers are in :mod:`kiosk.ui.service`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable

import pygame

from kiosk import flow
from kiosk.flow import CITIZEN_STATES, State
from kiosk.i18n import LANGUAGES_IN_ORDER, Catalogue, rtl
from kiosk.ui.actions import Action
from kiosk.ui.canvas import ADVISOR, MIN_TARGET_MM, PANEL_WIDTH_MM, Target, Tile, View, target_at
from kiosk.ui.service import ENROLMENT_REFUSALS, ServiceScreens
from kiosk.ui.text import Fonts
from kiosk.ui.theme import Theme
from protocol import HangupReason

__all__ = [
    "ADVISOR",
    "ENROLMENT_REFUSALS",
    "LOST_CONNECTION",
    "MIN_TARGET_MM",
    "PANEL_WIDTH_MM",
    "BoothScreens",
    "Target",
    "Theme",
    "Tile",
    "View",
    "target_at",
]

#: The ring around Start on the idle screen grows and fades once, over this long, each time the
#: idle screen comes: it draws the eye to Start, then rests. Motion that goes on for more than
#: five seconds would need a way to stop it (WCAG 2.2.2), and a screen at rest is not drawn
#: again (kiosk.__main__): an idle booth, most of its day, draws nothing.
RING_SECONDS = 4.0

#: Reasons a call ended that the "ended" screen explains as a lost connection.
LOST_CONNECTION = frozenset(
    {
        HangupReason.CONNECTION_LOST,
        HangupReason.PEER_DISCONNECTED,
        HangupReason.CONNECTION_FAILED,
        HangupReason.SERVER_UNREACHABLE,
    }
)

Painter = Callable[[pygame.Surface, View], None]


class BoothScreens(ServiceScreens):
    """The booth's screens, one for each state of the flow."""

    def __init__(
        self,
        size: tuple[int, int],
        theme: Theme,
        catalogue: Catalogue,
        *,
        panel_width_mm: float | None = None,
        fonts: Fonts | None = None,
    ) -> None:
        super().__init__(size, theme, catalogue, panel_width_mm=panel_width_mm, fonts=fonts)
        #: When the idle screen came (the ring pulses then); None on other screens.
        self._idle_since: float | None = None
        #: The screen for each state.
        self.screens: dict[State, Painter] = {
            State.IDLE: self._draw_idle,
            State.CHOOSE: self._draw_choose,
            State.CODE_ENTRY: self._draw_code_entry,
            State.CONSENT: self._draw_consent,
            State.WAITING: self._draw_waiting,
            State.IN_CALL: self._draw_in_call,
            State.ENDED: self._draw_ended,
            State.OFFLINE: self._draw_offline,
            State.OUT_OF_SERVICE: self._draw_out_of_service,
            State.TECHNICIAN_PIN: self._draw_technician_pin,
            State.TECHNICIAN: self._draw_technician,
            State.ENROLMENT: self._draw_enrolment,
        }

    def picture(self, view: View) -> object:
        """What a drawing of ``view`` (one without video) depends on: two views with equal
        pictures are drawn the same, so the second need not be drawn (kiosk.__main__)."""
        return (copy.deepcopy(dataclasses.replace(view, now=0.0)), self._ring(view), self.theme)

    def _ring(self, view: View) -> int | None:
        """How far the ring around Start has grown (pixels), on the idle screen: it pulses
        once, over RING_SECONDS, each time the idle screen comes, then rests."""
        if view.state is not State.IDLE:
            return None
        since = view.now if self._idle_since is None else self._idle_since
        phase = (view.now - since) / RING_SECONDS
        return int(phase * self.margin // 2) * 2 if phase < 1 else 0

    def draw(self, surface: pygame.Surface, view: View) -> list[Target]:
        if view.state is State.IDLE:
            if self._idle_since is None:
                self._idle_since = view.now
        else:
            self._idle_since = None
        self._targets = []
        self.text_boxes = []
        self.drawn = []
        self.smallest_text = None
        self.text_sizes = {}
        self._state = view.state
        self._language = view.visit.language
        accessible = view.visit.accessible and view.state in CITIZEN_STATES
        self._use_mode(
            accessible=accessible, toolbar=accessible and view.state is not State.IN_CALL
        )
        organisation = self.theme
        if accessible:
            self.theme = organisation.high_contrast()
        try:
            surface.fill(self.theme.background)
            if self._toolbar:
                self._draw_toolbar(surface)
            self.screens[view.state](surface, view)
        finally:
            self.theme = organisation
        return list(self._targets)

    def _draw_toolbar(self, surface: pygame.Surface) -> None:
        """The accessibility mode's bar: what it is, back to the standard view, repeat."""
        m = self.margin
        band = pygame.Rect(m, m, self.size[0] - 2 * m, self.min_target)
        width = max(self.min_target * 2, band.width // 4)
        repeat = pygame.Rect(band.right - width, band.y, width, band.height)
        standard = pygame.Rect(repeat.x - m // 2 - width, band.y, width, band.height)
        label = pygame.Rect(band.x, band.y, standard.x - m // 2 - band.x, band.height)
        self._toolbar_label = self._mirror(label)
        self.text(
            surface,
            self.t("a11y.mode"),
            self._toolbar_label,
            bold=True,
            middle=True,
            name="a11y.mode",
            min_mm=3.0,
        )
        self.button(
            surface,
            self.t("a11y.off"),
            standard,
            event=flow.AccessibleMode(on=False),
            kind="secondary",
        )
        self.button(surface, self.t("a11y.repeat"), repeat, action=Action.REPEAT)

    # ------------------------------------------------------------ the visitor's screens

    def _draw_idle(self, surface: pygame.Surface, view: View) -> None:
        content = self._content()
        theme = self.theme
        # In the accessibility mode its bar takes the organisation's row: the text needs it.
        org_h = 0 if self.accessible else max(int(self.body * 1.5), self.min_target // 2)
        right = content.right
        if not self.accessible:
            # The way into the accessibility mode, labelled in words (and by holding the call
            # button, which the spoken prompts and the booth's sign say).
            org_h = max(org_h, self.min_target)
            access = pygame.Rect(0, content.y, max(content.width // 3, self.min_target * 3), org_h)
            access.right = content.right
            # The organisation's name and logo stay on the left in every language (as before),
            # so the control stays on the right.
            self.button(
                surface,
                self.t("a11y.on"),
                access,
                event=flow.AccessibleMode(),
                kind="secondary",
                mirror=False,
            )
            right = access.x - self.margin // 2
        x = content.x
        if theme.logo is not None and org_h:
            logo = theme.logo
            scale = min(1.0, org_h / max(1, logo.get_height()))
            image = pygame.transform.smoothscale(
                logo, (int(logo.get_width() * scale), int(logo.get_height() * scale))
            )
            surface.blit(image, (content.x, content.y))
            x += image.get_width() + self.margin // 2
        if org_h:
            self.text(
                surface,
                theme.organisation,
                pygame.Rect(x, content.y, right - x, org_h),
                colour=theme.muted,
                name="organisation",
                language_rtl=False,
                middle=True,
            )
        languages = self._bottom_row()
        label_h = int(self.body * 1.4)
        label = pygame.Rect(content.x, languages.y - label_h - 4, content.width, label_h)
        start = pygame.Rect(0, 0, max(content.width // 3, self.min_target * 3), self.min_target)
        start.midbottom = (content.centerx, label.y - self.margin)
        middle_top = content.y + org_h
        middle_h = start.y - self.margin - middle_top
        title_share = 0.4 if self.accessible else 0.5  # large text: the sentence needs more
        title_box = pygame.Rect(content.x, middle_top, content.width, int(middle_h * title_share))
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
        # Calm motion, once: a soft ring around Start that slowly grows and fades.
        grow = self._ring(view) or 0
        ring = start.inflate(grow, grow)
        glow = tuple(int(c + (255 - c) * grow / self.margin) for c in theme.primary)
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
                # A language's own name, six in a row: in the mode it may be set smaller than
                # other large text rather than cut.
                min_mm=2.5 if self.accessible else 3.0,
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
        title_h = int(self.title * 2.6)
        problem = None
        if view.visit.problem:
            problem = (
                "code.rate_limited" if view.visit.problem == "rate_limited" else "code.wrong_code"
            )
        if problem is not None and self.accessible:
            # In the large text what went wrong takes the title's place (the spoken prompt
            # says what the screen is for).
            box = pygame.Rect(text.x, y, text.width, title_h)
            pygame.draw.rect(surface, self.theme.problem, box)
            self.text(surface, self.t(problem), box.inflate(-8, -8), name=problem)
        else:
            self.text(
                surface,
                self.t("code.title"),
                pygame.Rect(text.x, y, text.width, title_h),
                size=self.title,
                bold=True,
                name="code.title",
            )
        y += title_h
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
        if problem is not None and not self.accessible:
            box = pygame.Rect(text.x, y, text.width, int(self.body * 3.6))
            pygame.draw.rect(surface, self.theme.problem, box)
            self.text(surface, self.t(problem), box.inflate(-8, -8), name=problem)
            y = box.bottom + self.margin // 2
        if problem is None or not self.accessible:
            hint_h = min(int(self.body * 4.6), back.y - self.margin // 2 - y)
            self.text(
                surface,
                self.t("code.hint"),
                pygame.Rect(text.x, y, text.width, hint_h),
                colour=self.theme.muted,
                name="code.hint",
                # Under a refusal the hint is the second thing to read (and on the 1024x600
                # panel, in German, the room for it is short).
                min_mm=3.0 if problem is not None else 3.5,
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
        elif self.accessible:
            # One block: the large text wraps across the whole room instead of each point
            # shrinking to fit its own line.
            points = ("consent.recorded", "consent.chat", "consent.camera")
            self.text(
                surface,
                "\n".join("• " + self.t(key) for key in points),
                pygame.Rect(content.x, y, content.width, bottom.y - self.margin - y),
                name="consent points",
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
        # In the accessibility mode the large text takes two thirds.
        share = 3 if self.accessible else 2
        preview = pygame.Rect(
            content.x, y, content.width // share - self.margin // 2, bottom.y - y - self.margin
        )
        info = pygame.Rect(
            preview.right + self.margin,
            y,
            content.right - preview.right - self.margin,
            # In the mode down to the bottom, beside "cancel" (a third of the row, under the
            # preview's third).
            content.bottom - y if self.accessible else preview.height,
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

    def video_boxes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The sizes the call screen draws video at: the stage, and a tile (the self-view,
        another participant). Video converted to fit them is drawn unscaled."""
        stage, small = self._call_layout()[1:]
        return stage.size, small.size

    def _call_layout(self) -> tuple[pygame.Rect, pygame.Rect, pygame.Rect]:
        """The call screen's control bar, stage and the self-view's tile (top right)."""
        width, height = self.size
        bar = pygame.Rect(
            0, height - self.min_target - self.margin, width, self.min_target + self.margin
        )
        stage = pygame.Rect(0, 0, width, bar.y)
        small = pygame.Rect(0, 0, width // 4, width // 4 * 3 // 4)
        small.topright = (width - self.margin, self.margin)
        return bar, stage, small

    def _draw_in_call(self, surface: pygame.Surface, view: View) -> None:
        width, _ = self.size
        bar, stage, small = self._call_layout()
        advisor = Tile(ADVISOR, view.advisor_name, view.remote_frame, view.remote_frame_id)
        other = view.others[0] if view.others else None
        large: Tile
        tile: Tile | None
        if other is not None and view.pinned == other.key:
            large, tile = other, advisor  # the interpreter takes the stage
        else:
            large, tile = advisor, other
        self.frame(surface, large.frame, stage, who=large.key, frame_id=large.frame_id)
        tile_target: pygame.Rect | None = None
        if tile is not None:
            # Opposite the self-view; a tap swaps it with the stage (EN 301 549: a sign
            # language interpreter must be seen large enough, at 20 frames a second or more).
            spot = small.copy()
            # Below where the "reconnecting" band goes, which must not cover its target.
            spot.topleft = (self.margin, int(self.body * 2.6) + self.margin // 2)
            spot = self._mirror(spot)
            self.frame(surface, tile.frame, spot, who=tile.key, frame_id=tile.frame_id)
            caption = pygame.Rect(spot.x, spot.bottom, spot.width, int(self.body * 2.4))
            pygame.draw.rect(surface, self.theme.background, caption)
            pygame.draw.rect(surface, self.theme.primary, spot.union(caption), width=3)
            self.text(
                surface,
                self.t("call.pin", name=tile.name or "…"),
                caption.inflate(-8, -4),
                size=int(self.body * 0.9),
                bold=True,
                centre=True,
                middle=True,
                name="call.pin",
                min_mm=2.5 if self.accessible else 3.0,
                record=False,  # the caption is the target's own label
            )
            tile_target = spot.union(caption)
            self._targets.append(
                Target(tile_target, self.t("call.pin", name=tile.name), action=Action.PIN)
            )
        small = self._mirror(small)
        if view.self_view is not None and not view.camera_off:
            self.frame(surface, view.self_view, small)
        chat = view.visit.chat[-3:]
        if chat:
            box_h = int(self.body * 1.3) * len(chat) * 2
            box = pygame.Rect(
                self.margin, bar.y - box_h - self.margin, width - 2 * self.margin, box_h
            )
            if tile_target is not None and box.colliderect(tile_target):
                # Beside the tile, never over its target.
                box.width -= tile_target.width + self.margin
                box = self._mirror(box.move(tile_target.width + self.margin, 0))
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
            action=Action.MUTE,
            kind="secondary",
        )
        self.button(
            surface,
            self.t("call.camera_on" if view.camera_off else "call.camera_off"),
            cells[1],
            action=Action.CAMERA,
            kind="secondary",
        )
        self.button(
            surface, self.t("call.quieter"), cells[2], action=Action.VOLUME_DOWN, kind="secondary"
        )
        self.button(
            surface, self.t("call.louder"), cells[3], action=Action.VOLUME_UP, kind="secondary"
        )
        self.button(surface, self.t("call.end"), cells[4], event=flow.Cancel(), kind="danger")
        if view.reconnecting:
            self._banner(surface, self.t("call.reconnecting"))

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
