"""paperlib.vae against torch.distributions, on a conjugate model, and on bad input."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from conftest import each_scale
from paperlib.train import fit
from paperlib.distributions import bernoulli_nll, gaussian_nll, kl_normal, log_normal, reparameterize
from paperlib.vae import SCALES, VAE, elbo, iw_bound



pytestmark = pytest.mark.usefixtures("float64")  # exact comparisons in double precision


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 5), dim=st.integers(1, 8), seed=st.integers(0, 2**16),
       scale=st.floats(0.1, 4.0))
def test_kl_normal_matches_torch_distributions(batch, dim, seed, scale):
    g = torch.Generator().manual_seed(seed)
    mu = scale * torch.randn(batch, dim, generator=g)
    logvar = scale * torch.randn(batch, dim, generator=g)
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = Independent(Normal(torch.zeros(dim), torch.ones(dim)), 1)
    expected = kl_divergence(q, p)
    assert kl_normal(mu, logvar).shape == (batch,)
    torch.testing.assert_close(kl_normal(mu, logvar), expected, rtol=1e-10, atol=1e-10)


def test_kl_normal_is_zero_only_at_the_prior():
    zero = torch.zeros(3, 4)
    assert torch.equal(kl_normal(zero, zero), torch.zeros(3))
    assert (kl_normal(zero + 0.1, zero) > 0).all() and (kl_normal(zero, zero + 0.1) > 0).all()


def test_reparameterized_samples_have_the_right_mean_and_variance():
    n = 200_000
    mu = torch.tensor([[-1.5, 0.0, 2.0]]).expand(n, 3)
    logvar = torch.log(torch.tensor([[0.25, 1.0, 4.0]])).expand(n, 3)
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    # standard errors: sigma / sqrt(n) for the mean, sigma^2 * sqrt(2 / n) for the variance
    sigma2 = torch.tensor([0.25, 1.0, 4.0])
    assert (z.mean(0) - mu[0]).abs().le(5 * (sigma2 / n).sqrt()).all()
    assert (z.var(0) - sigma2).abs().le(5 * sigma2 * math.sqrt(2 / n)).all()


def test_reparameterization_passes_gradients_to_mu_and_logvar():
    mu = torch.zeros(4, 2, requires_grad=True)
    logvar = torch.zeros(4, 2, requires_grad=True)
    reparameterize(mu, logvar, torch.Generator().manual_seed(1)).pow(2).sum().backward()
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0


def test_likelihoods_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 1, 4, 4, generator=g)
    x = torch.rand(5, 1, 4, 4, generator=g).round()
    expected = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_nll(logits, x), expected)
    mean, y = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
    expected = -Normal(mean, math.sqrt(0.3)).log_prob(y).sum(1)
    torch.testing.assert_close(gaussian_nll(mean, y, var=0.3), expected)
    z, m, lv = torch.randn(3, 2, generator=g), torch.randn(3, 2, generator=g), torch.randn(3, 2, generator=g)
    torch.testing.assert_close(log_normal(z, m, lv), Normal(m, (0.5 * lv).exp()).log_prob(z).sum(1))


def conjugate(s2: float, x: float):
    """z ~ N(0, 1), x | z ~ N(z, s2): log p(x) and the exact posterior's (mean, logvar)."""
    log_px = Normal(0.0, math.sqrt(1 + s2)).log_prob(torch.tensor(x))
    return log_px, x / (1 + s2), math.log(s2 / (1 + s2))


def mc_elbo(x, m, logvar, s2, n=20_000, kl="analytic"):
    mu = torch.full((n, 1), m)
    lv = torch.full((n, 1), logvar)
    z = reparameterize(mu, lv, torch.Generator().manual_seed(3))
    xs = torch.full((n, 1), x)
    return elbo(xs, z, mu, lv, z=z, likelihood="gaussian", kl=kl, var=s2)


@pytest.mark.parametrize("m, logvar", [(0.0, 0.0), (1.0, -1.0), (-2.0, 1.0), (0.5, -3.0)])
def test_elbo_is_below_log_evidence_on_a_conjugate_model(m, logvar):
    s2, x = 0.5, 1.3
    log_px, _, _ = conjugate(s2, x)
    values = mc_elbo(x, m, logvar, s2)
    # the Monte Carlo mean is within 5 standard errors of the true ELBO, which is < log p(x)
    assert values.mean() + 5 * values.std() / math.sqrt(len(values)) < log_px


