"""The booth's flow: what a citizen sees and can do, as a pure state machine.

No I/O, no pygame, no clock of its own: :meth:`Flow.handle` takes an event and the time, changes
the state and returns the effects for the booth to carry out (ask the server for a call, hang
up, ...). The screens draw :attr:`Flow.state` and :attr:`Flow.visit`; the hardware and the link
turn what happens into events. Being pure, it is tested exhaustively with generated event
sequences (tests/kiosk/test_flow.py).

Rules that hold in every state:

* every state a citizen can be in has a timeout back to idle (a booth is never left stuck on
  a half-finished screen for the next person);
* someone walking away (the presence sensor) while choosing or waiting is taken as leaving,
  after a grace period;
* leaving a visit wipes everything about it: code, language, topic, chat, queue place (the end
  of a call keeps only the language, for its "ended" screen, until idle); the camera is wanted
  only on screens that show it.

Its length: the visit is one state machine whose rules hold across every state at once; split,
its transitions would no longer read as one table.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field, replace
from enum import StrEnum

#: Languages a citizen can choose on the idle screen; the first is the default.
LANGUAGES = ("de", "en", "tr", "uk", "ru", "ar")
CODE_DIGITS = 8
#: Wrong technician PINs in a row before the PIN screen closes for a while.
PIN_ATTEMPTS = 3
PIN_LOCKOUT_SECONDS = 300.0


class State(StrEnum):
    IDLE = "idle"  # attract screen, language choice
    CHOOSE = "choose"  # appointment, or an advisor now on a topic
    CODE_ENTRY = "code_entry"  # keypad, or the QR code held to the camera
    CONSENT = "consent"  # privacy notice: agree and start
    WAITING = "waiting"  # in the queue or the appointment's lobby, with the self-view
    IN_CALL = "in_call"
    ENDED = "ended"  # "nothing was stored"
    OFFLINE = "offline"  # server unreachable, retrying
    OUT_OF_SERVICE = "out_of_service"  # set remotely or by a fault
    TECHNICIAN_PIN = "technician_pin"
    TECHNICIAN = "technician"
    ENROLMENT = "enrolment"  # first boot without a token: "scan the enrolment code"


#: The screens a citizen sees (and hears in the accessibility mode); the others are the
#: technician's.
CITIZEN_STATES = (
    State.IDLE,
    State.CHOOSE,
    State.CODE_ENTRY,
    State.CONSENT,
    State.WAITING,
    State.IN_CALL,
    State.ENDED,
    State.OFFLINE,
    State.OUT_OF_SERVICE,
)


@dataclass(frozen=True)
class Timeouts:
    """Seconds without a touch before each state goes back to idle (or, for a call in
    progress, a ceiling no real consultation reaches)."""

    choose: float = 60.0
    code_entry: float = 90.0
    consent: float = 60.0
    waiting: float = 45 * 60.0
    in_call: float = 3 * 3600.0
    ended: float = 15.0
    technician_pin: float = 30.0
    technician: float = 300.0
    #: Someone away from the booth this long while choosing or waiting has left.
    absence_grace: float = 20.0
    #: In the accessibility mode every limit is this many times as long (reading large text,
    #: listening to a spoken prompt, finding a button by touch take longer).
    accessible_factor: float = 3.0

    def limit(self, state: State, *, accessible: bool = False) -> float | None:
        """The limit of ``state``; in the accessibility mode longer, and the screens without a
        limit of their own (idle, offline) give the mode up after :attr:`choose`."""
        base = {
            State.CHOOSE: self.choose,
            State.CODE_ENTRY: self.code_entry,
            State.CONSENT: self.consent,
            State.WAITING: self.waiting,
            State.IN_CALL: self.in_call,
            State.ENDED: self.ended,
            State.TECHNICIAN_PIN: self.technician_pin,
            State.TECHNICIAN: self.technician,
        }.get(state)
        if not accessible:
            return base
        if base is None and state in CITIZEN_STATES:
            base = self.choose
        return None if base is None else base * self.accessible_factor

    @property
    def longest(self) -> float:
        return max(
            self.limit(s, accessible=accessible) or 0.0
            for s in State
            for accessible in (False, True)
        )


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    """Something that happened; subclasses say what."""


@dataclass(frozen=True)
class Tick(Event):
    """Time passes (the booth sends one every second or so)."""


@dataclass(frozen=True)
class Start(Event):
    """A tap on the idle screen."""


@dataclass(frozen=True)
class CallButton(Event):
    """The illuminated call button: the next step towards an advisor now, decided by the state
    the flow is in when the press is handled (three presses from idle, as three taps)."""


@dataclass(frozen=True)
class AccessibleMode(Event):
    """The accessibility mode on (or off): large text, high contrast, longer timeouts and
    spoken prompts, until the visit ends. From the idle screen's control or by holding the
    call button, on any screen a citizen sees."""

    on: bool = True


@dataclass(frozen=True)
class LanguageChosen(Event):
    language: str


@dataclass(frozen=True)
class ChooseWalkIn(Event):
    """An advisor now, on this topic (None: any)."""

    topic_id: str | None = None


@dataclass(frozen=True)
class ChooseAppointment(Event):
    pass


@dataclass(frozen=True)
class Digit(Event):
    digit: str


@dataclass(frozen=True)
class Backspace(Event):
    pass


@dataclass(frozen=True)
class SubmitCode(Event):
    pass


@dataclass(frozen=True)
class QrCodeRead(Event):
    """The camera read an appointment's QR code: its text (a join link or a bare code)."""

    text: str


