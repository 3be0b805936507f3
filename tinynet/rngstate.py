"""A NumPy generator's state as six integers, and back: what files keep of it.

Every generator tinynet makes is a ``PCG64`` (``np.random.default_rng``); its
state is two 128-bit words (the LCG ``state`` and its increment ``inc``) and
a buffered 32-bit draw (``has_uint32``, ``uinteger``). :func:`generator_words`
writes them as six integers below 2**64 (so a ``uint64`` array or a JSON
list holds them exactly)::

    [state >> 64, state & (2**64 - 1), inc >> 64, inc & (2**64 - 1), has_uint32, uinteger]

and :func:`generator_from_words` rebuilds a generator that continues with
the very draws the original would have made. ``PCG64DXSM`` has the same
state and is kept the same way (its name says which). Other bit generators
(``MT19937``, ``Philox``, ``SFC64``) are not kept: :func:`generator_words`
returns ``None`` for them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BIT_GENERATORS", "generator_words", "generator_from_words"]

#: The bit generators whose state :func:`generator_words` keeps.
BIT_GENERATORS = ("PCG64", "PCG64DXSM")
_WORD = (1 << 64) - 1


def generator_words(rng: np.random.Generator) -> list[int] | None:
    """The six integers of ``rng``'s state (see the module docstring), or
    ``None`` when its bit generator is not one of :data:`BIT_GENERATORS`."""
    state = rng.bit_generator.state
    if state.get("bit_generator") not in BIT_GENERATORS:
        return None
    words = [state["state"]["state"], state["state"]["inc"]]
    return ([int(w) >> s & _WORD for w in words for s in (64, 0)]
            + [int(state["has_uint32"]), int(state["uinteger"])])


def generator_from_words(words, bit_generator: str = "PCG64") -> np.random.Generator:
    """A generator in the state :func:`generator_words` returned ``words`` for.

    Raises ``ValueError`` unless ``words`` are six integers in ``[0, 2**64)``
    with ``has_uint32`` 0 or 1 and ``uinteger`` below ``2**32``, and
    ``bit_generator`` is one of :data:`BIT_GENERATORS`.
    """
    if bit_generator not in BIT_GENERATORS:
        raise ValueError(f"expected a bit generator among {', '.join(BIT_GENERATORS)}, "
                         f"received {bit_generator!r}"[:200])
    ints = words.tolist() if isinstance(words, np.ndarray) else words
    ok = (isinstance(ints, (list, tuple)) and len(ints) == 6
          and all(type(w) is int and 0 <= w <= _WORD for w in ints)
          and ints[4] in (0, 1) and ints[5] < 1 << 32)
    if not ok:
        raise ValueError(f"expected a generator state as six integers in [0, 2**64) "
                         f"(has_uint32 0 or 1, uinteger < 2**32), received {words!r}"[:300])
    hi_s, lo_s, hi_i, lo_i, has_uint32, uinteger = ints
    rng = np.random.Generator(getattr(np.random, bit_generator)())
    rng.bit_generator.state = {
        "bit_generator": bit_generator, "has_uint32": has_uint32, "uinteger": uinteger,
        "state": {"state": hi_s << 64 | lo_s, "inc": hi_i << 64 | lo_i}}
    return rng
