r"""Multi-task datasets: MMoE's synthetic regression pair, Multi-Fashion, Multi-Digits.

Synthetic data with controlled task correlation (Ma et al., KDD 2018)
----------------------------------------------------------------------
1. Draw orthogonal unit vectors :math:`u_1, u_2 \in \mathbb R^d`.
2. For scale :math:`c` and correlation score :math:`p \in [-1, 1]`:
   :math:`w_1 = c\,u_1`, :math:`w_2 = c\,(p\,u_1 + \sqrt{1-p^2}\,u_2)`.
3. Draw :math:`x \sim \mathcal N(0, I_d)`.
4. :math:`y_t = w_t^\top x + \sum_{i=1}^{m} \sin(\alpha_i w_t^\top x + \beta_i) + \varepsilon_t`,
   :math:`\varepsilon_t \sim \mathcal N(0, 0.01)`,

with :math:`\alpha_i, \beta_i \sim \mathcal N(0, 1)` drawn once and shared by
both tasks (the paper leaves their law open; this is the common choice).
:math:`p` is the cosine of the two tasks' directions; the Pearson
correlation of the labels falls with it, not equal to it (the sines).
Defaults follow the paper: :math:`d = 100`, :math:`c = 1`, :math:`m = 10`.

Multi-Fashion / Multi-Digits (Sener & Koltun 2018's MultiMNIST recipe)
----------------------------------------------------------------------
Two items are drawn at random; one is put at the top-left and one at the
bottom-right of a larger square canvas (they overlap; the brighter pixel
wins), and the canvas is shrunk back to the item size by *area*
interpolation (:func:`resize_area`). Tasks: ``"left"`` = class of the
top-left item, ``"right"`` = class of the bottom-right one. Multi-Fashion:
28x28 items on a 36x36 canvas, back to 28x28. Multi-Digits uses the
embedded 8x8 digits: an 11x11 canvas, back to 8x8.
"""

from __future__ import annotations

import numpy as np

from ..checks import (check_bool, check_labels, check_non_negative_int,
                      check_positive_int, check_seed)
from ..data.batches import as_generator
from ..layers._checks import check_real

__all__ = ["synthetic_mmoe", "area_resize_matrix", "resize_area", "overlay_pairs",
           "make_multi", "load_multi_fashion", "load_multi_digits"]


def synthetic_mmoe(n_samples: int, correlation: float, n_features: int = 100,
                   scale: float = 1.0, n_sines: int = 10, noise_std: float = 0.1, seed=0):
    """Two regression tasks whose relatedness is set by ``correlation`` (p).

    Returns
    -------
    x : ndarray of shape (n_samples, n_features), float32
    y : dict {"y1": ndarray (n_samples,), "y2": ndarray (n_samples,)}, float32
    """
    who = "synthetic_mmoe"
    n_samples = check_positive_int(n_samples, who, "n_samples")
    correlation = check_real(correlation, who, "correlation", -1.0, 1.0)
    if check_positive_int(n_features, who, "n_features") < 2:
        raise ValueError(f"synthetic_mmoe expected n_features >= 2, received {n_features}")
    n_sines = check_non_negative_int(n_sines, who, "n_sines")
    noise_std = check_real(noise_std, who, "noise_std", 0.0, np.inf, high_open=True)
    scale = check_real(scale, who, "scale", -np.inf, np.inf, low_open=True, high_open=True)
    rng = as_generator(seed, "synthetic_mmoe")
    u1 = rng.standard_normal(n_features)
    u1 /= np.linalg.norm(u1)
    u2 = rng.standard_normal(n_features)
    u2 -= (u2 @ u1) * u1  # Gram-Schmidt: orthogonal to u1
    u2 /= np.linalg.norm(u2)
    w1 = scale * u1
    w2 = scale * (correlation * u1 + np.sqrt(1.0 - correlation ** 2) * u2)
    alpha = rng.standard_normal(n_sines)
    beta = rng.standard_normal(n_sines)
    x = rng.standard_normal((n_samples, n_features))
    y = {}
    for name, w in (("y1", w1), ("y2", w2)):
        wx = x @ w
        y[name] = (wx + np.sin(np.outer(wx, alpha) + beta).sum(axis=1)
                   + rng.normal(0.0, noise_std, n_samples)).astype(np.float32)
    return x.astype(np.float32), y


