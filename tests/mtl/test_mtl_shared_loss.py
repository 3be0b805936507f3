"""One loss instance serving several tasks trains as one instance per task."""

import numpy as np
import pytest

import tinynet as tn
from tinynet.callbacks import Callback
from tinynet.layers import Dense
from tinynet.losses import MSE, CrossEntropy
from tinynet.mtl import HardSharing

WEIGHTINGS = ["equal", "mgda", "mgda_ub", "uncertainty", "gradnorm", "dwa", "pcgrad"]


def model(heads=("a", "b", "r")):
    return HardSharing((6,), trunk=[Dense(5, activation="tanh", seed=1)],
                       heads={t: [Dense(3 if t != "r" else 2, seed=2 + i)]
                              for i, t in enumerate(heads)}, dtype="float64")


def data(rng, n):
    """Three tasks whose labelled samples and weights differ: task "a" has no
    label in the first batch of 5 and weights of its own, "r" other weights and
    NaN targets; "b" is complete and unweighted (CrossEntropy's fused kernel,
    on the numba backend, without class weights)."""
    x = rng.standard_normal((n, 6))
    y = {"a": rng.integers(0, 3, n), "b": rng.integers(0, 3, n),
         "r": rng.standard_normal((n, 2))}
    y["a"][:5] = -1
    y["a"][rng.random(n) < 0.3] = -1
    y["a"][-1] = 1
    mask = {"a": rng.random(n) < 0.8}
    mask["a"][-1] = True
    y["r"][rng.random(n) < 0.3] = np.nan
    y["r"][0] = 0.5
    weights = {"a": rng.random(n) * 3, "r": rng.random(n) + 0.5}
    return x, y, mask, weights


def trained(loss, weighting):
    """(model, fit's history, evaluate's logs) of 3 epochs of batches of 5."""
    rng = np.random.default_rng(0)
    x, y, mask, weights = data(rng, 23)
    val = data(rng, 11)
    m = model()
    m.compile(tn.optim.SGD(lr=0.1), loss=loss, weighting=weighting)
    history = m.fit(x, y, batch_size=5, epochs=3, shuffle=False, seed=0, verbose=0, mask=mask,
                    sample_weight=weights, validation_data=val).history
    return m, history, m.evaluate(*val[:3], batch_size=4, sample_weight=val[3])


@pytest.mark.parametrize("options", [{"label_smoothing": 0.1}, {"weight": [1.0, 2.0, 0.5]}])
@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_a_loss_instance_serving_several_tasks_trains_as_one_instance_per_task(weighting,
                                                                               options):
    # Each task's forward, backward and what its batch counts for (the
    # loss's weight_total, read right after its forward) are its own.
    ce = CrossEntropy(**options)
    shared = trained([ce, ce, MSE()], weighting)
    own = trained([CrossEntropy(**options), CrossEntropy(**options), MSE()], weighting)
    (m1, h1, e1), (m2, h2, e2) = shared, own
    assert m1.loss["a"] is m1.loss["b"]  # the case under test
    assert sorted(h1) == sorted(h2)
    for key in h2:
        np.testing.assert_array_equal(h1[key], h2[key], err_msg=key)
    assert e1 == e2
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(p1.value, p2.value, err_msg=p1.name)
    s1, s2 = m1.get_training_state(), m2.get_training_state()
    assert sorted(s1) == sorted(s2)
    for key in s2:
        np.testing.assert_array_equal(s1[key], s2[key], err_msg=key)
    for p1, p2 in zip(m1.weighting.parameters(), m2.weighting.parameters()):
        np.testing.assert_array_equal(p1.value, p2.value)


class _FirstBatch(Callback):
    def on_train_begin(self, logs=None):
        self.trunk = self.model.parameters()[0].value.copy()

    def on_batch_end(self, batch, logs=None):
        if batch == 0:
            self.alpha = self.model.weighting.last_weights.copy()
            self.moved = np.abs(self.model.parameters()[0].value - self.trunk).max()


@pytest.mark.parametrize("loss", ["cross_entropy", "instance"])
def test_mgda_leaves_out_a_task_absent_from_the_batch_whatever_its_loss_instance(loss):
    # With one CrossEntropy for both tasks, task "a" (no label in the first
    # batch) was read as present: its zero gradient was MGDA's min-norm point
    # (alpha [1, 0]) and the trunk did not move.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 6))
    ya = np.full(8, -1)
    ya[7] = 0
    m = model(("a", "b"))
    m.compile(tn.optim.SGD(lr=0.1), loss=CrossEntropy() if loss == "instance" else loss,
              weighting="mgda")
    first = _FirstBatch()
    m.fit(x, {"a": ya, "b": rng.integers(0, 3, 8)}, batch_size=7, shuffle=False, verbose=0,
          callbacks=[first])
    np.testing.assert_array_equal(first.alpha, [0.0, 1.0])
    assert first.moved > 0


def test_a_model_saved_with_a_shared_loss_instance_loads_and_trains_on_as_it_would(tmp_path):
    # the file keeps one loss a task (loaded as one instance each): the same training
    rng = np.random.default_rng(0)
    x, y, mask, weights = data(rng, 20)
    ce = CrossEntropy(label_smoothing=0.1)
    m = model()
    m.compile("adam", loss=[ce, ce, "mse"], weighting="uncertainty")
    fit = dict(batch_size=5, epochs=2, verbose=0, mask=mask, sample_weight=weights)
    m.fit(x, y, seed=0, **fit)
    loaded = tn.load(m.save(tmp_path / "shared.npz"))
    assert loaded.loss["a"] is not loaded.loss["b"]
    h1, h2 = m.fit(x, y, seed=1, **fit).history, loaded.fit(x, y, seed=1, **fit).history
    assert sorted(h1) == sorted(h2)
    for key in h1:
        np.testing.assert_array_equal(h1[key], h2[key], err_msg=key)
    for p1, p2 in zip(m.optimizer_parameters(), loaded.optimizer_parameters(), strict=True):
        np.testing.assert_array_equal(p1.value, p2.value, err_msg=p1.name)
