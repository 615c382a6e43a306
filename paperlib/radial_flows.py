"""Radial flows, the second family of Rezende & Mohamed, "Variational Inference with Normalizing
Flows" (ICML 2015): eq. (14) and appendix A.2.

Explained, derived and checked in ``chapters/generative/normalizing_flows.ipynb``
(``lem-flows-radial-determinant``, ``prop-flows-radial-invertible``). A radial flow moves every
point along its ray from z0; ``RadialFlow`` is a :class:`paperlib.flows.FlowLayer`, so
``NormalizingFlow(d, K, layer=RadialFlow)`` stacks them like planar flows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib._checks import float_tensor
from paperlib.flows import MARGIN, FlowLayer


def beta_hat(alpha: Tensor, beta: Tensor) -> Tensor:
    """The reparameterised beta_hat = -alpha + max(m(beta), MARGIN) > -alpha, with the radial
    flow's m(x) = log(1 + e^x) (appendix A.2; ``prop-flows-radial-invertible``).

    In floating point log(1 + e^x) underflows to 0 for very negative x, and -alpha + tiny rounds
    to -alpha: the MARGIN keeps beta_hat + alpha >= MARGIN, up to rounding, as ``u_hat`` does.
    """
    float_tensor("alpha", alpha)
    float_tensor("beta", beta)
    # beta_hat = -alpha + m(beta),  m(x) = log(1 + e^x) > 0
    return -alpha + torch.clamp_min(F.softplus(beta), MARGIN)


def _parameters(alpha: Tensor | float, beta: Tensor | float, like: Tensor, validate: bool
                ) -> tuple[Tensor, Tensor]:
    """alpha and beta as tensors of ``like``'s dtype; with ``validate``, a ``ValueError`` unless
    alpha > 0 and beta > -alpha (read back from the device, so the flows leave it off)."""
    alpha, beta = torch.as_tensor(alpha, dtype=like.dtype), torch.as_tensor(beta, dtype=like.dtype)
    if validate and not bool((alpha > 0).all()):
        raise ValueError(f"alpha: expected alpha > 0, got {alpha.min().item():.4g}")
    if validate and not bool((beta > -alpha).all()):
        raise ValueError("beta: expected beta > -alpha for an invertible radial flow with a finite "
                         "log-determinant; pass beta_hat(alpha, beta)")
    return alpha, beta


def radial(z: Tensor, z0: Tensor, alpha: Tensor | float, beta: Tensor | float, *,
           validate: bool = False) -> tuple[Tensor, Tensor]:
    """One radial flow f(z) = z + beta h(alpha, r)(z - z0) and log|det df/dz| per example
    (``lem-flows-radial-determinant``).

    Needs alpha > 0 and beta > -alpha, strictly (pass ``beta_hat(alpha, beta)``): below -alpha the
    map folds every ray through z0, and at beta = -alpha its Jacobian is singular at z0.
    ``validate=True`` raises a ``ValueError`` for such parameters; it reads them back from the
    device, so the flows, which pass ``beta_hat``, leave it off.
    """
    alpha, beta = _parameters(alpha, beta, z, validate)
    d = z.shape[-1]
    diff = z - z0
    # r = |z - z0|
    r = torch.linalg.vector_norm(diff, dim=-1, keepdim=True)
    # h(alpha, r) = 1 / (alpha + r),  h'(alpha, r) = -1 / (alpha + r)^2
    h = 1 / (alpha + r)
    h_prime = -h**2
    # f(z) = z + beta h(alpha, r)(z - z0)
    z_new = z + beta * h * diff
    # log|det df/dz| = (d - 1) log(1 + beta h) + log(1 + beta h + beta h' r)   (eq. 14)
    log_det = (d - 1) * torch.log1p(beta * h) + torch.log1p(beta * h + beta * h_prime * r)
    return z_new, log_det.squeeze(-1)


def radial_inverse(z_new: Tensor, z0: Tensor, alpha: Tensor | float, beta: Tensor | float, *,
                   validate: bool = False) -> Tensor:
    """Solve z + beta h(alpha, r)(z - z0) = z_new for z (alpha > 0, beta > -alpha).

    The flow moves z along the ray from z0 through z, so z_new - z0 points the same way and only
    the radius changes: s = |z_new - z0| = r (1 + beta / (alpha + r)). That scalar equation is the
    quadratic r^2 + (alpha + beta - s) r - alpha s = 0, whose one root r >= 0 is computed in a form
    free of cancellation (``prop-flows-radial-invertible``). ``validate`` as in :func:`radial`.
    """
    alpha, beta = _parameters(alpha, beta, z_new, validate)
    diff = z_new - z0
    s = torch.linalg.vector_norm(diff, dim=-1, keepdim=True)
    # r^2 + B r - alpha s = 0 with B = alpha + beta - s: r = (-B + sqrt(B^2 + 4 alpha s)) / 2
    B = alpha + beta - s
    root = torch.sqrt(B**2 + 4 * alpha * s)
    r = torch.where(B > 0, 2 * alpha * s / (B + root), (root - B) / 2)
    # z - z0 = (z_new - z0) / (1 + beta h(alpha, r)) = (z_new - z0)(alpha + r) / (alpha + r + beta)
    return z0 + diff * (alpha + r) / (alpha + r + beta)


class RadialFlow(FlowLayer):
    """f(z) = z + beta_hat h(alpha, r)(z - z0) with h = 1/(alpha + r), r = |z - z0|: z0 of shape
    [d]; alpha = log(1 + e^a) > 0 from a free scalar a, and beta_hat from a free scalar beta.

    The paper takes alpha > 0 and beta_hat = -alpha + log(1 + e^beta) (appendix A.2); the softplus
    for alpha is this module's choice. ``NormalizingFlow(d, K, layer=RadialFlow)`` stacks them.
    """

    f, f_inverse = staticmethod(radial), staticmethod(radial_inverse)

    def __init__(self, d: int, init_scale: float = 0.1):
        super().__init__(d, init_scale)
        self.z0 = nn.Parameter(init_scale * torch.randn(d))
        self.a = nn.Parameter(init_scale * torch.randn(()))
        self.beta = nn.Parameter(init_scale * torch.randn(()))

    def coefficients(self) -> tuple[Tensor, Tensor, Tensor]:
        """(z0, alpha, beta_hat), with beta_hat >= -alpha so that f is invertible (appendix A.2)."""
        # alpha = log(1 + e^a) > 0
        alpha = F.softplus(self.a)
        return self.z0, alpha, beta_hat(alpha, self.beta)
