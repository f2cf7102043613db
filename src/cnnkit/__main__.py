"""``python -m cnnkit``: the same as the ``cnnkit`` command."""

import sys

from cnnkit.cli.main import main

sys.exit(main())
