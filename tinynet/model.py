"""Sequential: a stack of layers with Keras' compile / fit / evaluate / predict.

>>> import numpy as np, tinynet as tn
>>> from tinynet.layers import Dense, Dropout
>>> model = tn.Sequential([Dense(32, activation="relu", input_dim=64), Dropout(0.2), Dense(10)])
>>> model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
>>> x = np.random.default_rng(0).random((100, 64), dtype=np.float32)
>>> y = np.arange(100) % 10
>>> history = model.fit(x, y, epochs=2, batch_size=32, verbose=0, seed=0)
>>> sorted(history.history)
['accuracy', 'loss']

A ``Sequential`` is itself a :class:`~tinynet.layers.Layer` (forward runs
its layers in order, backward in reverse), so models nest: a trained model
can be the first "layer" of a new one (transfer learning).

Outputs: logits or probabilities
--------------------------------
tinynet's classification losses take *logits* (``CrossEntropy`` applies the
softmax itself, stably), so the model to prefer ends in a plain
``Dense(n_classes)``; :meth:`Sequential.predict` then returns logits. A
Keras-style model whose last layer ends in a softmax (sigmoid) --
``Dense(10, activation="softmax")``, a ``Softmax()`` layer, or a nested
``Sequential`` ending so -- outputs probabilities, and ``compile`` fits the
training to that: ``"cross_entropy"`` (``"binary_cross_entropy"``) becomes
its twin that takes probabilities (:mod:`tinynet.output_losses`: the same
loss and, through the softmax, the same gradient :math:`(p - t)/B`), and an
``"accuracy"`` on one sigmoid unit thresholds at 0.5 instead of 0
(:func:`tinynet.metrics.for_output`). Either way,
:meth:`Sequential.predict_proba` gives probabilities and
:meth:`Sequential.predict_classes` labels.

Reproducibility
---------------
``fit(seed=s)`` fixes the shuffling, the dropout masks and the initial
weights of every layer that ``fit`` itself builds (a model whose first
layer has no ``input_dim`` is built on its first batch). Layers built at
construction drew their weights from their own ``seed=`` (random when
unset); :meth:`Sequential.reset_parameters` re-draws them all from one seed.
``predict`` and ``evaluate`` refuse a model that is not built yet (Keras
would build it): its weights would be unseeded random draws, kept by a later
``fit(seed=s)``, which would then not be reproducible.
"""

from __future__ import annotations

import sys

import numpy as np

from . import _userwarn
from . import io as model_io
from . import losses as losses_mod
from . import metrics as metrics_mod
from .checks import (as_array, as_float_array, as_sample_weight, check_batch_size, check_bool,
                     check_finite, check_seed, summable_weights)
from .class_weights import class_sample_weights, largest_class_weight, weighted_by_class
from .data.batches import as_generator
from .layers._checks import check_real
from .layers.base import (Layer, adopt, apply_frozen_containers, layer_from_dict,
                          layer_to_dict, release, shape_str, stale_cache_error, unique_name)
from .output_losses import (NormalizedOutputCrossEntropy, for_output, output_activation,
                            row_probabilities)
from .callbacks import CALLBACK_LOG_KEYS, Callback, as_callback_list
from .progress import PassProgress, check_verbose
from .data.batches import n_batches
from .training import (BUILD_STREAM, RunningMeans, batch_indices, check_targets, fit_loop,
                       seed_rng)

__all__ = ["Sequential"]


