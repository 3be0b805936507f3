"""Multi-task learning: MMoE vs shared-bottom, and multi-task models on Multi-Fashion.

MMoE vs shared-bottom across task correlations; on Multi-Fashion, single-task
vs hard sharing (every weighting) vs MMoE, soft sharing, cross-stitch.

Part ``synthetic`` (Ma et al., KDD 2018): two regression tasks whose
correlation p is controlled (tinynet.mtl.data.synthetic_mmoe). A shared-bottom
model and an MMoE of about the same size are trained on each p for several
seeds; the table gives the test MSE (mean of the two tasks) and the final
training loss. The paper's finding: shared-bottom degrades as p falls, MMoE
much less.

Part ``fashion``: Multi-Fashion (two Fashion-MNIST items on a 36x36 canvas,
resized to 28x28; tasks ``left`` and ``right``). Two single-task MLPs are the
baseline; hard sharing of the same MLP is trained with every weighting
method; MMoE, soft sharing and cross-stitch networks of comparable hidden
widths follow; PyTorch trains the hard-shared MLP with equal weights as the
peer. Reported: test accuracy per task, Δm% against the single-task models,
parameters, training time (wall and process CPU), mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks import report
from benchmarks.threads import limit_blas_threads

WEIGHTINGS = ["equal", "uncertainty", "dwa", "gradnorm", "pcgrad", "mgda", "mgda_ub"]
MLP_ARCHITECTURES = ["hard", "mmoe", "soft", "cross-stitch"]  # the default without a CNN
CONV_ARCHITECTURES = ["hard", "task-norm"]  # those a CNN trunk runs
ARCHITECTURES = MLP_ARCHITECTURES + ["task-norm"]
CONV_TRUNKS = ["conv", "conv-features"]
DEFAULT_HEAD_UNITS = 64  # conv-features: half the parameters of the single-task CNN pair
DEFAULT_FILTERS, DEFAULT_UNITS = (32, 64), 128  # the CNN of tinynet.recipes.cnn_layers

DEFAULT_LR, DEFAULT_BATCH = 1e-3, 128  # Multi-Fashion's Adam rate and batch
DEFAULT_MOMENTUM = 0.9  # --optimizer sgd's, as the CNN literature's SGD
DEFAULT_EPOCHS = 10  # Multi-Fashion's epochs of a full (not --quick) run
DEFAULT_HIDDEN = (256, 128)  # the MLP of the Multi-Fashion table
DEFAULT_N_TRAIN = 20000  # Multi-Fashion training pairs of a full (not --quick) run


def _pm(values, digits=4):
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


# ---------------------------------------------------------------- synthetic
def synthetic(args) -> dict:
    from tinynet.layers import Dense
    from tinynet.mtl import HardSharing, MMoENet
    from tinynet.mtl import experiments as ex
    from tinynet.mtl.data import synthetic_mmoe

    def towers(seed):
        return {t: [Dense(8, activation="relu", seed=seed + 2 * i),
                    Dense(1, seed=seed + 2 * i + 1)] for i, t in enumerate(("y1", "y2"))}

    builds = {
        "shared-bottom": lambda s: HardSharing(
            (100,), trunk=[Dense(args.syn_hidden, activation="relu", seed=s)],
            heads=towers(s + 10)),
        "MMoE": lambda s: MMoENet((100,), n_experts=args.syn_experts,
                                  expert_units=args.syn_expert_units, towers=towers(s + 10),
                                  seed=s),
    }
    out = {"settings": {"n_train": args.syn_train, "n_test": args.syn_test,
                        "epochs": args.syn_epochs, "batch_size": 128, "lr": args.syn_lr,
                        "seeds": args.syn_seeds, "correlations": args.correlations,
                        "hidden": args.syn_hidden, "experts": args.syn_experts,
                        "expert_units": args.syn_expert_units},
           "runs": {}}
    for p in args.correlations:
        entry = {"label_correlation": [], **{name: [] for name in builds}}
        for seed in range(args.syn_seeds):
            x, y = synthetic_mmoe(args.syn_train + args.syn_test, p, seed=seed)
            n = args.syn_train
            train = (x[:n], {k: v[:n] for k, v in y.items()})
            test = (x[n:], {k: v[n:] for k, v in y.items()})
            entry["label_correlation"].append(float(np.corrcoef(y["y1"], y["y2"])[0, 1]))
            for name, build in builds.items():
                r = ex.run(build(seed), train, test, loss="mse", epochs=args.syn_epochs,
                           batch_size=128, lr=args.syn_lr, seed=seed)
                entry[name].append({"test_mse": r["test"]["loss"] / 2,
                                    "train_loss": r["history"]["loss"][-1] / 2,
                                    "params": r["params"], "cpu_seconds": r["cpu_seconds"]})
                print(f"  synthetic p={p:+.2f} seed {seed} {name:<13} test MSE "
                      f"{r['test']['loss'] / 2:.4f}", flush=True)
        out["runs"][str(p)] = entry
    return out


def synthetic_markdown(res) -> str:
    s = res["settings"]
    rows = []
    names = ["shared-bottom", "MMoE"]
    first = next(iter(res["runs"].values()))
    base = {n: np.array([r["test_mse"] for r in first[n]]) for n in names}
    for p, e in res["runs"].items():
        mse = {n: np.array([r["test_mse"] for r in e[n]]) for n in names}
        # Paired by seed (same x, u, alpha, beta at every p): the geometric mean of
        # MSE(p) / MSE(first p) measures degradation without the seeds' spread.
        paired = {n: float(np.exp(np.mean(np.log(mse[n] / base[n])))) for n in names}
        rows.append([f"{float(p):+.2f}", f"{np.mean(e['label_correlation']):.3f}",
                     _pm(mse["shared-bottom"]), _pm(mse["MMoE"]),
                     f"{paired['shared-bottom']:.2f}", f"{paired['MMoE']:.2f}",
                     f"{float(np.exp(np.mean(np.log(mse['shared-bottom'] / mse['MMoE'])))):.2f}"])
    params = {n: first[n][0]["params"] for n in names}
    p0 = float(next(iter(res["runs"])))
    return "\n".join([
        "## Synthetic tasks with controlled correlation (MMoE, Ma et al. 2018)", "",
        f"{s['n_train']} training / {s['n_test']} test samples, d = 100, {s['epochs']} "
        f"epochs of Adam (lr {s['lr']}, batch 128), {s['seeds']} seed(s) (seed s draws "
        f"u1, u2, alpha, beta and x, shared by every p); MSE per task (mean of the two "
        f"tasks), mean ± std over seeds. Shared-bottom (trunk {s['hidden']}): "
        f"{params['shared-bottom']:,} parameters; MMoE ({s['experts']} experts x "
        f"{s['expert_units']}): {params['MMoE']:,}. Ratios are geometric means over seeds "
        f"of per-seed ratios (each seed's data is the same at every p): 'vs p={p0:+.1f}' "
        f"is a model's test MSE relative to its own at p={p0:+.1f} (degradation as the "
        f"tasks diverge).", "",
        report.markdown_table(["p", "label corr.", "shared-bottom test MSE", "MMoE test MSE",
                               f"shared-bottom vs p={p0:+.1f}", f"MMoE vs p={p0:+.1f}",
                               "shared / MMoE"], rows)])


# ------------------------------------------------------------------ fashion
def fashion(args) -> dict:
    from tinynet.losses import CrossEntropy
    from tinynet.mtl import experiments as ex
    from tinynet.mtl.data import load_multi_fashion

    tasks = {"left": 10, "right": 10}
    conv = args.trunk in CONV_TRUNKS
    hidden = "conv" if conv else args.hidden        # the single-task models'
    shared = args.trunk if conv else args.hidden    # hard sharing's trunk and heads
    head = (args.head_units,) if args.trunk == "conv-features" else ()
    size = dict(conv=dict(filters=tuple(args.filters), units=args.units,
                          batch_norm=args.batch_norm)) if conv else {}
    # one instance serves every task and model: a loss keeps no state between batches
    loss = CrossEntropy(label_smoothing=args.label_smoothing)
    fit = dict(loss=loss, metrics=["accuracy"], epochs=args.epochs,
               batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule,
               weight_decay=args.weight_decay, optimizer=args.optimizer,
               momentum=args.momentum,  # (None but with --optimizer sgd: main)
               mixup=args.mixup)
    models = {"single-task": None}  # the baseline of every Δm, so it always runs
    archs = args.architectures or (["hard"] if conv else MLP_ARCHITECTURES)
    for w in (args.weightings if "hard" in archs else []):
        models[f"hard sharing|{w}"] = (
            lambda s: ex.hard_sharing(784, shared, tasks, s, head=head, dropout=args.dropout,
                                      **size), w)
    if "task-norm" in archs:  # main() made sure of --trunk conv --batch-norm
        models["task-norm|equal"] = (lambda s: ex.task_norm_sharing(784, tasks, s, **size),
                                     "equal")
    _mtl_torch = None
    # MMoE, soft sharing, cross-stitch and the torch twin are MLPs: main() refused the
    # first three with --trunk conv
    if "mmoe" in archs:
        models["MMoE|equal"] = (lambda s: ex.mmoe(784, args.experts, args.expert_units,
                                                  [args.tower], tasks, s), "equal")
    if "soft" in archs:
        models["soft sharing|equal"] = (lambda s: ex.soft_sharing(784, hidden, tasks,
                                                                  args.soft_penalty, s), "equal")
    if "cross-stitch" in archs:
        models["cross-stitch|equal"] = (lambda s: ex.cross_stitch(784, hidden, tasks, s),
                                        "equal")
    twin = not conv and "hard" in archs and "equal" in args.weightings
    no_twin = ("skipped: the torch twin has no mixup" if args.mixup else
               "skipped: torch is not installed")
    if twin and not args.mixup:
        try:
            import torch  # noqa: F401
            from benchmarks import _mtl_torch
        except ImportError:
            pass
    runs = {name: [] for name in models}
    if twin:
        runs["torch hard sharing|equal"] = []
    for seed in range(args.seeds):
        train, test = load_multi_fashion(args.n_train, args.n_test, seed=seed,
                                         validation=args.validation)
        for name, spec in models.items():
            if spec is None:
                parts = [ex.run(ex.single_task(784, hidden, t, n, seed, dropout=args.dropout,
                                               **size),
                                train, test, seed=seed, **fit) for t, n in tasks.items()]
                r = {"test": {k: v for p in parts for k, v in p["test"].items()},
                     "params": sum(p["params"] for p in parts),
                     "seconds": sum(p["seconds"] for p in parts),
                     "cpu_seconds": sum(p["cpu_seconds"] for p in parts)}
            else:
                build, weighting = spec
                r = ex.run(build(seed), train, test, weighting=weighting, seed=seed, **fit)
                r.pop("history")
            runs[name].append(r)
            print(f"  fashion seed {seed} {name:<26} left {r['test']['left/accuracy']:.4f} "
                  f"right {r['test']['right/accuracy']:.4f} ({r['cpu_seconds']:.1f} s CPU)",
                  flush=True)
        if _mtl_torch is not None:
            r = _mtl_torch.hard_sharing(train, test, hidden, tasks, args.epochs, args.batch_size,
                                        args.lr, seed, dropout=args.dropout,
                                        lr_schedule=args.lr_schedule,
                                        weight_decay=args.weight_decay,
                                        optimizer=args.optimizer, momentum=args.momentum,
                                        label_smoothing=args.label_smoothing)
            r.pop("weights")  # for tests of the twin; the report keeps its scores
            runs["torch hard sharing|equal"].append(r)
            print(f"  fashion seed {seed} torch hard sharing         left "
                  f"{r['test']['left/accuracy']:.4f} right {r['test']['right/accuracy']:.4f}",
                  flush=True)
    if twin and not runs["torch hard sharing|equal"]:
        runs["torch hard sharing|equal"] = no_twin
    return {"settings": {"n_train": args.n_train, "n_test": args.n_test, "hidden": hidden,
                         "trunk": args.trunk, "head_units": args.head_units,
                         "filters": args.filters, "units": args.units,
                         "batch_norm": args.batch_norm,
                         "validation": args.validation, "dropout": args.dropout,
                         "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                         "lr_schedule": args.lr_schedule, "weight_decay": args.weight_decay,
                         "optimizer": args.optimizer, "momentum": args.momentum,
                         "label_smoothing": args.label_smoothing, "mixup": args.mixup,
                         "seeds": args.seeds, "experts": args.experts,
                         "expert_units": args.expert_units, "tower": args.tower,
                         "soft_penalty": args.soft_penalty}, "runs": runs}


def _mlp_models(runs, s) -> str:
    """What each MLP model of the table is, for the models the run trained."""
    ran = {name.partition("|")[0] for name in runs}
    parts = ["single-task: one MLP per task"]
    if ran & {"hard sharing", "torch hard sharing"}:
        parts.append("hard sharing: one MLP, one Dense head per task")
    coupled = [m for m in ("soft sharing", "cross-stitch") if m in ran]
    if coupled:
        parts.append(f"{' / '.join(coupled)}: one MLP per task, coupled")
    if "MMoE" in ran:
        parts.append(f"MMoE: {s['experts']} experts x {s['expert_units']} units, tower "
                     f"[{s['tower']}]")
    return "; ".join(parts)


def _conv_models(runs, s) -> str:
    """What the CNN models of the table are: the whole CNN shared, or its
    convolutional blocks only."""
    filters, units = s.get("filters") or DEFAULT_FILTERS, s.get("units") or DEFAULT_UNITS
    bn = ", BatchNorm before each of its ReLUs" if s.get("batch_norm") else ""
    cnn = ", ".join(f"3x3 conv {f}, 2x2 max pool" for f in filters)
    units = f"{units}{bn}"
    if s.get("trunk") == "conv-features":
        return (f"CNN ({cnn}, Dense {units}; single-task: one per task); hard sharing: the "
                f"convolutional blocks shared, then per task Dense {s['head_units']} and a "
                f"Dense output; ")
    return (f"CNN trunk ({cnn}, Dense {units}; single-task: one per task; hard sharing: one, "
            f"one Dense head per task"
            + ("; task-norm: one, its BatchNorms one set per task, one Dense head per task"
               if "task-norm|equal" in runs else "") + "); ")


def _optimizer_words(s) -> str:
    """``Adam``, or ``SGD with momentum 0.9``: the optimizer of a run's settings
    (files written before the ``--optimizer`` switch ran Adam)."""
    if s.get("optimizer", "adam") == "adam":
        return "Adam"
    return f"SGD with momentum {s['momentum']:g}" if s.get("momentum") else "SGD"


def fashion_markdown(res) -> str:
    from tinynet.mtl.metrics import delta_m

    s = res["settings"]
    keys = ["left/accuracy", "right/accuracy"]
    single = res["runs"]["single-task"]
    rows = []
    decay = (f", L2 weight decay {s['weight_decay']:g} on every parameter"
             if s.get("weight_decay") else "")
    smoothing = (f", cross-entropy with label smoothing {s['label_smoothing']:g}"
                 if s.get("label_smoothing") else "")
    mixing = (f", mixup α = {s['mixup']:g} (the training pairs mixed afresh each epoch)"
              if s.get("mixup") else "")
    torch_too = (" (torch's too)" if isinstance(res["runs"].get("torch hard sharing|equal"),
                                                 list) else "")
    for name, runs in res["runs"].items():
        model, _, weighting = name.partition("|")
        if isinstance(runs, str):
            rows.append([model, weighting or "-", runs, "", "", "", "", ""])
            continue
        deltas = [delta_m({k: r["test"][k] for k in keys}, {k: b["test"][k] for k in keys})
                  for r, b in zip(runs, single)]
        rows.append([model, weighting or "-",
                     _pm([r["test"]["left/accuracy"] for r in runs]),
                     _pm([r["test"]["right/accuracy"] for r in runs]),
                     _pm(deltas, 2), f"{runs[0]['params']:,}",
                     f"{np.median([r['cpu_seconds'] for r in runs]):.1f}",
                     f"{np.median([r['seconds'] for r in runs]):.1f}"])
    return "\n".join([
        "## Multi-Fashion: single-task vs multi-task", "",
        (f"{s['n_train']} training / {s['n_test']} validation pairs (validation pairs from "
         f"training images 50,000-59,999, training pairs from the rest; no test image); "
         if s.get("validation") else f"{s['n_train']} training / {s['n_test']} test images; ") + (
            _conv_models(res["runs"], s) if s["hidden"] == "conv" else
            f"MLP hidden widths {s['hidden']} ({_mlp_models(res['runs'], s)}); ") +
        (f"dropout {s['dropout']} after each hidden layer of the single-task and "
         f"hard-sharing MLPs{torch_too}; " if s.get("dropout") else "") +
        f"{s['epochs']} epochs of {_optimizer_words(s)} (lr {s['lr']}"
        f"{', cosine decay to 0 over the epochs' if s.get('lr_schedule') == 'cosine' else ''}"
        f"{decay}{smoothing}{mixing}"
        f", batch {s['batch_size']}); "
        f"mean ± std over {s['seeds']} seed(s). Δm%: mean relative accuracy gain over the "
        f"single-task models of the same seed. Times: median training time per run "
        f"(process CPU seconds, and wall seconds).", "",
        report.markdown_table(["model", "weighting", "left acc", "right acc", "Δm %",
                               "params", "train CPU s", "train wall s"], rows)])


# --------------------------------------------------------------------- main
def _file_name(args) -> str:
    """``mtl`` for the main table; a CNN, BatchNorm, task-norm, MLP-width, dropout,
    cosine, epochs, SGD, weight-decay, label-smoothing, mixup, learning-rate, batch-size,
    training-set-size or validation run gets files of its own, so it never
    overwrites it (nor a run of
    the same settings on another number of pairs, epochs or another width). Files
    written before 2026-12-07 do not name their epochs (``_cosine`` ones ran 20 or
    more; their settings and the study in docs/mtl-hard-sharing.md say how many)."""
    trunk = {"mlp": "", "conv": "_conv",
             "conv-features": f"_convfeatures{args.head_units or DEFAULT_HEAD_UNITS}"}
    return "mtl" + trunk[args.trunk] + (
        "_f" + "-".join(map(str, args.filters))
        if args.filters and tuple(args.filters) != DEFAULT_FILTERS else "") + (
        f"_u{args.units}" if args.units and args.units != DEFAULT_UNITS else "") + (
        "_bn" if args.batch_norm else "") + (
        "_tasknorm" if "task-norm" in (args.architectures or []) else "") + (
        "_h" + "-".join(map(str, args.hidden))
        if args.trunk == "mlp" and not args.quick and tuple(args.hidden) != DEFAULT_HIDDEN
        else "") + (
        f"_dropout{args.dropout:g}" if args.dropout else "") + (
        "_cosine" if args.lr_schedule == "cosine" else "") + (
        f"_e{args.epochs}" if not args.quick and args.epochs not in (None, DEFAULT_EPOCHS)
        else "") + (
        f"_sgd{args.momentum:g}" if args.optimizer == "sgd" else "") + (
        f"_wd{args.weight_decay:g}" if args.weight_decay else "") + (
        f"_ls{args.label_smoothing:g}" if args.label_smoothing else "") + (
        f"_mixup{args.mixup:g}" if args.mixup else "") + (
        f"_lr{args.lr:g}" if args.lr != DEFAULT_LR else "") + (
        f"_batch{args.batch_size}" if args.batch_size != DEFAULT_BATCH else "") + (
        f"_n{args.n_train}" if not args.quick and args.n_train not in (None, DEFAULT_N_TRAIN)
        else "") + (
        "_validation" if args.validation else "")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks mtl``."""
    from tinynet.mtl.experiments import LR_SCHEDULES

    parser = argparse.ArgumentParser(prog="python -m benchmarks mtl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_common_args(parser)
    parser.add_argument("--parts", nargs="+", default=["synthetic", "fashion"],
                        choices=["synthetic", "fashion"],
                        help="the parts to run (default both); the files are named by the "
                             "training settings, not the parts, so a run of one part is "
                             "refused where another command's report of that name is (see "
                             "--overwrite)")
    parser.add_argument("--seeds", type=report.positive_int, default=None,
                        help="Multi-Fashion seeds: default 2 (--quick 1)")
    parser.add_argument("--correlations", type=report.float_in(-1, 1), nargs="+", default=None,
                        help="default 1.0 0.9 0.5 0.1 -0.5 (--quick 1.0 0.1)")
    parser.add_argument("--syn-train", type=report.positive_int, default=None)
    parser.add_argument("--syn-test", type=report.positive_int, default=None)
    parser.add_argument("--syn-epochs", type=report.positive_int, default=None)
    parser.add_argument("--syn-seeds", type=report.positive_int, default=None, help="default 10 (--quick 1)")
    parser.add_argument("--syn-lr", type=report.float_in(0, open_low=True), default=2e-3)
    parser.add_argument("--syn-hidden", type=report.positive_int, default=16)
    parser.add_argument("--syn-experts", type=report.positive_int, default=4)
    parser.add_argument("--syn-expert-units", type=report.positive_int, default=4)
    parser.add_argument("--n-train", type=report.positive_int, default=None, help="Multi-Fashion training images")
    parser.add_argument("--n-test", type=report.positive_int, default=None)
    parser.add_argument("--epochs", type=report.positive_int, default=None)
    parser.add_argument("--hidden", type=report.positive_int, nargs="+", default=list(DEFAULT_HIDDEN))
    parser.add_argument("--trunk", choices=["mlp", *CONV_TRUNKS], default="mlp",
                        help="Multi-Fashion: MLP of --hidden widths (every architecture); "
                             "or the CNN of tinynet.mtl.experiments.conv_trunk (single-task "
                             "and hard sharing only), hard sharing sharing all of it "
                             "('conv') or only its convolutional blocks ('conv-features', "
                             "with a Dense head of --head-units per task)")
    parser.add_argument("--head-units", type=int, default=None,
                        help="with --trunk conv-features: the units of each task's hidden "
                             f"Dense layer; default {DEFAULT_HEAD_UNITS}, which gives hard "
                             "sharing half the parameters of the single-task pair")
    parser.add_argument("--filters", type=int, nargs="+", default=None,
                        help="with a CNN trunk: the filters of its 3x3 convolutions, one "
                             "block (convolution and 2x2 max pooling) each; default "
                             f"{' '.join(map(str, DEFAULT_FILTERS))}")
    parser.add_argument("--units", type=int, default=None,
                        help="with a CNN trunk: the units of its Dense layer (the "
                             "single-task models', and hard sharing's with --trunk conv); "
                             f"default {DEFAULT_UNITS}")
    parser.add_argument("--batch-norm", action="store_true",
                        help="with a CNN trunk: a BatchNorm before each ReLU of the CNN "
                             "(not of the conv-features heads), its convolutions and "
                             "Dense layer without bias (every model's CNN)")
    parser.add_argument("--validation", action="store_true",
                        help="Multi-Fashion: score on validation pairs made from training "
                             "images 50,000-59,999 (training pairs from the rest), not on "
                             "the test set: for choosing settings")
    parser.add_argument("--dropout", type=report.float_in(0, 1, open_high=True), default=0.0,
                        help="Multi-Fashion: dropout after each hidden layer of the single-task "
                             "and hard-sharing MLPs, tinynet's and torch's (the other "
                             "architectures have none)")
    parser.add_argument("--weightings", nargs="+", choices=WEIGHTINGS, default=WEIGHTINGS,
                        help="Multi-Fashion: the weighting methods hard sharing is trained "
                             "with (default: all)")
    parser.add_argument("--architectures", nargs="+", choices=ARCHITECTURES, default=None,
                        help="Multi-Fashion: the multi-task models to train besides the "
                             "single-task baseline, which always runs (default: the four "
                             "MLP ones, or 'hard' with a CNN trunk; 'hard' includes the "
                             "torch twin; 'task-norm', with --trunk conv --batch-norm, shares "
                             "the CNN but its BatchNorms, one set per task)")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                        help="Multi-Fashion: keep the learning rate, or decay it by a cosine "
                             "to 0 over the epochs (every model, torch's too)")
    parser.add_argument("--weight-decay", type=report.float_in(0), default=0.0,
                        help="Multi-Fashion: the optimizer's L2 weight decay on every parameter of "
                             "every model, torch's too; default 0")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                        help="Multi-Fashion: every model's optimizer, torch's too (default "
                             "adam; sgd with --momentum)")
    parser.add_argument("--momentum", type=report.float_in(0, 1, open_high=True), default=None,
                        help="with --optimizer sgd: its heavy-ball momentum, as "
                             "torch.optim.SGD(momentum=); default "
                             f"{DEFAULT_MOMENTUM}")
    parser.add_argument("--label-smoothing", type=report.float_in(0, 1, open_high=True),
                        default=0.0,
                        help="Multi-Fashion: the cross-entropy's label smoothing, every "
                             "model's (torch's too); default 0")
    parser.add_argument("--mixup", type=report.float_in(0), default=0.0,
                        help="Multi-Fashion: train every model on mixup pairs with "
                             "λ ~ Beta(α, α) drawn afresh each epoch "
                             "(tinynet.data.mixup); the torch twin is skipped; default 0 "
                             "(no mixup)")
    parser.add_argument("--batch-size", type=report.positive_int, default=DEFAULT_BATCH)
    parser.add_argument("--lr", type=report.float_in(0, open_low=True), default=DEFAULT_LR)
    parser.add_argument("--experts", type=report.positive_int, default=4)
    parser.add_argument("--expert-units", type=report.positive_int, default=64)
    parser.add_argument("--tower", type=report.positive_int, default=64)
    parser.add_argument("--soft-penalty", type=report.float_in(0), default=1e-3)
    parser.add_argument("--blas-threads", type=report.positive_int, default=None,
                        help="limit the threads of NumPy's BLAS, Numba's parallel kernels "
                             "and torch; 1 avoids thread contention on a busy 2-core machine")
    report.after_parsing(parser, _fill_defaults)
    return parser


