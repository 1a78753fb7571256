"""The booth's errors: one root, each also the built-in it has always been.

Exception tree::

    BoothError
    ├── BoothConfigError (ValueError)          booth.toml cannot be used; the message says where
    ├── CallError (RuntimeError)               the call cannot go on
    ├── SourceError (RuntimeError)             the camera cannot be used
    ├── EncoderError (RuntimeError)            a video encoder (H.264, VP8) failed
    ├── AudioError                             a microphone or loudspeaker problem
    │   ├── AudioDeviceError (OSError)
    │   │   └── AlsaConfigError
    │   └── AudioFileError (OSError)
    ├── HardwareError (RuntimeError)           buttons and lights
    │   └── PinDriverError
    ├── EnrolmentRefusedError                  the server refused the enrolment token
    ├── ServerNotFoundError                    no Videobooth server at the configured address
    └── IdentityError                          the stored identity cannot be used

Each class lives with the code that raises it; catching :class:`BoothError` catches them all.
"""

from __future__ import annotations


class BoothError(Exception):
    """Root of every error the booth raises on purpose."""
