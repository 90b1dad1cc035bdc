"""`python -m prudencial.risk_tools`: see prudencial.risk_tools.cli."""

import sys

from prudencial.risk_tools.cli import main

sys.exit(main())