def _fill_defaults(args) -> None:
    """The defaults given after parsing (they depend on ``--quick``, ``--trunk``
    and ``--optimizer``), registered with :func:`report.after_parsing` so that a
    command and the same command with a default spelt out (``--seeds 2``,
    ``--momentum 0.9``) are one run."""
    if args.optimizer == "sgd" and args.momentum is None:
        args.momentum = DEFAULT_MOMENTUM
    if args.trunk == "conv-features" and args.head_units is None:
        args.head_units = DEFAULT_HEAD_UNITS
    if args.trunk in CONV_TRUNKS:
        args.filters = list(args.filters or DEFAULT_FILTERS)
        args.units = args.units or DEFAULT_UNITS
    quick = args.quick
    args.seeds = args.seeds or (1 if quick else 2)
    args.syn_seeds = args.syn_seeds or (1 if quick else 10)
    args.correlations = args.correlations or ([1.0, 0.1] if quick
                                              else [1.0, 0.9, 0.5, 0.1, -0.5])
    args.syn_train = args.syn_train or (600 if quick else 20000)
    args.syn_test = args.syn_test or (200 if quick else 5000)
    args.syn_epochs = args.syn_epochs or (1 if quick else 20)
    args.n_train = args.n_train or (300 if quick else DEFAULT_N_TRAIN)
    args.n_test = args.n_test or (200 if quick else 10000)
    args.epochs = args.epochs or (1 if quick else DEFAULT_EPOCHS)
    if quick:
        args.hidden, args.expert_units, args.tower = [16], 8, 8


