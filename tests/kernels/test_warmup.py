"""warm_up (``tinynet compile``): every kernel build normal use reaches, so
that nothing compiles afterwards -- the threaded builds included, whatever
the thread count of the process that warms up."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kernel_helpers import needs_numba

REPO = Path(__file__).resolve().parents[2]


def _run(code, timeout=600, **env):
    full_env = {**os.environ, "TINYNET_BACKEND": "numba", **env}
    full_env.pop("TINYNET_GEMM", None)  # the default engine choice, "auto"
    full_env.pop("TINYNET_ADAPTIVE_THREADS", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


_BUILDS = """
import json
import tinynet.kernels as k
from tinynet.kernels import config

def builds():
    return {kernel.__name__: (len(kernel.serial.signatures),
                              sorted(map(str, set(kernel.serial.signatures)
                                         - set(kernel.parallel.signatures))),
                              len(kernel.parallel.signatures))
            for kernel in config.PARALLEL_KERNELS if kernel.parallel is not config._probe_kernel}

threads = config.raw_num_threads()
times = k.warm_up(verbose=False, dtypes=("float32",))
print(json.dumps({"threads": threads, "builds": builds(),
                  "probe": len(config._probe_kernel.signatures), "keys": sorted(times)}))
"""


@needs_numba
@pytest.mark.parametrize("threads", ["1", "2"])
def test_warm_up_builds_the_threaded_builds_at_any_thread_count(threads):
    """At 1 thread every kernel runs its serial build, but a later run at 2
    threads runs the threaded ones: warm_up builds the threaded one of every
    parallel kernel for each argument types its serial build met, and the
    pool's probe, whatever Numba's thread count (before, a 1-thread
    ``tinynet compile`` left them to a later run's first large step). (Loads
    from the suite's cache; compiles where that is cold.)"""
    out = _run(_BUILDS, NUMBA_NUM_THREADS=threads)
    assert out["threads"] == int(threads)
    assert out["probe"] == 1 and "thread-pool probe" in out["keys"]
    warmed = {name: serial for name, (serial, _, _) in out["builds"].items() if serial}
    assert len(warmed) >= 20, out["builds"]  # the kernels of every family ran serially
    missing = {name: m for name, (_, m, _) in out["builds"].items() if m}
    assert not missing, f"serial signatures without a threaded build: {missing}"


#: In a fresh process after warm_up: fit / evaluate / predict an MLP and a CNN
#: in float32 on every GEMM engine, at batch 32 (serial builds) and 2048 (over
#: every kernel's threshold: threaded builds), counting Numba compilations.
_WORKLOAD = """
import json
import tinynet as tn  # before NumPy, as the README says: BLAS's threads then sleep soon
import numpy as np
from numba.core import event
from tinynet.kernels import blas, config

compiled = []

class Watch(event.Listener):  # fires on a cache miss only: a load from the cache is silent
    def on_start(self, ev):
        f = getattr(ev.data["dispatcher"], "py_func", None)
        compiled.append(f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', '?')}"
                        f"{tuple(map(str, ev.data['args']))}")

    def on_end(self, ev):
        pass

event.register("numba:compile", Watch())
# the pool's probe runs as usual but never turns threads off (a busy machine
# would otherwise send every kernel to its serial build, and the test could not fail)
config.SLOW_LAUNCH = float("inf")

N, L = 2048, tn.layers
rng = np.random.default_rng(0)
y = rng.integers(0, 64, N)  # 64 classes: the loss crosses its threshold at 1024 rows
x = rng.random((N, 64), dtype=np.float32)
images = rng.random((N, 10, 10, 1), dtype=np.float32)  # 1 channel: F-ordered columns
for engine in ("auto", "numba", "blas"):
    blas.set_gemm(engine)
    mlp = tn.Sequential([L.Dense(512, activation="relu"), L.Dropout(0.2), L.BatchNorm(),
                         L.Dense(256, activation="gelu"), L.LayerNorm(), L.Dense(64)])
    cnn = tn.Sequential([L.Conv2D(8, 3, activation="relu"), L.MaxPool2D(2),
                         L.Conv2D(16, 3, padding="same", activation="relu"),
                         L.MaxPool2D(3, strides=1), L.Flatten(), L.Dense(64)])
    for model, data in ((mlp, x), (cnn, images)):
        model.compile("adam", loss="cross_entropy", metrics=["accuracy"])
        for batch in (32, N):
            model.fit(data[:max(batch, 64)], y[:max(batch, 64)], batch_size=batch, verbose=0,
                      seed=0)
            model.evaluate(data, y, batch_size=batch)
            model.predict(data, batch_size=batch)
threaded = sorted(k.__name__ for k in config.PARALLEL_KERNELS if k.parallel.signatures)
print(json.dumps({"compiled": compiled, "threaded": threaded,
                  "epilogue_threaded": config.pools_wait_briefly()}))
"""


def _cache_files(folder):
    """{path: (size, mtime)} of Numba's index and code files under ``folder``."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in Path(folder).rglob("*") if p.suffix in (".nbi", ".nbc")}


@pytest.mark.slow
@needs_numba
@pytest.mark.skipif(os.environ.get("TINYNET_BACKEND") == "numpy",
                    reason="its processes run the Numba kernels whatever the backend: "
                           "the test command's Numba pass runs it")
def test_after_warm_up_a_fresh_process_compiles_nothing(tmp_path):
    """Slow (1-2 min: compiles every kernel into an empty cache). warm_up in
    one process at 1 thread, then MLP and CNN workloads in another at 2
    threads: the second compiles nothing (no compile event, no cache file
    written), though it runs the threaded builds, which the first never ran."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    _run("import json, tinynet.kernels as k;"
         "print(json.dumps(k.warm_up(verbose=False, dtypes=('float32',))))",
         NUMBA_NUM_THREADS="1", **env)
    before = _cache_files(tmp_path)
    assert before
    out = _run(_WORKLOAD, NUMBA_NUM_THREADS="2", **env)
    assert out["compiled"] == []
    assert _cache_files(tmp_path) == before
    # the workload reached the threaded builds of every family, so the test can fail
    # (the BLAS engine's epilogue runs serially beside BLAS threads that spin long)
    assert {"gemm_nn", "_dense_forward", "_act_grad_bias", "_softmax_ce",
            "_dropout_forward", "_mul", "_maxpool_forward", "_maxpool_backward_tiled",
            "_maxpool_backward", "_col2im", "_bn_forward", "_bn_backward", "_ln_forward",
            "_ln_backward", "_adam"} <= set(out["threaded"]), out["threaded"]
    assert ("_epilogue" in out["threaded"]) == out["epilogue_threaded"]


@pytest.mark.parametrize("dtypes", ["float16", "garbage", ("float32", "int32"), (), None, 5,
                                    [None]])
def test_bad_dtypes_are_refused_before_anything_compiles(dtypes):
    """A bare string was iterated letter by letter ("float16": "f" compiled
    float32, "l" then failed deep in a kernel as int64; "garbage": "g" as
    float128 in Numba's typing), other values failed as they came."""
    from tinynet.kernels.warmup import warm_up
    with pytest.raises(ValueError, match="warm_up expected dtypes among float32, float64"):
        warm_up(verbose=False, dtypes=dtypes)


def test_dtypes_may_be_one_name_or_numpy_types():
    from tinynet.kernels import warmup
    assert warmup._check_dtypes("float64") == ("float64",)
    assert warmup._check_dtypes((np.float32, "float32", np.dtype("float64"))) == (
        "float32", "float64")
