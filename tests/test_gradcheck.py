"""tn.gradcheck: passes correct gradients, catches wrong ones, leaves the
checked object alone, and reports clearly."""

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.gradcheck import relative_error
from tinynet.layers import activations

L = tn.layers


# --------------------------------------------------------- test-local targets
class Square(L.Layer):
    """y = x**2 with a switchable bug in its backward (forgets the factor 2)."""

    def __init__(self, buggy=False, **kwargs):
        self.buggy = buggy
        super().__init__(**kwargs)

    def forward(self, x, training=False):
        self._x = self._prepare_input(x)
        return self._x ** 2

    def backward(self, dy):
        return dy * self._x if self.buggy else 2 * dy * self._x


class Scale(L.Layer):
    """y = x * w with a per-feature w; the buggy version drops x from dw."""

    def __init__(self, buggy=False, **kwargs):
        self.buggy = buggy
        super().__init__(**kwargs)

    def _build(self, input_shape, rng):
        self.w = self.add_param("w", rng.uniform(0.5, 1.5, input_shape))

    def forward(self, x, training=False):
        self._x = self._prepare_input(x)
        return self._x * self.w.value

    def backward(self, dy):
        self.w.grad += dy.sum(0) if self.buggy else (dy * self._x).sum(0)
        return dy * self.w.value


class Product:
    """A two-input 'model': y = a * b (anything with forward/backward/parameters)."""

    def parameters(self):
        return []

    def forward(self, inputs, training=False):
        self._a, self._b = inputs
        return self._a * self._b

    def backward(self, dy):
        return [dy * self._b, dy * self._a]


class HalfSquaredError:
    """A loss: mean over the batch of 0.5 * ||pred - target||^2."""

    def __init__(self, buggy=False):
        self.buggy = buggy

    def forward(self, pred, target):
        self._diff, self._n = pred - target, len(pred)
        return float(0.5 * np.sum(self._diff ** 2) / self._n)

    def backward(self):
        return self._diff if self.buggy else self._diff / self._n


# ------------------------------------------------------------------- passing
@given(batch=st.integers(1, 4), width=st.integers(1, 4), seed=st.integers(0, 2**32 - 1),
       activation=st.sampled_from(sorted(activations.ACTIVATIONS)))
@example(batch=3, width=2, seed=2795, activation="relu")  # LayerNorm bends within 2e-4
def test_passes_correct_layers(batch, width, seed, activation):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, width)) * 2
    for target, training in [(L.Dense(3, activation=activation, seed=seed), False),
                             # training needs 2 values per feature (else it raises)
                             (L.BatchNorm(), batch > 1), (L.LayerNorm(), False),
                             (L.Dropout(0.5, seed=seed), True)]:
        target.build((width,))
        if isinstance(target, L.Dense) and activation in ("relu", "leaky_relu"):
            # a difference across a kink is no derivative: with one sample and
            # one feature, seed 1526869 put a pre-activation 8e-8 from 0
            z = x @ target.parameters()[0].value + target.parameters()[1].value
            assume(np.abs(z).min() > 1e-3)
        result = tn.gradcheck(target, x, training=training, seed=seed)
        assert result.passed, str(result)
        expected = {"x", *(p.name for p in target.parameters())}
        assert set(result.errors) == expected


def test_passes_a_loss_and_a_model_with_a_loss():
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    result = tn.gradcheck(HalfSquaredError(), pred, target)
    assert result.passed and set(result.errors) == {"pred"}
    labels = rng.integers(0, 3, 5)
    assert tn.gradcheck(tn.losses.CrossEntropy(), pred, labels).passed
    model = tn.Sequential([L.Dense(4, activation="gelu", input_dim=2), L.BatchNorm(),
                           L.Dropout(0.3), L.Dense(3)])
    result = tn.gradcheck(model, rng.standard_normal((6, 2)), rng.integers(0, 3, 6),
                          loss=tn.losses.CrossEntropy(), training=True)
    assert result.passed, str(result)
    assert len(result.errors) == 1 + len(model.parameters())


def test_several_inputs_are_checked_each():
    rng = np.random.default_rng(1)
    result = tn.gradcheck(Product(), [rng.standard_normal((2, 3)), rng.standard_normal((2, 3))])
    assert set(result.errors) == {"x[0]", "x[1]"} and result.passed


