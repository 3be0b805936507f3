"""Fused stepping: one update call for a whole run of parameters.

When a model's parameters live in one flat buffer (:func:`tinynet.param.flatten_params`;
``Sequential`` and ``mtl.Model`` put them there when they bind their
optimizer), an optimizer need not call its update rule once per parameter.
:func:`plan` splits a parameter group into *runs*: maximal sequences of
trainable parameters whose values lie back to back in one buffer, whose
gradients do too, and whose optimizer states have the same keys and step
count. Each run's state arrays are then moved into flat buffers of their own
(same order, so they line up with the values), and one call of the rule --
one fused kernel launch, split over the threads -- updates the whole run.

The per-parameter state dicts stay what ``state_dict``, PyTorch users and the
tests see: their arrays are views into the run's flat state. A parameter
that fits no run (not in a flat buffer, a different step count after it was
frozen for a while, a lone parameter) is stepped on its own, as before;
results are the same either way, because every rule is element-wise.

Cost: building a plan walks the parameters once; it is kept and reused for
as long as the group's parameters, their arrays, their state dicts and the
state arrays stay the same objects (checked each step: a few tuples of
``id`` s and one identity test per state array, ~5 µs for the benchmark MLP).
"""

from __future__ import annotations

import numpy as np

from ..param import contiguous_span, is_flat

__all__ = ["Run", "plan", "signature", "intact"]


class Run:
    """Parameters updated by one call of an optimizer's rule.

    Attributes
    ----------
    params : list of Param
    states : list of dict
        The parameters' own state dicts (their arrays are views of ``merged``).
    value, grad : ndarray of shape (n,) or the parameter's shape
        The run's values and gradients (1-D spans of a flat buffer, or the
        lone parameter's own arrays).
    merged : dict
        ``{"step": t, key: flat state array}`` as passed to the rule.
    """

    def __init__(self, params, states, value, grad, merged):
        self.params, self.states = params, states
        self.value, self.grad, self.merged = value, grad, merged
        self.views = self._views()

    def _views(self) -> list:
        """``(state dict, key, array)`` for every state array the run updates
        through ``merged`` (none for a lone parameter, which uses its own)."""
        if len(self.params) == 1:
            return []
        return [(state, key, state[key]) for state in self.states for key in self.merged
                if key != "step"]

    def step(self, update, group) -> None:
        """Advance the step count and apply ``update(value, grad, state, group)``;
        state arrays the rule creates on the way (a momentum buffer on the
        first step) are shared out to the parameters as views."""
        for state in self.states:
            state["step"] += 1
        if len(self.params) == 1:
            update(self.value, self.grad, self.states[0], group)
            return
        merged = self.merged
        merged["step"] = self.states[0]["step"]
        known = set(merged)
        update(self.value, self.grad, merged, group)
        new = merged.keys() - known
        for key in new:
            _share_out(merged[key], key, self.params, self.states)
        if new:
            self.views = self._views()


def _share_out(flat: np.ndarray, key: str, params, states) -> None:
    offset = 0
    for p, state in zip(params, states):
        state[key] = flat[offset:offset + p.size].reshape(p.shape)
        offset += p.size


def _arrays(state) -> dict:
    return {k: v for k, v in state.items() if k != "step"}


def _compatible(a, state_a, b, state_b) -> bool:
    """Same dtype, step count and state keys, state arrays shaped like ``b``."""
    keys = _arrays(state_a)
    other = _arrays(state_b)
    return (a.dtype == b.dtype and state_a["step"] == state_b["step"]
            and keys.keys() == other.keys()
            and all(isinstance(v, np.ndarray) and v.shape == b.shape and v.dtype == b.dtype
                    for v in other.values()))


def _make_runs(params, states) -> list[Run]:
    value = contiguous_span([p.value for p in params])
    if len(params) == 1 or value is None:  # alone, or only empty parameters
        return [Run([p], [s], p.value, p.grad, s) for p, s in zip(params, states)]
    merged = {}
    for key in _arrays(states[0]):
        arrays = [state[key] for state in states]
        flat = contiguous_span(arrays)
        if flat is None:  # move the state into one flat buffer, in run order
            flat = np.concatenate([a.reshape(-1) for a in arrays])
            _share_out(flat, key, params, states)
        merged[key] = flat
    return [Run(params, states, value, contiguous_span([p.grad for p in params]), merged)]


def signature(params, state: dict) -> tuple:
    """What a cached plan depends on, by identity: the parameters, their
    value and gradient arrays, and their state dicts (the state arrays are
    checked by :func:`intact`)."""
    return (tuple(map(id, params)), tuple(id(p.value) for p in params),
            tuple(id(p.grad) for p in params), tuple(id(state[p]) for p in params))


def intact(runs) -> bool:
    """Whether every state array a run's flat state views is still the one in
    its parameter's state dict (not replaced from outside since the plan)."""
    return all(state.get(key) is array for run in runs for state, key, array in run.views)


def plan(params, state: dict) -> list[Run]:
    """Split ``params`` (trainable, each with a state dict in ``state``) into runs.

    An empty parameter has no address to chain on: it joins any compatible
    run, and adjacency is checked against the last non-empty member.
    """
    chains, current, anchor = [], [], None
    for p in params:
        if current and _compatible(current[0], state[current[0]], p, state[p]) and (
                not p.size or anchor is None or is_flat([anchor, p])):
            current.append(p)
        else:
            if current:
                chains.append(current)
            current, anchor = [p], None
        if p.size:
            anchor = p
    if current:
        chains.append(current)
    return [run for chain in chains for run in _make_runs(chain, [state[p] for p in chain])]
