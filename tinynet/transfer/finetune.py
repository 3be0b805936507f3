"""Fine-tuning: discriminative learning rates, gradual unfreezing, and the
two-phase recipe in one call.

Discriminative learning rates (Howard & Ruder 2018, ULMFiT): the top layer
group learns at ``base_lr`` and each group below at the rate of the group
above divided by ``factor`` (2.6 by default), because lower layers hold more
general features that should move less:

.. math::
    \\eta_{k} = \\eta_{\\text{base}} / \\text{factor}^{\\,K-1-k},
    \\qquad k = 0 \\text{ (bottom)}, \\dots, K-1 \\text{ (top)}

Gradual unfreezing (also ULMFiT): train only the top group for an epoch,
then unfreeze the next group down, one more per epoch, until all train.

The recipe (Keras' transfer-learning guide, ULMFiT): train a new head with
the pretrained base frozen, then unfreeze and fine-tune everything at a low
learning rate. :func:`fine_tune` runs both phases and returns both histories.
"""

from __future__ import annotations

import copy
from collections import namedtuple

import numpy as np

from ..callbacks import Callback, as_callback_list
from ..checks import check_bool, check_positive_int, check_seed
from ..layers._checks import check_real
from ..layers.base import Layer, walk_layers
from ..layers.normalization import BatchNorm
from .freezing import restore_trainable, snapshot_trainable, trainable_layers
from .l2sp import L2SP
from .selection import (check_every_layer_grouped, check_groups, check_layer_refs,
                        layer_groups, layer_index, model_layers, select_layers)

__all__ = ["discriminative_param_groups", "discriminative_lrs", "GradualUnfreezing",
           "fine_tune", "FineTuneHistory"]


def _check_lr(value, who: str, what: str) -> float:
    """A finite positive real number (a rate, a factor), NumPy's included."""
    return check_real(value, who, what, low=0.0, low_open=True, high_open=True)


def _rates(n_groups, base_lr, factor, who: str) -> list[float]:
    """:func:`discriminative_lrs`, its arguments checked in the name of ``who``."""
    n_groups = check_positive_int(n_groups, who, "n_groups")
    base_lr = _check_lr(base_lr, who, "base_lr")
    factor = _check_lr(factor, who, "factor")
    return [base_lr / factor ** (n_groups - 1 - k) for k in range(n_groups)]


def discriminative_lrs(n_groups: int, base_lr: float, factor: float = 2.6) -> list[float]:
    """Learning rates of ``n_groups`` groups, bottom first, the top one ``base_lr``."""
    return _rates(n_groups, base_lr, factor, "discriminative_lrs")


def discriminative_param_groups(model, base_lr: float, factor: float = 2.6,
                                groups=None) -> list[dict]:
    """Parameter groups with ULMFiT's discriminative learning rates.

    Parameters
    ----------
    model : Sequential
    base_lr : float
        Rate of the top group (the head).
    factor : float, default 2.6
        Each group down gets the rate of the group above divided by this.
    groups : None, int or list of layer references
        How layers are grouped (see :func:`tinynet.transfer.layer_groups`):
        default one group per layer with parameters. A list must put every
        layer with parameters in a group (a layer left out would be in no
        group of the optimizer, so never trained): freeze a layer to keep it
        as it is.

    Returns
    -------
    list of dict
        ``[{"params": [Param, ...], "lr": float}, ...]``, bottom group first,
        for any tinynet optimizer: ``tn.optim.Adam(groups, lr=base_lr)``.
        Frozen parameters are included: optimizers skip them while they are
        frozen and train them at their group's rate once unfrozen.
    """
    layers = model_layers(model)
    index_groups = layer_groups(model, groups)
    check_every_layer_grouped(model, index_groups, "discriminative_param_groups")
    lrs = _rates(len(index_groups), base_lr, factor, "discriminative_param_groups")
    out = []
    for idx, lr in zip(index_groups, lrs):
        params = [p for i in idx for p in layers[i].parameters()]
        if not params:
            names = [layers[i].name for i in idx]
            raise ValueError(f"layer group {names} has no parameters")
        out.append({"params": params, "lr": lr})
    return out


