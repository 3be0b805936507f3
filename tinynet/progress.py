"""Training progress on a terminal or in a log.

:class:`ProgressBar` is the callback ``fit`` adds for ``verbose > 0``:

* ``verbose=1`` and the stream is a terminal (``stream.isatty()``): a live
  bar per epoch, redrawn in place with ``\\r`` at most ``max_rate`` times a
  second, showing batches done / total, the ETA and the running loss and
  metrics; the epoch's final line (with time and validation metrics) stays.
  ``fit`` computes the running metrics only for the batches the bar draws
  (:meth:`ProgressBar.reads_batch_metrics_at`), unless another callback
  reads them after every batch.
* ``verbose=1`` on a non-terminal (a file, a CI log, ``io.StringIO``) or
  ``verbose=2``: one line per epoch.
* ``verbose=0``: nothing (``fit`` does not add the callback).
* ``verbose="auto"`` (Keras' default): 1 (:func:`check_verbose`).

``evaluate`` and ``predict`` show their one pass over the batches the same
way (:class:`PassProgress`), with ``evaluate`` or ``predict`` where ``fit``
shows the epoch; they are silent unless given ``verbose``.

A ``ProgressBar`` passed in ``callbacks`` is the one shown, whatever
``verbose`` says (its own ``verbose`` and ``stream`` apply); ``fit`` adds no
second one.

Example line::

    Epoch 3/10  47/47 [==============================] 0.4s - loss: 0.2817 - accuracy: 0.9202 - val_loss: 0.3012 - val_accuracy: 0.9111

The stream and clock are parameters, so tests drive it with an
``io.StringIO`` (optionally with ``isatty`` returning True) and a fake clock.
"""

from __future__ import annotations

import sys
import time

from .callbacks import Callback, CallbackLines, callback_lines, logged_value
from .checks import check_positive_int, check_verbose
from .layers._checks import check_real

