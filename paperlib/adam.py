"""Adam: Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015).

Explained, derived and checked in the chapter ``chapters/optimization/adam.ipynb``. The pure
functions are the quantities the chapter derives: the bias-correction factors, the faster form's
step size ``alpha_t`` and ``eps_hat``, the paper's bound on the effective step (section 2.1), and the
online problem of Reddi et al. (ICLR 2018) on which Adam fails to converge. ``Adam`` is a
``torch.optim.Optimizer`` written line by line from Algorithm 1, with AMSGrad as an option, and
``AdaMax`` is the paper's section 7.1 (``prop-adamax-limit``). ``train_logreg`` and ``train_vae`` are the chapter's two experiments, shared with the step-size
sweeps in ``bench/adam_sweep.py`` so that the chapter and the sweep train the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from paperlib import vae
from paperlib._checks import beta_pair, nonnegative, positive_int
from paperlib.train import fit, seed_everything


def bias_correction(beta: float, t: int) -> float:
    """The factor 1 - beta^t by which an average started at zero underestimates its target
    (dividing by it gives ``prop-adam-unbiased``)."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
        raise ValueError(f"beta: expected a decay rate in [0, 1), got {beta!r}")
    t = positive_int("t", t)
    # E[m_t] = (1 - beta^t) E[g] for a stationary g, with m_0 = 0
    return 1.0 - beta**t


def step_size(lr: float, betas: tuple[float, float], t: int) -> float:
    """The faster form's alpha_t = alpha * sqrt(1 - beta2^t) / (1 - beta1^t) (section 2,
    ``prop-adam-fast-form``)."""
    lr = nonnegative("lr", lr)
    beta1, beta2 = beta_pair(betas)
    # alpha_t = alpha * sqrt(1 - beta2^t) / (1 - beta1^t)
    return lr * math.sqrt(bias_correction(beta2, t)) / bias_correction(beta1, t)


def eps_hat(eps: float, beta2: float, t: int) -> float:
    """The epsilon of the faster form that gives exactly Algorithm 1's update: eps*sqrt(1-beta2^t)
    (``prop-adam-fast-form``)."""
    eps = nonnegative("eps", eps)
    # eps_hat = eps * sqrt(1 - beta2^t)
    return eps * math.sqrt(bias_correction(beta2, t))


def step_bound(lr: float, betas: tuple[float, float]) -> float:
    """The paper's bound on |Delta_t| (section 2.1, eps = 0; ``prop-adam-spike``).

    alpha * (1 - beta1) / sqrt(1 - beta2) when (1 - beta1) > sqrt(1 - beta2), else alpha. It is
    reached by a gradient that is zero until a single spike; it is not a bound over every
    gradient sequence (the chapter shows a growing gradient that exceeds it).
    """
    lr = nonnegative("lr", lr)
    beta1, beta2 = beta_pair(betas)
    if 1 - beta1 > math.sqrt(1 - beta2):
        # |Delta_t| <= alpha (1 - beta1) / sqrt(1 - beta2)
        return lr * (1 - beta1) / math.sqrt(1 - beta2)
    # |Delta_t| <= alpha
    return lr


def reddi_gradient(t: int, C: float = 3.0) -> float:
    """Gradient at step t of Reddi et al.'s online problem f_t(x) = C x if t mod 3 = 1, else -x.

    On the feasible set [-1, 1] the average loss (C - 2) x / 3 is minimised at x = -1 when C > 2.
    """
    t = positive_int("t", t)
    if isinstance(C, bool) or not isinstance(C, (int, float)) or not C > 2:
        raise ValueError(f"C: expected a number C > 2 (so that x = -1 is optimal), got {C!r}")
    # f_t(x) = C x for t mod 3 = 1, and -x otherwise
    return float(C) if t % 3 == 1 else -1.0


