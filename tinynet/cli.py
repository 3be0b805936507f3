"""The ``tinynet`` command (also ``python -m tinynet``).

::

    tinynet demo [core transfer mtl meta]       a tour on the embedded digits
    tinynet train fashion-mnist --hidden 256,128 --epochs 20 --out model.npz
    tinynet evaluate model.npz fashion-mnist
    tinynet predict model.npz images.npy --out labels.npy
    tinynet compile                             warm the kernel cache (every build)
    tinynet info                                versions, backend, data found

Exit status: 0 success, 1 the command failed (the message says why), 2 bad
command-line arguments; when the reader of the output went away first
(``tinynet demo | head -3``), the end by SIGPIPE of a Unix tool, without a
message (a shell's 141; :func:`main` returns 141 to a caller in-process).
``train`` and ``predict --out``, whose product is a file, carry on without
their output then (:mod:`tinynet._stdout`; standard output only:
``compile`` reports on the standard error). ``TINYNET_DEBUG=1``
shows the full traceback of a failure instead of the one-line message.

Pixel scaling: ``train`` divides the raw pixels by the maximum of their bit
depth, the smallest ``2**k - 1`` (k >= 8) at or above the training images'
maximum but at most the dtype's maximum (255 for 8-bit images, and for wider
integer pixels within 0..255; 127 for int8; 4095 for 12-bit, 65535 for 16-bit
pixels; 16 for the digits: :func:`tinynet.recipes.pixel_scale`; negative
pixels are refused) and records that in the model file
when the file format can hold it (otherwise ``evaluate``/``predict`` use the
same per-dataset rule); ``evaluate`` and ``predict`` apply the same scaling.
``predict`` refuses input outside the trained range: integer pixels outside
``[0, scale]`` (negative, or e.g. 16-bit values for a model trained on 0..255),
and, for a model whose file records that scaling, any values outside
``[0, 1]`` after it, since the model never saw such inputs. ``evaluate``
refuses a dataset's images by the same rule, and ``train`` its test images
beyond its training images' scale, before it trains.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from ._stdout import READER_LEFT_STATUS, ReaderAware, ReaderLeft, exit_with
from .switches import flag_from_env

__all__ = ["build_parser", "main", "number_type", "positive_int", "run"]

_EPILOG = "Run 'tinynet <command> --help' for the options of each command."


class CommandError(Exception):
    """A failure to report in one line (exit status 1)."""


# ------------------------------------------------------------ argument types
def number_type(convert, accept, expected: str):
    """An argparse ``type=``: ``convert(text)`` must succeed and satisfy
    ``accept``; anything else is a usage error (exit status 2) saying
    ``expected {expected}, received {text!r}`` -- before the command runs,
    not as a traceback from deep inside it. The benchmarks' options use it
    too (``benchmarks/report.py``)."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, received {text!r}")
        return value
    return parse


