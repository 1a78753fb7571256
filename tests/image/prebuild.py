"""The image tests' builds, made ahead while other tests run: ``python -m tests.image.prebuild
FOLDER`` makes each of :data:`tests.image.conftest.PREBUILDS` in turn (the first fills the
base root cache the others use) into ``FOLDER/<name>/out``, its log in ``build.log`` and, when
it ended, ``done.json`` (exit status, arguments, seconds). ``FOLDER/pid`` names this process:
a test waiting for a build stops waiting when it is gone.

``./scripts/test`` starts it at the lowest CPU and disk priority: it takes what the other tests
leave, and a build that fails here is made again by the test, which reports why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.image.conftest import BUILD_SECONDS, PREBUILDS, build_lock, command


def main(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pid").write_text(str(os.getpid()))
    for name, arguments in PREBUILDS.items():
        target = folder / name
        target.mkdir(exist_ok=True)
        with build_lock(), (target / "build.log").open("w") as sink:
            started = time.monotonic()
            try:
                returncode = subprocess.run(
                    command(target / "out", arguments),
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    timeout=BUILD_SECONDS,
                    check=False,
                ).returncode
            except subprocess.TimeoutExpired:
                sink.write(f"\nprebuild: not done within {BUILD_SECONDS} s\n")
                returncode = -1
        result = {
            "returncode": returncode,
            "arguments": list(arguments),
            "seconds": time.monotonic() - started,
        }
        written = target / "done.json.new"
        written.write_text(json.dumps(result))
        written.rename(target / "done.json")  # whole or not at all: a test may be reading
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.image.prebuild FOLDER")
    sys.exit(main(Path(sys.argv[1])))
