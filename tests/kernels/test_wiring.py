"""The kernels as the default training path: same results as the NumPy references."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinynet as tn
from tinynet.kernels import dispatch
from kernel_helpers import needs_numba

REPO = Path(__file__).resolve().parents[2]


def _train(backend, dtype, activation, optimizer, layers_extra=()):
    with dispatch.use_backend(backend):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((40, 12)).astype(dtype)
        y = rng.integers(0, 3, 40)
        model = tn.Sequential([tn.layers.Dense(16, activation=activation, input_dim=12, seed=1,
                                               dtype=dtype),
                               *layers_extra, tn.layers.Dense(3, seed=2, dtype=dtype)])
        model.compile(optimizer=optimizer, loss="cross_entropy")
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False, seed=0)
        return [w.copy() for w in model.get_weights()], model.predict(x)


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh", "leaky_relu"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop", "adagrad", "adamw"])
def test_numba_and_numpy_backends_train_alike(activation, optimizer):
    w_fast, p_fast = _train("numba", np.float64, activation, optimizer)
    w_ref, p_ref = _train("numpy", np.float64, activation, optimizer)
    for a, b in zip(w_fast, w_ref):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(p_fast, p_ref, rtol=1e-9, atol=1e-11)


def test_backends_agree_with_dropout_and_norms():
    extra = lambda: (tn.layers.BatchNorm(), tn.layers.Dropout(0.3, seed=3),  # noqa: E731
                     tn.layers.LayerNorm(), tn.layers.Sigmoid())
    w_fast, _ = _train("numba", np.float64, "silu", "adam", extra())
    w_ref, _ = _train("numpy", np.float64, "silu", "adam", extra())
    for a, b in zip(w_fast, w_ref):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_float32_training_stays_close():
    w_fast, _ = _train("numba", np.float32, "relu", "adam")
    w_ref, _ = _train("numpy", np.float32, "relu", "adam")
    for a, b in zip(w_fast, w_ref):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_dense_skips_input_gradient_only():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))
    dy = rng.standard_normal((5, 3))
    for backend in ("numba", "numpy"):
        with dispatch.use_backend(backend):
            layer = tn.layers.Dense(3, activation="relu", input_dim=4, seed=0, dtype="float64")
            layer.forward(x, training=True)
            dx = layer.backward(dy)
            grads = [p.grad.copy() for p in layer.parameters()]
            layer.zero_grad()
            assert layer.backward(dy, need_dx=False) is None
            for p, g in zip(layer.parameters(), grads):
                np.testing.assert_allclose(p.grad, g)
            assert dx.shape == x.shape


def test_sequential_skips_what_only_the_input_gradient_needs():
    """need_dx=False: no backward for the leading Reshape, none of Conv2D's
    dL/dx, and the same parameter gradients as a full backward pass."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 36))
    calls = []

    class Spy(tn.layers.Reshape):
        def backward(self, dy):
            calls.append(dy.shape)
            return super().backward(dy)

    model = tn.Sequential([Spy((6, 6, 1)), tn.layers.Conv2D(2, 3, activation="relu", seed=0),
                           tn.layers.Flatten(), tn.layers.Dense(2, seed=1)], dtype="float64")
    model.build((36,))
    dy = rng.standard_normal((3, 2))
    model.forward(x, training=True)
    assert model.backward(dy).shape == x.shape and calls == [(3, 6, 6, 1)]
    grads = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model.forward(x, training=True)
    assert model.backward(dy, need_dx=False) is None and len(calls) == 1
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_array_equal(p.grad, g)
    no_params = tn.Sequential([tn.layers.Flatten()])
    no_params.forward(x, training=True)
    assert no_params.backward(dy[:, :1].repeat(36, 1), need_dx=False) is None


def test_warm_up_without_numba_does_nothing():
    code = "import tinynet.kernels as k; print(k.warm_up(verbose=True))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "NUMBA_DISABLE_JIT": "1"})
    assert proc.returncode == 0 and proc.stdout.strip() == "{}"
    assert "nothing to compile" in proc.stderr


