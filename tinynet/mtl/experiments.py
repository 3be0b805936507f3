"""Small, comparable MLP builds of every architecture, and one training run.

Shared by the ``tinynet demo mtl`` part and ``python -m benchmarks mtl`` so
the two measure the same models. Every builder takes the input width, the
hidden widths of the part that is shared (or of each tower) and the output
width of each task; each task's head is one Dense layer of logits.
:func:`single_task` and :func:`hard_sharing` also take ``hidden="conv"``
for the convolutional trunk of :func:`conv_trunk` (square grey images), and
``hidden="conv-features"`` for its convolutional blocks alone
(:func:`conv_features`), which hard sharing shares while each task gets its
own Dense layers (``head=``); ``conv=dict(filters=..., units=...)`` sizes
that CNN (default: 32 and 64 filters, Dense 128), and ``batch_norm=True`` in
it puts a BatchNorm before each of its ReLUs.
"""

from __future__ import annotations

import time

import numpy as np

from ..kernels import limit_threads  # re-exported: the demo and benchmark use it
from ..layers import BatchNorm, Dense, Dropout, Flatten
from ..layers._checks import check_real
from ..callbacks import LearningRateScheduler
from ..data.mixup import mixup as mix_pairs
from ..recipes import cnn_layers, cosine_schedule
from ..training import MIXUP_STREAM, epoch_rng
from .graph import Input, Model
from .sharing import CrossStitchNet, HardSharing, MMoENet, SoftSharing

__all__ = ["single_task", "hard_sharing", "task_norm_sharing", "soft_sharing", "cross_stitch",
           "mmoe", "run", "conv_trunk", "conv_features", "limit_threads"]


def _stack(widths, seed, activation="relu", dropout: float = 0.0):
    """Dense layers of ``widths``, each followed by ``Dropout(dropout)`` when it is > 0."""
    layers = []
    for i, w in enumerate(widths):
        layers.append(Dense(w, activation=activation, seed=seed + i))
        if dropout:
            layers.append(Dropout(dropout, seed=seed + 20 + i))
    return layers


def conv_trunk(n_in: int, seed: int = 0, filters=(32, 64), units: int = 128,
               batch_norm: bool = False) -> list:
    """The CNN of :func:`tinynet.recipes.cnn_layers` (28x28 with the defaults:
    224k parameters), with automatic layer names; ``batch_norm`` puts a
    BatchNorm before each ReLU."""
    return cnn_layers(n_in, filters=filters, units=units, seed=seed, batch_norm=batch_norm)


def conv_features(n_in: int, seed: int = 0, filters=(32, 64), batch_norm: bool = False) -> list:
    """The convolutional blocks of :func:`conv_trunk` and its ``Flatten``, without
    its Dense block (same layers, same initialisation). 28x28 with the defaults:
    18,816 parameters, 5 x 5 x 64 = 1,600 features out.

    Shared by both tasks of a hard-sharing model and followed by a Dense head
    of ``u`` units per task, it makes a model of :math:`18{,}816 + T (1{,}600 u
    + u + 10 u + 10)` parameters for :math:`T` tasks of 10 classes: with
    ``u = 64`` and two tasks 225,044, half of two single-task CNNs (450,068).
    The filters see both tasks' labels; which item of the canvas a head reads
    is each head's own choice."""
    trunk = conv_trunk(n_in, seed, filters, batch_norm=batch_norm)
    return trunk[:[type(layer) for layer in trunk].index(Flatten) + 1]


def _trunk(n_in, hidden, seed, dropout=0.0, conv=None):
    if hidden in ("conv", "conv-features"):
        if dropout:
            raise ValueError("dropout is for the MLP trunks; the CNN trunk has none, "
                             f"received dropout={dropout}")
        conv = dict(conv or {})
        if hidden == "conv":
            return conv_trunk(n_in, seed, **conv)
        conv.pop("units", None)  # the Dense layer is the heads', not the trunk's
        return conv_features(n_in, seed, **conv)
    if conv:
        raise ValueError(f"conv= sizes the CNN trunks ('conv', 'conv-features'); received "
                         f"it with the MLP widths {hidden}")
    return _stack(hidden, seed, dropout=dropout)


def single_task(n_in: int, hidden, task: str, n_out: int, seed: int = 0,
                dropout: float = 0.0, conv: dict | None = None) -> Model:
    """One MLP (or with ``hidden="conv"`` the CNN, sized by ``conv``) for one
    task: the single-task baseline; ``dropout`` after each hidden layer when > 0."""
    inp = Input((n_in,), name="x")
    h = inp
    for layer in _trunk(n_in, hidden, seed, dropout, conv) + [Dense(n_out, seed=seed + 100)]:
        h = layer(h)
    return Model(inp, {task: h})