positive_int = number_type(int, lambda v: v > 0, "a positive integer")
_non_negative_int = number_type(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = number_type(float, lambda v: 0 < v < float("inf"), "a positive number")
_fraction = number_type(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
_non_negative_float = number_type(float, lambda v: 0 <= v < float("inf"), "a number >= 0")


def _registered(registry: str, kind: str):
    """An argparse ``type=``: a name of ``registry`` (``"module:NAME"``, imported
    when an argument is parsed, not for ``--help``), as :func:`tinynet.checks.lookup`
    finds it; the text is returned as given."""
    def parse(text: str) -> str:
        import importlib

        from .checks import lookup
        module, name = registry.split(":")
        try:
            lookup(getattr(importlib.import_module(module), name), text, kind)
        except ValueError as exc:  # "unknown optimizer 'adma'; did you mean 'adam'? ..."
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    return parse


_activation = _registered("tinynet.layers.activations:ACTIVATIONS", "activation")
_optimizer = _registered("tinynet.optim:OPTIMIZERS", "optimizer")


def _widths(text: str) -> tuple:
    """``"256,128"`` -> (256, 128); ``""`` or ``"none"`` -> () (a linear model)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        widths = (0,)
    if any(w <= 0 for w in widths):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive layer widths "
                                         f"such as 256,128, received {text!r}")
    return widths


# ------------------------------------------------------------------- parser
def _add_data_options(parser) -> None:
    parser.add_argument("--data-dir", metavar="DIR",
                        help="look for the dataset's IDX files here first (then "
                             "$TINYNET_DATA/<name>, ~/.cache/tinynet/<name>, the Debian package "
                             "location); refused with the embedded digits")
    parser.add_argument("--no-download", action="store_true",
                        help="never download; fail with a message if the files are absent "
                             "(also: environment variable TINYNET_OFFLINE=1)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tinynet`` command."""
    from . import __version__
    from .demo import PARTS
    from .recipes import DATASETS

    datasets = "; ".join(f"{name}: {what}" for name, what in DATASETS.items())
    parser = argparse.ArgumentParser(
        prog="tinynet", description="tinynet: neural networks from scratch in NumPy and "
                                    "Numba -- demo, train, evaluate, predict.",
        epilog=_EPILOG)
    parser.add_argument("--version", action="version", version=f"tinynet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")

    demo = sub.add_parser(
        "demo", help="a tour in seconds on the embedded digits",
        description="Run the demo parts (all by default) and print a results table for "
                    "each. core: an MLP trained on the embedded UCI digits with the "
                    "progress bar; transfer, mtl, meta: transfer learning, multi-task "
                    "learning and meta-learning, when those modules are installed.")
    demo.add_argument("parts", nargs="*", metavar="part",
                      help=f"parts to run, among {', '.join(PARTS)} (default: all)")
    demo.add_argument("--seed", type=_non_negative_int, default=0,
                      help="random seed (default 0)")
    demo.add_argument("--quiet", action="store_true", help="only the results tables")

    train = sub.add_parser(
        "train", help="train an MLP classifier on a dataset and save it",
        description="Train a multi-layer perceptron with the progress bar, report its "
                    "validation and test accuracy, and save it. Pixels are scaled to "
                    f"[0, 1]. Datasets: {datasets}; any other name reads the four "
                    "MNIST-style IDX files (train-images-idx3-ubyte[.gz] ...) from "
                    "--data-dir (e.g. kmnist).",
        epilog="example: tinynet train fashion-mnist --hidden 256,128 --epochs 20 "
               "--out model.npz")
    train.add_argument("dataset", help="digits, fashion-mnist, mnist, or a name with "
                                       "--data-dir")
    _add_data_options(train)
    train.add_argument("--hidden", type=_widths, default=(256, 128), metavar="W1,W2,...",
                       help="hidden layer widths (default 256,128; 'none' for a linear "
                            "model)")
    train.add_argument("--activation", type=_activation, default="relu",
                       help="relu, leaky_relu, elu, gelu, silu, sigmoid or tanh "
                            "(default relu)")
    train.add_argument("--dropout", type=_fraction, default=0.2,
                       help="dropout rate after each hidden layer (default 0.2; 0 for none)")
    train.add_argument("--batch-norm", action="store_true",
                       help="BatchNorm after each hidden Dense layer")
    train.add_argument("--epochs", type=positive_int, default=20, help="default 20")
    train.add_argument("--batch-size", type=positive_int, default=128, help="default 128")
    train.add_argument("--optimizer", type=_optimizer, default="adam",
                       help="adam, adamw, sgd, rmsprop or adagrad (default adam)")
    train.add_argument("--lr", type=_positive_float, default=1e-3,
                       help="initial learning rate (default 0.001)")
    train.add_argument("--weight-decay", type=_non_negative_float, default=None,
                       help="weight decay of the optimizer (default: the optimizer's own, "
                            "AdamW 0.01, others 0)")
    train.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                       help="learning-rate schedule over the epochs (default cosine)")
    train.add_argument("--val-fraction", type=_fraction, default=0.1,
                       help="share of the training set held out for validation "
                            "(rounded up), stratified unless a class has one sample "
                            "(default 0.1; 0 for none)")
    train.add_argument("--seed", type=_non_negative_int, default=0,
                       help="seed of the split, weights, shuffling and dropout (default 0)")
    train.add_argument("--limit", type=positive_int, metavar="N",
                       help="use only the first N training and N test samples (quick runs)")
    train.add_argument("--out", metavar="PATH", default="model.npz",
                       help="where to save the trained model (default model.npz)")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                       help="0 quiet, 1 progress bar, 2 one line per epoch (default 1)")

    evaluate = sub.add_parser(
        "evaluate", help="score a saved model on a dataset's test set",
        description="Reload a model saved by 'tinynet train' (or model.save) and report "
                    "its loss, accuracy and per-class accuracy on a dataset, with the same "
                    "pixel scaling as in training.")
    evaluate.add_argument("model", help="model file (.npz)")
    evaluate.add_argument("dataset", help="digits, fashion-mnist, mnist, or a name with "
                                          "--data-dir")
    _add_data_options(evaluate)
    evaluate.add_argument("--split", choices=("test", "train"), default="test",
                          help="which part to score (default test)")
    evaluate.add_argument("--batch-size", type=positive_int, default=1000,
                          help="default 1000")

    predict = sub.add_parser(
        "predict", help="predict the classes of samples in a .npy file",
        description="Apply a saved model to the samples in a .npy file. Integer arrays are "
                    "raw pixels and get the scaling used in training (divided by 255, or "
                    "16 for the digits; --scale overrides); float arrays are used as they "
                    "are (or divided by --scale). The scaled values must lie in [0, 1], "
                    "the range the model was trained on, for integer input and for any "
                    "input to a model saved by 'tinynet train'. Samples may have the "
                    "model's input shape or any shape with the same number of values "
                    "(e.g. (n, 28, 28) for 784 inputs); a single sample may omit the "
                    "batch axis.")
    predict.add_argument("model", help="model file (.npz)")
    predict.add_argument("input", help="samples (.npy, no pickles)")
    predict.add_argument("--out", metavar="PATH",
                         help="save the predicted labels (int64) or probabilities here (.npy)")
    predict.add_argument("--proba", action="store_true",
                         help="output class probabilities (float32) instead of labels")
    predict.add_argument("--scale", type=_positive_float,
                         help="divide the input by this (default: as in training for "
                              "integer input, 1 for float input)")
    predict.add_argument("--batch-size", type=positive_int, default=1000,
                         help="default 1000")

    compile_ = sub.add_parser(
        "compile", help="compile every Numba kernel build ahead of time",
        description="Compile tinynet's Numba kernels and store them in Numba's disk cache, "
                    "so that later train, evaluate and predict runs (of an MLP or a CNN, "
                    "small batches or large) compile nothing. Every kernel is built for "
                    "each dtype, for both GEMM engines and for the column layouts of "
                    "convolutions, and both the serial and the threaded build of each "
                    "parallel kernel (large batches at more than one thread run the "
                    "threaded one), whatever the thread count it runs with "
                    "(NUMBA_NUM_THREADS=1 included): later runs at any thread count find "
                    "them all. With a cold cache this takes about a minute per dtype on 2 "
                    "cores; with a warm one, about a second.")
    compile_.add_argument("--dtypes", nargs="+", choices=("float32", "float64"),
                          default=["float32", "float64"],
                          help="floating-point types to compile for (default both)")

    sub.add_parser("info", help="versions, compute backend, threading layer, data found",
                   description="Print tinynet's, Python's, NumPy's and Numba's versions, the "
                               "kernel backend, Numba's threading layer and where the "
                               "datasets are found. Nothing is compiled or downloaded.")
    for command in sub.choices.values():  # its usage errors show its usage, not tinynet's
        command.set_defaults(command_parser=command)
    return parser


