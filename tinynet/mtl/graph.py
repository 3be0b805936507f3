r"""The functional API: symbolic inputs, layers called on them, a model over the graph.

>>> import tinynet as tn
>>> from tinynet.layers import Dense
>>> input1 = tn.mtl.Input(shape=(100,)); input2 = tn.mtl.Input(shape=(100,))
>>> hidden1 = Dense(64, activation="relu")(input1)
>>> hidden2 = Dense(64, activation="relu")(input2)
>>> output1 = Dense(10)(hidden1); output2 = Dense(10)(hidden2)
>>> model = tn.mtl.Model(inputs=[input1, input2], outputs=[output1, output2])

Calling a layer on a :class:`SymbolicTensor` does not compute anything: it
builds the layer for that tensor's per-sample shape and records a *node*
(the layer and the tensors it reads). :class:`Model` sorts the nodes
topologically and runs them. A :class:`Model` is a layer too: called on
tensors (one per input) it is one node of another model, whose weights it
shares wherever it is called.

Forward and backward over a DAG
-------------------------------
Forward visits the nodes in topological order. Backward visits them in
reverse and applies the multivariate chain rule: a tensor :math:`h` read by
several nodes :math:`c_1, \dots, c_k` (a shared trunk feeding several task
heads) receives the *sum* of their input gradients,

.. math::
    \frac{\partial L}{\partial h} = \sum_{j=1}^{k}
        \frac{\partial L}{\partial h}\Big|_{c_j},

and a node whose outputs receive no gradient (the head of a task left out of
this backward pass) is skipped. That is what lets a multi-task trainer run
*one backward per task* through the heads into the trunk.

A layer called at several nodes (weights shared between two inputs, a
Siamese tower) keeps only one forward cache; before its backward at an
earlier node the model re-runs that node's forward with the random state it
had the first time (same dropout mask) and restores any running statistics
afterwards -- its own and those of every layer inside it (a shared
Sequential), so the gradients are exact at the cost of one extra forward.
Each layer records which graph node its cache belongs to (its
``_cache_owner``, a weak reference, which every forward of the layer resets: see
:class:`~tinynet.layers.Layer`), so a backward after the layer ran
elsewhere -- in another model sharing it, a nested model also run on its
own, or called directly (``model.layers[1](x2)``) -- re-runs it too if it
is called at several nodes here, and is a ``RuntimeError`` otherwise
rather than the gradient of the other run.

Saving
------
``model.save("m.npz")`` writes one ``.npz`` (:mod:`tinynet.io`, file format
version 2) and ``tinynet.load("m.npz")`` gives back a model of the same class
that predicts identically and, if it was compiled, trains on identically:
the graph (:meth:`Model.get_config`: inputs, each distinct layer once, each
node with the tensors it reads, outputs by task name), every weight and
layer state, the losses, metrics and weighting as ``compile`` received them,
the optimizer's state and the weighting's own state (learned log-variances
or GradNorm weights, DWA's loss history...).
"""

from __future__ import annotations


import numpy as np

from .. import _userwarn
from .. import io as model_io
from .. import metrics as metrics_mod
from ..checks import as_float_array, did_you_mean
from ..layers.base import (Layer, adopt, layer_from_dict, layer_to_dict, settings_tree,
                           shape_str, stale_cache_error, swap_settings, unique_name,
                           walk_layers)
from .training import MultiTaskTraining

__all__ = ["Input", "SymbolicTensor", "Model"]


class Node:
    """One application of a layer (``layer is None`` for an :func:`Input`)."""

    # __weakref__: a layer refers to the node whose forward its cache holds
    # by weak reference (``Layer._cache_owner``)
    __slots__ = ("layer", "inputs", "outputs", "multi_input", "multi_output", "name",
                 "__weakref__")

    def __init__(self, layer, inputs, multi_input, name=None):
        self.layer = layer
        self.inputs = inputs
        self.outputs: list[SymbolicTensor] = []
        self.multi_input = multi_input
        # Layers that declare ``n_outputs`` take and return lists on the output
        # side, as does a nested Model built with a list or dict of outputs.
        self.multi_output = hasattr(layer, "n_outputs") or (
            isinstance(layer, Model) and not layer._single_output)
        self.name = name if layer is None else layer.name


class SymbolicTensor:
    """A placeholder for an array of per-sample ``shape`` flowing through a graph.

    Attributes
    ----------
    shape : tuple of int
        Per-sample shape (no batch dimension).
    node : Node
        The node that produces it.
    index : int
        Which output of that node's layer (multi-output layers such as MMoE).
    """

    _tinynet_symbolic = True
    __slots__ = ("shape", "node", "index", "dtype")

    def __init__(self, shape, node, index=0, dtype=None):
        self.shape = tuple(shape)
        self.node = node
        self.index = index
        self.dtype = dtype

    @property
    def name(self) -> str:
        return (f"{self.node.name}[{self.index}]" if self.node.multi_output
                else self.node.name)

    def _connect(self, layer, inputs):
        return _connect(layer, inputs)

    def __repr__(self) -> str:
        return f"SymbolicTensor({self.name!r}, shape={shape_str(self.shape)})"


def Input(shape, name: str | None = None, dtype=None) -> SymbolicTensor:
    """A model input of per-sample ``shape`` (``(100,)`` for 100 features).

    Parameters
    ----------
    shape : tuple of int
        Per-sample shape, without the batch dimension.
    name : str, optional
    dtype : str or dtype, optional
        dtype the layers called on it are built with (float32 by default;
        ``"float64"`` for gradient checks).
    """
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0
                        for d in shape):
        raise ValueError(f"Input expected a per-sample shape of positive integers such as "
                         f"(100,), received {shape!r}")
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"Input expected name as a non-empty string, received {name!r}")
    node = Node(None, [], False, unique_name("input", name))
    tensor = SymbolicTensor(tuple(int(d) for d in shape), node, 0,
                            None if dtype is None else np.dtype(dtype))
    node.outputs = [tensor]
    return tensor


