"""paperlib.flows against autograd Jacobians, closed forms, quadrature, and on bad input."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import each_scale

from paperlib.flows import (MARGIN, SCALES, FlowVAE, NormalizingFlow, PlanarFlow, m, planar,
                            planar_inverse, u_hat)
from paperlib.potentials import (_Stacked, annealed_beta, box_wall, fit_flows, free_energy, kl_box,
                                 log_normalizer, potential)
from paperlib.radial_flows import RadialFlow, beta_hat, radial, radial_inverse
from paperlib.answers import check_answer
from paperlib.proofs import Derivation, StepError
from paperlib.distributions import bernoulli_nll, log_normal, log_standard_normal


pytestmark = pytest.mark.usefixtures("float64")  # exact comparisons in double precision


def square_grid(half_width: float, h: float) -> torch.Tensor:
    """The centres of the h x h cells that tile [-half_width, half_width]^2, shape [N, 2]."""
    axis = torch.arange(-half_width + h / 2, half_width, h)
    return torch.cartesian_prod(axis, axis)


def autograd_log_det(flow, z):
    """log|det df/dz| per example from the full autograd Jacobian."""
    out = []
    for zi in z:
        J = torch.autograd.functional.jacobian(lambda v: flow(v.unsqueeze(0))[0].squeeze(0), zi)
        out.append(torch.linalg.slogdet(J)[1])
    return torch.stack(out)


@pytest.mark.parametrize("layer, beta", [(PlanarFlow, None), (RadialFlow, None), (RadialFlow, -8.0),
                                         (RadialFlow, 3.0)],
                         ids=["planar", "radial", "radial-contracting", "radial-expanding"])
@pytest.mark.parametrize("dim", [1, 2, 3, 5])
def test_layer_log_det_matches_autograd_jacobian(layer, beta, dim):
    """For radial flows also at beta = -8, which puts beta_hat near -alpha (a strong contraction),
    and at beta = 3 (an expansion)."""
    torch.manual_seed(dim)
    flow = layer(dim, init_scale=1.5)
    if beta is not None:
        with torch.no_grad():
            flow.beta.fill_(beta)
    z = 2 * torch.randn(6, dim)
    _, log_det = flow(z)
    assert log_det.shape == (6,)
    torch.testing.assert_close(log_det, autograd_log_det(flow, z))


def test_stack_log_det_matches_autograd_and_adds():
    torch.manual_seed(0)
    stack = NormalizingFlow(3, K=4, init_scale=1.0)
    z = torch.randn(5, 3)
    zK, log_det = stack(z)
    torch.testing.assert_close(log_det, autograd_log_det(stack, z))
    # composition: the log-determinants of the layers add
    total, x = torch.zeros(5), z
    for layer in stack.layers:
        x, step = layer(x)
        total = total + step
    torch.testing.assert_close(total, log_det)
    torch.testing.assert_close(x, zK)


@settings(max_examples=60, deadline=None)
@given(u=st.lists(st.floats(-30, 30), min_size=2, max_size=2),
       w=st.lists(st.floats(-30, 30), min_size=2, max_size=2))
def test_u_hat_always_gives_an_invertible_flow(u, w):
    u, w = torch.tensor(u), torch.tensor(w)
    uh = u_hat(u, w)
    assert torch.isfinite(uh).all()
    if (w * w).sum() > 1e-6:
        # w^T u_hat = max(m(w^T u), -1 + MARGIN) > -1
        torch.testing.assert_close((w * uh).sum(), m((w * u).sum()).clamp_min(-1 + MARGIN))
        assert (w * uh).sum() > -1
        # the worst point: a = w^T z + b = 0, where h' = 1 and the log-determinant is smallest
        z = torch.randn(3, 2)
        b = -(z[0] * w).sum()
        z_new, log_det = planar(z, uh, w, b)
        assert torch.isfinite(z_new).all() and torch.isfinite(log_det).all()
        assert log_det.min() >= math.log(MARGIN) - 1e-2


def test_planar_needs_w_u_strictly_above_minus_one():
    # at w^T u = -1 the derivative along w, 1 + (w^T u) h'(a), is 0 at a = w^T z + b = 0
    u, w = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0])
    z = torch.tensor([[0.0, 0.3]])
    with pytest.raises(ValueError, match="^u: expected w\\^T u > -1"):
        planar(z, u, w, 0.0, validate=True)
    # the wrong version: accept w^T u >= -1 and compute the formula anyway -> log det = -inf
    h = torch.tanh((z * w).sum(-1) + 0.0)
    assert torch.isinf(torch.log1p((1 - h**2) * (w * u).sum())).all()
    # the paper's m rounds to exactly -1 for very negative inputs, so u_hat needs its margin
    for dtype in (torch.float64, torch.float32):
        w_, z_ = w.to(dtype), z.to(dtype)
        assert m(torch.tensor(-50.0, dtype=dtype)) == -1
        uh = u_hat(torch.tensor([-50.0, 0.0], dtype=dtype), w_)
        assert (w_ * uh).sum() > -1 + MARGIN / 2          # the margin, up to rounding of u + step
        assert torch.isfinite(planar(z_, uh, w_, 0.0)[1]).all()


@settings(max_examples=40, deadline=None)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_planar_inverse_round_trips_at_extreme_scales(scale, seed):
    g = torch.Generator().manual_seed(seed)
    u, w = torch.randn(2, generator=g), torch.randn(2, generator=g) + 0.1
    b = torch.randn((), generator=g)
    uh = u_hat(u, w)
    z = scale * torch.randn(7, 2, generator=g)
    z_new, log_det = planar(z, uh, w, b)
    assert torch.isfinite(z_new).all() and torch.isfinite(log_det).all()
    torch.testing.assert_close(planar_inverse(z_new, uh, w, b), z, atol=1e-8 * (1 + scale), rtol=1e-8)


def test_float32_and_float64_and_inverse_log_prob():
    torch.manual_seed(1)
    stack = NormalizingFlow(2, K=3, init_scale=1.0)
    z32 = torch.randn(4, 2, dtype=torch.float32)
    assert stack.float()(z32)[0].dtype == torch.float32
    stack = stack.double()
    z0, zK, log_q = stack.sample(50, torch.Generator().manual_seed(0))
    assert log_q.shape == (50,) and zK.dtype == torch.float64
    torch.testing.assert_close(stack.log_prob(zK), log_q)
    back, inv_log_det = stack.inverse(zK)
    torch.testing.assert_close(back, z0)
    torch.testing.assert_close(inv_log_det, -stack(z0)[1])


@pytest.mark.parametrize("layer, seed, half_width", [(PlanarFlow, 2, 7), (RadialFlow, 3, 8)])
def test_flow_density_integrates_to_one(layer, seed, half_width):
    """A stack of four layers: ln q_K integrates to 1 on a grid and agrees with the sampler's."""
    torch.manual_seed(seed)
    stack = NormalizingFlow(2, K=4, init_scale=0.8, layer=layer)
    h = 0.1
    mass = (stack.log_prob(square_grid(half_width, h)).exp().sum() * h * h).item()
    assert abs(mass - 1) < 1e-3
    z0, zK, log_q = stack.sample(50, torch.Generator().manual_seed(0))
    torch.testing.assert_close(stack.log_prob(zK), log_q)