# ------------------------------------------------------------------ commands
def _cmd_demo(args, parser) -> int:
    from .demo import PARTS, PartUnavailable, format_table, load_part

    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        from .checks import did_you_mean
        parser.error(f"unknown demo part {unknown[0]!r}{did_you_mean(unknown[0], PARTS)} "
                     f"(parts: {', '.join(PARTS)})")
    parts = list(dict.fromkeys(args.parts)) or list(PARTS)
    status = 0
    for name in parts:
        try:
            run = load_part(name)
        except PartUnavailable as exc:
            print(f"[{name}] skipped: {exc}", file=sys.stderr)
            status = 1 if args.parts else status  # asked for by name: that is a failure
            continue
        if not args.quiet:
            print(f"\n--- demo part: {name} ---")
        start = time.perf_counter()
        result = run(seed=args.seed, verbose=0 if args.quiet else 1)
        print()
        print(format_table(result))
        if not args.quiet:
            print(f"  ({name}: {time.perf_counter() - start:.1f} s)")
    return status


def _load_data(name, args, parser, limit=None):
    """The dataset ``name`` for ``train`` or ``evaluate``; ``--data-dir`` with
    the embedded digits, which read no file, is a usage error rather than
    quietly ignored."""
    from .recipes import dataset_key, load_for_training
    if args.data_dir is not None and dataset_key(name) == "digits":
        parser.error(f"--data-dir is where the IDX datasets' files are looked for; "
                     f"{name!r} is embedded in tinynet and reads no files: drop "
                     f"--data-dir {args.data_dir}")
    return load_for_training(name, data_dir=args.data_dir,
                             download=False if args.no_download else None, limit=limit)


def _accuracy(model, x, y, batch_size) -> float:
    return float((model.predict_classes(x, batch_size=batch_size) == y).mean())