def _connect(layer: Layer, inputs):
    """Build ``layer`` for ``inputs`` (a tensor or a list) and return its output tensor(s)."""
    if isinstance(layer, Model):
        return _connect_model(layer, inputs)
    if isinstance(inputs, dict):
        raise TypeError(f"{layer._who} expected a symbolic tensor or a list of them, "
                        f"received a dict (only a tn.mtl.Model takes its inputs by name)")
    multi_input = isinstance(inputs, (list, tuple))
    tensors = list(inputs) if multi_input else [inputs]
    for t in tensors:
        if not isinstance(t, SymbolicTensor):
            raise TypeError(f"{layer._who} expected symbolic tensors (from tn.mtl.Input or "
                            f"a layer called on one), received {type(t).__name__} in the list")
    if multi_input and not getattr(layer, "accepts_multiple_inputs", False):
        raise TypeError(f"{layer._who} takes one input, received a list of {len(tensors)}; "
                        f"merge them first (tn.mtl.Concatenate() or tn.mtl.Add())")
    if not multi_input and getattr(layer, "accepts_multiple_inputs", False):
        raise TypeError(f"{layer._who} takes a list of tensors (one per input), received "
                        f"one SymbolicTensor; call it as {type(layer).__name__}()([a, b])")
    shapes = [t.shape for t in tensors]
    in_shape = shapes if multi_input else shapes[0]
    dtype = next((t.dtype for t in tensors if t.dtype is not None), None)
    if not layer.built:
        layer.build(in_shape, dtype=dtype)
    else:
        built_for = ([tuple(s) for s in layer.input_shape] if multi_input
                     else tuple(layer.input_shape))
        if built_for != in_shape:
            raise ValueError(f"{layer._who} was built for input shape {built_for}, "
                             f"received a tensor of shape {in_shape}")
    node = Node(layer, tensors, multi_input)
    out_shapes = list(layer.output_shape) if node.multi_output else [layer.output_shape]
    node.outputs = [SymbolicTensor(s, node, i, layer.dtype) for i, s in enumerate(out_shapes)]
    return node.outputs if node.multi_output else node.outputs[0]


def _connect_model(model: "Model", inputs):
    """A :class:`Model` as one node of another graph (Keras' nested models).

    ``inputs``: one tensor per input of ``model``, as a list (a bare tensor
    for a model of one input) or a dict ``{input name: tensor}`` (Keras'),
    each of the per-sample shape of that input. Returns its output tensors
    as its ``forward`` returns arrays: a list, or one tensor for a model
    built with a single output tensor.
    """
    if isinstance(inputs, dict):
        inputs = model._by_input_name(inputs, model._who)
    tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    for t in tensors:
        if not isinstance(t, SymbolicTensor):
            raise TypeError(f"{model._who} expected symbolic tensors (from tn.mtl.Input or "
                            f"a layer called on one), received {type(t).__name__}")
    if len(tensors) != len(model.inputs):
        raise ValueError(f"{model._who} expected {len(model.inputs)} input tensor(s) "
                         f"{[t.name for t in model.inputs]}, received {len(tensors)}")
    for t, own in zip(tensors, model.inputs):
        if t.shape != own.shape:
            raise ValueError(f"{model._who} expected input {own.name!r} of shape "
                             f"{shape_str(own.shape)}, received a tensor of shape "
                             f"{shape_str(t.shape)}")
    node = Node(model, tensors, not model._single_input)
    node.outputs = [SymbolicTensor(out.shape, node, i, model.dtype)
                    for i, out in enumerate(model.outputs)]
    return node.outputs if node.multi_output else node.outputs[0]


def _check_inputs(inputs, duplicate_names_ok=False) -> None:
    """Each input tensor once, and (unless ``duplicate_names_ok``) under a name
    of its own: the names are the keys of a dict of input arrays."""
    for i, t in enumerate(inputs):
        if any(t is other for other in inputs[:i]):
            raise ValueError(f"Model expected each input once, received {t.name!r} twice "
                             f"in inputs= (one array would be ignored)")
    names = [t.name for t in inputs]
    if len(set(names)) != len(names) and not duplicate_names_ok:
        raise ValueError(f"Model expected distinct input names (the keys of a dict of "
                         f"input arrays), received {names}; give each Input its own name=")


def _check_validation_clashes(names, from_file: bool) -> None:
    """Refuse task names one of which is ``"val_<another>"`` (``"c"`` and
    ``"val_c"``): ``fit`` logs task ``c``'s validation values as
    ``"val_c/loss"``, ``"val_c/<metric>"``..., the keys of task ``val_c``'s
    training values, so one would overwrite the other in the logs and
    History (and ``EarlyStopping(monitor="val_c/loss")`` watch the wrong
    one). :func:`tinynet.metrics.validation_clashes` finds them, as it finds
    such metric names. A file saved before this check (``from_file``) still
    loads, with a warning, as Sequential's clashing metric names do."""
    shadowing = metrics_mod.validation_clashes(names)
    if not shadowing:
        return
    clash = (f"the task(s) {shadowing} are named like the validation logs of the task(s) "
             f"{[name[4:] for name in shadowing]} ({shadowing[0] + '/loss'!r} would hold "
             f"both the training loss of task {shadowing[0]!r} and the validation loss of "
             f"task {shadowing[0][4:]!r}; tasks {names})")
    if from_file:
        _userwarn.warn(f"Model: {clash}: with validation_data, fit's logs and History keep "
                       f"one value of each such key, the other overwritten; build the model "
                       f"again with a name of their own, e.g. {shadowing[0][4:] + '_val'!r}",
                       UserWarning)
        return
    raise ValueError(f"Model: {clash}; give one a name of its own, e.g. "
                     f"{shadowing[0][4:] + '_val'!r}")


def _check_layers_distinct(layers, names_too: bool = True) -> None:
    """Each layer of the graph reachable once: called at nodes of its own, or
    inside one container (a Sequential) called at nodes, not both. A layer in
    two places would share one forward cache the graph does not track (wrong
    gradients), and its parameters would be counted, updated and saved twice.

    With ``names_too``, their names are unique too (as in Sequential and
    Keras): ``get_layer``, the weight names and the summary find a layer by
    its name. (A file saved before this check may hold repeated names.)"""
    where, named = {}, {}
    for top in layers:
        for layer in walk_layers(top):
            here = "called in the graph" if layer is top else f"inside {top._who}"
            if id(layer) in where:
                raise ValueError(f"Model expected each layer in one place, received "
                                 f"{layer._who} {where[id(layer)]} and {here}; call the "
                                 f"container's layers one by one instead, or use a "
                                 f"layer of its own")
            where[id(layer)] = here
            if names_too and layer.name in named:
                other, there = named[layer.name]
                raise ValueError(f"Model expected unique layer names, received two layers "
                                 f"named {layer.name!r}: {other._who} {there} and "
                                 f"{layer._who} {here}; pass another name=..., or leave "
                                 f"name unset for an automatic one")
            named[layer.name] = (layer, here)