def hard_sharing(n_in: int, hidden, outputs: dict, seed: int = 0, head=(),
                 dropout: float = 0.0, conv: dict | None = None) -> Model:
    """The MLP ``hidden`` shared (``dropout`` after each of its layers when > 0),
    or the CNN (``"conv"``) or its convolutional blocks (``"conv-features"``),
    sized by ``conv`` (``filters``, ``units``); per task, ReLU Dense layers of
    the widths ``head`` and a Dense output."""
    return HardSharing((n_in,), trunk=_trunk(n_in, hidden, seed, dropout, conv),
                       heads={t: _stack(head, seed + 50 + 10 * i) + [Dense(n, seed=seed + 100 + i)]
                              for i, (t, n) in enumerate(outputs.items())})


def task_norm_sharing(n_in: int, outputs: dict, seed: int = 0, conv: dict | None = None) -> Model:
    r"""The CNN of :func:`conv_trunk` with BatchNorm (``batch_norm=True``)
    shared by every task except its BatchNorms: each task runs the shared
    kernels through BatchNorms of its own (statistics, :math:`\gamma`,
    :math:`\beta`), then its Dense output -- the domain-specific
    normalisation of Bilen & Vedaldi (2017, "Universal representations").
    ``conv`` sizes the CNN (``filters``, ``units``).

    Each task's path is the shared layers called again (one node per task, the
    gradients of every task summed into the shared kernels). Against hard
    sharing of the same BatchNorm CNN, each task after the first adds
    :math:`2c` parameters per BatchNorm of :math:`c` channels or units (448
    with the defaults); the compute is that of one CNN per task, as the
    single-task models'."""
    conv = dict(conv or {})
    if not conv.pop("batch_norm", True):
        raise ValueError("task_norm_sharing shares a CNN but its BatchNorms; received "
                         "conv=dict(batch_norm=False), which has none")
    shared = conv_trunk(n_in, seed, batch_norm=True, **conv)
    inp = Input((n_in,), name="x")
    heads = {}
    for i, (task, n_out) in enumerate(outputs.items()):
        h = inp
        for layer in shared:  # the template's BatchNorms mark where each task's own go
            h = BatchNorm()(h) if isinstance(layer, BatchNorm) else layer(h)
        heads[task] = Dense(n_out, seed=seed + 100 + i)(h)
    return Model(inp, heads)


def _towers(hidden, outputs, seed):
    return {t: _stack(hidden, seed + 10 * i) + [Dense(n, seed=seed + 100 + i)]
            for i, (t, n) in enumerate(outputs.items())}


def soft_sharing(n_in: int, hidden, outputs: dict, penalty: float = 1e-3,
                 seed: int = 0) -> Model:
    """One MLP per task, hidden layers L2-coupled."""
    return SoftSharing((n_in,), _towers(hidden, outputs, seed), penalty=penalty)


def cross_stitch(n_in: int, hidden, outputs: dict, seed: int = 0) -> Model:
    """One MLP per task, a cross-stitch unit after every hidden layer."""
    return CrossStitchNet((n_in,), _towers(hidden, outputs, seed))


def mmoe(n_in: int, n_experts: int, expert_units: int, tower, outputs: dict,
         seed: int = 0) -> Model:
    """MMoE with ``n_experts`` one-layer experts, then a small tower per task."""
    towers = {t: _stack(tower, seed + 10 * i) + [Dense(n, seed=seed + 100 + i)]
              for i, (t, n) in enumerate(outputs.items())}
    return MMoENet((n_in,), n_experts, expert_units, towers, seed=seed)


LR_SCHEDULES = ("constant", "cosine")


