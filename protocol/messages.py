"""Signalling messages between booths, browsers and the server (protocol version 1).

Every message is one JSON object in one WebSocket text frame::

    {"v": 1, "type": "offer", "id": "c7", "session_id": "...", "sdp": "..."}

``v`` is the protocol version, ``type`` selects the model, ``id`` is an optional correlation id
chosen by the sender and echoed as ``ref`` in an ``error`` reply. Unknown fields are rejected, so
a typo is an error rather than a silently ignored value.

Its length: the whole wire vocabulary, one small model per message, in the one file that authors
of a client and of the server both read.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.errors import ErrorCode, ProtocolError

PROTOCOL_VERSION = 1

#: Largest message a peer may send. SDP of an audio/video offer with a few candidates is 3 to
#: 8 KiB; 64 KiB leaves room for many candidates and chat without letting one frame hog memory.
MAX_MESSAGE_BYTES = 64 * 1024

#: Longest chat message, in characters.
MAX_CHAT_CHARS = 2000

_SessionId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
_Sdp = Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_BYTES)]
_ShortText = Annotated[str, Field(max_length=200)]
_ParticipantId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
_Region = Annotated[str, Field(min_length=1, max_length=100)]

#: Most people in one call (a mesh: everyone sends to everyone, so this stays small).
MAX_PARTICIPANTS = 4


class Role(StrEnum):
    """Who is at the other end of a connection."""

    ADVISOR = "advisor"
    BOOTH = "booth"
    CITIZEN = "citizen"


class IceTransportPolicy(StrEnum):
    ALL = "all"
    RELAY = "relay"


class Message(BaseModel):
    """Base of every message; subclasses set ``type``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Literal[1] = 1  # PROTOCOL_VERSION
    id: Annotated[str, Field(max_length=64)] | None = None
    type: ClassVar[str]


class IceServer(BaseModel):
    """One entry of ``RTCConfiguration.iceServers``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class Peer(BaseModel):
    """What a participant is told about another one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    participant_id: str
    role: Role
    name: str


# ---------------------------------------------------------------- client -> server


class CallRequest(Message):
    """A booth or a citizen's browser asks for an advisor now, on a topic (a service) when it
    names one. A citizen may name a region; a booth's region is its branch's (the server knows
    it and ignores what a booth says)."""

    type: ClassVar[str] = "call_request"
    topic_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    region: _Region | None = None


class CallCancel(Message):
    """A waiting booth gives up before an advisor accepted."""

    type: ClassVar[str] = "call_cancel"
    session_id: _SessionId


class LobbyJoin(Message):
    """A citizen (with a guest pass for an appointment) waits to be admitted."""

    type: ClassVar[str] = "lobby_join"


class AppointmentJoin(Message):
    """A booth joins an appointment's lobby with the code from the invitation."""

    type: ClassVar[str] = "appointment_join"
    code: Annotated[str, Field(min_length=1, max_length=32)]


class CallAccept(Message):
    """An advisor takes a waiting call."""

    type: ClassVar[str] = "call_accept"
    session_id: _SessionId


class Admit(Message):
    """The advisor lets a participant invited by link (an interpreter) into the running call."""

    type: ClassVar[str] = "admit"
    session_id: _SessionId
    participant_id: _ParticipantId


class Remove(Message):
    """The advisor turns away a waiting invited participant or removes one from the call."""

    type: ClassVar[str] = "remove"
    session_id: _SessionId
    participant_id: _ParticipantId


class Resume(Message):
    """After a lost connection: take up the call (or the wait) ``session_id`` again with the
    ``resume_token`` the server gave in ``call_waiting`` or ``call_started``."""

    type: ClassVar[str] = "resume"
    session_id: _SessionId
    token: Annotated[str, Field(min_length=1, max_length=4096)]


class Offer(Message):
    """Session description for the peer connection with participant ``to``."""

    type: ClassVar[str] = "offer"
    session_id: _SessionId
    sdp: _Sdp
    #: The participant it is for (every call is a mesh of pairs); None: the one other party.
    to: _ParticipantId | None = None
    sender: str | None = None  # filled in by the server when relaying
    #: A new peer connection that replaces the one the sender had with the receiver (after a
    #: path that did not heal; aiortc cannot restart ICE on an existing connection).
    restart: bool | None = None


class Answer(Message):
    """Session description for the peer connection with participant ``to``."""

    type: ClassVar[str] = "answer"
    session_id: _SessionId
    sdp: _Sdp
    #: The participant it is for (every call is a mesh of pairs); None: the one other party.
    to: _ParticipantId | None = None
    sender: str | None = None


