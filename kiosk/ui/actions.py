"""What a display reports besides flow events: the actions the booth carries out itself."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kiosk import flow


class Action(StrEnum):
    """A tap (or key) that is not a step of the flow: the booth acts on it directly."""

    #: Ask for an advisor now (Enter on a keyboard).
    CALL = "call"
    #: The window was closed (development).
    QUIT = "quit"
    #: The citizen's in-call controls.
    MUTE = "mute"
    CAMERA = "camera"
    VOLUME_UP = "volume_up"
    VOLUME_DOWN = "volume_down"
    #: Swap the stage and the tile: the interpreter large, or the advisor again.
    PIN = "pin"
    #: The accessibility mode: say the screen's spoken prompt again.
    REPEAT = "repeat"
    #: Technician mode.
    TONE = "tone"
    NETWORK_CHECK = "network_check"
    RESTART = "restart"


@dataclass(frozen=True)
class PinKey:
    """A key of the technician PIN pad: a digit, ``delete`` or ``ok``. The display collects
    the digits itself (they never reach the booth's log or the flow until ``ok``)."""

    key: str


#: What a touch target stands for besides a flow event.
TargetAction = Action | PinKey

#: What a display reports: a flow event (a tap on a target), or an action.
Input = flow.Event | Action