def _cmd_train(args, parser) -> int:
    from .callbacks import LearningRateScheduler
    from .data import train_val_split
    from .demo import format_table
    from .optim import get as get_optimizer
    from .recipes import build_mlp, cosine_schedule

    _check_out(args.out, "model.npz")
    data = _load_data(args.dataset, args, parser, limit=args.limit)
    _check_out_is_no_input(args.out, [("dataset file", path) for path in data.sources],
                           "model.npz")
    (x_train, y_train), (x_test, y_test) = data.train, data.test
    scale = float(data.preprocessing["scale"])
    # before training, not in the test report after it (evaluate would refuse them)
    _check_dataset_range(data, args.dataset, "test", x_test, scale,
                         f"its training images' pixels are divided by {scale:g} (their "
                         f"bit depth's maximum) to [0, 1], the range the model will be "
                         f"trained on: give test images of the training images' depth")
    validation = None
    if args.val_fraction:
        # stratified unless it cannot be: a class of a single sample (--limit 5 of
        # the digits), or a part smaller than the number of classes (--limit 50 of
        # the digits: 5 validation samples of 10 classes); then at random, saying so
        problem = _stratify_problem(y_train, args, parser)
        stratify = problem is None
        if not stratify:
            print(f"tinynet train: note: a stratified split {problem}; the validation "
                  f"split is drawn at random, not stratified", file=sys.stderr)
        (x_train, y_train), validation = train_val_split(
            x_train, y_train, args.val_fraction, stratify=stratify, seed=args.seed)
    n_classes = max(len(data.classes), int(y_train.max()) + 1)
    model = build_mlp(data.n_features, args.hidden, n_classes, activation=args.activation,
                      dropout=args.dropout, batch_norm=args.batch_norm, seed=args.seed)
    # None leaves the optimizer's own default (AdamW's 0.01); 0 is passed, not dropped
    optimizer = get_optimizer(args.optimizer, lr=args.lr,
                              **({"weight_decay": args.weight_decay}
                                 if args.weight_decay is not None else {}))
    model.compile(optimizer=optimizer, loss="cross_entropy", metrics=["accuracy"])
    if args.verbose:
        model.summary()
        print(f"{args.dataset}: {len(y_train)} training, "
              f"{len(validation[1]) if validation else 0} validation, {len(y_test)} test "
              f"samples of {data.n_features} features")
    callbacks = []
    if args.schedule == "cosine":
        callbacks.append(LearningRateScheduler(cosine_schedule(args.lr, args.epochs)))
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
              validation_data=validation, callbacks=callbacks, seed=args.seed,
              verbose=args.verbose)
    seconds = time.perf_counter() - start
    rows = []
    if validation is not None:
        rows.append(["validation", len(validation[1]),
                     _accuracy(model, *validation, batch_size=1000)])
    rows.append(["test", len(y_test), _accuracy(model, x_test, y_test, batch_size=1000)])
    metadata = {"tinynet_cli": {"preprocessing": data.preprocessing,
                                "classes": list(data.classes)}}
    model.save(args.out, metadata=metadata)
    widths = "-".join(str(w) for w in (data.n_features, *args.hidden, n_classes))
    print()
    print(format_table({
        "title": f"tinynet train {args.dataset}: MLP {widths}",
        "columns": ["split", "samples", "accuracy"],
        "rows": rows,
        "notes": [f"training time {seconds:.1f} s for {args.epochs} epochs "
                  f"({len(y_train) * args.epochs / seconds:,.0f} samples/s)",
                  f"saved to {args.out} (with its pixel scaling)",
                  f"next: tinynet evaluate {args.out} {args.dataset}"],
    }))
    return 0


def _stratify_problem(y, args, parser):
    """:func:`tinynet.data.stratify_problem` of ``--val-fraction`` for the
    labels ``y``; a fraction that leaves a part empty is a usage error naming
    the option, not train_val_split's ``val_size`` (which refuses it), and
    the fractions of 4 decimals that fit, found by asking the library's own
    count of validation samples (``ceil(fraction * n)`` must be 1 to
    ``n - 1``: at most 0.95 of 20 samples), not by a copy of its rule."""
    from .data import stratify_problem
    from .data.preprocessing import _val_count
    try:
        return stratify_problem(y, args.val_fraction)
    except ValueError:
        n = len(y)
        given = f"--val-fraction {args.val_fraction:g}"
        limit = f" (--limit {args.limit})" if args.limit else ""
        fit = [k for k in range(1, 10**4) if 0 < _val_count(n, k / 10**4) < n]
        if not fit:
            parser.error(f"{given} expected at least 2 training samples (one for each part), "
                         f"received {n}{limit}: give --val-fraction 0 for no validation")
        n_val = _val_count(n, args.val_fraction)
        fitting = f"{fit[0] / 10**4:g} to " if fit[0] > 1 else "at most "
        parser.error(f"{given} of {n} training samples{limit} holds out {n_val} of them for "
                     f"validation, leaving {n - n_val} to train on: expected {fitting}"
                     f"{fit[-1] / 10**4:g} here, or 0 for no validation")


