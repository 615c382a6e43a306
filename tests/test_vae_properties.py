"""Property tests for paperlib.distributions and vae.elbo at extreme inputs: finite, and equal to
torch.distributions (float64) wherever the reference is itself finite."""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from paperlib import distributions, vae

LOGVAR = st.floats(-30.0, 30.0)
MEAN = st.floats(-1e3, 1e3)
LOGIT = st.floats(-30.0, 30.0)
EXTREMES = [-30.0, -12.0, 0.0, 12.0, 30.0]


def _tensor(values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


@given(mu=st.lists(MEAN, min_size=1, max_size=6), data=st.data())
def test_kl_normal_is_finite_and_exact_for_extreme_logvar(mu, data):
    logvar = data.draw(st.lists(LOGVAR, min_size=len(mu), max_size=len(mu)))
    m, lv = _tensor(mu), _tensor(logvar)
    ours = distributions.kl_normal(m, lv)
    q = Independent(Normal(m, torch.exp(0.5 * lv)), 1)
    p = Independent(Normal(torch.zeros_like(m), torch.ones_like(m)), 1)
    reference = kl_divergence(q, p)
    assert torch.isfinite(ours)
    assert torch.allclose(ours, reference, rtol=1e-9, atol=1e-9)
    assert ours >= 0


def test_kl_normal_at_the_corners_of_the_range_in_float32():
    mu, logvar = torch.meshgrid(_tensor(EXTREMES, torch.float32), _tensor(EXTREMES, torch.float32),
                                indexing="ij")
    kl = distributions.kl_normal(mu.reshape(-1, 1), logvar.reshape(-1, 1))
    assert torch.isfinite(kl).all()
    # 1/2 (mu^2 + e^lv - lv - 1) at lv = 30 is about 5.3e12: float32 keeps it to 1e-6 relative
    expected = 0.5 * (mu.double() ** 2 + logvar.double().exp() - logvar.double() - 1).reshape(-1)
    assert torch.allclose(kl.double(), expected, rtol=1e-6)


@given(z=MEAN, mu=MEAN, logvar=LOGVAR)
def test_log_normal_matches_torch_at_extreme_scales(z, mu, logvar):
    ours = distributions.log_normal(_tensor([z]), _tensor([mu]), _tensor([logvar]))
    reference = Normal(_tensor(mu), torch.exp(_tensor(0.5 * logvar))).log_prob(_tensor(z))
    if torch.isfinite(reference):
        assert torch.allclose(ours, reference, rtol=1e-9, atol=1e-9)
    else:  # (z - mu)^2 / sigma^2 overflows float64 only far beyond these ranges
        assert ours == reference


@given(logits=st.lists(LOGIT, min_size=1, max_size=8), data=st.data())
def test_bernoulli_nll_is_finite_at_saturated_logits_and_binary_targets(logits, data):
    targets = data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=len(logits), max_size=len(logits)))
    lg, x = _tensor([logits]), _tensor([targets])
    ours = distributions.bernoulli_nll(lg, x)
    reference = -Bernoulli(logits=lg).log_prob(x).sum(-1)
    assert torch.isfinite(ours).all()
    assert torch.allclose(ours, reference, rtol=1e-9, atol=1e-12)


def test_bernoulli_nll_of_a_confident_wrong_pixel_is_the_logit_not_infinity():
    # sigmoid(30) rounds to 1 in float32, so sigmoid-then-log would give -log(0) = inf;
    # on logits the loss is softplus(30), about 30 nats
    nll = distributions.bernoulli_nll(torch.tensor([[30.0]]), torch.tensor([[0.0]]))
    assert torch.isfinite(nll).all() and abs(nll.item() - 30.0) < 1e-6


@given(mean=MEAN, x=MEAN, log_var=st.floats(-20.0, 20.0))
def test_gaussian_nll_matches_torch_for_tiny_and_huge_variances(mean, x, log_var):
    var = math.exp(log_var)
    ours = distributions.gaussian_nll(_tensor([[mean]]), _tensor([[x]]), var=var)
    reference = -Normal(_tensor(mean), math.sqrt(var)).log_prob(_tensor(x))
    assert torch.isfinite(ours).all()
    assert torch.allclose(ours, reference.reshape(1), rtol=1e-9, atol=1e-9)


@given(mu=MEAN, logvar=LOGVAR, seed=st.integers(0, 2**16))
def test_reparameterize_is_finite_and_exact_in_noise(mu, logvar, seed):
    gen = torch.Generator().manual_seed(seed)
    z = distributions.reparameterize(_tensor([mu]), _tensor([logvar]), generator=gen)
    eps = torch.randn(1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert torch.isfinite(z).all()
    assert torch.allclose(z, mu + math.exp(0.5 * logvar) * eps, rtol=1e-12, atol=1e-12)


@given(logvar=LOGVAR, logit=LOGIT, target=st.sampled_from([0.0, 1.0]))
def test_elbo_is_finite_and_both_kl_estimators_agree_in_expectation_form(logvar, logit, target):
    x = torch.full((1, 3), target, dtype=torch.float64)
    decoded = torch.full((1, 3), logit, dtype=torch.float64)
    mu = torch.zeros(1, 2, dtype=torch.float64)
    lv = torch.full((1, 2), logvar, dtype=torch.float64)
    value = vae.elbo(x, decoded, mu, lv)
    assert torch.isfinite(value).all()
    assert torch.allclose(value, -distributions.bernoulli_nll(decoded, x) - distributions.kl_normal(mu, lv))