def test_elbo_equals_log_evidence_at_the_exact_posterior():
    s2, x = 0.5, 1.3
    log_px, post_mean, post_logvar = conjugate(s2, x)
    # with q = p(z|x), log p(x, z) - log q(z) = log p(x) for every z: zero-variance estimate
    values = mc_elbo(x, post_mean, post_logvar, s2, n=100, kl="mc")
    torch.testing.assert_close(values, torch.full_like(values, log_px.item()))
    # and the analytic-KL estimator is unbiased for the same value
    analytic = mc_elbo(x, post_mean, post_logvar, s2)
    assert abs(analytic.mean() - log_px) < 5 * analytic.std() / math.sqrt(len(analytic))


def test_vae_shapes_and_elbo():
    model = VAE(x_dim=16, hidden=8, z_dim=3)
    x = torch.rand(7, 1, 4, 4)
    decoded, mu, logvar, z = model(x)
    assert decoded.shape == (7, 16) and mu.shape == logvar.shape == z.shape == (7, 3)
    assert model.elbo(x).shape == (7,)
    assert model.sample(5).shape == (5, 16)
    assert 0 <= model.sample(5).min() and model.sample(5).max() <= 1
    gaussian = VAE(x_dim=16, hidden=8, z_dim=3, likelihood="gaussian", var=0.1)
    assert torch.isfinite(gaussian.loss(x))


