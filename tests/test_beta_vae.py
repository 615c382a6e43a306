"""paperlib.vae's beta-VAE additions: the two losses, the C schedule and Burgess et al.'s conv VAE."""

import math

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from paperlib.answers import check_answer
from paperlib.vae import (BETA_SCALES, VAE, ConvVAE, active_latents, bernoulli_nll, beta_vae_loss,
                          capacity_loss, capacity_schedule, kl_normal)


def batch(seed=0, n=6, side=4, z_dim=3, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    logits = spread * torch.randn(n, 1, side, side, generator=g, dtype=torch.float64)
    x = torch.rand(n, 1, side, side, generator=g, dtype=torch.float64).round()
    mu = spread * torch.randn(n, z_dim, generator=g, dtype=torch.float64)
    logvar = spread * torch.randn(n, z_dim, generator=g, dtype=torch.float64)
    return logits, x, mu, logvar


def reference_terms(logits, x, mu, logvar):
    """Per-example -log p(x|z) and KL from torch.distributions."""
    nll = -Independent(Bernoulli(logits=logits), 3).log_prob(x)
    q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    return nll, kl_divergence(q, p)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), beta=st.floats(0, 1e3), spread=st.sampled_from([0.1, 1.0, 5.0]))
def test_beta_vae_loss_matches_torch_distributions(seed, beta, spread):
    logits, x, mu, logvar = batch(seed, spread=spread)
    nll, kl = reference_terms(logits, x, mu, logvar)
    expected = (nll + beta * kl).mean()
    torch.testing.assert_close(beta_vae_loss(logits, x, mu, logvar, beta), expected)


def test_beta_one_is_the_negative_elbo_and_beta_zero_is_reconstruction():
    logits, x, mu, logvar = batch(1)
    nll, kl = reference_terms(logits, x, mu, logvar)
    torch.testing.assert_close(beta_vae_loss(logits, x, mu, logvar, 1.0), (nll + kl).mean())
    torch.testing.assert_close(beta_vae_loss(logits, x, mu, logvar, 0.0), nll.mean())


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), gamma=st.floats(0, 1e4), C=st.floats(0, 50))
def test_capacity_loss_matches_its_definition(seed, gamma, C):
    logits, x, mu, logvar = batch(seed)
    nll, kl = reference_terms(logits, x, mu, logvar)
    expected = nll.mean() + gamma * (kl.mean() - C).abs()
    torch.testing.assert_close(capacity_loss(logits, x, mu, logvar, gamma, C), expected)


def test_capacity_loss_takes_the_batch_mean_kl_inside_the_absolute_value():
    # two examples with KL 2 and 8: |mean KL - 5| = 0, while the mean of |KL - 5| would be 3
    mu = torch.tensor([[2.0], [4.0]], dtype=torch.float64)
    logvar = torch.zeros_like(mu)
    logits = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    x = torch.ones_like(logits)
    assert kl_normal(mu, logvar).tolist() == [2.0, 8.0]
    torch.testing.assert_close(capacity_loss(logits, x, mu, logvar, gamma=10.0, C=5.0),
                               bernoulli_nll(logits, x).mean())


def test_capacity_gradient_pushes_the_kl_towards_C():
    """d loss / d KL = gamma * sign(KL - C): below C the optimiser raises the KL, above it lowers it."""
    logits, x, _, _ = batch(2, n=1, z_dim=1)
    for C, direction in [(5.0, -1.0), (0.1, 1.0)]:
        mu = torch.tensor([[1.0]], dtype=torch.float64, requires_grad=True)  # KL = 0.5
        capacity_loss(logits, x, mu, torch.zeros_like(mu), gamma=100.0, C=C).backward()
        # d KL / d mu = mu = 1, so the gradient is gamma * sign(KL - C) * mu
        assert mu.grad.item() == pytest.approx(100.0 * direction)


@settings(max_examples=8, deadline=None)
@given(scale=st.sampled_from([30.0, -30.0, 1e-6]), beta=st.sampled_from([0.0, 1e-8, 4.0, 1e6]))
def test_losses_stay_finite_at_extreme_inputs(scale, beta):
    """Logits of +-30, probabilities 0 and 1 as targets, tiny and huge posterior scales."""
    logits = torch.full((3, 1, 4, 4), scale, dtype=torch.float64)
    x = torch.zeros_like(logits)
    x[1] = 1.0
    mu = torch.full((3, 2), scale, dtype=torch.float64)
    logvar = torch.tensor([[-20.0, 20.0], [0.0, 0.0], [20.0, -20.0]], dtype=torch.float64)
    nll, kl = reference_terms(logits, x, mu, logvar)
    value = beta_vae_loss(logits, x, mu, logvar, beta)
    assert torch.isfinite(value)
    torch.testing.assert_close(value, (nll + beta * kl).mean())
    value = capacity_loss(logits, x, mu, logvar, gamma=1000.0, C=25.0)
    assert torch.isfinite(value)
    torch.testing.assert_close(value, nll.mean() + 1000.0 * (kl.mean() - 25.0).abs())


def test_capacity_schedule_is_linear_then_flat():
    assert capacity_schedule(0) == 0.0
    assert capacity_schedule(50_000) == pytest.approx(12.5)
    assert capacity_schedule(100_000) == 25.0 and capacity_schedule(250_000) == 25.0
    values = [capacity_schedule(t, C_max=10.0, steps=100) for t in range(0, 150, 10)]
    assert values == pytest.approx([min(t / 10, 10.0) for t in range(0, 150, 10)])