@dataclass(frozen=True)
class Consent(Event):
    """ "Agree and call"."""


@dataclass(frozen=True)
class Back(Event):
    pass


@dataclass(frozen=True)
class Cancel(Event):
    """Stop: the end button, or "cancel" on any screen."""


@dataclass(frozen=True)
class Waiting(Event):
    """The server queued the request (or put the booth in the lobby)."""

    session_id: str


@dataclass(frozen=True)
class QueuePlace(Event):
    position: int
    estimated_wait_seconds: int


@dataclass(frozen=True)
class CallStarted(Event):
    session_id: str


@dataclass(frozen=True)
class CallEnded(Event):
    """The server or the other side ended the call (or the wait)."""

    reason: str


@dataclass(frozen=True)
class CodeChecked(Event):
    """The server's answer to :class:`CheckCode` for ``code``: ``refusal`` None when the code
    opens an appointment now (or the server could not say: joining checks it again), else why
    not (``wrong_code``, ``rate_limited``)."""

    code: str
    refusal: str | None = None


@dataclass(frozen=True)
class Refused(Event):
    """The server refused the request: a wrong code, too many tries, an unknown topic."""

    code: str
    message: str = ""


@dataclass(frozen=True)
class ChatLine(Event):
    sender: str
    text: str


@dataclass(frozen=True)
class LinkUp(Event):
    pass


@dataclass(frozen=True)
class LinkDown(Event):
    pass


@dataclass(frozen=True)
class OutOfService(Event):
    reason: str


@dataclass(frozen=True)
class BackInService(Event):
    pass


@dataclass(frozen=True)
class Presence(Event):
    present: bool


@dataclass(frozen=True)
class TechnicianGesture(Event):
    """The hidden gesture or the button combination that opens the PIN screen."""


@dataclass(frozen=True)
class PinEntered(Event):
    pin: str


@dataclass(frozen=True)
class ServerNotFound(Event):
    """The server's address answers, but no Videobooth server is there (HTTP 404): the screens
    say that booth.toml's address is wrong, until the server is reached."""


@dataclass(frozen=True)
class EnrolmentNeeded(Event):
    """The booth has no identity yet and no token: it must be shown the enrolment code."""


@dataclass(frozen=True)
class Enrolled(Event):
    pass