def area_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Matrix ``R`` of shape (n_out, n_in) with ``R @ v`` the area-average resize of ``v``.

    Output pixel :math:`i` covers :math:`[i s, (i+1) s)` of the input axis,
    :math:`s = n_{in}/n_{out}`; ``R[i, j]`` is the overlap of input pixel
    :math:`[j, j+1)` with it, divided by :math:`s` (rows sum to one).
    """
    n_in = check_positive_int(n_in, "area_resize_matrix", "n_in")
    n_out = check_positive_int(n_out, "area_resize_matrix", "n_out")
    s = n_in / n_out
    starts = np.arange(n_out)[:, None] * s
    left = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(starts + s, left + 1) - np.maximum(starts, left), 0, None)
    return overlap / s


def resize_area(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-interpolation resize of ``images`` (n, H, W) to (n, height, width).

    Separable: :math:`Y = R_h X R_w^\\top` for each image; exact for
    integer and fractional ratios alike, and preserves the mean intensity.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"resize_area expected images of shape (n, H, W), "
                         f"received {images.shape}")
    height = check_positive_int(height, "resize_area", "height")
    width = check_positive_int(width, "resize_area", "width")
    r_h = area_resize_matrix(images.shape[1], height).astype(np.float32)
    r_w = area_resize_matrix(images.shape[2], width).astype(np.float32)
    return np.einsum("ih,nhw,jw->nij", r_h, images, r_w, optimize=True)


def overlay_pairs(top_left: np.ndarray, bottom_right: np.ndarray, canvas: int) -> np.ndarray:
    """Put ``top_left[k]`` at the canvas' top-left and ``bottom_right[k]`` at its
    bottom-right corner (pixel-wise maximum where they overlap)."""
    top_left, bottom_right = np.asarray(top_left), np.asarray(bottom_right)
    if top_left.ndim != 3 or top_left.shape != bottom_right.shape:
        raise ValueError(f"overlay_pairs expected two stacks of one shape, received "
                         f"{top_left.shape} and {bottom_right.shape} (each (n, h, w))")
    n, h, w = top_left.shape
    canvas = check_positive_int(canvas, "overlay_pairs", "canvas")
    if canvas < max(h, w):
        raise ValueError(f"overlay_pairs expected a canvas of at least {max(h, w)} pixels, "
                         f"received {canvas}")
    out = np.zeros((n, canvas, canvas), dtype=np.float32)
    out[:, :h, :w] = top_left
    corner = out[:, canvas - h:, canvas - w:]
    np.maximum(corner, bottom_right, out=corner)
    return out


def make_multi(images: np.ndarray, labels: np.ndarray, n_samples: int, canvas: int, seed=0):
    """``n_samples`` two-item images from ``images`` (n, h, w), resized back to (h, w).

    Returns
    -------
    x : ndarray of shape (n_samples, h, w), float32 (the input's scale)
    y : dict {"left": int64 labels, "right": int64 labels}
    """
    n_samples = check_positive_int(n_samples, "make_multi", "n_samples")
    canvas = check_positive_int(canvas, "make_multi", "canvas")
    rng = as_generator(seed, "make_multi")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"make_multi expected images of shape (n, h, w), received "
                         f"{images.shape}")
    if not len(images):
        raise ValueError("make_multi expected at least one image, received none")
    labels = check_labels(labels, None, len(images), "make_multi")
    first = rng.integers(0, len(images), n_samples)
    second = rng.integers(0, len(images), n_samples)
    _, h, w = images.shape
    x = resize_area(overlay_pairs(images[first], images[second], canvas), h, w)
    return x, {"left": labels[first], "right": labels[second]}


def _split_seeds(seed, who) -> tuple:
    """The seeds of the training and test pairs: ``seed`` and ``seed + 1``
    (None and None: fresh pairs each call)."""
    seed = check_seed(seed, who)
    return seed, None if seed is None else seed + 1


def _check_counts(n_train, n_test, who) -> None:
    """The pair counts, checked before any data is loaded (or downloaded)."""
    check_positive_int(n_train, who, "n_train")
    check_positive_int(n_test, who, "n_test")


#: Fashion-MNIST training images from this index on make the validation
#: pairs of ``load_multi_fashion(validation=True)``; the ones before it the
#: training pairs.
VALIDATION_START = 50000


def load_multi_fashion(n_train: int = 20000, n_test: int = 5000, seed=0, root=None,
                       validation: bool = False):
    """Multi-Fashion: pairs of Fashion-MNIST items, 28x28 pixels in [0, 1].

    Training pairs come from the Fashion-MNIST training set, test pairs from
    its test set. With ``validation=True`` the second split is a validation
    split instead, for choosing settings without looking at the test set:
    training pairs from training images ``0..49,999`` and validation pairs
    from images ``50,000..59,999`` (no image in both). Returns ``(x_train,
    y_train), (x_test, y_test)`` with x of shape (n, 784) and y dicts
    ``{"left", "right"}``. ``seed`` (a non-negative int, or None for
    fresh pairs) draws the training pairs, ``seed + 1`` the test pairs.
    """
    seed, test_seed = _split_seeds(seed, "load_multi_fashion")  # before the download
    _check_counts(n_train, n_test, "load_multi_fashion")
    validation = check_bool(validation, "load_multi_fashion", "validation")
    from ..data import load_fashion_mnist
    (x_tr, y_tr), (x_te, y_te) = load_fashion_mnist(root=root)
    if validation:
        cut = VALIDATION_START
        (x_tr, y_tr), (x_te, y_te) = (x_tr[:cut], y_tr[:cut]), (x_tr[cut:], y_tr[cut:])
    train = make_multi(x_tr / np.float32(255), y_tr, n_train, canvas=36, seed=seed)
    test = make_multi(x_te / np.float32(255), y_te, n_test, canvas=36, seed=test_seed)
    return tuple((x.reshape(len(x), -1), y) for x, y in (train, test))


def load_multi_digits(n_train: int = 4000, n_test: int = 1000, seed=0):
    """Multi-Digits: pairs of the embedded 8x8 digits on an 11x11 canvas, back to 8x8.

    Pixels scaled to [0, 1]; training pairs from the digits' training split,
    test pairs from its test split. Returns ``(x_train, y_train), (x_test,
    y_test)`` with x of shape (n, 64). ``seed`` as in :func:`load_multi_fashion`.
    """
    seed, test_seed = _split_seeds(seed, "load_multi_digits")
    _check_counts(n_train, n_test, "load_multi_digits")
    from ..data import load_digits
    (x_tr, y_tr), (x_te, y_te) = load_digits()
    out = []
    for x, y, n, s in ((x_tr, y_tr, n_train, seed), (x_te, y_te, n_test, test_seed)):
        images = x.reshape(-1, 8, 8) / np.float32(16)
        multi, labels = make_multi(images, y, n, canvas=11, seed=s)
        out.append((multi.reshape(n, -1), labels))
    return tuple(out)
