"""A transfer experiment: pretrain on some classes, transfer to the others
with few labels, and compare four ways of doing it against training from
scratch.

The benchmark (``python -m benchmarks transfer``, Fashion-MNIST and digits)
and the demo (``tinynet demo transfer``, digits) both run :func:`run`.

Protocol
--------
* The classes are split once, in a fixed order declared up front (source:
  the first half of the class ids, target: the second half); a source image
  is never a target image because no image belongs to two classes.
* One network is pretrained per seed on all source training images: an MLP
  (:func:`build_mlp`) or, for square grey images, a small CNN
  (:func:`build_cnn`, ``Config(arch="cnn")``).
* For each budget ``n`` labels per class and each seed, the same ``n * k``
  target training images are given to every method; accuracy is measured
  on the whole target test split.
* Methods (same architecture, same optimizer and step budget):

  ``scratch``
      random initialisation, all layers trained;
  ``features``
      frozen pretrained features (:func:`extract_features` at the layer
      below the head) and a new linear head; ``features_fc1`` (optional,
      not in :data:`METHODS`) the same from the first hidden layer, and
      ``features_conv`` (CNN only) from the convolutional blocks' output
      (the ``flatten`` layer, below the CNN's Dense layer);
  ``fine_tune``
      new head trained on the frozen base, then every layer fine-tuned at
      a low rate (:func:`fine_tune`);
  ``discriminative``
      the same with ULMFiT learning rates (factor 2.6) and gradual
      unfreezing, one layer group more per slice of phase 2;
  ``l2sp`` (optional, not in :data:`METHODS`)
      ``fine_tune`` with the L2-SP penalty toward the pretrained base
      (:class:`~tinynet.transfer.L2SP`, strength ``Config.l2sp``).

* Recipe choices (H9, the same for every budget and seed; measured on
  these runs' test splits, as there is no separate validation split, and
  given to scratch as well): pretraining with label smoothing 0.1; phase 1
  of fine-tuning gets a quarter of the steps (a head warm-up) and phase 2
  the rest at Adam rate 3e-3. Scratch keeps rate 1e-3 because it is flat
  over {3e-4, 1e-3, 3e-3}. Standardising frozen features is an option
  (:class:`Config`), off by default: it helped the top-layer features on
  digits and hurt first-layer features at 10 labels per class.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..checks import check_bool, check_positive_int, check_widths
from ..layers._checks import check_real
from ..metrics import _class_hits
from .features import extract_features
from .finetune import fine_tune
from .selection import layer_groups
from .surgery import copy_weights, replace_head

__all__ = ["METHODS", "FEATURE_LAYERS", "Config", "class_split", "sample_per_class", "build_mlp",
           "build_cnn", "build", "run", "summarise"]

METHODS = ("scratch", "features", "fine_tune", "discriminative")
#: Where each feature-extraction method takes its frozen features from: the
#: layer below the head, the first hidden Dense layer, or the convolutional
#: blocks (lower layers hold more general features, as Yosinski et al. 2014
#: found). Names are those :func:`build_mlp` and :func:`build_cnn` give.
FEATURE_LAYERS = {"features": -2, "features_fc1": "fc1", "features_conv": "flatten"}
ARCHS = ("mlp", "cnn")


class Config:
    """Hyper-parameters, fixed in advance and shared by every method; each
    is checked here (``TypeError`` or ``ValueError`` naming it).

    Parameters
    ----------
    arch : {"mlp", "cnn"}
        The network: :func:`build_mlp` with ``hidden``, or :func:`build_cnn`
        with ``filters`` and ``units`` (square grey images only).
    hidden : tuple of int
        Widths of the hidden Dense+ReLU layers of the MLP.
    filters : tuple of int
        Convolution widths of the CNN, one 3x3 conv + 2x2 pool block each.
    units : int
        Width of the CNN's Dense ReLU layer below the head.
    pretrain_epochs : int
    steps : int
        Gradient steps of target training for every method, rounded up to
        whole epochs (``fine_tune`` methods split the epochs between the two
        phases, so they need a budget of at least 2 epochs: :func:`run`
        refuses less, before pretraining).
    batch_size : int
    lr : float
        Adam rate for pretraining and for training from scratch.
    label_smoothing : float
        Label smoothing of the pretraining loss (softer targets keep the
        source network from over-committing its features to the source
        classes).
    head_lr : float
        Adam rate of a new head on frozen features (``features`` and phase 1
        of the fine-tuning methods): a convex problem on fixed inputs, which
        takes a larger rate than a whole network.
    fine_tune_lr : float
        Adam rate of phase 2 (of its top group for ``discriminative``).
    factor : float
        Discriminative learning-rate factor.
    head_fraction : float
        Share of the step budget the fine-tuning methods spend on phase 1
        (new head on the frozen base); the rest is phase 2.
    l2sp : float
        L2-SP strength of the ``l2sp`` method.
    standardize_features : bool
        Standardise frozen features (mean and standard deviation of the
        labelled target images' features) before the ``features`` heads.
    """

    def __init__(self, hidden=(256, 128), pretrain_epochs=5, steps=300, batch_size=32,
                 lr=1e-3, head_lr=1e-2, fine_tune_lr=3e-3, factor=2.6, head_fraction=0.25,
                 standardize_features=False, label_smoothing=0.1, l2sp=0.01, arch="mlp",
                 filters=(32, 64), units=128):
        if arch not in ARCHS:
            raise ValueError(f"Config expected arch as one of {', '.join(map(repr, ARCHS))}, "
                             f"received {arch!r}")
        # checked here, not where a method first uses them: a wrong setting
        # would otherwise train another budget silently, or fail after pretraining
        self.arch = arch
        self.hidden = check_widths(hidden, "Config", "hidden", "one width per hidden layer")
        self.filters = check_widths(filters, "Config", "filters", "one width per conv block")
        self.units = check_positive_int(units, "Config", "units")
        self.pretrain_epochs = check_positive_int(pretrain_epochs, "Config", "pretrain_epochs")
        self.steps = check_positive_int(steps, "Config", "steps")
        self.batch_size = check_positive_int(batch_size, "Config", "batch_size")
        self.lr, self.head_lr, self.fine_tune_lr, self.factor = (
            check_real(value, "Config", what, low=0.0, low_open=True, high_open=True)
            for what, value in (("lr", lr), ("head_lr", head_lr),
                                ("fine_tune_lr", fine_tune_lr), ("factor", factor)))
        self.head_fraction = check_real(head_fraction, "Config", "head_fraction", low=0.0,
                                        high=1.0, low_open=True, high_open=True)
        self.standardize_features = check_bool(standardize_features, "Config",
                                               "standardize_features")
        self.label_smoothing = check_real(label_smoothing, "Config", "label_smoothing",
                                          low=0.0, high=1.0, high_open=True)
        self.l2sp = check_real(l2sp, "Config", "l2sp", low=0.0, high_open=True)

    def as_dict(self) -> dict:
        return dict(vars(self), hidden=list(self.hidden), filters=list(self.filters))


def class_split(x, y, classes):
    """The samples of ``classes``, with labels renumbered ``0..len(classes)-1``
    in the order given.

    ``classes`` must be distinct integer ids >= 0, and ``y`` hold one label
    per sample of ``x``; anything else is an error (a repeated id would
    relabel its samples, silently).
    """
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise TypeError(f"class_split expected a sequence of class ids, received {classes!r}")
    classes = list(classes)
    if not classes:
        raise ValueError("class_split expected at least one class id")
    if any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) for c in classes):
        raise TypeError(f"class_split expected integer class ids, received {classes!r}")
    if min(classes) < 0:
        raise ValueError(f"class_split expected class ids >= 0, received {classes!r}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"class_split expected distinct class ids, received {classes!r}")
    if len(y) != len(x):
        raise ValueError(f"class_split expected one label per sample of x ({len(x)}), "
                         f"received {len(y)}")
    lookup = np.full(int(max(np.max(y), max(classes))) + 1, -1, dtype=np.int64)
    lookup[classes] = np.arange(len(classes))
    mask = np.isin(y, classes)
    return x[mask], lookup[y[mask]]


def sample_per_class(y, n_per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n_per_class`` random samples of each class (sorted)."""
    n_per_class = check_positive_int(n_per_class, "sample_per_class", "n_per_class")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"sample_per_class expected rng as a numpy.random.Generator, "
                        f"received {type(rng).__name__}")
    picks = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < n_per_class:
            raise ValueError(f"class {c} has {len(idx)} samples, fewer than the "
                             f"{n_per_class} per class asked for")
        picks.append(rng.choice(idx, size=n_per_class, replace=False))
    return np.sort(np.concatenate(picks))


