"""Every kernel against its NumPy reference; GEMM against NumPy's ``@`` (OpenBLAS).

For each kernel: median time per call of the Numba kernel and of its NumPy
reference on the same inputs, and the speed-up (reference time / kernel
time); for the matrix products also GFLOP/s. The GEMM shapes are the nine
products of the 784-256 layer of the benchmark MLP (x @ W, x.T @ g, g @ W.T
at batch 32, 128 and 512) plus a 1024 x 1024 square; the element-wise and
optimizer kernels run at the MLP's sizes (batch 512, 235,146 parameters).

The products and the fused dense kernels run on tinynet's own Numba GEMM
(``TINYNET_GEMM=numba``) here, whatever engine training would pick: this
table measures our kernels against OpenBLAS, not OpenBLAS against itself.

    python -m benchmarks kernels [--quick] [--repeats 7]
"""

from __future__ import annotations

import math

import numpy as np

from .report import benchmark_main, markdown_table, measure, positive_int
from .threads import require_blas_limit


def _gemm_cases(batch_sizes, square):
    rng = np.random.default_rng(0)
    from tinynet.kernels import gemm
    cases = []
    n_in, n_out = 784, 256
    for b in batch_sizes:
        x = rng.standard_normal((b, n_in), dtype=np.float32)
        w = rng.standard_normal((n_in, n_out), dtype=np.float32)
        g = rng.standard_normal((b, n_out), dtype=np.float32)
        y, dw, dx = (np.empty(s, np.float32) for s in ((b, n_out), (n_in, n_out), (b, n_in)))
        scratch = np.empty((n_out, n_in), np.float32)
        flops = 2.0 * b * n_in * n_out
        cases += [
            (f"x @ W ({b}x{n_in} @ {n_in}x{n_out})", flops,
             lambda x=x, w=w, y=y: gemm.matmul(x, w, out=y),
             lambda x=x, w=w, y=y: np.matmul(x, w, out=y)),
            (f"x.T @ g ({n_in}x{b} @ {b}x{n_out})", flops,
             lambda x=x, g=g, dw=dw: gemm.matmul_tn(x, g, out=dw),
             lambda x=x, g=g, dw=dw: np.matmul(x.T, g, out=dw)),
            (f"g @ W.T ({b}x{n_out} @ {n_out}x{n_in})", flops,
             lambda g=g, w=w, dx=dx, s=scratch: gemm.matmul_nt(g, w, out=dx, scratch=s),
             lambda g=g, w=w, dx=dx: np.matmul(g, w.T, out=dx)),
        ]
    a = rng.standard_normal((square, square), dtype=np.float32)
    bm = rng.standard_normal((square, square), dtype=np.float32)
    c = np.empty((square, square), np.float32)
    cases.append((f"square {square}x{square}", 2.0 * square ** 3,
                  lambda: gemm.matmul(a, bm, out=c), lambda: np.matmul(a, bm, out=c)))
    return cases