class Adam(torch.optim.Optimizer):
    """Algorithm 1 of Kingma & Ba, with the paper's defaults.

    ``bias_correction=False`` drops the two divisions by 1 - beta^t, so the step is
    alpha * m_t / (sqrt(v_t) + eps). ``amsgrad=True`` keeps the running maximum of v_t
    (Reddi et al., 2018) and, as ``torch.optim.Adam`` does, bias-corrects that maximum.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 amsgrad: bool = False, bias_correction: bool = True):
        lr, eps = nonnegative("lr", lr), nonnegative("eps", eps)
        betas = beta_pair(betas)
        defaults = dict(lr=lr, betas=betas, eps=eps, amsgrad=bool(amsgrad),
                        bias_correction=bool(bias_correction))
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate(closure)
        for group, theta, g, state in _gradients(self, lambda group: ("m", "v", "v_max")
                                                 if group["amsgrad"] else ("m", "v")):
            alpha, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            t, m, v = state["t"], state["m"], state["v"]
            # m_t = beta1 * m_{t-1} + (1 - beta1) * g_t
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            # v_t = beta2 * v_{t-1} + (1 - beta2) * g_t^2
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            if group["amsgrad"]:
                # v_max_t = max(v_max_{t-1}, v_t)
                torch.maximum(state["v_max"], v, out=state["v_max"])
                v = state["v_max"]
            if group["bias_correction"]:
                # m_hat_t = m_t / (1 - beta1^t),  v_hat_t = v_t / (1 - beta2^t)
                m_hat = m / (1 - beta1**t)
                v_hat = v / (1 - beta2**t)
            else:
                m_hat, v_hat = m, v
            # theta_t = theta_{t-1} - alpha * m_hat_t / (sqrt(v_hat_t) + eps)
            theta.addcdiv_(m_hat, v_hat.sqrt().add_(eps), value=-alpha)
        return loss


def _evaluate(closure: Callable[[], Tensor] | None) -> Tensor | None:
    """The loss that ``closure`` recomputes (with gradients), or None without a closure."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def _gradients(optimizer: torch.optim.Optimizer, moments: Callable[[dict], tuple[str, ...]]):
    """(group, theta, g_t, state) for each parameter with a gradient, with t advanced by one.

    A parameter's state starts at t = 0 with a zero tensor per name in ``moments(group)``
    (m_0 = 0, v_0 = 0, ...).
    """
    for group in optimizer.param_groups:
        for theta in group["params"]:
            if theta.grad is None:
                continue
            if theta.grad.is_sparse:
                raise TypeError(f"params: {type(optimizer).__name__} here does not support sparse "
                                "gradients")
            state = optimizer.state[theta]
            if not state:
                state["t"] = 0
                for name in moments(group):
                    state[name] = torch.zeros_like(theta, memory_format=torch.preserve_format)
            state["t"] += 1
            # g_t = grad_theta f_t(theta_{t-1})
            yield group, theta, theta.grad, state


