"""MADE as a flow layer: Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density
Estimation" (NIPS 2017), and its sampling-direction twin, Kingma et al., "Improved Variational
Inference with Inverse Autoregressive Flow" (NIPS 2016).

Explained, derived and checked in the chapter ``chapters/generative/made.ipynb``
(``prop-made-maf-logdet``): an autoregressive affine map whose conditioner is one
:class:`paperlib.made.MADE`, so its Jacobian is triangular and its log-determinant is a sum.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from paperlib._checks import batch, positive_int
from paperlib.distributions import log_standard_normal
from paperlib.flows import Flow
from paperlib.made import MADE, MaskedLinear


class MAFLayer(nn.Module):
    """The autoregressive affine map u_d = (x_d - mu_d(x_<d)) exp(-alpha_d(x_<d)), one MADE for (mu, alpha).

    ``forward`` returns ``(u, log|det du/dx|)`` in one pass, with log|det| = -sum_d alpha_d
    (implements ``prop-made-maf-logdet``); ``inverse`` returns ``(x, log|det dx/du|)`` and takes D
    passes, one per position in the ordering. MAF uses ``forward`` to evaluate densities; an IAF
    layer is the same map read as a sampler (its conditioner reads the noise), so it samples in one
    pass and needs the D passes of ``inverse`` to evaluate a given point.
    """

    def __init__(self, d: int, hidden_sizes: list[int] | tuple[int, ...], natural_ordering: bool = True,
                 seed: int = 0):
        super().__init__()
        # MADE's trunk and its output layer give mu; a second output layer, with the same mask, gives alpha
        self.made = MADE(d, hidden_sizes, natural_ordering=natural_ordering, seed=seed, direct=False)
        self.d = d
        self.alpha = MaskedLinear(self.made.hidden_sizes[-1], d)
        self.alpha.set_mask(self.made.layers[-1].mask)

    @property
    def ordering(self) -> Tensor:
        """``ordering[i]`` is input i's position in the order, as in :class:`MADE`."""
        return self.made.ordering

    def conditioner(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, alpha), each [N, D]: (mu_d, alpha_d) = f(x_<d) for every d, in one masked pass."""
        h = x
        for layer in self.made.layers[:-1]:
            h = torch.relu(layer(h))
        return self.made.layers[-1](h), self.alpha(h)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        batch("x", x, self.d)
        mu, alpha = self.conditioner(x)
        # u_d = (x_d - mu_d(x_<d)) exp(-alpha_d(x_<d))
        u = (x - mu) * torch.exp(-alpha)
        # log|det du/dx| = -sum_d alpha_d: the Jacobian is triangular with diagonal exp(-alpha_d)
        return u, -alpha.sum(1)

    def inverse(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """(x, log|det dx/du|) = (x, sum_d alpha_d): D passes, each fixing the next x_d in the order."""
        batch("u", u, self.d)
        x = torch.zeros_like(u)
        alpha = torch.zeros_like(u)
        for i in torch.argsort(self.ordering).tolist():
            mu, alpha = self.conditioner(x)
            x = x.clone()    # out of place for autograd: the pass above read x
            # x_d = u_d exp(alpha_d) + mu_d, with mu_d and alpha_d from the x_<d already computed
            x[:, i] = u[:, i] * torch.exp(alpha[:, i]) + mu[:, i]
        # the last pass saw every x_<d for every d, so its alpha is the final one
        return x, alpha.sum(1)


class Reverse(nn.Module):
    """The coordinates in reverse order: a permutation, so |det| = 1 (log det 0); its own inverse."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.flip(1), x.new_zeros(len(x))

    inverse = forward


class MAF(Flow):
    """A masked autoregressive flow: ``num_layers`` :class:`MAFLayer` s on a standard-normal base.

    ``forward`` maps data x to noise u, with log|det du/dx| (one pass a layer); ``inverse`` maps u
    back to x (D passes a layer). The order is reversed between layers (:class:`Reverse`), so that
    each dimension is conditioned on the others somewhere in the stack.
    """

    argument_names = ("x", "u")

    def __init__(self, d: int, hidden_sizes: list[int] | tuple[int, ...], num_layers: int = 2, seed: int = 0):
        positive_int("num_layers", num_layers)
        layers: list[nn.Module] = []
        for k in range(num_layers):
            layers += [Reverse()] if k else []
            layers.append(MAFLayer(d, hidden_sizes, seed=seed + k))
        super().__init__(d, layers)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) = log N(u; 0, I) + log|det du/dx|, one value per example."""
        u, log_det = self(x)
        return log_standard_normal(u) + log_det

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws: u ~ N(0, I), then x = the inverse of the flow at u."""
        return self.inverse(self.base_sample(n, generator))[0]
