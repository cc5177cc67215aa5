"""``python -m guardian``: the command line → the exit code of ``guardian.app.cli.main``.

The same as the ``guardian`` console script; the tests start guardian this way
(``tests/store_fixture.py``).
"""

import sys

from guardian.app.cli import main

sys.exit(main())
