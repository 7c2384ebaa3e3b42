"""Warnings about a call, attributed to the line that made it.

A loss's warning is raised several frames below its caller (the registry's wrapper, and on
the autodiff paths torch's ``autograd.Function`` or JAX's ``custom_vjp`` machinery), and how
many depends on the path: a fixed ``stacklevel`` would blame a line of losskit, torch or JAX.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

__all__ = ["warn_caller"]

_LOSSKIT = str(Path(__file__).parents[1])


def _library_frame(filename: str) -> bool:
    if filename.startswith(_LOSSKIT):
        return True
    parts = Path(filename).parts
    return any(lib in parts for lib in ("torch", "jax", "jaxlib", "functools.py")) or filename.startswith("<frozen")


def warn_caller(message: str, category: type[Warning]) -> None:
    """``warnings.warn(message, category)`` at the first frame outside losskit, torch and JAX."""
    frame, level = sys._getframe(1), 2  # stacklevel 2: the caller of warn_caller
    while frame is not None and _library_frame(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