@dataclass(frozen=True)
class EnrolmentFailed(Event):
    """The server refused the enrolment; ``reason`` says why as a code (``token_used``,
    ``token_expired``, ``token_unknown``, ``booth_revoked``, ...; ``refused`` otherwise), which the
    enrolment screen explains in the booth's languages; ``detail`` says it in English for the
    technician (the status file)."""

    reason: str
    detail: str | None = None


@dataclass(frozen=True)
class EnrolmentDelayed(Event):
    """Enrolment is tried again later (the server's address is wrong, for one); ``detail`` says
    why in English for the technician. Not a refusal: the token is kept."""

    detail: str


# ---------------------------------------------------------------- effects


@dataclass(frozen=True)
class Effect:
    """Something the booth must do; subclasses say what."""


@dataclass(frozen=True)
class RequestCall(Effect):
    topic_id: str | None


@dataclass(frozen=True)
class CheckCode(Effect):
    """Ask the server whether ``code`` opens an appointment now (answered by
    :class:`CodeChecked`), before the citizen is asked to consent."""

    code: str


@dataclass(frozen=True)
class JoinAppointment(Effect):
    code: str


@dataclass(frozen=True)
class CancelWait(Effect):
    session_id: str | None


@dataclass(frozen=True)
class HangUp(Effect):
    session_id: str


@dataclass(frozen=True)
class Enrol(Effect):
    """Enrol with this token (read from the enrolment QR code)."""

    token: str


@dataclass(frozen=True)
class WipeVisit(Effect):
    """Forget the visit: preview buffers, received frames, anything cached for the screens."""


# ---------------------------------------------------------------- state


@dataclass(frozen=True)
class Visit:
    """Everything about one person's use of the booth; wiped when they leave."""

    language: str = LANGUAGES[0]
    topic_id: str | None = None
    walk_in: bool = False
    code: str = ""
    session_id: str | None = None
    queue_position: int | None = None
    estimated_wait_seconds: int | None = None
    chat: tuple[tuple[str, str], ...] = ()
    #: A message for the current screen ("this code opens no appointment now").
    problem: str | None = None
    #: The code the server is checking now (the keypad waits for its answer).
    checking: str | None = None
    #: The accessibility mode (:class:`AccessibleMode`); it ends with the visit.
    accessible: bool = False

    @property
    def queue_place(self) -> tuple[int, int] | None:
        """While waiting: (place in the queue, estimated wait in seconds), once known."""
        if self.queue_position is None or self.estimated_wait_seconds is None:
            return None
        return (self.queue_position, self.estimated_wait_seconds)


#: Chat lines the call screen keeps (older ones scroll away; none outlive the call).
CHAT_LINES = 50


def pin_digest(pin: str) -> str:
    """How a technician PIN is stored in the configuration (never the PIN itself)."""
    return hashlib.sha256(f"videobooth-technician:{pin}".encode()).hexdigest()


