"""How disentangled a code is: the mutual information gap (MIG) of Chen et al. (NeurIPS 2018).

Chen, Li, Grosse and Duvenaud, "Isolating Sources of Disentanglement in Variational Autoencoders".
Explained in ``chapters/generative/beta_vae.ipynb`` (``def-beta-mig``). For each known factor
v_k, MIG takes the two latents that carry the most information about it and scores the gap
between them, as a fraction of the factor's entropy; it averages over factors. The mutual
informations are estimated with the common histogram (plug-in) estimator: each latent's mean is
cut into ``bins`` equal-width bins over its range, and I(z_j; v_k) is computed from the counts.
Chen et al. estimate I(z_j; v_k) from the encoder's q(z_j | x) instead; the histogram estimator is
the one most later comparisons use. All quantities are in nats.
"""

from __future__ import annotations

import torch
from torch import Tensor

from paperlib._checks import float_tensor, positive_int


def _labels(name: str, value) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected an integer torch.Tensor, got {type(value).__name__}")
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"{name}: expected an integer tensor of discrete values, got {value.dtype}")
    if value.dim() != 2 or len(value) == 0:
        raise ValueError(f"{name}: expected shape [N, K] with N >= 1, got {tuple(value.shape)}")
    return value


def discretize(z: Tensor, bins: int = 20) -> Tensor:
    """Each column of ``z`` [N, J] cut into ``bins`` equal-width bins over its own range, as bin indices.

    A constant column falls in bin 0. The bins are those of ``torch.histc(z_j, bins, min, max)``.
    """
    float_tensor("z", z, dims=2)
    positive_int("bins", bins)
    low, high = z.min(dim=0).values, z.max(dim=0).values
    width = (high - low).clamp_min(torch.finfo(z.dtype).tiny)
    # bin = floor(bins * (z - min) / (max - min)), the maximum in the last bin
    return (bins * (z - low) / width).floor().long().clamp(0, bins - 1)


def _codes(v: Tensor) -> Tensor:
    """Each column's values renumbered 0, 1, 2, ... so they can be counted with bincount."""
    return torch.stack([torch.unique(column, return_inverse=True)[1] for column in v.T], dim=1)


def discrete_entropy(v: Tensor) -> Tensor:
    """H(v_k) of each column of the integer tensor ``v`` [N, K], from its empirical frequencies."""
    v = _codes(_labels("v", v))
    entropies = []
    for column in v.T:
        p = torch.bincount(column).double() / len(column)
        p = p[p > 0]
        # H(v) = -sum_a p(a) log p(a)
        entropies.append(-(p * p.log()).sum())
    return torch.stack(entropies)


def discrete_mutual_info(z: Tensor, v: Tensor) -> Tensor:
    """I(z_j; v_k) for every column j of ``z`` [N, J] and k of ``v`` [N, K] (integers): a J x K matrix.

    The plug-in estimate from the joint counts of each pair of columns.
    """
    z, v = _codes(_labels("z", z)), _codes(_labels("v", v))
    if len(z) != len(v):
        raise ValueError(f"v: expected {len(z)} rows, one per row of z, got {len(v)}")
    n = len(z)
    info = torch.zeros(z.shape[1], v.shape[1], dtype=torch.float64)
    for j, zj in enumerate(z.T):
        for k, vk in enumerate(v.T):
            a, b = int(zj.max()) + 1, int(vk.max()) + 1
            joint = torch.bincount(zj * b + vk, minlength=a * b).double().reshape(a, b) / n
            outer = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
            seen = joint > 0
            # I(z; v) = sum_{a, b} p(a, b) log [p(a, b) / (p(a) p(b))]
            info[j, k] = (joint[seen] * (joint[seen] / outer[seen]).log()).sum()
    return info


def mutual_information_gap(info: Tensor, entropy: Tensor) -> Tensor:
    """The gap of each factor: (I(z_j*; v_k) - I(z_j**; v_k)) / H(v_k), j* and j** the top two latents.

    ``info`` is the J x K matrix of ``discrete_mutual_info`` (J >= 2), ``entropy`` the K entropies.
    Implements ``def-beta-mig`` before the average over factors.
    """
    float_tensor("info", info, dims=2)
    float_tensor("entropy", entropy, dims=1)
    if info.shape[0] < 2:
        raise ValueError(f"info: expected at least two latents (rows), got shape {tuple(info.shape)}")
    if entropy.shape[0] != info.shape[1]:
        raise ValueError(f"entropy: expected one entropy per factor ({info.shape[1]}), "
                         f"got {entropy.shape[0]}")
    top = info.topk(2, dim=0).values
    # gap_k = (I(z_j*; v_k) - I(z_j**; v_k)) / H(v_k)
    return (top[0] - top[1]) / entropy


def mig(mu: Tensor, factors: Tensor, bins: int = 20) -> Tensor:
    """The mutual information gap of codes ``mu`` [N, J] for known ``factors`` [N, K] (``def-beta-mig``).

    ``mu`` are the encoder's means, discretised into ``bins`` bins per latent; ``factors`` are
    integers, one column per factor, and each must vary (a constant factor has no entropy to
    divide by). Returns the mean over factors of ``mutual_information_gap``, between 0 and 1.
    """
    float_tensor("mu", mu, dims=2)
    _labels("factors", factors)
    if len(factors) != len(mu):
        raise ValueError(f"factors: expected {len(mu)} rows, one per code, got {len(factors)}")
    entropy = discrete_entropy(factors)
    if not bool((entropy > 0).all()):
        raise ValueError("factors: every factor must take at least two values; drop the constant "
                         f"columns {(entropy == 0).nonzero().flatten().tolist()}")
    info = discrete_mutual_info(discretize(mu, bins), factors)
    # MIG = 1/K sum_k gap_k
    return mutual_information_gap(info, entropy).mean()
