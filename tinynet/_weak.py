"""Weak references that a deep copy or a pickle carries as strong ones.

A layer refers weakly to the containers holding it (``Layer._parents``) and to
the one whose forward its cache holds (``Layer._cache_owner``), a container to
the parameters it released (:mod:`tinynet.optim.binding`), a multi-task
weighting to the model compiled with it: so that a model dropped is freed
though a layer, a parameter or a weighting of it lives on.

The standard library's weak references do not follow a copy: ``copy.deepcopy``
treats a ``weakref.ref`` as a constant, so a copied layer's reference still
names the *original* container (a copy of a frozen model, unfrozen, stayed
frozen: its layers took the original for their container), and ``pickle``
refuses them outright (a trained model could not be pickled). The classes here
copy and pickle their referents:

- deep copy: the reference's copy names the referent's copy, taken from
  ``memo`` when the copy copies both (a model copied with its layers), or made
  for it. A referent that nothing else in the copy holds is freed once the
  copy is done -- at once, or at the garbage collector's next run when it is
  in a reference cycle (a trained model is, through its ``history``) -- and
  its reference is then dead, as a weak reference to a dropped object is: a
  layer copied alone is held by no container. Until then the copy of its
  containers takes memory (as it did when the references were strong).
- pickle: the referent is pickled with the reference (once: the pickle's memo
  shares it); after loading, a referent that nothing else loaded holds is
  freed, as in a deep copy. A pickle of one layer thus carries its containers
  (every live one: a pickle cannot tell which of them the caller will load
  too), which a deep copy copies and frees in the same way.

A dead reference copies and pickles as None (:func:`copied`).
"""

from __future__ import annotations

import copy
import threading
import weakref

__all__ = ["Ref", "WeakParents", "copied"]


class Ref(weakref.ref):
    """``weakref.ref`` whose deep copy and pickle refer to the referent's copy
    (see the module docstring). ``copy.copy`` keeps the reference itself, as
    for ``weakref.ref``. Only a live reference is copied or pickled: a holder
    stores None for a dead one (:func:`copied` does)."""

    __slots__ = ()

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return copied(self, memo)

    def __reduce__(self):
        return _ref_to, (type(self), self())


def _ref_to(cls, target):
    """A ``cls`` reference to ``target``, None for None (a reference that died
    while being pickled)."""
    return None if target is None else cls(target)


def copied(ref, memo):
    """The deep copy of ``ref`` (a :class:`Ref` or None): a reference of its
    type to the referent's copy, or None if ``ref`` is None or dead."""
    target = None if ref is None else ref()
    return None if target is None else type(ref)(copy.deepcopy(target, memo))


# Serialises the writes of every WeakParents (re-entrant: a parent freed while
# a write holds the lock runs its removal callback in the same thread).
_PARENTS_LOCK = threading.RLock()


class WeakParents(weakref.WeakSet):
    """The containers holding a layer (``Layer._parents``): a ``WeakSet``
    whose deep copy holds the copies of its live members and whose pickle
    pickles them (see the module docstring).

    Its set of references is replaced, never changed in place, when a member
    is added, discarded or freed: a thread listing a layer's containers
    (``list(layer._parents)``, as freezing and binding do) while another put
    the layer in a container or dropped one raised "Set changed size during
    iteration". (A write that a freed member's removal interrupts may keep
    that dead reference; iterating skips it, as ``WeakSet`` does.)"""

    def __init__(self, members=()):
        super().__init__()

        def remove(ref, selfref=weakref.ref(self)):
            parents = selfref()
            if parents is not None:
                with _PARENTS_LOCK:
                    parents.data = parents.data - {ref}
        self._remove = remove
        for member in members:
            self.add(member)

    def add(self, member):
        with _PARENTS_LOCK:
            self.data = self.data | {weakref.ref(member, self._remove)}

    def discard(self, member):
        with _PARENTS_LOCK:
            self.data = self.data - {weakref.ref(member)}

    def __deepcopy__(self, memo):
        return type(self)(copy.deepcopy(member, memo) for member in list(self))

    def __reduce__(self):
        return type(self), (list(self),)
