"""The running booth, by job: the core (:class:`Booth`: inbox, flow, lights, run and stop),
the camera that follows the flow, the call's media, the connection keeper, enrolment, remote
commands, technician mode, the accessibility mode's spoken prompts, its health and the status
it reports (:class:`BoothStatus`)."""

from kiosk.booth.camera import CameraFollower, CameraOpener
from kiosk.booth.commands import RemoteCommands, run_self_test
from kiosk.booth.core import Booth
from kiosk.booth.enrolment import Enrolment
from kiosk.booth.health import BoothHealth
from kiosk.booth.keeper import ConnectionKeeper, Recovery, Repair
from kiosk.booth.lights import LIGHTS, BoothLights
from kiosk.booth.media import CallMedia
from kiosk.booth.prompts import SpokenPrompts, prompt_text
from kiosk.booth.service import TechnicianMode
from kiosk.booth.status import BoothStatus

__all__ = [
    "LIGHTS",
    "Booth",
    "BoothHealth",
    "BoothLights",
    "BoothStatus",
    "CallMedia",
    "CameraFollower",
    "CameraOpener",
    "ConnectionKeeper",
    "Enrolment",
    "Recovery",
    "RemoteCommands",
    "Repair",
    "SpokenPrompts",
    "TechnicianMode",
    "prompt_text",
    "run_self_test",
]
