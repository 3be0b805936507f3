"""Multi-task data: area resize against an independent supersampling reference,
the two-item canvases, and the MMoE synthetic generator."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinynet.mtl import data


def supersampled_resize(image, out_h, out_w):
    """Independent reference: repeat every pixel out_h (out_w) times, which makes the
    output grid align with whole blocks, then average the blocks."""
    h, w = image.shape
    big = np.repeat(np.repeat(image, out_h, axis=0), out_w, axis=1)  # (h*out_h, w*out_w)
    return big.reshape(out_h, h, out_w, w).mean(axis=(1, 3))


@given(h=st.integers(1, 12), w=st.integers(1, 12), out_h=st.integers(1, 12),
       out_w=st.integers(1, 12), seed=st.integers(0, 1000))
def test_resize_area_matches_supersampling(h, w, out_h, out_w, seed):
    image = np.random.default_rng(seed).random((h, w))
    got = data.resize_area(image[None], out_h, out_w)[0]
    np.testing.assert_allclose(got, supersampled_resize(image, out_h, out_w), rtol=1e-5,
                               atol=1e-6)


def test_resize_matrix_rows_average_and_errors():
    r = data.area_resize_matrix(36, 28)
    np.testing.assert_allclose(r.sum(axis=1), 1.0)
    np.testing.assert_allclose(data.area_resize_matrix(4, 2), [[.5, .5, 0, 0], [0, 0, .5, .5]])
    with pytest.raises(ValueError, match="(n, H, W)"):
        data.resize_area(np.zeros((3, 3)), 2, 2)
    # n_out 0 divided by zero; n_in 0 gave rows of zeros, which average nothing
    for n_in, n_out in ((3, 0), (0, 3), (3, 2.5)):
        with pytest.raises((TypeError, ValueError),
                           match="area_resize_matrix expected n_(in|out) as a positive"):
            data.area_resize_matrix(n_in, n_out)


def test_overlay_places_items_in_opposite_corners():
    a = np.zeros((1, 3, 3), np.float32)
    a[0, 0, 0] = 1.0
    b = np.zeros((1, 3, 3), np.float32)
    b[0, 2, 2] = 0.5
    b[0, 0, 0] = 0.25  # lands on canvas (2, 2), where item a is 0
    canvas = data.overlay_pairs(a, b, 5)[0]
    assert canvas[0, 0] == 1.0 and canvas[4, 4] == 0.5 and canvas[2, 2] == 0.25
    assert canvas.sum() == pytest.approx(1.75)
    with pytest.raises(ValueError, match="canvas"):
        data.overlay_pairs(a, b, 2)


def test_multi_digits_shapes_labels_and_determinism():
    (x, y), (xt, yt) = data.load_multi_digits(n_train=50, n_test=20, seed=3)
    assert x.shape == (50, 64) and xt.shape == (20, 64) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(y) == {"left", "right"} and y["left"].dtype == np.int64
    assert (y["left"] != y["right"]).any()
    (x2, y2), _ = data.load_multi_digits(n_train=50, n_test=20, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y["right"], y2["right"])


def test_multi_digits_takes_seed_none_and_refuses_a_bad_seed_clearly():
    # seed=None crashed on seed + 1 (the test pairs' seed); -2 and 1.5 failed
    # inside NumPy.
    (x, _), (xt, _) = data.load_multi_digits(n_train=5, n_test=4, seed=None)
    assert x.shape == (5, 64) and xt.shape == (4, 64)
    for bad, error in ((-2, ValueError), (1.5, TypeError)):
        with pytest.raises(error, match="load_multi_digits expected seed as None or a "
                                        "non-negative integer"):
            data.load_multi_digits(n_train=5, n_test=4, seed=bad)


def test_synthetic_and_make_multi_refuse_a_bad_seed_clearly():
    # both passed the seed to np.random.default_rng unchecked: NumPy's bare
    # "expected non-negative integer", and True counted as seed 1
    images, labels = np.zeros((3, 4, 4), np.float32), np.arange(3)
    for bad, error in ((-2, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="synthetic_mmoe expected seed as None or a "
                                        "non-negative integer"):
            data.synthetic_mmoe(10, 0.5, seed=bad)
        with pytest.raises(error, match="make_multi expected seed as None or a "
                                        "non-negative integer"):
            data.make_multi(images, labels, 4, canvas=6, seed=bad)
    a = data.make_multi(images, labels, 4, canvas=6, seed=np.random.SeedSequence(5))
    b = data.make_multi(images, labels, 4, canvas=6, seed=np.random.default_rng(5))
    assert np.array_equal(a[1]["left"], b[1]["left"])


def test_synthetic_correlation_controls_label_correlation():
    corrs = []
    for p in (1.0, 0.5, 0.0):
        x, y = data.synthetic_mmoe(4000, p, seed=0)
        assert x.shape == (4000, 100) and y["y1"].shape == (4000,)
        corrs.append(np.corrcoef(y["y1"], y["y2"])[0, 1])
    assert corrs[0] > 0.99  # identical tasks up to the N(0, 0.01) noise
    assert corrs[0] > corrs[1] > corrs[2]


def test_synthetic_follows_the_generation_recipe():
    x, y = data.synthetic_mmoe(3000, 0.3, n_features=5, n_sines=2, noise_std=0.0, seed=1)
    # Rebuild w1 from the same random stream and check y1 exactly.
    rng = np.random.default_rng(1)
    u1 = rng.standard_normal(5)
    u1 /= np.linalg.norm(u1)
    u2 = rng.standard_normal(5)
    u2 -= (u2 @ u1) * u1
    u2 /= np.linalg.norm(u2)
    alpha, beta = rng.standard_normal(2), rng.standard_normal(2)
    w2 = 0.3 * u1 + np.sqrt(1 - 0.09) * u2
    assert abs(u1 @ u2) < 1e-12 and abs(np.linalg.norm(w2) - 1) < 1e-12
    wx = x.astype(np.float64) @ w2
    expected = wx + np.sin(np.outer(wx, alpha) + beta).sum(axis=1)
    np.testing.assert_allclose(y["y2"], expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="correlation"):
        data.synthetic_mmoe(10, 1.5)
    with pytest.raises(ValueError, match="n_features"):
        data.synthetic_mmoe(10, 0.5, n_features=1)


def test_multi_fashion_validation_split_never_uses_a_test_image(monkeypatch):
    import tinynet.data
    from tinynet.mtl import data as mtl_data

    n = mtl_data.VALIDATION_START + 100
    # each image's pixels carry its index, so the pairs tell which images they came from
    x_tr = np.broadcast_to(np.arange(n)[:, None, None], (n, 28, 28)).astype(np.float32) * 255
    y_tr = np.arange(n) % 10
    x_te, y_te = np.full((50, 28, 28), -255.0, np.float32), np.arange(50) % 10   # index -1
    monkeypatch.setattr(tinynet.data, "load_fashion_mnist",
                        lambda root=None: ((x_tr, y_tr), (x_te, y_te)))
    seen = []

    def record(images, labels, count, canvas, seed):
        seen.append(np.unique(images[:, 0, 0]))
        return (np.zeros((count, 28, 28), np.float32),
                {"left": np.zeros(count), "right": np.zeros(count)})

    monkeypatch.setattr(mtl_data, "make_multi", record)
    mtl_data.load_multi_fashion(5, 5, validation=True)
    train_ids, val_ids = seen
    assert train_ids.max() < mtl_data.VALIDATION_START <= val_ids.min()
    assert val_ids.max() == n - 1 and (val_ids >= 0).all()          # no test image
    seen.clear()
    mtl_data.load_multi_fashion(5, 5)
    assert (seen[1] == -1).all()                                   # the default: the test set


def test_multi_fashion_checks_its_arguments_before_loading(monkeypatch):
    # validation="no" was truthy (the validation split, silently), and a bad
    # n_train failed only after Fashion-MNIST was loaded (or downloaded)
    import tinynet.data

    def must_not_load(root=None):
        raise AssertionError("Fashion-MNIST loaded before the arguments were checked")

    monkeypatch.setattr(tinynet.data, "load_fashion_mnist", must_not_load)
    with pytest.raises(TypeError, match="load_multi_fashion expected validation as True "
                                        "or False, received 'no'"):
        data.load_multi_fashion(5, 5, validation="no")
    for kwargs, error in (({"n_train": 0}, ValueError), ({"n_test": 2.5}, TypeError)):
        with pytest.raises(error, match=f"load_multi_fashion expected {next(iter(kwargs))} "
                                        f"as a positive integer"):
            data.load_multi_fashion(**kwargs)
    with pytest.raises(TypeError, match="load_multi_digits expected n_test as a positive"):
        data.load_multi_digits(5, 2.5)


@pytest.mark.parametrize("call, error, match", [
    # each failed inside NumPy ("high <= 0", an IndexError, a broadcast error,
    # "division by zero") or, worse, returned something
    (lambda im, lab: data.make_multi(im[:0], lab[:0], 3, 11), ValueError,
     r"make_multi expected at least one image"),
    (lambda im, lab: data.make_multi(im.reshape(5, 64), lab, 3, 11), ValueError,
     r"make_multi expected images of shape \(n, h, w\), received \(5, 64\)"),
    (lambda im, lab: data.make_multi(im, lab[:2], 3, 11), ValueError,
     "make_multi expected 5 labels"),
    (lambda im, lab: data.make_multi(im, lab + 0.5, 3, 11), TypeError,  # were truncated
     "make_multi expected integer class labels"),
    (lambda im, lab: data.make_multi(im, lab, 3, 11.5), TypeError,
     "make_multi expected canvas as a positive integer"),
    (lambda im, lab: data.resize_area(im, 0, 4), ValueError,
     "resize_area expected height as a positive integer"),
    (lambda im, lab: data.resize_area(im, 4, -2), ValueError,  # was an empty array
     "resize_area expected width as a positive integer"),
    (lambda im, lab: data.overlay_pairs(im, im[:2], 11), ValueError,
     r"overlay_pairs expected two stacks of one shape, received \(5, 8, 8\) and \(2, 8, 8\)"),
    (lambda im, lab: data.synthetic_mmoe(5, "0.5"), TypeError,
     "synthetic_mmoe expected correlation as a real number"),
    (lambda im, lab: data.synthetic_mmoe(5, True), TypeError,  # was correlation 1
     "synthetic_mmoe expected correlation as a real number"),
    (lambda im, lab: data.synthetic_mmoe(5, 0.5, n_features=3.5), TypeError,
     "synthetic_mmoe expected n_features as a positive integer"),
    (lambda im, lab: data.synthetic_mmoe(5, 0.5, n_sines=-1), ValueError,
     "synthetic_mmoe expected n_sines as a non-negative integer"),
    (lambda im, lab: data.synthetic_mmoe(5, 0.5, noise_std=-1.0), ValueError,
     r"synthetic_mmoe expected noise_std in \[0, inf\)"),
    (lambda im, lab: data.synthetic_mmoe(5, 0.5, scale=np.nan), ValueError,
     r"synthetic_mmoe expected scale in \(-inf, inf\)"),
])
def test_canvas_and_synthetic_arguments_are_checked(call, error, match):
    images = np.random.default_rng(0).random((5, 8, 8)).astype(np.float32)
    with pytest.raises(error, match=match):
        call(images, np.arange(5))


def test_zero_sines_and_zero_noise_are_allowed():
    x, y = data.synthetic_mmoe(6, 0.5, n_features=4, n_sines=0, noise_std=0.0, seed=0)
    assert x.shape == (6, 4) and y["y1"].shape == (6,)
