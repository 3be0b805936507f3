"""Warnings that point at the user's line, however deep in tinynet they are raised.

A fixed ``stacklevel`` names the right line only for the one call path its
author counted: ``tn.load`` reaching a check through three helpers, or a
callback warning from inside ``fit``, put the warning on a line of tinynet
instead of the caller's (and Python's default filter shows a warning once
per such line, so a user's second call site was never told). :func:`warn`
walks the stack out of every module of the ``tinynet`` package (its
kernels included), and of the import machinery importing one, and blames
the first frame outside them, as ``warnings.warn(skip_file_prefixes=...)``
does from Python 3.12.
"""

from __future__ import annotations

import sys
import warnings

__all__ = ["warn"]


def _passed(frame) -> bool:
    """A frame of tinynet, or of the import machinery importing a tinynet module
    (``tn.mtl`` imports its package on first use): walked past."""
    name = frame.f_globals.get("__name__", "")
    return name.partition(".")[0] in ("tinynet", "importlib")


def _internal(frame) -> bool:
    """A frame of the import machinery, which ``warnings.warn`` does not count
    in ``stacklevel`` (its own ``_is_internal_frame``): a warning raised while a
    tinynet module is imported walks past them, counting as warn does."""
    filename = frame.f_code.co_filename
    return "importlib" in filename and "_bootstrap" in filename


def _next_counted(frame):
    frame = frame.f_back
    while frame is not None and _internal(frame):
        frame = frame.f_back
    return frame


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` at the innermost caller outside tinynet
    (under ``python -m tinynet``: its ``__main__``; the outermost frame when every
    frame is tinynet's)."""
    frame, level = _next_counted(sys._getframe(0)), 2  # level 2: warn's caller
    while _passed(frame) and _next_counted(frame) is not None:
        frame, level = _next_counted(frame), level + 1
    warnings.warn(message, category, stacklevel=level)