@needs_numba
@pytest.mark.parametrize("variable", ["NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY"])
def test_a_blank_threading_variable_counts_as_unset(variable):
    """NUMBA_THREADING_LAYER= (how a shell or CI file unsets it) made import
    tinynet.kernels fail: "The threading layer requested '' is unknown to
    Numba". Blank is unset: Numba's default layer, tinynet's OpenMP-first
    order, and so still after a compile (Numba re-reads its configuration
    then when a NUMBA_ variable changed)."""
    code = ("import os, numba, numpy as np, tinynet.kernels as k\n"
            "from tinynet.kernels import activations as A\n"
            "before = numba.config.THREADING_LAYER_PRIORITY\n"
            "A.act_forward(np.ones((3, 2)), A.TANH)\n"
            "print(numba.config.THREADING_LAYER, before, numba.config.THREADING_LAYER_PRIORITY,"
            " numba.get_num_threads() > 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, variable: " "})
    assert proc.returncode == 0, proc.stderr
    order = "['omp', 'tbb', 'workqueue']"
    assert proc.stdout.split("\n")[-2] == f"default {order} {order} True"


@needs_numba
def test_a_blank_threading_layer_leaves_the_users_numba_settings_alone():
    # the first mend deleted the variable and reloaded Numba's configuration,
    # which put back every setting the user had made in numba.config
    code = ("import numba, numpy as np\n"
            "numba.config.THREADING_LAYER = 'workqueue'\n"
            "numba.config.NUMBA_NUM_THREADS = 1\n"
            "import tinynet.kernels\n"
            "from tinynet.kernels import activations as A\n"
            "A.act_forward(np.ones((3, 2)), A.TANH)\n"
            "print(numba.config.THREADING_LAYER, numba.config.NUMBA_NUM_THREADS)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "NUMBA_THREADING_LAYER": ""})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[-2] == "workqueue 1"


@needs_numba
def test_kernels_compile_uncached_where_numba_has_no_cache_directory(monkeypatch):
    # with NUMBA_CACHE_DIR, __pycache__ and HOME read-only, njit(cache=True)
    # raised "no locator available" and import tinynet.kernels failed
    import numba
    from tinynet.kernels import config
    real = numba.njit

    def no_locator(*args, cache=False, **kwargs):
        if cache:
            def fail(f):
                raise RuntimeError(f"cannot cache function {f.__name__!r}: no locator "
                                   f"available for file '{f.__code__.co_filename}'")
            return fail
        return real(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", no_locator)
    monkeypatch.setattr(config, "CAN_CACHE", None)

    def add_one(x):
        return x + 1

    # as a kernel module calls it while tinynet imports it
    kernel_module = {"__name__": "tinynet.kernels.fake", "config": config, "f": add_one}
    exec("def build():\n    return config._jit(f, parallel=False, exact=False)\n",
         kernel_module)
    with pytest.warns(RuntimeWarning, match="no writable cache directory") as caught:
        jitted = kernel_module["build"]()
    assert jitted(1.5) == 2.5 and config.CAN_CACHE is False
    assert caught[0].filename == __file__           # the user's line, not the kernels'
    assert caught[0].lineno == sys._getframe().f_lineno - 3


def test_tinynet_imports_only_public_names_of_the_kernels():
    """The layers call the kernels (DESIGN.md's floors) through their public
    names: the normalization layers imported the private _standardise_ref."""
    import ast
    private = []
    for path in sorted((REPO / "tinynet").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                into_kernels = (node.level and module.split(".")[0] == "kernels") or \
                    module.startswith("tinynet.kernels")
                private += [f"{path.name}: {module}.{alias.name}" for alias in node.names
                            if into_kernels and alias.name.startswith("_")]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and \
                    "kernels" in ast.unparse(node.value).split("."):
                private.append(f"{path.name}: {ast.unparse(node)}")
    assert private == []
