"""tinynet._weak: the weak references between layers and their containers.
(Their deep copies and pickles: tests/test_copy_pickle.py.)"""

import gc

import tinynet as tn
from tests.threads import errors_in_threads
from tinynet._weak import WeakParents


class _Member:
    pass


def test_weak_parents_hold_their_members_weakly():
    a, b = _Member(), _Member()
    parents = WeakParents([a])
    parents.add(b)
    parents.add(b)
    assert set(parents) == {a, b} and len(parents) == 2
    parents.discard(a)
    parents.discard(a)   # not there: nothing to do, as a WeakSet's
    assert list(parents) == [b]
    del b
    gc.collect()
    assert list(parents) == [] and len(parents.data) == 0


def test_listing_a_layers_containers_while_another_thread_adds_and_drops_them():
    # a WeakSet changed in place: a thread freezing or binding (which list a
    # layer's containers) while another put the layer in a container and
    # dropped it raised "Set changed size during iteration" (every run of this
    # test did before the set was copied on write)
    layer = tn.layers.Dense(2, input_dim=2)
    keep = [tn.Sequential([layer]) for _ in range(50)]

    def wrap():
        for _ in range(5000):
            tn.Sequential([layer])   # adopted, then dropped at once

    def read():
        for _ in range(20000):
            layer._frozen_above()

    assert errors_in_threads(wrap, read) == []
    gc.collect()
    assert set(layer._parents) == set(keep)
