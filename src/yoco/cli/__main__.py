"""``python -m yoco.cli``: the ``yoco`` command."""

import sys

from yoco.cli import main

sys.exit(main())