@dataclass
class Flow:
    """The booth's flow. ``handle`` is the only way it changes."""

    timeouts: Timeouts = field(default_factory=Timeouts)
    #: :func:`pin_digest` of the technician PIN; None: technician mode is closed.
    technician_pin_digest: str | None = None
    state: State = State.OFFLINE
    visit: Visit = field(default_factory=Visit)
    online: bool = False
    in_service: bool = True
    enrolled: bool = True
    #: Why the last enrolment failed, as :class:`EnrolmentFailed` says it; None otherwise.
    enrolment_problem: str | None = None
    #: Why the last enrolment attempt failed, in English for the technician (the status file);
    #: None once enrolled.
    enrolment_detail: str | None = None
    service_reason: str | None = None
    #: The server's address answered HTTP 404 (see :class:`ServerNotFound`).
    server_not_found: bool = False
    present: bool = True
    #: When the current state was entered and when someone last touched the screen.
    entered_at: float = 0.0
    last_activity: float = 0.0
    absent_since: float | None = None
    wrong_pins: int = 0
    pin_locked_until: float = 0.0
    #: Why the last call ended, while the "ended" screen shows it (a reason code such as
    #: "connection_lost", never anything personal).
    ended_reason: str | None = None

    # ------------------------------------------------------------ queries

    @property
    def camera_wanted(self) -> bool:
        """The camera runs on the screens that show it, and nowhere else."""
        return self.state in (
            State.CODE_ENTRY,  # reads the appointment's QR code
            State.WAITING,  # the self-view
            State.IN_CALL,
            State.TECHNICIAN,  # the preview
            State.ENROLMENT,  # reads the enrolment QR code
        )

    @property
    def busy(self) -> bool:
        """Someone is using the booth (the status light's "busy")."""
        return self.state in (
            State.CHOOSE,
            State.CODE_ENTRY,
            State.CONSENT,
            State.WAITING,
            State.IN_CALL,
            State.ENDED,
        )

    # ------------------------------------------------------------ the transition function

    def handle(self, event: Event, now: float) -> list[Effect]:
        """Apply ``event`` at time ``now`` (seconds, monotonic); return what to do."""
        effects: list[Effect] = []
        if isinstance(event, CallButton):
            step = self._call_button_step()
            if step is None:
                return effects  # no step from here: the press is not even a touch
            event = step
        if not isinstance(
            event,
            (
                Tick,
                Presence,
                QueuePlace,
                ChatLine,
                LinkUp,
                LinkDown,
                ServerNotFound,
                EnrolmentDelayed,
            ),
        ):
            self.last_activity = now  # a touch or a button: someone is there
        match event:
            case LinkDown() if self.state in (State.WAITING, State.IN_CALL) and (
                self.visit.session_id is not None
            ):
                # The call (or the wait) goes on: the booth resumes it when the link is back,
                # or ends it after its reconnect limit (CallEnded).
                self.online = False
            case LinkDown():
                self.online = False
                effects += self._leave(now, notify=False)  # ends where _resting_state says
            case EnrolmentNeeded():
                self.enrolled = False
                effects += self._leave(now, notify=False)
            case ServerNotFound():
                self.server_not_found = True
            case Enrolled():
                self.enrolled = True
                self.enrolment_problem = None
                self.enrolment_detail = None
                self.server_not_found = False
                if self.state is State.ENROLMENT:
                    self._enter(self._resting_state(), now)
            case EnrolmentFailed():
                self.enrolment_problem = event.reason
                if event.detail is not None:
                    self.enrolment_detail = event.detail
            case EnrolmentDelayed():
                self.enrolment_detail = event.detail
            case QrCodeRead() if self.state is State.ENROLMENT:
                token = event.text.strip()
                if token.startswith("vbe_") and 36 <= len(token) <= 68:
                    self.enrolment_problem = None
                    effects.append(Enrol(token=token))
            case LinkUp():
                self.online = True
                self.server_not_found = False
                if self.state is State.OFFLINE:
                    self._enter(self._resting_state(), now)
            case OutOfService():
                self.in_service = False
                self.service_reason = event.reason
                if self.state not in (State.TECHNICIAN, State.TECHNICIAN_PIN):
                    effects += self._leave(now, notify=True)
                    self._enter(State.OUT_OF_SERVICE, now)
            case BackInService():
                self.in_service = True
                self.service_reason = None
                if self.state is State.OUT_OF_SERVICE:
                    self._enter(self._resting_state(), now)
            case Presence():
                self.present = event.present
                self.absent_since = None if event.present else now
            case Tick():
                effects += self._tick(now)
            case AccessibleMode() if self.state in CITIZEN_STATES:
                self.visit = replace(self.visit, accessible=event.on)
            case TechnicianGesture() if self.state in (
                State.IDLE,
                State.OFFLINE,
                State.OUT_OF_SERVICE,
                State.ENROLMENT,
            ):
                if self.technician_pin_digest is not None and now >= self.pin_locked_until:
                    self._enter(State.TECHNICIAN_PIN, now)
            case _:
                effects += self._in_state(event, now)
        return effects

    def _in_state(self, event: Event, now: float) -> list[Effect]:
        state, visit = self.state, self.visit
        match state, event:
            case State.IDLE, LanguageChosen() if event.language in LANGUAGES:
                self.visit = replace(visit, language=event.language)
                self._enter(State.CHOOSE, now)
            case State.IDLE, Start():
                self._enter(State.CHOOSE, now)
            case State.CHOOSE, ChooseWalkIn():
                self.visit = replace(visit, walk_in=True, topic_id=event.topic_id, problem=None)
                self._enter(State.CONSENT, now)
            case State.CHOOSE, ChooseAppointment():
                self.visit = replace(visit, walk_in=False, code="", problem=None)
                self._enter(State.CODE_ENTRY, now)
            case State.CHOOSE, Back():
                return self._leave(now, notify=False)
            case State.CODE_ENTRY, CodeChecked() if event.code == visit.checking:
                if event.refusal is None:
                    self.visit = replace(visit, checking=None, problem=None)
                    self._enter(State.CONSENT, now)
                else:
                    # Refused before the consent screen: the keypad says why, empty again.
                    self.visit = replace(visit, checking=None, code="", problem=event.refusal)
            case State.CODE_ENTRY, _ if visit.checking is not None and not isinstance(
                event, Back | Cancel
            ):
                pass  # the keypad waits for the server's answer
            case State.CODE_ENTRY, Digit() if event.digit.isdigit() and len(event.digit) == 1:
                if len(visit.code) < CODE_DIGITS:
                    self.visit = replace(visit, code=visit.code + event.digit, problem=None)
            case State.CODE_ENTRY, Backspace():
                self.visit = replace(visit, code=visit.code[:-1], problem=None)
            case State.CODE_ENTRY, SubmitCode() if len(visit.code) == CODE_DIGITS:
                self.visit = replace(visit, checking=visit.code, problem=None)
                return [CheckCode(code=visit.code)]
            case State.CODE_ENTRY, QrCodeRead():
                code = code_from_qr(event.text)
                if code is not None:
                    self.visit = replace(visit, code=code, checking=code, problem=None)
                    return [CheckCode(code=code)]
            case State.CODE_ENTRY, Back():
                self.visit = replace(visit, code="", problem=None, checking=None)
                self._enter(State.CHOOSE, now)
            case State.CONSENT, Consent():
                self.visit = replace(visit, problem=None)
                self._enter(State.WAITING, now)
                if visit.walk_in:
                    return [RequestCall(topic_id=visit.topic_id)]
                return [JoinAppointment(code=visit.code)]
            case State.CONSENT, Back():
                self._enter(State.CHOOSE if visit.walk_in else State.CODE_ENTRY, now)
            case State.WAITING, Waiting():
                self.visit = replace(visit, session_id=event.session_id)
            case State.WAITING, QueuePlace():
                self.visit = replace(
                    visit,
                    queue_position=event.position,
                    estimated_wait_seconds=event.estimated_wait_seconds,
                )
            case State.WAITING, Refused():
                # A wrong code goes back to the keypad with the reason; anything else to choose.
                self.visit = replace(visit, session_id=None, problem=event.code)
                if visit.walk_in:
                    self._enter(State.CHOOSE, now)
                else:
                    self.visit = replace(self.visit, code="")
                    self._enter(State.CODE_ENTRY, now)
            case State.WAITING, CallStarted():
                self.visit = replace(visit, session_id=event.session_id, queue_position=None)
                self._enter(State.IN_CALL, now)
            case State.WAITING | State.IN_CALL, CallEnded():
                self._wipe(keep_language=True)
                self._enter(State.ENDED, now)
                self.ended_reason = event.reason
                return [WipeVisit()]
            case State.IN_CALL, ChatLine():
                lines = (*visit.chat, (event.sender, event.text))[-CHAT_LINES:]
                self.visit = replace(visit, chat=lines)
            case State.IN_CALL, Cancel():
                effects: list[Effect] = []
                if visit.session_id is not None:
                    effects.append(HangUp(session_id=visit.session_id))
                self._wipe(keep_language=True)
                self._enter(State.ENDED, now)
                return [*effects, WipeVisit()]
            case State.ENDED, Start() | Cancel() | Back():
                self._enter(State.IDLE, now)
            case State.TECHNICIAN_PIN, PinEntered():
                return self._check_pin(event.pin, now)
            case State.TECHNICIAN_PIN | State.TECHNICIAN, Cancel() | Back():
                self._enter(self._resting_state(), now)
            case (
                State.CHOOSE | State.CODE_ENTRY | State.CONSENT | State.WAITING,
                Cancel(),
            ):
                return self._leave(now, notify=True)
            case _:
                pass  # anything else does nothing here (a stray tap, a late message)
        return []

    # ------------------------------------------------------------ helpers

    def _call_button_step(self) -> Event | None:
        return {
            State.IDLE: Start(),
            State.ENDED: Start(),
            State.CHOOSE: ChooseWalkIn(topic_id=None),
            State.CONSENT: Consent(),
        }.get(self.state)

    def _enter(self, state: State, now: float) -> None:
        if state is State.IDLE:
            self._wipe()  # the language too: the next person starts afresh
        self.ended_reason = None
        self.state = state
        self.entered_at = now
        self.last_activity = now

    def _wipe(self, *, keep_language: bool = False) -> None:
        # The end screen still speaks to the person who was there, in their language and mode;
        # idle forgets that too.
        visit = self.visit
        self.visit = (
            Visit(language=visit.language, accessible=visit.accessible)
            if keep_language
            else Visit()
        )

    def _resting_state(self) -> State:
        if not self.enrolled:
            return State.ENROLMENT
        if not self.in_service:
            return State.OUT_OF_SERVICE
        return State.IDLE if self.online else State.OFFLINE

    def _leave(self, now: float, *, notify: bool) -> list[Effect]:
        """End the visit from wherever it is: tell the server when asked to, wipe, go idle."""
        effects: list[Effect] = []
        session_id = self.visit.session_id
        if notify and self.state is State.WAITING:
            effects.append(CancelWait(session_id=session_id))
        elif notify and self.state is State.IN_CALL and session_id is not None:
            effects.append(HangUp(session_id=session_id))
        visiting = self.busy
        self._wipe()
        if visiting:
            effects.append(WipeVisit())
        self._enter(self._resting_state(), now)
        return effects

    def _tick(self, now: float) -> list[Effect]:
        limit = self.timeouts.limit(self.state, accessible=self.visit.accessible)
        if self.state is State.ENDED and limit is not None and now - self.entered_at >= limit:
            self._enter(self._resting_state(), now)
            return []
        if limit is not None and now - self.last_activity >= limit:
            return self._leave(now, notify=True)
        walked_away = (
            self.absent_since is not None
            and now - self.absent_since >= self.timeouts.absence_grace
            and self.state in (State.CHOOSE, State.CODE_ENTRY, State.CONSENT, State.WAITING)
        )
        if walked_away:
            return self._leave(now, notify=True)
        return []

    def _check_pin(self, pin: str, now: float) -> list[Effect]:
        digest = self.technician_pin_digest
        if digest is not None and hmac.compare_digest(pin_digest(pin), digest):
            self.wrong_pins = 0
            self._enter(State.TECHNICIAN, now)
            return []
        self.wrong_pins += 1
        if self.wrong_pins >= PIN_ATTEMPTS:
            self.wrong_pins = 0
            self.pin_locked_until = now + PIN_LOCKOUT_SECONDS
            self._enter(self._resting_state(), now)
        return []


def code_from_qr(text: str) -> str | None:
    """The 8-digit code in a QR code's text: a bare code, or a link ending in ``?code=…``.

    Anything else (a web address of someone else's, a vCard) is ignored, not an error: people
    hold all sorts of things to the camera.
    """
    candidate = text.strip()
    if "code=" in candidate:
        candidate = candidate.rsplit("code=", 1)[1].split("&", 1)[0]
    candidate = candidate.replace(" ", "")
    if len(candidate) == CODE_DIGITS and candidate.isascii() and candidate.isdigit():
        return candidate
    return None
