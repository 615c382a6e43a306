"""paperlib.made: the masks' autoregressive property (mask products and autograd Jacobians, for any
ordering and connectivity seed), normalisation by brute force, the ensemble NLL, sampling, bad input."""

import itertools

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Bernoulli

from conftest import assert_trains_for_two_steps
from paperlib.made import (MADE, SCALES, MaskedLinear, connectivity, direct_mask, hidden_degrees, hidden_mask, input_degrees, mixture_nll, output_mask)
from paperlib.maf import MAF, MAFLayer
from paperlib import answers
from paperlib.answers import check_answer
from paperlib.proofs import Derivation
from paperlib.train import fit


pytestmark = pytest.mark.usefixtures("float64")  # exact comparisons in double precision


def all_binary(d: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))


def allowed(ordering: torch.Tensor) -> torch.Tensor:
    """[i, j] is True when x_j comes strictly before x_i in the ordering."""
    return ordering[None, :] < ordering[:, None]


configs = dict(d=st.integers(2, 7), hidden=st.lists(st.integers(1, 12), min_size=1, max_size=3),
               num_masks=st.integers(1, 4), natural=st.booleans(), seed=st.integers(0, 10**6))


@settings(max_examples=60, deadline=None)
@given(**configs)
def test_mask_product_has_no_path_that_breaks_the_ordering(d, hidden, num_masks, natural, seed):
    model = MADE(d, hidden, num_masks=num_masks, natural_ordering=natural, seed=seed)
    for _ in range(num_masks):
        model.update_masks()
        paths = connectivity([layer.mask for layer in model.layers])
        assert paths.shape == (d, d)
        assert (paths[~allowed(model.ordering)] == 0).all()
        assert torch.equal(model.direct.mask.bool(), allowed(model.ordering))


@settings(max_examples=25, deadline=None)
@given(**configs)
def test_jacobian_is_strictly_triangular_in_the_ordering(d, hidden, num_masks, natural, seed):
    """d logits_i / d x_j is exactly 0 unless x_j precedes x_i, and (with the direct weights)
    nonzero for every such pair: permuted to the ordering, J is strictly lower triangular."""
    torch.manual_seed(seed)
    model = MADE(d, hidden, num_masks=num_masks, natural_ordering=natural, seed=seed)
    for _ in range(num_masks):
        model.update_masks()
        x = torch.rand(d)
        jac = torch.autograd.functional.jacobian(lambda v: model(v[None])[0], x)
        assert torch.equal(jac != 0, allowed(model.ordering))
        order = torch.argsort(model.ordering)
        permuted = jac[order][:, order]
        assert torch.equal(permuted, torch.tril(permuted, diagonal=-1))


@settings(max_examples=25, deadline=None)
@given(**configs)
def test_gradient_of_each_output_reaches_only_earlier_inputs_without_direct_weights(
        d, hidden, num_masks, natural, seed):
    torch.manual_seed(seed)
    model = MADE(d, hidden, num_masks=num_masks, natural_ordering=natural, seed=seed, direct=False)
    x = torch.rand(5, d, requires_grad=True)
    logits = model(x)
    for i in range(d):
        (grad,) = torch.autograd.grad(logits[:, i].sum(), x, retain_graph=True)
        later = model.ordering >= model.ordering[i]
        assert (grad[:, later] == 0).all()


@settings(max_examples=15, deadline=None)
@given(d=st.integers(2, 6), hidden=st.lists(st.integers(1, 10), min_size=1, max_size=2),
       seed=st.integers(0, 10**6), scale=st.sampled_from([1e-3, 1.0, 30.0]))
def test_probabilities_over_all_binary_vectors_sum_to_one(d, hidden, seed, scale):
    torch.manual_seed(seed)
    model = MADE(d, hidden, num_masks=3, seed=seed)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)   # tiny and huge logits (up to hundreds) must stay normalised
    x = all_binary(d)
    for ensemble in (False, True):
        nll = model.nll(x, ensemble=ensemble)
        assert torch.isfinite(nll).all()
        torch.testing.assert_close(torch.exp(-nll).sum(), torch.tensor(1.0), rtol=0, atol=1e-9)


