"""Meta-learning: sinusoid protocol, few-shot held-out classes, MAML speed vs PyTorch.

``python -m benchmarks meta [--quick] [--parts speed sinusoid fewshot]
[--iterations N] [--fewshot-iterations N]``

- **speed**: second-order MAML meta-training iterations (meta-gradient + Adam
  step) on one fixed meta-batch of 25 sinusoid tasks (K = 10 support and
  10 query points), 1-40-40-1 ReLU, float32, median of repeats, in tasks/s;
  the peers are PyTorch's per-task loop with
  ``torch.autograd.grad(create_graph=True)`` and PyTorch's ``torch.func``
  ``vmap`` of the same (``torch.set_num_threads`` to tinynet's kernel
  threads). Also: the meta-gradients of tinynet and PyTorch on the same
  weights (float64), and the error of tinynet's exact (R-operator)
  Hessian-vector products against central differences of gradients.
- **sinusoid**: the protocol of Finn et al. 2017 (A ~ U[0.1, 5],
  phase ~ U[0, pi], x ~ U[-5, 5]; 1-40-40-1 ReLU; MSE; meta-batch 25; Adam
  1e-3; inner SGD 0.01, one step in meta-training, five for Reptile) for
  K = 5, 10, 20, on 600 new tasks with 100 query points each, after 1 and 10
  inner steps: mean MSE and 95% CI. Baseline: one network trained on all
  tasks' points (same iterations), fine-tuned by the same SGD.
- **fewshot**: 4-way 1-shot and 5-shot on classes never seen in meta-
  training (Fashion-MNIST: meta-train on 6 classes, test on the other 4,
  test-split images; embedded digits likewise): ProtoNets, MAML and ANIL
  against "train a 6-way classifier on the base classes, then fine-tune a new
  4-way head" (all 784/64-64-64 MLPs), 600 test episodes with 15 queries per
  class, accuracy and 95% CI.

A run of all three parts writes ``meta.*``; a run of some of them files of
their own, named by the parts in the order above (``--parts speed`` writes
``meta_speed.*``, ``--parts fewshot sinusoid`` ``meta_sinusoid_fewshot.*``), so
that it never replaces the full run's tables and figure.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks import report
from benchmarks.threads import limit_blas_threads

PARTS = ("speed", "sinusoid", "fewshot")
METHODS = ("MAML", "FOMAML", "Reptile", "Meta-SGD", "Pretrained + fine-tune")
SHOTS = (5, 10, 20)


# --------------------------------------------------------------------- models
def sine_model(seed, dtype="float32"):
    import tinynet as tn
    return tn.Sequential([tn.layers.Dense(40, activation="relu", input_dim=1, seed=seed,
                                          dtype=dtype),
                          tn.layers.Dense(40, activation="relu", seed=seed + 1),
                          tn.layers.Dense(1, seed=seed + 2)])


def make_learner(method, seed):
    from tinynet import meta
    model = sine_model(seed)
    if method == "MAML":
        return meta.MAML(model, inner_lr=0.01)
    if method == "FOMAML":
        return meta.MAML(model, inner_lr=0.01, first_order=True)
    if method == "Reptile":
        return meta.Reptile(model, inner_lr=0.01, inner_steps=5)
    if method == "Meta-SGD":
        return meta.MetaSGD(model, inner_lr=0.01)
    return meta.Pretrained(model, inner_lr=0.01)


def _cell(entry, key="loss", digits=3):
    """``mean ± ci``; where the inner loop blew up on some tasks, the mean over
    the others and how many blew up (to inf/NaN)."""
    def num(v):
        return f"{v:.{digits}f}" if abs(v) < 1e3 else f"{v:.1e}"
    if not entry:
        return "-"
    if not np.isfinite(entry.get(key, np.nan)):
        if "loss_finite" not in entry or entry["loss_finite"] >= 1e3:
            return f"diverged ({entry.get('n_diverged', '?')} inf)"
        return (f"{num(entry['loss_finite'])} ± {num(entry['loss_finite_ci95'])} "
                f"({entry['n_diverged']} inf)")
    return f"{num(entry[key])} ± {num(entry[key + '_ci95'])}"


# ---------------------------------------------------------------------- speed
def speed(quick):
    """tasks/s of second-order MAML, tinynet vs PyTorch, plus gradient errors."""
    from benchmarks import _meta_torch as peer
    from tinynet.meta import MAML, SinusoidTasks

    batch = SinusoidTasks(10, seed=0).sample(25)
    learner = MAML(sine_model(0), inner_lr=0.01)
    weights = learner.model.get_weights()
    opt = learner.optimizer

    def tinynet_step():
        _, grad = learner.meta_gradient(batch)
        learner._set_meta_grad(grad)
        opt.step()

    steps = {"tinynet": tinynet_step}
    threads = peer_threads()
    if peer.available():
        import torch
        torch.set_num_threads(threads)
        for kind in ("loop", "vmap"):
            steps[f"torch_{kind}"] = peer.meta_step(kind, weights, batch)
    repeats, min_time = (1, 0.05) if quick else (7, 0.3)
    seconds = interleaved(steps, repeats=repeats, min_time=min_time)
    results = {name: 25 / t for name, t in seconds.items()}
    if peer.available():
        # the same loop on one thread: on a busy 2-core machine PyTorch's
        # second thread can cost more than it gives. tinynet is timed again beside
        # it, so that this row's ratio too comes from one interleaved run with the
        # same repeats on both sides
        torch.set_num_threads(1)
        one = interleaved({"tinynet": tinynet_step, "torch_loop_1thread": steps["torch_loop"]},
                          repeats=repeats, min_time=min_time)
        results["torch_loop_1thread"] = 25 / one["torch_loop_1thread"]
        results["tinynet_beside_1thread"] = 25 / one["tinynet"]
        torch.set_num_threads(threads)
    results["torch_threads"] = threads
    results["load_average_1min"] = os.getloadavg()[0]  # a shared machine skews timings
    results["cpus"] = report.cpu_counts()  # what that load average is out of
    results.update(gradient_errors(peer))
    return results


def _progress(results: dict) -> dict:
    """The speed part's results as its progress line shows them: a number
    above 1 (tasks/s) to 0.1, a smaller one (an error) as ``1.2e-05``, and
    anything else (the CPU counts, a dict) as it is."""
    def show(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        return round(value, 1) if value > 1 else f"{value:.1e}"
    return {key: show(value) for key, value in results.items()}


def peer_threads() -> int:
    """The threads PyTorch gets in the speed part: as many as tinynet's kernels
    use (``--blas-threads``, ``NUMBA_NUM_THREADS`` or the cores), so that the
    ratio compares the libraries, not thread counts."""
    from tinynet.kernels import config
    return config.raw_num_threads()


def interleaved(fns, repeats, min_time):
    """Median seconds per call of each function, timing them in turn within
    every repeat, so that a change in the machine's load hits all alike."""
    import statistics
    numbers = {}
    for name, fn in fns.items():
        fn()  # warm-up (and compilation, for torch.func)
        start = time.perf_counter()
        fn()
        numbers[name] = max(1, int(min_time / max(time.perf_counter() - start, 1e-9)))
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(numbers[name]):
                fn()
            times[name].append((time.perf_counter() - start) / numbers[name])
    return {name: statistics.median(t) for name, t in times.items()}