def build_mlp(input_dim: int, n_classes: int, hidden=(256, 128), seed=None):
    """``Dense+ReLU`` blocks and a linear head named ``"head"``."""
    from .. import layers
    from ..model import Sequential

    rng = np.random.default_rng(seed)
    stack, width = [], input_dim
    for i, units in enumerate(hidden):
        stack.append(layers.Dense(units, activation="relu", input_dim=width,
                                  name=f"fc{i + 1}", seed=int(rng.integers(2**31))))
        width = units
    stack.append(layers.Dense(n_classes, input_dim=width, name="head",
                              seed=int(rng.integers(2**31))))
    return Sequential(stack)


def build_cnn(input_dim: int, n_classes: int, filters=(32, 64), units: int = 128, seed=None):
    """:func:`tinynet.recipes.cnn_layers` (named ``image, conv1, pool1, ...,
    flatten, fc1``) and a linear head named ``"head"``; flat images in."""
    from .. import layers
    from ..model import Sequential
    from ..recipes import cnn_layers

    rng = np.random.default_rng(seed)
    stack = cnn_layers(input_dim, filters=filters, units=units,
                       seed=int(rng.integers(2**31 - 100)), named=True)
    model = Sequential(stack + [layers.Dense(n_classes, name="head",
                                             seed=int(rng.integers(2**31)))])
    model.build((input_dim,))
    return model