def _as_list(x, what):
    if isinstance(x, SymbolicTensor):
        return [x]
    if isinstance(x, (list, tuple)) and x and all(isinstance(t, SymbolicTensor) for t in x):
        return list(x)
    raise TypeError(f"Model expected {what} as a symbolic tensor or a non-empty list of "
                    f"them, received {type(x).__name__}")


class Model(Layer, MultiTaskTraining):
    """A network of layers over a directed acyclic graph: several inputs, several outputs.

    Parameters
    ----------
    inputs : SymbolicTensor or list of SymbolicTensor
        From :func:`Input`: each once, under distinct names, and each read
        (through the layers) by some output; anything else is a
        ``ValueError``, since the array given for it would be ignored.
    outputs : SymbolicTensor, list of them, or dict ``{task name: tensor}``
        With a list, each output is named after the layer that produces it
        (its *task name*, the key of ``loss=``, ``metrics=`` and ``y``).
        Task names are distinct, and none is ``"val_"`` + another's (``fit``
        logs task ``c``'s validation values as ``"val_c/..."``): ``ValueError``.
    name : str, optional
    trainable : bool, default True
        False freezes every layer, as ``model.trainable = False`` does.

    Notes
    -----
    ``forward(x)`` takes one array per input (a list, or a bare array for a
    single input) and returns a list of arrays, one per output (a bare array
    for a single output). ``backward(dys)`` takes the gradient of each output
    (``None`` for an output that does not contribute) and returns the gradient
    of each input. Training (``compile``/``fit``/``evaluate``/``predict``) is
    in :class:`~tinynet.mtl.training.MultiTaskTraining`, mixed in here;
    :meth:`save` / :func:`tinynet.load` keep all of it (module docstring).

    Called on symbolic tensors (one per input: a list, a dict ``{input
    name: tensor}``, or a bare tensor for one input), a Model is one node of
    another model, sharing its weights wherever it is called; its outputs
    come back as ``forward`` returns them. ``forward``, ``fit``,
    ``evaluate`` and ``predict`` take a dict ``{input name: array}`` too
    (Keras'), refusing one that misses or adds a name.

    A layer may be called at several nodes (shared weights), but not also
    sit inside a container (a Sequential) that the graph calls, nor inside
    two of them; and layer names are unique (inside containers too), as in
    :class:`~tinynet.Sequential`: ``ValueError`` otherwise.
    """

    def __init__(self, inputs, outputs, name: str | None = None, **kwargs):
        # A file saved before these checks existed must still load (from_config).
        from_file = kwargs.pop("_from_file", False)
        self.inputs = _as_list(inputs, "inputs")
        _check_inputs(self.inputs, from_file)
        if isinstance(outputs, dict):
            names = [str(k) for k in outputs]
            outs = _as_list(list(outputs.values()), "outputs")
        else:
            outs = _as_list(outputs, "outputs")
            names = [t.name for t in outs]
        if len(set(names)) != len(names):
            raise ValueError(f"Model expected distinct output names, received {names}; "
                             f"pass outputs as a dict {{task name: tensor}}")
        _check_validation_clashes(names, from_file)
        self.outputs = outs
        self.output_names = names
        self._single_input = not isinstance(inputs, (list, tuple))
        self._single_output = isinstance(outputs, SymbolicTensor)
        self._nodes = self._topological_order(from_file)
        self._slots, self._node_slots, self._producer = self._number_tensors()
        self._input_slots = [self._slots[t] for t in self.inputs]
        self._output_slots = [self._slots[t] for t in self.outputs]
        layers = []
        for node in self._nodes:
            if all(node.layer is not seen for seen in layers):
                layers.append(node.layer)
        _check_layers_distinct(layers, names_too=not from_file)
        self._layers = layers
        # Keyed by the layers and nodes themselves, not their ids: a deep copy
        # of the model copies these with the layers and nodes, keys included
        # (a set of ids kept the original's, so the copy kept no replay for
        # a layer it calls twice and its backward refused to run).
        self._multi_use = {layer for layer in layers
                           if sum(node.layer is layer for node in self._nodes) > 1}
        self._replay: dict[Node, tuple] = {}
        self._values: list = []  # the last forward's array of each tensor, by slot
        self._training = False
        # What the backward passes of every step ask of the graph, kept (see
        # _upstream_nodes and _nodes_before_parameters)
        self._upstream: dict[int, frozenset] = {}
        self._leaves: tuple | None = None
        super().__init__(name=name, **kwargs)
        for layer in layers:
            adopt(self, layer)  # a frozen model keeps them frozen (Keras' rule)
        if not self._trainable and not from_file:  # (a file keeps each layer's own flag)
            self.trainable = False  # freezes every layer, as Keras' trainable=False
        self.input_shape = [t.shape for t in self.inputs]
        self.output_shape = [t.shape for t in self.outputs]
        dtypes = [p.dtype for p in self.parameters()]
        self.dtype = dtypes[0] if dtypes else np.dtype(np.float32)
        self.built = True

    # ---------------------------------------------------------------- the graph
    def _topological_order(self, unused_inputs_ok: bool = False) -> list[Node]:
        """The layer nodes the outputs depend on, each after the nodes it reads.

        Raises ``ValueError`` if an output depends on an :func:`Input` not in
        ``inputs`` or (unless ``unused_inputs_ok``) if an input reaches no
        output: its data would be taken and ignored (a wiring slip).
        """
        order, state = [], {}
        input_nodes = {id(t.node) for t in self.inputs}
        for t in self.inputs:
            if t.node.layer is not None:
                raise ValueError(f"Model inputs must come from tn.mtl.Input, received "
                                 f"the output of {t.node.layer._who}")
        # Iterative depth-first search: deep chains must not hit the recursion limit.
        for out in self.outputs:
            stack = [(out.node, False)]
            while stack:
                node, done = stack.pop()
                if done:
                    state[id(node)] = 2
                    if node.layer is not None:
                        order.append(node)
                    continue
                if state.get(id(node)) == 2:
                    continue
                if node.layer is None and id(node) not in input_nodes:
                    raise ValueError(f"Model output depends on Input {node.name!r}, which "
                                     f"is not in inputs= ({[t.name for t in self.inputs]})")
                state[id(node)] = 1
                stack.append((node, True))
                for t in reversed(node.inputs):  # so the first input is visited first
                    if state.get(id(t.node)) is None:
                        stack.append((t.node, False))
        unused = [t.name for t in self.inputs if id(t.node) not in state]
        if unused and not unused_inputs_ok:
            raise ValueError(f"Model expected every input to reach an output, received "
                             f"inputs {unused} that no output depends on (their data would "
                             f"be ignored); connect them or leave them out of inputs=")
        return order

    def _number_tensors(self) -> tuple[dict, list, list]:
        """``(slots, node_slots, producer)``: each tensor's *slot*, a number
        owned by the model -- the inputs first, then each node's outputs in
        the topological order -- as ``{tensor: slot}``; per node (in
        ``_nodes``' order) the slots it reads and those it writes; per slot
        the index of the node that writes it (None for an input).

        The per-forward caches -- the values of the last forward, the
        gradients of a backward, the kept upstream sets -- are keyed by slots
        and node indices, not by ``id()``: a deep copy of the model made
        between a forward and its backward has the same numbers (this map
        is copied with its tensors as keys), where the ids of the original's
        tensors named nothing in the copy; and a number, unlike the id of an
        object garbage-collected since, cannot come to name another one."""
        slots = {t: i for i, t in enumerate(self.inputs)}
        producer: list = [None] * len(slots)
        node_slots = []
        for j, node in enumerate(self._nodes):
            reads = tuple(slots[t] for t in node.inputs)  # (written before: topological)
            for t in node.outputs:
                slots[t] = len(producer)
                producer.append(j)
            node_slots.append((reads, tuple(slots[t] for t in node.outputs)))
        return slots, node_slots, producer

    def _slot(self, tensor, who: str) -> int:
        """The slot of ``tensor``, one of this model's tensors; else a ``ValueError``."""
        slot = self._slots.get(tensor) if isinstance(tensor, SymbolicTensor) else None
        if slot is None:
            raise ValueError(f"Model {self.name!r}.{who} expected one of the model's own "
                             f"tensors (an input, or a layer's output in its graph), "
                             f"received {tensor!r}"[:300])
        return slot

    def sublayers(self) -> list[Layer]:
        return list(self._layers)

    def set_rng(self, rng: np.random.Generator) -> None:
        """Use ``rng`` in every layer and, once compiled, in the weighting
        (PCGrad's projection order): ``fit(seed=...)`` then fixes the run."""
        super().set_rng(rng)
        if self.compiled:
            self.weighting.set_rng(rng)

    def astype(self, dtype) -> "Model":
        """:meth:`Layer.astype` of the layers and, once compiled, of the
        weighting's learned parameters (uncertainty's log-variances,
        GradNorm's weights), which the model's optimizer steps with its own:
        left in the old dtype, they were the only ones training in it. Their
        optimizer state follows at the next step, as the layers' does
        (:meth:`tinynet.optim.Optimizer.step`)."""
        super().astype(dtype)
        if self.compiled:
            self.weighting.astype(dtype)
        return self

    @property
    def layers(self) -> list[Layer]:
        """Every distinct layer, in the order the forward pass first runs it."""
        return list(self._layers)

    def get_layer(self, name: str) -> Layer:
        for layer in self._layers:
            if layer.name == name:
                return layer
        from ..checks import did_you_mean
        raise ValueError(f"Model has no layer {name!r}"
                         f"{did_you_mean(name, [la.name for la in self._layers])}")

    # ---------------------------------------------------------------- forward
    def _input_arrays(self, x, who: str | None = None) -> list[np.ndarray]:
        """One floating-point array per input, of the input's per-sample shape
        and one number of samples: ``x`` is an array (one input; a list of its
        samples such as ``x.tolist()`` too), a list with one array per input,
        or a dict ``{name: array}``. Errors name ``who`` (default: the model)."""
        who = who or f"Model {self.name!r}"
        names = [t.name for t in self.inputs]
        if isinstance(x, dict):
            xs = self._by_input_name(x, who)
        elif isinstance(x, (list, tuple)) and not (
                len(self.inputs) == 1 and x and np.ndim(x[0]) == len(self.inputs[0].shape)):
            xs = list(x)
        else:  # an array, or (one input) a list of samples such as x.tolist()
            xs = [x]
        if len(xs) != len(self.inputs):
            raise ValueError(f"{who} expected {len(self.inputs)} input array(s) {names} (a "
                             f"list with one array per input, or a dict {{name: array}}), "
                             f"received a {type(x).__name__} of {len(xs)}")
        xs = [as_float_array(a, who, f"input {t.name!r}", min_ndim=2)
              for a, t in zip(xs, self.inputs)]
        for a, t in zip(xs, self.inputs):
            if a.shape[1:] != t.shape:
                raise ValueError(f"{who} expected input {t.name!r} of shape "
                                 f"{shape_str(t.shape)}, received {a.shape}")
        if len({a.shape[0] for a in xs}) > 1:
            raise ValueError(f"{who} expected inputs with one number of samples, "
                             f"received {[a.shape[0] for a in xs]}")
        return xs

    def _by_input_name(self, x: dict, who: str) -> list:
        """The values of ``x``, a dict ``{input name: value}`` (arrays, or
        symbolic tensors when this model is called as a layer), in the order
        of ``inputs``; ``ValueError`` naming each missing and unknown name."""
        names = [t.name for t in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError(f"{who} has inputs of one name, {names}: pass a list "
                             f"with one array per input, not a dict")
        missing = [name for name in names if name not in x]
        unknown = [str(k) for k in x if k not in names]
        if missing or unknown:
            problems = [f"missing input {name!r}" for name in missing] + [
                f"unknown input {u!r}{did_you_mean(u, missing or names)}" for u in unknown]
            raise ValueError(f"{who} expected inputs {names}, received "
                             f"{'; '.join(problems)}")
        return [x[name] for name in names]

    def forward_all(self, x, training: bool = False) -> list[np.ndarray]:
        """Outputs of every output tensor, as a list (even for one output)."""
        values = [None] * len(self._producer)
        for slot, a in zip(self._input_slots, self._input_arrays(x)):
            values[slot] = a
        self._replay = {}
        # As a layer of another model: whatever it cached is now this run's,
        # not that model's node's (which re-runs this model before its backward).
        self._cache_owner = None
        for node, (reads, writes) in zip(self._nodes, self._node_slots):
            layer = node.layer
            args = [values[slot] for slot in reads]
            arg = args if node.multi_input else args[0]
            if layer in self._multi_use:
                # What a re-run of this node in backward needs: its input, RNG
                # state and settings (one changed since waits for the next forward)
                inner = list(walk_layers(layer))
                self._replay[node] = (arg, inner, _rng_states(inner), settings_tree(inner))
            out = layer.forward(arg, training=training)
            outs = out if node.multi_output else [out]
            for slot, o in zip(writes, outs):
                values[slot] = o
            layer._cache_owner = node  # whose forward the layer's cache holds
        self._values = values
        self._training = training
        return [values[slot] for slot in self._output_slots]

    def forward(self, x, training: bool = False):
        outs = self.forward_all(x, training=training)
        return outs[0] if self._single_output else outs

    # --------------------------------------------------------------- backward
    def backward_all(self, dys, need_dx: bool = True) -> list[np.ndarray] | None:
        """Gradient of each input given the gradient of each output.

        ``dys`` is a list with one entry per output; ``None`` entries (and
        heads that receive nothing) are skipped, so ``backward_all([g, None])``
        backpropagates the first task only.

        With ``need_dx=False`` (training: the inputs need no gradient) None is
        returned and what only the inputs' gradients need is skipped, as in
        ``Sequential.backward``: a node none of whose inputs depends on a
        parameter gets no backward call if it has no parameters, and is
        asked not to compute its dL/dx if it supports that (``can_skip_dx``).
        """
        grads = self._output_grads(dys)
        self._backward_nodes(grads, need_dx)
        if not need_dx:
            return None
        return [grads.get(slot, np.zeros_like(self._values[slot])) for slot in self._input_slots]

    def backward_to(self, dys, tensor: SymbolicTensor) -> np.ndarray:
        """Backward from the outputs (``dys`` as in :meth:`backward_all`)
        through the nodes after ``tensor`` only; returns the gradient of
        ``tensor`` (zeros if no output depends on it). The parameters of those
        nodes accumulate their gradients; ``tensor``'s node and everything
        before it get none. With :meth:`backward_from`, one backward pass in
        two halves (MGDA-UB's per-task head passes, then one trunk pass)."""
        slot = self._slot(tensor, "backward_to")
        grads = self._output_grads(dys)
        self._backward_nodes(grads, need_dx=False, stop=self._upstream_nodes(tensor))
        return grads.get(slot, np.zeros_like(self._values[slot]))

    def backward_from(self, tensor: SymbolicTensor, grad: np.ndarray) -> None:
        """Backward of ``grad`` (the gradient of ``tensor``, of its value's
        shape) through the nodes before ``tensor``; the inputs get none."""
        slot = self._slot(tensor, "backward_from")
        value = self._values[slot] if self._values else None
        if value is None:
            raise RuntimeError(f"Model {self.name!r}: backward called before forward")
        grad = as_float_array(grad, f"Model {self.name!r}", f"gradient of {tensor.name!r}")
        if grad.shape != value.shape:
            raise ValueError(f"Model {self.name!r} expected the gradient of {tensor.name!r} "
                             f"with shape {value.shape}, received {grad.shape}")
        self._backward_nodes({slot: grad}, need_dx=False)

    def _output_grads(self, dys) -> dict:
        """``{slot of output tensor: gradient}`` from one entry (or None) per output, checked."""
        if not self._values:
            raise RuntimeError(f"Model {self.name!r}: backward called before forward")
        if len(dys) != len(self.outputs):
            raise ValueError(f"Model {self.name!r} expected {len(self.outputs)} output "
                             f"gradient(s), received {len(dys)}")
        grads: dict[int, np.ndarray] = {}
        for slot, name, g in zip(self._output_slots, self.output_names, dys):
            if g is None:
                continue
            g = as_float_array(g, f"Model {self.name!r}", f"gradient of output {name!r}")
            expected = self._values[slot].shape
            if g.shape != expected:
                raise ValueError(f"Model {self.name!r} expected the gradient of output "
                                 f"{name!r} with shape {expected}, received {g.shape}")
            _accumulate(grads, slot, g)
        return grads

    def _backward_nodes(self, grads: dict, need_dx: bool, stop=frozenset()) -> None:
        """The backward pass over the nodes in reverse order, from the
        gradients in ``grads`` (``{slot of tensor: array}``, updated in place);
        nodes whose outputs' slots are in ``stop`` are left out (their
        outputs' gradients stay in ``grads``)."""
        leaves = set() if need_dx else self._nodes_before_parameters()
        for j in reversed(range(len(self._nodes))):
            node, (reads, writes) = self._nodes[j], self._node_slots[j]
            if writes[0] in stop:
                continue
            douts = [grads.pop(slot, None) for slot in writes]
            if all(d is None for d in douts):
                continue
            layer = node.layer
            leaf = j in leaves
            if leaf and not layer.parameters():
                continue  # nothing it could pass its gradient to needs one
            if node.multi_output:
                douts = [np.zeros_like(self._values[slot]) if d is None else d
                         for slot, d in zip(writes, douts)]
            if layer._cache_owner is not node:
                self._rerun(node)
            dy = douts if node.multi_output else douts[0]
            if leaf:
                if getattr(layer, "can_skip_dx", False):
                    layer.backward(dy, need_dx=False)
                else:
                    layer.backward(dy)
                continue
            dx = layer.backward(dy)
            for slot, d in zip(reads, dx if node.multi_input else [dx]):
                if d is not None:
                    _accumulate(grads, slot, d)

    def _upstream_nodes(self, tensor: SymbolicTensor) -> frozenset:
        """The slots of the outputs of ``tensor``'s node and of every node it
        depends on, and of the inputs it depends on: the tensors computed at
        or before it (a node is upstream when its first output's slot is in
        the set).

        Computed once per tensor and kept by its slot: a node's inputs are
        fixed when it is connected and a model's nodes when it is
        constructed, so the set cannot change, and MGDA-UB's
        :meth:`backward_to` asks for its representation's at every task of
        every step."""
        start = self._slot(tensor, "backward_to")
        kept = self._upstream.get(start)
        if kept is not None:
            return kept
        seen, stack = set(), [start]
        while stack:
            slot = stack.pop()
            j = self._producer[slot]
            if j is None:  # an input
                seen.add(slot)
            elif slot not in seen:
                reads, writes = self._node_slots[j]
                seen.update(writes)
                stack.extend(reads)
        self._upstream[start] = frozenset(seen)
        return self._upstream[start]

    def shared_representation(self) -> SymbolicTensor:
        """The tensor :math:`Z` through which every task reads the shared
        layers (the trunk's output of a hard-sharing model), for MGDA-UB
        (:class:`tinynet.mtl.weighting.MGDAUB`).

        It is the last tensor (in the forward order) such that every
        parameter shared by several outputs is in its node or before it, and
        every node after it reads only :math:`Z` or tensors computed after
        it (no head reads an earlier trunk layer or an input directly), no
        output being :math:`Z` or before it. Then :math:`\nabla_\theta L_t =
        J^\top \nabla_Z L_t` for every shared :math:`\theta`. ``ValueError``
        if there is none (soft sharing, cross-stitch units, MMoE's per-task
        mixtures, a head that skips the trunk's output, no shared parameter).
        """
        shared = {id(p) for p in self.shared_parameters()}
        if shared:
            for node in reversed(self._nodes):
                for tensor in node.outputs:
                    if self._is_representation(tensor, shared):
                        return tensor
        why = ("no parameter is shared by two or more outputs" if not shared else
               "no single tensor separates the shared parameters from the task heads")
        raise ValueError(f"Model {self.name!r} expected a shared representation for "
                         f"gradients on it (MGDA-UB): one tensor, the trunk's output, that "
                         f"every task head reads the shared layers through, with every "
                         f"shared parameter before it (hard sharing); received a model "
                         f"where {why} (soft sharing, cross-stitch units and MMoE have "
                         f"none; use 'mgda' there)")

    def _is_representation(self, tensor: SymbolicTensor, shared: set) -> bool:
        """Whether ``tensor`` is :meth:`shared_representation` (its conditions)."""
        before, own = self._upstream_nodes(tensor), self._slots[tensor]
        if any(slot in before for slot in self._output_slots):
            return False
        trunk, heads = set(), set()  # ids of the parameters before and after it
        for node, (reads, writes) in zip(self._nodes, self._node_slots):
            params = {id(p) for p in node.layer.parameters()}
            if writes[0] in before:
                trunk |= params
            elif any(slot != own and slot in before for slot in reads):
                return False
            else:
                heads |= params
        return shared <= trunk and not shared & heads

    def _nodes_before_parameters(self) -> frozenset:
        """Indices (in ``_nodes``) of the nodes none of whose inputs depends
        on a parameter (so no gradient needs to leave them when the model's
        inputs need none).

        Every training step asks (once per backward pass: T + 1 times for
        MGDA-UB), and the answer depends on the fixed graph and on which
        layers hold parameters, which only a change inside a layer (a
        Sequential's ``add`` or ``pop``) alters: it is kept with that
        pattern and computed again when the pattern differs. (Positions, not
        ids: a deep copy's answer is the original's.)"""
        key = tuple(bool(node.layer.parameters()) for node in self._nodes)
        if self._leaves is not None and self._leaves[0] == key:
            return self._leaves[1]
        depends = set()  # slots of the tensors computed with some parameter
        leaves = set()
        for j, ((reads, writes), has_params) in enumerate(zip(self._node_slots, key)):
            upstream = any(slot in depends for slot in reads)
            if not upstream:
                leaves.add(j)
            if upstream or has_params:
                depends.update(writes)
        self._leaves = (key, frozenset(leaves))
        return self._leaves[1]

    def backward(self, dy):
        dxs = self.backward_all([dy] if self._single_output else list(dy))
        return dxs[0] if self._single_input else dxs

    def _rerun(self, node: Node) -> None:
        """Restore ``node``'s forward cache in a layer that ran elsewhere since
        (at another node, in another model sharing it, or called directly);
        RuntimeError (:func:`~tinynet.layers.base.stale_cache_error`) for a
        layer this model calls once (no replay kept: that costs each forward
        a copy of the random state and settings)."""
        layer = node.layer
        if node not in self._replay:
            raise stale_cache_error(f"Model {self.name!r}", layer)
        # inner: the layer and every layer inside it (a shared Sequential tower),
        # as the forward walked them: each may have a generator and running
        # statistics of its own.
        arg, inner, rng_states, settings = self._replay[node]
        states = [{k: np.array(v, copy=True) for k, v in la.get_state().items()}
                  for la in inner]
        now = _rng_states(inner)
        _set_rng_states(inner, rng_states)
        now_settings = swap_settings(settings)
        try:
            layer.forward(arg, training=self._training)
        finally:
            swap_settings(reversed(now_settings))
        _set_rng_states(inner, now)
        for la, state in zip(inner, states):
            if state:
                la._restore_state(state)  # its own arrays: unchecked, NaN kept
        layer._cache_owner = node

    # ------------------------------------------------------------ task owners
    def output_owners(self) -> dict[int, set]:
        """``{id(param): set of output indices whose value depends on it}``.

        A multi-output layer (MMoE) may say that some of its parameters reach
        only one of its outputs (``layer.output_parameters(k)``: the gate of
        task ``k``), which keeps them out of the shared set.
        """
        reached: dict[int, set] = {}  # id(node) -> {(output index of node, task)}
        for task, out in enumerate(self.outputs):
            stack, seen = [out], set()
            while stack:
                t = stack.pop()
                if id(t) in seen:
                    continue
                seen.add(id(t))
                reached.setdefault(id(t.node), set()).add((t.index, task))
                stack.extend(t.node.inputs)
        owners: dict[int, set] = {}
        for node in self._nodes:
            pairs = reached.get(id(node), set())
            private = {}
            per_output = getattr(node.layer, "output_parameters", None)
            if per_output is not None:
                for k in range(len(node.outputs)):
                    for p in per_output(k):
                        private[id(p)] = k
            for p in node.layer.parameters():
                k = private.get(id(p))
                tasks = {task for idx, task in pairs if k is None or idx == k}
                owners.setdefault(id(p), set()).update(tasks)
        return owners

    def output_parameters(self, k: int) -> list:
        """Parameters that reach output ``k`` only: as a layer of another
        model, :meth:`output_owners` there keeps them to the task that reads
        that output (as an MMoE gate)."""
        return self.task_parameters(k)

    def shared_parameters(self) -> list:
        """Parameters that two or more outputs depend on (the shared trunk)."""
        owners = self.output_owners()
        return [p for p in self.parameters() if len(owners.get(id(p), ())) > 1]

    def task_parameters(self, task) -> list:
        """Parameters that only output ``task`` (a name or an index) depends on."""
        index = self._task_index(task)
        owners = self.output_owners()
        return [p for p in self.parameters() if owners.get(id(p)) == {index}]

    def _task_index(self, task) -> int:
        if isinstance(task, (int, np.integer)) and not isinstance(task, bool):
            if not 0 <= task < len(self.outputs):
                raise ValueError(f"Model {self.name!r} has {len(self.outputs)} outputs, "
                                 f"received task index {task}")
            return int(task)
        if task not in self.output_names:
            from ..checks import did_you_mean
            raise ValueError(f"Model {self.name!r} has no task {task!r}"
                             f"{did_you_mean(task, self.output_names)} "
                             f"(tasks: {self.output_names})")
        return self.output_names.index(task)

    # ------------------------------------------------------------ bookkeeping
    def get_weights(self) -> list[np.ndarray]:
        """Copies of all parameter values, then state arrays (BatchNorm's moving
        statistics), as :meth:`tinynet.Sequential.get_weights`."""
        return model_io.get_weights(self)

    def set_weights(self, weights) -> None:
        """Copy ``weights`` in (as :meth:`get_weights` returns them); the count,
        every shape and every value are checked first, naming the weight
        (:func:`tinynet.io.set_weights`)."""
        model_io.set_weights(self, weights)

    def weight_names(self) -> list[str]:
        """Names of the arrays :meth:`get_weights` returns, in the same order."""
        return model_io.weight_names(self)

    def summary(self, print_fn=print) -> str:
        """A table of nodes: layer, output shape, parameters, inputs.

        A layer called at several nodes has a row per call, ``"(call k)"``
        after its name (there and where another node reads its output), and
        its parameters counted in its first row only."""
        rows = [("Layer (type)", "Output shape", "Params", "Connected to")]
        calls = {}  # id(node) -> its number among the calls of its layer, if several
        for node in self._nodes:
            if node.layer in self._multi_use:
                calls[id(node)] = 1 + sum(n.layer is node.layer for n in self._nodes
                                          if id(n) in calls)

        def tensor_name(t):
            k = calls.get(id(t.node))
            return t.name if k is None else f"{t.name} (call {k})"

        for t in self.inputs:
            rows.append((f"{t.name} (Input)", shape_str(t.shape), "0", ""))
        counted = set()
        for node in self._nodes:
            layer = node.layer
            n = 0 if id(layer) in counted else layer.count_params()
            counted.add(id(layer))
            shapes = ", ".join(shape_str(t.shape) for t in node.outputs)
            call = f", call {calls[id(node)]}" if id(node) in calls else ""
            rows.append((f"{layer.name} ({type(layer).__name__}{call})", shapes, str(n),
                         ", ".join(tensor_name(t) for t in node.inputs)))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        shared = sum(p.size for p in self.shared_parameters())
        lines.append(f"Total params: {self.count_params():,} (shared by several outputs: "
                     f"{shared:,}); outputs: {', '.join(self.output_names)}")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    # ----------------------------------------------------------------- saving
    #: File format version a saved Model needs (see :mod:`tinynet.io`).
    file_version = 2

    def save(self, path, include_optimizer: bool = True, metadata: dict | None = None,
             extra_arrays: dict | None = None) -> str:
        """Write the model (graph, weights, compile settings, the weighting's
        state and, by default, the optimizer state) to one ``.npz`` file,
        atomically; :func:`tinynet.load` gives it back. See :func:`tinynet.io.save`
        (``metadata`` and ``extra_arrays`` default to the model's own)."""
        return model_io.save(self, path, include_optimizer=include_optimizer,
                             metadata=metadata, extra_arrays=extra_arrays)

    def get_config(self) -> dict:
        """The graph, as Keras' functional config: JSON-safe, rebuilt by :meth:`from_config`.

        ::

            {"name": "model_1", "trainable": true,
             "inputs": [{"name": "x", "shape": [4], "dtype": null}],
             "layers": [{"class": "Dense", "config": {...}}, ...],
             "nodes": [{"layer": 0, "inputs": [{"input": 0}], "multi_input": false},
                       {"layer": 1, "inputs": [{"node": 0, "output": 0}], ...}, ...],
             "outputs": [{"task": "cls", "tensor": {"node": 1, "output": 0}}, ...],
             "single_input": true, "single_output": false}

        ``layers`` holds every distinct layer once (a layer called at several
        nodes is shared, not copied); ``nodes`` are the layer calls in
        topological order, each reading tensors ``{"input": i}`` (the
        ``i``-th model input) or ``{"node": j, "output": k}`` (output ``k``
        of an earlier node ``j``); ``outputs`` name each output tensor's task.
        """
        inputs = {id(t): i for i, t in enumerate(self.inputs)}
        layers = {id(layer): i for i, layer in enumerate(self._layers)}
        produced = {}
        for j, node in enumerate(self._nodes):
            for k, t in enumerate(node.outputs):
                produced[id(t)] = {"node": j, "output": k}

        def ref(t):
            return {"input": inputs[id(t)]} if id(t) in inputs else produced[id(t)]

        config = {"name": self.name, "trainable": self._trainable}
        if self.seed is not None:
            config["seed"] = self.seed
        config.update(
            inputs=[{"name": t.name, "shape": list(t.shape),
                     "dtype": None if t.dtype is None else t.dtype.name} for t in self.inputs],
            layers=[layer_to_dict(layer) for layer in self._layers],
            nodes=[{"layer": layers[id(node.layer)], "inputs": [ref(t) for t in node.inputs],
                    "multi_input": node.multi_input} for node in self._nodes],
            outputs=[{"task": task, "tensor": ref(t)}
                     for task, t in zip(self.output_names, self.outputs)],
            single_input=self._single_input, single_output=self._single_output)
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Model":
        """Rebuild the graph :meth:`get_config` describes (weights are new:
        :func:`tinynet.load` then sets the saved ones).

        Raises ``ValueError`` naming the entry for a description that does not
        hold together (a node reading a tensor that does not exist or comes
        later, an unknown layer class, a missing key...). A subclass's own
        keys (``SoftSharing``'s penalty...) go to its ``_set_extra_config``.
        """
        config = dict(_expect(config, dict, "a model config"))
        extra = {k: config.pop(k) for k in list(config) if k not in _GRAPH_KEYS}
        inputs = []
        for i, spec in enumerate(_field(config, "inputs", list)):
            where = f"input {i}"
            shape = _field(spec, "shape", list, where)
            dtype = spec.get("dtype")
            if dtype is not None and not isinstance(dtype, str):
                raise ValueError(f"{where} expected a dtype name or null, received {dtype!r}")
            inputs.append(Input(shape, name=_field(spec, "name", str, where), dtype=dtype))
        if not inputs:
            raise ValueError("a model config expected at least one input, received none")
        layers = [layer_from_dict(spec) for spec in _field(config, "layers", list)]
        outputs = []  # per node: the list of its output tensors

        def tensor(ref, where):
            if isinstance(ref, dict) and set(ref) == {"input"} and _index(ref["input"],
                                                                          len(inputs)):
                return inputs[ref["input"]]
            if isinstance(ref, dict) and set(ref) == {"node", "output"} \
                    and _index(ref["node"], len(outputs)) \
                    and _index(ref["output"], len(outputs[ref["node"]])):
                return outputs[ref["node"]][ref["output"]]
            raise ValueError(f"{where} reads the tensor {ref!r}, which does not exist: "
                             f"expected {{'input': i}} with 0 <= i < {len(inputs)}, or "
                             f"{{'node': j, 'output': k}} for an output of one of the "
                             f"{len(outputs)} nodes before it"[:400])

        for j, spec in enumerate(_field(config, "nodes", list)):
            where = f"node {j}"
            k = _field(spec, "layer", int, where)
            if not _index(k, len(layers)):
                raise ValueError(f"{where} expected a layer index 0 <= i < {len(layers)}, "
                                 f"received {k}")
            args = [tensor(r, where) for r in _field(spec, "inputs", list, where)]
            multi = _field(spec, "multi_input", bool, where)
            if not args or (not multi and len(args) != 1):
                raise ValueError(f"{where} expected one input tensor, or a list of them "
                                 f"with multi_input, received {len(args)}")
            out = layers[k](args if multi else args[0])
            outputs.append(list(out) if isinstance(out, (list, tuple)) else [out])
        tasks, tensors = [], []
        for i, spec in enumerate(_field(config, "outputs", list)):
            tasks.append(_field(spec, "task", str, f"output {i}"))
            tensors.append(tensor(_field(spec, "tensor", dict, f"output {i}"), f"output {i}"))
        single_in = _field(config, "single_input", bool)
        single_out = _field(config, "single_output", bool)
        if (single_in and len(inputs) != 1) or (single_out and len(tensors) != 1):
            raise ValueError(f"a model config with single_input/single_output expected one "
                             f"input/output, received {len(inputs)}/{len(tensors)}")
        model = cls.__new__(cls)
        kwargs = {k: config[k] for k in ("trainable", "seed") if k in config}
        Model.__init__(model, inputs[0] if single_in else inputs,
                       tensors[0] if single_out else dict(zip(tasks, tensors)),
                       name=_field(config, "name", str), _from_file=True, **kwargs)
        if model.output_names != tasks:
            raise ValueError(f"a model config expected its single output to be named "
                             f"after its layer, {model.output_names}, received {tasks}")
        if len(model._layers) != len(layers):
            raise ValueError(f"a model config lists {len(layers)} layers, of which only "
                             f"{len(model._layers)} lead to an output")
        model._set_extra_config(extra)
        return model

    def _set_extra_config(self, extra: dict) -> None:
        """Restore what a subclass adds to :meth:`get_config` (nothing here)."""
        if extra:
            raise ValueError(f"{type(self).__name__} config has unknown keys {sorted(extra)}")


_GRAPH_KEYS = ("name", "trainable", "seed", "inputs", "layers", "nodes", "outputs",
               "single_input", "single_output")


def _expect(value, kind, what):
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"expected {what} as {kind.__name__}, received "
                         f"{type(value).__name__}: {value!r}"[:300])
    return value


def _field(spec, key, kind, where="a model config"):
    """``spec[key]`` checked to be a ``kind``, or ValueError naming ``where``."""
    if not isinstance(spec, dict) or key not in spec:
        raise ValueError(f"{where} expected the key {key!r}, received {spec!r}"[:300])
    return _expect(spec[key], kind, f"{where}'s {key!r}")


def _index(i, n) -> bool:
    return isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n


def _accumulate(grads: dict, key: int, g: np.ndarray) -> None:
    # ``+`` makes a new array: a layer's returned dx is never modified in place.
    grads[key] = g if key not in grads else grads[key] + g


def _rng_states(layers: list) -> list:
    """The generator state of each of ``layers`` (a layer and every layer
    inside it: ``list(walk_layers(layer))``)."""
    return [la.rng.bit_generator.state for la in layers]


def _set_rng_states(layers: list, states: list) -> None:
    for la, state in zip(layers, states):
        la.rng.bit_generator.state = state