class IceCandidate(Message):
    """A trickled candidate; ``candidate`` None means end of candidates."""

    type: ClassVar[str] = "ice_candidate"
    session_id: _SessionId
    candidate: Annotated[str, Field(max_length=1024)] | None = None
    sdp_mid: Annotated[str, Field(max_length=32)] | None = None
    sdp_mline_index: Annotated[int, Field(ge=0, le=64)] | None = None
    to: _ParticipantId | None = None
    sender: str | None = None


class HangupReason(StrEnum):
    """Why a call (or a wait) ended, as ``hangup`` messages and the booth's screens say it.

    ``Hangup.reason`` stays a free string on the wire (a newer peer may send a reason this
    version does not know); these are the ones in use. A member compares equal to its string.
    """

    #: The booth's end button, or a hang-up with no reason given.
    HANGUP = "hangup"
    ADVISOR_HANGUP = "advisor_hangup"
    CITIZEN_HANGUP = "citizen_hangup"
    #: The caller withdrew while waiting.
    CANCELLED = "cancelled"
    #: The advisor removed a guest from the call.
    REMOVED = "removed"
    PEER_DISCONNECTED = "peer_disconnected"
    #: The connection stayed broken past the reconnect limit, or could not be resumed.
    CONNECTION_LOST = "connection_lost"
    CONNECTION_FAILED = "connection_failed"
    #: The request could not be sent: the server was not reachable (the booth's own reason).
    SERVER_UNREACHABLE = "server_unreachable"
    #: The booth's media could not go on (no camera, an answer it cannot use).
    CALL_ERROR = "call_error"
    BOOTH_SHUTDOWN = "booth_shutdown"
    #: The call started after the booth had already left the wait.
    GONE = "gone"
    #: The visit ended otherwise (a timeout, the citizen walked away).
    ENDED = "ended"
    #: A new call replaced the one still running.
    REPLACED = "replaced"


class Hangup(Message):
    type: ClassVar[str] = "hangup"
    session_id: _SessionId
    reason: _ShortText = HangupReason.HANGUP


class Chat(Message):
    """A text message within a call; it lives in the server's memory for the call only."""

    type: ClassVar[str] = "chat"
    session_id: _SessionId
    text: Annotated[str, Field(min_length=1, max_length=MAX_CHAT_CHARS)]
    # Filled in by the server when relaying:
    sender: str | None = None
    sender_name: str | None = None
    sent_at: datetime | None = None


class MediaDirection(BaseModel):
    """Figures for one direction of a call's video, as the booth measured them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bitrate_kbps: Annotated[float, Field(ge=0, le=1e6)] | None = None
    fps: Annotated[float, Field(ge=0, le=1000)] | None = None
    width: Annotated[int, Field(ge=0, le=10_000)] | None = None
    height: Annotated[int, Field(ge=0, le=10_000)] | None = None
    loss_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    rtt_ms: Annotated[float, Field(ge=0, le=1e6)] | None = None
    jitter_ms: Annotated[float, Field(ge=0, le=1e6)] | None = None


class CallStats(Message):
    """Live call statistics, sampled every few seconds, relayed to the other participants."""

    type: ClassVar[str] = "call_stats"
    session_id: _SessionId
    sent: MediaDirection
    received: MediaDirection
    sender: str | None = None


class BoothHealth(BaseModel):
    """What a booth reports of itself with its heartbeat: figures and self-test results only."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    #: The booth's software version ("unknown" when it is not installed as a package).
    version: Annotated[str, Field(min_length=1, max_length=64)]
    uptime_seconds: Annotated[float, Field(ge=0, le=10 * 365 * 86_400, allow_inf_nan=False)]
    cpu_temperature_c: Annotated[float, Field(ge=-60, le=150, allow_inf_nan=False)] | None = None
    load_1m: Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)] | None = None
    disk_free_mb: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] | None = None
    #: The last self-test of each device; None: not tested yet (or no such device).
    camera_ok: bool | None = None
    microphone_ok: bool | None = None
    speaker_ok: bool | None = None
    #: Round trip to the server as the booth last measured it.
    server_rtt_ms: Annotated[float, Field(ge=0, le=600_000, allow_inf_nan=False)] | None = None
    #: The booth's flow state (idle, in_call, out_of_service, ...).
    state: Annotated[str, Field(min_length=1, max_length=32)]
    # Added later, so optional: a booth that predates them sends none.
    #: The pin driver of the buttons and lights: "lgpio", "rpigpio", "native", "mock", or
    #: "none" when no driver drives them.
    pin_driver: (
        Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[a-z0-9]+$")] | None
    ) = None
    #: Whether every configured light's line read back as driven; None: no light configured.
    lights_ok: bool | None = None
    #: Whether the booth's clock is synchronised (a Pi has no real-time clock).
    clock_synchronised: bool | None = None
    #: Why the configured microphone or loudspeaker does not open (ALSA), for the technician.
    audio_problem: Annotated[str, Field(max_length=500)] | None = None
    #: The root slot it runs from ("A" or "B"), and whether that slot is marked good (it
    #: passed its start after an update); None where the booth has no A/B slots.
    slot: Literal["A", "B"] | None = None
    slot_good: bool | None = None


