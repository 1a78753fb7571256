"""What can go wrong while provisioning a card; every message is one line a technician can act on.

ProvisioningError
├── BootConfigError (ValueError)         a setting of booth.toml, a CA file or device file
└── BootPartitionError (OSError)         the card, the image or the tools to reach it
    └── MtoolsMissingError (FileNotFoundError)
"""

from __future__ import annotations


class ProvisioningError(Exception):
    """The root of the provisioning tool's errors."""


class BootConfigError(ProvisioningError, ValueError):
    """A setting cannot be used. ``setting`` names it (``server_url``, ``hardware.call_button``,
    ...) when the problem belongs to one; the message is ``"<setting>: <reason>"``."""

    def __init__(self, reason: str, *, setting: str | None = None) -> None:
        super().__init__(f"{setting}: {reason}" if setting else reason)
        self.reason = reason
        self.setting = setting


class BootPartitionError(ProvisioningError, OSError):
    """The card or image cannot be read or written, or is not a boot partition."""


class MtoolsMissingError(BootPartitionError, FileNotFoundError):
    """Image files need mtools, which is not installed."""
