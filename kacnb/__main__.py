"""``python -m kacnb ...``: same as the ``kacnb`` command."""

import sys

from .collection.cli import main

if __name__ == "__main__":
    sys.exit(main())