def _freeze_kept(layers) -> None:
    """Freeze ``layers``, the ones kept frozen while others are unfrozen:
    called after the unfreezing, since unfreezing a container (a nested
    base) unfreezes every layer inside it, a kept BatchNorm too. The one
    place a ``keep_frozen`` is applied: by :class:`GradualUnfreezing` at each
    epoch, and by :func:`fine_tune` at the start of phase 2."""
    for layer in layers:
        layer.trainable = False


class GradualUnfreezing(Callback):
    """Unfreeze one more layer group per ``every`` epochs, from the top.

    At the start of training every group but the top one is frozen; at the
    start of epoch ``e`` (counted from the first epoch of the run) the top
    ``1 + e // every`` groups train.

    Parameters
    ----------
    groups : None, int or list of layer references
        Layer groups (see :func:`tinynet.transfer.layer_groups`); default
        one per layer with parameters.
    every : int, default 1
        Epochs between two unfreezing steps.
    keep_frozen : layer reference or Layer, optional
        Layers never unfrozen (for example BatchNorm layers or a bottom
        block you want to keep as it is): references to ``model.layers``
        (index, name, slice, range), or the Layer objects themselves, which
        may also be layers *inside* a nested model (the BatchNorm of a base
        used as one layer: unfreezing the base would unfreeze it too).
        Kept, and read back, as a tuple: a list given is copied, so to
        change what stays frozen set the attribute again
        (``cb.keep_frozen = [...]``), which checks the new value.

    Attributes
    ----------
    schedule : list of (int, list of str)
        For each epoch begun, the epoch and the names of the trainable
        layers with parameters (:func:`tinynet.transfer.trainable_layers`:
        ``"base/fc2"`` inside a partly frozen nested base): what happened,
        for inspection and plots.

    Notes
    -----
    Optimizers skip frozen parameters at each step and take unfrozen ones
    back, so build the optimizer over *all* parameters (as
    :func:`discriminative_param_groups` does).

    What can be checked without the model is checked when the callback is
    made (:func:`~tinynet.transfer.selection.check_groups`,
    :func:`~tinynet.transfer.selection.check_layer_refs`): the types of
    ``groups`` and ``keep_frozen``, ``groups`` below 1 or an empty list,
    and groups given by non-negative indices that overlap or are out of
    order. Names, negative indices and slices are resolved, and checked,
    against the model when ``fit`` starts.
    """

    def __init__(self, groups=None, every: int = 1, keep_frozen=None):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"GradualUnfreezing expected every as a positive int, "
                             f"received {every!r}")
        # what can be checked without the model is checked now, not at fit
        check_groups(groups, "GradualUnfreezing")
        self.groups = groups
        self.every = int(every)
        self.keep_frozen = keep_frozen
        self.schedule: list[tuple[int, list[str]]] = []
        self._first_epoch = None

    @property
    def keep_frozen(self) -> tuple:
        """The layers never unfrozen, a tuple of what was given (see the class
        docstring): split and checked when set, so that a list changed in
        place afterwards would be silently ignored; a tuple cannot be."""
        return self._keep_frozen

    @keep_frozen.setter
    def keep_frozen(self, keep_frozen) -> None:
        # split once, here, into references to model.layers (checked now, as
        # far as they can be without the model) and Layer objects
        refs = () if keep_frozen is None else \
            tuple(keep_frozen) if isinstance(keep_frozen, (list, tuple)) else (keep_frozen,)
        keep_refs = [ref for ref in refs if not isinstance(ref, Layer)]
        for ref in keep_refs:
            check_layer_refs(ref, "GradualUnfreezing", "keep_frozen")
        self._keep_refs = keep_refs
        self._keep_layers = [ref for ref in refs if isinstance(ref, Layer)]
        self._keep_frozen = refs

    def n_unfrozen(self, epoch: int, n_groups: int) -> int:
        """How many top groups train during ``epoch`` (0-based)."""
        return min(n_groups, 1 + int(epoch) // self.every)

    def _kept(self, model) -> list:
        """``keep_frozen`` as the Layer objects of ``model`` it names."""
        inside = {id(layer) for layer in walk_layers(model)}
        for layer in self._keep_layers:
            if id(layer) not in inside:
                raise ValueError(f"GradualUnfreezing: keep_frozen holds {layer!r}, which is "
                                 f"not a layer of the model being trained")
        layers = model_layers(model)
        return [layers[i] for i in select_layers(model, self._keep_refs)] + self._keep_layers

    def _apply(self, model, epoch: int) -> None:
        layers = model_layers(model)
        index_groups = layer_groups(model, self.groups)
        kept = self._kept(model)  # resolved (and refused) before any flag changes
        k = self.n_unfrozen(epoch, len(index_groups))
        for g, idx in enumerate(index_groups):
            for i in idx:
                layers[i].trainable = g >= len(index_groups) - k
        _freeze_kept(kept)
        self.schedule.append((int(epoch), trainable_layers(model)))

    def on_train_begin(self, logs=None):
        self.schedule = []
        self._first_epoch = None
        # freeze before anything runs, so that no step sees the base trainable
        self._apply(self.model, 0)

    def on_epoch_begin(self, epoch, logs=None):
        # epochs count from this run's first (fit may start at initial_epoch)
        if self._first_epoch is None:
            self._first_epoch = int(epoch)
            self.schedule.clear()
        self._apply(self.model, int(epoch) - self._first_epoch)


FineTuneHistory = namedtuple("FineTuneHistory", ["head", "fine_tune"])
FineTuneHistory.__doc__ = """Histories of the two phases of :func:`fine_tune`."""


def _make_optimizer(optimizer, params, lr):
    if isinstance(optimizer, str):
        from .. import optim
        return optim.get(optimizer, params, lr=lr)
    if callable(optimizer):
        return optimizer(params, lr=lr)
    raise TypeError(f"fine_tune expected optimizer as a name ('adam') or a class or "
                    f"function called as optimizer(params, lr=...), received "
                    f"{type(optimizer).__name__}")


def _head_on_top(model, groups, first_head: int) -> list[list[int]]:
    """Layer groups with the whole head as the top group (so that a head of
    several layers trains together, as in phase 1)."""
    layers = model_layers(model)
    index_groups = layer_groups(model, groups)
    base = [[i for i in g if i < first_head] for g in index_groups]
    base = [g for g in base if any(layers[i].parameters() for i in g)]
    return base + [list(range(first_head, len(layers)))]


def fine_tune(model, x, y, *, head=1, head_epochs: int = 5, epochs: int = 5,
              head_lr: float = 1e-3, lr: float = 1e-4, optimizer="adam",
              loss="cross_entropy", metrics=("accuracy",), factor: float | None = None,
              groups=None, gradual: bool = False, every: int = 1,
              keep_batchnorm_frozen: bool = True, l2sp: float = 0.0, l2sp_beta: float = 0.0,
              batch_size: int = 32,
              validation_data=None, callbacks=None, verbose: int = 0, seed=None,
              **fit_kwargs) -> FineTuneHistory:
    """The two-phase transfer recipe: train the head on a frozen base, then
    unfreeze and fine-tune at a low learning rate.

    Parameters
    ----------
    model : Sequential
        A pretrained base with a new head on top (see
        :func:`~tinynet.transfer.replace_head`); changed in place.
    x, y : training data, as for ``model.fit``
    head : int or str, default 1
        The head: its number of top layers, or the name of its first layer.
    head_epochs, epochs : int
        Epochs of phase 1 (head only) and phase 2 (fine-tuning).
        ``head_epochs=0`` skips phase 1 (its history is then None).
    head_lr, lr : float
        Learning rate of phase 1, and of phase 2 (of its top group when
        ``factor`` is given). Keep ``lr`` low: large updates wreck the
        pretrained features while the head's gradients are still large.
    optimizer : str or callable, default "adam"
        A name for ``tn.optim.get`` or ``callable(params, lr=...)``; a fresh
        optimizer is built for each phase.
    loss, metrics : as for ``model.compile``
    factor : float, optional
        Use discriminative learning rates in phase 2
        (:func:`discriminative_param_groups`; ULMFiT uses 2.6).
    groups : None, int or list of layer references
        Layer groups for ``factor`` and ``gradual``. With None or an int the
        base is grouped as :func:`~tinynet.transfer.layer_groups` says and
        the whole head forms the top group; a list must put every layer
        with parameters, the head's included, in a group.
    gradual : bool, default False
        Add :class:`GradualUnfreezing` (one more group every ``every``
        epochs) to phase 2.
    keep_batchnorm_frozen : bool, default True
        Keep BatchNorm layers of the base frozen in phase 2 (moving
        statistics, no updates): Keras' advice, since a small target set
        gives poor batch statistics.
    l2sp : float, default 0
        Strength of the L2-SP penalty (:class:`~tinynet.transfer.L2SP`) that
        pulls the base's parameters toward their values at the start of
        phase 2 (the pretrained ones) during phase 2; 0 turns it off.
    l2sp_beta : float, default 0
        Strength ``beta`` of L2-SP's second term, plain L2 (weight decay
        toward 0) on the head's parameters during phase 2; 0 turns it off.
        With either on, phase 2 logs the penalty as ``"l2sp_penalty"``
        (its ``"loss"`` is the compiled loss alone; see
        :mod:`tinynet.transfer.l2sp`). The penalty is detached from the
        optimizer when phase 2 ends, so a later ``model.fit`` trains the
        compiled loss alone, as a saved and loaded model would (a model
        file does not hold the penalty); to go on with it, attach an
        :class:`~tinynet.transfer.L2SP` to ``model.optimizer`` again.
    batch_size, validation_data, callbacks, verbose, seed, **fit_kwargs
        Passed to ``model.fit`` in both phases.

    Returns
    -------
    FineTuneHistory
        ``(head, fine_tune)``: the History of each phase. A ``History``
        among ``callbacks`` records both phases in turn, so it ends as
        ``fine_tune``, and ``head`` is a copy of its phase-1 record.

    Raises
    ------
    TypeError, ValueError
        For any bad argument, phase 2's included, before phase 1 trains; a
        model that is not built (it has no pretrained weights) is one.
        If training itself fails (bad labels, a callback raising...), every
        layer's ``trainable`` flag and the model's compile settings
        (optimizer, loss, metrics) are restored before the error propagates;
        weights already updated stay updated.

    Notes
    -----
    Layers frozen before the call stay frozen in both phases (a phase
    that would so train nothing, a frozen head or a model frozen
    throughout, is refused), so
    ``freeze(model, upto=k)`` first keeps the bottom ``k`` layers as they are;
    this holds inside a nested base too (``Sequential([base, head])`` with
    a frozen block or a BatchNorm in ``base``).
    """
    layers = model_layers(model)
    n = len(layers)
    if not getattr(model, "built", True):
        # its layers have no parameters yet: every check below would misread it
        raise ValueError("fine_tune: the model is not built, so it has no pretrained weights "
                         "to fine-tune: train or load the base first (or build(input_shape))")
    if isinstance(head, str):
        first_head = layer_index(model, head)
    elif isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not 1 <= head < n:
        raise ValueError(f"fine_tune expected head as a layer name or a number of top layers "
                         f"between 1 and {n - 1}, received {head!r}")
    else:
        first_head = n - int(head)
    if first_head == 0:
        raise ValueError(f"fine_tune: head {head!r} leaves no base below it")
    if not any(layer.parameters() for layer in layers[first_head:]):
        # phase 1 would train nothing (a Softmax or Dropout on top of the new Dense)
        names = ", ".join(repr(layer.name) for layer in layers[first_head:])
        raise ValueError(f"fine_tune: the head {head!r} ({names}) has no parameters to train; "
                         f"count the layers below it too (head=2...) or name its first layer")
    for what, value in (("head_epochs", head_epochs), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"fine_tune expected {what} as a non-negative int, "
                             f"received {value!r}")
    # Every argument is checked before phase 1 trains: a bad phase-2 setting
    # must not cost the head's training (nor leave the base frozen).
    if head_epochs:
        head_lr = _check_lr(head_lr, "fine_tune", "head_lr")
    lr = _check_lr(lr, "fine_tune", "lr")
    if factor is not None:
        factor = _check_lr(factor, "fine_tune", "factor")
    l2sp = check_real(l2sp, "fine_tune", "l2sp", low=0.0, high_open=True)
    l2sp_beta = check_real(l2sp_beta, "fine_tune", "l2sp_beta", low=0.0, high_open=True)
    check_positive_int(batch_size, "fine_tune", "batch_size")
    gradual = check_bool(gradual, "fine_tune", "gradual")  # "no" must not mean True
    keep_batchnorm_frozen = check_bool(keep_batchnorm_frozen, "fine_tune",
                                       "keep_batchnorm_frozen")
    check_seed(seed, "fine_tune")
    user_callbacks = as_callback_list(callbacks, "fine_tune")
    if groups is None or isinstance(groups, (int, np.integer)):
        groups = _head_on_top(model, groups, first_head)
    else:  # refuses bad, overlapping or incomplete groups now
        check_every_layer_grouped(model, layer_groups(model, groups), "fine_tune")
    # flags of the whole tree: a nested base (Sequential([base, head])) keeps
    # its own frozen blocks and BatchNorms, which top-level flags cannot say
    was_trainable = snapshot_trainable(model)
    keep_frozen = [layer for layer, trainable in was_trainable[0]
                   if not trainable and not layer.sublayers()]
    if keep_batchnorm_frozen:
        keep_frozen += [layer for base in layers[:first_head] for layer in walk_layers(base)
                        if isinstance(layer, BatchNorm) and layer not in keep_frozen]
    params = [p for layer in layers for p in layer.parameters()]
    # layers frozen before the call stay frozen: a phase with nothing to train
    # would run its epochs and change nothing, silently
    if head_epochs and not any(p.trainable for layer in layers[first_head:]
                               for p in layer.parameters()):
        names = ", ".join(repr(layer.name) for layer in layers[first_head:])
        raise ValueError(f"fine_tune: every parameter of the head ({names}) is frozen, so "
                         f"phase 1 would train nothing; unfreeze it, or pass head_epochs=0")
    kept = {id(p) for layer in keep_frozen for p in layer.parameters()}
    if epochs and not any(trainable and id(p) not in kept for p, trainable in was_trainable[1]):
        raise ValueError("fine_tune: every parameter of the model is frozen (or a BatchNorm "
                         "kept frozen), so phase 2 would train nothing; unfreeze what should "
                         "train (layers frozen before the call stay frozen), or pass epochs=0")
    phase2_params = (discriminative_param_groups(model, lr, factor, groups)
                     if factor is not None else params)
    unfreezing = (GradualUnfreezing(groups, every=every, keep_frozen=keep_frozen)
                  if gradual else None)
    fit_args = dict(batch_size=batch_size, validation_data=validation_data,
                    verbose=verbose, seed=seed, **fit_kwargs)

    compiled = {key: vars(model)[key] for key in model.COMPILE_ATTRIBUTES
                if key in vars(model)}
    try:
        history_head = None
        if head_epochs:
            restore_trainable(was_trainable)
            for layer in layers[:first_head]:
                layer.trainable = False
            model.compile(_make_optimizer(optimizer, params, head_lr), loss=loss,
                          metrics=metrics)
            history_head = model.fit(x, y, epochs=int(head_epochs), callbacks=user_callbacks,
                                     **fit_args)
            if any(cb is history_head for cb in user_callbacks):
                # a History given by the user is filled again by phase 2 (its
                # on_train_begin starts new records, as Keras'): keep phase 1's
                history_head = copy.copy(history_head)

        restore_trainable(was_trainable)
        _freeze_kept(keep_frozen)
        model.compile(_make_optimizer(optimizer, phase2_params, lr), loss=loss,
                      metrics=metrics)
        phase2_callbacks = list(user_callbacks)
        penalty = None
        if l2sp or l2sp_beta:
            penalty = L2SP([p for layer in layers[:first_head] for p in layer.parameters()],
                           l2sp, [p for layer in layers[first_head:] for p in layer.parameters()],
                           l2sp_beta)
            penalty.attach(model.optimizer)
            phase2_callbacks.insert(0, penalty.logger())  # before a History given by the user
        if unfreezing is not None:
            phase2_callbacks.insert(0, unfreezing)
        try:
            history_fine = (model.fit(x, y, epochs=int(epochs), callbacks=phase2_callbacks,
                                      **fit_args) if epochs else None)
        finally:
            if penalty is not None:  # phase 2's objective only: a later fit trains unpenalised
                penalty.detach(model.optimizer)
    except BaseException:
        # what trained stays trained, but the model is handed back as it came:
        # the same layers trainable, the same compile settings
        restore_trainable(was_trainable)
        vars(model).update(compiled)
        raise
    return FineTuneHistory(history_head, history_fine)
