"""`python -m carprice.cli`: the same entry point as the `carprice` command."""

import sys

from carprice.cli.main import main

sys.exit(main())