def _check_out(path, example: str) -> None:
    """Fail before any work when ``--out`` cannot be written
    (:func:`tinynet.atomic.check_target`: a directory, a missing or read-only
    directory, a write-protected file)."""
    from .atomic import check_target
    try:  # before training or predicting, not after
        check_target(path, "--out")
    except IsADirectoryError:
        raise CommandError(f"--out {path!r} is a directory; give a file path such as "
                           f"{example}") from None
    except OSError as exc:
        raise CommandError(str(exc)) from None


def _check_out_is_no_input(path, inputs, example: str) -> None:
    """Refuse an ``--out`` that is one of the command's own input files
    (``inputs``: ``(what, path)`` pairs), by :func:`os.path.samefile` where
    both exist (a link or another spelling of the path is the same file):
    writing there would replace what was read, as ``predict m.npz x.npy
    --out m.npz`` replaced the model with its labels."""
    if not os.path.exists(path):
        return
    for what, source in inputs:
        if os.path.exists(source) and os.path.samefile(path, source):
            raise CommandError(f"--out {path!r} is the {what} {str(source)!r}; writing the "
                               f"output there would replace it: give another path such as "
                               f"{example}")


def _model_metadata(model, path) -> tuple:
    """``(scale, classes)`` that ``tinynet train`` recorded in the model file
    (None for what it holds not), checked: a pixel scale that is a positive
    number, class names that are a list of strings."""
    import math
    metadata = getattr(model, "metadata", None) or {}
    cli = metadata.get("tinynet_cli", {}) if isinstance(metadata, dict) else {}
    bad = f"{path!r} holds metadata 'tinynet_cli' that 'tinynet train' does not write"
    if not isinstance(cli, dict):
        raise CommandError(f"{bad}: expected an object, received {type(cli).__name__}")
    scale = preprocessing = cli.get("preprocessing")
    if preprocessing is not None:
        scale = preprocessing.get("scale") if isinstance(preprocessing, dict) else None
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
                or not 0 < scale < math.inf:
            raise CommandError(f"{bad}: expected preprocessing as {{\"scale\": a positive "
                               f"number, ...}}, received {preprocessing!r}"[:300])
        scale = float(scale)
    classes = cli.get("classes")
    if classes is not None and not (isinstance(classes, list)
                                    and all(isinstance(c, str) for c in classes)):
        raise CommandError(f"{bad}: expected classes as a list of names, received "
                           f"{classes!r}"[:300])
    return scale, classes


#: What evaluate and predict take, for their refusals.
_CLASSIFIER = ("evaluate and predict expect a single-output classifier (a tinynet.Sequential "
               "compiled with cross_entropy or binary_cross_entropy, or ending in a softmax "
               "or sigmoid, or an uncompiled one giving logits)")


def _is_classification_loss(loss) -> bool:
    """A cross-entropy (or its twin on probabilities: tinynet.output_losses),
    the losses whose targets are labels."""
    from .losses import CLASSIFICATION_LOSSES
    return isinstance(loss, CLASSIFICATION_LOSSES)


def _load_model(path):
    """The single-output classifier in ``path``, or a CommandError saying what
    the file holds instead: a multi-task model, a meta-learner (its model
    adapts to each task, whose labels are its own; :mod:`tinynet.meta.saving`
    marks its file), a model compiled with a loss that does not take labels
    (a regressor, unless it ends in a softmax or sigmoid), or one whose samples
    give more than a vector of outputs. An uncompiled model without a softmax
    or sigmoid is taken as giving logits: nothing in the file says otherwise."""
    from . import io as model_io
    from .meta.saving import KEY as META_KEY
    from .output_losses import output_activation
    if not os.path.exists(path):
        raise CommandError(f"model file {path!r} does not exist")
    model = model_io.load(path)
    if not hasattr(model, "predict_classes"):  # a tinynet.mtl model: one output per task
        raise CommandError(f"{path!r} holds a {type(model).__name__} (a multi-task model); "
                           f"{_CLASSIFIER}: use tinynet.load({path!r}).predict(x) in Python")
    meta = (getattr(model, "metadata", None) or {}).get(META_KEY)
    if meta is not None:
        learner = meta.get("class") if isinstance(meta, dict) else None
        raise CommandError(f"{path!r} holds a meta-learner ({learner or 'unknown class'}), "
                           f"whose model adapts to each task; {_CLASSIFIER}: use "
                           f"tinynet.meta.load({path!r}) in Python")
    loss = getattr(model, "loss", None)
    if loss is not None and not _is_classification_loss(loss) \
            and output_activation(model, at_inference=True) is None:
        raise CommandError(f"{path!r} holds a model compiled with the loss "
                           f"{type(loss).__name__}, not a classifier; {_CLASSIFIER}")
    outputs = tuple(getattr(model, "output_shape", None) or ())
    if len(outputs) > 1:
        raise CommandError(f"{path!r} holds a model whose output per sample has shape "
                           f"{outputs}; {_CLASSIFIER}, with one vector of class scores per "
                           f"sample")
    return model


