"""tinynet's warnings name the user's line, however deep in tinynet they are raised
(a fixed stacklevel pointed into tinynet on every call path but the one counted)."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

import tinynet as tn
from tinynet import _userwarn
from tinynet.layers import Dense


def _caught(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    assert caught, "no warning"
    return caught


def test_warn_skips_every_frame_of_the_tinynet_package():
    # three nested frames of a module named like tinynet's, then this file's
    namespace = {"__name__": "tinynet.fake", "_userwarn": _userwarn}
    exec("def inner():\n    _userwarn.warn('deep', RuntimeWarning)\n"
         "def middle():\n    inner()\n"
         "def outer():\n    middle()\n", namespace)
    [w] = _caught(lambda: namespace["outer"]())
    assert (w.filename, w.category, str(w.message)) == (__file__, RuntimeWarning, "deep")
    # a module merely starting with the letters "tinynet" is the user's own
    user = {"__name__": "tinynet_user", "_userwarn": _userwarn}
    exec("def call():\n    _userwarn.warn('mine')\n", user)
    [w] = _caught(lambda: user["call"]())
    assert w.filename == "<string>" and w.category is UserWarning


def test_warnings_from_load_fit_and_save_name_the_callers_line(tmp_path):
    def heads(**kwargs):
        i = tn.mtl.Input((4,))
        return tn.mtl.Model(i, {"c": Dense(1, seed=1)(i), "val_c": Dense(1, seed=2)(i)},
                            **kwargs)

    with pytest.warns(UserWarning):
        old = heads(_from_file=True)
    old.compile(tn.optim.SGD(lr=0.0), loss="mse")
    path = old.save(tmp_path / "old.npz")
    [w] = _caught(lambda: tn.load(path))          # was tinynet/mtl/graph.py
    assert w.filename == __file__ and "named like the validation logs" in str(w.message)

    x = np.random.default_rng(0).standard_normal((8, 4))
    frozen = tn.Sequential([Dense(2, input_dim=4, trainable=False)])
    frozen.compile("sgd", loss="cross_entropy")
    [w] = _caught(lambda: frozen.fit(x, np.arange(8) % 2, epochs=1, verbose=0))
    assert w.filename == __file__ and "no trainable parameters" in str(w.message)

    model = tn.Sequential([Dense(2, input_dim=4)])
    model.compile("sgd", loss="cross_entropy", metrics=[lambda pred, target: 0.0])
    [w] = _caught(lambda: model.save(tmp_path / "m.npz"))
    assert w.filename == __file__ and "saved by its name only" in str(w.message)

    diverging = tn.Sequential([Dense(1, input_dim=4)])
    diverging.compile(tn.optim.SGD(lr=1e30), loss="mse")
    caught = _caught(lambda: diverging.fit(x * 1e10, np.full((8, 1), 1e30), epochs=3,
                                           verbose=0, callbacks=[tn.callbacks.TerminateOnNaN()]))
    [w] = [w for w in caught if "TerminateOnNaN" in str(w.message)]
    assert w.filename == __file__


def test_a_warning_raised_while_tinynet_imports_a_module_names_the_users_line(tmp_path):
    # tn.mtl imports its package on first use (importlib frames, some of which
    # warnings.warn does not count): the warning named tinynet/mtl/__init__.py
    script = tmp_path / "user.py"
    script.write_text("import warnings\n"
                      "import tinynet as tn\n"
                      "from tinynet.layers.base import Layer\n"
                      "class CrossStitch(Layer):\n"
                      "    pass\n"
                      "with warnings.catch_warnings(record=True) as caught:\n"
                      "    warnings.simplefilter('always')\n"
                      "    tn.mtl\n"
                      "print([(w.filename, w.lineno) for w in caught\n"
                      "       if 'CrossStitch' in str(w.message)])\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == repr([(str(script), 8)])