# ------------------------------------------------------------------ catching
def test_catches_a_wrong_input_gradient():
    x = np.random.default_rng(2).uniform(0.5, 2.0, (3, 4))
    assert tn.gradcheck(Square(), x).passed
    result = tn.gradcheck(Square(buggy=True), x)
    assert not result.passed
    assert result.errors["x"] == pytest.approx(0.5, rel=1e-6)  # half the true gradient
    assert result.refined["x"] == x.size  # the better estimate did not hide it
    assert "FAIL" in str(result) and "FAILED" in str(result)


def test_catches_a_wrong_parameter_gradient_and_names_it():
    x = np.random.default_rng(3).standard_normal((4, 3))
    result = tn.gradcheck(Scale(buggy=True, name="scale"), x)
    assert result.errors["x"] < 1e-8
    assert result.errors["scale/w"] > 1e-2
    assert not result.passed
    assert tn.gradcheck(Scale(name="scale"), x).passed


class ScaleByNamedParam:
    """y = x * w, w a Param named ``name``; the buggy backward halves dx."""

    def __init__(self, name, buggy=False):
        self.buggy = buggy
        self.w = tn.Param(np.array([0.5, 1.5, 2.0]), name=name)

    def parameters(self):
        return [self.w]

    def forward(self, x, training=False):
        self._x = x
        return x * self.w.value

    def backward(self, dy):
        self.w.grad += (dy * self._x).sum(0)
        return dy * self.w.value * (0.5 if self.buggy else 1.0)


def test_a_parameter_named_as_the_input_does_not_hide_the_input_gradient():
    """A parameter "x" took the input's entry of the checked arrays, so a
    wrong input gradient passed; it is now listed as "param 0". (A loss,
    whose input is "pred", has no parameters.)"""
    x = np.random.default_rng(3).standard_normal((4, 3))
    result = tn.gradcheck(ScaleByNamedParam("x", buggy=True), x)
    assert set(result.errors) == {"x", "param 0"}
    assert result.errors["x"] == pytest.approx(0.5, rel=1e-6) and not result.passed
    assert result.errors["param 0"] < 1e-8
    assert tn.gradcheck(ScaleByNamedParam("x"), x).passed


def test_catches_a_wrong_loss_gradient():
    rng = np.random.default_rng(4)
    pred, target = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    result = tn.gradcheck(HalfSquaredError(buggy=True), pred, target)
    assert not result.passed and result.max_error > 0.5


def test_catches_a_layer_checked_with_a_loss():
    rng = np.random.default_rng(5)
    x = rng.uniform(0.5, 2.0, (4, 3))
    result = tn.gradcheck(Square(buggy=True), x, rng.standard_normal((4, 3)),
                          loss=HalfSquaredError())
    assert not result.passed


# ------------------------------------------------------- the original object
def test_leaves_the_checked_layer_alone():
    rng = np.random.default_rng(6)
    dense = L.Dense(3, input_dim=4)  # float32
    dense.W.grad[...] = 7.0
    before = [(p.value.copy(), p.grad.copy()) for p in dense.parameters()]
    tn.gradcheck(dense, rng.standard_normal((2, 4)))
    for p, (value, grad) in zip(dense.parameters(), before):
        assert p.dtype == np.float32
        assert p.value.tobytes() == value.tobytes() and p.grad.tobytes() == grad.tobytes()

    bn = L.BatchNorm(input_dim=4)
    state = bn.get_state()
    tn.gradcheck(bn, rng.standard_normal((5, 4)), training=True)
    for key, value in bn.get_state().items():
        assert value.tobytes() == state[key].tobytes()

    lazy = L.LayerNorm()
    tn.gradcheck(lazy, rng.standard_normal((2, 4)))
    assert not lazy.built

    drop = L.Dropout(0.5, seed=3)
    tn.gradcheck(drop, rng.standard_normal((2, 4)), training=True)
    x = np.ones((3, 5))
    np.testing.assert_array_equal(drop.forward(x, training=True),
                                  L.Dropout(0.5, seed=3).forward(x, training=True))


