"""``python -m pipeline`` is ``tf2trt``."""

import sys

from .cli import main

sys.exit(main())