def test_potentials_against_closed_forms_and_quadrature():
    z = torch.tensor([[0.3, -0.7], [2.0, 0.0], [-1.0, 1.5]])
    z1, z2 = z[:, 0], z[:, 1]
    w1 = torch.sin(math.pi * z1 / 2)
    torch.testing.assert_close(potential(2, z), 0.5 * ((z2 - w1) / 0.4) ** 2)
    # U1 written out directly with logs of sums (no logsumexp)
    u1 = 0.5 * ((z.norm(dim=1) - 2) / 0.4) ** 2 - torch.log(
        torch.exp(-0.5 * ((z1 - 2) / 0.6) ** 2) + torch.exp(-0.5 * ((z1 + 2) / 0.6) ** 2))
    torch.testing.assert_close(potential(1, z), u1)
    # U2: for each z1 a Gaussian in z2 of width 0.4, far inside the box: Z_B = 8 * 0.4 sqrt(2 pi)
    assert abs(log_normalizer(2) - math.log(8 * 0.4 * math.sqrt(2 * math.pi))) < 1e-6
    # standard normal restricted to the box: 2 pi (1 - 2 Phi(-4))^2
    inside = 1 - 2 * torch.distributions.Normal(0.0, 1.0).cdf(torch.tensor(-4.0)).item()
    assert abs(log_normalizer("normal") - math.log(2 * math.pi * inside**2)) < 1e-6
    for k in (1, 3, 4):  # the grid has converged
        assert abs(log_normalizer(k) - log_normalizer(k, points=1201)) < 1e-4