def test_independent_input_and_output_shuffles_are_not_a_distribution():
    """The pitfall: output degrees drawn from a second permutation, not the input's."""
    torch.manual_seed(0)
    model = MADE(5, [16], seed=1)
    g = torch.Generator().manual_seed(7)
    m_in = input_degrees(model.ordering)
    m_h = hidden_degrees(m_in, 16, 5, g)
    m_out = input_degrees(torch.randperm(5, generator=g))   # an independent shuffle
    assert not torch.equal(m_out, m_in)
    model.layers[0].set_mask(hidden_mask(m_in, m_h))
    model.layers[1].set_mask(output_mask(m_h, m_out))
    model.direct.set_mask((m_out[:, None] > m_in[None, :]).double())
    total = torch.exp(-model.nll(all_binary(5))).sum()
    assert abs(total.item() - 1) > 1e-3
    # the same layers with the output degrees equal to the input degrees are normalised
    model.layers[1].set_mask(output_mask(m_h, m_in))
    model.direct.set_mask(direct_mask(m_in))
    torch.testing.assert_close(torch.exp(-model.nll(all_binary(5))).sum(), torch.tensor(1.0))


def test_mask_functions_follow_the_degree_rules():
    m_in = torch.tensor([2, 0, 1]) + 1        # ordering (2, 0, 1): x_1 comes first, then x_2, x_0
    m_h = torch.tensor([1, 2, 2, 1])
    assert torch.equal(hidden_mask(m_in, m_h), (m_h[:, None] >= m_in[None, :]).double())
    assert hidden_mask(m_in, m_h).shape == (4, 3)
    assert torch.equal(output_mask(m_h, m_in), (m_in[:, None] > m_h[None, :]).double())
    assert torch.equal(direct_mask(m_in), torch.tensor([[0, 1, 1], [0, 0, 0], [0, 1, 0]]).double())
    assert torch.equal(input_degrees(torch.tensor([2, 0, 1])), m_in)
    # a product of masks counts paths
    paths = connectivity([hidden_mask(m_in, m_h), output_mask(m_h, m_in)])
    torch.testing.assert_close(paths, output_mask(m_h, m_in) @ hidden_mask(m_in, m_h))


@settings(max_examples=50, deadline=None)
@given(d=st.integers(2, 50), size=st.integers(1, 200), low=st.integers(1, 60), seed=st.integers(0, 999))
def test_hidden_degrees_stay_between_the_previous_minimum_and_d_minus_one(d, size, low, seed):
    previous = torch.tensor([min(low, d - 1), d - 1])
    m = hidden_degrees(previous, size, d, torch.Generator().manual_seed(seed))
    assert m.shape == (size,) and m.min() >= min(low, d - 1) and m.max() <= d - 1


def test_each_mask_has_its_own_ordering_and_cycling_is_reproducible():
    model = MADE(10, [20, 20], num_masks=4, seed=3)
    seen = []
    for _ in range(8):
        model.update_masks()
        seen.append(model.ordering.clone())
    assert all(torch.equal(seen[k], seen[k + 4]) for k in range(4))
    assert len({tuple(s.tolist()) for s in seen}) == 4
    again = MADE(10, [20, 20], num_masks=4, seed=3)
    assert torch.equal(again.ordering, seen[-1])          # both at mask 0
    natural = MADE(10, [20], num_masks=3, natural_ordering=True)
    for _ in range(3):
        natural.update_masks()
        assert torch.equal(natural.ordering, torch.arange(10))


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 6), n=st.integers(1, 5), seed=st.integers(0, 999),
       spread=st.sampled_from([1e-3, 1.0, 30.0, 1000.0]))
