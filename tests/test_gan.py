"""paperlib.gan against closed forms, torch.distributions and quadrature, and on bad input."""

import math

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from torch.distributions import Bernoulli, Categorical, Normal, kl_divergence as torch_kl

from paperlib import gan, ring
from paperlib.answers import check_answer
from paperlib.claims import ClaimError, claim


def _dirichlet(k, n, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    w = -torch.log(torch.rand(n, k, generator=g, dtype=dtype))
    return w / w.sum(-1, keepdim=True)


def _twice_jsd(p, q):
    """2 JSD(p, q) as KL(p || m) + KL(q || m) with m = (p + q) / 2 (Theorem 1's proof), by
    torch.distributions."""
    m = Categorical(probs=(p + q) / 2)
    return torch_kl(Categorical(probs=p), m) + torch_kl(Categorical(probs=q), m)


@settings(max_examples=40, deadline=None)
@given(k=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_virtual_criterion_is_minus_log4_plus_twice_jsd(k, seed):
    p, q = _dirichlet(k, 3, seed), _dirichlet(k, 3, seed + 1)
    c = gan.virtual_criterion(p, q)
    torch.testing.assert_close(c, -math.log(4) + 2 * gan.js_divergence(p, q), rtol=0, atol=1e-12)
    # and via the two KLs to the mixture (Theorem 1's proof), with torch.distributions
    torch.testing.assert_close(c, -math.log(4) + _twice_jsd(p, q), rtol=0, atol=1e-10)
    assert bool((c >= -math.log(4) - 1e-12).all())


def test_virtual_criterion_minimum_only_at_equality():
    p = _dirichlet(5, 1, 0)
    torch.testing.assert_close(gan.virtual_criterion(p, p), torch.tensor([-math.log(4)], dtype=torch.float64))
    q = _dirichlet(5, 1, 1)
    assert gan.virtual_criterion(p, q).item() > -math.log(4) + 1e-6


def test_identity_by_quadrature_for_two_gaussians():
    pd, pg = Normal(0.0, 1.0), Normal(1.5, 0.7)

    def dens(d, x):
        return math.exp(d.log_prob(torch.tensor(x, dtype=torch.float64)).item())

    def integrand(x):
        a, b = dens(pd, x), dens(pg, x)
        return a * math.log(a / (a + b)) + b * math.log(b / (a + b))

    def jsd_part(x):
        a, b = dens(pd, x), dens(pg, x)
        m = (a + b) / 2
        return 0.5 * a * math.log(a / m) + 0.5 * b * math.log(b / m)

    c, _ = integrate.quad(integrand, -12, 12, limit=200, epsabs=1e-13)
    jsd, _ = integrate.quad(jsd_part, -12, 12, limit=200, epsabs=1e-13)
    assert abs(c - (-math.log(4) + 2 * jsd)) < 1e-8


def test_js_divergence_disjoint_supports_is_log2_and_float64_stays():
    p = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
    q = torch.tensor([0.0, 0.0, 0.25, 0.75], dtype=torch.float64)
    out = gan.js_divergence(p, q)
    assert out.dtype == torch.float64 and abs(out.item() - math.log(2)) < 1e-15
    assert gan.optimal_discriminator(p, q).dtype == torch.float64
    assert gan.js_divergence(p.float(), q.float()).dtype == torch.float32


@settings(max_examples=60, deadline=None)
@given(a=st.floats(0, 1e6), b=st.floats(0, 1e6))
def test_optimal_discriminator_maximises_the_pointwise_objective(a, b):
    d = gan.optimal_discriminator(torch.tensor([a], dtype=torch.float64),
                                  torch.tensor([b], dtype=torch.float64)).item()
    assert 0 <= d <= 1 and math.isfinite(d)
    if a + b == 0:
        assert d == 0.5
        return
    assert d == pytest.approx(a / (a + b), rel=1e-12)
    if 1e-3 < d < 1 - 1e-3:
        # f'(d) = a/d - b/(1 - d) = 0 and f''(d) = -a/d^2 - b/(1 - d)^2 < 0
        assert abs(a / d - b / (1 - d)) <= 1e-6 * (a / d + b / (1 - d))
        assert -a / d**2 - b / (1 - d) ** 2 < 0


@settings(max_examples=60, deadline=None)
@given(logit=st.floats(-30, 30))
def test_losses_on_logits_match_probabilities_and_stay_finite(logit):
    l = torch.tensor([logit], dtype=torch.float64)
    d = torch.sigmoid(l)
    for value in (gan.minimax_generator_loss(l), gan.non_saturating_generator_loss(l),
                  gan.discriminator_loss(l, l)):
        assert torch.isfinite(value)
    bern = Bernoulli(logits=l)
    log_d, log_1md = bern.log_prob(torch.ones_like(l)), bern.log_prob(torch.zeros_like(l))
    torch.testing.assert_close(gan.minimax_generator_loss(l), log_1md.mean(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gan.non_saturating_generator_loss(l), -log_d.mean(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gan.discriminator_loss(l, l), -(log_d + log_1md).mean(),
                               rtol=1e-9, atol=1e-12)
    if abs(logit) < 10:  # where sigmoid-then-log is still accurate
        torch.testing.assert_close(gan.minimax_generator_loss(l), torch.log1p(-d).mean())


def test_minimax_gradient_vanishes_when_d_is_confident_non_saturating_does_not():
    l = torch.tensor([-30.0], dtype=torch.float64, requires_grad=True)
    gan.minimax_generator_loss(l).backward()
    g_minimax = l.grad.abs().item()
    l.grad = None
    gan.non_saturating_generator_loss(l).backward()
    assert g_minimax < 1e-12 and abs(l.grad.item() + 1) < 1e-12


def test_parzen_matches_a_gaussian_mixture_from_torch_distributions():
    g = torch.Generator().manual_seed(0)
    samples = torch.randn(50, 3, generator=g, dtype=torch.float64)
    test = torch.randn(7, 3, generator=g, dtype=torch.float64)
    sigma = 0.4
    mix = torch.distributions.MixtureSameFamily(
        Categorical(probs=torch.full((50,), 1 / 50, dtype=torch.float64)),
        torch.distributions.Independent(Normal(samples, sigma), 1))
    torch.testing.assert_close(gan.parzen_log_likelihood(samples, test, sigma, batch_size=3),
                               mix.log_prob(test))
    far = gan.parzen_log_likelihood(samples, test + 1e3, 1e-3)
    assert torch.isinf(far).all() or torch.isfinite(far).all()  # no NaN at extreme scales
    assert not torch.isnan(far).any()


def test_ring_and_mode_coverage():
    g = torch.Generator().manual_seed(0)
    x = ring.ring_of_gaussians(4000, generator=g)
    assert ring.mode_coverage(x) == (8, pytest.approx(1.0, abs=0.01))
    one_mode = x[torch.cdist(x, torch.tensor([[2.0, 0.0]])).squeeze(1) < 0.2]
    covered, _ = ring.mode_coverage(one_mode)
    assert covered == 1


def test_networks_and_training_steps_at_both_scales():
    g = torch.Generator().manual_seed(0)
    for name, s in gan.SCALES.items():
        G = gan.Generator(s["z_dim"], 784, s["g_hidden"], sigmoid=True)
        D = gan.Discriminator(784, s["d_hidden"], s["pieces"], s["dropout"])
        real = torch.rand(400, 784, generator=g)
        h = gan.train_gan(G, D, lambda n: real[torch.randint(400, (n,), generator=g)], steps=2,
                          batch_size=8, lr=s["lr"], generator=g, every=1, record=lambda step: step)
        assert len(h.discriminator.step_loss) == 2 and h.records == [1, 2], name
        x = G.sample(5, g)
        assert x.shape == (5, 784) and bool(((x >= 0) & (x <= 1)).all())
        assert D.prob(x).shape == (5,)
    G, D = gan.Generator(1, 1, (4,)), gan.Discriminator(1, (4,), 2, 0.0, centre=4.0, scale=2.0)
    h = gan.train_gan(G, D, lambda n: torch.randn(n, 1, generator=g), steps=3, batch_size=4,
                      loss="minimax", k=2, generator=g)
    assert len(h.generator.step_loss) == 3


def test_derive_it_yourself_checkers_accept_other_forms_and_reject_plausible_wrong_answers():
    """The chapter's three blanks, marked through paperlib.answers by their exercise labels."""
    a, b = sp.symbols("a b", positive=True)
    assert check_answer("gan-ex-d-star", "a/(a+b)")
    assert check_answer("gan-ex-d-star", "1/(1 + b/a)")
    assert check_answer("gan-ex-d-star", a / (a + b))
    for wrong in ("b/(a+b)", "a/b", "1/2"):
        assert not check_answer("gan-ex-d-star", wrong), wrong
    assert check_answer("gan-ex-c-at-optimum", "-log(4)")
    assert check_answer("gan-ex-c-at-optimum", "2*log(1/2)")
    for wrong in ("-log(2)", "log(4)", "0"):
        assert not check_answer("gan-ex-c-at-optimum", wrong), wrong
    assert check_answer("gan-ex-ns-gradient", "-1/D")
    assert check_answer("gan-ex-ns-gradient", sp.diff(-sp.log(sp.Symbol("D")), sp.Symbol("D")))
    for wrong in ("-1/(1-D)", "1/D", "-log(D)"):
        assert not check_answer("gan-ex-ns-gradient", wrong), wrong
    verdict = check_answer("gan-ex-ns-gradient", "1/D")
    assert "Not quite" in repr(verdict) and "the derivative of log D is 1/D" in repr(verdict)
    assert repr(check_answer("gan-ex-d-star", None)).startswith("Not answered yet. Hint:")


def test_a_non_finite_loss_stops_training_before_any_weight_is_updated():
    G, D = gan.Generator(2, 1, (4,)), gan.Discriminator(1, (4,))
    before = [p.detach().clone() for p in (*G.parameters(), *D.parameters())]
    with pytest.raises(FloatingPointError, match=r"step 1 \(discriminator\)"):
        gan.train_gan(G, D, lambda n: torch.full((n, 1), float("nan")), steps=3, batch_size=4)
    after = [p.detach() for p in (*G.parameters(), *D.parameters())]
    assert all(torch.equal(a, b) for a, b in zip(before, after)), "an optimiser step ran on a NaN loss"


def test_lagrangian_constraints_force_e_lambda_one_half():
    """Stationarity a_i = e^l (a_i + b_i), b_i = e^m (a_i + b_i) plus sum a = sum b = 1 leave no choice."""
    a1, a2, b1, b2, b3 = sp.symbols("a1 a2 b1 b2 b3", positive=True)
    t, u = sp.symbols("t u", positive=True)  # t = e^lambda, u = e^mu
    a = [a1, a2, 1 - a1 - a2]
    b = [b1, b2, b3]
    equations = [ai - t * (ai + bi) for ai, bi in zip(a, b)] + [sum(b) - 1]
    solutions = sp.solve(equations, [b1, b2, b3, t], dict=True)
    assert solutions == [{b1: a1, b2: a2, b3: 1 - a1 - a2, t: sp.Rational(1, 2)}]
    # with e^mu too: e^lambda + e^mu = 1 follows, and e^mu = 1/2 is forced as well
    mu_eq = [bi - u * (ai + bi) for ai, bi in zip(a, b)]
    assert sp.solve([e.subs(solutions[0]) for e in mu_eq], u) == {u: sp.Rational(1, 2)}
    # dropping the constraint sum b = 1 (the old, wrong refutation) leaves e^lambda free, and then
    # sum b = (1 - e^lambda) / e^lambda, which is 1 only at e^lambda = 1/2
    free = sp.solve(equations[:-1], [b1, b2, b3], dict=True)[0]
    assert sp.simplify(sum(free.values()) - (1 - t) / t) == 0


def _untrained_ring_samples(seed: int) -> torch.Tensor:
    """1000 samples of the chapter's ring generator (z_dim 8, two hidden layers of 128) before any
    training, its weights drawn after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    G = gan.Generator(8, 2, hidden_sizes=(128, 128))
    with torch.no_grad():
        return G.sample(1000, torch.Generator().manual_seed(9))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_untrained_ring_generator_covers_no_mode(seed):
    """The chapter's baseline for mode collapse: the ring generator before training covers nothing."""
    covered, good = ring.mode_coverage(_untrained_ring_samples(seed), std=0.1)
    assert covered == 0 and good < 0.01


def _largest_mode_share(points: torch.Tensor, std: float = 0.1) -> float:
    """What the chapter's mode_shares(...).max() measures: the largest share of samples on one mode."""
    angle = 2 * math.pi * torch.arange(8, dtype=points.dtype) / 8
    centres = 2 * torch.stack([angle.cos(), angle.sin()], dim=1)
    distance, nearest = torch.cdist(points, centres).min(dim=1)
    return torch.bincount(nearest[distance <= 3 * std], minlength=8).max().item() / len(points)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_controls_fail_the_chapters_mode_collapse_claims(seed):
    """The ring claims ("visits at least 3 modes", "one mode holds at least a quarter of the samples")
    fail on an untrained generator, and the second fails on real data from the ring."""
    untrained = _untrained_ring_samples(seed)
    with pytest.raises(ClaimError):
        claim("over training, the generator visits at least 3 of the 8 modes",
              ring.mode_coverage(untrained, std=0.1)[0], at_least=3)
    real = ring.ring_of_gaussians(1000, std=0.1, generator=torch.Generator().manual_seed(seed + 3))
    for points in (untrained, real):
        with pytest.raises(ClaimError):
            claim("at its best checkpoint, one mode holds at least a quarter of the generator's samples",
                  _largest_mode_share(points), at_least=0.25)
    # the same measure agrees with ring.mode_coverage's rule: no mode reaches a quarter of the samples
    assert ring.mode_coverage(real, std=0.1, min_share=0.25)[0] == 0
    one_mode = real[torch.cdist(real, torch.tensor([[2.0, 0.0]])).squeeze(1) < 0.3]
    assert _largest_mode_share(one_mode) == pytest.approx(1.0)  # and the claim can hold


@settings(max_examples=30, deadline=None)
@given(k=st.integers(2, 10), seed=st.integers(0, 2**16))
def test_non_saturating_criterion_is_kl_minus_twice_jsd_plus_the_data_term(k, seed):
    """prop-gan-ns-objective, part 1, against torch.distributions' KL divergences."""
    p, q = _dirichlet(k, 3, seed), _dirichlet(k, 3, seed + 1)
    d_star = p / (p + q)
    expected = (torch_kl(Categorical(probs=q), Categorical(probs=p)) - _twice_jsd(p, q)
                + math.log(4) + (p * d_star.log()).sum(-1))
    torch.testing.assert_close(gan.non_saturating_criterion(p, q), expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(gan.non_saturating_criterion(p, q), -(q * d_star.log()).sum(-1), rtol=0, atol=1e-12)
    # the "constant" is log 4 + E_pdata[log D*], not log 4: it is below log 4 and changes with p_g
    assert bool(((p * d_star.log()).sum(-1) < 0).all())


def test_non_saturating_gradient_with_d_star_held_is_the_gradient_of_kl_minus_twice_jsd():
    """prop-gan-ns-objective, part 2 (Arjovsky & Bottou 2017, Theorem 2.5), with autograd and
    torch.distributions; letting D* follow p_g, or the minimax loss, gives another gradient."""
    g = torch.Generator().manual_seed(3)
    p = _dirichlet(7, 1, 5)[0]
    theta = torch.randn(7, generator=g, dtype=torch.float64, requires_grad=True)

    def grad(loss):
        theta.grad = None
        loss(torch.softmax(theta, 0)).backward()
        return theta.grad.clone()

    d_held = gan.optimal_discriminator(p, torch.softmax(theta, 0)).detach()

    def kl_minus_2jsd(q):
        return torch_kl(Categorical(probs=q), Categorical(probs=p)) - _twice_jsd(p, q)

    target = grad(kl_minus_2jsd)
    torch.testing.assert_close(grad(lambda q: -(q * d_held.log()).sum()), target, rtol=0, atol=1e-12)
    assert (grad(lambda q: gan.non_saturating_criterion(p, q)) - target).abs().max() > 1e-3
    assert (grad(lambda q: (q * torch.log1p(-d_held)).sum()) - target).abs().max() > 1e-3


def test_non_saturating_criterion_edge_cases():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    q = torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64)
    assert gan.non_saturating_criterion(p, q).item() == math.inf      # p_g > 0 where p_data = 0
    assert gan.non_saturating_criterion(q, q).item() == pytest.approx(math.log(2), abs=1e-15)
    assert gan.non_saturating_criterion(p.float(), p.float()).dtype == torch.float32


def test_the_constant_is_not_constant_in_p_g():
    """With D* following p_g, E_pg[-log D*] - (KL - 2 JSD) changes with p_g: its derivative along
    h = (h1, -h1) differs from that of KL(p_g || p_data) - 2 JSD, for p_data uniform on two points."""
    b1 = sp.Symbol("b1", positive=True)
    h1, eps = sp.symbols("h1 epsilon", real=True)
    pts = list(zip([sp.S.Half, sp.S.Half], [b1 + eps * h1, 1 - b1 - eps * h1]))
    ns = sum(q * sp.log((p + q) / p) for p, q in pts)
    kl_2jsd = sum(q * sp.log(q / p) - p * sp.log(2 * p / (p + q)) - q * sp.log(2 * q / (p + q)) for p, q in pts)
    from paperlib.proofs import Derivation
    wrong = Derivation(sp.diff(ns, eps).subs(eps, 0), assumptions=[(b1, sp.Interval.open(0, 1))],
                       scope="instance: p_data uniform on two points")
    wrong.step(sp.diff(kl_2jsd, eps).subs(eps, 0), why="the constant does not depend on p_g")
    wrong.refute()


def test_ns_remainder_exercise_accepts_other_forms_and_rejects_plausible_wrong_answers():
    assert check_answer("gan-ex-ns-remainder", "(a + b)*log(2) + a*log(a/(a + b))")
    assert check_answer("gan-ex-ns-remainder", "a*log(2*a/(a + b)) + b*log(2)")
    for wrong in ("log(4)", "(a + b)*log(2)", "a*log(a/(a + b))", "(a + b)*log(2) - a*log(a/(a + b))"):
        assert not check_answer("gan-ex-ns-remainder", wrong), wrong
