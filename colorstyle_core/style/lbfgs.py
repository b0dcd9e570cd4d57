"""L-BFGS that optimises each image of a batch independently, in one batched pass.

``torch.optim.LBFGS`` treats all parameters as one vector: with a batch of images its
curvature estimate, step size and stopping tests mix the images, so image 1's result
depends on what else is in the batch. Here every image keeps its own history,
step and stopping state (vectorised over the batch dimension), while the expensive
forward/backward pass stays batched. For one image it takes exactly the steps of
``torch.optim.LBFGS(lr, max_iter=steps, max_eval=2 * steps, history_size)`` (no
line search) in a single ``step()`` call; torch's default ``max_eval`` of
``steps * 5 // 4`` would drop the last update when ``steps`` is 2. The direction
comes from the two-loop recursion (Nocedal & Wright, Numerical Optimization, Alg. 7.4).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def _evaluate(f: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = f(x)
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad.reshape(x.shape[0], -1)


def lbfgs_minimize(
    f: Callable[[Tensor], Tensor],
    x0: Tensor,
    steps: int,
    *,
    lr: float = 1.0,
    history_size: int = 20,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
) -> tuple[Tensor, int]:
    """Minimise ``f`` separately for each batch element.

    Args:
        f: ``(N, ...) -> (N,)`` per-element losses; element n's loss may depend only
            on ``x[n]`` (true for the per-image style losses).
        x0: ``(N, ...)`` float starting point (not modified).
        steps: maximum number of updates; ``f`` is evaluated ``steps`` times at most
            (before each update, as torch's L-BFGS does without line search).
        lr: step length after the first iteration (the first is ``min(1, 1/|g|_1) * lr``).
        history_size: curvature pairs kept per element (memory: ``2 * history_size``
            copies of ``x``).
        tolerance_grad, tolerance_change: per-element stopping tests, as in torch.
    Returns:
        ``(x, evaluations)``: the optimised ``(N, ...)`` tensor and how many times ``f`` ran.
        Elements that stop early keep their value while the others continue.
    """
    n = x0.shape[0]
    x = x0.detach().clone()
    if steps <= 0:
        return x, 0
    loss, g = _evaluate(f, x)
    evaluations = 1
    active = g.abs().amax(dim=1) > tolerance_grad
    dirs: list[Tensor] = []  # y_i = g_{i+1} - g_i, per element (N, D)
    stps: list[Tensor] = []  # s_i = x_{i+1} - x_i
    rho: list[Tensor] = []  # 1 / (y_i . s_i), 0 where an element skipped this pair
    h_diag = torch.ones(n, dtype=x.dtype, device=x.device)
    d = -g
    t = torch.zeros(n, dtype=x.dtype, device=x.device)
    prev_g = g
    for it in range(1, steps + 1):
        if not bool(active.any()):
            break
        if it > 1:
            y = g - prev_g
            s = d * t[:, None]
            ys = (y * s).sum(dim=1)
            take = active & (ys > 1e-10)
            if bool(take.any()):
                if len(dirs) == history_size:
                    dirs.pop(0), stps.pop(0), rho.pop(0)
                dirs.append(y)
                stps.append(s)
                rho.append(torch.where(take, 1.0 / ys.where(take, torch.ones_like(ys)), torch.zeros_like(ys)))
                yy = (y * y).sum(dim=1)
                h_diag = torch.where(take, ys / yy.where(take, torch.ones_like(yy)), h_diag)
            q = -g
            alphas = []
            for s_i, y_i, r_i in zip(reversed(stps), reversed(dirs), reversed(rho)):
                a_i = (s_i * q).sum(dim=1) * r_i
                q = q - a_i[:, None] * y_i
                alphas.append(a_i)
            r = q * h_diag[:, None]
            for s_i, y_i, r_i, a_i in zip(stps, dirs, rho, reversed(alphas)):
                b_i = (y_i * r).sum(dim=1) * r_i
                r = r + (a_i - b_i)[:, None] * s_i
            d = torch.where(active[:, None], r, d)
        prev_g = g
        prev_loss = loss
        if it == 1:
            t = torch.clamp(1.0 / g.abs().sum(dim=1), max=1.0) * lr
        else:
            t = torch.full_like(t, lr)
        gtd = (g * d).sum(dim=1)
        active = active & (gtd <= -tolerance_change)
        step = torch.where(active, t, torch.zeros_like(t))
        x = x + (step[:, None] * d).view_as(x)
        if it == steps or not bool(active.any()):
            break
        new_loss, new_g = _evaluate(f, x)
        evaluations += 1
        loss = torch.where(active, new_loss, loss)
        g = torch.where(active[:, None], new_g, g)
        stop = (
            (g.abs().amax(dim=1) <= tolerance_grad)
            | ((d * t[:, None]).abs().amax(dim=1) <= tolerance_change)
            | ((loss - prev_loss).abs() < tolerance_change)
        )
        active = active & ~stop
    return x, evaluations
