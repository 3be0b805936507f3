"""Warnings that point at the user's line, however deep in tinynet they are raised.

A fixed ``stacklevel`` names the right line only for the one call path its
author counted: ``tn.load`` reaching a check through three helpers, or a
callback warning from inside ``fit``, put the warning on a line of tinynet
instead of the caller's (and Python's default filter shows a warning once
per such line, so a user's second call site was never told). :func:`warn`
walks the stack out of every module of the ``tinynet`` package (its
kernels included) and blames the first frame outside it, as
``warnings.warn(skip_file_prefixes=...)`` does from Python 3.12.
"""

from __future__ import annotations

import sys
import warnings

__all__ = ["warn"]


def _ours(frame) -> bool:
    name = frame.f_globals.get("__name__", "")
    return name == "tinynet" or name.startswith("tinynet.")


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` at the innermost caller outside tinynet
    (the outermost tinynet frame when there is none, as under ``python -m tinynet``)."""
    frame, level = sys._getframe(1), 2  # level 2: warn's caller
    while frame.f_back is not None and _ours(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