def reddi_online(amsgrad: bool, steps: int = 3000, C: float = 3.0, lr: float = 0.5,
                 betas: tuple[float, float] | None = None, x0: float = 0.0) -> Tensor:
    """Run Adam (or AMSGrad) on Reddi et al.'s problem, projected onto [-1, 1]; return x_1..x_T.

    The defaults are their Theorem 1: beta1 = 0, beta2 = 1 / (1 + C^2), alpha_t = alpha / sqrt(t).
    """
    positive_int("steps", steps)
    reddi_gradient(1, C)  # validates C
    betas = (0.0, 1.0 / (1.0 + C**2)) if betas is None else betas
    x = torch.tensor([float(x0)], dtype=torch.float64, requires_grad=True)
    optimizer = Adam([x], lr=lr, betas=betas, eps=0.0, amsgrad=amsgrad)
    path = torch.empty(steps, dtype=torch.float64)
    for t in range(1, steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr / math.sqrt(t)  # alpha_t = alpha / sqrt(t)
        x.grad = torch.tensor([reddi_gradient(t, C)], dtype=torch.float64)
        optimizer.step()
        with torch.no_grad():
            x.clamp_(-1.0, 1.0)  # projection onto the feasible set [-1, 1]
        path[t - 1] = x.detach()[0]
    return path


def train_logreg(make_optimizer: Callable[[Iterable[Tensor]], torch.optim.Optimizer],
                 x: Tensor, y: Tensor, epochs: int, batch_size: int = 128, seed: int = 0,
                 held_out: Iterable[tuple[Tensor, Tensor]] = ()) -> dict:
    """Multi-class logistic regression (784 -> 10, softmax cross-entropy on logits), the paper's Fig. 1.

    Returns the loss of every minibatch, the final loss on all of ``(x, y)`` and the final loss
    on each ``(x, y)`` pair of ``held_out``, in order. The model lives on x's device.
    """
    if x.dim() != 2 or y.shape != (len(x),):
        raise ValueError(f"x: expected (N, features) with labels y of shape (N,), got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    gen = seed_everything(seed)
    model = torch.nn.Linear(x.shape[1], 10).to(x.device)

    def loss_fn(xb: Tensor, yb: Tensor) -> Tensor:
        # the softmax cross-entropy, computed from the logits
        return F.cross_entropy(model(xb), yb)

    history = fit(model, loss_fn, (x, y), make_optimizer(model.parameters()), epochs, batch_size,
                  gen, progress=False)
    with torch.no_grad():
        final = F.cross_entropy(model(x), y).item()
        held = [F.cross_entropy(model(hx), hy).item() for hx, hy in held_out]
    return {"losses": history.step_loss, "train": final, "held_out": held}


def train_vae(x: Tensor, beta2: float, corrected: bool, lr: float, steps: int, hidden: int,
              batch_size: int = 100, seed: int = 0, held_out: Iterable[Tensor] = ()) -> dict:
    """Train ``paperlib.vae.VAE`` (20 latents) with Adam, beta1 = 0.9, for ``steps`` minibatches.

    Returns the negative ELBO of every minibatch (shorter if the loss became NaN or infinite:
    the run diverged) and the mean negative ELBO after training (one sample of z per example)
    on each tensor of ``held_out``, in order; ``None`` for each if the run diverged.
    """
    positive_int("steps", steps)
    gen = seed_everything(seed)
    model = vae.VAE(x_dim=x[0].numel(), hidden=hidden, z_dim=20).to(x.device)
    noise = gen if x.device.type == "cpu" else None

    def loss_fn(xb: Tensor) -> Tensor:
        # the minibatch's negative ELBO, one sample of z per example
        return -model.elbo(xb, generator=noise).mean()

    optimizer = Adam(model.parameters(), lr=lr, betas=(0.9, beta2), bias_correction=corrected)
    try:
        losses, diverged = fit(model, loss_fn, x, optimizer, batch_size=batch_size, generator=gen,
                               progress=False, steps=steps).step_loss, False
    except FloatingPointError as error:  # the curve ends where the loss stopped being finite
        losses, diverged = error.history.step_loss, True
    with torch.no_grad():
        held = [None if diverged else -model.elbo(hx, generator=noise).mean().item()
                for hx in held_out]
    return {"losses": losses, "held_out": held}


# Experiment sizes for the chapter. "quick" runs on two CPU cores in seconds with the 5,000 offline
# MNIST digits; "paper" uses full MNIST, the paper's minibatch of 128 and more epochs (GPU).
# ``held_out`` digits are split off the end of the training set to choose step sizes on.
SCALES = {
    "quick": dict(offline=True, held_out=500, batch_size=128, logreg_epochs=6, vae_hidden=200,
                  vae_steps=80),
    "paper": dict(offline=None, held_out=10_000, batch_size=128, logreg_epochs=45, vae_hidden=500,
                  vae_steps=4000),
}


# --- AdaMax: section 7.1 of the paper (the chapter's section on Adam's relatives) ---------------

class AdaMax(torch.optim.Optimizer):
    """AdaMax, section 7.1 of Kingma & Ba: Adam with v_t replaced by its L-infinity limit u_t.

    Implements ``prop-adamax-limit``: u_t = max(beta2 u_{t-1}, |g_t|) needs no bias correction,
    only m_t does. ``eps`` is added to |g_t| inside the maximum, as ``torch.optim.Adamax`` does, so
    that a coordinate whose gradients have all been zero takes no step instead of 0/0.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        lr, eps = nonnegative("lr", lr), nonnegative("eps", eps)
        betas = beta_pair(betas)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate(closure)
        for group, theta, g, state in _gradients(self, lambda group: ("m", "u")):
            alpha, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            t, m, u = state["t"], state["m"], state["u"]
            # m_t = beta1 * m_{t-1} + (1 - beta1) * g_t
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            # u_t = max(beta2 * u_{t-1}, |g_t| + eps)
            torch.maximum(u.mul_(beta2), g.abs().add_(eps), out=u)
            # theta_t = theta_{t-1} - (alpha / (1 - beta1^t)) * m_t / u_t
            theta.addcdiv_(m, u, value=-alpha / (1 - beta1**t))
        return loss