def _input_width(model) -> int:
    import numpy as np
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise CommandError("the model is not built: it has no input shape")
    return int(np.prod(shape))


def _cmd_evaluate(args, parser) -> int:
    from .demo import format_table

    model = _load_model(args.model)
    data = _load_data(args.dataset, args, parser)
    x, y = data.test if args.split == "test" else data.train
    # the width first, as predict checks the shape before the range: fashion-mnist's
    # 784 pixels in [0, 255] given to a digits model are another dataset, whatever range
    width = _input_width(model)
    if x.shape[1] != width:
        raise CommandError(f"the model expects {width} input values per sample, dataset "
                           f"{args.dataset!r} has {x.shape[1]}: was it trained on another "
                           f"dataset?")
    saved_scale, _ = _model_metadata(model, args.model)
    scale = float(data.preprocessing["scale"])  # of this dataset's training images
    if saved_scale is not None and saved_scale != scale:
        x = x * (scale / saved_scale)
        scale = saved_scale
    # as predict refuses them: pixels beyond the trained range (say 12-bit test images
    # scored by a model of 8-bit ones, up to 16 after scaling) are inputs it never saw
    _check_dataset_range(data, args.dataset, args.split, x, scale,
                         f"{_trained_on(scale)}: score it on images of that range")
    x = x.reshape((len(x), *model.input_shape))  # an image model: (n, 8, 8), say, as predict
    predicted = model.predict_classes(x, batch_size=args.batch_size)
    rows = [["all", len(y), float((predicted == y).mean())]]
    for label, name in enumerate(data.classes):
        mask = y == label
        if mask.any():
            rows.append([name if name == str(label) else f"{label} {name}", int(mask.sum()),
                         float((predicted[mask] == label).mean())])
    notes = []  # the loss of a softmax model compiled with mse, say, takes no labels
    if _is_classification_loss(getattr(model, "loss", None)):
        logs = model.evaluate(x, y, batch_size=args.batch_size)
        notes.append(f"loss {logs['loss']:.4f}")
    print(format_table({"title": f"{args.model} on {args.dataset} ({args.split}, "
                                 f"{len(y)} samples)",
                        "columns": ["class", "samples", "accuracy"], "rows": rows,
                        "notes": notes}))
    return 0


def _read_samples(path):
    import numpy as np
    from .io import npy_layout
    if not os.path.exists(path):
        raise CommandError(f"input file {path!r} does not exist")
    try:
        with open(path, "rb") as f:
            start = f.read(6)
            if start.startswith(b"PK\x03\x04"):  # not parsed: its index could be huge
                raise CommandError(f"{path!r} is an .npz archive; expected one array in a "
                                   f".npy file (np.save)")
            if start != np.lib.format.MAGIC_PREFIX:
                raise CommandError(f"{path!r} is not a .npy file (it does not begin with "
                                   f"NumPy's magic string); expected one array saved with "
                                   f"np.save")
            f.seek(0)
            npy_layout(f, os.fstat(f.fileno()).st_size, repr(path))
            f.seek(0)
            array = np.load(f, allow_pickle=False)
    except ValueError as exc:
        raise CommandError(f"{path!r} is not a numeric .npy array of the length its header "
                           f"declares: {exc}") from None
    except (OSError, EOFError) as exc:
        raise CommandError(f"{path!r} is not a readable .npy file: {exc}") from None
    if array.dtype.kind not in "uif":
        raise CommandError(f"{path!r} holds an array of dtype {array.dtype}; expected "
                           f"integer pixels or floating-point features")
    return array


def _as_batch(array, model, path):
    """Reshape ``array`` to (n, *input_shape) or explain which shapes would do."""
    import numpy as np
    shape = tuple(model.input_shape)
    width = int(np.prod(shape))
    if array.size == 0:
        raise CommandError(f"{path!r} holds no samples (an array of shape {array.shape}); "
                           f"expected at least one sample of shape {shape}")
    if array.ndim >= 1 and array.shape[1:] == shape:
        return array
    if array.ndim >= 2 and int(np.prod(array.shape[1:])) == width:
        return array.reshape((len(array), *shape))  # e.g. (n, 28, 28) images for 784 inputs
    if array.size == width:
        return array.reshape((1, *shape))  # one sample without its batch axis
    raise CommandError(f"{path!r} holds an array of shape {array.shape}; the model expects "
                       f"samples of shape {shape}: give (n, {', '.join(map(str, shape))}) "
                       f"or any (n, ...) with {width} values per sample")