@settings(max_examples=30, deadline=None)
@given(scale=st.floats(1e-6, 1e4), seed=st.integers(0, 2**16))
def test_potentials_finite_for_extreme_inputs(scale, seed):
    z = scale * torch.randn(9, 2, generator=torch.Generator().manual_seed(seed))
    for k in (1, 2, 3, 4):
        assert torch.isfinite(potential(k, z)).all()
    assert (box_wall(z) >= 0).all()


def test_kl_is_zero_for_the_base_density_and_positive_otherwise():
    identity = NormalizingFlow(2, K=0)
    kl, outside = kl_box(identity, "normal", n=20_000, generator=torch.Generator().manual_seed(0))
    assert abs(kl) < 2e-3 and outside < 1e-3
    kl1, _ = kl_box(identity, 1, n=20_000, generator=torch.Generator().manual_seed(0))
    assert kl1 > 0.5


@pytest.mark.parametrize("layer, K", [(PlanarFlow, 2), (RadialFlow, 3)])
def test_flows_stacked_side_by_side_match_the_modules(layer, K):
    """fit_flows's vmap over one flow's forward gives each flow's own (z_K, log_det)."""
    torch.manual_seed(0)
    a, b_ = (NormalizingFlow(2, K=K, init_scale=1.0, layer=layer) for _ in range(2))
    z = torch.randn(2, 6, 2)
    zK, log_det = _Stacked([a, b_])(z)
    for p, f in enumerate((a, b_)):
        ref = f(z[p])
        torch.testing.assert_close(zK[p], ref[0])
        torch.testing.assert_close(log_det[p], ref[1])


def test_flows_fitted_side_by_side_lower_the_kl():
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float32)
    untrained = NormalizingFlow(2, K=2)
    kl0, _ = kl_box(untrained, 2, n=4000, generator=torch.Generator().manual_seed(1))
    fitted = [NormalizingFlow(2, K=8), NormalizingFlow(2, K=8)]
    before = [f.layers[0].u.detach().clone() for f in fitted]
    history = fit_flows(fitted, [2, 2], steps=150, generator=torch.Generator().manual_seed(0))
    assert len(history.step_loss) == 150
    assert all(not torch.equal(f.layers[0].u, u0) for f, u0 in zip(fitted, before))  # copied back
    kls = [kl_box(f, 2, n=4000, generator=torch.Generator().manual_seed(1))[0] for f in fitted]
    assert all(0 <= v < kl0 for v in kls)
    with pytest.raises(ValueError, match="^flows"):
        fit_flows([NormalizingFlow(2, K=2), NormalizingFlow(2, K=3)], [1, 1], steps=1)


def test_annealing_and_free_energy():
    assert annealed_beta(0, 100) == pytest.approx(0.01) and annealed_beta(500, 100) == 1.0
    torch.manual_seed(0)
    flow = NormalizingFlow(2, K=0)
    f = free_energy(flow, "normal", 5000, generator=torch.Generator().manual_seed(0), wall=False)
    # q = p = N(0, I): F = KL - ln Z = -ln(2 pi) for every sample
    assert abs(f.item() + math.log(2 * math.pi)) < 1e-12


