"""``python -m ssrobust ...`` is the ``ssrobust`` command."""

import sys

from .cli import main

sys.exit(main())
