"""tinynet.spinwait and kernels.config.start_pool: the thread pools' idle
workers wait briefly, when tinynet can set it, and the kernels know whether
they do. Each case runs in a fresh interpreter, since the settings are read
once, as OpenBLAS and libgomp load."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_helpers import needs_numba

REPO = Path(__file__).resolve().parents[2]
VARIABLES = ("OPENBLAS_THREAD_TIMEOUT", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY",
             "TINYNET_SHORT_SPIN", "NUMBA_THREADING_LAYER", "TINYNET_GEMM")

REPORT = """
import json, os
{before}
import tinynet
from tinynet.kernels import blas, config
blas.set_gemm("blas")
print(json.dumps({{"timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
                  "spins": os.environ.get("GOMP_SPINCOUNT"),
                  "layer": config.threading_layer(),
                  "brief": config.pools_wait_briefly(),
                  "owns": blas.blas_owns_threads(),
                  "threads": config.num_threads(), "raw": config.raw_num_threads()}}))
"""


def _run(before="", **env):
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    clean.update(NUMBA_NUM_THREADS="2", TINYNET_ADAPTIVE_THREADS="0", **env)
    out = subprocess.run([sys.executable, "-c", REPORT.format(before=before)], cwd=REPO,
                         env=clean, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_numba
def test_import_shortens_both_waits_and_kernels_then_share_the_cores_with_blas():
    r = _run()
    assert r["timeout"] == "16"     # left set: what OpenBLAS read
    assert r["spins"] is None       # removed once Numba's pool had started
    if r["layer"] != "omp":
        pytest.skip(f"Numba's threading layer here is {r['layer']}, not OpenMP")
    assert r["brief"] and not r["owns"] and r["threads"] == r["raw"] == 2


@needs_numba
def test_numpy_loaded_first_keeps_the_one_pool_rule():
    r = _run(before="import numpy")
    assert r["timeout"] is None     # too late for OpenBLAS: not set, not claimed
    assert not r["brief"] and r["owns"] and r["threads"] == 1


@needs_numba
@pytest.mark.parametrize("env", [{"TINYNET_SHORT_SPIN": "0"},
                                 {"TINYNET_SHORT_SPIN": "false"},  # was on: only "0" was off
                                 {"TINYNET_SHORT_SPIN": " Off "},
                                 {"OPENBLAS_THREAD_TIMEOUT": "28"},
                                 {"GOMP_SPINCOUNT": "300000"}])
def test_switch_or_users_own_long_waits_keep_the_one_pool_rule(env):
    r = _run(**env)
    expected = {"TINYNET_SHORT_SPIN": None, "OPENBLAS_THREAD_TIMEOUT": "28",
                "GOMP_SPINCOUNT": "16"}[next(iter(env))]
    assert r["timeout"] == expected  # the user's value untouched; off: nothing set
    assert r["spins"] == env.get("GOMP_SPINCOUNT")
    assert not r["brief"] and r["owns"] and r["threads"] == 1


@needs_numba
def test_users_short_blas_wait_counts_even_with_numpy_loaded_first():
    r = _run(before="import numpy", OPENBLAS_THREAD_TIMEOUT="8")
    if r["layer"] != "omp":
        pytest.skip(f"Numba's threading layer here is {r['layer']}, not OpenMP")
    assert r["timeout"] == "8" and r["brief"] and not r["owns"]