def test_active_latents_counts_above_the_threshold():
    assert active_latents(torch.tensor([0.0, 0.05, 0.2, 3.0])) == 2
    assert active_latents(torch.tensor([0.0, 0.05, 0.2, 3.0]), threshold=0.01) == 3


@pytest.mark.parametrize("image_size, convs", [(32, 3), (64, 4)])
def test_conv_vae_architecture(image_size, convs):
    torch.manual_seed(0)
    model = ConvVAE(image_size)
    modules = list(model.encoder)
    conv = [m for m in modules if isinstance(m, torch.nn.Conv2d)]
    assert len(conv) == convs
    assert all(c.out_channels == 32 and c.kernel_size == (4, 4) and c.stride == (2, 2) for c in conv)
    linear = [m for m in modules if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [256, 256, 20]
    deconv = [m for m in model.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(deconv) == convs and deconv[-1].out_channels == 1
    x = torch.rand(3, 1, image_size, image_size).round()
    logits, mu, logvar, z = model(x, torch.Generator().manual_seed(0))
    assert logits.shape == x.shape and mu.shape == logvar.shape == z.shape == (3, 10)
    images = model.mean_image(z)
    assert images.shape == x.shape and 0 <= images.min() and images.max() <= 1
    assert torch.isfinite(beta_vae_loss(logits, x, mu, logvar, 4.0))


@pytest.mark.parametrize("scale", sorted(BETA_SCALES))
def test_every_scale_builds_and_trains_for_two_steps(scale):
    """The paper-scale switch must not rot: build each configuration and take two steps of each loss."""
    cfg = BETA_SCALES[scale]
    torch.manual_seed(0)
    model = ConvVAE(cfg["image_size"], cfg["z_dim"], cfg["channels"], cfg["hidden"])
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    side = cfg["image_size"]
    x = torch.rand(cfg["batch_size"], 1, side, side).round()
    for step in range(2):
        logits, mu, logvar, _ = model(x)
        C = capacity_schedule(step, cfg["C_max"], cfg["C_steps"])
        loss = (capacity_loss(logits, x, mu, logvar, cfg["gamma"], C)
                + beta_vae_loss(logits, x, mu, logvar, max(cfg["betas"])))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert math.isfinite(loss.item())


def test_the_chapters_derive_it_yourself_checkers_reject_wrong_answers():
    """The chapter's two exercises accept the right answer in another form and reject plausible slips."""
    # d/d beta of the Lagrangian F = -D - beta * (R - C)
    assert check_answer("beta_vae-ex-dF-dbeta", "C - R")
    assert check_answer("beta_vae-ex-dF-dbeta", "-(R - C)")
    assert not check_answer("beta_vae-ex-dF-dbeta", "C")              # the notes' dL/dbeta = C
    assert not check_answer("beta_vae-ex-dF-dbeta", "R - C")
    assert not check_answer("beta_vae-ex-dF-dbeta", None)
    # the smallest value of J(d) = d / (2 sigma^2) + beta/2 log(v / d): beta/2 (1 + log(v / (beta sigma^2)))
    beta, v, sigma = sp.symbols("beta v sigma")
    label = "beta_vae-ex-min-loss"
    assert check_answer(label, "beta / 2 * (1 + log(v) - log(beta) - 2 * log(sigma))")
    assert check_answer(label, beta / 2 + beta * sp.log(sp.sqrt(v) / (sp.sqrt(beta) * sigma)))
    assert not check_answer(label, "beta / 2")                                     # the rate term dropped
    assert not check_answer(label, "beta * log(v / (beta * sigma**2)) / 2")        # the distortion term dropped
    assert not check_answer(label, "beta / 2 + log(v / (beta * sigma**2)) / 2")    # R* without its weight beta
    assert not check_answer(label, "1 / 2 + beta * log(v / sigma**2) / 2")         # d* = sigma^2
    wrong = check_answer(label, "beta / 2")
    assert "Hint: put d* = beta sigma^2 into both terms" in repr(wrong) and repr(wrong).count("Hint") == 1


def test_beta_one_is_the_vae_models_own_loss_and_no_other_beta_is():
    """beta_vae_loss at beta = 1 is VAE.loss (the VAE chapter's training loss) on the same forward pass;
    at any other beta the two differ by (beta - 1) times the mean KL, so "beta = 0 is the VAE" fails."""
    torch.manual_seed(0)
    model = VAE(x_dim=16, hidden=8, z_dim=3).double()
    x = torch.rand(7, 16, dtype=torch.float64).round()
    state = torch.get_rng_state()
    vae_loss = model.loss(x)
    torch.set_rng_state(state)
    logits, mu, logvar, _ = model(x)
    mean_kl = kl_normal(mu, logvar).mean()
    assert mean_kl > 0.01
    torch.testing.assert_close(beta_vae_loss(logits, x, mu, logvar, 1.0), vae_loss, rtol=0, atol=1e-12)
    for beta in (0.0, 0.5, 4.0):
        gap = beta_vae_loss(logits, x, mu, logvar, beta) - vae_loss
        torch.testing.assert_close(gap, (beta - 1) * mean_kl, rtol=1e-12, atol=1e-12)
        assert abs(gap) > 0.5 * abs(beta - 1) * mean_kl      # the notes' beta = 0 (or any beta != 1) is not the VAE
