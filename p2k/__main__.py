"""``python -m p2k``: the same command as the ``p2k`` console script."""

import sys

from p2k.cli.main import main

sys.exit(main())
