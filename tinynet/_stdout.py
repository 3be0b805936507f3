"""Standard output whose reader may go away: ``tinynet demo core | head -3``.

When ``head`` has read its lines it exits, and the next write to the pipe
fails with ``BrokenPipeError`` (Python ignores SIGPIPE, which would end a C
tool quietly). The ``tinynet`` command printed ``error: [Errno 32] Broken
pipe`` and exited 1, and ``tinynet train ... | head -2`` stopped so at the
end of its first epoch (writing its report) and saved no model.
:class:`ReaderAware` handles it as Python's
documentation advises ("Note on SIGPIPE" of the :mod:`signal` module): the
file descriptor is pointed at ``os.devnull``, so that the rest of the output
-- and the interpreter's last flush at exit -- go nowhere without an error,
and then

* a command whose output is what it makes (``demo``, ``evaluate``, ``info``,
  ``predict`` without ``--out``) stops quietly, as a Unix tool that SIGPIPE
  ends: :class:`ReaderLeft`, which the command turns into exit status
  :data:`READER_LEFT_STATUS`;
* a command whose product is a file and whose output only reports on its
  progress (``train`` and its model, ``predict --out``) carries on without
  the report and exits as it would have: a reader that has seen enough of the
  progress is no reason to throw away the training. (``Ctrl-C`` stops it.)

Only writes to standard output are handled: a broken pipe anywhere else
(the standard error, where ``compile`` reports and warnings go; a socket)
stays an error.

A standard output closed from the start (``tinynet info >&-``: Python makes
``sys.stdout`` None, and ``print`` then writes nothing) has no reader to lose:
the output goes nowhere and every command runs as it would, status 0 on
success (``train --verbose 1`` too, whose progress bar refused a None stream).
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["READER_LEFT_STATUS", "ReaderAware", "ReaderLeft", "exit_with"]

#: The exit status when the reader went away first: a shell reports 128 + 13
#: (SIGPIPE) for a Unix tool that SIGPIPE ends (``set -o pipefail; seq 1e6 | head -1``).
READER_LEFT_STATUS = 141


class ReaderLeft(Exception):
    """Standard output's reader went away while a command whose output is its
    product was writing (not an ``OSError``: nothing that catches those on
    the way may mistake it for a failure to report)."""


class ReaderAware:
    """A text stream (``sys.stdout``) whose writes and flushes survive the
    reader going away: see the module's docstring. ``carry_on`` says whether
    the command goes on without its output (True) or stops (False: the
    write that finds the reader gone raises :class:`ReaderLeft`); everything
    else is the wrapped stream's. ``stream`` None (a closed standard output)
    takes every write and flush and keeps nothing, without stopping."""

    def __init__(self, stream, carry_on: bool = False):
        self.stream = stream
        self.carry_on = carry_on
        # no reader any longer, or none from the start: writes go nowhere
        self.reader_left = stream is None

    def write(self, text: str) -> int:
        if not self.reader_left:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self.reader_left:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def __getattr__(self, name):
        return getattr(self.stream, name)

    def _reader_gone(self) -> None:
        """Point the stream's descriptor at os.devnull, so that what its buffer
        still holds is flushed there at exit; then stop, or carry on without
        output."""
        self.reader_left = True
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # io.StringIO, pytest's capture
            fd = None
        if fd is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, fd)
            finally:
                os.close(devnull)
        if not self.carry_on:
            raise ReaderLeft


def exit_with(status: int):
    """End the process with ``status``, and with :data:`READER_LEFT_STATUS`
    as a Unix tool that SIGPIPE ends, by SIGPIPE itself, as git does: a parent
    process sees the signal (``subprocess`` a return code of -13; a shell 141
    either way), not an exit that only looks like it. SIGPIPE's own action is
    restored first (Python ignores it) and raised in this thread, so that it
    ends the process before the call returns. Where there is no SIGPIPE
    (Windows) it is ``sys.exit(status)``, as for every other status."""
    if status == READER_LEFT_STATUS and hasattr(signal, "SIGPIPE"):
        sys.stderr.flush()  # standard output's buffer goes nowhere: its reader is gone
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.raise_signal(signal.SIGPIPE)
    sys.exit(status)