def _check_pixel_range(low, high, scale: float, what: str, why: str) -> None:
    """The one rule of every input a model gets here (predict's file, the
    dataset evaluate scores, the test images train reports on): a model is
    trained on pixels divided by their scale to [0, 1], so input whose values
    span [``low``, ``high``] and are divided by ``scale`` must stay in [0, 1];
    anything else is refused, rather than scored or predicted from values the
    model never saw. ``what`` names the input and its verb ("'x.npy' holds"),
    ``why`` says what the model was trained on and what to do."""
    if low >= 0 and high <= scale:
        return
    raise CommandError(f"{what} values in [{low:g}, {high:g}], outside [0, {scale:g}]; {why}")


def _trained_on(scale: float) -> str:
    return f"the model was trained on pixels in [0, {scale:g}] divided by {scale:g} (to [0, 1])"


def _check_dataset_range(data, name: str, split: str, x, scale: float, why: str) -> None:
    """:func:`_check_pixel_range` of the ``split`` ("train" or "test") images
    of dataset ``name`` (``data``: :class:`tinynet.recipes.Prepared`), whose
    features ``x`` are its pixels divided by ``scale``: the pixels' range is
    ``x``'s times ``scale`` (exact where a pixel is the scale: ``p / p`` is 1)."""
    files = data.sources[0 if split == "train" else 2:][:1]  # none for the digits
    where = f" ({files[0]})" if files else ""
    what = f"dataset {name!r}: its {'training' if split == 'train' else 'test'} images{where} hold"
    low, high = (float(x.min()) * scale, float(x.max()) * scale) if x.size else (0.0, 0.0)
    _check_pixel_range(low, high, scale, what, why)


def _cmd_predict(args, parser) -> int:
    import numpy as np

    from .checks import check_finite
    from .recipes import apply_preprocessing

    if args.out:
        _check_out(args.out, "labels.npy")
        _check_out_is_no_input(args.out, [("model file", args.model),
                                          ("input file", args.input)], "labels.npy")
    model = _load_model(args.model)
    saved_scale, classes = _model_metadata(model, args.model)
    array = _read_samples(args.input)
    try:  # before the range check, which read a NaN as values "in [nan, nan]", and
        # before _as_batch, so that the shape named is the file's, not the reshaped one
        check_finite(array, "predict", f"values in {args.input!r}")
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    batch = _as_batch(array, model, args.input)
    # models saved without metadata: the per-dataset rule of 'train'
    trained_scale = saved_scale if saved_scale is not None else (
        16.0 if _input_width(model) == 64 else 255.0)
    raw_pixels = np.issubdtype(batch.dtype, np.integer)
    if args.scale is not None:
        scale = args.scale
    else:
        scale = trained_scale if raw_pixels else 1.0
    if raw_pixels or saved_scale is not None:
        advice = (f"scale the input to [0, 1], or give --scale {trained_scale:g} if it holds "
                  f"raw pixels" if scale == 1.0 else  # float input used as it is
                  "rescale the input, or give --scale to divide it by another number")
        _check_pixel_range(batch.min(), batch.max(), scale, f"{args.input!r} holds",
                           f"{_trained_on(trained_scale)}: {advice}")
    x = apply_preprocessing(batch, {"scale": scale}).reshape(batch.shape)
    labels = model.predict_classes(x, batch_size=args.batch_size)  # its rule, binary too
    output = (model.predict_proba(x, batch_size=args.batch_size).astype(np.float32)
              if args.proba else labels)
    shown = ", ".join(f"{label}" + (f" ({classes[label]})" if classes and
                                   0 <= label < len(classes) else "")
                      for label in labels[:10])
    print(f"{len(labels)} predictions (input scaled by 1/{scale:g}): {shown}"
          + (" ..." if len(labels) > 10 else ""))
    if args.out:
        from .io import atomic_write
        atomic_write(args.out, lambda f: np.save(f, output))
        print(f"saved {'probabilities' if args.proba else 'labels'} of shape "
              f"{output.shape} to {args.out}")
    return 0


def _cmd_compile(args, parser) -> int:
    from . import kernels
    warm_up = getattr(kernels, "warm_up", None)
    if warm_up is None:
        raise CommandError("this build of tinynet has no kernels.warm_up(); nothing to "
                           "compile (kernels compile on first use instead)")
    warm_up(dtypes=tuple(args.dtypes))  # prints each kernel's time and the total, once
    return 0