@each_scale(SCALES)
def test_every_scale_builds_and_trains_for_two_steps(cfg):
    """The paper-scale switch must not rot: build each configuration and take two steps."""
    torch.manual_seed(0)
    model = VAE(hidden=cfg["hidden"], z_dim=cfg["z_dim"]).float()
    x = torch.rand(2 * cfg["batch_size"], 1, 28, 28, dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    history = fit(model, model.loss, x, optimizer, epochs=1, batch_size=cfg["batch_size"],
                  progress=False)
    assert len(history.loss) == 1 and math.isfinite(history.loss[0])


def test_importance_sampled_log_px_matches_quadrature_in_one_dimension():
    """With a 1-D latent, log p(x) = log ∫ p(z) p(x|z) dz is a quadrature: the estimate must
    agree with it and sit above the ELBO."""
    torch.manual_seed(0)
    model = VAE(x_dim=6, hidden=8, z_dim=1)
    x = torch.rand(3, 6).round()
    grid = torch.linspace(-9, 9, 20_001).unsqueeze(1)
    log_joint = torch.stack([-bernoulli_nll(model.decode(grid), xi.expand(len(grid), 6))
                             for xi in x]) + Normal(0.0, 1.0).log_prob(grid).squeeze(1)
    exact = torch.logsumexp(log_joint, dim=1) + math.log(grid[1, 0] - grid[0, 0])
    estimate = model.log_px(x, samples=20_000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(estimate, exact, atol=0.02, rtol=0)
    elbo_mean = torch.stack([model.elbo(x, generator=torch.Generator().manual_seed(k))
                             for k in range(2000)]).mean(0)
    assert (elbo_mean < exact).all()
    with pytest.raises(ValueError, match="^samples:"):
        model.log_px(x, samples=0)


# --- the importance-weighted bound (Burda et al., 2016): log_weights and iw_bound

def conjugate_log_weights(m: float, logvar: float, s2: float, x: float, samples: int, seed: int = 0):
    """log w = log p(x|z) + log p(z) - log q(z|x), z ~ N(m, exp(logvar)), one example: (samples, 1)."""
    mu = torch.full((samples, 1), m)
    lv = torch.full((samples, 1), logvar)
    z = reparameterize(mu, lv, torch.Generator().manual_seed(seed))
    zero = torch.zeros_like(z)
    return (log_normal(torch.full_like(z, x), z, torch.full_like(z, math.log(s2)))
            + log_normal(z, zero, zero) - log_normal(z, mu, lv))[:, None]


def test_iw_bound_rises_with_k_and_stays_below_log_evidence():
    """A poor q on the conjugate model: L_1 is the ELBO, L_k rises with k, and every L_k stays
    below log p(x) (Monte Carlo, with 5 standard errors of room)."""
    s2, x, m, logvar = 0.64, 1.5, 0.0, math.log(0.16)
    log_px, post_mean, post_logvar = conjugate(s2, x)
    log_w = conjugate_log_weights(m, logvar, s2, x, samples=400_000)
    kl_post = 0.5 * (post_logvar - logvar + (math.exp(logvar) + (m - post_mean) ** 2)
                     / math.exp(post_logvar) - 1)
    exact_elbo = log_px.item() - kl_post
    bounds, errors = {}, {}
    for k in (1, 10, 100):
        groups = log_w.reshape(-1, k)
        draws = torch.logsumexp(groups, dim=1) - math.log(k)
        bounds[k] = iw_bound(log_w, k).item()
        errors[k] = draws.std().item() / math.sqrt(len(draws))
        assert bounds[k] == pytest.approx(draws.mean().item(), abs=1e-12)
        assert bounds[k] + 5 * errors[k] < log_px
    assert abs(bounds[1] - exact_elbo) < 5 * errors[1]
    assert bounds[1] + 5 * errors[1] < bounds[10] and bounds[10] + 5 * errors[10] < bounds[100]
    # the distance to the ELBO is a lower bound on KL(q || p(z|x)), not equal to it
    assert bounds[100] - exact_elbo + 5 * errors[100] < kl_post


def test_iw_bound_without_the_log_k_would_overshoot_log_evidence():
    """The check above can fail: dropping log k from the bound puts it above log p(x)."""
    s2, x = 0.64, 1.5
    log_px, _, _ = conjugate(s2, x)
    log_w = conjugate_log_weights(0.0, math.log(0.16), s2, x, samples=100_000)
    wrong = torch.logsumexp(log_w.reshape(-1, 100), dim=1).mean()   # log sum_k w_k, no 1/k
    assert wrong > log_px + 1
    assert iw_bound(log_w, 100) < log_px


def test_iw_bound_is_exact_for_every_k_at_the_exact_posterior():
    s2, x = 0.5, 1.3
    log_px, post_mean, post_logvar = conjugate(s2, x)
    log_w = conjugate_log_weights(post_mean, post_logvar, s2, x, samples=100)
    for k in (1, 5, 100):
        torch.testing.assert_close(iw_bound(log_w, k), log_px.reshape(1))


def test_log_px_is_the_iw_bound_of_its_log_weights():
    torch.manual_seed(0)
    model = VAE(x_dim=6, hidden=8, z_dim=2)
    x = torch.rand(3, 6).round()
    log_w = model.log_weights(x, samples=20, generator=torch.Generator().manual_seed(4))
    assert log_w.shape == (20, 3)
    estimate = model.log_px(x, samples=20, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(estimate, iw_bound(log_w, 20))
    torch.testing.assert_close(iw_bound(log_w, 1), log_w.mean(0))


# --- lem-reparam in code: the change of variables carries the Jacobian sigma

def test_log_density_of_a_reparameterized_sample_carries_the_jacobian():
    """log p_z(mu + sigma eps) + sum_j log sigma_j = log p_eps(eps): the chapter's density identity,
    per example. The log sigma term is the Jacobian; the control shows that dropping it (the
    slip the chapter's pitfall refutes) leaves a gap of exactly sum_j log sigma_j."""
    g = torch.Generator().manual_seed(5)
    mu, logvar = torch.randn(6, 3, generator=g), 2 * torch.randn(6, 3, generator=g)
    eps = torch.randn(6, 3, generator=torch.Generator().manual_seed(9))
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(9))
    torch.testing.assert_close(z, mu + (0.5 * logvar).exp() * eps)     # the same eps
    log_sigma = 0.5 * logvar.sum(1)
    standard = log_normal(eps, torch.zeros_like(eps), torch.zeros_like(eps))
    torch.testing.assert_close(log_normal(z, mu, logvar) + log_sigma, standard)
    # without the Jacobian the two sides differ, by sum_j log sigma_j, which is not small here
    assert log_sigma.abs().min() > 0.05
    assert ((log_normal(z, mu, logvar) - standard).abs() > 0.05).all()


# --- the chapter's exercises, marked through paperlib.answers

def test_the_kl_exercise_accepts_other_forms_and_rejects_slips():
    from paperlib.answers import check_answer

    assert check_answer("vae-ex-kl-general",
                        "(s1**2 + mu1**2 - 2*mu1*mu2 + mu2**2)/(2*s2**2) + log(s2) - log(s1) - 1/2")
    assert check_answer("vae-ex-kl-general", "log(s2**2/s1**2)/2 + (s1/s2)**2/2 + (mu2 - mu1)**2/(2*s2**2) - 1/2")
    for wrong in ["log(s2/s1) + (s1**2 + (mu1 - mu2)**2) / s2**2 - 1/2",        # the 1/2 dropped
                  "log(s1/s2) + (s1**2 + (mu1 - mu2)**2) / (2*s2**2) - 1/2",    # the ratio upside down
                  "log(s2/s1) + (s2**2 + (mu1 - mu2)**2) / (2*s1**2) - 1/2",    # KL(p || q)
                  "log(s2/s1) + (s1**2 + (mu1 - mu2)**2) / (2*s2**2)"]:         # the -1/2 dropped
        verdict = check_answer("vae-ex-kl-general", wrong)
        assert not verdict and "Hint: write log q - log p" in repr(verdict), wrong
    assert repr(check_answer("vae-ex-kl-general", None)).startswith("Not answered yet. Hint:")


def test_the_kl_exercise_answer_is_the_expectation_sympy_computes():
    """The expected answer is typed in paperlib.answers; here it is derived independently."""
    import sympy as sp
    from sympy.stats import E, Normal as SNormal, density

    from paperlib.answers import check_answer

    mu1, mu2 = sp.symbols("mu1 mu2", real=True)
    s1, s2 = sp.symbols("s1 s2", positive=True)
    Z1 = SNormal("Z1", mu1, s1)
    log_ratio = sp.log(density(SNormal("Q", mu1, s1))(Z1) / density(SNormal("P", mu2, s2))(Z1))
    assert check_answer("vae-ex-kl-general", E(sp.expand_log(log_ratio, force=True)))


def test_the_kl_gradient_exercise():
    from paperlib.answers import check_answer

    assert check_answer("vae-ex-kl-gradient", "exp(ell)/2 - 1/2")
    for wrong in ["exp(ell) - 1", "(exp(ell) - ell)/2", "(exp(ell) + 1)/2", "(mu**2 + exp(ell) - 1)/2"]:
        assert not check_answer("vae-ex-kl-gradient", wrong), wrong


# --- ELBO surgery, active units and the strong decoder (the posterior-collapse sections)

def _surgery_reference(mu, logvar, z):
    """The two terms of prop-elbo-surgery at draws z, from torch.distributions."""
    from torch.distributions import Categorical, MixtureSameFamily

    encoder = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    aggregate = MixtureSameFamily(Categorical(logits=torch.zeros(len(mu))), encoder)
    prior = Independent(Normal(torch.zeros(mu.shape[1]), torch.ones(mu.shape[1])), 1)
    log_aggregate = aggregate.log_prob(z)
    return (encoder.log_prob(z) - log_aggregate).mean(), (log_aggregate - prior.log_prob(z)).mean()


def test_elbo_surgery_matches_torch_distributions():
    from paperlib.vae import elbo_surgery

    g = torch.Generator().manual_seed(3)
    mu, logvar = torch.randn(7, 3, generator=g), 0.5 * torch.randn(7, 3, generator=g)
    info, marginal = elbo_surgery(mu, logvar, samples=1, generator=torch.Generator().manual_seed(5))
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(5))      # the same draws
    info_ref, marginal_ref = _surgery_reference(mu, logvar, z)
    torch.testing.assert_close(info, info_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(marginal, marginal_ref, rtol=1e-10, atol=1e-10)


def test_elbo_surgery_adds_up_to_the_average_kl_and_respects_log_n():
    from paperlib.vae import elbo_surgery

    g = torch.Generator().manual_seed(4)
    mu, logvar = 2 * torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g) - 1
    info, marginal = elbo_surgery(mu, logvar, samples=4000, generator=g)
    assert abs((info + marginal).item() - kl_normal(mu, logvar).mean().item()) < 0.05
    assert 0 < info.item() <= math.log(6)
    # the wrong reading of the surgery: the average KL as KL(q(z) || p(z)) alone misses I_q = info
    assert kl_normal(mu, logvar).mean().item() - marginal.item() > 1.0


def test_elbo_surgery_is_zero_when_every_posterior_is_the_prior():
    from paperlib.vae import elbo_surgery

    zero = torch.zeros(5, 3)
    info, marginal = elbo_surgery(zero, zero, samples=3, generator=torch.Generator().manual_seed(0))
    assert abs(info.item()) < 1e-12 and abs(marginal.item()) < 1e-12


def test_latent_activity_is_the_variance_of_the_posterior_means():
    from paperlib.vae import active_units, latent_activity

    g = torch.Generator().manual_seed(6)
    mu = torch.randn(50, 4, generator=g) * torch.tensor([1.0, 0.3, 0.05, 0.0])
    torch.testing.assert_close(latent_activity(mu), torch.cov(mu.T).diagonal())
    assert latent_activity(mu)[3] == 0                                     # a collapsed latent
    assert active_units(mu) == 2 and active_units(mu, threshold=0.0) == 3


def _autoregressive_vae():
    """A small AutoregressiveVAE (6 pixels, 5 hidden units, 2 latents) whose pixel-to-pixel weights
    are random rather than the zeros it starts from, so that every allowed connection is in use."""
    from paperlib.vae import AutoregressiveVAE

    model = AutoregressiveVAE(x_dim=6, hidden=5, z_dim=2)
    with torch.no_grad():
        model.visible.weight.normal_(generator=torch.Generator().manual_seed(1))
    return model


def test_autoregressive_vae_logit_i_sees_only_earlier_pixels():
    model = _autoregressive_vae()
    with torch.no_grad():
        model.encoder[0].weight.zero_()                # q(z|x) no longer depends on x
    x = torch.rand(1, 6, generator=torch.Generator().manual_seed(2))
    for j in range(6):
        x_changed = x.clone()
        x_changed[0, j] = 1 - x[0, j] + 0.5
        same = [model(v, torch.Generator().manual_seed(0))[0] for v in (x, x_changed)]
        moved = (same[0] - same[1]).abs()[0] > 1e-9
        assert not moved[:j + 1].any() and moved[j + 1:].all(), j


def test_autoregressive_vae_elbo_matches_torch_distributions():
    model = _autoregressive_vae()
    x = torch.rand(4, 6, generator=torch.Generator().manual_seed(2)).round()
    logits, mu, logvar, _ = model(x, torch.Generator().manual_seed(3))
    expected = (Independent(Bernoulli(logits=logits), 1).log_prob(x)
                - kl_divergence(Independent(Normal(mu, torch.exp(0.5 * logvar)), 1),
                                Independent(Normal(torch.zeros(2), torch.ones(2)), 1)))
    torch.testing.assert_close(model.elbo(x, generator=torch.Generator().manual_seed(3)), expected)
    with pytest.raises(NotImplementedError):
        model.sample(2)


def test_the_surgery_exercise():
    from paperlib.answers import check_answer

    assert check_answer("vae-ex-surgery-info", "log(2) + a*log(a) + (1 - a)*log(1 - a)")
    assert check_answer("vae-ex-surgery-info", "(a*log(4*a**2) + (1 - a)*log(4*(1 - a)**2))/2")
    for wrong in ["a*log(a) + (1 - a)*log(1 - a)",            # the log 2 dropped
                  "log(2) - a*log(a) - (1 - a)*log(1 - a)",   # log 2 + H(a): the sign of the entropy
                  "0",                                          # KL(q(z) || p(z)) alone: the pitfall
                  "a*log(2*a)"]:                                # one value of z only
        assert not check_answer("vae-ex-surgery-info", wrong), wrong