def test_mixture_nll_averages_probabilities(k, n, seed, spread):
    g = torch.Generator().manual_seed(seed)
    log_probs = -spread * torch.rand(k, n, generator=g)
    out = mixture_nll(log_probs)
    assert torch.isfinite(out).all()
    reference = -torch.log(torch.exp(log_probs.double()).mean(0))
    finite = torch.isfinite(reference)
    torch.testing.assert_close(out[finite], reference[finite])
    # the mixture is never worse than the average single model (Jensen), and never better than the best
    assert (out <= -log_probs.mean(0) + 1e-12).all()
    assert (out >= -log_probs.max(0).values - 1e-12).all()


def test_nll_matches_torch_distributions():
    torch.manual_seed(0)
    model = MADE(6, [8])
    x = (torch.rand(4, 6) < 0.5).double()
    expected = -Bernoulli(logits=model(x)).log_prob(x).sum(1)
    torch.testing.assert_close(model.nll(x), expected)
    torch.testing.assert_close(model.loss(x), expected.mean())
    images = x.view(4, 1, 2, 3)
    torch.testing.assert_close(model.nll(images), expected)


def test_masked_linear_zeroes_masked_weights_and_their_gradients():
    layer = MaskedLinear(3, 2)
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    layer.set_mask(mask)
    x = torch.randn(5, 3, requires_grad=True)
    out = layer(x)
    torch.testing.assert_close(out, x @ (layer.weight * mask).T + layer.bias)
    out.sum().backward()
    assert (layer.weight.grad[mask == 0] == 0).all()


