"""Choices measured once per machine and kept on disk for every later process.

Two of the kernels' choices are made by timing: which GEMM engine runs the
products (:mod:`.blas`, ``TINYNET_GEMM=auto``) and, per operation and size
class, whether the Numba kernel or the NumPy reference runs
(:mod:`.dispatch`, ``TINYNET_BACKEND=auto``). The implementations round
differently, so a choice made anew in every process, by timings on a busy
machine, makes the same ``fit(seed=s)`` give different weights in different
processes. Each choice is therefore measured once and kept in a small JSON
file beside the kernels' Numba cache::

    {"kernels": <digest of the kernels' sources>,
     "choices": {<machine key, and what was chosen for>: <value>}}

Choices stored for other kernel sources are dropped (a kernel may have
changed). A missing, damaged or stale file is measured again and rewritten
atomically; where the cache directory cannot be written, each process keeps
what it measured for itself.
"""

from __future__ import annotations

import json
import os
import platform

import numpy as np

from .config import SOURCES_DIGEST, kernel_cache_dir, write_text_atomic

__all__ = ["choice_path", "stored_choices", "store_choice", "decide", "machine_key",
           "cpu_model"]


def cpu_model() -> str:
    """The processor's model name (Linux's /proc/cpuinfo), else what
    :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key(threads: int) -> str:
    """What a timed choice depends on: the processor, the cores, Numba's
    threads and NumPy (its BLAS comes with it)."""
    return (f"{cpu_model()}; {os.cpu_count()} cpus; {threads} numba threads; "
            f"numpy {np.__version__}")


def choice_path(file_name: str):
    """``file_name`` in the kernels' cache directory, or None without one."""
    folder = kernel_cache_dir()
    return None if folder is None else os.path.join(folder, file_name)


def stored_choices(path, values) -> dict:
    """The choices in ``path`` for these kernel sources whose value is one of
    ``values``; ``{}`` when the file is missing, unreadable, not the JSON it
    should be, or for other sources."""
    try:
        with open(path) as fh:
            data = json.load(fh)
        if data.get("kernels") == SOURCES_DIGEST and isinstance(data.get("choices"), dict):
            return {k: v for k, v in data["choices"].items() if v in values}
    except (OSError, ValueError, AttributeError, RecursionError):  # any bad file: ignored
        pass
    return {}


def store_choice(path, key: str, value: str, values) -> None:
    """Add (or replace) ``key: value`` in ``path``, keeping its other valid
    choices; silently nothing where the directory cannot be written."""
    choices = {**stored_choices(path, values), key: value}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_text_atomic(path, json.dumps({"kernels": SOURCES_DIGEST, "choices": choices},
                                           indent=1, sort_keys=True) + "\n")
    except OSError:  # a read-only cache: this process keeps its choice for itself
        pass


class _FileLock:
    """An exclusive ``flock`` on ``<path>.lock`` while a choice is read,
    measured and stored, so that processes started together measure one at a
    time and all take the first one's choice (re-reading after measuring only
    narrowed that race). The kernel releases it when its process dies, so a
    killed process leaves no stale lock. Where ``fcntl`` or the directory is
    unavailable it locks nothing."""

    def __init__(self, path):
        self.path, self.fd = f"{path}.lock", None

    def __enter__(self):
        try:
            import fcntl
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            if self.fd is not None:
                os.close(self.fd)
            self.fd = None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
        return False


def decide(path, key: str, measure, values) -> str:
    """The choice for ``key``: the one stored in ``path``, else ``measure()``
    (which returns one of ``values``), stored for later processes. Deciding
    holds a lock on the file (:class:`_FileLock`), so processes started
    together agree: one measures, the others wait and read its choice.
    ``path`` None: measured."""
    if path is None:
        return measure()
    stored = stored_choices(path, values).get(key)
    if stored is not None:
        return stored
    with _FileLock(path):
        stored = stored_choices(path, values).get(key)  # another process's, meanwhile
        if stored is not None:
            return stored
        choice = measure()
        store_choice(path, key, choice, values)
    return choice