def gradient_errors(peer):
    """Relative errors: tinynet vs PyTorch meta-gradients (float64, 1 and 2
    steps), and R-op HVPs vs central differences of gradients."""
    from tinynet.meta import MAML, SinusoidTasks
    batch = SinusoidTasks(10, seed=1, dtype="float64").sample(25)
    out = {}
    model = sine_model(3, "float64")
    maml = MAML(model, inner_lr=0.01)
    if peer.available():
        for steps in (1, 2):
            maml.inner_steps = steps
            ours = maml.meta_gradient(batch)[1]
            theirs = np.concatenate([g.ravel() for g in peer.meta_gradient(
                model.get_weights(), batch, 0.01, steps)])
            out[f"vs_torch_{steps}step"] = float(np.abs(ours - theirs).max()
                                                 / np.abs(theirs).max())
    rng = np.random.default_rng(0)
    for activation in ("relu", "tanh"):
        import tinynet as tn
        from tinynet.meta import FunctionalMLP
        net = FunctionalMLP([tn.layers.Dense(40, activation=activation, input_dim=1,
                                             dtype="float64", seed=5),
                             tn.layers.Dense(40, activation=activation, input_dim=40,
                                             dtype="float64", seed=6),
                             tn.layers.Dense(1, input_dim=40, dtype="float64", seed=7)])
        theta = np.broadcast_to(net.get_params(), (25, net.n_params))
        v = rng.standard_normal(theta.shape)
        hv = net.value_and_grad(theta, batch.support_x, batch.support_y).hvp(v)
        for eps in (1e-3, 1e-5, 1e-7):
            diff = (net.value_and_grad(theta + eps * v, batch.support_x, batch.support_y).grad
                    - net.value_and_grad(theta - eps * v, batch.support_x,
                                         batch.support_y).grad) / (2 * eps)
            out[f"hvp_{activation}_eps{eps:g}"] = float(np.abs(hv - diff).max()
                                                        / np.abs(hv).max())
    return out


