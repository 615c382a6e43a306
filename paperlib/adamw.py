"""Decoupled weight decay: Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019).

Explained, derived and checked in the Adam chapter, ``chapters/optimization/adam.ipynb``
(``prop-adamw-l2``): under Adam an L2 penalty is not weight decay, because Adam divides the
penalty's gradient by sqrt(v_hat) like the rest of the gradient.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from paperlib._checks import nonnegative
from paperlib.adam import Adam, _evaluate


class AdamW(Adam):
    """Adam with weight decay, decoupled (Loshchilov & Hutter, ICLR 2019) or as an L2 penalty.

    Implements ``prop-adamw-l2``. ``decoupled=True`` (AdamW, as ``torch.optim.AdamW``) shrinks
    every weight by the factor 1 - lr * weight_decay before Adam's step, whatever its gradient
    history. ``decoupled=False`` adds weight_decay * theta to the gradient (the gradient of
    (weight_decay / 2) ||theta||^2), as ``torch.optim.Adam(weight_decay=...)`` does; Adam then
    divides that term by sqrt(v_hat_t) + eps like the rest of the gradient. The paper's
    lambda is lr * weight_decay here: PyTorch's convention, which ties the decay to the step size.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, decoupled: bool = True, amsgrad: bool = False):
        weight_decay = nonnegative("weight_decay", weight_decay)
        super().__init__(params, lr=lr, betas=betas, eps=eps, amsgrad=amsgrad)
        for group in self.param_groups:
            group.setdefault("weight_decay", weight_decay)
            group.setdefault("decoupled", bool(decoupled))
        self.defaults.update(weight_decay=weight_decay, decoupled=bool(decoupled))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate(closure)
        penalised = []  # (theta, its own gradient g_t), restored after Adam's step
        for group in self.param_groups:
            alpha, lam = group["lr"], group["weight_decay"]
            for theta in group["params"]:
                if theta.grad is None or lam == 0:
                    continue
                if group["decoupled"]:
                    # theta_{t-1} <- (1 - alpha * lambda) * theta_{t-1}, outside Adam's normalisation
                    theta.mul_(1 - alpha * lam)
                else:
                    penalised.append((theta, theta.grad))
                    # g_t <- g_t + lambda * theta_{t-1}, the gradient of f_t + (lambda / 2) ||theta||^2
                    theta.grad = theta.grad.add(theta, alpha=lam)
        try:
            super().step()
        finally:
            for theta, g in penalised:
                theta.grad = g
        return loss
