"""paperlib.vae's beta-VAE additions: the two losses, the C schedule and Burgess et al.'s conv VAE."""

import math

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from conftest import assert_trains_for_two_steps, each_scale
from paperlib.answers import check_answer
from paperlib.beta_vae import SCALES as BETA_SCALES
from paperlib.beta_vae import ConvVAE, active_latents, beta_vae_loss, capacity_loss, capacity_schedule
from paperlib.distributions import bernoulli_nll, kl_normal
from paperlib.vae import VAE


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


@each_scale(BETA_SCALES)
def test_every_scale_builds_and_trains_for_two_steps(cfg):
    """The paper-scale switch must not rot: build each configuration and take two steps of each loss."""
    torch.manual_seed(0)
    model = ConvVAE(cfg["image_size"], cfg["z_dim"], cfg["channels"], cfg["hidden"])
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    side = cfg["image_size"]
    x = torch.rand(cfg["batch_size"], 1, side, side).round()
    step = iter(range(2))

    def both_losses(xb):
        logits, mu, logvar, _ = model(xb)
        C = capacity_schedule(next(step), cfg["C_max"], cfg["C_steps"])
        return (capacity_loss(logits, xb, mu, logvar, cfg["gamma"], C)
                + beta_vae_loss(logits, xb, mu, logvar, max(cfg["betas"])))

    assert_trains_for_two_steps(model, both_losses, x, optimizer, batch_size=cfg["batch_size"] // 2)


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


# --- the TC decomposition and the mutual information gap (paperlib.disentanglement) ---------------

import itertools  # noqa: E402

from sklearn.metrics import mutual_info_score  # noqa: E402
from torch.distributions import Categorical  # noqa: E402

from paperlib.disentanglement import (discrete_entropy, discrete_mutual_info, discretize,  # noqa: E402
                                      mig, mutual_information_gap)
from paperlib.proofs import Derivation  # noqa: E402


def grid(*sizes):
    """Every combination of factor values (independent, uniform factors), as an integer tensor."""
    return torch.cartesian_prod(*[torch.arange(s) for s in sizes])


def test_discretize_uses_the_bins_of_torch_histc():
    z = torch.randn(500, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for bins in (1, 7, 20):
        binned = discretize(z, bins)
        assert binned.min() >= 0 and binned.max() <= bins - 1
        for j in range(3):
            counts = torch.bincount(binned[:, j], minlength=bins).double()
            expected = torch.histc(z[:, j], bins, z[:, j].min().item(), z[:, j].max().item())
            torch.testing.assert_close(counts, expected, rtol=0, atol=0)
    assert discretize(torch.ones(4, 2)).eq(0).all()   # a constant latent: one bin


def test_entropy_and_mutual_info_match_torch_and_sklearn():
    g = torch.Generator().manual_seed(1)
    z = torch.randint(0, 5, (400, 3), generator=g)
    v = torch.stack([z[:, 0] // 2, torch.randint(0, 3, (400,), generator=g)], dim=1) * 7  # any values
    for k in range(2):
        p = torch.bincount(torch.unique(v[:, k], return_inverse=True)[1]).double() / 400
        torch.testing.assert_close(discrete_entropy(v)[k], Categorical(probs=p).entropy())
    info = discrete_mutual_info(z, v)
    for j, k in itertools.product(range(3), range(2)):
        assert info[j, k].item() == pytest.approx(mutual_info_score(z[:, j], v[:, k]), abs=1e-12)
    # I(z; v) = H(z) + H(v) - H(z, v)
    pair = torch.stack([z[:, 0] * 10 + v[:, 0], z[:, 0]], 1)
    h_joint = discrete_entropy(pair)[0]
    torch.testing.assert_close(info[0, 0], discrete_entropy(z)[0] + discrete_entropy(v)[0] - h_joint)


def test_mig_is_one_for_a_code_that_copies_each_factor_into_its_own_latent():
    v = grid(4, 6, 3)
    noise = torch.zeros(len(v), 2)                             # two unused latents
    code = torch.cat([v.double()[:, [2, 0, 1]], noise.double()], 1)   # order does not matter
    assert mig(code, v).item() == pytest.approx(1.0, abs=1e-12)
    # a monotone change of scale per latent changes nothing
    assert mig(torch.cat([code[:, :1] * 3 - 1, code[:, 1:]], 1), v).item() == pytest.approx(1.0, abs=1e-12)


def test_mig_is_zero_for_a_code_that_duplicates_or_mixes_factors():
    v = grid(5, 5).double()
    duplicated = torch.stack([v[:, 0], v[:, 0], v[:, 1], v[:, 1]], 1)
    assert mig(duplicated, grid(5, 5)).item() == pytest.approx(0.0, abs=1e-12)
    mixed = torch.stack([v[:, 0] + v[:, 1], v[:, 0] - v[:, 1]], 1)   # a 45-degree rotation
    assert mig(mixed, grid(5, 5)).item() == pytest.approx(0.0, abs=1e-12)


def test_mig_of_a_hand_computed_code():
    """v1, v2 fair and independent bits, z = (v1, v1 + v2): I(z1; v1) = log 2, I(z2; v1) = I(z2; v2)
    = log(2)/2, I(z1; v2) = 0, so both gaps are 1/2 and MIG = 1/2 (the exercise beta_vae-ex-mig)."""
    v = grid(2, 2)
    z = torch.stack([v[:, 0], v[:, 0] + v[:, 1]], 1).double()
    info = discrete_mutual_info(discretize(z), v)
    log2 = math.log(2)
    torch.testing.assert_close(info, torch.tensor([[log2, 0.0], [log2 / 2, log2 / 2]], dtype=torch.float64))
    gaps = mutual_information_gap(info, discrete_entropy(v))
    torch.testing.assert_close(gaps, torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert mig(z, v).item() == pytest.approx(0.5, abs=1e-12)
    # the XOR code z2 = v1 xor v2 says nothing about v2 alone: MIG misses what only z1 and z2 together hold
    xor = torch.stack([v[:, 0], v[:, 0] ^ v[:, 1]], 1).double()
    assert mig(xor, v).item() == pytest.approx(0.5, abs=1e-12)


def test_mig_exercise_checker():
    label = "beta_vae-ex-mig"
    assert check_answer(label, "1/2")
    assert check_answer(label, sp.log(2) / (2 * sp.log(2)))
    assert not check_answer(label, "1")           # z2 counted as uninformative about v1
    assert not check_answer(label, "0")           # both latents treated as equally informative
    assert not check_answer(label, "log(2)/2")    # the gap not divided by H(v_k)


def _decomposition(prior_table=None):
    """The TC decomposition on the chapter's instance; ``prior_table`` a non-factorised p(z)."""
    R = sp.Rational
    Z = list(itertools.product((0, 1), (0, 1)))
    p_n = {0: R(1, 3), 1: R(2, 3)}
    q_zn = {0: dict(zip(Z, [R(9, 16), R(3, 16), R(3, 16), R(1, 16)])),  # Bern(1/4) x Bern(1/4)
            1: dict(zip(Z, [R(1, 12), R(1, 6), R(1, 4), R(1, 2)]))}  # Bern(3/4) x Bern(2/3)
    q_z = {z: sum(p_n[n] * q_zn[n][z] for n in p_n) for z in Z}
    q_j = [{a: sum(q_z[z] for z in Z if z[j] == a) for a in (0, 1)} for j in (0, 1)]
    p_j = [{0: R(1, 2), 1: R(1, 2)}, {0: R(2, 3), 1: R(1, 3)}]
    prior = prior_table or {z: p_j[0][z[0]] * p_j[1][z[1]] for z in Z}
    if prior_table:
        p_j = [{a: sum(prior[z] for z in Z if z[j] == a) for a in (0, 1)} for j in (0, 1)]
    start = sum(p_n[n] * q_zn[n][z] * sp.log(q_zn[n][z] / prior[z]) for n in p_n for z in Z)
    mi = sum(p_n[n] * q_zn[n][z] * sp.log(q_zn[n][z] / q_z[z]) for n in p_n for z in Z)
    tc = sum(q_z[z] * sp.log(q_z[z] / (q_j[0][z[0]] * q_j[1][z[1]])) for z in Z)
    dw = sum(q_j[j][a] * sp.log(q_j[j][a] / p_j[j][a]) for j in (0, 1) for a in (0, 1))
    return Derivation(start, scope="instance: test").step(mi + tc + dw, why="decomposition")


def test_tc_decomposition_holds_for_a_factorised_prior_and_fails_for_another():
    _decomposition().check()
    R = sp.Rational
    correlated = dict(zip(itertools.product((0, 1), (0, 1)), [R(1, 2), R(1, 6), R(1, 6), R(1, 6)]))
    with pytest.raises(AssertionError, match="fails"):
        _decomposition(correlated).check()
