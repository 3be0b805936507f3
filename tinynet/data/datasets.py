"""Datasets: the embedded UCI digits and the IDX image sets (Fashion-MNIST, ...).

Every loader returns ``(x_train, y_train), (x_test, y_test)`` like
``keras.datasets``: images as uint8 exactly as stored, labels as int64.
Scaling to floats is the caller's choice (``x.astype("float32") / 255``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..checks import check_bool
from ..switches import flag_from_env
from ..layers._checks import check_real
from .download import ChecksumError, download_verified, md5_hex
from .idx import IDXError, encode_idx, parse_idx

__all__ = [
    "DIGITS_CLASSES",
    "FASHION_MNIST_CLASSES",
    "IDX_DATASETS",
    "DatasetNotFoundError",
    "IDXDatasetSpec",
    "cache_dir",
    "load_digits",
    "load_fashion_mnist",
    "load_idx_dataset",
    "locate_idx_dataset",
]

#: Class names of the digits data set, by label.
DIGITS_CLASSES = tuple(str(i) for i in range(10))

#: Class names of Fashion-MNIST, by label (from the data set's README).
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

_DIGITS_FILE = "digits.npz"


def load_digits():
    """The UCI optical-recognition digits shipped inside tinynet (no download).

    1,797 images of 8x8 pixels with values 0..16 (the number of ink pixels in
    a 4x4 block of the original 32x32 bitmap), 10 classes, split once into a
    fixed, stratified training set of 1,437 and test set of 360 images.
    Source: UCI ML Repository, E. Alpaydin and C. Kaynak (1998), CC BY 4.0
    (see ``DIGITS_LICENSE.txt`` beside the data).

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x_*`` : uint8 ndarray of shape (n, 64), values 0..16;
        ``y_*`` : int64 ndarray of shape (n,), values 0..9.
        Fresh arrays on every call: changing them changes nothing stored.

    Examples
    --------
    >>> (x_train, y_train), (x_test, y_test) = load_digits()
    >>> x_train.shape, x_test.shape
    ((1437, 64), (360, 64))
    >>> x = x_train.astype("float32") / 16.0   # scale to [0, 1] before training
    """
    ref = resources.files(__package__).joinpath(_DIGITS_FILE)
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as data:
        arrays = {key: np.array(data[key]) for key in ("x_train", "y_train", "x_test", "y_test")}
    return ((arrays["x_train"], arrays["y_train"].astype(np.int64)),
            (arrays["x_test"], arrays["y_test"].astype(np.int64)))


# ---------------------------------------------------------------- IDX datasets

#: The four files of an MNIST-style release, in the order x_train, y_train, x_test, y_test.
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are nowhere tinynet looks, and could not be downloaded."""


@dataclass(frozen=True)
class IDXDatasetSpec:
    """Where an MNIST-style dataset lives and how to check it.

    Parameters
    ----------
    name : str
        Directory name under the cache and ``$TINYNET_DATA`` (``"fashion-mnist"``).
    title : str
        Name for messages (``"Fashion-MNIST"``).
    files : 4 str
        IDX file names without ``.gz``: x_train, y_train, x_test, y_test.
    urls : tuple of str
        Base addresses to download ``<url><file>.gz`` from, tried in order.
    md5 : dict
        Published MD5 of each downloaded ``<file>.gz``.
    content_md5 : dict
        MD5 of each decompressed file: checks a file however it was
        (re)compressed, e.g. by a distribution's package.
    system_dirs : tuple of str
        Where an operating-system package installs the files.
    classes : tuple of str
    how_to_get : str
        Advice for the not-found message.
    max_download_bytes : int
        The largest ``<file>.gz`` a download accepts (``download_verified``'s
        ``max_bytes``): Fashion-MNIST's and MNIST's largest is 26 MB, so the
        default 64 MiB bounds what a wrong or hostile server can make
        tinynet hold in memory.
    """

    name: str
    title: str
    files: tuple = MNIST_FILES
    urls: tuple = ()
    md5: dict = field(default_factory=dict)
    content_md5: dict = field(default_factory=dict)
    system_dirs: tuple = ()
    classes: tuple = ()
    how_to_get: str = ""
    max_download_bytes: int = 64 << 20