def _cmd_info(args, parser) -> int:
    import platform

    import numpy as np

    from . import __version__
    from .data import IDX_DATASETS, locate_idx_dataset

    lines = [("tinynet", __version__), ("python", platform.python_version()),
             ("numpy", np.__version__)]
    try:
        import numba
        lines.append(("numba", numba.__version__))
    except ImportError:
        lines.append(("numba", "not installed (NumPy references only)"))
    try:
        from . import kernels
        for label, attr in (("backend", "get_backend"), ("threads", "num_threads"),
                            ("threading layer", "threading_layer")):
            fn = getattr(kernels, attr, None)
            if callable(fn):
                lines.append((label, str(fn())))
        from .kernels import blas
        lines.append(("gemm", _gemm_line(blas)))
    except ImportError as exc:
        lines.append(("kernels", f"unavailable ({exc})"))
    lines.append(("TINYNET_BACKEND", os.environ.get("TINYNET_BACKEND", "(unset)")))
    lines.append(("TINYNET_GEMM", os.environ.get("TINYNET_GEMM", "(unset)")))
    lines.append(("digits", "embedded (1,797 images)"))
    absent = ("not found (TINYNET_OFFLINE is set: no download)"
              if flag_from_env("TINYNET_OFFLINE", False) else "not found (downloaded on first use)")
    for name in IDX_DATASETS:
        where = locate_idx_dataset(name)
        lines.append((name, str(where) if where else absent))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label.ljust(width)}  {value}")
    return 0


#: Each command gets the parsed arguments and its own parser, whose ``error``
#: reports a usage error found after parsing (``tinynet demo: error: ...``, exit 2).
_COMMANDS = {"demo": _cmd_demo, "train": _cmd_train, "evaluate": _cmd_evaluate,
             "predict": _cmd_predict, "compile": _cmd_compile, "info": _cmd_info}


def main(argv=None) -> int:
    """Run the ``tinynet`` command with ``argv`` (default ``sys.argv[1:]``).

    Returns the exit status instead of exiting, so it can run in-process.
    Standard output is a :class:`~tinynet._stdout.ReaderAware` stream
    meanwhile: a reader that goes away (``| head``) ends the command quietly
    with status 141, or, for a command whose product is a file, leaves it
    running without its output.
    """
    real_stdout = sys.stdout
    sys.stdout = stdout = ReaderAware(real_stdout)
    try:
        status = _run(argv, stdout)
        stdout.flush()  # a reader gone by now is found here, not in the exit's flush
        return status
    except ReaderLeft:
        return READER_LEFT_STATUS
    finally:
        sys.stdout = real_stdout


def run(argv=None):
    """:func:`main` as a process (the ``tinynet`` command, ``python -m
    tinynet``): exit with its status, ended by SIGPIPE when the reader went
    away (:func:`tinynet._stdout.exit_with`), as a Unix tool; :func:`main`
    returns 141 then, to a caller in the same process."""
    exit_with(main(argv))


def _makes_a_file(args) -> bool:
    """Whether the command's product is a file (its output only reports on
    the way there), so that it carries on when the output's reader goes away."""
    return args.command == "train" or (args.command == "predict" and bool(args.out))


def _run(argv, stdout) -> int:
    """:func:`main` with standard output ``stdout`` (a ReaderAware stream)."""
    args = None
    debug = False
    try:
        debug = flag_from_env("TINYNET_DEBUG", False)
        # in here: the parser imports the kernels, which read TINYNET_BACKEND, _GEMM,
        # _ADAPTIVE_THREADS and _SHORT_SPIN as they load; a bad value is one line
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        stdout.carry_on = _makes_a_file(args)
        return _COMMANDS[args.command](args, args.command_parser)
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    except ReaderLeft:
        raise
    except KeyboardInterrupt:
        print("tinynet: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line instead of a traceback
        if debug or not isinstance(
                exc, (CommandError, ValueError, TypeError, OSError, LookupError, MemoryError)):
            raise
        who = " ".join(filter(None, ("tinynet", getattr(args, "command", None))))
        what = "out of memory: " if isinstance(exc, MemoryError) else ""
        print(f"{who}: error: {what}{exc}", file=sys.stderr)
        return 1


def _gemm_line(blas) -> str:
    """The GEMM engine, and for "auto" what it measured on this machine."""
    engine = blas.get_gemm()
    if engine != "auto":
        return engine
    choice = "blas" if blas.use_blas() else "numba"
    return f"auto: {choice} measured faster here (TINYNET_GEMM=numba|blas to choose)"


if __name__ == "__main__":  # last: every function above is defined by then
    run()
