"""``python -m losskit``: the ``losskit`` command (with no arguments, the tour)."""

from .cli import main

raise SystemExit(main())
