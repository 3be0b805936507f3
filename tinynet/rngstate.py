"""A NumPy generator's state as JSON, and back: what files keep of it.

Every generator tinynet makes is a ``PCG64`` (``np.random.default_rng``); its
state is two 128-bit words (the LCG ``state`` and its increment ``inc``) and
a buffered 32-bit draw (``has_uint32``, ``uinteger``). :func:`generator_words`
writes them as six integers below 2**64 (so a ``uint64`` array or a JSON
list holds them exactly)::

    [state >> 64, state & (2**64 - 1), inc >> 64, inc & (2**64 - 1), has_uint32, uinteger]

and :func:`generator_from_words` rebuilds a generator that continues with
the very draws the original would have made. ``PCG64DXSM`` has the same
state and is kept the same way (its name says which).

Any other bit generator of NumPy's own (``MT19937``, ``Philox``, ``SFC64``:
:data:`NUMPY_BIT_GENERATORS`) is kept by :func:`generator_state` as its
``bit_generator.state`` dict in JSON: dicts, strings and integers as they
are, each integer array (``MT19937``'s 624-word ``key``, ``Philox``'s
``counter``, ``key`` and ``buffer``, ``SFC64``'s four words) as a list of
integers. :func:`generator_from_state` rebuilds it from NumPy's class of that
name (never by unpickling), reading the lists back to arrays of the dtypes
and shapes a fresh generator of that class has, and refuses a state that
does not have that very layout or that NumPy would not take as it is (a
value out of range, which NumPy would wrap). A bit generator that is not
NumPy's own class (a subclass, another package's) is not kept: both
functions return or raise accordingly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BIT_GENERATORS", "NUMPY_BIT_GENERATORS", "generator_from_state",
           "generator_from_words", "generator_state", "generator_words"]

#: The bit generators whose state :func:`generator_words` keeps.
BIT_GENERATORS = ("PCG64", "PCG64DXSM")
#: NumPy's bit generators, whose state :func:`generator_state` keeps.
NUMPY_BIT_GENERATORS = ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64")
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


def generator_state(rng: np.random.Generator) -> dict | None:
    """``rng.bit_generator.state`` as JSON (the module docstring): a dict with
    its ``"bit_generator"`` name, or ``None`` when the bit generator is not
    one of NumPy's own (:data:`NUMPY_BIT_GENERATORS`, the class itself) or
    its state holds anything else than dicts, strings, integers and 1-D
    integer arrays."""
    bits = rng.bit_generator
    name = type(bits).__name__
    if name not in NUMPY_BIT_GENERATORS or type(bits) is not getattr(np.random, name):
        return None
    try:
        return _to_json(bits.state)
    except TypeError:
        return None


def generator_from_state(state) -> np.random.Generator:
    """A generator in the state :func:`generator_state` returned ``state`` for.

    Raises ``ValueError`` unless ``state`` names one of
    :data:`NUMPY_BIT_GENERATORS` and has the layout of that generator's
    state (the same keys, integers where it has integers, lists of integers
    in the range of its arrays' dtype and of their length), its buffer
    positions in range (:func:`_check_positions`: NumPy indexes with them
    unchecked), and NumPy takes it as it is.
    """
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in NUMPY_BIT_GENERATORS:
        raise ValueError(f"expected a generator state naming a bit generator among "
                         f"{', '.join(NUMPY_BIT_GENERATORS)}, received {state!r}"[:300])
    bits = getattr(np.random, name)()
    value = _from_json(state, bits.state, "state")
    _check_positions(name, value, state)
    try:
        bits.state = value
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"expected a {name} state NumPy takes, received one it refuses: "
                         f"{exc}"[:300]) from None
    if _to_json(bits.state) != state:  # NumPy wrapped or dropped a value
        raise ValueError(f"expected a {name} state NumPy takes as it is, received one with "
                         f"a value out of its range: {state!r}"[:300])
    return np.random.Generator(bits)


#: Positions into a generator's own buffers that NumPy does not range-check
#: (its C code indexes with them: a file with ``pos`` 10**8 would read out of
#: bounds at the first draw), as (keys to the value, lowest, highest).
_POSITIONS = {"MT19937": (("state", "pos"), 0, 624), "Philox": (("buffer_pos",), 0, 4)}


def _check_positions(name: str, value: dict, given) -> None:
    """Refuse a buffer position out of its range, a ``has_uint32`` flag other
    than 0 or 1, and an all-zero MT19937 key (a generator of zeros only)."""
    if name in _POSITIONS:
        keys, low, high = _POSITIONS[name]
        pos = value
        for key in keys:
            pos = pos[key]
        if not low <= pos <= high:
            raise ValueError(f"expected the {name} state's {'.'.join(keys)} in "
                             f"[{low}, {high}], received {pos}")
    if value.get("has_uint32", 0) not in (0, 1):
        raise ValueError(f"expected the {name} state's has_uint32 0 or 1, received "
                         f"{value['has_uint32']!r}"[:200])
    if name == "MT19937" and not np.any(value["state"]["key"]):
        raise ValueError(f"expected an MT19937 state with a key not all zero (it would draw "
                         f"only zeros), received {str(given)[:120]}...")


def _to_json(value):
    """A bit generator's state with its integer arrays as lists (TypeError for
    anything JSON would not hold exactly)."""
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "ui":
        return value.tolist()
    raise TypeError(f"not a JSON-exact generator state: {type(value).__name__}")


def _from_json(value, like, where: str):
    """``value`` (JSON) read with the layout of ``like`` (a fresh generator's
    state): the same keys, the same strings, integers for integers, and for
    each array a list of its length of integers in its dtype's range."""
    if isinstance(like, dict):
        if not isinstance(value, dict) or set(value) != set(like):
            raise ValueError(f"expected {where} as a dict with keys {sorted(like)}, received "
                             f"{value!r}"[:300])
        return {key: _from_json(value[key], like[key], f"{where}[{key!r}]") for key in like}
    if isinstance(like, str):
        if value != like:
            raise ValueError(f"expected {where} {like!r}, received {value!r}"[:300])
        return value
    if isinstance(like, np.ndarray):
        info = np.iinfo(like.dtype)
        if not (isinstance(value, list) and len(value) == like.size
                and all(type(v) is int and info.min <= v <= info.max for v in value)):
            raise ValueError(f"expected {where} as {like.size} integers in "
                             f"[{info.min}, {info.max}], received {value!r}"[:300])
        return np.array(value, dtype=like.dtype)
    if type(value) is not int:
        raise ValueError(f"expected {where} as an integer, received {value!r}"[:300])
    return value
