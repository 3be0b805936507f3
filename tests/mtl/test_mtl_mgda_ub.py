"""MGDA-UB: MGDA on the gradients of the shared representation (weighting "mgda_ub")."""

import numpy as np
import pytest

import tinynet as tn
from tinynet.layers import Dense
from tinynet.mtl import weighting as wt
from tinynet.mtl.min_norm import min_norm_weights
from tests.mtl.test_mtl_io import ARCHITECTURES, _assert_same_weights, _compiled, _data

LOSSES = {"cls": "cross_entropy", "reg": "mse"}


def _linear_model(seed=0):
    """Z = x W + b (the trunk), then one linear head a task: every gradient by hand."""
    return tn.mtl.HardSharing((5,), trunk=[Dense(4, seed=seed, name="trunk")],
                              heads={"cls": [Dense(3, seed=seed + 1, name="head_cls")],
                                     "reg": [Dense(2, seed=seed + 2, name="head_reg")]},
                              dtype="float64")


def _batch(rng, n=12):
    x = rng.standard_normal((n, 5))
    return x, {"cls": rng.integers(0, 3, n), "reg": rng.standard_normal((n, 2))}


@pytest.mark.parametrize("normalize", ["none", "l2", "loss", "loss+"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mgda_ub_solves_the_min_norm_problem_on_the_representation_gradients(seed, normalize):
    rng = np.random.default_rng(seed)
    x, y = _batch(rng)
    model = _linear_model(seed)
    model.compile(tn.optim.SGD(lr=0.0), loss=LOSSES, weighting=wt.MGDAUB(normalize))
    model.train_step([x], y, {"cls": None, "reg": None}, np.arange(len(x)))
    grads = {p.name: p.grad.copy() for p in model.parameters()}
    # by hand: Z, each task's output gradient (softmax - onehot over n; 2 (y - t) / (n 2))
    layer = {la.name: la for la in model.layers}
    w, b = (p.value for p in layer["trunk"].parameters())
    z = x @ w + b
    (wc, bc), (wr, br) = ([p.value for p in layer[h].parameters()]
                          for h in ("head_cls", "head_reg"))
    logits = z @ wc + bc
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    d_cls = (prob - np.eye(3)[y["cls"]]) / len(x)
    out_reg = z @ wr + br
    d_reg = 2 * (out_reg - y["reg"]) / out_reg.size
    losses = np.array([-np.log(prob[np.arange(len(x)), y["cls"]]).mean(),
                       ((out_reg - y["reg"]) ** 2).mean()])
    dz = np.stack([(d_cls @ wc.T).ravel(), (d_reg @ wr.T).ravel()])
    scaled = dz.copy()
    if normalize in ("l2", "loss+"):
        scaled /= np.linalg.norm(dz, axis=1, keepdims=True)
    if normalize in ("loss", "loss+"):
        scaled /= losses[:, None]
    alpha = min_norm_weights(scaled @ scaled.T)
    np.testing.assert_allclose(model.weighting.last_weights, alpha, rtol=1e-9, atol=1e-12)
    dz_combined = (alpha @ dz).reshape(z.shape)
    by_hand = {"trunk/W": x.T @ dz_combined, "trunk/b": dz_combined.sum(axis=0),
               "head_cls/W": z.T @ d_cls, "head_cls/b": d_cls.sum(axis=0),
               "head_reg/W": z.T @ d_reg, "head_reg/b": d_reg.sum(axis=0)}
    assert sorted(grads) == sorted(by_hand)
    for name, expected in by_hand.items():
        np.testing.assert_allclose(grads[name], expected, rtol=1e-9, atol=1e-13, err_msg=name)


def test_mgda_ub_is_not_mgda_and_runs_one_trunk_backward_a_step():
    # MGDA runs the trunk's backward once per task, MGDA-UB once; their alphas differ
    rng = np.random.default_rng(3)
    x, y = _batch(rng)
    alphas, calls = {}, {}
    for name in ("mgda", "mgda_ub"):
        model = _linear_model(3)
        model.compile(tn.optim.SGD(lr=0.0), loss=LOSSES, weighting=name)
        trunk = model.get_layer("trunk")
        backward = trunk.backward
        calls[name] = 0

        def counted(*args, _backward=backward, _name=name, **kwargs):
            calls[_name] += 1
            return _backward(*args, **kwargs)

        trunk.backward = counted
        model.train_step([x], y, {"cls": None, "reg": None}, np.arange(len(x)))
        alphas[name] = model.weighting.last_weights.copy()
    assert calls == {"mgda": 2, "mgda_ub": 1}
    assert np.abs(alphas["mgda"] - alphas["mgda_ub"]).max() > 1e-3


def test_the_shared_representation_is_the_trunks_output():
    model = ARCHITECTURES["hard"]()  # trunk Dense, BatchNorm, Dropout
    z = model.shared_representation()
    assert z.node.layer is model.layers[2]  # the Dropout, which both heads read
    inp = tn.mtl.Input((4,))
    h = Dense(3, seed=0)(inp)
    shared = Dense(3, seed=1)(h)
    both = tn.mtl.Model(inp, {"a": Dense(1, seed=2)(shared), "b": Dense(1, seed=3)(shared)})
    assert both.shared_representation() is shared


def _skip_model():
    """Head "b" reads the trunk's first layer as well as its output."""
    inp = tn.mtl.Input((4,))
    h = Dense(3, seed=0)(inp)
    top = Dense(3, seed=1)(h)
    return tn.mtl.Model(inp, {"a": Dense(1, seed=2)(top),
                              "b": Dense(1, seed=3)(tn.mtl.Concatenate()([h, top]))})


@pytest.mark.parametrize("name", ["soft", "cross_stitch", "mmoe", "skip"])
def test_a_model_without_a_shared_representation_is_refused_at_compile(name):
    model = _skip_model() if name == "skip" else ARCHITECTURES[name]()
    with pytest.raises(ValueError, match="expected a shared representation for gradients on "
                                         "it \\(MGDA-UB\\).*use 'mgda' there"):
        model.compile("adam", loss="mse", weighting="mgda_ub")
    assert not model.compiled


def test_mgda_ub_training_lowers_every_task_loss():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5))
    y = {"cls": (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0),
         "reg": np.stack([x[:, 2], x[:, 3] - x[:, 4]], axis=1)}
    model = _linear_model(0)
    model.compile(tn.optim.Adam(lr=0.02), loss=LOSSES, weighting="mgda_ub")
    before = model.evaluate(x, y)
    history = model.fit(x, y, epochs=5, batch_size=32, seed=0, verbose=0)
    after = model.evaluate(x, y)
    assert after["cls/loss"] < 0.8 * before["cls/loss"]
    assert after["reg/loss"] < 0.8 * before["reg/loss"]
    weights = np.array([history.history["cls/weight"], history.history["reg/weight"]])
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)


