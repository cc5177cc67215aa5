"""``python -m guardian``."""

import sys

from guardian.app.cli import main

sys.exit(main())