def test_sampling_matches_the_model_distribution():
    """Ancestral samples from a 3-bit MADE have the frequencies exp(-nll)."""
    torch.manual_seed(0)
    model = MADE(3, [6], seed=2)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    n = 40_000
    samples = model.sample(n, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (n, 3) and set(samples.unique().tolist()) <= {0.0, 1.0}
    x = all_binary(3)
    probs = torch.exp(-model.nll(x))
    counts = (samples[:, None, :] == x[None]).all(-1).double().mean(0)
    assert ((counts - probs).abs() <= 5 * (probs * (1 - probs) / n).sqrt() + 1e-3).all()


def test_a_few_training_steps_lower_the_nll_and_the_paper_config_builds():
    torch.manual_seed(0)
    x = (torch.rand(200, 20) < torch.linspace(0.1, 0.9, 20)).double()
    model = MADE(20, [32], num_masks=2)
    before = model.nll(x, ensemble=True).mean().item()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss(batch):
        model.update_masks()
        return model.loss(batch)

    fit(model, loss, x, optimizer, epochs=5, batch_size=50, progress=False)
    assert model.nll(x, ensemble=True).mean().item() < before
    # the paper's MNIST set-up: 784 inputs, one hidden layer of 500, float32, two steps
    cfg = SCALES["paper"]
    paper = MADE(784, [cfg["hidden"]], num_masks=cfg["num_masks"]).float()
    xs = (torch.rand(8, 784) < 0.3).float()

    def paper_loss(batch):
        paper.update_masks()
        return paper.loss(batch)

    assert_trains_for_two_steps(paper, paper_loss, xs, torch.optim.Adam(paper.parameters(), lr=cfg["lr"]),
                                batch_size=4)


def test_the_chapter_exercise_checkers_reject_plausible_wrong_answers():
    # made-ex-weights: H D + D (D - 1) / 2, in any form
    assert check_answer("made-ex-weights", "H*D + D*(D - 1)/2")
    assert check_answer("made-ex-weights", "D*(2*H + D - 1)/2")
    D, H = sp.symbols("D H")                                     # plain symbols are matched by name
    assert check_answer("made-ex-weights", D * H + sp.binomial(D, 2))
    assert not check_answer("made-ex-weights", "2*H*D + D*(D - 1)/2")   # forgot that the masks halve W and V
    assert not check_answer("made-ex-weights", "H*D + D**2/2")          # the diagonal counted as allowed
    assert not check_answer("made-ex-weights", "H*(D - 1) + D*(D - 1)/2")  # a unit of degree m feeds D - m - 1
    assert not check_answer("made-ex-weights", None)
    # made-ex-copying: (2 p)^D
    assert check_answer("made-ex-copying", "2**D * p**D")
    assert check_answer("made-ex-copying", "(2*p)**D")
    assert not check_answer("made-ex-copying", "p**D")                  # one input, not all 2^D
    assert not check_answer("made-ex-copying", "1")                     # "it is a distribution"
    assert not check_answer("made-ex-copying", "2*p*D")


def test_the_weights_answer_counts_the_masks_of_real_mades():
    """made-ex-weights is exact, not only in expectation: every hidden unit keeps D weights."""
    formula, _ = answers.expected("made-ex-weights")
    symbols = {s.name: s for s in formula.free_symbols}
    for d, h, seed in [(2, 1, 0), (5, 7, 1), (12, 30, 2), (40, 9, 3)]:
        model = MADE(d, [h], num_masks=3, seed=seed)
        for _ in range(3):
            model.update_masks()
            kept = sum(int(layer.mask.sum()) for layer in model.layers) + int(model.direct.mask.sum())
            assert kept == formula.subs({symbols["D"]: d, symbols["H"]: h})


def test_an_output_mask_built_with_ge_lets_an_output_see_its_own_input():
    """The pitfall of the output mask: with >= in place of >, a hidden unit of degree m(x_i)
    connects x_i to x_hat_i, so the diagonal of the mask product is no longer zero."""
    m_in = input_degrees(torch.tensor([2, 0, 1, 3]))
    m_h = torch.tensor([1, 2, 3, 3])
    right = connectivity([hidden_mask(m_in, m_h), output_mask(m_h, m_in)])
    wrong = connectivity([hidden_mask(m_in, m_h), hidden_mask(m_h, m_in)])   # >= into the outputs
    assert (right[~allowed(m_in)] == 0).all()
    assert (torch.diagonal(wrong) > 0).any()


def test_update_masks_restores_the_mask_after_load_state_dict():
    # the state dict carries the masks; mask_index does not. Loading a state saved under another
    # mask and then asking for the current index must still install that index's masks.
    model = MADE(6, [16], num_masks=3, seed=0)
    model.update_masks(1)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    model.update_masks(0)
    model.load_state_dict(saved)          # the masks of draw 1, while mask_index says 0
    model.update_masks(0)
    _, masks = model.draw_masks(0)
    for layer, mask in zip(model.layers, masks):
        assert torch.equal(layer.mask, mask)
    assert torch.equal(model.ordering + 1, model.draw_masks(0)[0][0])


# ---------------------------------------------------------------- MAFLayer and MAF (prop-made-maf-logdet)

def _jacobian(layer, x):
    return torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x)