class Heartbeat(Message):
    """Sent by clients every few seconds; a booth adds its state and its health."""

    type: ClassVar[str] = "heartbeat"
    state: _ShortText | None = None
    health: BoothHealth | None = None


#: What an administrator can ask a booth to do (see :class:`BoothCommand`).
BoothCommandName = Literal["out_of_service", "in_service", "restart", "self_test"]
_CommandId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class CommandResult(Message):
    """A booth's answer to a :class:`BoothCommand`."""

    type: ClassVar[str] = "command_result"
    command_id: _CommandId
    ok: bool
    detail: Annotated[str, Field(max_length=500)] = ""


#: How far a booth got with an update it was offered (see :class:`UpdateOffer`).
UpdatePhase = Literal["waiting", "downloading", "installing", "rebooting", "failed"]
_RolloutId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
_Version = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+~:-]*$")
]


class UpdateProgress(Message):
    """A booth's progress with the update of a rollout (only booths send it)."""

    type: ClassVar[str] = "update_progress"
    rollout_id: _RolloutId
    phase: UpdatePhase
    percent: Annotated[int, Field(ge=0, le=100)] = 0
    detail: Annotated[str, Field(max_length=500)] = ""


# ---------------------------------------------------------------- server -> client


class Welcome(Message):
    type: ClassVar[str] = "welcome"
    participant_id: str
    role: Role
    name: str
    heartbeat_seconds: float
    #: How long a call waits for a participant whose connection was lost (0: it does not).
    resume_grace_seconds: float = 0.0