# ------------------------------------------------------------------- sinusoid
def sinusoid(iterations, n_test, quick, seed=0):
    from tinynet.meta import SinusoidTasks
    results, curves, examples = {}, {}, {}
    for k in SHOTS[:1] if quick else SHOTS:
        test = SinusoidTasks(k, k_query=100, seed=1000 + k).sample(n_test)
        for method in METHODS:
            learner = make_learner(method, seed)
            start = time.perf_counter()
            learner.meta_fit(SinusoidTasks(k, seed=seed + k), iterations, 25)
            train_time = time.perf_counter() - start
            with np.errstate(all="ignore"):  # Meta-SGD's lrs are tuned for one step
                res = learner.evaluate(test, steps=(1, 10))
            results[f"{method}|K={k}"] = {"steps": res["steps"], "train_seconds": train_time}
            print(f"  sinusoid K={k:2d} {method:22s} 1 step {_cell(res['steps'][1])}, "
                  f"10 steps {_cell(res['steps'][10])} ({train_time:.0f} s)", flush=True)
            if k == 10:
                curves[method] = learner.history
                examples[method] = learner
    return results, curves, examples


# -------------------------------------------------------------------- few-shot
def load_fewshot(name):
    import tinynet as tn
    if name == "fashion":
        (x, y), (xt, yt) = tn.data.load_fashion_mnist()
        return (x.reshape(len(x), -1) / np.float32(255), y,
                xt.reshape(len(xt), -1) / np.float32(255), yt)
    (x, y), (xt, yt) = tn.data.load_digits()
    return x / np.float32(16), y, xt / np.float32(16), yt


def _mlp(n_in, n_out, seed):
    import tinynet as tn
    return tn.Sequential([tn.layers.Dense(64, activation="relu", input_dim=n_in, seed=seed),
                          tn.layers.Dense(64, activation="relu", seed=seed + 1),
                          tn.layers.Dense(n_out, seed=seed + 2)])


def fewshot(dataset, iterations, n_test, quick, seed=0):
    """Accuracy on 4-way episodes of 4 held-out classes, per method and shot."""
    from tinynet.meta import ANIL, MAML, EpisodeSampler, Pretrained, ProtoNet, split_classes
    x, y, xt, yt = load_fewshot(dataset)
    train_classes, test_classes = split_classes(y, 4, seed=seed)
    n_in, steps = x.shape[1], 10
    out = {"classes": {"meta_train": train_classes.tolist(), "meta_test": test_classes.tolist()}}
    # baseline: 6-way classifier on all base-class training images, new 4-way head
    base = Pretrained(_mlp(n_in, len(train_classes), seed), loss="cross_entropy", inner_lr=0.1)
    keep = np.isin(y, train_classes)
    relabel = np.searchsorted(train_classes, y[keep])
    base.fit(x[keep], relabel, iterations=iterations, batch_size=64, seed=seed)
    base.new_head(4)
    for shot in (1, 5):
        test = EpisodeSampler(xt, yt, 4, shot, 15, classes=test_classes,
                              seed=seed + 7).sample(n_test)
        train = EpisodeSampler(x, y, 4, shot, 15, classes=train_classes, seed=seed + shot)
        learners = {
            "ProtoNet": ProtoNet(_mlp(n_in, 64, seed)),
            "MAML": MAML(_mlp(n_in, 4, seed), loss="cross_entropy", inner_lr=0.1,
                         inner_steps=1),
            # inner lr 0.5 for ANIL's head: chosen on episodes of the meta-train
            # classes from the test split (0.96 vs 0.88 at lr 0.1, digits 5-shot)
            "ANIL": ANIL(_mlp(n_in, 4, seed), loss="cross_entropy", inner_lr=0.5,
                         inner_steps=1),
        }
        for name, learner in learners.items():
            start = time.perf_counter()
            learner.meta_fit(train, iterations, meta_batch_size=8, seed=seed)
            seconds = time.perf_counter() - start
            res = learner.evaluate(test) if name == "ProtoNet" else \
                learner.evaluate(test, steps=steps)
            entry = next(iter(res["steps"].values()))
            out[f"{name}|{shot}-shot"] = {**entry, "train_seconds": seconds}
            print(f"  {dataset} 4-way {shot}-shot {name:9s} accuracy "
                  f"{_cell(entry, 'accuracy')} ({seconds:.0f} s)", flush=True)
        entry = base.evaluate(test, steps=steps)["steps"][steps]
        out[f"Base classes + new head|{shot}-shot"] = entry
        print(f"  {dataset} 4-way {shot}-shot baseline  accuracy {_cell(entry, 'accuracy')}",
              flush=True)
    return out


