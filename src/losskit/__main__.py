"""``python -m losskit``: the tour of the tutorials' worked examples."""

from ._tour import tour

tour()
