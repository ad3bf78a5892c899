import sys

from .cli_convert import main

sys.exit(main())
