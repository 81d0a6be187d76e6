"""`python -m nar ...`: the `nar` command, for environments where the console script is not on PATH."""

import sys

from nar.cli import main

sys.exit(main())