def test_inputs_are_not_modified():
    x = np.random.default_rng(7).standard_normal((3, 4)).astype(np.float32)
    x0 = x.copy()
    tn.gradcheck(L.Tanh(), x)
    assert x.tobytes() == x0.tobytes()


# ------------------------------------------------------------------- options
def test_frozen_parameters_are_skipped_and_params_false():
    x = np.random.default_rng(8).standard_normal((3, 4))
    layer = L.Dense(2, input_dim=4, name="d")
    layer.trainable = False
    result = tn.gradcheck(layer, x)
    assert set(result.errors) == {"x"} and result.skipped == ["d/W", "d/b"]
    assert "skipped (frozen): d/W, d/b" in str(result)
    layer.trainable = True
    assert set(tn.gradcheck(layer, x, params=False).errors) == {"x"}


def test_max_elements_samples_entries():
    x = np.random.default_rng(9).standard_normal((10, 6))
    result = tn.gradcheck(L.Dense(5, input_dim=6), x, max_elements=7)
    for name, numeric in result.numeric.items():
        assert np.count_nonzero(~np.isnan(numeric)) == min(7, numeric.size), name
    assert result.passed


def test_truncation_error_is_refined_away_not_failed():
    # LayerNorm of two features 2.3e-4 apart bends on the scale sqrt(1e-5): the
    # central difference's eps^2 truncation error alone is ~1e-6 relative there
    x = np.random.default_rng(2795).standard_normal((3, 2)) * 2
    assert abs(x[2, 0] - x[2, 1]) < 3e-4
    plain = tn.gradcheck(L.LayerNorm(), x, refine=False)
    assert not plain.passed and 1e-6 < plain.errors["x"] < 1e-5
    assert plain.refined == {name: 0 for name in plain.errors}
    halved = tn.gradcheck(L.LayerNorm(), x, refine=False, eps=5e-6)
    assert halved.errors["x"] == pytest.approx(plain.errors["x"] / 4, rel=0.05)  # O(eps^2)

    result = tn.gradcheck(L.LayerNorm(), x)
    assert result.passed and result.errors["x"] < 1e-8, str(result)
    assert 1 <= result.refined["x"] < x.size
    assert all(k == 0 for name, k in result.refined.items() if name != "x")
    assert "re-estimated by Richardson extrapolation: x (" in str(result)
    # only the re-estimated entries changed, and they moved to the analytic gradient
    moved = plain.numeric["x"] != result.numeric["x"]
    assert np.count_nonzero(moved) == result.refined["x"]
    np.testing.assert_allclose(result.numeric["x"][moved], result.analytic["x"][moved],
                               rtol=1e-8)


def test_table_lists_every_array():
    result = tn.gradcheck(L.Dense(2, input_dim=3, name="fc"), np.ones((2, 3)))
    text = str(result)
    for name in ("x", "fc/W", "fc/b", "max rel error", "analytic", "numeric", "passed"):
        assert name in text
    assert result.max_error == max(result.errors.values())


def test_relative_error_measure():
    assert relative_error([1.0, 2.0], [1.0, 2.0])[0] == 0.0
    err, index = relative_error([1.0, 2.2], [1.0, 2.0], scale_floor=0)
    assert err == pytest.approx(0.2 / 2.2) and index == (1,)
    # tiny entries are judged against the array's scale, not their own size
    assert relative_error([1.0, 2e-9], [1.0, 1e-9])[0] == pytest.approx(1e-9 / 1e-3)
    assert relative_error([1e-4, 2e-9], [1e-4, 1e-9])[0] == pytest.approx(1e-9 / 1e-3)
    assert relative_error([1.0, 2e-9], [1.0, 1e-9], floor=0, scale_floor=0)[0] == 0.5
    assert np.isnan(relative_error([np.nan], [1.0])[0])


