"""``python -m threadwise``: the same as the ``threadwise`` command."""
import sys

from .cli import main

sys.exit(main())
