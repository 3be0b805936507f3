"""Start-up costs: ``import tinynet``; the first training step with a cold and a warm kernel cache.

Each measurement runs in a fresh subprocess (so nothing is already imported
or compiled); the median over repeats is reported. "Cold" points Numba's
cache at an empty temporary directory (``NUMBA_CACHE_DIR``), so every kernel
the step needs is compiled; "warm" reuses that directory, so they are loaded
from disk. ``import numba`` is timed alongside as the floor.

    python -m benchmarks startup [--quick] [--repeats 3]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .report import benchmark_main, markdown_table, positive_int

REPO = Path(__file__).resolve().parents[1]

_IMPORT = """
import time, json
t0 = time.perf_counter()
import {module}
print(json.dumps({{"seconds": time.perf_counter() - t0}}))
"""

_FIRST_STEP = """
import time, json, sys
t0 = time.perf_counter()
import numpy as np
import tinynet as tn
model = tn.Sequential([tn.layers.Dense(256, activation="relu", input_dim=784),
                       tn.layers.Dense(128, activation="relu"), tn.layers.Dense(10)])
model.compile(optimizer="adam", loss="cross_entropy")
rng = np.random.default_rng(0)
x = rng.random((128, 784), dtype=np.float32)
y = rng.integers(0, 10, 128)
model.fit(x, y, epochs=1, batch_size=128, verbose=0)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def _run(code, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["compile_message"] = "tinynet: compiling kernels" in proc.stderr
    return result


def _fmt(seconds, unit_digits=2):
    return "skipped (--quick)" if seconds is None else f"{seconds:.{unit_digits}f} s"


def run(repeats=3, quick=False, log=print) -> dict:
    res = {}
    for module in ("numba", "tinynet"):
        times = [_run(_IMPORT.format(module=module))["seconds"] for _ in range(repeats)]
        res[f"import_{module}"] = statistics.median(times)
        log(f"import {module}: {res[f'import_{module}']:.3f} s")
    cold, warm, message = [], [], []
    if quick:  # smoke test: no cold compile (tens of seconds); the default cache
        res["first_step_warm"] = _run(_FIRST_STEP)["seconds"]
        res["first_step_cold"], res["compile_message_shown"] = None, None
        log(f"first training step (default cache): {res['first_step_warm']:.2f} s")
        return res
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            env = {"NUMBA_CACHE_DIR": cache}
            first = _run(_FIRST_STEP, env)
            cold.append(first["seconds"])
            message.append(first["compile_message"])
            for _ in range(repeats):
                warm.append(_run(_FIRST_STEP, env)["seconds"])
    res["first_step_cold"] = statistics.median(cold)
    res["first_step_warm"] = statistics.median(warm)
    res["compile_message_shown"] = all(message)
    res["cold_runs"], res["warm_runs"] = cold, warm
    log(f"first training step: cold cache {res['first_step_cold']:.1f} s "
        f"(message shown: {res['compile_message_shown']}), warm {res['first_step_warm']:.2f} s")
    return res


def to_markdown(res) -> str:
    rows = [["import numba (floor)", f"{res['import_numba']:.2f} s", "-"],
            ["import tinynet", f"{res['import_tinynet']:.2f} s", "≤ 0.6 s"],
            ["first training step, warm kernel cache", _fmt(res["first_step_warm"]),
             "≤ 1.5 s"],
            ["first training step, cold kernel cache", _fmt(res["first_step_cold"], 1),
             "≤ 30 s"]]
    return ("## Start-up\n\nFresh subprocess per measurement; the first step is "
            "`import tinynet` + build + compile + `fit` of one batch of 128 on the MLP "
            "784-256-128-10 (Adam, cross-entropy). Compile message shown on a cold cache: "
            f"{ {True: 'yes', False: 'no', None: 'not measured'}[res['compile_message_shown']] }.\n\n"
            + markdown_table(["measure", "time (median)", "target"], rows))


def main(argv=None) -> int:
    def configure(parser):
        parser.add_argument("--repeats", type=positive_int, default=3)
    return benchmark_main("startup", __doc__, argv, configure=configure, to_markdown=to_markdown,
                          run=lambda a: run(repeats=1 if a.quick else a.repeats, quick=a.quick))