def test_nan_gradient_fails():
    class NanGrad(Square):
        def backward(self, dy):
            return dy * np.nan

    assert not tn.gradcheck(NanGrad(), np.ones((2, 2))).passed


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(target=HalfSquaredError(), x=np.ones((2, 2))), ValueError, "needs targets y"),
    (dict(target=L.Tanh(), x=np.ones((2, 2)), loss=HalfSquaredError()), ValueError,
     "needs targets y"),
    (dict(target=L.Tanh(), x=np.ones((2, 2), np.int64)), TypeError, "floating-point"),
    (dict(target=L.Tanh(), x=np.ones((2, 2)), eps=0.0), ValueError, "eps"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tn.gradcheck(**kwargs)


def test_loss_by_name_through_a_conv_model():
    """loss= takes a name as compile does; the check runs through conv layers."""
    L = tn.layers
    model = tn.Sequential([L.Reshape((6, 6, 1), input_dim=36), L.Conv2D(3, 3, activation="tanh"),
                           L.MaxPool2D(), L.Flatten(), L.Dense(4)])
    x = np.random.default_rng(0).standard_normal((2, 36))
    result = tn.gradcheck(model, x, np.array([1, 2]), loss="cross_entropy")
    assert result.passed, result.errors


def test_a_nan_numerical_gradient_fails_and_is_not_taken_for_an_unchecked_entry():
    """sqrt(x) just above 0: x - eps < 0 makes every central difference NaN.
    Those entries were checked, so they fail (they once compared as 0 == 0,
    as entries left out by max_elements do, and a wrong backward passed)."""
    class Sqrt(Square):
        def forward(self, x, training=False):
            self._x = self._prepare_input(x)
            with np.errstate(invalid="ignore"):
                return np.sqrt(self._x)

        def backward(self, dy):
            return dy / np.sqrt(self._x)  # wrong: the factor 1/2 is missing

    result = tn.gradcheck(Sqrt(), np.full((2, 3), 1e-6))
    assert np.isnan(result.max_error) and not result.passed
    assert not tn.gradcheck(L.Dense(3), np.full((2, 5), np.nan)).passed


class _Returns(Square):
    """A backward returning whatever ``make(dy, x)`` gives."""

    def __init__(self, make, **kwargs):
        self.make = make
        super().__init__(**kwargs)

    def backward(self, dy):
        return self.make(dy, self._x)


@pytest.mark.parametrize("make, match", [
    (lambda dy, x: (2 * dy * x).sum(0), r"gradient of x of shape \(3,\), expected .*\(4, 3\)"),
    (lambda dy, x: (2 * dy * x)[:1], r"shape \(1, 3\), expected .*\(4, 3\)"),
    (lambda dy, x: None, "returned None, expected one gradient per input"),
])
def test_a_gradient_of_another_shape_is_a_clear_error(make, match):
    """Broadcasting once compared it anyway, or an IndexError came from deep inside."""
    with pytest.raises(ValueError, match=match):
        tn.gradcheck(_Returns(make), np.random.default_rng(0).standard_normal((4, 3)))


def test_one_gradient_for_two_inputs_is_a_clear_error():
    class OneGrad(Product):
        def backward(self, dy):
            return [dy * self._b]  # the second input's gradient is missing

    ones = np.ones((2, 2))
    with pytest.raises(ValueError, match=r"a list of 1, expected one gradient per input \(2"):
        tn.gradcheck(OneGrad(), [ones, ones])


def test_a_random_forward_is_refused_not_reported_as_a_wrong_backward():
    """A layer with a generator of its own (not the one set_rng gives) draws a
    new mask at every evaluation: the differences measure noise."""
    class OwnNoise(Square):
        def forward(self, x, training=False):
            self._m = np.random.default_rng().random(np.shape(x)) if training else 1.0
            return self._prepare_input(x) * self._m

        def backward(self, dy):
            return dy * self._m

    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"forward \(training=True\) is random.*set_rng"):
        tn.gradcheck(OwnNoise(), x, training=True)
    assert tn.gradcheck(OwnNoise(), x).passed  # inference: deterministic
    assert tn.gradcheck(L.Dropout(0.5), x, training=True).passed  # draws from set_rng


