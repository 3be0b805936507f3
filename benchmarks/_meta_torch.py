"""The PyTorch peer of ``benchmarks/meta.py``: second-order MAML on an MLP.

Two implementations, both with the exact second-order meta-gradient:

- ``loop``: the usual one, a Python loop over the tasks of a meta-batch with
  ``torch.autograd.grad(create_graph=True)`` for the inner step (the issue's
  reference, ~540 tasks/s measured on this machine);
- ``vmap``: ``torch.func.grad`` of the inner loss inside ``torch.func.vmap``
  over the tasks, i.e. PyTorch's own batched-over-tasks route.

Weights use tinynet's layout (``W`` of shape (in, out), then ``b``), so the
same flat vector can be fed to both libraries.
"""

from __future__ import annotations


def available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _forward(params, x):
    import torch
    n = len(params) // 2
    for i in range(n):
        x = x @ params[2 * i] + params[2 * i + 1]
        if i < n - 1:
            x = torch.relu(x)
    return x


def _mse(pred, target):
    return ((pred - target) ** 2).mean()


def make_params(weights, dtype="float32"):
    """Leaf tensors (requires_grad) from a list of numpy arrays [W1, b1, ...]."""
    import torch
    return [torch.tensor(w, dtype=getattr(torch, dtype), requires_grad=True) for w in weights]


def _tensors(batch, dtype):
    import torch
    t = getattr(torch, dtype)
    return [torch.as_tensor(a, dtype=t) for a in (batch.support_x, batch.support_y,
                                                  batch.query_x, batch.query_y)]


def loop_meta_loss(params, data, inner_lr, steps=1):
    """Mean post-adaptation query loss, a loop over tasks (create_graph=True)."""
    import torch
    sx, sy, qx, qy = data
    total = 0.0
    for t in range(sx.shape[0]):
        fast = params
        for _ in range(steps):
            grads = torch.autograd.grad(_mse(_forward(fast, sx[t]), sy[t]), fast,
                                        create_graph=True)
            fast = [p - inner_lr * g for p, g in zip(fast, grads)]
        total = total + _mse(_forward(fast, qx[t]), qy[t])
    return total / sx.shape[0]


def _vmap_meta_loss_fn(inner_lr):
    import torch
    from torch.func import grad, vmap

    def inner(params, x, y):
        return _mse(_forward(params, x), y)

    def task(params, sx, sy, qx, qy):
        g = grad(inner)(params, sx, sy)
        return inner([p - inner_lr * gi for p, gi in zip(params, g)], qx, qy)

    batched = vmap(task, in_dims=(None, 0, 0, 0, 0))

    def meta_loss(params, sx, sy, qx, qy):
        return batched(params, sx, sy, qx, qy).mean()
    return meta_loss, torch.func.grad(meta_loss)


def meta_step(kind, weights, batch, inner_lr=0.01, meta_lr=1e-3, dtype="float32"):
    """A closure doing one meta-training iteration (meta-gradient + Adam step)
    on a fixed meta-batch, with ``kind`` "loop" or "vmap"."""
    import torch
    params = make_params(weights, dtype)
    opt = torch.optim.Adam(params, lr=meta_lr)
    data = _tensors(batch, dtype)
    if kind == "loop":
        def step():
            opt.zero_grad()
            loop_meta_loss(params, data, inner_lr).backward()
            opt.step()
    else:
        _, meta_grad = _vmap_meta_loss_fn(inner_lr)

        def step():
            grads = meta_grad([p.detach() for p in params], *data)
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
    return step


def meta_gradient(weights, batch, inner_lr, steps=1):
    """The float64 meta-gradient (list of numpy arrays) by the loop method."""
    import torch
    params = make_params(weights, "float64")
    grads = torch.autograd.grad(loop_meta_loss(params, _tensors(batch, "float64"), inner_lr,
                                               steps), params)
    return [g.numpy() for g in grads]
