"""``python -m bench.cluster``: the cluster load benchmark."""

import sys

from bench.cluster import main

sys.exit(main())
