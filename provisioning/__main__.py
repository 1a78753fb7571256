"""``python -m provisioning``: the same as ``videobooth-provision``."""

import sys

from provisioning.cli import main

sys.exit(main())
