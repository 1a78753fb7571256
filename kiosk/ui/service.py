"""The screens for the booth's keepers: offline, out of service, enrolment, the technician's
PIN and technician mode."""

from __future__ import annotations

import pygame

from kiosk import flow
from kiosk.ui.actions import Action, PinKey
from kiosk.ui.canvas import Canvas, View

#: Why an enrolment was refused (the server's codes) with a text of their own on the screen.
ENROLMENT_REFUSALS = frozenset(
    {"token_used", "token_expired", "token_unknown", "booth_revoked", "key_taken", "not_a_token"}
)


class ServiceScreens(Canvas):
    """The screens no visitor is meant to use."""

    def _draw_offline(self, surface: pygame.Surface, view: View) -> None:
        # A wrong address is not a passing outage: say what must be corrected.
        body = "offline.not_found" if view.server_not_found else "offline.text"
        self._message(surface, "offline.title", body, button=False)

    def _draw_out_of_service(self, surface: pygame.Surface, view: View) -> None:
        if view.updating:  # not broken: back in a few minutes by itself
            self._message(surface, "oos.updating_title", "oos.updating_text", button=False)
            return
        self._message(surface, "oos.title", "oos.text", button=False)

    def _draw_technician_pin(self, surface: pygame.Surface, view: View) -> None:
        text, pad = self._split()
        self._keypad(
            surface,
            pad,
            lambda d: (None, PinKey(d)),
            [
                (self.t("code.delete"), None, PinKey("delete"), "secondary"),
                (self.t("code.ok"), None, PinKey("ok"), "primary"),
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
        self.button(surface, self.t("tech.tone"), cells[0], action=Action.TONE, kind="secondary")
        self.button(
            surface, self.t("tech.network"), cells[1], action=Action.NETWORK_CHECK, kind="secondary"
        )
        self.button(surface, self.t("tech.restart"), cells[2], action=Action.RESTART, kind="danger")
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
