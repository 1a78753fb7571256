"""``python -m bench.load``: the server load benchmark."""

import sys

from bench.load import main

sys.exit(main())