def test_an_unbuilt_model_with_dropout_is_deterministic_once_built():
    """Its first forward pass builds it, drawing weights from the generator
    gradcheck gives it: that pass's dropout mask comes further down the stream
    than every later pass's, so it must not be one of the values compared
    (with a loss it was, and the model was refused as random; without one the
    check compares no loss values)."""
    loss = "cross_entropy"
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)

    def make(**kwargs):
        return tn.Sequential([L.Dense(8, activation="tanh", **kwargs), L.Dropout(0.3),
                              L.Dense(3)])
    built = tn.gradcheck(make(input_dim=5), x, y, loss=loss, training=True)
    unbuilt = tn.gradcheck(make(), x, y, loss=loss, training=True)
    assert unbuilt.passed, str(unbuilt)
    assert len(unbuilt.errors) == len(built.errors) == 1 + 4  # x, two w and two b


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(max_elements=0), ValueError, "max_elements as a positive integer"),
    (dict(max_elements=-1), ValueError, "max_elements as a positive integer"),
    (dict(tolerance="1e-6"), TypeError, "tolerance as a real number"),
    (dict(tolerance=0.0), ValueError, "tolerance in"),
    (dict(seed=None), TypeError, "seed as a non-negative integer"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(floor=-1.0), ValueError, "floor in"),
    (dict(refine="no"), TypeError, "refine"),
    (dict(eps="1e-5"), TypeError, "eps as a real number"),
    (dict(eps=-1e-5), ValueError, r"eps in \(0, inf\), received -1e-05"),
    (dict(eps=np.inf), ValueError, "eps in"),
])
def test_bad_options_are_clear_errors(kwargs, error, match):
    """max_elements=0 once checked nothing and passed; the others failed deep inside."""
    with pytest.raises(error, match=match):
        tn.gradcheck(L.Tanh(), np.ones((2, 2)), **kwargs)


@pytest.mark.parametrize("eps", [np.float32(1e-5), np.float64(1e-5), np.int64(1), 1])
def test_eps_may_be_any_real_number_type(eps):
    """As tolerance may: np.float32(1e-5) and np.int64(1) were refused as not
    positive numbers. The result reports it as a float."""
    result = tn.gradcheck(L.Tanh(), np.full((2, 2), 0.1), eps=eps, tolerance=1.0)
    assert result.passed and type(result.eps) is float and result.eps == float(eps)


def test_gradients_of_a_dict_of_inputs_are_paired_by_name():
    """A backward returning its dict in another order had each input compared
    with another input's gradient; other keys are a clear error."""
    class DictProduct:
        def parameters(self):
            return []

        def forward(self, inputs, training=False):
            self._a, self._b = inputs["a"], inputs["b"]
            return self._a * self._b ** 2

        def backward(self, dy, keys=("b", "a")):
            grads = {"a": dy * self._b ** 2, "b": 2 * dy * self._a * self._b}
            return {key: grads[key] for key in keys}

    rng = np.random.default_rng(0)
    x = {"a": rng.standard_normal((2, 3)), "b": rng.standard_normal((2, 3))}
    assert tn.gradcheck(DictProduct(), x).passed

    class WrongKeys(DictProduct):
        def backward(self, dy):
            grads = super().backward(dy)
            return {"a": grads["a"], "c": grads["b"]}

    with pytest.raises(ValueError, match="expected one gradient per input"):
        tn.gradcheck(WrongKeys(), x)


def test_a_dict_of_inputs_to_a_functional_model_meets_its_gradients_in_any_order():
    """Model.backward returns a list in the model's input order; a dict
    written in another order once compared each input with the other's
    gradient (and failed a correct model)."""
    a, b = tn.mtl.Input((3,), name="a"), tn.mtl.Input((3,), name="b")
    out = tn.mtl.Add()([L.Dense(2, seed=0)(a), L.Dense(2, seed=1, activation="tanh")(b)])
    model = tn.mtl.Model([a, b], out)
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    result = tn.gradcheck(model, {"b": xb, "a": xa})
    assert result.passed, result.errors
    assert list(result.errors)[:2] == ["x['b']", "x['a']"]


# ------------------------------------------------------------ multi-task models
class HalvingDense(L.Dense):
    """A Dense layer whose backward passes half the input gradient."""

    def backward(self, dy, **kwargs):
        return 0.5 * super().backward(dy, **kwargs)


