"""``python -m tinynet``: the same as the ``tinynet`` command."""

import sys

from .cli import main

sys.exit(main())
