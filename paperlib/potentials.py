"""The paper's Fig. 3 experiment: the four two-dimensional target densities exp(-U_k) / Z of
Rezende & Mohamed's Table 1, their normalisers by quadrature, the annealed free energy that fits a
flow to them, and the KL from a fitted flow.

Used by ``chapters/generative/normalizing_flows.ipynb``. U2-U4 are normalisable only on a bounded
region, so every target lives on the box (-BOX, BOX)^2. The flows themselves are
``paperlib.flows`` (planar) and ``paperlib.radial_flows``.
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from paperlib._checks import batch, positive_int
from paperlib.distributions import log_standard_normal
from paperlib.train import History, fit, one_thread

if TYPE_CHECKING:
    from paperlib.flows import NormalizingFlow

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
def kl_box(flow: NormalizingFlow, k: int | str, n: int = 10_000, box: float = BOX,
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


def annealed_beta(step: int, anneal_steps: int) -> float:
    """beta_t = min(1, 0.01 + t / anneal_steps): the paper uses anneal_steps = 10,000."""
    if not anneal_steps > 0:
        raise ValueError(f"anneal_steps: expected a positive number of steps, got {anneal_steps!r}")
    return min(1.0, 0.01 + step / anneal_steps)


def free_energy(flow: NormalizingFlow, k: int | str, n: int, beta: float = 1.0,
                generator: torch.Generator | None = None, wall: bool = True) -> Tensor:
    """Monte Carlo estimate of F = E_q0[ln q0(z0)] - E_q0[sum ln|det|] + beta E_q0[U(z_K)].

    With beta = 1 this is KL(q_K || p) - ln Z. ``wall`` adds :func:`box_wall` to U, confining
    q_K to the box where the target lives.
    """
    if not beta >= 0:
        raise ValueError(f"beta: expected a non-negative inverse temperature, got {beta!r}")
    z0, zK, log_q = flow.sample(n, generator)
    U = energy(k, zK) + (box_wall(zK) if wall else 0.0)
    # F = E[ln q_K(z_K)] + beta E[U(z_K)],  ln q_K(z_K) = ln q_0(z_0) - sum_k ln|det J_k|
    return (log_q + beta * U).mean()


def fit_flows(flows: list[NormalizingFlow], targets: list[int | str], steps: int,
              batch_size: int = 256, lr: float = 3e-2, anneal_steps: int | None = None,
              generator: torch.Generator | None = None, wall: bool = True) -> History:
    """Fit ``flows[i]`` to exp(-U_{targets[i]}) with Adam for ``steps`` steps, all at once.

    Each flow minimises its own annealed free energy (:func:`free_energy` with beta_t from
    :func:`annealed_beta`). The flows share one architecture and no parameters, and Adam acts
    elementwise, so fitting them side by side, with ``torch.func.vmap`` over one flow's forward,
    is the same as fitting them one by one, only faster. The fitted parameters are copied back
    into ``flows``; the history records the sum of the free energies.
    """
    positive_int("steps", steps)
    positive_int("batch_size", batch_size)
    if not flows or len(flows) != len(targets):
        raise ValueError(f"targets: expected one target per flow ({len(flows)}), got {targets!r}")
    if len({str(flow) for flow in flows}) != 1:
        raise ValueError("flows: expected flows of one architecture (same d, K and layer type)")
    stacked = _Stacked(flows)
    anneal = anneal_steps if anneal_steps is not None else max(1, steps // 2)
    step = itertools.count()

    def summed_free_energy() -> Tensor:
        z0 = torch.randn(len(flows), batch_size, flows[0].d, generator=generator)
        zK, log_det = stacked(z0)
        U = torch.stack([energy(k, z) + (box_wall(z) if wall else 0.0) for k, z in zip(targets, zK)])
        # ln q_K(z_K) = ln q_0(z_0) - sum_k ln|det J_k|
        log_q = log_standard_normal(z0) - log_det
        # each flow's F = E[ln q_K(z_K)] + beta_t E[U(z_K)], summed over the independent flows
        return (log_q + annealed_beta(next(step), anneal) * U).mean(1).sum()

    with one_thread():
        history = fit(stacked, summed_free_energy, None, torch.optim.Adam(stacked.parameters(), lr=lr),
                      steps=steps, progress=False)
    stacked.copy_to(flows)
    return history


class _Stacked(nn.Module):
    """P flows of one architecture as one module: their parameters stacked along a new first
    dimension, and ``forward`` maps z [P, N, d] through flow p for each p with ``vmap``."""

    def __init__(self, flows: list[NormalizingFlow]):
        super().__init__()
        params, _ = stack_module_state(flows)
        self.names = list(params)
        self.stacked = nn.ParameterList(nn.Parameter(p.detach().clone()) for p in params.values())
        self.skeleton = [copy.deepcopy(flows[0]).to("meta")]  # a list: not a submodule

    def forward(self, z0: Tensor) -> tuple[Tensor, Tensor]:
        def one_flow(params: list[Tensor], z: Tensor) -> tuple[Tensor, Tensor]:
            return functional_call(self.skeleton[0], dict(zip(self.names, params)), (z,))

        return vmap(one_flow)(list(self.stacked), z0)

    @torch.no_grad()
    def copy_to(self, flows: list[NormalizingFlow]) -> None:
        for p, flow in enumerate(flows):
            state = flow.state_dict()
            for name, value in zip(self.names, self.stacked):
                state[name].copy_(value[p])
            flow.eval()