class _EpochMetrics(Callback):
    """``fit``'s first callback: the metrics' accumulation of each epoch's
    samples (:class:`tinynet.metrics.MetricStates`), started afresh before
    the epoch and dropped when training ends (as the multi-task models'
    ``fit`` keeps theirs, :mod:`tinynet.training`), and the epoch logs get
    the metrics' exact values (:meth:`tinynet.metrics.Metric.result`) of
    the epoch's samples. The last batch logs them already (computed once:
    the :class:`~tinynet.metrics.MetricStates` keeps them); an epoch a
    callback stopped before its last batch logged running values
    (:meth:`~tinynet.metrics.Metric.running_result`), equal up to rounding,
    which the epoch's record replaces here."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model._epoch_metrics = metrics_mod.MetricStates(self.model.metrics,
                                                             self.params["n_samples"])

    def on_epoch_end(self, epoch, logs=None):
        states = self.model._epoch_metrics
        if logs is not None and states is not None and states.samples:
            logs.update(states.results())

    def on_train_end(self, logs=None):
        self.model._epoch_metrics = None  # (an AUC's keeps every score of the epoch)


class Sequential(Layer):
    """A linear stack of layers; itself a layer.

    Parameters
    ----------
    layers : list of Layer, optional
    name : str, optional
    **kwargs
        ``trainable``, ``dtype``, ``input_shape``/``input_dim``, ``seed``
        (see :class:`~tinynet.layers.Layer`); ``trainable=False`` freezes
        every layer, as ``model.trainable = False`` does.

    Attributes
    ----------
    layers : list of Layer
    optimizer, loss, metrics
        Set by :meth:`compile`: the ones in use, fitted to the output (see
        the module docstring), so they may differ from what compile received.
    stop_training : bool
        Set by a callback to end :meth:`fit` early.
    history : History or None
        What the last :meth:`fit` returned.
    """

    #: Its layers at the optimizer's last binding (:mod:`tinynet.optim.binding`);
    #: a class default, so that a model pickled before it existed still fits.
    _layers_at_bind = None
    #: What :meth:`compile` sets (:func:`tinynet.transfer.fine_tune` puts it
    #: back when a run fails); kept here, beside the attributes it names.
    COMPILE_ATTRIBUTES = ("optimizer", "loss", "metrics", "_bound_ids", "_layers_at_bind",
                          "_compiled_loss", "_compiled_metrics")
    #: The log keys of ``fit`` besides the metrics' -- its loss, on the
    #: training and validation data, and what tinynet's callbacks add
    #: (:data:`tinynet.callbacks.CALLBACK_LOG_KEYS`) -- with what each holds:
    #: :meth:`compile` refuses a metric of one of these names, whose values
    #: would be overwritten in the logs and History.
    RESERVED_LOG_KEYS = {"loss": "the training loss", "val_loss": "the validation loss",
                         **CALLBACK_LOG_KEYS}

    def __init__(self, layers=None, name: str | None = None, **kwargs):
        self._layers: list[Layer] = []
        self.optimizer = None
        self.loss = None
        self.metrics: list = []
        self._compiled_loss = None  # the loss and metrics as compile received them
        self._compiled_metrics: list = []
        self._epoch_metrics = None  # fit's accumulation of the metrics (_EpochMetrics)
        self._bound_ids = None  # ids of the parameters this model bound the optimizer to
        self.stop_training = False
        self.stop_reason = None
        self.history = None  # the History of the last fit
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise TypeError(f"Sequential expected a list of layers, received "
                            f"{type(layers).__name__}")
        for layer in layers or ():
            self._check_new_layer(layer)
            self._layers.append(layer)
        super().__init__(name=name, **kwargs)
        for layer in self._layers:
            adopt(self, layer)  # a frozen model keeps them frozen (Keras' rule)
        if not self._trainable:
            self.trainable = False  # freezes every layer, as Keras' trainable=False
        first = self._layers[0] if self._layers else None
        if not self.built and first is not None and first.built:
            # Keras' convention: a declared input shape builds the whole stack now.
            self.build(first.input_shape, dtype=first.dtype)

    # ------------------------------------------------------------- structure
    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    def sublayers(self) -> list[Layer]:
        return list(self._layers)

    def _check_new_layer(self, layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential expected Layer instances, received "
                            f"{type(layer).__name__} ({layer!r})"[:200])
        # (tinynet.mtl loads lazily: if it is not loaded, the layer is no mtl.Model)
        graph = sys.modules.get("tinynet.mtl.graph")
        if graph is not None and isinstance(layer, graph.Model):
            # it failed later, at build, on "an input shape of positive integers"
            ins, outs = len(layer.inputs), len(layer.outputs)
            raise TypeError(f"Sequential cannot hold {layer._who}, a tinynet.mtl.Model "
                            f"({ins} input{'s' * (ins != 1)}, {outs} output"
                            f"{'s' * (outs != 1)}): a model inside another is not "
                            f"supported in a Sequential"
                            f"{', even with one input and one output' * (ins == outs == 1)}"
                            f"; call it on tensors in a tinynet.mtl.Model instead (it "
                            f"shares its weights there)")
        if layer is self or any(layer is other for other in self._layers):
            raise ValueError(f"{layer._who} is already in this Sequential; a layer "
                             f"object can appear once (create a new one to repeat it)")
        # Names are unique, as in Keras: get_layer, the transfer functions'
        # layer references and the weight names all find a layer by name.
        # (Automatic names never repeat one in use, a loaded model's included.)
        if any(layer.name == other.name for other in self._layers):
            raise ValueError(f"this Sequential already has a layer named {layer.name!r}; the "
                             f"layers of a Sequential need unique names (pass another "
                             f"name=..., or leave name unset for an automatic one)")

    def add(self, layer: Layer) -> None:
        """Append ``layer``; builds it on the current output shape if the
        model is built."""
        self._check_new_layer(layer)
        if self.built:
            self._build_layer(layer, self.output_shape, self.rng)
            self.output_shape = layer.output_shape
            self._layers.append(layer)
        else:
            self._layers.append(layer)
            if len(self._layers) == 1 and layer.built:
                self.build(layer.input_shape, dtype=layer.dtype)
        adopt(self, layer)
        self._fit_to_output()

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self._layers:
            raise ValueError(f"{self._who} has no layers to pop")
        layer = self._layers.pop()
        release(self, layer)  # its parameters are this model's former ones: optim.binding
        if self.built:
            self.output_shape = (self._layers[-1].output_shape if self._layers
                                 else self.input_shape)
        self._fit_to_output()
        return layer

    def get_layer(self, key) -> Layer:
        """A layer by name (unique within the model) or by index (negative
        counts from the end)."""
        if isinstance(key, str):
            for layer in self._layers:
                if layer.name == key:
                    return layer
            from .checks import did_you_mean
            raise ValueError(f"{self._who} has no layer named {key!r}"
                             f"{did_you_mean(key, [l.name for l in self._layers])} "
                             f"(layers: {', '.join(l.name for l in self._layers)})")
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            raise TypeError(f"get_layer expected a name or an index, received "
                            f"{type(key).__name__}")
        if not -len(self._layers) <= key < len(self._layers):
            raise IndexError(f"{self._who} has {len(self._layers)} layers, received "
                             f"index {key}")
        return self._layers[key]

    # -------------------------------------------------------------- building
    def build(self, input_shape, rng: np.random.Generator | None = None, dtype=None,
              seed: int | None = None):
        """Build every layer not yet built, in order, from one generator.

        Parameters
        ----------
        input_shape : tuple
            Per-sample input shape (a leading ``None`` is dropped).
        rng : numpy.random.Generator, optional
        dtype : optional
            Parameter dtype (default float32, or the first layer's).
        seed : int, optional
            Shorthand for ``rng=np.random.default_rng(seed)``.

        Layers that are already built (a pre-trained model inside this one)
        keep their weights; their input shape must match.
        """
        if seed is not None:
            if rng is not None:
                raise ValueError(f"{self._who}.build takes rng or seed, not both")
            rng = np.random.default_rng(check_seed(seed, f"{self._who}.build"))
        return super().build(input_shape, rng=rng, dtype=dtype)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._layers:
            if layer.built and layer.input_shape != shape:
                raise ValueError(f"{self._who}: layer {layer.name!r} was built for input "
                                 f"{shape_str(layer.input_shape)} but receives "
                                 f"{shape_str(shape)}")
            shape = tuple(layer.output_shape if layer.built
                          else layer.compute_output_shape(shape))
        return shape

    def _build(self, input_shape, rng):
        shape = input_shape
        for layer in self._layers:
            self._build_layer(layer, shape, rng)
            shape = layer.output_shape

    def _build_layer(self, layer: Layer, shape, rng) -> None:
        if not layer.built:
            layer.build(shape, rng=rng, dtype=self.dtype)
        elif layer.input_shape != tuple(shape):
            raise ValueError(f"{self._who}: layer {layer.name!r} was built for input "
                             f"{shape_str(layer.input_shape)} but receives {shape_str(shape)}")

    def reset_parameters(self, seed=None) -> "Sequential":
        """Re-draw every layer's initial weights (and reset BatchNorm statistics)
        from one generator: ``seed`` (an int or a Generator).

        A model built at construction (``input_dim=``) drew its weights from
        fresh entropy; this makes them reproducible. Every layer draws from
        ``seed``, one with its own ``seed=`` too (the generator its seed made
        has moved on since construction). Compile settings stay; the
        optimizer is re-bound (with fresh state) at the next ``fit``.
        """
        if not self.built:
            raise ValueError(f"{self._who} is not built; nothing to reset "
                             f"(fit(seed=...) seeds the weights it builds)")
        from .optim.binding import batched_releases
        rng = as_generator(seed, f"{self._who}.reset_parameters")
        with batched_releases():  # (each layer releases what it replaces: one record each)
            for layer in self._layers:
                if isinstance(layer, Sequential):
                    layer.reset_parameters(rng)
                else:
                    layer.set_rng(rng)  # build passes rng only to a layer without a seed
                    layer.build(layer.input_shape, rng=rng)
        return self

    # ----------------------------------------------------------------- maths
    def forward(self, x, training: bool = False) -> np.ndarray:
        """Run the layers in order. ``x``: (batch, *input_shape)."""
        training = check_bool(training, self._who, "training")
        x = self._prepare_input(x)
        for layer in self._layers:
            x = layer.forward(x, training=training)
            layer._cache_owner = self  # its cache is this forward's (Layer, Notes)
        return x

    def backward(self, dy, need_dx: bool = True) -> np.ndarray:
        """Run the layers' backward passes in reverse; returns dL/dx.

        With ``need_dx=False`` (training, where the input needs no gradient)
        None is returned, and what only that gradient needs is skipped: the
        leading layers without parameters (a ``Reshape`` before a
        convolution, say) get no backward call at all, and the first layer
        with parameters, if it supports it, does not compute its dL/dx -- for
        an MLP on 784 inputs that is a third of the work.

        A layer that ran a forward pass since this model's forward (called
        directly, or by another model) no longer caches this model's forward:
        ``RuntimeError`` (:func:`~tinynet.layers.base.stale_cache_error`)
        rather than wrong gradients; raised before any gradient is touched
        for the model's own layers (a nested model checks its own when its
        backward runs).
        """
        layers = self._layers
        if not layers:
            return dy
        first = 0
        if not need_dx:
            while first < len(layers) and not layers[first].parameters():
                first += 1
            if first == len(layers):
                return None
        for layer in layers[first:]:
            if layer._cache_owner is not self:
                raise stale_cache_error(self._who, layer)
        for layer in reversed(layers[first + 1:]):
            dy = layer.backward(dy)
        head = layers[first]
        if not need_dx and getattr(head, "can_skip_dx", False):
            return head.backward(dy, need_dx=False)
        dx = head.backward(dy)
        return None if not need_dx else dx

    can_skip_dx = True

    # -------------------------------------------------------------- weights
    def get_weights(self) -> list[np.ndarray]:
        """Copies of all parameter values, then state arrays (see
        :func:`tinynet.io.get_weights`)."""
        return model_io.get_weights(self)

    def set_weights(self, weights) -> None:
        """Copy ``weights`` in; checks count and every shape, naming the
        parameter (see :func:`tinynet.io.set_weights`)."""
        model_io.set_weights(self, weights)

    def weight_names(self) -> list[str]:
        return model_io.weight_names(self)

    def save(self, path, include_optimizer: bool = True, metadata: dict | None = None,
             extra_arrays: dict | None = None) -> str:
        """Write the model (architecture, weights, compile settings and, by
        default, the optimizer state) to one ``.npz`` file, atomically; see
        :func:`tinynet.io.save` for ``metadata`` and ``extra_arrays`` (both
        default to the model's own, those it was loaded with)."""
        return model_io.save(self, path, include_optimizer=include_optimizer,
                             metadata=metadata, extra_arrays=extra_arrays)

    # --------------------------------------------------------------- configs
    def get_config(self) -> dict:
        config = super().get_config()
        config["layers"] = [layer_to_dict(layer) for layer in self._layers]
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
        config = dict(config)
        specs = _unique_layer_names(config.pop("layers", []), config.get("name"))
        layers = [layer_from_dict(spec) for spec in specs]
        trainable = config.pop("trainable", True)
        model = cls(layers, **config)
        # a file keeps each layer's own flag (one unfrozen inside a frozen
        # model keeps its flag, and does not train): the model's flag is set
        # without passing down, and then stops its layers' parameters
        model._trainable = check_bool(trainable, f"{model._who}.from_config", "trainable")
        apply_frozen_containers(model)
        return model

    # --------------------------------------------------------------- summary
    def summary(self, print_fn=print) -> str:
        """Print (with ``print_fn``, None for silence) and return a table of
        layers, output shapes and parameter counts."""
        rows = [("Layer (type)", "Output shape", "Param #")]
        for layer in self._layers:
            shape = shape_str(layer.output_shape) if layer.built else "? (not built)"
            rows.append((f"{layer.name} ({type(layer).__name__})", shape,
                         f"{_n_weights(layer):,}"))
        widths = [max(len(row[i]) for row in rows) + 2 for i in range(3)]
        rule = "-" * sum(widths)

        def line(row):
            return row[0].ljust(widths[0]) + row[1].ljust(widths[1]) + row[2].rjust(widths[2])

        params = self.parameters()
        trainable = sum(p.size for p in params if p.trainable)
        total = _n_weights(self)
        text = "\n".join([
            f'Model: "{self.name}"', rule, line(rows[0]), "=" * sum(widths),
            *(line(row) for row in rows[1:]), "=" * sum(widths),
            f"Total params: {total:,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}", rule])
        if print_fn is not None:
            print_fn(text)
        return text

    # -------------------------------------------------------------- training
    def compile(self, optimizer="adam", loss=None, metrics=None) -> None:
        """Choose the optimizer, the loss and the metrics to report.

        Parameters
        ----------
        optimizer : str or optimizer
            A name (``"adam"``, ``"sgd"``...; default settings) or an
            optimizer object, with or without parameters
            (``Adam(lr=0.001)`` is bound to this model's parameters when the
            model is built).
        loss : str, Loss or dict
            ``"cross_entropy"``, ``"mse"``, ``tn.losses.Huber(0.5)``...
            Its ``reduction`` must be ``"mean"`` or ``"sum"``: a model
            trains on one number, so ``"none"`` is refused.
            On a last layer that ends in a softmax (sigmoid), a logit
            ``CrossEntropy`` (``BinaryCrossEntropy``) is replaced by its twin
            that takes probabilities (:func:`tinynet.output_losses.for_output`).
        metrics : list of str, Metric or callable, optional
            ``["accuracy"]``, ``["top_3_accuracy"]``, ``["mae"]``,
            ``[F1Score(average="micro", name="f1_micro"), "f1"]``... (each
            logged under its ``name``; two of one name are refused, and a
            name that fit or a callback of tinynet's logs as well:
            :attr:`RESERVED_LOG_KEYS`, ``"loss"``, ``"val_loss"``, ``"lr"``...,
            or ``"val_accuracy"`` beside an ``"accuracy"``, whose validation
            value fit logs under that name).
            On one sigmoid unit an ``"accuracy"`` without a threshold
            thresholds at 0.5 (:func:`tinynet.metrics.for_output`).

        The swaps follow the last layer: ``add`` and ``pop`` redo them.
        Saving stores the loss and metrics as given here.
        """
        self._compile(optimizer, loss, metrics, self.RESERVED_LOG_KEYS, validation=True)

    def _compile(self, optimizer, loss, metrics, reserved, validation: bool = False) -> None:
        """:meth:`compile`, refusing metrics named like a key of ``reserved``
        (and, with ``validation``, like another metric's validation key:
        :func:`tinynet.metrics.check_names`). A refused optimizer, loss or
        metric changes nothing."""
        optimizer = self._as_optimizer(optimizer)
        if loss is None:
            raise ValueError(f"{self._who}.compile expected a loss, e.g. "
                             f"loss='cross_entropy' or loss='mse'")
        loss = losses_mod.get(loss)
        losses_mod.check_trainable(loss, f"{self._who}.compile")
        if metrics is not None and (isinstance(metrics, (str, dict))
                                    or not hasattr(metrics, "__iter__")):
            metrics = [metrics]
        metrics = [metrics_mod.get(m) for m in metrics or ()]
        metrics_mod.check_names(metrics, f"{self._who}.compile", reserved, validation)
        self._compiled_loss, self._compiled_metrics = loss, metrics
        self._fit_to_output()
        self._bind_optimizer(optimizer)

    def _refit_output(self) -> None:
        """A layer inside changed what it outputs (:meth:`Layer._output_changed`)."""
        self._fit_to_output()
        self._output_changed()

    def _fit_to_output(self) -> None:
        """Set ``loss`` and ``metrics`` from the compiled ones for what the last
        layer outputs: probabilities after a softmax/sigmoid, else logits."""
        if self._compiled_loss is None:
            return
        self.loss = for_output(self._compiled_loss, self)
        self.metrics = [metrics_mod.for_output(m, self, self.loss)
                        for m in self._compiled_metrics]

    def _as_optimizer(self, optimizer):
        """The optimizer ``compile`` received (a name or dict: a new one,
        unbound until the model is built), refused if it is another model's
        (:func:`tinynet.optim.binding.refuse_foreign`)."""
        from . import optim
        from .optim.binding import refuse_foreign
        if isinstance(optimizer, (str, dict)):
            optimizer = optim.get(optimizer)
        elif not isinstance(optimizer, optim.Optimizer):
            raise TypeError(f"{self._who}.compile expected an optimizer name or object, "
                            f"received {type(optimizer).__name__}")
        refuse_foreign(self, optimizer, self.parameters(), f"{self._who}.compile")
        return optimizer

    def _bind_optimizer(self, optimizer=None) -> None:
        """Make ``optimizer`` (default: the compiled one) the model's, bound to
        its parameters if it is unbound, or bound again if it is the model's
        own and the layers changed since (rebuilt, added, popped):
        :func:`tinynet.optim.binding.bind_model_optimizer`.

        All parameters are bound, frozen ones too: the optimizer skips them
        while ``trainable`` is False, so freezing after compile works. An
        optimizer the user bound to a subset (or to groups) is kept as it is,
        but for the layers added since it was last compiled with this model
        (no other optimizer in between), which it takes (the parameters the
        user left out stay out);
        one bound to another model's parameters (by the user, or compiled
        with that model) is refused (``ValueError``), changing nothing; one
        holding parameters this model released (``pop``, ``replace_head``,
        ``reset_parameters``) is bound again. An unbuilt model binds at
        ``fit``.

        A model without parameters (only activations, reshapes...) leaves
        the optimizer unbound: it compiles, evaluates and predicts, and
        ``fit`` warns and changes nothing (Keras 3's behaviour).
        """
        from .optim.binding import bind_model_optimizer
        optimizer = self.optimizer if optimizer is None else optimizer
        if self.built:
            bound_ids = bind_model_optimizer(self, optimizer, self.parameters(),
                                             f"{self._who}.compile")
        else:  # bound at fit, once built (the model's own then)
            bound_ids = self._bound_ids if optimizer is self.optimizer else None
        self.optimizer, self._bound_ids = optimizer, bound_ids

    def get_compile_config(self) -> dict | None:
        """JSON-safe loss, metrics and optimizer settings (None if not compiled)."""
        if self.loss is None:
            return None
        from . import optim
        # What compile received: loading compiles again, which redoes the swaps.
        return {"optimizer": optim.optimizer_to_dict(self.optimizer),
                "loss": losses_mod.loss_to_dict(self._compiled_loss),
                "metrics": [metrics_mod.to_config(m) for m in self._compiled_metrics]}

    def compile_from_config(self, config: dict) -> None:
        """Inverse of :meth:`get_compile_config` (used by :func:`tinynet.load`).

        A file saved before :meth:`compile` refused a metric named like a key
        a callback logs (``"lr"``), or like another metric's validation key
        (``"val_accuracy"`` beside ``"accuracy"``), still loads, its metrics
        kept, with a warning: the callback's values, or the other metric's
        validation values, would overwrite its values in the logs."""
        metrics = metrics_mod.from_saved(config.get("metrics") or [], f"{self._who}: load")
        self._compile(config["optimizer"], config["loss"], metrics or None, ("loss",))

        def warn(clashes, keys, example):
            _userwarn.warn(f"{self._who}: the saved metric(s) {clashes} are named like {keys}, "
                           f"whose values would overwrite theirs in the logs; compile again "
                           f"with a name of their own, e.g. name={example!r}", UserWarning)

        names = [m.name for m in self._compiled_metrics]
        clashes = [name for name in names if name in self.RESERVED_LOG_KEYS]
        if clashes:
            held = "; ".join(f"{key!r}: {self.RESERVED_LOG_KEYS[key]}" for key in clashes)
            warn(clashes, f"log keys of fit or of tinynet's callbacks ({held})",
                 clashes[0] + "_2")
        shadowing = metrics_mod.validation_clashes(names)
        if shadowing:
            warn(shadowing, f"the validation keys fit logs for the saved metric(s) "
                            f"{[name[4:] for name in shadowing]}", shadowing[0][4:] + "_val")

    def _require_compiled(self, who: str) -> None:
        if self.loss is None:
            raise RuntimeError(f"{self._who}.{who} needs a loss: call model.compile("
                               f"optimizer='adam', loss='cross_entropy') first")

    # ---------------------------------------------------------- input checks
    def _check_x(self, x, who: str) -> np.ndarray:
        x = as_float_array(x, f"{self._who}.{who}", "x")
        if x.ndim < 2:
            raise ValueError(f"{self._who}.{who} expected x of shape (n_samples, features...), "
                             f"received {x.shape}; a single feature needs "
                             f"x.reshape(-1, 1), a single sample x.reshape(1, -1)")
        if x.shape[0] == 0:
            raise ValueError(f"{self._who}.{who} expected at least one sample, received x "
                             f"of shape {x.shape}")
        check_finite(x, f"{self._who}.{who}", "x")
        if not self.built and not who.startswith("fit"):
            # building here would draw unseeded weights that a later
            # fit(seed=...) keeps, so that it is no longer reproducible
            raise ValueError(f"{self._who}.{who}: the model is not built, so it has no "
                             f"weights yet: call fit first (or build(input_shape), or give "
                             f"the first layer input_dim=)")
        if self.built:
            if x.shape[1:] != self.input_shape:
                raise ValueError(f"{self._who}.{who} expected x of shape "
                                 f"{shape_str(self.input_shape)}, received {x.shape}"
                                 + ("; one sample needs a batch axis: x[None]"
                                    if x.shape == self.input_shape else ""))
            x = x.astype(self.dtype, copy=False)
        return x

    def _check_y(self, y, n_samples: int, who: str) -> np.ndarray:
        y = as_array(y, f"{self._who}.{who}", "targets y")
        if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
            raise TypeError(f"{self._who}.{who} expected numeric targets y, received "
                            f"dtype {y.dtype}")
        if y.ndim == 0 or y.shape[0] != n_samples:
            raise ValueError(f"{self._who}.{who} expected {n_samples} targets (one per "
                             f"sample of x), received y of shape {y.shape}")
        if np.issubdtype(y.dtype, np.floating):
            check_finite(y, f"{self._who}.{who}", "targets y")
        return y

    def _check_xy(self, x, y, who: str, seed=None):
        x = self._check_x(x, who)
        y = self._check_y(y, x.shape[0], who)
        if not self.built:
            rng = None if seed is None else seed_rng(seed, BUILD_STREAM)
            self.build(x.shape[1:], rng=rng, dtype=self.dtype or x.dtype)
            x = x.astype(self.dtype, copy=False)
        # bad labels, or a metric that does not suit them, fail before training
        check_targets(self.loss, self.metrics, self.output_shape, self.dtype, y)
        return x, y

    # -------------------------------------------------------------- fit etc.
    def fit(self, x, y, epochs: int = 1, batch_size: int = 32, validation_data=None,
            validation_split: float = 0.0, callbacks=None, verbose: int = 1,
            shuffle: bool = True, seed: int | None = None, initial_epoch: int = 0,
            stream=None, terminate_on_nan: bool = True, sample_weight=None,
            class_weight=None):
        r"""Train with mini-batch gradient descent.

        Parameters
        ----------
        x : ndarray of shape (n_samples, *input_shape), floating
        y : ndarray of shape (n_samples,) int labels, or (n_samples, *output_shape)
        epochs : int
            Train until this epoch index (with ``initial_epoch``, Keras'
            meaning: ``initial_epoch=2, epochs=4`` runs epochs 2 and 3).
        batch_size : int or None, default 32 (None: 32, as in Keras)
        validation_data : (x_val, y_val) or (x_val, y_val, sample_weight_val), optional
            Evaluated after each epoch: ``val_loss``, ``val_<metric>``.
        validation_split : float in [0, 1)
            Hold out this share of ``x``/``y`` (and ``sample_weight``; the
            last samples, before shuffling) as validation data.
        callbacks : list of Callback
        verbose : {0, 1, 2, "auto"}, default 1
            0 silent; 1 live bar on a terminal (one line per epoch
            elsewhere); 2 one line per epoch; "auto" (Keras' default) 1.
        shuffle : bool
        seed : int, optional
            A non-negative integer. Makes the run reproducible bit for bit: shuffling, dropout and
            the initial weights of layers built here all derive from it, per
            epoch, so a run resumed at ``initial_epoch`` continues exactly.
        initial_epoch : int
        stream : file-like, optional
            Progress output (default ``sys.stdout``).
        terminate_on_nan : bool, default True
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative weight of each sample in the loss: a batch's loss
            is :math:`\sum_i w_i \ell_i / \sum_i w_i` (the losses' own
            weighted mean, as PyTorch's weighted cross-entropy; Keras divides
            by the batch size instead, so scaling every weight by c scales
            its loss by c and leaves this one as it is). The metrics are not
            weighted (Keras' ``metrics``, not its ``weighted_metrics``).
            Weights whose sum overflows (``np.full(n, 1e308)``) are divided
            by their maximum first, which leaves that mean as it is
            (:func:`tinynet.checks.summable_weights`); so are weights that
            would overflow times a class weight (``class_weight``, or the
            loss's ``CrossEntropy(weight=)``: 1e308 times 2), and divided by
            that class weight too.
        class_weight : dict of int to float, optional
            Keras' ``{class label: weight}``: each training sample's weight
            is multiplied by its class's (:mod:`tinynet.class_weights`; the
            class is the integer label, the arg-max of a one-hot row, or the
            0/1 target of a one-output binary cross-entropy). Classes missing
            from the dict keep weight 1. Combined with ``sample_weight`` by
            multiplication (as Keras 2 did; Keras 3 refuses the two together).
            As in Keras, validation is not weighted by class: ``val_loss``
            (from ``validation_data`` or ``validation_split``) uses only the
            validation sample weights. A loss that is not a classification
            loss is refused, and so is a dict that weighs every class 0.

        Training samples that all weigh 0 (``sample_weight`` times
        ``class_weight``) are refused: every loss would be 0 and nothing
        would train. A *batch* whose samples all weigh 0 is fine: its loss
        and gradient are 0 (the losses' convention) and it counts for
        nothing in the epoch's ``loss``.

        The logged ``loss`` of an epoch is the weighted mean over its samples
        (each batch's weighted mean counts by the batch's total weight), as
        ``val_loss`` and :meth:`evaluate` are. With a ``reduction="sum"``
        loss the logged ``loss`` and ``val_loss`` are the batch sums averaged
        over the batches, weighted by batch size (what Keras logs).

        Returns
        -------
        History
        """
        self._require_compiled("fit")
        seed = check_seed(seed, f"{self._who}.fit")  # before it seeds the build
        batch_size = check_batch_size(batch_size, f"{self._who}.fit")
        validation_split = check_real(validation_split, f"{self._who}.fit", "validation_split",
                                      low=0.0, high=1.0, high_open=True)
        x, y = self._check_xy(x, y, "fit", seed=seed)
        w = None if sample_weight is None else as_sample_weight(sample_weight, len(x),
                                                                f"{self._who}.fit")
        if validation_split:
            if validation_data is not None:
                raise ValueError(f"{self._who}.fit takes validation_data or "
                                 f"validation_split, not both (received validation_data and "
                                 f"validation_split={validation_split}): pass validation_data "
                                 f"to validate on it, or validation_split to hold out that "
                                 f"share of x (Keras ignores validation_split when given "
                                 f"validation_data; tinynet refuses rather than drop one)")
            split = int(len(x) * (1 - validation_split))
            if split == 0 or split == len(x):
                raise ValueError(f"{self._who}.fit: validation_split={validation_split} "
                                 f"leaves no training or no validation samples out of {len(x)}")
            validation_data = (x[split:], y[split:]) + (() if w is None else (w[split:],))
            x, y = x[:split], y[:split]
            w = None if w is None else w[:split]
        if class_weight is not None:  # the training samples only, as Keras
            by_class = class_sample_weights(class_weight, y, self.loss, self.output_shape,
                                            f"{self._who}.fit")
            w = weighted_by_class(w, by_class)
        w = summable_weights(w, largest_class_weight(self.loss))
        if w is not None and not w.any():
            raise ValueError(f"{self._who}.fit: every training sample weighs 0 "
                             f"(sample_weight times class_weight), so every loss would be 0 "
                             f"and nothing would train; give some samples a positive weight")
        validate = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise TypeError(f"{self._who}.fit expected validation_data as a tuple "
                                f"(x_val, y_val) or (x_val, y_val, sample_weight_val)")
            x_val, y_val = self._check_xy(*validation_data[:2], "fit (validation_data)")
            w_val = None if len(validation_data) == 2 or validation_data[2] is None else \
                as_sample_weight(validation_data[2], len(x_val),
                                 f"{self._who}.fit (validation_data)")

            def validate():
                return self._evaluate_arrays(x_val, y_val, batch_size, w_val)
        self._bind_optimizer()

        running_values = {metric.name: None for metric in self.metrics}  # logged as they are

        def train_step(idx):
            x_batch, y_batch = x[idx], y[idx]
            self.zero_grad()
            pred = self.forward(x_batch, training=True)
            logs = {"loss": self.loss.forward(pred, y_batch,
                                              sample_weight=None if w is None else w[idx])}
            self.backward(self.loss.backward(), need_dx=False)
            if self.optimizer.param_groups:  # (a model without parameters leaves it unbound)
                self.optimizer.step()
            # the metrics of the epoch so far (an epoch's F1 is not a mean of batch F1s)
            # (the epoch's last batch logs the exact values; the others the running
            # ones, equal up to rounding, whose cost does not grow with the epoch),
            # deferred: computed only if read, by a callback reading the batch logs'
            # metrics (the live bar when it draws; fit_loop) or from the epoch's logs
            self._epoch_metrics.add(pred, y_batch)
            logs.update(self._epoch_metrics.batch_logs())
            # the epoch's loss: the batches' weighted means, each by its total weight
            return logs, {"loss": losses_mod.batch_weight(self.loss, len(idx)),
                          **running_values}

        keys = ["loss"] + [metric.name for metric in self.metrics]
        if validate is not None:
            keys += [f"val_{key}" for key in keys]
        self.history = fit_loop(self, train_step, len(x), epochs=epochs,
                                batch_size=batch_size, shuffle=shuffle, seed=seed,
                                initial_epoch=initial_epoch, validate=validate,
                                callbacks=[_EpochMetrics()] + as_callback_list(
                                    callbacks, f"{self._who}.fit"),
                                verbose=verbose, stream=stream,
                                terminate_on_nan=terminate_on_nan, log_keys=keys)
        return self.history

    def _evaluate_arrays(self, x, y, batch_size: int, sample_weight=None,
                         progress: PassProgress | None = None) -> dict:
        """Means over all samples; with ``sample_weight`` (or class weights in
        the loss) the loss is the weighted mean over all of them (each
        batch's weighted mean, weighted by the batch's total weight:
        ``loss.weight_total``); the metrics are those of all the samples at
        once, unweighted (:class:`tinynet.metrics.MetricStates`). A ``"sum"``
        loss gives the batch sums' mean weighted by batch size, as Keras.
        ``progress`` shows the batches (the running values when its live bar
        draws, as ``fit``'s); the caller ends it with the result (as the
        multi-task model's :meth:`evaluate`)."""
        means, loss = metrics_mod.MetricStates(self.metrics), RunningMeans()
        sample_weight = summable_weights(sample_weight, largest_class_weight(self.loss))
        for batch, idx in enumerate(batch_indices(len(x), batch_size)):
            pred = self.forward(x[idx], training=False)
            w = None if sample_weight is None else sample_weight[idx]
            value = self.loss.forward(pred, y[idx], sample_weight=w)
            loss.add({"loss": value}, losses_mod.batch_weight(self.loss, len(idx)))
            means.add(pred, y[idx])
            if progress is not None:
                progress.batch_end(batch, lambda: {**loss.means(),
                                                   **means.results(running=True)})
        # every weight 0: no weighted mean; the loss of nothing is 0, as the losses say
        return {"loss": loss.means().get("loss", 0.0), **means.results()}

    def evaluate(self, x, y, batch_size: int = 32, sample_weight=None, verbose=0,
                 stream=None) -> dict:
        """Loss and metrics on ``(x, y)`` in inference mode.

        ``sample_weight`` (n_samples,) weights the loss as in :meth:`fit`.

        ``verbose`` (0, 1, 2 or "auto", as :meth:`fit` takes it) shows the
        batches as ``fit`` shows an epoch, on ``stream`` (default
        ``sys.stdout``): at 1 or "auto" a live bar on a terminal, and at 1
        elsewhere or 2 one line, ``evaluate - 0.2s - loss: ... - accuracy:
        ...`` (:class:`tinynet.progress.PassProgress`). The default, 0,
        differs from Keras' ("auto", a bar): evaluate (and predict) run inside
        loops and other code, where a line at every call is noise, and they
        printed nothing before they took ``verbose``; ``fit``, which shows a
        training run, prints by default, as Keras'.

        Returns
        -------
        dict
            ``{"loss": ..., "accuracy": ...}``: means over all samples.
        """
        self._require_compiled("evaluate")
        batch_size = check_batch_size(batch_size, f"{self._who}.evaluate")
        verbose = check_verbose(verbose, f"{self._who}.evaluate")
        x, y = self._check_xy(x, y, "evaluate")
        w = None if sample_weight is None else as_sample_weight(sample_weight, len(x),
                                                                f"{self._who}.evaluate")
        progress = PassProgress(verbose, n_batches(len(x), batch_size), "evaluate", stream)
        logs = self._evaluate_arrays(x, y, batch_size, w, progress)
        progress.end(logs)
        return logs

    def predict(self, x, batch_size: int = 32, verbose=0, stream=None) -> np.ndarray:
        """The model's raw output for ``x`` (logits for a classifier, or
        probabilities when the last layer ends in a softmax/sigmoid), in
        inference mode, computed ``batch_size`` samples at a time.
        ``verbose`` and ``stream`` as :meth:`evaluate`'s (default: silent),
        the line ``predict - 0.1s``.

        Returns
        -------
        ndarray of shape (n_samples, *output_shape)
        """
        batch_size = check_batch_size(batch_size, f"{self._who}.predict")
        verbose = check_verbose(verbose, f"{self._who}.predict")
        x = self._check_x(x, "predict")
        progress = PassProgress(verbose, n_batches(len(x), batch_size), "predict", stream)
        outputs = []
        for batch, start in enumerate(range(0, len(x), batch_size)):
            outputs.append(self.forward(x[start:start + batch_size], training=False))
            progress.batch_end(batch)
        progress.end()
        return np.concatenate(outputs, axis=0)

    def predict_proba(self, x, batch_size: int = 32, verbose=0, stream=None) -> np.ndarray:
        """Class probabilities: the output itself when the last layer ends in a
        softmax/sigmoid (several sigmoids compiled with the cross-entropy: divided
        by their sum, the probabilities its loss scores, as
        :class:`~tinynet.output_losses.NormalizedOutputCrossEntropy`), else the
        softmax of the logits -- the sigmoid of each
        for one output unit, or for a model compiled with a binary
        cross-entropy (several labels per sample: each output is one label's
        logit, as its loss takes it).

        Returns
        -------
        ndarray of the shape of :meth:`predict`'s output
            ``(n_samples, n_classes)``; for one output unit (a binary
            classifier) ``(n_samples, 1)``, the probability of class 1, as
            Keras 2's ``Sequential.predict_proba`` (the pair with
            :meth:`predict_classes` that tinynet follows) gave it. scikit-learn's
            ``predict_proba`` has a column per class there, ``(n_samples, 2)``:
            ``np.hstack([1 - p, p])``.

        ``verbose`` and ``stream`` as :meth:`predict`'s (and Keras 2's).
        """
        outputs = self.predict(x, batch_size=batch_size, verbose=verbose, stream=stream)
        if output_activation(self, at_inference=True) is not None:
            if (isinstance(self.loss, NormalizedOutputCrossEntropy)
                    and not metrics_mod._is_binary_output(outputs)):
                # sigmoids compiled with the cross-entropy: its class probabilities
                return row_probabilities(outputs)
            return outputs
        if (metrics_mod._is_binary_output(outputs)
                or isinstance(self.loss, losses_mod.BinaryCrossEntropy)):
            return losses_mod.sigmoid(outputs)
        return losses_mod.softmax(outputs)

    def predict_classes(self, x, batch_size: int = 32, verbose=0, stream=None) -> np.ndarray:
        """Predicted labels: the arg-max of the outputs; for one output unit,
        ``logit > 0``, or ``probability > 0.5`` after a sigmoid. ``verbose``
        and ``stream`` as :meth:`predict`'s (and Keras 2's).

        A sample whose output holds a NaN (a diverged model's) is labelled
        -1, no class (``tinynet.metrics.NO_CLASS``): Keras' ``argmax`` read it
        as class 0 (``NaN > 0`` is False: class 0 too), so ``predict_classes(x)
        == y`` counted a diverged model right on every sample of class 0; -1
        is never a label, so it is never right, as the metric ``"accuracy"``
        has it. (Index class names with it only after checking: ``names[-1]``
        is the last class.)"""
        outputs = self.predict(x, batch_size=batch_size, verbose=verbose, stream=stream)
        # the metrics' rule, which thresholds one output unit only (0 unless None)
        sigmoid = output_activation(self, at_inference=True) == "sigmoid"
        return metrics_mod._predicted_labels(outputs, 0.5 if sigmoid else None)


# ------------------------------------------------------------------ helpers
def _unique_layer_names(specs, model_name) -> list:
    """``specs`` (layer configs) with each repeated layer name after its first
    use replaced by a fresh ``<name>_<k>``, and a warning: a file saved before
    Sequential refused repeated names still loads (its weights are stored by
    position, so they go where they went)."""
    if not isinstance(specs, list):
        return specs  # layer_from_dict's errors say what is wrong
    names = [spec["config"].get("name") if isinstance(spec, dict)
             and isinstance(spec.get("config"), dict) else None for spec in specs]
    taken, renamed, out = set(names), [], []
    seen = set()
    for spec, name in zip(specs, names):
        if isinstance(name, str) and name in seen:
            new = unique_name(name)
            while new in taken:
                new = unique_name(name)
            taken.add(new)
            spec = {**spec, "config": {**spec["config"], "name": new}}
            renamed.append(f"{name!r} -> {new!r}")
        seen.add(name)
        out.append(spec)
    if renamed:
        _userwarn.warn(f"Sequential {model_name!r} holds repeated layer names, which "
                       f"Sequential refuses; renamed {', '.join(renamed)}")
    return out


def _n_weights(layer: Layer) -> int:
    """Parameters plus state arrays (what get_weights returns), as Keras counts."""
    return int(sum(np.size(w) for _, w, _ in model_io._slots(layer)))