def run(model: Model, train, test, loss, metrics=None, weighting="equal", epochs: int = 10,
        batch_size: int = 128, lr: float = 1e-3, seed: int = 0, optimizer: str = "adam",
        lr_schedule: str = "constant", weight_decay: float = 0.0,
        momentum: float | None = None, mixup: float = 0.0) -> dict:
    r"""Compile, fit on ``train = (x, {task: y})`` and evaluate on ``test``.

    ``lr_schedule="cosine"`` decays the rate over the ``epochs`` epochs by
    :func:`tinynet.recipes.cosine_schedule`, :math:`\eta_e = \tfrac12 \eta
    (1 + \cos(\pi e / E))` at epoch :math:`e` (from 0), as
    ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=E)`` does; ``"constant"``
    keeps ``lr``. ``weight_decay`` :math:`\lambda` is the optimizer's own (for
    ``"adam"`` an L2 term, :math:`g \leftarrow g + \lambda\theta` before the
    moments, as ``torch.optim.Adam(weight_decay=)``), on every parameter.
    ``momentum`` :math:`\mu` goes to optimizers that have one (``"sgd"``:
    :math:`v \leftarrow \mu v + g,\ \theta \leftarrow \theta - \eta v`, as
    ``torch.optim.SGD(momentum=)``); ``None`` leaves the optimizer's default.
    ``mixup`` :math:`\alpha > 0` trains on mixed pairs
    (:func:`tinynet.data.mixup.mixup`: every task's labels become class
    probabilities, one-hot rows mixed with the inputs' weights): before each
    epoch the whole training set is mixed afresh, from the generator of
    ``seed``'s mixup stream for that epoch (so a seeded run is reproducible),
    and that epoch trains on the mixed set; ``0`` trains on ``train`` as it is.
    Each task's output must be one logit per class.

    Returns
    -------
    dict
        ``test`` (evaluate's dict, only the model's tasks), ``params``,
        ``seconds`` (fit's wall time), ``cpu_seconds`` (its process CPU time,
        robust to other load on the machine), ``history`` (History.history).
    """
    from .. import optim
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"run expected lr_schedule as one of {', '.join(LR_SCHEDULES)}, "
                         f"received {lr_schedule!r}")
    callbacks = ([LearningRateScheduler(cosine_schedule(lr, epochs))]
                 if lr_schedule == "cosine" else None)
    tasks = model.output_names
    x, y = train
    x_test, y_test = test
    opt = optim.get(optimizer, lr=lr, weight_decay=weight_decay)
    if momentum is not None:
        if "momentum" not in opt.defaults:
            raise ValueError(f"run expected momentum only with an optimizer that has one "
                             f"(sgd, rmsprop), received optimizer={optimizer!r}")
        opt = optim.get(optimizer, lr=lr, weight_decay=weight_decay, momentum=momentum)
    alpha = check_real(mixup, "run", "mixup", low=0.0, high_open=True)  # 0: no mixup
    classes = _mixup_classes(model) if alpha else None
    model.compile(opt, loss=loss,
                  metrics=metrics, weighting=weighting)
    fit_args = dict(batch_size=batch_size, verbose=0, seed=seed, callbacks=callbacks)
    start, cpu_start = time.perf_counter(), time.process_time()
    if alpha:
        history = _fit_mixup(model, x, {t: y[t] for t in tasks}, epochs, alpha, classes,
                             fit_args)
    else:
        history = model.fit(x, {t: y[t] for t in tasks}, epochs=epochs, **fit_args).history
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    scores = model.evaluate(x_test, {t: y_test[t] for t in tasks})
    return {"test": scores, "params": model.count_params(), "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "history": {k: [float(v) for v in vals] for k, vals in history.items()}}


def _mixup_classes(model: Model) -> dict:
    """Each task's classes: its output's width, which must be one logit per class."""
    shapes = dict(zip(model.output_names, (out.shape for out in model.outputs)))
    wrong = {t: s for t, s in shapes.items() if len(s) != 1 or s[0] < 2}
    if wrong:
        raise ValueError(f"run(mixup=) expected every task's output to be one logit per "
                         f"class (2 or more), received output shapes {wrong} (per sample)")
    return {t: s[0] for t, s in shapes.items()}


def _fit_mixup(model: Model, x, y: dict, epochs: int, alpha: float, classes: dict,
               fit_args: dict) -> dict:
    """Train epoch by epoch, each on the training set mixed afresh
    (:func:`tinynet.data.mixup.mixup`); ``fit``'s seeded shuffles and layer
    randomness depend on the epoch only, so the epochs' order and dropout
    masks are those of one ``fit`` call. Returns the History dict."""
    seed = fit_args["seed"]
    unseeded = np.random.default_rng() if seed is None else None
    history: dict = {}
    for epoch in range(epochs):
        rng = unseeded if seed is None else epoch_rng(seed, epoch, MIXUP_STREAM)
        x_mixed, y_mixed = mix_pairs(x, y, alpha, classes, seed=rng)
        logs = model.fit(x_mixed, y_mixed, epochs=epoch + 1, initial_epoch=epoch,
                         **fit_args).history
        for key, values in logs.items():
            history.setdefault(key, []).extend(values)
    return history


def mean_std(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
