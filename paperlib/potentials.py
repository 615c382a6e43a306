"""The four two-dimensional target densities exp(-U_k) / Z of Rezende & Mohamed's Table 1, their
normalisers by quadrature, and the KL from a flow to them.

Used by ``chapters/generative/normalizing_flows.ipynb`` to reproduce the paper's Fig. 3. U2-U4
are normalisable only on a bounded region, so every target lives on the box (-BOX, BOX)^2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from paperlib._checks import batch
from paperlib.train import one_thread

POTENTIALS = (1, 2, 3, 4)
BOX = 4.0  # the half-width of the box (-BOX, BOX)^2 on which every target lives


def potential(k: int, z: Tensor) -> Tensor:
    """The energy U_k(z) of Table 1 (k = 1..4); the target density is exp(-U_k(z)) / Z."""
    if k not in POTENTIALS:
        raise ValueError(f"k: expected one of {POTENTIALS}, got {k!r}")
    batch("z", z, 2)
    z1, z2 = z[:, 0], z[:, 1]
    # w1(z) = sin(2 pi z1 / 4)
    w1 = torch.sin(2 * math.pi * z1 / 4)
    if k == 1:
        # U1 = 1/2 ((||z|| - 2) / 0.4)^2 - ln(e^{-1/2 ((z1 - 2)/0.6)^2} + e^{-1/2 ((z1 + 2)/0.6)^2})
        ring = 0.5 * ((z.norm(dim=1) - 2) / 0.4) ** 2
        lobes = torch.stack([-0.5 * ((z1 - 2) / 0.6) ** 2, -0.5 * ((z1 + 2) / 0.6) ** 2])
        return ring - torch.logsumexp(lobes, dim=0)
    if k == 2:
        # U2 = 1/2 ((z2 - w1(z)) / 0.4)^2
        return 0.5 * ((z2 - w1) / 0.4) ** 2
    if k == 3:
        # w2(z) = 3 exp(-1/2 ((z1 - 1) / 0.6)^2)
        w2 = 3 * torch.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)
        # U3 = -ln(e^{-1/2 ((z2 - w1)/0.35)^2} + e^{-1/2 ((z2 - w1 + w2)/0.35)^2})
        terms = torch.stack([-0.5 * ((z2 - w1) / 0.35) ** 2, -0.5 * ((z2 - w1 + w2) / 0.35) ** 2])
        return -torch.logsumexp(terms, dim=0)
    # w3(z) = 3 sigma((z1 - 1) / 0.3)
    w3 = 3 * torch.sigmoid((z1 - 1) / 0.3)
    # U4 = -ln(e^{-1/2 ((z2 - w1)/0.4)^2} + e^{-1/2 ((z2 - w1 + w3)/0.35)^2})
    terms = torch.stack([-0.5 * ((z2 - w1) / 0.4) ** 2, -0.5 * ((z2 - w1 + w3) / 0.35) ** 2])
    return -torch.logsumexp(terms, dim=0)


def standard_normal_energy(z: Tensor) -> Tensor:
    """U(z) = ||z||^2 / 2: the sanity-check target N(0, I), Z = 2 pi in two dimensions."""
    return 0.5 * z.pow(2).sum(-1)


def energy(k: int | str, z: Tensor) -> Tensor:
    """U_k(z) for k = 1..4, or the standard normal's energy for k = "normal"."""
    return standard_normal_energy(z) if k == "normal" else potential(k, z)


def box_wall(z: Tensor, box: float = BOX, stiffness: float = 50.0) -> Tensor:
    """A soft wall, sum_j stiffness * relu(|z_j| - box)^2, zero inside the box."""
    if not box > 0:
        raise ValueError(f"box: expected a positive half-width, got {box!r}")
    if not stiffness >= 0:
        raise ValueError(f"stiffness: expected a non-negative number, got {stiffness!r}")
    return stiffness * F.relu(z.abs() - box).pow(2).sum(-1)


def log_normalizer(k: int | str, box: float = BOX, points: int = 801) -> float:
    """ln Z = ln of the integral of exp(-U_k) over (-box, box)^2, by the midpoint rule.

    ``k`` is 1..4 or ``"normal"``. Computed in float64 with a ``points`` x ``points`` grid.
    """
    if not box > 0:
        raise ValueError(f"box: expected a positive half-width, got {box!r}")
    if not isinstance(points, int) or points < 2:
        raise ValueError(f"points: expected an integer >= 2, got {points!r}")
    h = 2 * box / points
    axis = torch.linspace(-box + h / 2, box - h / 2, points, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    # ln Z ~ ln sum_cells exp(-U(z_cell)) h^2
    return (torch.logsumexp(-energy(k, grid), dim=0) + 2 * math.log(h)).item()


@torch.no_grad()
def kl_box(flow, k: int | str, n: int = 10_000, box: float = BOX,
           log_z: float | None = None, generator: torch.Generator | None = None
           ) -> tuple[float, float]:
    """KL(q_B || p_B) in nats and the mass of q_K outside the box, (kl, outside).

    p_B = exp(-U) / Z_B on B = (-box, box)^2, and q_B is q_K restricted to B and renormalised:
    with M = q_K(B), KL(q_B || p_B) = E_q[1_B (ln q + U)] / M + ln Z_B - ln M  (>= 0).
    """
    if log_z is None:
        log_z = log_normalizer(k, box)
    with one_thread():
        _, zK, log_q = flow.sample(n, generator)
    inside = (zK.abs() < box).all(dim=1)
    mass = inside.double().mean().item()
    if mass == 0:
        return math.inf, 1.0
    terms = torch.where(inside, log_q + energy(k, zK), torch.zeros_like(log_q))
    kl = terms.double().sum().item() / inside.sum().item() + log_z - math.log(mass)
    return kl, 1.0 - mass