# --------------------------------------------------------------------- report
def figure(examples, curves):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from tinynet.meta import SinusoidTasks
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    task = SinusoidTasks(10, seed=77).sample(1)
    grid = np.linspace(-5, 5, 200, dtype=np.float32)[:, None]
    amp, phase = task.info["amplitude"][0], task.info["phase"][0]
    ax = axes[0]
    ax.plot(grid, SinusoidTasks.function(grid, amp, phase), "k", lw=2, label="true")
    ax.plot(task.support_x[0], task.support_y[0], "k^", label="10 support points")
    for method, style in (("MAML", "-"), ("Pretrained + fine-tune", "--")):
        if method not in examples:
            continue
        learner = examples[method]
        for steps, alpha in ((0, 0.4), (10, 1.0)):
            model = learner.adapt(task.support_x[0], task.support_y[0], steps=steps)
            ax.plot(grid, model.predict(grid), style, alpha=alpha,
                    label=f"{method}, {steps} steps")
    ax.set_title("sinusoid, K = 10")
    ax.legend(fontsize=7)
    ax = axes[1]
    for method, history in curves.items():
        h = np.asarray(history)
        w = max(1, len(h) // 100)
        ax.plot(np.convolve(h, np.ones(w) / w, mode="valid"), label=method)
    ax.set_yscale("log")
    ax.set_xlabel("meta-iteration")
    # MAML/FOMAML/Meta-SGD: after 1 inner step; Reptile: after 5; Pretrained: none
    ax.set_ylabel("training meta-loss (query MSE after inner steps)")
    ax.legend(fontsize=7)
    return fig


def markdown(results, args):
    lines = ["# Meta-learning", ""]
    sp = results.get("speed")
    if sp:
        loop, vmap = sp.get("torch_loop"), sp.get("torch_vmap")
        lines += ["## Second-order MAML meta-training speed (1-40-40-1 ReLU, meta-batch 25, "
                  "K=10, float32)", "",
                  report.markdown_table(
                      ["implementation", "tasks/s", "tinynet speed-up"],
                      [["tinynet (task-batched, R-op HVP)", sp["tinynet"], 1.0],
                       ["PyTorch loop, autograd.grad(create_graph=True)", loop,
                        report.ratio(sp["tinynet"], loop)],
                       ["PyTorch torch.func vmap(grad)", vmap,
                        report.ratio(sp["tinynet"], vmap)],
                       # files from before tinynet was timed beside it: the main run's
                       ["PyTorch loop, 1 thread", sp.get("torch_loop_1thread"),
                        report.ratio(sp.get("tinynet_beside_1thread", sp["tinynet"]),
                                     sp.get("torch_loop_1thread"))]]), "",
                  "Timed in turn within each repeat (median of repeats); PyTorch with "
                  f"`torch.set_num_threads({sp.get('torch_threads', 2)})`, as many threads "
                  "as tinynet's kernels, unless stated (the 1-thread row's speed-up is to "
                  "tinynet timed beside it). 1-minute load average at the "
                  f"end of the timing: {sp.get('load_average_1min', float('nan')):.1f} on "
                  + (report.cpu_text(sp["cpus"]) if "cpus" in sp else
                     "a machine whose CPU count this file does not record")
                  + " (a load near or above it: other jobs running, absolute numbers low, "
                  "the ratios what to read).", "",
                  "Gradient accuracy (max |error| / max |reference|):", "",
                  report.markdown_table(["quantity", "relative error"],
                                        [[k, f"{v:.1e}"] for k, v in sp.items()
                                         if k.startswith(("vs_", "hvp_"))]), "",
                  "`vs_torch_*`: tinynet's second-order meta-gradient against PyTorch's "
                  "(float64, same weights and tasks). `hvp_*_eps*`: tinynet's exact R-operator "
                  "Hessian-vector product against central differences of its gradients with "
                  "step eps (float64, 25 tasks). For tanh the difference error falls as eps^2 "
                  "until rounding; for ReLU a step that moves any unit across its kink makes "
                  "the difference meaningless (large errors at eps >= 1e-5), and with no kink "
                  "crossed (eps = 1e-7) the two agree to rounding.", ""]
    sin = results.get("sinusoid")
    if sin:
        shots = sorted({int(key.split("K=")[1]) for key in sin})
        header = ["method"] + [f"K={k}, {s} step{'s' if s > 1 else ''}" for k in shots
                               for s in (1, 10)]
        def at(method, k, s):  # int step keys, or str ones from a reloaded JSON
            steps = sin.get(f"{method}|K={k}", {}).get("steps", {})
            return steps.get(s, steps.get(str(s)))
        rows = [[m] + [_cell(at(m, k, s)) for k in shots for s in (1, 10)] for m in METHODS]
        lines += [f"## Sinusoid regression (Finn et al. 2017 protocol), "
                  f"{args.iterations} meta-iterations", "",
                  f"Mean query MSE ± 95% CI over {args.test_tasks} new tasks "
                  f"(100 query points each).", "", report.markdown_table(header, rows), ""]
    for dataset in ("fashion", "digits"):
        fs = results.get(f"fewshot_{dataset}")
        if not fs:
            continue
        names = ["ProtoNet", "MAML", "ANIL", "Base classes + new head"]
        rows = [[n] + [_cell(fs.get(f"{n}|{s}-shot"), "accuracy") for s in (1, 5)]
                for n in names]
        lines += [f"## 4-way few-shot accuracy on held-out classes: {dataset} "
                  f"(meta-train classes {fs['classes']['meta_train']}, test "
                  f"{fs['classes']['meta_test']}), {args.fewshot_iterations} iterations", "",
                  report.markdown_table(["method", "1-shot", "5-shot"], rows), "",
                  "MAML/ANIL/baseline: 10 SGD steps on the support set (lr 0.1; ANIL's head "
                  "0.5), one inner step in meta-training, meta-batch 8, Adam 1e-3; ProtoNet: "
                  f"nearest prototype (64-d embedding). {args.test_tasks} test episodes, 15 "
                  "queries per class, test-split images.", ""]
    lines += [f"Settings: sinusoid iterations {args.iterations}, few-shot iterations "
              f"{args.fewshot_iterations}, {args.test_tasks} test tasks."]
    return "\n".join(lines)


def _file_name(args) -> str:
    """``meta`` for a run of every part, else ``meta_`` and the parts run, in
    the order of :data:`PARTS` (module docstring)."""
    parts = [part for part in PARTS if part in args.parts]
    return "meta" if len(parts) == len(PARTS) else "meta_" + "_".join(parts)


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks meta", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_common_args(parser)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS,
                        help="the parts to run (default all); a subset writes files of "
                             "its own, e.g. meta_speed.* for --parts speed")
    parser.add_argument("--iterations", type=report.positive_int, default=None,
                        help="sinusoid meta-iterations (default 10000; --quick 40)")
    parser.add_argument("--fewshot-iterations", type=report.positive_int, default=None,
                        help="few-shot meta-iterations (default 2000; --quick 20)")
    parser.add_argument("--blas-threads", type=report.positive_int, default=None,
                        help="limit the threads of NumPy's BLAS (needs threadpoolctl), "
                             "tinynet's kernels and torch; 1 avoids thread contention on a "
                             "busy 2-core machine")
    parser.add_argument("--test-tasks", type=report.positive_int, default=None,
                        help="evaluation tasks/episodes (default 600; --quick 20)")
    args = report.parse_args(parser, argv)
    args.command = report.command_line("meta", argv)  # so that the table says how to redo it
    args.iterations = args.iterations or (40 if args.quick else 10000)
    args.fewshot_iterations = args.fewshot_iterations or (20 if args.quick else 2000)
    args.test_tasks = args.test_tasks or (20 if args.quick else 600)
    results, curves, examples = {"settings": report.run_settings(args)}, {}, {}
    name = _file_name(args)
    report.refuse_to_replace(parser, args, name, args.command)
    if args.blas_threads is not None:
        limit_blas_threads(args.blas_threads, parser)
    if "speed" in args.parts:
        print("speed: second-order MAML tasks/s", flush=True)
        results["speed"] = speed(args.quick)
        print("  ", _progress(results["speed"]), flush=True)
    if "sinusoid" in args.parts:
        results["sinusoid"], curves, examples = sinusoid(args.iterations, args.test_tasks,
                                                         args.quick)
    if "fewshot" in args.parts:
        for dataset in (("digits",) if args.quick else ("fashion", "digits")):
            try:
                results[f"fewshot_{dataset}"] = fewshot(dataset, args.fewshot_iterations,
                                                        args.test_tasks, args.quick)
            except (OSError, FileNotFoundError) as exc:
                results[f"fewshot_{dataset}"] = None
                print(f"  {dataset}: skipped ({exc})")
    text = markdown(results, args)
    paths = report.write_report(name, results, text, figure(examples, curves) if curves
                                else None, out_dir=args.out, quick=args.quick,
                                command=args.command)
    print(text)
    print("wrote", ", ".join(str(p) for p in paths))
    return 0
