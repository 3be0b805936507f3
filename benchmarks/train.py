"""Training throughput: MLP 784-256-128-10 (or the small CNN) vs PyTorch (CPU) and scikit-learn.

Samples per second for training an MLP 784-256-128-10 (ReLU, softmax
cross-entropy, Adam, float32) at batch sizes 32, 128 and 512, measured in one
run for every framework, as the median over repeats of one epoch each.
``--model cnn`` trains the CNN of :func:`tinynet.recipes.cnn_layers` instead
(28x28x1 -> 3x3 conv 32, 2x2 max pool, 3x3 conv 64, 2x2 max pool, Dense 128,
Dense 10; the network of the transfer and multi-task benchmarks) against the
same layers in PyTorch (channels first, as PyTorch's convolutions want), with
no scikit-learn column (it has no CNN); its files are ``train_cnn.*``.

* tinynet, ``step``: the training step loop (``zero_grad``, forward, loss,
  backward without the input gradient, ``optimizer.step``) -- what the
  PyTorch loop below does;
* tinynet, ``fit``: ``model.fit(epochs=1)``: the same plus shuffling,
  metrics, callbacks and progress bookkeeping;
* PyTorch: the usual loop with ``torch.set_num_threads(2)``, as it comes and,
  in a process of its own, with ``torch.set_flush_denormal(True)`` set before
  PyTorch starts its threads (they inherit it; set later, it reaches only the
  calling thread, and the 2-thread run still slowed down epoch by epoch):
  with random labels many ReLU units die, their Adam moments decay into
  the subnormal range after ~800 steps, and on Intel CPUs arithmetic on
  subnormals is many times slower (tinynet's optimizers store subnormal
  state as zero, see ``tinynet.kernels.optim``). The ratio is taken to the
  faster of the two, so PyTorch is compared at its best;
* scikit-learn: ``MLPClassifier(solver="adam").partial_fit`` per batch.

Each framework runs in a process of its own (their thread pools slow each
other down when they share one), and the processes take turns epoch by
epoch. Data are synthetic (random pixels in [0, 1) and random labels):
throughput does not depend on the values. Ratios are tinynet ``step`` over
each peer.

    python -m benchmarks train [--quick] [--repeats 5] [--samples 8192] [--threads 2]
                               [--model mlp|cnn]
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
import warnings

import numpy as np

from .report import benchmark_main, markdown_table, positive_int, ratio
from .threads import require_blas_limit

LAYERS = (784, 256, 128, 10)
MODELS = {"mlp": "MLP 784-256-128-10",
          "cnn": "CNN 28x28 conv32-pool-conv64-pool-128-10"}


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, LAYERS[0]), dtype=np.float32), rng.integers(0, LAYERS[-1], n)


def _batches(n, batch_size):
    return [slice(i, i + batch_size) for i in range(0, n - batch_size + 1, batch_size)]


# ------------------------------------------------------------------ tinynet
def tinynet_runner(x, y, batch_size, model="mlp"):
    import tinynet as tn
    if model == "cnn":
        from tinynet.recipes import cnn_layers
        model = tn.Sequential(cnn_layers(LAYERS[0]) + [tn.layers.Dense(LAYERS[3])])
        model.build((LAYERS[0],))
    else:
        model = tn.Sequential([tn.layers.Dense(LAYERS[1], activation="relu",
                                               input_dim=LAYERS[0]),
                               tn.layers.Dense(LAYERS[2], activation="relu"),
                               tn.layers.Dense(LAYERS[3])])
    model.compile(optimizer=tn.optim.Adam(lr=1e-3), loss=tn.losses.CrossEntropy())
    opt, loss = model.optimizer, model.loss
    if hasattr(model, "_bind_optimizer"):
        model._bind_optimizer()
    batches = _batches(len(x), batch_size)

    def epoch():
        for sl in batches:
            xb, yb = x[sl], y[sl]
            opt.zero_grad()
            pred = model.forward(xb, training=True)
            loss.forward(pred, yb)
            model.backward(loss.backward(), need_dx=False)
            opt.step()

    def fit_epoch():
        model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0, shuffle=True)

    return epoch, fit_epoch


# ------------------------------------------------------------------ PyTorch
def torch_runner(x, y, batch_size, threads=2, flush_denormal=False, model="mlp"):
    import torch
    nn = torch.nn
    if flush_denormal:  # before the intra-op threads exist, so that they inherit it
        torch.set_flush_denormal(True)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if model == "cnn":
        model = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 32, 3), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(),
                              nn.Linear(128, LAYERS[3]))
    else:
        model = nn.Sequential(nn.Linear(LAYERS[0], LAYERS[1]), nn.ReLU(),
                              nn.Linear(LAYERS[1], LAYERS[2]), nn.ReLU(),
                              nn.Linear(LAYERS[2], LAYERS[3]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    batches = _batches(len(x), batch_size)

    def epoch():
        for sl in batches:
            opt.zero_grad()
            loss = loss_fn(model(xt[sl]), yt[sl])
            loss.backward()
            opt.step()
    return epoch


# ------------------------------------------------------------- scikit-learn
def sklearn_runner(x, y, batch_size):
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=LAYERS[1:-1], solver="adam", batch_size=batch_size,
                        learning_rate_init=1e-3, random_state=0)
    classes = np.arange(LAYERS[-1])
    batches = _batches(len(x), batch_size)

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for sl in batches:
                clf.partial_fit(x[sl], y[sl], classes=classes)
    return epoch


def _available(module):
    try:
        __import__(module)
        return True
    except Exception:
        return False


#: framework -> the runners it times, in the worker process of that framework
FRAMEWORKS = {"tinynet": ("tinynet_step", "tinynet_fit"), "torch": ("torch",),
              "torch_ftz": ("torch_ftz",), "sklearn": ("sklearn",)}


def _runners(framework, x, y, batch_size, threads, model="mlp"):
    if framework == "tinynet":
        return dict(zip(FRAMEWORKS["tinynet"], tinynet_runner(x, y, batch_size, model)))
    if framework in ("torch", "torch_ftz"):
        return {framework: torch_runner(x, y, batch_size, threads,
                                        flush_denormal=framework == "torch_ftz", model=model)}
    return {"sklearn": sklearn_runner(x, y, batch_size)}


def _worker(conn, framework, batch_size, n_samples, threads, model="mlp"):
    """One framework in a process of its own: build, warm up, then time one
    epoch of the runner named in each message until told to stop.

    Each framework gets its own process because their thread pools do not
    share one well: with Numba's OpenMP layer started in the same process,
    PyTorch's 2-thread training ran 3-5x slower here (two OpenMP runtimes,
    each with a thread per core).

    A failure is sent to the parent as ``("error", traceback)`` (see
    :func:`_reply`) instead of ending the process with the parent waiting."""
    import traceback
    try:
        _set_threads(threads, framework)
        x, y = _data(n_samples)
        runners = _runners(framework, x, y, batch_size, threads, model)
        for fn in runners.values():  # warm-up: compile, allocate, fill caches
            fn()
        layer = None
        if framework == "tinynet":
            from tinynet import kernels
            from tinynet.kernels import blas
            layer = (f"{kernels.threading_layer()}; tinynet GEMM engine {blas.get_gemm()}: "
                     f"{'blas' if blas.use_blas() else 'numba'}; idle pool workers sleep "
                     f"{'soon' if kernels.config.pools_wait_briefly() else 'after spinning long'}")
        conn.send(("ready", layer))
        while True:
            name = conn.recv()
            if name is None:
                return
            t0 = time.perf_counter()
            runners[name]()
            conn.send(time.perf_counter() - t0)
    except Exception:
        conn.send(("error", traceback.format_exc()))


def _reply(conn, framework):
    """The next message of ``framework``'s worker; a RuntimeError with its
    traceback when it failed, or when it died without a word (the parent has
    closed its copy of the worker's end, so a dead worker is an EOFError here,
    not a wait for ever)."""
    try:
        message = conn.recv()
    except EOFError:
        raise RuntimeError(f"the {framework} worker of the train benchmark died "
                           "without a reply") from None
    if isinstance(message, tuple) and message[0] == "error":
        raise RuntimeError(f"the {framework} worker of the train benchmark failed:\n"
                           f"{message[1]}")
    return message


@contextlib.contextmanager
def _environment(for_tinynet):
    """``os.environ`` as a spawned worker should inherit it: for tinynet's,
    OpenBLAS's short wait (its process imports NumPy before tinynet, which
    then cannot set it, see :mod:`tinynet.spinwait`); the peers' unchanged."""
    saved = dict(os.environ)
    if for_tinynet:
        from tinynet.spinwait import child_environment
        os.environ.update(child_environment())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run(batch_sizes, n_samples, repeats, threads=2, settle=0.3, log=print,
        model="mlp") -> dict:
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    peers = {"torch": _available("torch"),
             "sklearn": model == "mlp" and _available("sklearn")}  # no CNN in sklearn
    frameworks = ["tinynet"] + (["torch", "torch_ftz"] if peers["torch"] else []) + \
        (["sklearn"] if peers["sklearn"] else [])
    results, layer = {}, None
    for batch_size in batch_sizes:
        workers = {}
        try:
            # started one after another: each warms up (and tinynet measures
            # its GEMM engine) while the others are idle
            for framework in frameworks:
                parent, child = context.Pipe()
                proc = context.Process(target=_worker, daemon=True,
                                       args=(child, framework, batch_size, n_samples, threads,
                                             model))
                # tinynet's process starts as `import tinynet` first would set it up
                # (tinynet.spinwait); the peers' with the environment as it is
                with _environment(framework == "tinynet"):
                    proc.start()
                child.close()  # the worker's end is the worker's: its death is an EOF
                workers[framework] = (proc, parent)
                _, reported = _reply(parent, framework)
                layer = reported or layer
            owner = {name: framework for framework in frameworks
                     for name in FRAMEWORKS[framework]}
            names = list(owner)
            times = {name: [] for name in names}
            for rep in range(repeats):
                # interleaved, so load changes hit every framework alike; the
                # order rotates, and a pause lets the previous process's
                # spinning threads (OpenBLAS, OpenMP) go to sleep first
                for name in names[rep % len(names):] + names[:rep % len(names)]:
                    time.sleep(settle)
                    conn = workers[owner[name]][1]
                    conn.send(name)
                    times[name].append(_reply(conn, owner[name]))
        finally:
            for proc, conn in workers.values():
                try:
                    conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
                proc.join(timeout=30)
        row = throughputs(times, n_samples, batch_size)
        row["times"] = times
        results[batch_size] = row
        log(f"batch {batch_size}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in row.items()
                                               if k != "times"))
    return {"model": model, "samples_per_epoch": n_samples, "repeats": repeats, "peers": peers,
            "batches": results, "numba_threading_layer": layer,
            "processes": "one per framework", "settle_seconds": settle}