def _two_tasks(head_b=L.Dense):
    """A shared tanh trunk and two heads: "a" (2 values), "b" (3 classes)."""
    i = tn.mtl.Input((4,), dtype="float64")
    h = L.Dense(3, activation="tanh", seed=0, name="trunk")(i)
    out_a = L.Dense(2, seed=1, name="head_a")(h)
    out_b = head_b(3, seed=2, name="head_b")(h)
    return i, out_a, out_b


def test_a_multi_task_model_is_checked_on_the_sum_of_its_task_losses():
    # the list of outputs was taken as one array ("MSE expected targets of the
    # predictions' shape (1, 5, 2)"), a dict of losses as a loss config
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))
    y = {"a": rng.standard_normal((5, 2)), "b": rng.integers(0, 3, 5)}
    i, out_a, out_b = _two_tasks()
    model = tn.mtl.Model(i, {"a": out_a, "b": out_b})
    losses = {"a": "mse", "b": tn.losses.CrossEntropy()}
    result = tn.gradcheck(model, x, y=y, loss=losses)
    assert result.passed, str(result)
    assert list(result.errors) == ["x", "trunk/W", "trunk/b", "head_a/W", "head_a/b",
                                   "head_b/W", "head_b/b"]
    # L = L_a + L_b: the input's gradient is the sum of each task's alone
    alone = [tn.gradcheck(tn.mtl.Model(i, {task: out}), x, y=y[task], loss=losses[task])
             for task, out in (("a", out_a), ("b", out_b))]
    assert all(r.passed for r in alone)
    np.testing.assert_allclose(result.analytic["x"], alone[0].analytic["x"]
                               + alone[1].analytic["x"], rtol=1e-12, atol=1e-15)
    # targets and losses as lists in task order; one loss for every task
    same = tn.gradcheck(model, x, y=[y["a"], y["b"]], loss=["mse", "cross_entropy"])
    np.testing.assert_array_equal(same.analytic["x"], result.analytic["x"])
    y_b = {"a": y["a"], "b": rng.standard_normal((5, 3))}
    assert tn.gradcheck(model, x, y=y_b, loss="mse").passed
    # the single-output case of the report, with a bare array of targets
    single = tn.mtl.Model(i, {"a": out_a})
    assert tn.gradcheck(single, x, y=y["a"], loss="mse").passed


def test_a_wrong_backward_in_a_multi_task_model_fails():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4))
    y = {"a": rng.standard_normal((5, 2)), "b": rng.integers(0, 3, 5)}
    i, out_a, out_b = _two_tasks(head_b=HalvingDense)
    result = tn.gradcheck(tn.mtl.Model(i, {"a": out_a, "b": out_b}), x, y=y,
                          loss={"a": "mse", "b": "cross_entropy"})
    assert not result.passed
    # head b's own weights are right; what it passes on to the trunk is not
    assert result.errors["head_b/W"] < 1e-6 and result.errors["head_a/W"] < 1e-6
    assert result.errors["trunk/W"] > 1e-2 and result.errors["x"] > 1e-2


def test_a_multi_task_models_targets_and_losses_are_checked_clearly():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 4))
    i, out_a, out_b = _two_tasks()
    model = tn.mtl.Model(i, {"a": out_a, "b": out_b})
    y = {"a": np.zeros((5, 2)), "b": np.zeros((5, 3))}
    with pytest.raises(TypeError, match=r"gradcheck of Model .* expected targets as a dict "
                                        r"\{task: y\} for tasks \['a', 'b'\], received ndarray"):
        tn.gradcheck(model, x, y=np.zeros((5, 2)), loss="mse")
    with pytest.raises(ValueError, match=r"expected targets for tasks \['a', 'b'\], missing "
                                         r"\['b'\]"):
        tn.gradcheck(model, x, y={"a": y["a"]}, loss="mse")
    with pytest.raises(ValueError, match=r"expected a loss for every task \['a', 'b'\], "
                                         r"received none for \['b'\]"):
        tn.gradcheck(model, x, y=y, loss={"a": "mse"})
    with pytest.raises(ValueError, match=r"received loss for unknown tasks \['c'\]"):
        tn.gradcheck(model, x, y=y, loss={"a": "mse", "b": "mse", "c": "mse"})
    with pytest.raises(ValueError, match="expected 2 losses"):
        tn.gradcheck(model, x, y=y, loss=["mse"])