__all__ = ["ProgressBar", "PassProgress", "check_verbose", "format_logs", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """``0.42s``, ``12s``, ``3:05``, ``1:02:03``."""
    if seconds < 10:
        return f"{seconds:.1f}s" if seconds >= 0.05 else f"{seconds * 1000:.0f}ms"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def format_logs(logs: dict) -> str:
    """`` - loss: 0.2817 - accuracy: 0.9202`` (4 decimals; 4 significant
    digits for very large or small numbers); a value that is not a number
    (a string a callback logged) as ``str`` gives it."""
    return "".join(f" - {key}: {_format_value(value)}" for key, value in logs.items())


def _format_value(value) -> str:
    value = logged_value(value)  # a float, or what is not a number as it is
    if not isinstance(value, float):
        return str(value)
    return f"{value:.4g}" if abs(value) >= 1e4 or 0 < abs(value) < 1e-3 else f"{value:.4f}"


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return False


class ProgressBar(Callback):
    """Per-epoch progress (see the module docstring).

    Parameters
    ----------
    verbose : {1, 2}, default 1
        1: live bar on a terminal, one line per epoch elsewhere; 2: one line
        per epoch always. (For silence, leave the bar out.)
    stream : file-like, default sys.stdout (looked up each time training starts)
    width : int, default 30
        Characters of the bar itself.
    max_rate : float > 0, default 10
        Most redraws per second (``math.inf``: every batch).
    clock : callable, default time.monotonic
    """

    def __init__(self, verbose: int = 1, stream=None, width: int = 30,
                 max_rate: float = 10.0, clock=time.monotonic):
        super().__init__()
        self.verbose = check_verbose(verbose, "ProgressBar", levels=(1, 2), auto=False,
                                     hint=" (for silence leave the bar out)")
        self.stream = stream
        self.width = check_positive_int(width, "ProgressBar", "width")
        self.min_interval = 1.0 / check_real(max_rate, "ProgressBar", "max_rate", low=0.0,
                                             low_open=True)
        if not callable(clock):
            raise TypeError(f"ProgressBar expected clock as a callable returning seconds, "
                            f"received {clock!r}")
        self.clock = clock
        self._live = False
        self._epoch_start = 0.0
        self._last_draw = -float("inf")
        self._last_len = 0
        self._epoch_label = ""
        self._done = 0
        self._asked = None  # (batch, _draw_time(batch)) of reads_batch_metrics_at
        self._out = stream

    def on_train_begin(self, logs=None):
        # the stream of this run (self.stream stays as given: a bar used again
        # looks sys.stdout up again)
        self._out = sys.stdout if self.stream is None else self.stream
        if not callable(getattr(self._out, "write", None)):  # not after an epoch's work
            raise TypeError(f"ProgressBar expected stream as a file-like object with a "
                            f"write method (sys.stdout, an open file, io.StringIO), "
                            f"received {type(self._out).__name__} ({self._out!r})"[:200])
        self._live = self.verbose == 1 and _is_tty(self._out)
        # the callbacks' lines on this stream wait for the epoch's line (inside a
        # live bar's they would break it; before a line's they would precede their epoch)
        lines = callback_lines(self.params)
        self._lines = lines if lines.stream is self._out else CallbackLines(self._out)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.clock()
        self._last_draw = -float("inf")
        self._last_len = 0
        self._epoch_label = f"Epoch {epoch + 1}/{self.params.get('epochs', '?')}"
        self._done = 0
        self._asked = None
        self._lines.hold()

    def reads_batch_metrics(self) -> bool:
        # not on every batch: the live bar reads them on the batches it draws
        # (reads_batch_metrics_at), one line per epoch only the epoch's logs
        return self._batch_hooks_beyond(ProgressBar)

    def reads_batch_metrics_at(self, batch: int) -> bool:
        """Whether the live bar draws after ``batch`` (so that ``fit``
        computes the running metrics for the ~``max_rate`` batches a second it
        shows, not for every batch). The answer is kept for this batch's
        :meth:`on_batch_end`, which draws exactly then: the clock is read once
        a batch, whoever asks first."""
        self._asked = (batch, self._draw_time(batch))
        return self._asked[1] is not None

    def _draw_time(self, batch: int):
        """The clock's time if the live bar draws after ``batch``, else None
        (not live; too soon after the last drawing; the epoch's last batch,
        whose full bar the epoch's end draws)."""
        if not self._live:
            return None
        now = self.clock()
        steps = self.params.get("steps") or 0
        if batch + 1 >= steps or now - self._last_draw < self.min_interval:
            return None
        return now

    def on_batch_end(self, batch, logs=None):
        self._done = batch + 1
        asked, self._asked = self._asked, None
        now = asked[1] if asked is not None and asked[0] == batch else self._draw_time(batch)
        if now is None:
            return
        self._last_draw = now
        done, steps = batch + 1, self.params.get("steps") or 0
        elapsed = now - self._epoch_start
        eta = elapsed / done * (steps - done) if steps else 0.0
        self._draw(f"{self._bar(done, steps)} ETA {format_seconds(eta)}"
                   f"{format_logs(logs or {})}")

    def on_epoch_end(self, epoch, logs=None):
        elapsed = format_seconds(self.clock() - self._epoch_start)
        if self._live:
            # _done < steps when training stopped mid-epoch (a NaN loss)
            self._draw(f"{self._bar(self._done, self.params.get('steps') or 0)} {elapsed}"
                       f"{format_logs(logs or {})}")
            self._out.write("\n")
        else:
            self._out.write(f"{self._epoch_label} - {elapsed}{format_logs(logs or {})}\n")
        self._out.flush()
        self._lines.release()  # the callbacks' lines of the epoch, after its line

    def on_train_end(self, logs=None):
        self._lines.say_stop_reason(self.model)  # (unless EarlyStopping(verbose=1) did)

    def _bar(self, done: int, steps: int) -> str:
        digits = len(str(steps))
        filled = int(self.width * done / steps) if steps else self.width
        if filled < self.width:
            bar = "=" * filled + ">" + "." * (self.width - filled - 1)
        else:
            bar = "=" * self.width
        return f"{self._epoch_label}  {done:{digits}d}/{steps} [{bar}]"

    def _draw(self, line: str) -> None:
        # Pad with spaces so a shorter line fully covers the previous one.
        pad = max(self._last_len - len(line), 0)
        self._out.write("\r" + line + " " * pad)
        self._out.flush()
        self._last_len = len(line)


class _PassBar(ProgressBar):
    """A :class:`ProgressBar` of one pass, ``label`` in the epoch's place."""

    def __init__(self, label: str, **kwargs):
        super().__init__(**kwargs)
        self.label = label

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._epoch_label = self.label


class PassProgress:
    """The progress of one pass over ``steps`` batches (``evaluate``'s,
    ``predict``'s), shown as ``fit`` shows an epoch (:class:`ProgressBar`),
    with ``label`` in the epoch's place: at ``verbose=1`` on a terminal a live
    bar, with the running logs, ending in the pass's line; at ``verbose=1``
    elsewhere and at ``verbose=2`` that line alone; nothing at ``verbose=0``
    (:func:`check_verbose`'s values)::

        evaluate  10/10 [==============================] 0.2s - loss: 0.3012 - accuracy: 0.9111
        evaluate - 0.2s - loss: 0.3012 - accuracy: 0.9111
    """

    def __init__(self, verbose: int, steps: int, label: str, stream=None):
        self._bar = None
        if verbose:
            self._bar = _PassBar(label, verbose=verbose, stream=stream)
            self._bar.set_params({"epochs": 1, "steps": steps})
            self._bar.on_train_begin()
            self._bar.on_epoch_begin(0)

    def batch_end(self, batch: int, logs=dict) -> None:
        """After batch ``batch`` (from 0): ``logs()`` gives the running logs,
        called only when the live bar draws (about ``max_rate`` times a second)."""
        if self._bar is not None:
            self._bar.on_batch_end(batch, logs() if self._bar.reads_batch_metrics_at(batch)
                                   else {})

    def end(self, logs=None) -> None:
        """The pass's line, with its final ``logs``."""
        if self._bar is not None:
            self._bar.on_epoch_end(0, logs or {})