class WaitingCall(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    session_id: str
    caller_id: str
    caller_name: str
    caller_role: Role
    #: Set for a citizen or booth in an appointment's lobby; None for a walk-in.
    appointment_id: str | None = None
    topic_id: str | None = None
    topic_name: str | None = None
    region: str | None = None
    waiting_since: datetime


class Queue(Message):
    """The calls waiting for an advisor that this advisor may take, oldest first: the whole list,
    sent when the advisor connects or resumes. Changes follow as :class:`QueueChanged`."""

    type: ClassVar[str] = "queue"
    waiting: list[WaitingCall]


class QueueChanged(Message):
    """What changed in the advisor's queue since the last ``queue`` or ``queue_changed``: calls
    that joined it or whose description changed (``upsert``, by ``session_id``) and calls that
    left it (``remove``: taken, cancelled, ended). Applying a change twice changes nothing, and
    an id the client does not know is ignored. Only changes travel, so an update costs the same
    whether one or five hundred calls wait."""

    type: ClassVar[str] = "queue_changed"
    upsert: list[WaitingCall] = []
    remove: list[str] = []


class Resumed(Message):
    """The answer to :class:`Resume`: the participant is back in ``session_id`` under its
    old ``participant_id``; ``peers`` are the others known now, ``away`` those of them whose
    connection is lost for the moment."""

    type: ClassVar[str] = "resumed"
    session_id: str
    participant_id: str
    active: bool
    peers: list[Peer] = []
    away: list[str] = []
    #: Fresh relay credentials, for a peer connection made anew after the resume.
    ice_servers: list[IceServer] = []


class ParticipantAway(Message):
    """Someone's signalling connection dropped; the call waits for them to come back."""

    type: ClassVar[str] = "participant_away"
    session_id: str
    participant_id: str


class ParticipantBack(Message):
    """Someone who was away is connected again (same participant id)."""

    type: ClassVar[str] = "participant_back"
    session_id: str
    participant_id: str


class CallWaiting(Message):
    """A booth's request is queued."""

    type: ClassVar[str] = "call_waiting"
    session_id: str
    #: Keep it: after a lost connection it takes the wait up again (see :class:`Resume`).
    resume_token: str | None = None


class QueuePosition(Message):
    """Where a waiting walk-in stands: 1 is next. The estimate comes from recent waits."""

    type: ClassVar[str] = "queue_position"
    session_id: str
    position: int
    estimated_wait_seconds: int


class CallStarted(Message):
    """You are in the call: start WebRTC. The ``offerer`` sends the offer to ``peer``.

    ``peers`` is everyone already in the call (``peer`` among them); a participant who joins
    a running call is never the offerer: each one already there offers to it.
    """

    type: ClassVar[str] = "call_started"
    session_id: str
    offerer: bool
    ice_servers: list[IceServer]
    ice_transport_policy: IceTransportPolicy
    peer: Peer
    peers: list[Peer] = []
    #: Keep it: after a lost connection (or a restart of the server) it takes the call up
    #: again (see :class:`Resume`).
    resume_token: str | None = None


class ParticipantWaiting(Message):
    """To the advisor: someone opened the call's invitation link and waits to be admitted."""

    type: ClassVar[str] = "participant_waiting"
    session_id: str
    peer: Peer


class ParticipantJoined(Message):
    """A participant was admitted to the running call: send it an offer."""

    type: ClassVar[str] = "participant_joined"
    session_id: str
    peer: Peer


class ParticipantLeft(Message):
    """A participant left the call (or stopped waiting to join it): close its connection."""

    type: ClassVar[str] = "participant_left"
    session_id: str
    participant_id: str
    reason: str


class BoothCommand(Message):
    """To a booth: an administrator's command; the booth answers with a
    :class:`CommandResult` naming ``command_id``."""

    type: ClassVar[str] = "booth_command"
    command: BoothCommandName
    command_id: _CommandId


class UpdateOffer(Message):
    """To a booth: install ``version`` (rollout ``rollout_id``) when idle inside its
    maintenance window. The bundle is at ``path`` on this server (the booth logs in for each
    request, in ranges); ``size`` and ``sha256`` are what it must be."""

    type: ClassVar[str] = "update_offer"
    rollout_id: _RolloutId
    version: _Version
    path: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^/api/v1/[A-Za-z0-9/_-]+$")]
    size: Annotated[int, Field(ge=1, le=1 << 40)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    #: When the booth may install (its branch's window, in ``timezone``): it checks again
    #: before it installs, as a visit or the night may have begun since.
    window: Annotated[str, Field(pattern=r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$")] = "0:00-0:00"
    timezone: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9/_+-]+$")] = (
        "UTC"
    )


class UpdateWithdrawn(Message):
    """To a booth: the rollout was paused or cancelled; stop unless already installing."""

    type: ClassVar[str] = "update_withdrawn"
    rollout_id: _RolloutId


class Error(Message):
    type: ClassVar[str] = "error"
    code: ErrorCode
    message: str
    ref: str | None = None


CLIENT_MESSAGES: dict[str, type[Message]] = {
    m.type: m
    for m in (
        CallRequest,
        LobbyJoin,
        AppointmentJoin,
        CallCancel,
        CallAccept,
        Admit,
        Remove,
        Offer,
        Answer,
        IceCandidate,
        Hangup,
        Chat,
        CallStats,
        Heartbeat,
        CommandResult,
        Resume,
        UpdateProgress,
    )
}
SERVER_MESSAGES: dict[str, type[Message]] = {
    m.type: m
    for m in (
        Welcome,
        Queue,
        QueueChanged,
        CallWaiting,
        QueuePosition,
        CallStarted,
        ParticipantWaiting,
        ParticipantJoined,
        ParticipantLeft,
        ParticipantAway,
        ParticipantBack,
        Resumed,
        Offer,
        Answer,
        IceCandidate,
        Hangup,
        Chat,
        CallStats,
        Heartbeat,
        BoothCommand,
        UpdateOffer,
        UpdateWithdrawn,
        Error,
    )
}


def encode(message: Message) -> str:
    """The JSON text of ``message`` with its ``type``; None-valued optional fields are left out."""
    data = message.model_dump(mode="json", exclude_none=True)
    data["type"] = message.type
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def decode(raw: str | bytes, registry: dict[str, type[Message]]) -> Message:
    """Parse one frame strictly against ``registry``; raise :class:`ProtocolError` otherwise."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"message of {size} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes",
        )
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"not valid JSON: {exc}") from exc
    except RecursionError:
        # Thousands of nested brackets fit in one frame: a bad message, not a server fault.
        raise ProtocolError(ErrorCode.BAD_JSON, "not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.NOT_AN_OBJECT, "a message must be a JSON object")
    version = data.pop("v", None)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version {version!r} is not supported (expected {PROTOCOL_VERSION})",
        )
    kind = data.pop("type", None)
    model = registry.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind!r}")
    try:
        # Validate from JSON text so that strict mode still reads ISO dates and the like.
        return model.model_validate_json(json.dumps(data))
    except RecursionError:
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE, f"invalid {kind} message: nested too deeply"
        ) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or kind
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE, f"invalid {kind} message: {where}: {first['msg']}"
        ) from exc


def decode_client(raw: str | bytes) -> Message:
    """Parse a frame a client sent to the server."""
    return decode(raw, CLIENT_MESSAGES)


def decode_server(raw: str | bytes) -> Message:
    """Parse a frame the server sent to a client."""
    return decode(raw, SERVER_MESSAGES)
