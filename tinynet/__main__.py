"""``python -m tinynet``: the same as the ``tinynet`` command."""

import sys

from .cli import main

if __name__ == "__main__":  # importing the module (pydoc, doc tools) runs nothing
    sys.exit(main())