def test_flow_vae_elbo_is_per_example_and_trains():
    torch.manual_seed(0)
    model = FlowVAE(x_dim=16, hidden=8, z_dim=3, K=2)
    x = torch.rand(7, 16).round()
    assert model.elbo(x).shape == (7,)
    # with K = 0 the flow VAE's Monte Carlo ELBO equals the plain VAE's with kl="mc"
    plain = FlowVAE(x_dim=16, hidden=8, z_dim=3, K=0)
    from paperlib.vae import VAE
    ref = VAE(x_dim=16, hidden=8, z_dim=3)
    ref.load_state_dict({k: v for k, v in plain.state_dict().items() if not k.startswith("flow")})
    torch.testing.assert_close(plain.elbo(x, generator=torch.Generator().manual_seed(3)),
                               ref.elbo(x, kl="mc", generator=torch.Generator().manual_seed(3)))


@each_scale(SCALES)
def test_every_scale_builds_and_runs_two_steps(cfg):
    torch.set_default_dtype(torch.float32)
    flow = NormalizingFlow(2, K=32)
    fit_flows([flow], [1], steps=2, batch_size=cfg["batch_size"], lr=cfg["lr"],
              anneal_steps=cfg["anneal_steps"])
    assert math.isfinite(kl_box(flow, 1, n=1000)[0])
    model = FlowVAE(hidden=cfg["vae_hidden"], z_dim=cfg["vae_z_dim"], K=cfg["vae_K"])
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["vae_lr"])
    for _ in range(2):
        loss = model.loss(torch.rand(8, 784).round())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert math.isfinite(loss.item())


def test_the_chapters_exercises_accept_other_forms_and_reject_plausible_wrong_answers():
    planar_1d = "normalizing_flows-ex-planar-1d"
    assert not check_answer(planar_1d, None)
    for right in ("log(1 + u*w - u*w*tanh(b + w*z)**2)", "log(1 + u*w*sech(w*z + b)**2)"):
        assert check_answer(planar_1d, right), right
    for wrong in ("log(1 + u*w*tanh(w*z + b))",            # h in place of h'
                  "log(1 + u*(1 - tanh(w*z + b)**2))",      # the chain rule's w forgotten
                  "1 + u*w*(1 - tanh(w*z + b)**2)"):        # f'(z), not its log
        assert not check_answer(planar_1d, wrong), wrong
    affine = "normalizing_flows-ex-affine"
    for right in ("log(exp(-(s - c)**2/(2*a**2))/(a*sqrt(2*pi)))", "-log(2*pi*a**2)/2 - (s - c)**2/(2*a**2)"):
        assert check_answer(affine, right), right
    for wrong in ("-log(2*pi)/2 - (s - c)**2/(2*a**2) + log(a)",   # multiplied by |df/dz|
                  "-log(2*pi)/2 - (s - c)**2/(2*a**2)",             # no Jacobian at all
                  "-log(2*pi)/2 - (s - c)**2/2 - log(a)"):          # z = s - c, not (s - c)/a
        assert not check_answer(affine, wrong), wrong


def test_the_chapters_u_hat_check_fails_without_the_division_by_the_norm():
    """The wrong u_hat (no division by ||w||^2) fails step 1 of the chapter's derivation: that step
    compares w^T u_hat, computed, with m(w^T u), and is not a tautology."""
    import sympy as sp
    u = sp.Matrix(sp.symbols("u1:4", real=True))
    w = sp.Matrix(sp.symbols("w1:4", real=True))
    wu = (w.T * u)[0]
    m_of = -1 + sp.log(1 + sp.exp(wu))
    wrong = u + (m_of - wu) * w                       # the step along w without / ||w||^2
    with pytest.raises(StepError, match="Step 1"):
        Derivation((w.T * wrong)[0], scope="dimension: d = 1, 2, 3").step(m_of).check()


