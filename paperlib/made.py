"""MADE: Germain, Gregor, Murray & Larochelle, "Masked Autoencoder for Distribution Estimation" (ICML 2015).

Explained, derived and checked in the chapter ``chapters/generative/made.ipynb``. The mask
functions are pure (degrees in, 0/1 matrices out) so that the chapter and the tests can multiply
them; ``MaskedLinear`` and ``MADE`` are the network. ``MADE`` returns one Bernoulli logit per
input: ``logits[:, i]`` parameterises p(x_i = 1 | the inputs before x_i in the ordering).
Degrees follow the paper: inputs and outputs get 1..D, hidden units get values in 1..D-1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib._checks import degree_tensor, positive_int
from paperlib.distributions import bernoulli_nll


def input_degrees(ordering: Tensor) -> Tensor:
    """m(x_i) = 1 + (position of x_i in the ordering); ``ordering`` must be a permutation of 0..D-1."""
    ordering = degree_tensor("ordering", ordering)
    if not torch.equal(ordering.sort().values, torch.arange(len(ordering))):
        raise ValueError(f"ordering: expected a permutation of 0..{len(ordering) - 1}")
    return ordering + 1


def hidden_degrees(previous: Tensor, size: int, d: int,
                   generator: torch.Generator | None = None) -> Tensor:
    """Degrees of a hidden layer, uniform on {min(previous), ..., D - 1} (the paper's eq. 13)."""
    previous = degree_tensor("previous", previous)
    positive_int("size", size)
    if not isinstance(d, int) or d < 2:
        raise ValueError(f"d: expected at least 2 inputs (hidden degrees live in 1..d-1), got {d!r}")
    low = min(int(previous.min()), d - 1)
    return torch.randint(low, d, (size,), generator=generator)


def hidden_mask(previous: Tensor, current: Tensor) -> Tensor:
    """M[k, j] = 1 if m^l(k) >= m^(l-1)(j): unit k may see unit j (shape [out, in], like a weight).

    With :func:`output_mask`, the masks of ``thm-made-masks``."""
    previous, current = degree_tensor("previous", previous), degree_tensor("current", current)
    return (current[:, None] >= previous[None, :]).to(torch.get_default_dtype())


def output_mask(hidden: Tensor, outputs: Tensor) -> Tensor:
    """M^V[i, k] = 1 if m(x_hat_i) > m^L(k): strictly greater, so x_hat_i never sees x_i
    (``thm-made-masks``)."""
    hidden, outputs = degree_tensor("hidden", hidden), degree_tensor("outputs", outputs)
    return (outputs[:, None] > hidden[None, :]).to(torch.get_default_dtype())


def direct_mask(inputs: Tensor) -> Tensor:
    """M^A[i, j] = 1 if m(x_j) < m(x_i): the strictly lower-triangular (in the ordering) skip weights."""
    inputs = degree_tensor("inputs", inputs)
    return (inputs[:, None] > inputs[None, :]).to(torch.get_default_dtype())


def connectivity(masks: list[Tensor]) -> Tensor:
    """Number of paths from each input j to each output i: the product M^V M^L ... M^1, shape [D, D]."""
    if not masks:
        raise ValueError("masks: expected at least one mask matrix")
    paths = masks[0].double()
    for mask in masks[1:]:
        if mask.shape[1] != paths.shape[0]:
            raise ValueError(f"masks: a {tuple(mask.shape)} mask cannot follow one with "
                             f"{paths.shape[0]} outputs")
        paths = mask.double() @ paths
    return paths


def mixture_nll(log_probs: Tensor) -> Tensor:
    """-log((1/K) sum_k p_k(x)) from log p_k(x) stacked as [K, N]: average probabilities, not logs.

    By ``prop-made-ensemble`` it is at most the members' average NLL."""
    if not isinstance(log_probs, Tensor) or log_probs.dim() != 2:
        raise ValueError(f"log_probs: expected a [K, N] tensor of log-probabilities, got "
                         f"{getattr(log_probs, 'shape', log_probs)!r}")
    # -log p_ens(x) = log K - logsumexp_k log p_k(x)
    return math.log(log_probs.shape[0]) - torch.logsumexp(log_probs, dim=0)


SCALES = {
    "quick": dict(offline=True, hidden=500, num_masks=8, lr=3e-3, batch_size=100, epochs=24),
    "paper": dict(offline=None, hidden=500, num_masks=8, lr=1e-3, batch_size=100, epochs=200),
}


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 ``mask`` of shape [out, in]."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", torch.ones(out_features, in_features))

    def set_mask(self, mask: Tensor) -> None:
        if mask.shape != self.weight.shape:
            raise ValueError(f"mask: expected shape {tuple(self.weight.shape)}, got {tuple(mask.shape)}")
        self.mask.copy_(mask)

    def forward(self, x: Tensor) -> Tensor:
        # h = (W * M) x + b
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """A masked MLP with ``d`` binary inputs and ``d`` logits; ReLU hidden layers.

    ``num_masks`` > 1 cycles through that many (ordering, connectivity) draws with
    :meth:`update_masks`, for order- and connectivity-agnostic training; ``natural_ordering``
    keeps x_1, ..., x_D in order and resamples only the hidden degrees. ``direct`` adds the
    paper's masked input-to-output weights. ``ordering[i]`` is input i's position in the order.
    """

    def __init__(self, d: int, hidden_sizes: list[int] | tuple[int, ...], num_masks: int = 1,
                 natural_ordering: bool = False, seed: int = 0, direct: bool = True):
        super().__init__()
        if not isinstance(d, int) or d < 2:
            raise ValueError(f"d: expected at least 2 inputs, got {d!r}")
        if not hidden_sizes or any(not isinstance(h, int) or h < 1 for h in hidden_sizes):
            raise ValueError(f"hidden_sizes: expected a non-empty list of positive ints, got {hidden_sizes!r}")
        positive_int("num_masks", num_masks)
        self.d, self.hidden_sizes, self.num_masks = d, list(hidden_sizes), num_masks
        self.natural_ordering, self.seed = natural_ordering, seed
        sizes = [d, *self.hidden_sizes, d]
        self.layers = nn.ModuleList(MaskedLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.direct = MaskedLinear(d, d, bias=False) if direct else None
        self.register_buffer("ordering", torch.arange(d))
        self.mask_index = -1
        self._drawn: dict[int, tuple[list[Tensor], list[Tensor]]] = {}  # index -> draw_masks(index)
        self.update_masks()

    def draw_masks(self, index: int) -> tuple[list[Tensor], list[Tensor]]:
        """Degrees [m(x), m^1, ..., m^L] and masks [M^1, ..., M^L, M^V] of mask number ``index``."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        ordering = (torch.arange(self.d) if self.natural_ordering
                    else torch.randperm(self.d, generator=generator))
        degrees = [input_degrees(ordering)]
        for size in self.hidden_sizes:
            degrees.append(hidden_degrees(degrees[-1], size, self.d, generator))
        masks = [hidden_mask(a, b) for a, b in zip(degrees[:-1], degrees[1:])]
        masks.append(output_mask(degrees[-1], degrees[0]))
        return degrees, masks

    def update_masks(self, index: int | None = None) -> None:
        """Move to the next of the ``num_masks`` masks (or to mask ``index``)."""
        index = (self.mask_index + 1) % self.num_masks if index is None else index
        if not isinstance(index, int) or not 0 <= index < self.num_masks:
            raise ValueError(f"index: expected 0 <= index < {self.num_masks}, got {index!r}")
        # Always copy, even for the current index: load_state_dict may have replaced the masks.
        # The draws are cached: order-agnostic training switches mask every step.
        if index not in self._drawn:
            self._drawn[index] = self.draw_masks(index)
        degrees, masks = self._drawn[index]
        ordering = degrees[0] - 1
        self.ordering.copy_(ordering)
        for layer, mask in zip(self.layers, masks):
            layer.set_mask(mask)
        if self.direct is not None:
            self.direct.set_mask(direct_mask(ordering + 1))
        self.mask_index = index

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        if x.shape[1] != self.d:
            raise ValueError(f"x: expected {self.d} values per example, got {x.shape[1]}")
        h = x
        for layer in self.layers[:-1]:
            h = torch.relu(layer(h))
        logits = self.layers[-1](h)
        if self.direct is not None:
            # logits = V h^L + c + A x,  with A masked strictly lower triangular in the ordering
            logits = logits + self.direct(x)
        return logits

    def nll(self, x: Tensor, ensemble: bool = False, *, validate: bool = False) -> Tensor:
        """-log p(x) per example under the current mask, or under the mixture of all masks.

        ``validate=True`` checks that x lies in [0, 1] (a read-back from the device).
        """
        if not ensemble:
            # -log p(x) = -sum_i log Bernoulli(x_i; sigmoid(logits_i(x_<i)))
            return bernoulli_nll(self(x), x.flatten(1), validate=validate)
        current = self.mask_index
        log_probs = []
        for index in range(self.num_masks):
            self.update_masks(index)
            log_probs.append(-bernoulli_nll(self(x), x.flatten(1), validate=validate))
        self.update_masks(current)
        return mixture_nll(torch.stack(log_probs))

    def loss(self, x: Tensor) -> Tensor:
        """Mean negative log-likelihood of a batch, in nats per example."""
        return self.nll(x).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws from the current mask's distribution: D passes, one per position in the order."""
        positive_int("n", n)
        device = self.ordering.device
        x = torch.zeros(n, self.d, device=device, dtype=self.layers[0].weight.dtype)
        for i in torch.argsort(self.ordering).tolist():
            # x_i ~ Bernoulli(sigmoid(logit_i(x_<i))); the later inputs are still 0 and unseen
            p = torch.sigmoid(self(x)[:, i])
            u = torch.rand(n, generator=generator, dtype=p.dtype, device=generator.device
                           if generator is not None else device).to(device)
            x[:, i] = (u < p).to(x.dtype)
        return x
