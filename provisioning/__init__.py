"""The field technician's tool: writes a booth's configuration onto its boot partition.

``videobooth-provision`` (:mod:`provisioning.cli`) checks the settings (:mod:`.bootconfig`) and
writes them to a mounted card or into an image file's FAT partition (:mod:`.fat`).
"""

from provisioning.bootconfig import (
    CA_NAME,
    CONFIG_NAME,
    TEMPLATE_NAME,
    BootConfig,
    DeviceConfig,
    parse_boot_config,
    parse_ca_pem,
    parse_device_config,
    render_boot_config,
)
from provisioning.errors import (
    BootConfigError,
    BootPartitionError,
    MtoolsMissingError,
    ProvisioningError,
)
from provisioning.fat import BootPartition, ImagePartition, MountedPartition, open_partition

__all__ = [
    "CA_NAME",
    "CONFIG_NAME",
    "TEMPLATE_NAME",
    "BootConfig",
    "BootConfigError",
    "BootPartition",
    "BootPartitionError",
    "DeviceConfig",
    "ImagePartition",
    "MountedPartition",
    "MtoolsMissingError",
    "ProvisioningError",
    "open_partition",
    "parse_boot_config",
    "parse_ca_pem",
    "parse_device_config",
    "render_boot_config",
]
