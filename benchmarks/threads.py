"""``--blas-threads N`` of the benchmarks: limit NumPy's BLAS, tinynet's
kernels and PyTorch to N threads, so that tinynet and its peer run on the
same number of threads.

The limit goes through threadpoolctl (a dependency of scikit-learn, so the
``bench`` and ``test`` extras bring it). Without threadpoolctl a run asked for
one BLAS thread would quietly use them all and report CPU times many times too
high on a busy machine, so the option is refused instead, with what to install.
"""

from __future__ import annotations


def limit_blas_threads(n: int, parser):
    """Limit NumPy's BLAS, tinynet's parallel kernels (Numba) and PyTorch (when
    installed) to ``n`` threads for the rest of the process, or ``parser.error``
    (exit status 2) when ``n`` is not positive or threadpoolctl is missing.
    Returns threadpoolctl's limits (``restore_original_limits()`` undoes the
    BLAS part)."""
    if n < 1:
        parser.error(f"--blas-threads expected a positive number of threads, received {n}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        parser.error("--blas-threads needs threadpoolctl, which is not installed "
                     "(pip install threadpoolctl, or pip install -e '.[bench]')")
    limits = threadpool_limits(n, user_api="blas")
    from tinynet.kernels import set_num_threads
    set_num_threads(n)  # through tinynet, which caches the setting it reads
    try:
        import torch
    except ImportError:
        return limits
    torch.set_num_threads(n)
    return limits