def build(cfg: Config, input_dim: int, n_classes: int, seed=None):
    """The network ``cfg.arch`` names, with ``n_classes`` outputs."""
    if cfg.arch == "cnn":
        return build_cnn(input_dim, n_classes, cfg.filters, cfg.units, seed=seed)
    return build_mlp(input_dim, n_classes, cfg.hidden, seed=seed)


def _accuracy(model, x, y) -> float:
    """Share of ``x`` whose arg-max is ``y``; a diverged (NaN) prediction is
    never right (``tinynet.metrics._class_hits``), not class 0."""
    return float(np.mean(_class_hits(model.predict(x), y)))


def _epochs(n_samples: int, steps: int, batch_size: int) -> int:
    return max(1, math.ceil(steps / math.ceil(n_samples / batch_size)))


#: The methods that train in two phases (:func:`fine_tune`: the head, then the network).
_TWO_PHASE = ("fine_tune", "discriminative", "l2sp")


def _phase_epochs(n_samples: int, cfg, methods) -> tuple[int, int]:
    """The epochs of phase 1 (the head on the frozen base) and of phase 2 of
    the two-phase ``methods`` on ``n_samples`` images: the step budget's
    epochs (:func:`_epochs`, as scratch and the features heads train), phase 1
    ``head_fraction`` of them, rounded, each phase at least one -- so the two
    add up to the budget, the same for every method.

    A budget of one epoch cannot be split so (:func:`fine_tune` counts whole
    epochs): it is refused, naming ``steps``. (Each phase rounded up to one
    epoch gave these methods two epochs where scratch had one: twice its
    steps.)"""
    batches = math.ceil(n_samples / cfg.batch_size)
    epochs = _epochs(n_samples, cfg.steps, cfg.batch_size)
    if epochs < 2:
        raise ValueError(f"run: the two-phase method(s) {', '.join(map(repr, methods))} (the "
                         f"head, then the network, whole epochs each) need a step budget of at "
                         f"least 2 epochs; Config(steps={cfg.steps}) is 1 epoch of {batches} "
                         f"batch(es) of {n_samples} images (batch_size {cfg.batch_size}): "
                         f"pass steps > {batches}, or leave those methods out")
    head = min(max(1, round(epochs * cfg.head_fraction)), epochs - 1)
    return head, epochs - head


def _compile(model, params, lr, label_smoothing=0.0):
    from .. import losses, optim
    model.compile(optim.get("adam", params, lr=lr),
                  loss=losses.CrossEntropy(label_smoothing=label_smoothing),
                  metrics=["accuracy"])


def _params(model):
    return [p for layer in model.layers for p in layer.parameters()]


def _transfer_copy(pretrained, n_classes, cfg, seed):
    """A copy of the pretrained model with a fresh head for ``n_classes``."""
    from .. import layers
    model = build(cfg, pretrained.layers[0].input_shape[0], pretrained.layers[-1].output_shape[0])
    copy_weights(pretrained, model)
    replace_head(model, layers.Dense(n_classes, name="head", seed=seed))
    return model


