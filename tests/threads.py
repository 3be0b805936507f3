"""Run pieces of work on threads that switch as often as possible, for the
tests of races (shared registries, counters, sets)."""

import sys
import threading


def errors_in_threads(*works) -> list:
    """Run each of ``works`` (callables) on a thread of its own, all at once,
    with the interpreter switching threads as often as it can, and return the
    ``repr`` of every exception they raised (an empty list: none did)."""
    errors = []

    def run(work):
        try:
            work()
        except Exception as e:  # noqa: BLE001 (returned)
            errors.append(repr(e))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=run, args=(work,)) for work in works]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    return errors