def _other_cases(batch, n_params):
    from tinynet.kernels import activations as act
    from tinynet.kernels import dense, dropout, im2col, losses, norms, optim, pooling
    rng = np.random.default_rng(1)
    f32 = np.float32
    z = rng.standard_normal((batch, 256), dtype=f32)
    dy = rng.standard_normal((batch, 256), dtype=f32)
    x = rng.standard_normal((batch, 784), dtype=f32)
    w = rng.standard_normal((784, 256), dtype=f32) * 0.05
    b = np.zeros(256, f32)
    cases = []
    for name in ("relu", "gelu", "sigmoid", "tanh"):
        code = act.ACT_CODES[name]
        y = act.act_forward_ref(z, code)
        out = np.empty_like(z)
        cases.append((f"{name} forward ({batch}x256)", None,
                      lambda c=code: act.act_forward(z, c, out=out),
                      lambda c=code: act.act_forward_ref(z, c)))
        cases.append((f"{name} backward ({batch}x256)", None,
                      lambda c=code, y=y: act.act_backward(dy, y, z, c, out=out),
                      lambda c=code, y=y: act.act_backward_ref(dy, y, z, c)))
    yr = act.act_forward_ref(z, act.RELU)
    db = np.zeros(256, f32)
    cases.append((f"relu grad + bias grad ({batch}x256)", None,
                  lambda: dense.act_grad_bias(dy, yr, None, act.RELU, 0.0, None, db),
                  lambda: dense.act_grad_bias_ref(dy, yr, None, act.RELU, 0.0, None, db)))
    cases.append((f"dense forward relu ({batch}x784 -> 256)", 2.0 * batch * 784 * 256,
                  lambda: dense.dense_forward(x, w, b, act.RELU),
                  lambda: dense.dense_forward_ref(x, w, b, act.RELU)))
    dw = np.zeros_like(w)
    cases.append((f"dense backward relu ({batch}x784 -> 256)", 4.0 * batch * 784 * 256,
                  lambda: dense.dense_backward(x, w, dy, yr, None, act.RELU, 0.0, dw, db),
                  lambda: dense.dense_backward_ref(x, w, dy, yr, None, act.RELU, 0.0, dw, db)))
    logits = rng.standard_normal((batch, 10), dtype=f32)
    labels = rng.integers(0, 10, batch)
    cases.append((f"softmax cross-entropy ({batch}x10)", None,
                  lambda: losses.softmax_cross_entropy(logits, labels, 0.0, 1 / batch),
                  lambda: losses.softmax_cross_entropy_ref(logits, labels, 0.0, 1 / batch)))
    u = rng.random((batch, 256), dtype=f32)
    cases.append((f"dropout forward ({batch}x256)", None,
                  lambda: dropout.dropout_forward(z, u, 0.5),
                  lambda: dropout.dropout_forward_ref(z, u, 0.5)))
    images = rng.standard_normal((batch // 8, 26, 26, 32), dtype=f32)  # the CNN's first pool
    pooled, arg = pooling.maxpool_forward_ref(images, (2, 2), (2, 2))
    shape = f"{batch // 8}x26x26x32, 2x2"
    cases.append((f"max pool forward ({shape})", None,
                  lambda: pooling.maxpool_forward(images, (2, 2), (2, 2)),
                  lambda: pooling.maxpool_forward_ref(images, (2, 2), (2, 2))))
    cases.append((f"max pool backward ({shape})", None,
                  lambda: pooling.maxpool_backward(pooled, arg, images.shape, (2, 2), (2, 2)),
                  lambda: pooling.maxpool_backward_ref(pooled, arg, images.shape, (2, 2),
                                                       (2, 2))))
    dcols = rng.standard_normal((batch // 8 * 11 * 11, 3 * 3 * 32), dtype=f32)  # the CNN's conv2
    xp_shape = (batch // 8, 13, 13, 32)
    cases.append((f"col2im ({batch // 8}x11x11 patches of 3x3x32)", None,
                  lambda: im2col.col2im(dcols, xp_shape, (3, 3), (1, 1)),
                  lambda: im2col.col2im_ref(dcols, xp_shape, (3, 3), (1, 1))))
    gamma, beta = np.ones(256, f32), np.zeros(256, f32)
    for kind in ("batchnorm", "layernorm"):
        fwd, fwd_ref = getattr(norms, f"{kind}_forward"), getattr(norms, f"{kind}_forward_ref")
        bwd, bwd_ref = getattr(norms, f"{kind}_backward"), getattr(norms, f"{kind}_backward_ref")
        _, x_hat, inv_std, *_ = fwd_ref(z, gamma, beta, 1e-3)
        dg, dbt = np.zeros(256, f32), np.zeros(256, f32)
        cases.append((f"{kind} forward ({batch}x256)", None,
                      lambda f=fwd: f(z, gamma, beta, 1e-3),
                      lambda f=fwd_ref: f(z, gamma, beta, 1e-3)))
        cases.append((f"{kind} backward ({batch}x256)", None,
                      lambda f=bwd, h=x_hat, s=inv_std: f(dy, h, s, gamma, dg, dbt),
                      lambda f=bwd_ref, h=x_hat, s=inv_std: f(dy, h, s, gamma, dg, dbt)))
    p = rng.standard_normal(n_params, dtype=f32)
    g = rng.standard_normal(n_params, dtype=f32) * 1e-3
    s1, s2, s3 = (np.abs(rng.standard_normal(n_params, dtype=f32)) for _ in range(3))
    updates = {
        "SGD momentum": ("sgd", (p, g, s1), dict(lr=1e-3, momentum=0.9, dampening=0.0,
                                                nesterov=False, weight_decay=0.0,
                                                first_step=False)),
        "Adam": ("adam", (p, g, s1, s2, s3), dict(step=10, lr=1e-6, beta1=0.9, beta2=0.999,
                                                  eps=1e-8, weight_decay=0.0, amsgrad=False,
                                                  decoupled=False)),
        "AdamW": ("adam", (p, g, s1, s2, s3), dict(step=10, lr=1e-6, beta1=0.9, beta2=0.999,
                                                   eps=1e-8, weight_decay=1e-2, amsgrad=False,
                                                   decoupled=True)),
        "RMSprop": ("rmsprop", (p, g, s1, s2, s3), dict(lr=1e-6, alpha=0.99, eps=1e-8,
                                                        weight_decay=0.0, momentum=0.0,
                                                        centered=False)),
        "Adagrad": ("adagrad", (p, g, s1), dict(step=10, lr=1e-6, lr_decay=0.0, eps=1e-10,
                                                weight_decay=0.0)),
    }
    for label, (name, args, kw) in updates.items():
        cases.append((f"{label} update ({n_params:,} params)", None,
                      lambda f=getattr(optim, name), a=args, k=kw: f(*a, **k),
                      lambda f=getattr(optim, f"{name}_ref"), a=args, k=kw: f(*a, **k)))
    return cases


def _time_case(fast, ref, repeats, min_time):
    # each side timed in its own block with warm-up calls, so the other
    # side's thread pool has gone idle before timing starts
    t_fast = measure(fast, repeats=repeats, warmup=3, min_repeat_time=min_time)
    t_ref = measure(ref, repeats=repeats, warmup=3, min_repeat_time=min_time)
    return t_fast, t_ref


def _blas_threads():
    try:
        import threadpoolctl
        return [p["num_threads"] for p in threadpoolctl.threadpool_info()
                if p.get("internal_api") == "openblas"]
    except ImportError:
        return None


def run(quick=False, repeats=7, log=print) -> dict:
    from tinynet import kernels
    batch_sizes, square, batch, n_params = ((32, 128), 256, 128, 20000) if quick else \
        ((32, 128, 512), 1024, 512, 235146)
    rows = []
    for group, cases in (("gemm", _gemm_cases(batch_sizes, square)),
                         ("fused", _other_cases(batch, n_params))):
        for name, flops, fast, ref in cases:
            m_fast, m_ref = _time_case(fast, ref, repeats, 0.001 if quick else 0.02)
            t_fast, t_ref = m_fast["median"], m_ref["median"]
            row = {"group": group, "kernel": name, "numba_us": t_fast * 1e6,
                   "numpy_us": t_ref * 1e6, "speedup": t_ref / t_fast,
                   "numba_best_us": m_fast["min"] * 1e6, "numpy_best_us": m_ref["min"] * 1e6,
                   "speedup_best": m_ref["min"] / m_fast["min"]}
            if flops:
                row["numba_gflops"] = flops / t_fast / 1e9
                row["numpy_gflops"] = flops / t_ref / 1e9
            rows.append(row)
            log(f"{name:<48} numba {row['numba_us']:9.1f} us  numpy {row['numpy_us']:9.1f} us"
                f"  x{row['speedup']:.2f}")
    summary = {}
    for suffix in ("", "_best"):
        dense = [r["speedup" + suffix] for r in rows
                 if r["group"] == "gemm" and "square" not in r["kernel"]]
        summary["gemm_geomean_vs_openblas" + suffix] = math.exp(
            sum(map(math.log, dense)) / len(dense))
        summary["gemm_square_vs_openblas" + suffix] = [
            r["speedup" + suffix] for r in rows if "square" in r["kernel"]][0]
        summary["fused_min_speedup" + suffix] = min(r["speedup" + suffix] for r in rows
                                                    if r["group"] == "fused")
    summary.update({
        "threading_layer": kernels.threading_layer(),
        "num_threads": kernels.num_threads(),
        "openblas_threads": _blas_threads(),
    })
    return {"rows": rows, "summary": summary, "quick": quick, "repeats": repeats}


def to_markdown(res) -> str:
    s = res["summary"]
    lines = ["## Kernels vs NumPy references (float32)", "",
             f"Median of {res['repeats']} repeats; speed-up = NumPy time / Numba time "
             f"(for GEMM: tinynet's Numba GEMM vs NumPy's `@`, OpenBLAS; training runs "
             f"the products on whichever is faster). Numba threading layer: "
             f"{s['threading_layer']}, {s['num_threads']} thread(s); OpenBLAS threads "
             f"{s.get('openblas_threads')}.", ""]
    table = []
    for r in res["rows"]:
        gf = (f"{r['numba_gflops']:.1f} / {r['numpy_gflops']:.1f}"
              if "numba_gflops" in r else "")
        table.append([r["kernel"], f"{r['numba_us']:.1f}", f"{r['numpy_us']:.1f}",
                      f"{r['speedup']:.2f}x", f"{r['speedup_best']:.2f}x", gf])
    lines.append(markdown_table(["kernel", "Numba µs", "NumPy µs", "speed-up",
                                 "speed-up (best of repeats)", "GFLOP/s Numba / NumPy"], table))
    lines += ["", f"GEMM geometric mean vs OpenBLAS over the dense-layer shapes: "
                  f"{s['gemm_geomean_vs_openblas']:.2f}x (best of repeats "
                  f"{s['gemm_geomean_vs_openblas_best']:.2f}x); square: "
                  f"{s['gemm_square_vs_openblas']:.2f}x ({s['gemm_square_vs_openblas_best']:.2f}x)."
                  f" Smallest fused-kernel speed-up: {s['fused_min_speedup']:.2f}x "
                  f"({s['fused_min_speedup_best']:.2f}x).",
              "", "Medians are what a user sees on this shared machine; the best of the "
                  "repeats approximates an idle one (a parallel kernel waits for every "
                  "thread, so one descheduled worker stretches a call by a time slice)."]
    return "\n".join(lines)


def _file_name(args) -> str:
    """``kernels``, or ``kernels_<n>thread`` for a run on a set number of threads
    (the README's table is ``kernels_1thread.md``), so that neither overwrites
    the other."""
    return "kernels" if not args.threads else f"kernels_{args.threads}thread"


def _fix_threads(n):
    """n threads for Numba and OpenBLAS alike, adaptive threads off, so both
    sides run with the thread count the table states."""
    from tinynet.kernels import config
    config.ADAPTIVE_THREADS = False
    config.set_num_threads(n)
    try:
        import threadpoolctl
        threadpoolctl.threadpool_limits(n)
    except ImportError:
        pass


def main(argv=None) -> int:
    def configure(parser):
        parser.add_argument("--repeats", type=positive_int, default=7)
        parser.add_argument("--threads", type=positive_int, default=None,
                            help="threads for Numba and OpenBLAS alike (adaptive threads off); "
                                 "default: as configured")

    def check(args, parser):
        if args.threads:
            require_blas_limit(args.threads, parser)

    def run_args(args):
        from tinynet.kernels import blas
        blas.set_gemm("numba")  # this table is about tinynet's own GEMM (see the docstring)
        if args.threads:
            _fix_threads(args.threads)
        res = run(quick=args.quick, repeats=2 if args.quick else args.repeats)
        res["threads_fixed"] = args.threads
        return res
    return benchmark_main("kernels", __doc__, argv, run_args, to_markdown, configure=configure,
                          file_name=_file_name, check=check)