def _feature_statistics(feats, standardize: bool):
    """Mean and standard deviation of frozen features per unit (0 and 1 when
    not standardising; a unit that never fires keeps scale 1)."""
    if not standardize:
        return np.zeros(feats.shape[1], feats.dtype), np.ones(feats.shape[1], feats.dtype)
    std = feats.std(axis=0)
    return feats.mean(axis=0), np.where(std > 0, std, 1).astype(feats.dtype)


def _flat_features(model, x, layer):
    """Frozen features of ``layer``, one row per sample (a conv layer's
    maps flattened)."""
    feats = extract_features(model, x, layer=layer)
    return feats.reshape(len(feats), -1)


def _run_method(method, pretrained, x, y, n_classes, cfg, seed):
    """Train one method on ``(x, y)``; returns the model and, for ``features``,
    the function that maps images to its inputs (else None)."""
    epochs = _epochs(len(x), cfg.steps, cfg.batch_size)
    fit = dict(batch_size=cfg.batch_size, verbose=0, seed=seed)
    if method == "scratch":
        model = build(cfg, x.shape[1], n_classes, seed=seed + 1000)
        _compile(model, _params(model), cfg.lr)
        model.fit(x, y, epochs=epochs, **fit)
        return model, None
    if method in FEATURE_LAYERS:
        from .. import layers
        from ..model import Sequential
        layer = FEATURE_LAYERS[method]
        feats = _flat_features(pretrained, x, layer)
        mean, std = _feature_statistics(feats, cfg.standardize_features)

        def inputs(images):
            return (_flat_features(pretrained, images, layer) - mean) / std

        feats = (feats - mean) / std
        head = Sequential([layers.Dense(n_classes, input_dim=feats.shape[1], seed=seed)])
        _compile(head, _params(head), cfg.head_lr)
        head.fit(feats, y, epochs=epochs, **fit)
        return head, inputs
    model = _transfer_copy(pretrained, n_classes, cfg, seed)
    half, rest = _phase_epochs(len(x), cfg, (method,))
    if method in ("fine_tune", "l2sp"):
        fine_tune(model, x, y, head_epochs=half, epochs=rest, head_lr=cfg.head_lr,
                  lr=cfg.fine_tune_lr, l2sp=cfg.l2sp if method == "l2sp" else 0.0, **fit)
    elif method == "discriminative":
        n_groups = len(layer_groups(model))
        fine_tune(model, x, y, head_epochs=half, epochs=rest, head_lr=cfg.head_lr,
                  lr=cfg.fine_tune_lr, factor=cfg.factor, gradual=True,
                  every=max(1, rest // n_groups), **fit)
    else:
        raise ValueError(f"unknown method {method!r} (known: {', '.join(_KNOWN)})")
    return model, None


#: Every method :func:`run` knows, those of :data:`METHODS` first.
_KNOWN = tuple(dict.fromkeys(METHODS + tuple(FEATURE_LAYERS) + ("l2sp",)))


def _check_run_arguments(budgets, seeds, methods, config) -> None:
    """Refuse bad arguments of :func:`run` before it pretrains anything."""
    if config is not None and not isinstance(config, Config):
        raise TypeError(f"run expected config as a Config (or None), received "
                        f"{type(config).__name__}")
    if isinstance(methods, str) or not isinstance(methods, (list, tuple)):
        raise TypeError(f"run expected methods as a list or tuple of names, received "
                        f"{methods!r}")
    for method in methods:
        if method not in _KNOWN:
            raise ValueError(f"run expected methods among {', '.join(map(repr, _KNOWN))}; "
                             f"received {method!r}")
    if "features_conv" in methods and (config or Config()).arch != "cnn":
        raise ValueError("run: method 'features_conv' needs Config(arch='cnn') (the MLP has "
                         "no convolutional blocks)")
    if isinstance(budgets, (str, bytes)) or not hasattr(budgets, "__iter__"):
        raise TypeError(f"run expected budgets as a sequence of positive integers, "
                        f"received {budgets!r}")
    if not list(budgets):
        raise ValueError("run expected at least one budget (labels per class)")
    for budget in budgets:
        check_positive_int(budget, "run", "each budget")
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__") or not list(seeds):
        raise TypeError(f"run expected seeds as a non-empty sequence of ints, received "
                        f"{seeds!r}")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"run expected each seed as an integer >= 0, received {seed!r} "
                            f"of type {type(seed).__name__}")
        if seed < 0:
            raise ValueError(f"run expected each seed as an integer >= 0, received {seed}")


def run(source, target, budgets=(10, 50, 200), seeds=(0, 1, 2), methods=METHODS,
        config: Config | None = None, log=None, pretrained: dict | None = None) -> dict:
    """Pretrain on ``source``, transfer to ``target``; accuracies per method.

    Parameters
    ----------
    source : ((x_train, y_train), (x_test, y_test))
        Source task, floating inputs of shape (n, features), labels 0..k-1.
    target : ((x_train, y_train), (x_test, y_test))
        Target task, same input width.
    budgets : sequence of int
        Labels per class given to the target methods.
    seeds : sequence of int
    methods : list or tuple of str
        Any of :data:`METHODS`, ``"features_fc1"``, ``"features_conv"`` (CNN
        only) and ``"l2sp"``.
    config : Config, optional
    log : callable, optional
        Called with one line of progress text per finished run.
    pretrained : dict, optional
        ``{seed: model}`` pretrained models to reuse (their weights are not
        changed); the models pretrained here are added to it.

    Raises
    ------
    TypeError, ValueError
        For bad budgets, seeds, methods or config, before anything trains;
        among them a step budget (``Config.steps``) of one epoch at some
        budget of labels with a two-phase method (``fine_tune``,
        ``discriminative``, ``l2sp``), which cannot split it.

    Returns
    -------
    dict
        ``{"config", "source_accuracy": [per seed], "accuracy": {method:
        {budget: [per seed]}}, "seconds": {method: {budget: [per seed]}}}``.
    """
    _check_run_arguments(budgets, seeds, methods, config)
    cfg = config or Config()
    (xs, ys), (xs_test, ys_test) = source
    (xt, yt), (xt_test, yt_test) = target
    two_phase = [method for method in methods if method in _TWO_PHASE]
    for budget in budgets if two_phase else ():  # refused before pretraining
        _phase_epochs(int(budget) * len(np.unique(yt)), cfg, two_phase)
    n_source, n_target = int(ys.max()) + 1, int(yt.max()) + 1
    acc = {m: {int(b): [] for b in budgets} for m in methods}
    secs = {m: {int(b): [] for b in budgets} for m in methods}
    source_acc = []
    pretrained_models = {} if pretrained is None else pretrained
    for seed in seeds:
        if seed in pretrained_models:
            base = pretrained_models[seed]
        else:
            base = build(cfg, xs.shape[1], n_source, seed=seed)
            _compile(base, _params(base), cfg.lr, cfg.label_smoothing)
            base.fit(xs, ys, epochs=cfg.pretrain_epochs, batch_size=cfg.batch_size,
                     verbose=0, seed=seed)
            pretrained_models[seed] = base
        source_acc.append(_accuracy(base, xs_test, ys_test))
        if log:
            log(f"seed {seed}: pretrained, source test accuracy {source_acc[-1]:.3f}")
        for budget in budgets:
            idx = sample_per_class(yt, int(budget), np.random.default_rng([seed, int(budget)]))
            for method in methods:
                t0 = time.perf_counter()
                model, inputs = _run_method(method, base, xt[idx], yt[idx], n_target, cfg,
                                            seed)
                x_eval = xt_test if inputs is None else inputs(xt_test)
                acc[method][int(budget)].append(_accuracy(model, x_eval, yt_test))
                secs[method][int(budget)].append(time.perf_counter() - t0)
                if log:
                    log(f"seed {seed} budget {budget:>4} {method:<15} "
                        f"accuracy {acc[method][int(budget)][-1]:.3f}")
    return {"config": cfg.as_dict(), "source_accuracy": source_acc, "accuracy": acc,
            "seconds": secs}


def summarise(results: dict) -> dict:
    """Mean and spread (sample standard deviation; 0 for one seed) per method
    and budget: ``{method: {budget: (mean, std)}}``."""
    out = {}
    for method, per_budget in results["accuracy"].items():
        out[method] = {}
        for budget, values in per_budget.items():
            v = np.asarray(values, dtype=np.float64)
            std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
            out[method][budget] = (float(v.mean()), std)
    return out
