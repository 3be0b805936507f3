"""The one place that holds tinynet's Numba options.

* ``njit(...)``: Numba's ``njit`` with tinynet's options -- ``cache=True``
  (compiled code is kept on disk, so only the very first run compiles),
  ``fastmath`` *without* ``nnan``/``ninf`` (so NaN and infinity still
  propagate the way NumPy propagates them), ``error_model="numpy"``,
  ``nogil``; ``parallel=True`` where a kernel asks for it. Compilation is
  lazy: nothing compiles at import time.
* Threading layer: OpenMP first (a parallel loop starts in ~5 µs there,
  against 60-76 µs for the ``workqueue`` fallback), unless the user chose a
  layer with ``NUMBA_THREADING_LAYER`` (set but blank counts as unset).
* ``NUMBA_ENABLED`` is False when Numba is missing or ``NUMBA_DISABLE_JIT=1``;
  then every operation runs on its NumPy reference (see ``dispatch``).
* The first time in a process that a tinynet kernel misses the disk cache
  and compiles, one line goes to stderr (:data:`COMPILE_MESSAGE`). Numba
  compiles per kernel and argument types, so this happens again on a later
  run whenever a kernel or a signature not used before is first needed
  (another dtype, the CNN's kernels, the threaded build of a kernel the
  first time a large batch runs; ``tinynet compile`` builds all of these
  ahead, see :mod:`.warmup`): the message says so, it does not promise
  "first run only".
* Stale caches: Numba checks a cached kernel against its own file's time
  stamp only, so a kernel that inlines a function of another kernels file
  (dense.py runs activations.py's row loops) would go on running the old
  code after that file changed. :func:`_drop_stale_cache` hashes every
  kernels file together at import; when the hash differs from the one kept
  beside the cache, it deletes the cache files of the kernels (they then
  compile again once).
* Concurrent compiles: two processes adding to a kernel's cache index at
  once lost one's entries (Numba rewrites the whole index); each kernel's
  cache writes hold a lock file in the cache directory (:mod:`.cachelock`).
* Damaged cache files (cut short, garbage): Numba let the unpickling error
  through and every later run crashed; :mod:`.cachelock` removes such a file
  and the kernel compiles again.
* Thread pools: importing the kernels starts Numba's pool (~10 ms), with a
  short OpenMP spin-wait where tinynet may set one (:func:`start_pool`, and
  :mod:`tinynet.spinwait` for OpenBLAS's); :func:`pools_wait_briefly` tells
  whether the kernels may then run in parallel between BLAS products.
* Adaptive threads: parallel kernels wait for every worker, and on a machine
  shared with busy processes a worker may wait a whole time slice (4-8 ms)
  for a core. :func:`num_threads` therefore probes (at most every 2 s) how
  fast an empty parallel loop returns and answers 1 -- every kernel runs its
  serial build -- while that takes over 0.5 ms
  (``TINYNET_ADAPTIVE_THREADS=0`` turns this off).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
import time

import numpy as np

from tinynet.switches import flag_from_env  # standard library only (see kernels/checks.py)

from .cachelock import guard
from .checks import check_count

__all__ = ["NUMBA_ENABLED", "FASTMATH", "njit", "prange", "num_threads", "raw_num_threads",
           "split_count", "set_num_threads", "threading_layer", "COMPILE_MESSAGE",
           "REDUCE_ROWS", "reduce_blocks"]

#: LLVM fast-math flags: reassociation lets reductions vectorise; no ``nnan``
#: or ``ninf``, so NaN/inf behave as in NumPy.
FASTMATH = frozenset({"nsz", "arcp", "contract", "reassoc"})

COMPILE_MESSAGE = ("tinynet: compiling kernels not yet in the disk cache (once per kernel "
                   "and argument types; later runs load them from the cache) ...")



def _check_thread_env() -> None:
    """Refuse ``NUMBA_NUM_THREADS`` below 1 with an error that names it: Numba
    itself then fails while it is imported ("Number of threads specified must
    be > 0.", from deep in its thread-pool module). A value that is not an
    integer ("abc", "1.5") Numba ignores with a warning, using one thread per
    core; that is left to it."""
    raw = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    try:
        n = int(raw)
    except ValueError:
        return
    if n < 1:
        raise ValueError(f"NUMBA_NUM_THREADS: expected a positive integer (or unset: one "
                         f"thread per core), received {raw!r}")


_check_thread_env()

try:
    import numba
    from numba import prange
    NUMBA_ENABLED = not numba.config.DISABLE_JIT
except ImportError:  # numba is optional: the NumPy references then do everything
    numba = None
    prange = range
    NUMBA_ENABLED = False

_message_shown = False


def check_choice(name, what: str, options) -> str:
    """``name`` lower-cased if it is one of ``options``; else a ValueError
    that names ``what`` was being chosen and lists the options."""
    if not isinstance(name, str) or name.lower() not in options:
        raise ValueError(f"unknown {what} {name!r}; expected one of {', '.join(options)}")
    return name.lower()


def choice_from_env(variable: str, what: str, options, default: str) -> str:
    """The option the environment variable ``variable`` selects (``default``
    when unset or empty); a bad value raises an error that names the variable."""
    name = os.environ.get(variable, "").strip()
    if not name:
        return default
    try:
        return check_choice(name, what, options)
    except ValueError as exc:
        raise ValueError(f"{variable}: {exc}") from None


#: Numba's threading variables; set but blank, each means unset (see _undo_blank).
THREADING_VARIABLES = ("NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY")


def _blank(variable: str) -> bool:
    return variable in os.environ and not os.environ[variable].strip()


def _undo_blank() -> None:
    """Take a blank ``NUMBA_THREADING_LAYER`` as unset: Numba reads it as the
    name of a layer, ``''``, and its first parallel call failed ("The
    threading layer requested '' is unknown to Numba"); blank is how a shell
    or a CI file unsets a variable. Only the value Numba read from it is
    mended (``"default"``, if the user did not set ``numba.config`` otherwise
    before importing tinynet); the environment and every other setting stay
    as they are, so Numba never reloads its configuration over the user's
    (its compiler reloads it when a ``NUMBA_`` variable changed). A blank
    ``NUMBA_THREADING_LAYER_PRIORITY`` (read as ``[]``) gets tinynet's order
    in :func:`_configure_numba`, as an unset one does."""
    if _blank("NUMBA_THREADING_LAYER") and not str(numba.config.THREADING_LAYER).strip():
        numba.config.THREADING_LAYER = "default"


def _configure_numba() -> None:
    if numba is None:
        return
    _undo_blank()
    # The user's explicit choice wins; otherwise prefer OpenMP over TBB.
    if not any(os.environ.get(v, "").strip() for v in THREADING_VARIABLES):
        numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
    from numba.core import event

    class _CompileNotice(event.Listener):
        """Says once on stderr that a tinynet kernel is being compiled."""

        def on_start(self, ev):
            global _message_shown
            dispatcher = (ev.data or {}).get("dispatcher")
            module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
            if not _message_shown and module.startswith("tinynet.kernels"):
                _message_shown = True
                print(COMPILE_MESSAGE, file=sys.stderr, flush=True)

        def on_end(self, ev):
            pass

    event.register("numba:compile", _CompileNotice())


_configure_numba()

#: Beside Numba's cache files: the hash of the kernels' sources they were built from.
SOURCES_STAMP = "tinynet-kernels-sources.sha256"


def _sources_digest(folder: str) -> tuple[str, list]:
    names = sorted(n for n in os.listdir(folder) if n.endswith(".py"))
    digest = hashlib.sha256()
    for name in names:
        with open(os.path.join(folder, name), "rb") as fh:
            digest.update(name.encode() + b"\0" + fh.read() + b"\0")
    return digest.hexdigest(), names


def kernel_cache_dir():
    """The directory of the kernels' Numba cache files (the one Numba picks:
    ``NUMBA_CACHE_DIR``, ``__pycache__`` beside the sources, or the user-wide
    one), or None without Numba or when Numba's locator API says no. Its
    stamp of the sources (:func:`_drop_stale_cache`) and the choices timed
    once per machine (:mod:`.choices`: the GEMM engine, ``auto``'s backends)
    live there too."""
    if numba is None or not NUMBA_ENABLED:
        return None
    try:
        from numba.core.caching import CacheImpl
        for locator_class in CacheImpl._locator_classes:
            locator = locator_class.from_function(_drop_stale_cache, os.path.abspath(__file__))
            if locator is not None:
                return locator.get_cache_path()
    except (ImportError, AttributeError, OSError):
        pass
    return None


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new
    one, never half of one, and no temporary file is left behind. Not
    tinynet.atomic: the kernels are the lowest floor and import nothing of
    tinynet; a cache file needs no fsync."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


#: Hash of every kernels source file, as :func:`_sources_digest` computes it.
SOURCES_DIGEST, _SOURCE_NAMES = _sources_digest(os.path.dirname(os.path.abspath(__file__)))


def _drop_stale_cache() -> None:
    """Delete the kernels' Numba cache files when any kernels source changed
    since they were written (see the module docstring). Housekeeping only: if
    Numba's locator API or the file system says no, the cache is left as
    Numba keeps it."""
    cache_dir = kernel_cache_dir()
    if cache_dir is None:
        return
    try:
        stamp = os.path.join(cache_dir, SOURCES_STAMP)
        if os.path.isfile(stamp):
            # bytes: a damaged stamp (not UTF-8) is just another digest, not an error
            with open(stamp, "rb") as fh:
                if fh.read().strip() == SOURCES_DIGEST.encode():
                    return
        if os.path.isdir(cache_dir):
            stems = tuple(n[:-3] + "." for n in _SOURCE_NAMES)
            for name in os.listdir(cache_dir):
                if name.endswith((".nbi", ".nbc")) and name.startswith(stems):
                    os.remove(os.path.join(cache_dir, name))
        os.makedirs(cache_dir, exist_ok=True)
        write_text_atomic(stamp, SOURCES_DIGEST + "\n")
    except OSError:
        return


_drop_stale_cache()


#: Whether Numba can cache the kernels on disk: it cannot where no directory
#: it would use is writable (NUMBA_CACHE_DIR, __pycache__ beside the sources
#: and the home directory all read-only, as in a locked-down container);
#: ``cache=True`` then made import fail ("no locator available"), so the
#: kernels compile in every process instead, and a warning says so once.
CAN_CACHE = None


def _jit(f, parallel, exact, inline=False):
    global CAN_CACHE
    options = dict(fastmath=False if exact else set(FASTMATH), parallel=parallel,
                   nogil=True, error_model="numpy", inline="always" if inline else "never")
    if CAN_CACHE is not False:
        try:
            jitted = numba.njit(cache=True, **options)(f)
            CAN_CACHE = True
            guard(jitted)  # one process at a time adds to its cache index
            return jitted
        except RuntimeError as exc:
            if "no locator available" not in str(exc):
                raise
            CAN_CACHE = False
            from tinynet._userwarn import warn
            warn("tinynet: Numba finds no writable cache directory (set NUMBA_CACHE_DIR to "
                 "one), so the kernels compile in every process and are not cached",
                 RuntimeWarning)
    return numba.njit(cache=False, **options)(f)


#: Every kernel built with ``njit(parallel=True)``, in the order built
#: (:func:`.warmup.warm_up` compiles their parallel builds).
PARALLEL_KERNELS: list = []


class _SerialOrParallel:
    """A parallel kernel whose last argument is its number of chunks; with one
    chunk it runs a serial build of the same function, so small problems never
    wake the thread pool (whose barrier waits for a descheduled worker on a
    busy machine).

    The two builds are two Numba dispatchers (``.serial``, ``.parallel``),
    each compiled and cached on its own per argument types. The wrappers
    pass 1 chunk below a size threshold or when :func:`num_threads` is 1,
    else up to one per thread; the arguments are of the same types either
    way, so :meth:`compile_parallel` can build the threaded one ahead of time
    for every argument types the serial one has met."""

    def __init__(self, f, exact):
        import types
        serial = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial",
                                    f.__defaults__, f.__closure__)
        # a distinct qualified name gives the serial build its own cache files
        serial.__qualname__ = f.__qualname__ + "_serial"
        serial.__module__ = f.__module__
        self.py_func = f
        self.parallel = _jit(f, True, exact)
        self.serial = _jit(serial, False, exact)
        self.__doc__, self.__name__ = f.__doc__, f.__name__
        PARALLEL_KERNELS.append(self)

    def __call__(self, *args):
        return (self.serial if args[-1] == 1 else self.parallel)(*args)

    def compile_parallel(self) -> None:
        """Compile (or load from the disk cache) the parallel build for each
        argument types the serial build was compiled or loaded for; nothing
        runs. Types built already cost a dictionary look-up."""
        for signature in self.serial.signatures:
            self.parallel.compile(signature)


def njit(fn=None, *, parallel: bool = False, exact: bool = False, inline: bool = False):
    """``numba.njit`` with tinynet's options (identity when Numba is missing).

    ``parallel=True`` kernels take their number of chunks as the last
    argument and run serially when it is 1 (see :class:`_SerialOrParallel`).
    ``exact=True`` turns fast-math off: for kernels that must round every
    operation as their reference does (optimizer updates). ``inline=True``
    inlines a helper into its callers in Numba's IR (``inline="always"``),
    for helpers that LLVM would otherwise leave as a call inside a loop it
    could vectorise; the inlined body takes the caller's fast-math flags, so
    an ``exact`` helper must stay a call.
    """
    if inline and (parallel or exact):
        raise ValueError("njit(inline=True) is for serial helpers with the callers' "
                         "fast-math flags; received parallel or exact as well")

    def wrap(f):
        if numba is None:
            return f
        if parallel:
            return _SerialOrParallel(f, exact)
        return _jit(f, False, exact, inline)
    return wrap(fn) if fn is not None else wrap


#: Re-check how fast the thread pool answers at most this often (seconds).
PROBE_INTERVAL = 2.0
#: A parallel launch slower than this means the workers are not getting a
#: core (other processes busy): run kernels serially until the next probe.
SLOW_LAUNCH = 0.5e-3
#: ``TINYNET_ADAPTIVE_THREADS`` (on unless 0/false/no/off; tinynet.switches).
ADAPTIVE_THREADS = flag_from_env("TINYNET_ADAPTIVE_THREADS", True)
_probe_state = {"checked": -1e9, "responsive": True}


def _probe(out, n_chunks):
    for t in prange(n_chunks):
        out[t] = t


def _pool_responsive() -> bool:
    """Whether an empty parallel loop returns quickly (cached for PROBE_INTERVAL).

    On a machine shared with busy processes a worker thread often waits a
    whole time slice (4-8 ms) to run, and every parallel kernel waits for it;
    serial kernels are then much faster, so we use them.
    """
    now = time.monotonic()
    if now - _probe_state["checked"] < PROBE_INTERVAL:
        return _probe_state["responsive"]
    n = numba.get_num_threads()
    out = np.empty(n, np.int64)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        _probe_kernel(out, n)
        best = min(best, time.perf_counter() - t0)
    _probe_state["checked"] = time.monotonic()
    _probe_state["responsive"] = best < SLOW_LAUNCH
    return _probe_state["responsive"]


def num_threads() -> int:
    """Threads a parallel kernel may use: Numba's setting, or 1 without Numba,
    while BLAS runs the matrix products beside workers that spin long (one
    pool does the hot work: :mod:`.blas`, :func:`pools_wait_briefly`), or
    while the thread pool is slow to answer (see :func:`_pool_responsive`;
    ``TINYNET_ADAPTIVE_THREADS=0`` turns that check off)."""
    if not NUMBA_ENABLED:
        return 1
    n = raw_num_threads()
    if n > 1 and _blas_owns_threads():
        return 1
    if n > 1 and ADAPTIVE_THREADS and not _pool_responsive():
        return 1
    return n


#: Rows per block of a sum over rows. Kernels that sum over rows (the bias
#: gradient, the cross-entropy's loss, LayerNorm's dgamma and dbeta) keep one
#: partial sum per block of this many rows, whatever the number of threads,
#: and add the partials in block order afterwards: the sum then has the same
#: bits on one thread or several. Per-thread partials made training depend
#: on the thread count, which the adaptive check below changes with the load
#: of the machine, so the same ``fit(seed=s)`` could end with other weights.
REDUCE_ROWS = 32


def reduce_blocks(n_rows: int) -> int:
    """Blocks of :data:`REDUCE_ROWS` rows for a sum over ``n_rows`` rows (at
    least 1): the rows of a partials array."""
    return max(1, -(-n_rows // REDUCE_ROWS))


def split_count(n_split: int, work: int, min_work: int) -> int:
    """Chunks for a parallel kernel over ``n_split`` independent pieces (rows,
    samples): 1 -- the serial build -- below ``min_work`` elements of work,
    where waking a second thread costs more than it saves; else up to one
    per thread."""
    return max(1, min(num_threads(), n_split)) if work >= min_work else 1


#: Numba's thread setting as last read, per Python thread (Numba's setting is
#: thread-local): ``{thread id: (monotonic time, n)}``. Reading it costs ~5 µs
#: and the kernels ask several times per layer, so it is re-read at most every
#: THREADS_TTL seconds; :func:`set_num_threads` updates it at once.
_threads_seen: dict = {}
THREADS_TTL = 0.1


def raw_num_threads() -> int:
    """Numba's thread setting (1 without Numba), whatever the pools are doing
    (a change made with ``numba.set_num_threads`` directly is seen within
    :data:`THREADS_TTL` seconds)."""
    if not NUMBA_ENABLED:
        return 1
    key, now = threading.get_ident(), time.monotonic()
    seen = _threads_seen.get(key)
    if seen is None or now - seen[0] >= THREADS_TTL:
        seen = _threads_seen[key] = (now, numba.get_num_threads())
    return seen[1]


def _blas_owns_threads() -> bool:
    from .blas import blas_owns_threads
    return blas_owns_threads()


def set_num_threads(n: int) -> int:
    """Use at most ``n`` threads in the kernels (1: every kernel runs its serial
    build -- the robust choice on a machine shared with other busy processes,
    where a parallel call waits for its descheduled worker). Returns the
    previous number.

    ``n`` is a Python or NumPy integer (anything ``operator.index`` takes);
    a bool or float raises a TypeError, a number below 1 a ValueError."""
    n = check_count(n, "set_num_threads")
    previous = numba.get_num_threads() if NUMBA_ENABLED else 1
    if NUMBA_ENABLED:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        _threads_seen.pop(threading.get_ident(), None)
    return previous


@contextlib.contextmanager
def limit_threads(n: int = 1):
    """Run the block with at most ``n`` BLAS threads (through threadpoolctl,
    when it is installed) and ``n`` kernel threads, restoring both after.

    Yields a dict describing what was limited (``{"threads": n}``, plus
    ``"blas"`` when threadpoolctl is missing). On a busy machine, spinning
    OpenBLAS and Numba pools slow each other down many times over; small
    matrices gain nothing from extra threads anyway. ``n`` is checked as
    :func:`set_num_threads` checks it, before anything is limited.
    """
    n = check_count(n, "limit_threads")
    settings = {"threads": n}
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits
            stack.enter_context(threadpool_limits(n, user_api="blas"))
        except ImportError:
            settings["blas"] = "not limited (threadpoolctl missing)"
        stack.callback(set_num_threads, set_num_threads(n))
        yield settings


def threading_layer() -> str:
    """The layer Numba's parallel kernels run on (``"none"`` without Numba,
    ``"not initialised"`` before the first parallel kernel has run)."""
    if not NUMBA_ENABLED:
        return "none"
    try:
        return numba.threading_layer()
    except ValueError:
        return "not initialised"


#: libgomp's idle workers spin this many times before they sleep, when Numba's
#: pool is started here (libgomp's own default is 300,000; see start_pool).
GOMP_SPINS = 1000
#: OpenBLAS's wait counts as brief up to 2**16 cycles (~30 µs; tinynet.spinwait sets 16).
_BRIEF_BLAS_TIMEOUT = 16
_pool_state = {"brief": False}


def _short_spin_enabled() -> bool:
    """tinynet.spinwait's switch, read by tinynet.spinwait itself (the
    variable's name lives there)."""
    from tinynet.spinwait import enabled  # standard library only, as tinynet.switches
    return enabled()


def _libgomp_loaded() -> bool:
    """Whether a libgomp.so is mapped into this process already (Linux; False
    elsewhere). Vendored copies (``libgomp-<hash>.so``, torch's and
    scikit-learn's) are other libraries with their own settings."""
    try:
        with open("/proc/self/maps") as fh:
            return "/libgomp.so" in fh.read()
    except OSError:
        return False


def start_pool() -> bool:
    """Start Numba's thread pool, with a short OpenMP spin-wait when tinynet
    may choose one; True when the pool's idle workers sleep quickly.

    Sets ``GOMP_SPINCOUNT`` to :data:`GOMP_SPINS` while Numba starts its
    OpenMP pool, unless the user set it or ``OMP_WAIT_POLICY``, or
    ``TINYNET_SHORT_SPIN=0``, and removes it after: libgomp reads it once, as
    it loads, and other OpenMP libraries loaded later keep their default (see
    :mod:`tinynet.spinwait`). The wait is known to be short when the pool is
    libgomp's, started here with the short count (a libgomp loaded before has
    read its settings already) or with the user's passive policy, or when it
    is Numba's ``workqueue``, whose workers sleep at once.
    """
    if not NUMBA_ENABLED:
        return False
    if threading_layer() != "not initialised":  # started before tinynet: its settings stand
        return threading_layer() == "workqueue"
    user_set = "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ
    fresh = not _libgomp_loaded()
    ours = _short_spin_enabled() and not user_set and fresh
    if ours:
        os.environ["GOMP_SPINCOUNT"] = str(GOMP_SPINS)
    try:
        numba.get_num_threads()  # starts the pool
    finally:
        if ours:
            del os.environ["GOMP_SPINCOUNT"]
    layer = threading_layer()
    if layer == "workqueue":
        return True
    try:
        from numba.np.ufunc import omppool
        gnu = getattr(omppool, "openmp_vendor", "") == "GNU"
    except ImportError:
        gnu = False
    passive = os.environ.get("OMP_WAIT_POLICY", "").strip().lower() == "passive"
    return layer == "omp" and gnu and fresh and (ours or passive)


def _blas_waits_briefly() -> bool:
    """Whether NumPy's BLAS is OpenBLAS and was loaded with a short
    ``OPENBLAS_THREAD_TIMEOUT`` (tinynet.spinwait sets it before NumPy loads;
    a variable set after that would be missed, and is read as it stands)."""
    try:
        timeout = int(os.environ.get("OPENBLAS_THREAD_TIMEOUT", ""))
    except ValueError:
        return False
    if timeout > _BRIEF_BLAS_TIMEOUT:
        return False
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except (KeyError, TypeError, ValueError):
        return False
    return "openblas" in str(blas).lower()


def pools_wait_briefly() -> bool:
    """Whether both thread pools' idle workers sleep quickly (OpenBLAS's and
    Numba's; see :mod:`tinynet.spinwait`), as found when the kernels were
    imported: then the Numba kernels run in parallel between BLAS products,
    instead of serially beside BLAS's spinning workers. False with
    ``TINYNET_SHORT_SPIN=0``."""
    return _pool_state["brief"]


_probe_kernel = njit(parallel=True)(_probe).parallel if NUMBA_ENABLED else _probe
_short_spin_enabled()  # a bad value stops the import, as the other switches' (spinwait defers it)
_pool_state["brief"] = (start_pool() and _short_spin_enabled() and _blas_waits_briefly())