def main(argv) -> int:
    parser = build_parser()
    args = report.parse_args(parser, argv)
    if args.trunk in CONV_TRUNKS and set(args.architectures or []) - set(CONV_ARCHITECTURES):
        parser.error(f"--trunk {args.trunk} runs single-task, hard sharing and task-norm "
                     f"only; --architectures asked for {' '.join(args.architectures)}")
    if "task-norm" in (args.architectures or []) and not (args.trunk == "conv"
                                                          and args.batch_norm):
        parser.error("--architectures task-norm shares the CNN but its BatchNorms: it needs "
                     "--trunk conv --batch-norm (the single-task CNNs then have the same "
                     "BatchNorms)")
    if args.batch_norm and args.trunk not in CONV_TRUNKS:
        parser.error(f"--batch-norm is for the CNN trunks ({', '.join(CONV_TRUNKS)}); "
                     f"received --trunk {args.trunk}")
    if args.momentum is not None and args.optimizer != "sgd":
        parser.error(f"--momentum is SGD's (--optimizer sgd); received --optimizer "
                     f"{args.optimizer}")
    if args.head_units is not None and args.trunk != "conv-features":
        parser.error(f"--head-units is for --trunk conv-features; received --trunk "
                     f"{args.trunk}")
    if args.head_units is not None and args.head_units < 1:
        parser.error(f"--head-units expected a positive number of units, received "
                     f"{args.head_units}")
    if args.trunk not in CONV_TRUNKS and (args.filters or args.units):
        parser.error(f"--filters and --units size the CNN trunks (--trunk conv, "
                     f"conv-features); received them with --trunk {args.trunk}")
    if (args.filters and min(args.filters) < 1) or (args.units is not None and args.units < 1):
        parser.error(f"--filters and --units expected positive counts, received "
                     f"--filters {args.filters} --units {args.units}")
    _fill_defaults(args)
    name, command = _file_name(args), report.command_line("mtl", argv)
    report.refuse_to_replace(parser, args, name, command)  # (the table says how to redo it)
    results = {"settings": report.run_settings(args)}
    if args.blas_threads is not None:
        limit_blas_threads(args.blas_threads, parser)  # and tinynet's kernels', and torch's
    start = time.perf_counter()
    sections = ["# Multi-task learning (tinynet.mtl)", ""]
    if "synthetic" in args.parts:
        results["synthetic"] = synthetic(args)
        sections += [synthetic_markdown(results["synthetic"]), ""]
    if "fashion" in args.parts:
        fashion_results, why = report.run_or_skip(fashion, args)  # absent on some machines
        if why is None:
            results["fashion"] = fashion_results
            sections += [fashion_markdown(fashion_results), ""]
        else:
            results["fashion"] = f"skipped: {why}"
            sections += [f"Multi-Fashion skipped: {why}", ""]
    results["total_seconds"] = time.perf_counter() - start
    sections.append(f"Total time: {results['total_seconds'] / 60:.1f} min.")
    paths = report.write_report(name, results, "\n".join(sections),
                                out_dir=args.out, quick=args.quick, command=command)
    print("\n".join(sections))
    print("wrote", ", ".join(map(str, paths)))
    return 0
