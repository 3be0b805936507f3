r"""Check analytic gradients against numerical ones: a test and a lesson.

Every layer in tinynet writes its backward pass by hand, so every backward
pass can be wrong. :func:`gradcheck` compares it with the one thing that
cannot be: the definition of the derivative, estimated by *central
differences*. For a scalar loss :math:`L(\theta)` and one entry
:math:`\theta_i`,

.. math::
    \frac{\partial L}{\partial \theta_i} \approx
    \frac{L(\theta + \varepsilon e_i) - L(\theta - \varepsilon e_i)}{2\varepsilon}

Taylor's theorem shows why the *central* form is used: the even terms cancel,

.. math::
    L(\theta \pm \varepsilon e_i) = L \pm \varepsilon L' + \tfrac{\varepsilon^2}{2} L''
    \pm \tfrac{\varepsilon^3}{6} L''' + \dots
    \;\Rightarrow\;
    \frac{L(+) - L(-)}{2\varepsilon} = L' + \tfrac{\varepsilon^2}{6} L''' + \dots

so the truncation error is :math:`O(\varepsilon^2)` instead of the one-sided
:math:`O(\varepsilon)`. A smaller :math:`\varepsilon` is not always better:
the two losses agree in most of their digits, and the subtraction leaves a
rounding error of about :math:`u\,|L| / \varepsilon` (:math:`u \approx 10^{-16}`
in float64). The total :math:`\varepsilon^2 |L'''|/6 + u |L|/\varepsilon` is
smallest near :math:`\varepsilon = (3u)^{1/3} \approx 10^{-5}`, the default.
The check runs on a **float64 copy** of the target for the same reason: in
float32 (:math:`u \approx 10^{-7}`) the rounding error alone would swamp it.

The truncation term is not always small. Where :math:`L` bends on a scale
:math:`s` (LayerNorm of two features that nearly coincide bends on the scale
of its :math:`\sqrt{\epsilon}`, about :math:`3 \cdot 10^{-3}`), the relative
truncation error is about :math:`(\varepsilon / s)^2`, here :math:`10^{-5}`: a
correct backward would fail a tolerance of :math:`10^{-6}`. So every entry whose
central difference :math:`D(\varepsilon)` disagrees with the analytic
gradient is estimated again by *Richardson extrapolation*: with the half step,

.. math::
    D(\varepsilon) = L' + c\,\varepsilon^2 + O(\varepsilon^4), \quad
    D(\varepsilon/2) = L' + c\,\varepsilon^2/4 + O(\varepsilon^4)
    \;\Rightarrow\;
    \frac{4\,D(\varepsilon/2) - D(\varepsilon)}{3} = L' + O(\varepsilon^4)

(two more evaluations, for those entries only; ``refine=False`` turns it
off). The better estimate can only move the numerical gradient towards the
true derivative, so it cannot hide a wrong backward: that still fails, by as
much as before. ``result.refined`` counts the entries re-estimated.

A layer's output is not a scalar, so for a layer or model without a loss the
check uses :math:`L = \sum_k (y_k - y^0_k)\, r_k` with a fixed random
:math:`r` and the unperturbed output :math:`y^0` (a constant): then
:math:`\partial L/\partial y = r`, every output entry takes part with a
different weight (a plain sum would hide, say, a transposed gradient), and
:math:`L` is a sum of small differences, so its rounding error stays small.
A loss with ``reduction="none"`` gives one value :math:`\ell_i` per sample;
the check then uses :math:`L = \sum_i \ell_i r_i` likewise, and its
backward gets :math:`r` as the upstream gradient (``loss.backward(r)``).
A multi-task model (:class:`tinynet.mtl.Model`) checked with a loss per
task is checked on the sum of its task losses,
:math:`L = \sum_t L_t(f_t(x), y_t)`: each task's loss backward gives its
output's gradient, and one backward pass of the model sums them where the
tasks share layers (each ``reduction="none"`` loss with an :math:`r` of its
own).

The result compares, for each input and each trainable parameter, the
analytic gradient :math:`a` and the numerical one :math:`n` by the worst
relative error

.. math::
    \max_i \frac{|a_i - n_i|}{\max\bigl(|a_i|,\ |n_i|,\ \rho \max_j |n_j|,\ f\bigr)}

Both floors exist because central differences carry an *absolute* rounding
error of about :math:`10^{-11}`-:math:`10^{-10}` on every entry (more where
the layer's own arithmetic is ill-conditioned): a strict per-entry ratio
would fail a correct gradient entry of :math:`10^{-5}`. So entries below
:math:`f = 10^{-3}` (``floor``; inputs and output gradients of order one
assumed) or below :math:`\rho = 10^{-3}` of the array's largest
(``scale_floor``) are judged against that floor instead: in effect, an
absolute tolerance of :math:`10^{-9}` for them. About :math:`10^{-7}` or less
means the backward is right; :math:`10^{-2}` or more means it is wrong; in
between, look for a kink (ReLU at 0, a max) within :math:`\varepsilon` of an
input.

Example
-------
>>> import numpy as np, tinynet as tn
>>> layer = tn.layers.Dense(3, activation="tanh")
>>> x = np.random.default_rng(0).standard_normal((4, 5))
>>> result = tn.gradcheck(layer, x)
>>> result.passed
True
>>> print(result)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import sys
import types
from dataclasses import dataclass, field

import numpy as np

from . import losses as losses_mod
from .checks import check_bool, check_positive_int, check_seed, per_task
from .layers._checks import check_real

__all__ = ["gradcheck", "GradcheckResult", "relative_error"]


def relative_error(analytic, numeric, floor: float = 1e-3,
                   scale_floor: float = 1e-3) -> tuple[float, tuple]:
    """Worst :math:`|a - n| / \\max(|a|, |n|, \\rho \\max|n|, f)` and where it occurs.

    ``floor`` is :math:`f` and ``scale_floor`` is :math:`\\rho` (see the module
    docstring); ``scale_floor=0`` gives the strict per-entry ratio.
    """
    a = np.asarray(analytic, np.float64)
    if a.size == 0:
        return 0.0, ()
    err = _entry_errors(a, numeric, floor, scale_floor)
    flat = int(np.nanargmax(err)) if not np.isnan(err).all() else 0
    worst = float(err.reshape(-1)[flat])
    if np.isnan(err).any():  # a NaN gradient is never a pass
        worst = float("nan")
    return worst, np.unravel_index(flat, a.shape)


def _entry_errors(analytic, numeric, floor, scale_floor) -> np.ndarray:
    """Entry by entry, :math:`|a - n| / \\max(|a|, |n|, \\rho \\max|n|, f)`."""
    a = np.asarray(analytic, np.float64)
    n = np.asarray(numeric, np.float64)
    finite = np.abs(n[np.isfinite(n)])
    denom_floor = max(floor, scale_floor * float(finite.max(initial=0.0)))
    return np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), denom_floor)


@dataclass
class GradcheckResult:
    """What :func:`gradcheck` found.

    Attributes
    ----------
    errors : dict of str to float
        Worst relative error per checked array: ``"x"`` (or ``"x[0]"``, ... for
        several inputs; ``"pred"`` for a loss) and each parameter's name
        (``"param <i>"``, its index among the parameters, for one without a
        name or whose name an input or an earlier parameter already has).
    analytic, numeric : dict of str to ndarray
        The two gradients compared, entry by entry (only the checked entries
        of the numeric one are filled when ``max_elements`` sampled them).
    worst_index : dict of str to tuple
        Where each array's worst error occurs.
    tolerance : float
    skipped : list of str
        Frozen parameters (``trainable=False``), which are not checked.
    refined : dict of str to int
        Per checked array, how many entries were estimated again by
        Richardson extrapolation (module docstring).
    """

    errors: dict[str, float]
    analytic: dict[str, np.ndarray] = field(repr=False)
    numeric: dict[str, np.ndarray] = field(repr=False)
    worst_index: dict[str, tuple] = field(repr=False)
    tolerance: float = 1e-6
    eps: float = 1e-5
    target: str = ""
    skipped: list[str] = field(default_factory=list)
    refined: dict[str, int] = field(default_factory=dict)

    @property
    def max_error(self) -> float:
        """The worst error over every checked array (NaN if any gradient is NaN)."""
        values = list(self.errors.values())
        if any(np.isnan(v) for v in values):
            return float("nan")
        return max(values, default=0.0)

    @property
    def passed(self) -> bool:
        return bool(self.max_error < self.tolerance)

    def __str__(self) -> str:
        header = ("name", "shape", "max rel error", "at index", "analytic", "numeric", "")
        rows = []
        for name, err in self.errors.items():
            idx = self.worst_index[name]
            a = self.analytic[name][idx] if self.analytic[name].size else float("nan")
            n = self.numeric[name][idx] if self.numeric[name].size else float("nan")
            ok = "ok" if err < self.tolerance else "FAIL"
            rows.append((name, str(self.analytic[name].shape), f"{err:.2e}", str(tuple(
                int(i) for i in idx)), f"{a:+.6e}", f"{n:+.6e}", ok))
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        lines = [f"gradcheck of {self.target} (float64 copy, central differences, "
                 f"eps={self.eps:g})"]
        for row in [header, *rows]:
            lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        if self.skipped:
            lines.append(f"skipped (frozen): {', '.join(self.skipped)}")
        refined = {name: k for name, k in self.refined.items() if k}
        if refined:
            lines.append("re-estimated by Richardson extrapolation: " + ", ".join(
                f"{name} ({k} entr{'y' if k == 1 else 'ies'})" for name, k in refined.items()))
        verdict = "passed" if self.passed else "FAILED"
        lines.append(f"{verdict}: max error {self.max_error:.2e} "
                     f"(tolerance {self.tolerance:.0e})")
        return "\n".join(lines)


# ---------------------------------------------------------------- structures
# Inputs and outputs may be one array, a list/tuple of arrays (several
# inputs or heads) or a dict of arrays; these helpers walk all three.

def _leaves(obj, prefix: str) -> list[tuple[str, np.ndarray]]:
    if isinstance(obj, dict):
        return [(f"{prefix}[{k!r}]", v) for k, v in obj.items()]
    if isinstance(obj, (list, tuple)):
        return [(f"{prefix}[{i}]", v) for i, v in enumerate(obj)]
    return [(prefix, obj)]


def _map(obj, fn):
    if isinstance(obj, dict):
        return {k: fn(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(fn(v) for v in obj)
    return fn(obj)


def _to_float64(a):
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"gradcheck expected floating-point inputs, received dtype "
                        f"{a.dtype}")
    return np.array(a, dtype=np.float64)


def _maybe_float64(a):
    """Targets: floats become float64 copies, integer labels stay as they are."""
    a = np.asarray(a)
    return np.array(a, dtype=np.float64) if np.issubdtype(a.dtype, np.floating) else a


def _describe(target) -> str:
    name = getattr(target, "name", None)
    return f"{type(target).__name__} {name!r}" if isinstance(name, str) else type(target).__name__


def _float64_copy(target):
    work = copy.deepcopy(target)
    if hasattr(work, "astype"):
        work.astype(np.float64)
    elif hasattr(work, "parameters"):
        for p in work.parameters():
            p.astype(np.float64)
    return work


# ---------------------------------------------------------------- the check
def gradcheck(target, x, y=None, loss=None, *, eps: float = 1e-5, params: bool = True,
              training: bool = False, seed: int = 0, tolerance: float = 1e-6,
              max_elements: int | None = None, floor: float = 1e-3,
              scale_floor: float = 1e-3, refine: bool = True) -> GradcheckResult:
    """Compare ``target``'s backward pass with central finite differences.

    Parameters
    ----------
    target : Layer, model or loss
        A layer or model: anything with ``forward(x, training)``,
        ``backward(dy)`` and ``parameters()``. A loss: ``forward(pred,
        target) -> float`` and ``backward() -> dpred`` (no ``parameters``).
        It is deep-copied and converted to float64; the original is left
        exactly as it was.
    x : ndarray, or list/tuple/dict of ndarrays
        Input of the layer or model (several for multi-input models), or the
        predictions given to a loss. Floating point.
    y : ndarray, optional
        Targets: required for a loss, and for a model checked with ``loss``.
        For a multi-task model (:class:`tinynet.mtl.Model`): ``{task: array}``,
        a list in task order, or one array for a model of one task, as its
        ``fit`` takes them (every sample labelled: a NaN target makes the
        loss NaN, which never passes).
    loss : str, loss object, or per task, optional
        Check ``loss(target(x), y)`` (a name such as ``"cross_entropy"``, as
        ``compile`` takes it, or a loss object); without it the scalar is
        :math:`\\sum_k y_k r_k` with a fixed random ``r`` (see the module
        docstring). For a multi-task model, as its ``compile`` takes it: one
        loss for every task, ``{task: loss}`` or a list in task order; the
        checked scalar is then the plain sum of the task losses,
        :math:`L = \\sum_t L_t(f_t(x), y_t)` (the ``"loss"`` its ``fit``
        logs under equal weighting), whose gradient is the sum of the
        tasks': every head and, summed over the heads, the shared layers.
    eps : float, default 1e-5
        Step of the central differences (see the module docstring).
    params : bool, default True
        Also check every trainable parameter (frozen ones are skipped and
        listed in ``result.skipped``).
    training : bool, default False
        Forward mode. With ``True``, random layers (Dropout) get a fresh
        generator seeded with ``seed`` before *every* forward pass, so each
        evaluation draws the same mask and the function is deterministic.
        A target whose forward is random all the same (a layer with a
        generator of its own) is refused with a ``ValueError`` rather than
        reported as a wrong backward: the check first evaluates the function
        twice at the same point.
    seed : int, default 0
        Seed of ``r`` and of those generators (a non-negative integer).
    tolerance : float, default 1e-6
        ``result.passed`` is ``max_error < tolerance``.
    max_elements : int, optional
        Check at most this many randomly chosen entries of each array (a
        large model needs two forward passes per entry); a positive integer.
    floor, scale_floor : float, default 1e-3 and 1e-3
        Denominator floors of the relative error, absolute and relative to
        the array's largest numerical gradient (module docstring).
    refine : bool, default True
        Estimate again, by Richardson extrapolation from the steps ``eps``
        and ``eps / 2``, every entry whose central difference fails the
        tolerance (module docstring).

    Returns
    -------
    GradcheckResult
        ``.errors`` (per array), ``.max_error``, ``.passed``; ``print`` it for
        a table. A NaN among the checked entries of either gradient (a loss
        that is NaN near the point, say) is never a pass.

    Raises
    ------
    ValueError
        Besides bad options: a backward that returns no gradient, or one of
        another shape than its input (it would otherwise be broadcast, or
        fail on an index); a random forward (see ``training``).
    """
    is_loss = not hasattr(target, "parameters")
    if (is_loss or loss is not None) and y is None:
        raise ValueError(f"gradcheck of {_describe(loss if loss is not None else target)} "
                         f"needs targets y")
    eps = _check_options(eps, params, training, seed, tolerance, max_elements, floor,
                         scale_floor, refine)
    problem = _Problem(target, x, y, loss, training, seed)
    problem.check_deterministic()
    dx, all_params = problem.analytic_gradients()

    checked = {}
    input_name = "pred" if is_loss else "x"
    dx = _by_input_name(problem.inputs, dx, target)
    inputs, grads = _leaves(problem.inputs, input_name), _leaves(dx, input_name)
    if dx is None or len(grads) != len(inputs) or (
            isinstance(dx, dict) and [n for n, _ in grads] != [n for n, _ in inputs]):
        raise ValueError(f"gradcheck: the backward of {_describe(target)} returned "
                         f"{_what(dx)}, expected one gradient per input "
                         f"({len(inputs)}: {', '.join(name for name, _ in inputs)})")
    for (name, arr), (_, grad) in zip(inputs, grads):
        if grad is None or np.shape(grad) != arr.shape:
            raise ValueError(f"gradcheck: the backward of {_describe(target)} returned a "
                             f"gradient of {name} of shape {_what(grad)}, expected the "
                             f"shape of {name}, {arr.shape}")
        checked[name] = (arr, np.array(grad, dtype=np.float64))
    skipped = []
    if params:
        # a parameter named as an input ("x", "pred") must not replace the
        # input's entry: the input gradient would go unchecked
        seen = set(checked)
        for i, p in enumerate(all_params):
            name = p.name if p.name and p.name not in seen else f"param {i}"
            seen.add(name)
            if p.trainable:
                checked[name] = (p.value, p.grad.astype(np.float64))
            else:
                skipped.append(name)

    errors, analytic, numeric, worst, refined = {}, {}, {}, {}, {}
    for name, (arr, grad) in checked.items():
        indices = _sample(arr.size, max_elements, problem.rng)
        num = _numerical_grad(problem.value, arr, eps, indices)
        refined[name] = _refine(problem.value, arr, grad, num, indices, eps,
                                tolerance, floor, scale_floor) if refine else 0
        # entries left out by max_elements compare as 0 == 0; a NaN among the
        # checked ones (a loss that is NaN there) fails the check
        picked = np.zeros(arr.size, bool)
        picked[indices] = True
        picked = picked.reshape(arr.shape)
        errors[name], worst[name] = relative_error(
            np.where(picked, grad, 0.0), np.where(picked, num, 0.0), floor, scale_floor)
        analytic[name], numeric[name] = grad, num
    return GradcheckResult(errors=errors, analytic=analytic, numeric=numeric,
                           worst_index=worst, tolerance=tolerance, eps=eps,
                           target=_describe(target), skipped=skipped, refined=refined)


def _check_options(eps, params, training, seed, tolerance, max_elements, floor,
                   scale_floor, refine) -> float:
    """Refuse, with a clear error, options that would make the check
    meaningless (``max_elements=0`` checks nothing) or fail deep inside;
    return ``eps`` as a float (any real number type, ``np.float32`` too)."""
    eps = check_real(eps, "gradcheck", "eps", low=0.0, low_open=True, high_open=True)
    for what, flag in (("params", params), ("training", training), ("refine", refine)):
        check_bool(flag, "gradcheck", what)
    if seed is None:  # every evaluation must draw the same dropout mask
        raise TypeError("gradcheck expected seed as a non-negative integer, received None "
                        "(the random layers are re-seeded with it before every forward pass)")
    check_seed(seed, "gradcheck")
    check_real(tolerance, "gradcheck", "tolerance", low=0.0, low_open=True)
    check_real(floor, "gradcheck", "floor", low=0.0)
    check_real(scale_floor, "gradcheck", "scale_floor", low=0.0)
    if max_elements is not None:
        check_positive_int(max_elements, "gradcheck", "max_elements")
    return eps


def _by_input_name(inputs, dx, target):
    """For a dict of inputs, the gradients ``dx`` as a dict in the inputs'
    order, so that each input meets its own gradient whatever order the
    dict was written in: ``dx`` a dict with the same keys, or a list in the
    order of the target's named inputs (``target.inputs``, as a
    :class:`tinynet.mtl.Model` has them). Anything else is returned as is."""
    if not isinstance(inputs, dict):
        return dx
    if isinstance(dx, (list, tuple)):
        names = [getattr(t, "name", None) for t in getattr(target, "inputs", None) or ()]
        if len(names) == len(dx) and sorted(map(str, names)) == sorted(map(str, inputs)):
            dx = dict(zip(names, dx))
    if isinstance(dx, dict) and set(dx) == set(inputs):
        return {key: dx[key] for key in inputs}
    return dx


def _what(value) -> str:
    """How an error message names what a backward returned."""
    if value is None:
        return "None"
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} of {len(value)}"
    return str(np.shape(value))


class _Problem:
    r"""The scalar function being checked, on float64 copies of everything.

    For a loss: ``L = loss(pred, y)``. For a layer or model with a loss:
    ``L = loss(f(x), y)``, and for a multi-task model (one with task names,
    ``output_names``, as :class:`tinynet.mtl.Model` has) the sum of its task
    losses :math:`L = \sum_t L_t(f_t(x), y_t)`; without a loss:
    ``L = sum(f(x) * r)``. ``losses`` and ``targets`` hold the terms of
    that sum: one pair, or one a task.
    """

    def __init__(self, target, x, y, loss, training, seed):
        self.is_loss = not hasattr(target, "parameters")
        self.work = _float64_copy(target)
        self.inputs = _map(x, _to_float64)
        self.tasks = None if self.is_loss or loss is None else \
            getattr(self.work, "output_names", None)
        if self.tasks is not None:
            self.losses, self.targets = self._task_terms(loss, y)
        else:
            self.losses = [None if loss is None else _as_loss(loss)]
            self.targets = [None if y is None else _map(y, _maybe_float64)]
        self.training = training
        self.seed = seed
        # a stream of its own, so r never equals data the user drew with the same seed
        self.rng = np.random.default_rng([seed, 0x6772])
        self.directions = self.baseline = None
        self.loss_directions = [None] * len(self.losses)  # r of each reduction="none" loss
        if not self.is_loss:
            # A lazily built model is built by its first forward pass, drawing its
            # weights from the generator _forward has just given it: that first pass
            # draws its dropout masks further down the stream than every later one.
            # So it builds and is discarded, before any value is compared or kept.
            self._forward()
        if not self.is_loss and loss is None:
            self.baseline = _map(self._forward(), np.copy)
            self.directions = _map(self.baseline, lambda o: self.rng.standard_normal(
                np.shape(o)))

    def _task_terms(self, loss, y) -> tuple[list, list]:
        """Each task's loss and targets, in task order: ``loss`` one for
        every task, ``{task: loss}`` or a list in task order
        (:func:`tinynet.checks.per_task`, as ``compile`` reads it), ``y``
        ``{task: array}``, a list in task order or one array for one task,
        checked as the model's ``fit`` checks them."""
        who = f"gradcheck of {_describe(self.work)}"
        losses = per_task(loss, self.tasks, "loss", who)
        missing = [task for task, spec in losses.items() if spec is None]
        if missing:
            raise ValueError(f"{who} expected a loss for every task {self.tasks}, received "
                             f"none for {missing}")
        n_samples = np.shape(_leaves(self.inputs, "")[0][1])[0]
        targets = self.work._targets(y, n_samples, who)
        return ([_as_loss(losses[task]) for task in self.tasks],
                [_maybe_float64(targets[task]) for task in self.tasks])

    def _split(self, out) -> bool:
        """Whether ``out`` is a multi-task model's list of outputs, one a task."""
        return self.tasks is not None and isinstance(out, (list, tuple))

    def _outputs(self, out) -> list:
        """The outputs each term of the loss reads: one a task, or all as one."""
        return list(out) if self._split(out) else [out]

    def _forward(self):
        if hasattr(self.work, "set_rng"):  # the same dropout masks in every evaluation
            self.work.set_rng(np.random.default_rng(self.seed))
        return self.work.forward(self.inputs, training=self.training)

    def _scalar(self, k: int, loss_value) -> float:
        """Term ``k``'s loss as a number: with ``reduction="none"`` (one value
        per sample), their sum weighted by fixed random ``r`` (module docstring)."""
        if np.ndim(loss_value) == 0:
            return float(loss_value)
        if self.loss_directions[k] is None:
            self.loss_directions[k] = self.rng.standard_normal(np.shape(loss_value))
        return float(np.dot(loss_value, self.loss_directions[k]))

    def _loss_backward(self, k: int, loss):
        r = self.loss_directions[k]
        return loss.backward() if r is None else loss.backward(r)

    def check_deterministic(self) -> None:
        """Refuse a function that gives two values at the same point: every
        central difference would then measure the noise, and the check would
        report a wrong backward where the forward is random (a layer drawing
        from a generator of its own instead of the one ``set_rng`` gives)."""
        first, second = self.value(), self.value()
        if np.isnan(first) and np.isnan(second):
            return  # a NaN function: the check reports it (never a pass)
        if not abs(first - second) <= 1e-12 * max(1.0, abs(first), abs(second)):
            mode = "training=True" if self.training else "training=False"
            raise ValueError(
                f"gradcheck of {_describe(self.work)}: two evaluations at the same point "
                f"gave {first!r} and {second!r}, so its forward ({mode}) is random and no "
                f"finite difference can check it. A random layer must draw from the "
                f"generator set_rng(rng) gives it (as Dropout does; gradcheck re-seeds it "
                f"before every forward pass), or be checked with training=False")

    def value(self) -> float:
        if self.is_loss:
            return self._scalar(0, self.work.forward(self.inputs, self.targets[0]))
        out = self._forward()
        if self.losses[0] is not None:
            return sum(self._scalar(k, loss.forward(o, t)) for k, (loss, o, t) in
                       enumerate(zip(self.losses, self._outputs(out), self.targets)))
        # sum((y - y0) * r) has the gradient of sum(y * r), but sums small
        # differences, so its rounding error does not grow with |sum(y * r)|
        triples = zip(_leaves(out, ""), _leaves(self.baseline, ""), _leaves(self.directions, ""))
        return float(sum(np.sum((o - o0) * r) for (_, o), (_, o0), (_, r) in triples))

    def analytic_gradients(self):
        """``(dL/dinputs, params)`` from one forward and one backward pass, with
        the parameters' gradients zeroed first (read them from ``params``)."""
        if self.is_loss:
            self._scalar(0, self.work.forward(self.inputs, self.targets[0]))
            return self._loss_backward(0, self.work), []
        out = self._forward()
        params = list(self.work.parameters())  # a lazily built layer has them only now
        for p in params:
            p.zero_grad()
        if self.losses[0] is not None:
            douts = []
            for k, (loss, o, t) in enumerate(zip(self.losses, self._outputs(out),
                                                 self.targets)):
                self._scalar(k, loss.forward(o, t))
                douts.append(self._loss_backward(k, loss))
            dout = douts if self._split(out) else douts[0]  # as forward gave the outputs
        else:
            dout = self.directions
        return self.work.backward(dout), params


