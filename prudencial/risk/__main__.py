"""`python -m prudencial.risk`: see prudencial.risk.cli."""

import sys

from prudencial.risk.cli import main

sys.exit(main())