def test_the_chapters_edge_check_fails_away_from_the_hyperplane():
    """At w^T u = -1 the slope vanishes at a = -b only: evaluated at a = b it does not."""
    import sympy as sp
    a, b = sp.symbols("a b", real=True)
    slope_at = lambda where: sp.Subs(sp.Derivative(a - sp.tanh(a + b), a), a, where)
    Derivation(slope_at(-b), scope="general").step(0).check()
    with pytest.raises(StepError, match="Step 1"):
        Derivation(slope_at(b), scope="general").step(0).check()


def test_flow_vae_elbo_of_one_digit_ignores_the_rest_of_the_batch():
    """The notes' bug: a batch sum of reconstruction errors in every example's ELBO. The check
    (the gradient of example 0's ELBO with respect to the other examples) is 0 for FlowVAE and
    not 0 for the notes' version."""
    torch.manual_seed(0)
    model = FlowVAE(x_dim=16, hidden=8, z_dim=3, K=2)
    x0 = torch.rand(4, 16).round()

    def notes_elbo(x):
        decoded, zK, log_q0, log_det = model.posterior(x)
        zero = torch.zeros_like(zK)
        return -bernoulli_nll(decoded, x).sum() + log_normal(zK, zero, zero) - (log_q0 - log_det)

    def pull(elbo):
        x = x0.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(elbo(x)[0], x)
        return grad[1:].abs().max().item()

    assert pull(model.elbo) == 0
    assert pull(notes_elbo) > 1e-3


def test_the_chapters_block_product_check_rejects_a_wrong_corner():
    """The chapter checks step 4 of the lemma's proof as a block-matrix identity for a symbolic d;
    the same comparison fails when the corner is wrong (2 psi^T u in place of psi^T u)."""
    import sympy as sp
    n = sp.Symbol("d", integer=True, positive=True)
    U, P = sp.MatrixSymbol("u", n, 1), sp.MatrixSymbol("psi", n, 1)
    I_n, I_1, Z = sp.Identity(n), sp.Identity(1), sp.ZeroMatrix(1, n)
    LMR = sp.block_collapse(sp.BlockMatrix([[I_n, Z.T], [P.T, I_1]])
                            * sp.BlockMatrix([[I_n + U * P.T, U], [Z, I_1]])
                            * sp.BlockMatrix([[I_n, Z.T], [-P.T, I_1]]))

    def matches(corner):
        expected = sp.BlockMatrix([[I_n, U], [Z, corner]])
        return all(sp.expand(LMR.blocks[i, j] - expected.blocks[i, j]).doit().is_ZeroMatrix
                   for i in range(2) for j in range(2))

    assert matches(I_1 + P.T * U)
    assert not matches(I_1 + 2 * P.T * U)


# ---------------------------------------------------------------- radial flows and the free energy


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("b", [-10.0, 0.0, 5.0])
def test_radial_inverse_round_trips(scale, b):
    torch.manual_seed(0)
    flow = RadialFlow(3, init_scale=1.0)
    with torch.no_grad():
        flow.beta.fill_(b)
    z = scale * torch.randn(20, 3)
    z = torch.cat([z, flow.z0.detach().unsqueeze(0)])          # the centre itself
    z_new, log_det = flow(z)
    back, inv_log_det = flow.inverse(z_new)
    torch.testing.assert_close(back, z, atol=1e-10 * scale, rtol=1e-9)
    torch.testing.assert_close(inv_log_det, -log_det)
    assert torch.isfinite(log_det).all()


@settings(max_examples=60, deadline=None)
@given(a=st.floats(-30, 30), b=st.floats(-200, 60))
def test_beta_hat_always_gives_an_invertible_radial_flow(a, b):
    alpha = torch.nn.functional.softplus(torch.tensor(a))
    bh = beta_hat(alpha, torch.tensor(b))
    # beta_hat + alpha = max(log(1 + e^b), MARGIN) > 0
    assert bh + alpha >= MARGIN * (1 - 1e-6) - 1e-12 * alpha
    # the worst point is the centre, where the first factor 1 + beta_hat / alpha is smallest
    z0 = torch.zeros(2)
    z = torch.stack([z0, torch.tensor([0.3, -0.2]), torch.tensor([1e3, 0.0])])
    z_new, log_det = radial(z, z0, alpha, bh)
    assert torch.isfinite(z_new).all() and torch.isfinite(log_det).all()