def _as_loss(spec):
    """A copy of the loss ``spec``: a name (``"cross_entropy"``) or dict as
    ``compile`` takes it, or a loss object."""
    return copy.deepcopy(losses_mod.get(spec) if isinstance(spec, (str, dict)) else spec)


def _sample(size, max_elements, rng) -> np.ndarray:
    """The flat indices to check: all of them, or ``max_elements`` at random."""
    if max_elements is not None and size > max_elements:
        return np.sort(rng.choice(size, size=max_elements, replace=False))
    return np.arange(size)


def _numerical_grad(objective, arr, eps, indices) -> np.ndarray:
    """Central differences of ``objective()`` w.r.t. the entries ``indices`` of
    (flattened) ``arr``, which is perturbed in place and restored exactly.
    Unchecked entries are NaN."""
    grad = np.full(arr.shape, np.nan)
    flat, gflat = arr.reshape(-1), grad.reshape(-1)
    if flat.size and not np.shares_memory(flat, arr):
        raise ValueError("gradcheck needs contiguous arrays to perturb")
    for i in indices:
        old = flat[i]
        flat[i] = old + eps
        plus = objective()
        flat[i] = old - eps
        minus = objective()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def _refine(objective, arr, grad, num, indices, eps, tolerance, floor, scale_floor) -> int:
    """Replace, in place, each entry of ``num`` among ``indices`` that fails the
    tolerance by its Richardson extrapolation :math:`(4 D(\\varepsilon/2) -
    D(\\varepsilon)) / 3`: the truncation error, not the backward, may be what
    disagrees (module docstring). Returns how many entries were replaced."""
    errs = _entry_errors(grad.reshape(-1)[indices], num.reshape(-1)[indices], floor,
                         scale_floor)
    again = indices[~(errs < tolerance)]
    if again.size:
        half = _numerical_grad(objective, arr, eps / 2, again).reshape(-1)
        flat = num.reshape(-1)
        flat[again] = (4 * half[again] - flat[again]) / 3
    return int(again.size)


class _CallableModule(types.ModuleType):
    """``import tinynet.gradcheck`` (or ``from tinynet.gradcheck import ...``)
    binds this *module* to the attribute ``tinynet.gradcheck``, which then
    hides the function of the same name that ``tn.gradcheck`` stands for.
    Calling the module calls the function, so ``tn.gradcheck(...)`` works
    whichever of the two the attribute holds."""

    def __call__(self, *args, **kwargs) -> GradcheckResult:
        return gradcheck(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
