"""What a Raspberry Pi booth's boot partition must hold, as ``images/check-boot-files`` reads it
(its REQUIRED list): the test checks each one is enforced."""

from __future__ import annotations

import re
from pathlib import Path

CHECK = Path(__file__).resolve().parents[2] / "images" / "check-boot-files"


def _required() -> tuple[str, ...]:
    block = re.search(r"^REQUIRED=\((.*?)^\)", CHECK.read_text(), re.MULTILINE | re.DOTALL)
    assert block is not None, "images/check-boot-files has no REQUIRED=( ... ) list"
    return tuple(block.group(1).split())


REQUIRED = _required()