_FASHION_MNIST = IDXDatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    # the README's own address first, then the files in the upstream repository
    urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
          "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
    # the MD5 column of the download table in the Fashion-MNIST README
    md5={"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
    # MD5 of the decompressed files as published by loaders that keep the raw files;
    # Debian's copies (recompressed, so their .gz MD5 differs) decompress to exactly these
    content_md5={"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                 "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
                 "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
                 "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"},
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    classes=FASHION_MNIST_CLASSES,
    how_to_get="on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist; elsewhere "
               "download the four .gz files from https://github.com/zalandoresearch/"
               "fashion-mnist (data/fashion) into $TINYNET_DATA/fashion-mnist, or into any "
               "directory passed as root= (tinynet --data-dir)",
)

_MNIST = IDXDatasetSpec(
    name="mnist",
    title="MNIST",
    urls=("https://ossci-datasets.s3.amazonaws.com/mnist/",),
    # the checksums torchvision and others publish for the original files
    md5={"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    classes=DIGITS_CLASSES,
    how_to_get="download the four MNIST .gz files into $TINYNET_DATA/mnist, or into any "
               "directory passed as root= (tinynet --data-dir)",
)

#: Datasets known by name; any other name loads MNIST-style files found locally.
IDX_DATASETS = {spec.name: spec for spec in (_FASHION_MNIST, _MNIST)}

_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def cache_dir(name: str) -> Path:
    """``~/.cache/tinynet/<name>``, or ``$XDG_CACHE_HOME/tinynet/<name>`` when
    ``XDG_CACHE_HOME`` is an absolute path. A relative one is ignored, as the
    XDG Base Directory spec says ("If an implementation encounters a relative
    path in any of these variables it should consider the path invalid and
    ignore it"): it would name a different cache in every working directory."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = Path.home() / ".cache"
    return Path(base) / "tinynet" / name


def _spec_for(dataset) -> IDXDatasetSpec:
    if isinstance(dataset, IDXDatasetSpec):
        return dataset
    if not isinstance(dataset, str):
        raise TypeError(f"load_idx_dataset expected a dataset name or an IDXDatasetSpec, "
                        f"received {type(dataset).__name__}")
    key = dataset.lower().replace("_", "-")
    if key in IDX_DATASETS:
        return IDX_DATASETS[key]
    if not _NAME_PATTERN.match(key):
        raise ValueError(f"load_idx_dataset expected a dataset name of letters, digits, "
                         f"'-', '_' or '.', received {dataset!r}")
    return IDXDatasetSpec(name=key, title=dataset,
                          how_to_get="put the four MNIST-style IDX files "
                                     f"({', '.join(MNIST_FILES)}, .gz or not) in a "
                                     "directory and pass root= (tinynet --data-dir), or "
                                     f"put them in $TINYNET_DATA/{key}")


def _search_dirs(spec: IDXDatasetSpec, root) -> list:
    """(directory, why) pairs in search order."""
    dirs = []
    if root is not None:
        dirs += [(Path(root), "root="), (Path(root) / spec.name, "root=")]
    env = os.environ.get("TINYNET_DATA")
    if env:  # a root of per-dataset directories: one dataset's files never pass for another's
        dirs.append((Path(env) / spec.name, "$TINYNET_DATA/<name>"))
    dirs.append((cache_dir(spec.name), "download cache"))
    dirs += [(Path(d), "system package") for d in spec.system_dirs]
    return dirs


def _files_in(directory: Path, spec: IDXDatasetSpec):
    """(paths of the four files, or None) and a note on what is missing."""
    if not directory.is_dir():
        return None, ("exists but is not a directory" if directory.exists()
                      else "does not exist")
    found, missing = [], []
    for stem in spec.files:
        path = next((p for p in (directory / stem, directory / f"{stem}.gz") if p.is_file()),
                    None)
        (found if path else missing).append(path or stem)
    if missing:
        return None, "missing " + ", ".join(missing)
    return found, ""


def _decode(data: bytes, stem: str, source: str, spec: IDXDatasetSpec, verify: bool):
    """Parse one file's bytes; with ``verify``, compare its content with the published MD5."""
    array = parse_idx(data, source)  # structural errors first: they say more
    if not (verify and stem in spec.content_md5):
        return array
    # the file parsed has exactly the bytes of its array's encoding: the content's MD5
    # without decompressing it whole before its header is checked
    content_md5 = md5_hex(encode_idx(array))
    if content_md5 != spec.content_md5[stem]:
        raise ChecksumError(f"{source}: content MD5 {content_md5} differs from the "
                            f"published {spec.content_md5[stem]} of {spec.title}'s {stem}; "
                            f"the file is damaged or another version: delete it to fetch "
                            f"a fresh copy")
    return array


def _assemble(arrays, spec: IDXDatasetSpec, sources):
    x_train, y_train, x_test, y_test = arrays
    for x, y, x_src, y_src in ((x_train, y_train, sources[0], sources[1]),
                               (x_test, y_test, sources[2], sources[3])):
        if y.ndim != 1 or x.ndim < 2 or len(x) != len(y):
            raise IDXError(f"{spec.title}: images {x_src} of shape {x.shape} do not match "
                           f"labels {y_src} of shape {y.shape} (expected (n, ...) and (n,))")
        if not np.issubdtype(y.dtype, np.integer):
            raise IDXError(f"{spec.title}: labels {y_src} hold {y.dtype} values; class "
                           f"labels are integers (an IDX labels file of type ubyte)")
        if y.size and y.min() < 0:
            raise IDXError(f"{spec.title}: labels {y_src} hold a negative label ({y.min()}); "
                           f"class labels are 0, 1, 2, ...")
    if x_train.shape[1:] != x_test.shape[1:]:  # a model trained on one takes only that shape
        raise IDXError(f"{spec.title}: test images {sources[2]} of shape {x_test.shape} do not "
                       f"match training images {sources[0]} of shape {x_train.shape} "
                       f"(expected samples of one shape, (n, "
                       f"{', '.join(map(str, x_train.shape[1:]))}) in both)")
    return (x_train, y_train.astype(np.int64)), (x_test, y_test.astype(np.int64))


def _download_one(spec: IDXDatasetSpec, stem: str, verify: bool, verbose: bool,
                  timeout: float) -> list:
    """Try each address for ``<stem>.gz``; returns failure notes (empty on success)."""
    gz_name = f"{stem}.gz"
    target = cache_dir(spec.name) / gz_name
    failures, refused = [], None
    for base in spec.urls:
        url = base + gz_name
        try:
            download_verified(url, target, md5=spec.md5.get(gz_name), timeout=timeout,
                              verbose=verbose, max_bytes=spec.max_download_bytes,
                              check=lambda data, url=url: _decode(data, stem, url, spec, verify))
            return []
        except (ChecksumError, IDXError) as exc:  # served, but not the published file
            failures.append(f"{url}: {exc}")
            refused = exc
        except OSError as exc:  # unreachable, HTTP error, cut off: try the next address
            failures.append(f"{url}: {exc}")
    if refused is not None:
        raise type(refused)(f"{spec.title}: no verified copy of {gz_name} could be "
                            f"downloaded; nothing was kept in {target.parent}:\n  "
                            + "\n  ".join(failures)) from None
    return failures


def _download(spec: IDXDatasetSpec, verify: bool, verbose: bool, timeout: float) -> list:
    """Fetch every missing file into the cache; returns failure notes (empty on success)."""
    for stem in spec.files:
        if not any((cache_dir(spec.name) / name).is_file() for name in (stem, f"{stem}.gz")):
            failures = _download_one(spec, stem, verify, verbose, timeout)
            if failures:
                return failures
    return []


def idx_dataset_files(dataset, root=None):
    """The four files :func:`load_idx_dataset` would read, as Paths (training
    images and labels, test images and labels), or None where it finds none
    (nothing is read or downloaded)."""
    spec = _spec_for(dataset)
    for directory, _ in _search_dirs(spec, root):
        paths = _files_in(directory, spec)[0]
        if paths is not None:
            return paths
    return None


def locate_idx_dataset(dataset, root=None):
    """The directory :func:`load_idx_dataset` would read, or None (nothing is read)."""
    paths = idx_dataset_files(dataset, root)
    return None if paths is None else paths[0].parent


def load_idx_dataset(dataset, root=None, download: bool | None = None, verify: bool = True,
                     verbose: bool = True, timeout: float = 60.0, return_paths: bool = False):
    """Load an MNIST-style dataset of four IDX files (Fashion-MNIST, MNIST, KMNIST, ...).

    Looks for the files (``<file>`` or ``<file>.gz``), in order, in

    1. ``root`` and ``root/<name>``, when given;
    2. ``$TINYNET_DATA/<name>``, when the variable is set;
    3. the download cache ``~/.cache/tinynet/<name>`` (``$XDG_CACHE_HOME`` honoured);
    4. where an operating-system package installs them (Debian's
       ``dataset-fashion-mnist``: ``/usr/share/datasets/fashion-mnist``).

    If none has all four files and the dataset has a download address, the
    missing files are downloaded into the cache, checked against the
    published checksums and only then kept.

    Parameters
    ----------
    dataset : str or IDXDatasetSpec
        ``"fashion-mnist"``, ``"mnist"`` (known addresses and checksums), any
        other name for files you provide (e.g. ``"kmnist"`` with ``root=``),
        or a spec of your own.
    root : str or os.PathLike, optional
    download : bool, optional
        Default: download unless the environment variable ``TINYNET_OFFLINE``
        is on (``1``, ``true``, ``yes``, ``on``; see :mod:`tinynet.switches`).
    verify : bool, default True
        Compare each file's content with its published MD5 where known.
    verbose : bool, default True
        Say on stderr what is downloaded.
    timeout : float, default 60
        Seconds of network silence before a download is abandoned.
    return_paths : bool, default False
        Also return the four files read (where they were found, or the
        cache after a download): one search, where a later
        :func:`idx_dataset_files` would search the directories again (and
        could find other files, had some appeared meanwhile).

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        Images as stored (uint8 of shape (n, 28, 28) for the MNIST family),
        labels int64. With ``return_paths``, the pair
        ``(((x_train, y_train), (x_test, y_test)), paths)``, ``paths`` the
        list of the four files' Paths (training images and labels, test
        images and labels).

    Raises
    ------
    DatasetNotFoundError
        Nowhere to be found and not downloadable; the message lists every
        place searched and how to get the files.
    IDXError, ChecksumError
        A file found is truncated, not IDX, or not the published file; or the
        files disagree: images and labels of different counts, labels that are
        not integers >= 0, test images of another shape than the training ones.
    """
    spec = _spec_for(dataset)
    if download is not None:  # download="False" must not mean True (a network access)
        download = check_bool(download, "load_idx_dataset", "download")
    verify = check_bool(verify, "load_idx_dataset", "verify")
    verbose = check_bool(verbose, "load_idx_dataset", "verbose")
    return_paths = check_bool(return_paths, "load_idx_dataset", "return_paths")
    timeout = check_real(timeout, "load_idx_dataset", "timeout", 0.0, np.inf,
                         low_open=True, high_open=True)
    notes = []
    for directory, why in _search_dirs(spec, root):
        paths, note = _files_in(directory, spec)
        if paths is not None:
            return _load_paths(paths, spec, verify, return_paths)
        notes.append(f"  - {directory} ({why}): {note}")
    if download is None:
        download = not flag_from_env("TINYNET_OFFLINE", False)
    if not spec.urls:
        notes.append(f"No download address is known for {spec.title!r}.")
    elif not download:
        notes.append("Downloading is switched off (download=False or TINYNET_OFFLINE is set).")
    else:
        failures = _download(spec, verify, verbose, timeout)
        if not failures:
            paths, _ = _files_in(cache_dir(spec.name), spec)
            return _load_paths(paths, spec, verify, return_paths)
        notes.append("Downloading failed:")
        notes += [f"  - {failure}" for failure in failures]
    wanted = ", ".join(f"{stem}[.gz]" for stem in spec.files)
    raise DatasetNotFoundError(
        f"{spec.title} not found. tinynet looked for {wanted} in:\n" + "\n".join(notes)
        + f"\nTo get the files: {spec.how_to_get}.")


def _load_paths(paths, spec: IDXDatasetSpec, verify: bool, return_paths: bool):
    """The dataset in ``paths`` (and ``paths``, if ``return_paths``)."""
    arrays = [_decode(Path(path).read_bytes(), stem, str(path), spec, verify)
              for path, stem in zip(paths, spec.files)]
    data = _assemble(arrays, spec, [str(p) for p in paths])
    return (data, list(paths)) if return_paths else data


def load_fashion_mnist(root=None, download: bool | None = None, verify: bool = True,
                       verbose: bool = True):
    """Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; MIT licence): 70,000 28x28 images.

    Zalando's article images in 10 classes (:data:`FASHION_MNIST_CLASSES`),
    60,000 for training and 10,000 for testing. Where the files are looked
    for and how they are downloaded: :func:`load_idx_dataset`. On Debian and
    Ubuntu, ``apt-get install dataset-fashion-mnist`` provides them.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x_train`` uint8 of shape (60000, 28, 28), ``y_train`` int64 of
        shape (60000,); ``x_test`` (10000, 28, 28), ``y_test`` (10000,).

    Examples
    --------
    >>> (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    >>> x_train = x_train.reshape(len(x_train), -1).astype("float32") / 255
    """
    return load_idx_dataset("fashion-mnist", root=root, download=download, verify=verify,
                            verbose=verbose)