@pytest.mark.parametrize("weighting", ["mgda_ub", lambda: wt.MGDAUB("loss+")])
def test_mgda_ub_resumes_from_a_file_as_an_uninterrupted_run(tmp_path, weighting):
    make = weighting if callable(weighting) else lambda: weighting
    x, y = _data("hard")
    y["reg"][:3] = np.nan  # some batches lack a task
    full = _compiled("hard", make())
    full_history = full.fit(x, y, epochs=4, batch_size=8, verbose=0, seed=9)
    part = _compiled("hard", make())
    part.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=9)
    resumed = tn.load(part.save(tmp_path / "ckpt.npz"))
    assert type(resumed.weighting) is wt.MGDAUB
    assert resumed.weighting.normalize == wt.get(make()).normalize
    rest = resumed.fit(x, y, epochs=4, initial_epoch=2, batch_size=8, verbose=0, seed=9)
    _assert_same_weights(full, resumed)
    assert rest.history["loss"] == full_history.history["loss"][2:]
    state, resumed_state = full.get_training_state(), resumed.get_training_state()
    assert all(np.array_equal(state[k], resumed_state[k]) for k in state)


class _Recomputing:
    """Forget the graph's kept answers before every question: what each step
    computed before they were kept."""

    def __init__(self, model):
        self.model = model
        for name in ("_upstream_nodes", "_nodes_before_parameters"):
            method = getattr(model, name)

            def fresh(*args, _method=method):
                model._upstream, model._leaves = {}, None
                return _method(*args)
            setattr(model, name, fresh)


def test_the_trunks_nodes_are_walked_once_and_training_is_unchanged():
    x, y = _data("hard")
    kept, fresh = _compiled("hard", "mgda_ub"), _compiled("hard", "mgda_ub")
    _Recomputing(fresh)
    z = kept._representation
    assert kept._upstream_nodes(z) is kept._upstream_nodes(z)  # one walk, kept
    histories = [m.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=3).history
                 for m in (kept, fresh)]
    assert histories[0] == histories[1]
    _assert_same_weights(kept, fresh)
    # compiled again (a weighting without a representation, then MGDA-UB): same sets
    before = kept._upstream_nodes(z)
    kept.compile("adam", loss=LOSSES, weighting="equal")
    assert kept._representation is None
    kept.compile("adam", loss=LOSSES, weighting="mgda_ub")
    assert kept._representation is z and kept._upstream_nodes(z) == before