def test_radial_needs_beta_above_minus_alpha():
    z, z0 = torch.tensor([[0.1, 0.0]]), torch.zeros(2)
    with pytest.raises(ValueError, match="^beta: expected beta > -alpha"):
        radial(z, z0, 0.5, -0.5, validate=True)
    with pytest.raises(ValueError, match="^alpha"):
        radial_inverse(z, z0, 0.0, 1.0, validate=True)
    # at beta = -alpha the determinant vanishes at the centre: log det = -inf there
    _, log_det = radial(torch.zeros(1, 2), z0, 0.5, -0.5)
    assert torch.isinf(log_det).all()
    # beta >= -1 is not enough: alpha = 1/2, beta = -3/4 folds the ray (g(r) < 0 for small r)
    r = torch.tensor([[1e-3, 0.0]])
    assert radial(r, z0, 0.5, -0.75)[0][0, 0] < 0


def test_free_energy_over_q0_equals_the_expectation_over_q_K():
    """thm-flows-free-energy on planar flows: the q0-side Monte Carlo estimate of F against the
    q_K-side integral of q_K (ln q_K + U) on a grid, and the + sign on the log-dets fails."""
    torch.manual_seed(5)
    flow = NormalizingFlow(2, K=3, init_scale=0.5)
    h = 0.1
    grid = square_grid(8, h)
    with torch.no_grad():
        log_q = flow.log_prob(grid)
        assert abs((log_q.exp().sum() * h * h).item() - 1) < 1e-6
        U = 0.5 * grid.pow(2).sum(-1)
        over_q_K = ((log_q.exp() * (log_q + U)).sum() * h * h).item()
        n = 50_000
        estimate = free_energy(flow, "normal", n, generator=torch.Generator().manual_seed(0), wall=False).item()
        z0, zK, _ = flow.sample(n, torch.Generator().manual_seed(0))
        log_det = flow(z0)[1]
        plus = (log_standard_normal(z0) + log_det + 0.5 * zK.pow(2).sum(-1)).mean().item()
    assert abs(estimate - over_q_K) < 0.03
    assert abs(plus - over_q_K) > 0.1


def test_the_radial_exercises_accept_other_forms_and_reject_plausible_wrong_answers():
    det2, inverse = "normalizing_flows-ex-radial-2d", "normalizing_flows-ex-radial-inverse"
    assert not check_answer(det2, None) and not check_answer(inverse, None)
    for right in ["(1 + beta/(alpha + r))*(1 + beta/(alpha + r) - beta*r/(alpha + r)**2)",
                  "(alpha + r + beta)*((alpha + r)**2 + alpha*beta)/(alpha + r)**3"]:
        assert check_answer(det2, right), right
    for wrong in ["(1 + beta/(alpha + r))**2*(1 + alpha*beta/(alpha + r)**2)",   # exponent d
                  "(1 + beta/(alpha + r))*(1 + beta/(alpha + r) + beta*r/(alpha + r)**2)",  # sign of h'
                  "(1 + beta/(alpha + r))**2"]:
        assert not check_answer(det2, wrong), wrong
    for right in ["(s - alpha - beta + sqrt((alpha + beta - s)**2 + 4*alpha*s))/2",
                  "2*alpha*s/(alpha + beta - s + sqrt((alpha + beta - s)**2 + 4*alpha*s))"]:
        assert check_answer(inverse, right), right
    for wrong in ["(s - alpha - beta - sqrt((alpha + beta - s)**2 + 4*alpha*s))/2",   # the negative root
                  "s - beta", "s*(alpha + s)/(alpha + s + beta)"]:
        assert not check_answer(inverse, wrong), wrong