def throughputs(times: dict, n_samples: int, batch_size: int) -> dict:
    """Samples per second of each runner: the samples one epoch of it trains
    over the median of its epoch times. The step loops train the full batches
    (``n_samples // batch_size * batch_size`` samples); ``fit`` trains every
    sample, the last partial batch too."""
    used = len(_batches(n_samples, batch_size)) * batch_size
    return {name: (n_samples if name == "tinynet_fit" else used) / statistics.median(ts)
            for name, ts in times.items()}


def _file_name(args) -> str:
    """``train``, plus ``_cnn`` for the CNN and ``_<n>thread`` off the default 2
    threads (``train_1thread.*``), so that no setting overwrites another's table."""
    return ("train" + ("_cnn" if args.model == "cnn" else "")
            + ("" if args.threads == 2 else f"_{args.threads}thread"))


def best_torch(row):
    """PyTorch's faster configuration in a result row (None without torch)."""
    values = [row[k] for k in ("torch", "torch_ftz") if k in row]
    return max(values) if values else None


def torch_best_epoch(row, samples):
    """PyTorch's fastest single epoch (either setting), in samples/s: what it
    reaches before its Adam moments decay into subnormals."""
    times = [t for k in ("torch", "torch_ftz") for t in row.get("times", {}).get(k, [])]
    return samples / min(times) if times else None


