"""tinynet.recipes: the pieces the command line, the demo and the benchmarks share."""

import re

import numpy as np
import pytest

from tinynet.data import read_idx, write_idx
from tinynet.recipes import (apply_preprocessing, build_mlp, cnn_layers, cosine_schedule,
                             load_for_training)


def test_cosine_schedule_decays_and_then_stays_at_its_floor():
    """Past ``epochs`` it once climbed back up the cosine (to lr at 2 * epochs)."""
    schedule = cosine_schedule(0.1, 10, final_fraction=0.1)
    assert schedule(0) == pytest.approx(0.1)
    assert schedule(5) == pytest.approx(0.055)
    values = [schedule(e) for e in range(25)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert schedule(10) == schedule(15) == schedule(20) == pytest.approx(0.01)


@pytest.mark.parametrize("limit, error", [(-1, ValueError), (0, ValueError), (2.5, TypeError)])
def test_load_for_training_refuses_a_limit_that_is_no_positive_integer(limit, error):
    """limit=-1 once sliced one sample off the end, limit=0 left nothing."""
    with pytest.raises(error, match="limit as a positive integer"):
        load_for_training("digits", limit=limit)
    assert len(load_for_training("digits", limit=3).train[0]) == 3


@pytest.mark.parametrize("raw", [np.arange(64, dtype=np.uint8), np.uint8(7)])
def test_apply_preprocessing_refuses_an_array_without_a_sample_axis(raw):
    """A 1-D sample of 64 pixels became 64 samples of one feature (scikit-learn
    refuses 1-D input: it could be one sample or one feature of many)."""
    with pytest.raises(ValueError, match=re.escape(f"received a {raw.ndim}-D array of shape "
                                                   f"{raw.shape}; reshape it: raw.reshape(1, -1) "
                                                   f"if it is one sample")):
        apply_preprocessing(raw, {"scale": 16.0})
    one = apply_preprocessing(np.arange(64, dtype=np.uint8).reshape(1, 8, 8), {"scale": 16.0})
    assert one.shape == (1, 64) and one.dtype == np.float32 and one[0, 63] == 63 / 16


@pytest.mark.parametrize("dtype, scale", [(np.uint8, 255.0), (np.int8, 127.0),
                                          (np.int16, 255.0), (np.int32, 255.0)])
def test_an_idx_set_of_wide_integer_pixels_in_0_255_is_divided_by_255(dtype, scale, tmp_path):
    """8-bit pixels stored as int32 were divided by 2**31 - 1 (the dtype's
    maximum): features near 1e-7, and training at chance. int8 pixels, 0..127,
    are divided by 127, the dtype's maximum (255 left them in [0, 0.5])."""
    rng = np.random.default_rng(0)
    high = 128 if dtype == np.int8 else 256
    (tmp_path / "wide").mkdir()
    for split in ("train", "t10k"):
        write_idx(tmp_path / "wide" / f"{split}-images-idx3-ubyte",
                  rng.integers(0, high, (6, 2, 2)).astype(dtype))
        write_idx(tmp_path / "wide" / f"{split}-labels-idx1-ubyte",
                  np.arange(6, dtype=np.uint8) % 2)
    data = load_for_training("wide", data_dir=tmp_path, download=False)
    assert data.preprocessing["scale"] == scale
    raw = read_idx(tmp_path / "wide" / "train-images-idx3-ubyte")
    np.testing.assert_array_equal(data.train[0], raw.reshape(6, -1).astype(np.float32)
                                  / np.float32(scale))


@pytest.mark.parametrize("high, expected", [
    (4095, 4095.0), (3899, 4095.0), (4096, 8191.0), (256, 511.0), (1000, 1023.0),
    (40000, 65535.0), (65535, 65535.0), (2 ** 31 - 1, 2.0 ** 31 - 1)])
def test_wide_pixels_beyond_255_are_divided_by_their_bit_depths_maximum(high, expected):
    # the training maximum itself (3899) made predict refuse the same dataset's test
    # pixel 4095 as outside the trained range
    from tinynet.recipes import pixel_scale
    assert pixel_scale(np.array([[0, high], [7, 12]], dtype=np.int32)) == expected


def test_pixel_scale_of_8_bit_pixels_and_bad_ones():
    from tinynet.recipes import pixel_scale
    assert pixel_scale(np.array([[0, 255]], dtype=np.int32)) == 255.0
    assert pixel_scale(np.array([[0, 3]], dtype=np.uint8)) == 255.0
    # never above the dtype's maximum, np.iinfo(dtype).max: a signed byte holds 0..127
    assert pixel_scale(np.array([[0, 3]], dtype=np.int8)) == 127.0
    assert pixel_scale(np.array([[0, 127]], dtype=np.int8)) == 127.0
    assert pixel_scale(np.zeros((0, 2), dtype=np.int8)) == 127.0
    assert pixel_scale(np.array([[0, 20000]], dtype=np.int16)) == 32767.0
    with pytest.raises(ValueError, match=r"values down to -128; 8-bit images stored as int8 "
                                         r"wrap pixels above 127 to negative values: store "
                                         r"them as uint8"):
        pixel_scale(np.array([[0, -128]], dtype=np.int8), "wrapped")
    with pytest.raises(ValueError, match="expected pixels >= 0, received training images "
                                         "of dtype int16 with values down to -3"):
        pixel_scale(np.array([[-3, 100]], dtype=np.int16), "signed")
    with pytest.raises(ValueError, match="expected integer pixels, received dtype float32"):
        pixel_scale(np.zeros((1, 2), np.float32))


def test_negative_test_pixels_are_refused_as_negative_training_pixels_are(tmp_path):
    # only the training images were checked: a negative test pixel became a negative
    # feature, which evaluate scored quietly
    (tmp_path / "signed").mkdir()
    for split in ("train", "t10k"):
        images = np.arange(24).reshape(6, 2, 2).astype(np.int16)
        if split == "t10k":
            images[3, 1, 0] = -5
        write_idx(tmp_path / "signed" / f"{split}-images-idx3-ubyte", images)
        write_idx(tmp_path / "signed" / f"{split}-labels-idx1-ubyte",
                  np.arange(6, dtype=np.uint8) % 2)
    with pytest.raises(ValueError, match="dataset 'signed': expected pixels >= 0, received "
                                         "test images of dtype int16 with values down to -5$"):
        load_for_training("signed", data_dir=tmp_path, download=False)


@pytest.mark.parametrize("build, error, message", [
    # each failed inside Python: a str of widths split into characters (Dense
    # received '1'), an int "not iterable", the square root of -4 a complex number
    (lambda: build_mlp(64, "128", 10), TypeError,
     "build_mlp expected hidden as a sequence of positive integers (one width per hidden "
     "layer, () for none), received '128'"),
    (lambda: build_mlp(64, 128, 10), TypeError, "build_mlp expected hidden as a sequence of "
                                                "positive integers"),
    (lambda: build_mlp(64, (128, 0), 10), ValueError, "received (128, 0)"),
    # a width that is no integer stays a ValueError (init's shape: a TypeError);
    # a 0-d array is one value, not a sequence of widths: build_mlp's own TypeError
    # (it was NumPy's "iteration over a 0-d array")
    (lambda: build_mlp(64, (128, 2.5), 10), ValueError, "received (128, 2.5)"),
    (lambda: build_mlp(64, np.array(128), 10), TypeError,
     "build_mlp expected hidden as a sequence of positive integers (one width per hidden "
     "layer, () for none), received array(128)"),
    (lambda: build_mlp(-64, (128,), 10), ValueError,
     "build_mlp expected n_inputs as a positive integer, received -64"),
    (lambda: build_mlp(64.0, (128,), 10), TypeError,
     "build_mlp expected n_inputs as a positive integer, received 64.0"),
    (lambda: build_mlp(64, (128,), 0), ValueError,
     "build_mlp expected n_classes as a positive integer, received 0"),
    (lambda: cnn_layers(-4), ValueError,
     "cnn_layers expected n_inputs as a positive integer, received -4"),
    (lambda: cnn_layers(784, "32"), TypeError,
     "cnn_layers expected filters as a sequence of positive integers (one width per conv "
     "block), received '32'"),
    (lambda: cnn_layers(784, 32), TypeError, "cnn_layers expected filters as a sequence"),
    (lambda: cnn_layers(784, units="128"), TypeError,
     "cnn_layers expected units as a positive integer, received '128'"),
])
def test_recipes_check_their_sizes_naming_the_argument(build, error, message):
    with pytest.raises(error, match=re.escape(message)):
        build()


def test_recipes_take_sizes_of_numpy_ints_and_no_hidden_layer():
    model = build_mlp(np.int64(4), [np.int64(3)], np.int64(2), seed=0)
    assert model.input_shape == (4,) and model.output_shape == (2,)
    assert len(build_mlp(4, (), 2).layers) == 1  # a linear model
    assert len(cnn_layers(np.int64(16), filters=())) == 3  # Reshape, Flatten, Dense
