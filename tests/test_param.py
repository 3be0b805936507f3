"""tinynet.param.Param: a value, its gradient, a name and a trainable flag."""

import numpy as np
import pytest

from tinynet.param import Param


@pytest.mark.parametrize("flag", ["False", "no", 0.0, None])
def test_trainable_must_be_a_bool(flag):
    """bool("False") is True: a string flag once made a parameter trainable."""
    with pytest.raises(TypeError, match=r"Param 'w' expected trainable as True or False"):
        Param(np.zeros(2), name="w", trainable=flag)
    assert Param(np.zeros(2), trainable=np.bool_(False)).trainable is False