def _randomise(module, scale=0.5, seed=0):
    """Bigger random weights than the default initialisation, so that every entry the masks allow matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


@settings(max_examples=20, deadline=None)
@given(d=st.integers(2, 6), hidden=st.lists(st.integers(2, 10), min_size=1, max_size=2),
       natural=st.booleans(), seed=st.integers(0, 10**6))
def test_maf_log_det_is_the_slogdet_of_the_autograd_jacobian_and_the_jacobian_is_triangular(
        d, hidden, natural, seed):
    layer = MAFLayer(d, hidden, natural_ordering=natural, seed=seed)
    _randomise(layer, seed=seed)
    x = torch.randn(3, d, generator=torch.Generator().manual_seed(seed))
    _, log_det = layer(x)
    order = torch.argsort(layer.ordering)
    for n in range(3):
        jac = _jacobian(layer, x[n])
        sign, logabsdet = torch.linalg.slogdet(jac)
        assert sign > 0                                               # the diagonal exp(-alpha_d) is positive
        torch.testing.assert_close(log_det[n], logabsdet, rtol=0, atol=1e-10)
        in_order = jac[order][:, order]
        assert torch.equal(in_order, torch.tril(in_order))            # lower triangular in the ordering
        # zero exactly where the masks forbid a path: d u_i / d x_j = 0 if x_j comes after x_i
        assert (jac[allowed(layer.ordering).T & ~torch.eye(d, dtype=torch.bool)] == 0).all()


def _assert_inverse_undoes_forward(flow, x: torch.Tensor, atol: float) -> None:
    """``flow.inverse`` maps ``flow(x)`` back to ``x``, and its log-determinant is minus the
    forward one, both to within ``atol``."""
    u, log_det = flow(x)
    back, inverse_log_det = flow.inverse(u)
    torch.testing.assert_close(back, x, rtol=0, atol=atol)
    torch.testing.assert_close(inverse_log_det, -log_det, rtol=0, atol=atol)


@settings(max_examples=20, deadline=None)
@given(d=st.integers(2, 6), layers=st.integers(1, 3), natural=st.booleans(), seed=st.integers(0, 10**6))
def test_inverse_undoes_forward_and_the_log_dets_cancel(d, layers, natural, seed):
    torch.manual_seed(seed)
    layer = MAFLayer(d, [12], natural_ordering=natural, seed=seed)
    _randomise(layer, seed=seed)
    x = torch.randn(5, d)
    _assert_inverse_undoes_forward(layer, x, atol=1e-10)
    x_again, _ = layer.inverse(torch.randn(5, d))
    torch.testing.assert_close(layer(x_again)[0], layer(layer.inverse(layer(x_again)[0])[0])[0])
    flow = MAF(d, [12], num_layers=layers, seed=seed)
    _randomise(flow, scale=0.3, seed=seed)
    _assert_inverse_undoes_forward(flow, x, atol=1e-9)


def test_maf_log_prob_is_the_change_of_variables_and_matches_torch_distributions():
    torch.manual_seed(0)
    flow = MAF(3, [10], num_layers=3, seed=4)
    _randomise(flow, scale=0.4)
    x = torch.randn(4, 3)
    base = torch.distributions.Normal(0.0, 1.0)
    for n in range(4):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], x[n])
        expected = base.log_prob(flow(x[n:n + 1])[0]).sum() + torch.linalg.slogdet(jac)[1]
        torch.testing.assert_close(flow.log_prob(x[n:n + 1])[0], expected)
    # with the weights at zero, one layer is x_d = u_d exp(alpha_d) + mu_d with constant (mu, alpha):
    # a diagonal Gaussian N(mu_d, exp(2 alpha_d)), which torch.distributions.Normal evaluates
    single = MAF(3, [10], num_layers=1)
    layer = single.layers[0]
    with torch.no_grad():
        for p in single.parameters():
            p.zero_()
        layer.made.layers[-1].bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
        layer.alpha.bias.copy_(torch.tensor([-0.3, 0.2, 0.7]))
    reference = torch.distributions.Normal(layer.made.layers[-1].bias, layer.alpha.bias.exp())
    torch.testing.assert_close(single.log_prob(x), reference.log_prob(x).sum(1))
    samples = single.sample(20_000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(samples.mean(0), reference.mean, rtol=0, atol=0.1)
    torch.testing.assert_close(samples.std(0), reference.stddev, rtol=0.05, atol=0)


def test_masks_that_break_the_made_rule_break_the_log_det_formula():
    """The pitfall: with >= in the output masks u_d reads x_d; with no masks it reads later inputs too.
    Either way -sum alpha_d is no longer log|det du/dx|, and without masks J is not triangular."""
    torch.manual_seed(0)
    x = torch.randn(4)
    for broken in ("ge", "none"):
        layer = MAFLayer(4, [16], seed=1)
        _randomise(layer, seed=2)
        hidden = layer.made.draw_masks(0)[0][-1]
        for out in (layer.made.layers[-1], layer.alpha):
            out.set_mask(hidden_mask(hidden, layer.ordering + 1) if broken == "ge" else torch.ones(4, 16))
        if broken == "none":
            layer.made.layers[0].set_mask(torch.ones(16, 4))
        jac = _jacobian(layer, x)
        assert abs(layer(x[None])[1][0] - torch.linalg.slogdet(jac)[1]) > 1e-3
        assert torch.equal(jac, torch.tril(jac)) == (broken == "ge")
        assert not torch.allclose(layer.inverse(layer(x[None])[0])[0][0], x)   # and the inverse is wrong


def test_the_sign_of_the_log_det_and_the_triangle_are_what_the_derivation_needs():
    """The pitfalls in symbols, D = 2: +sum alpha_d fails the last step, and a conditioner that reads a
    later input fails 'det = product of the diagonal'."""
    x_1, x_2 = sp.symbols("x_1 x_2", real=True)
    alpha_1, mu_1 = sp.symbols("alpha_1 mu_1", real=True)
    mu_2, alpha_2 = sp.Function("mu_2", real=True)(x_1), sp.Function("alpha_2", real=True)(x_1)
    u = sp.Matrix([(x_1 - mu_1) * sp.exp(-alpha_1), (x_2 - mu_2) * sp.exp(-alpha_2)])
    jac = u.jacobian([x_1, x_2])
    assert jac[0, 1] == 0
    wrong_sign = Derivation(sp.log(sp.Abs(jac.det())), scope="dimension: d = 2")
    assert wrong_sign.step(alpha_1 + alpha_2).refute().number == 1
    # mu_1 reads the later x_2 (alpha_d constant, to keep SymPy quick): J has an entry above the diagonal
    mu_1_later, mu_2_only = sp.Function("mu_1", real=True)(x_2), sp.Function("mu_2", real=True)(x_1)
    leaky = sp.Matrix([(x_1 - mu_1_later) * sp.exp(-alpha_1),
                       (x_2 - mu_2_only) * sp.exp(-alpha_1)]).jacobian([x_1, x_2])
    assert leaky[0, 1] != 0
    product = Derivation(leaky.det(), scope="instance: D = 2, mu_1 reading x_2")
    assert product.step(leaky[0, 0] * leaky[1, 1]).refute().number == 1


def test_a_few_maf_steps_lower_the_nll_of_a_two_dimensional_density():
    g = torch.Generator().manual_seed(0)
    x_1 = torch.randn(512, generator=g)
    x = torch.stack([x_1, x_1**2 - 1 + 0.5 * torch.randn(512, generator=g)], 1)
    torch.manual_seed(0)
    flow = MAF(2, [16], num_layers=1)
    before = -flow.log_prob(x).mean().item()
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    fit(flow, lambda b: -flow.log_prob(b).mean(), x, optimizer, batch_size=128, steps=60, progress=False)
    assert -flow.log_prob(x).mean().item() < before - 0.3


def test_the_maf_log_det_exercise_checker():
    assert check_answer("made-ex-maf-logdet", "-(alpha_1 + alpha_2)")
    assert check_answer("made-ex-maf-logdet", "log(exp(-alpha_1)*exp(-alpha_2))")
    a1, a2 = sp.symbols("alpha_1 alpha_2")
    assert check_answer("made-ex-maf-logdet", -a2 - a1)
    assert not check_answer("made-ex-maf-logdet", "alpha_1 + alpha_2")          # the sign
    assert not check_answer("made-ex-maf-logdet", "exp(-alpha_1 - alpha_2)")    # the determinant, not its log
    assert not check_answer("made-ex-maf-logdet", "-alpha_2")                   # the constant first layer forgotten
    assert not check_answer("made-ex-maf-logdet", "-alpha_1*alpha_2")
    assert not check_answer("made-ex-maf-logdet", None)
