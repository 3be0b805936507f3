"""The thread options of the benchmarks: ``--blas-threads N`` (mtl, meta) limits
NumPy's BLAS, tinynet's kernels and PyTorch to N threads, so that tinynet and
its peer run on the same number; ``--threads N`` (train, kernels, fashion)
limits each framework itself, and :func:`require_blas_limit` checks first
that it can.

The BLAS limit goes through threadpoolctl (a dependency of scikit-learn, so
the ``bench`` and ``test`` extras bring it). Without threadpoolctl a run asked
for one BLAS thread would quietly use them all -- CPU times many times too high
on a busy machine, tinynet timed on every core beside a PyTorch held to N -- so
the option is refused instead, with what to install.
"""

from __future__ import annotations

import os


def _need_threadpoolctl(option: str, parser) -> None:
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        parser.error(f"{option} needs threadpoolctl, which is not installed "
                     "(pip install threadpoolctl, or pip install -e '.[bench]')")


def require_blas_limit(n: int, parser, option: str = "--threads") -> None:
    """``parser.error`` (exit status 2) when ``n`` threads are fewer than the
    cores and threadpoolctl, which limits NumPy's BLAS, is missing: the
    benchmark would time tinynet (and scikit-learn) on every BLAS thread beside
    a PyTorch held to ``n``."""
    if n < (os.cpu_count() or 1):
        _need_threadpoolctl(option, parser)


def limit_blas_threads(n: int, parser):
    """Limit NumPy's BLAS, tinynet's parallel kernels (Numba) and PyTorch (when
    installed) to ``n`` threads for the rest of the process, or ``parser.error``
    (exit status 2) when threadpoolctl is missing. ``n`` is the positive
    integer of the ``--blas-threads`` option, whose ``type=``
    (:data:`benchmarks.report.positive_int`) refused anything else when the
    arguments were parsed. Returns threadpoolctl's limits
    (``restore_original_limits()`` undoes the BLAS part)."""
    _need_threadpoolctl("--blas-threads", parser)
    from threadpoolctl import threadpool_limits
    limits = threadpool_limits(n, user_api="blas")
    from tinynet.kernels import set_num_threads
    set_num_threads(n)  # through tinynet, which caches the setting it reads
    try:
        import torch
    except ImportError:
        return limits
    torch.set_num_threads(n)
    return limits