def _threads_each(n: int) -> str:
    return f"{n} thread each" if n == 1 else f"{n} threads each"


def to_markdown(res) -> str:
    rows = []
    for batch_size, row in res["batches"].items():
        step = row["tinynet_step"]
        used = (res["samples_per_epoch"] // int(batch_size)) * int(batch_size)
        best_epoch = torch_best_epoch(row, used)
        rows.append([batch_size, round(step), round(row["tinynet_fit"]),
                     round(row["torch"]) if "torch" in row else "skipped",
                     round(row["torch_ftz"]) if "torch_ftz" in row else "skipped",
                     round(best_epoch) if best_epoch else "skipped",
                     round(row["sklearn"]) if "sklearn" in row else "skipped",
                     _ratio_cell(step, best_torch(row)), _ratio_cell(step, best_epoch),
                     _ratio_cell(step, row.get("sklearn"))])
    model = res.get("model", "mlp")
    no_sklearn = " scikit-learn has no CNN." if model == "cnn" else ""
    head = (f"## Training throughput, {MODELS[model]} (ReLU, softmax CE, Adam, float32)\n\n"
            f"Samples/s, median of {res['repeats']} epochs of {res['samples_per_epoch']} "
            f"samples, frameworks interleaved (rotating order, {_pause(res)}) in one run, "
            f"each framework in a process of its own, "
            f"{_threads_each(res.get('threads', 2))} (Numba threading layer: "
            f"{res.get('numba_threading_layer')}; PyTorch; OpenBLAS). PyTorch is timed "
            "as it comes and with `torch.set_flush_denormal(True)` (its own process); "
            "'best PyTorch' is the faster median of the two, 'PyTorch best epoch' its "
            f"fastest single epoch (before subnormals slow it).{no_sklearn}\n\n")
    return head + markdown_table(
        ["batch", "tinynet step loop", "tinynet fit", "PyTorch", "PyTorch, flush denormals",
         "PyTorch best epoch", "scikit-learn", "tinynet / best PyTorch",
         "tinynet / PyTorch best epoch", "tinynet / sklearn"], rows)


def _pause(res) -> str:
    settle = res.get("settle_seconds", 0.3)  # files from before it was recorded used 0.3 s
    return f"{settle:g} s pause before each timed epoch" if settle else "no pause"


def _ratio_cell(a, b):
    r = ratio(a, b)
    return "-" if r is None else f"{r:.2f}x"


def _figure(res):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [("tinynet_step", "tinynet"), ("torch", "PyTorch (faster setting)"),
             ("sklearn", "scikit-learn")]
    batch_sizes = list(res["batches"])
    width = 0.8 / len(names)
    for i, (key, label) in enumerate(names):
        values = [(best_torch(res["batches"][b]) if key == "torch" else
                   res["batches"][b].get(key)) or 0 for b in batch_sizes]
        ax.bar([j + i * width for j in range(len(batch_sizes))], values, width, label=label)
    ax.set_xticks([j + width for j in range(len(batch_sizes))], [str(b) for b in batch_sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("samples / s")
    ax.set_title(f"{MODELS[res.get('model', 'mlp')]} training throughput")
    ax.legend()
    fig.tight_layout()
    return fig


def _set_threads(n, framework):
    """Use n threads in the framework's own pool: Numba (and OpenBLAS) for
    tinynet, OpenBLAS for scikit-learn; PyTorch's runner calls
    ``torch.set_num_threads``. Numba's pool is never started in the other
    workers: its OpenMP runtime beside PyTorch's slowed PyTorch 3-5x."""
    if framework == "tinynet":
        from tinynet import kernels
        kernels.set_num_threads(n)
    if framework in ("tinynet", "sklearn"):
        try:
            import threadpoolctl
            threadpoolctl.threadpool_limits(n, user_api="blas")
        except ImportError:
            pass
    return n


def main(argv=None) -> int:
    def configure(parser):
        parser.add_argument("--repeats", type=positive_int, default=5)
        parser.add_argument("--samples", type=positive_int, default=8192)
        parser.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[32, 128, 512])
        parser.add_argument("--threads", type=positive_int, default=2,
                            help="threads for every framework (default 2, as the issue asks)")
        parser.add_argument("--model", choices=list(MODELS), default="mlp",
                            help="the MLP (default) or the small CNN (files train_cnn.*)")

    def check(args, parser):
        require_blas_limit(args.threads, parser)
        if not args.quick and args.samples < max(args.batch_sizes):
            parser.error(f"--samples expected at least the largest batch size "
                         f"({max(args.batch_sizes)}) for one full batch, received "
                         f"{args.samples}")

    def run_args(args):
        if args.quick:
            args.repeats, args.samples, args.batch_sizes = 1, 256, [32, 128]
        res = run(args.batch_sizes, args.samples, args.repeats, threads=args.threads,
                  settle=0.0 if args.quick else 0.3, model=args.model)
        res["threads"] = args.threads
        return res
    return benchmark_main("train", __doc__, argv, run_args, to_markdown, configure=configure,
                          figure=_figure, file_name=_file_name, check=check)
