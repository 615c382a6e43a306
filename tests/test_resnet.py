"""paperlib.resnet: Table 6's parameter counts, the exact identity argument, Jacobians, bad input."""

import math

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import each_scale
from paperlib.answers import check_answer, expected
from paperlib.resnet import (SCALES, BasicBlock, blocks_per_stage, cifar_resnet, count_parameters, deepen, gradient_norms, pad_shortcut, stack_jacobian, train)
from paperlib.preact_resnet import PreActBasicBlock, input_gradient_ratio, preact_resnet
from paperlib.train import error_rate


@pytest.mark.parametrize("depth, millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85),
                                             (110, 1.7)])
def test_parameter_counts_match_table_6(depth, millions):
    count = count_parameters(cifar_resnet(depth))
    digits = 1 if millions >= 1 else 2
    assert round(count / 1e6, digits) == millions
    # and the closed form of the chapter's exercise: 97216 n - 21926
    assert count == 97216 * blocks_per_stage(depth) - 21926
    # option A adds no parameters: the plain twin has exactly as many
    assert count_parameters(cifar_resnet(depth, plain=True)) == count


@pytest.mark.parametrize("training", [True, False])
def test_deeper_network_with_zero_branches_computes_the_same_function(training):
    torch.manual_seed(0)
    shallow = cifar_resnet(8, in_channels=1).train(training)
    deep = deepen(shallow, 20)
    assert len(deep.blocks()) == 9 and len(shallow.blocks()) == 3
    x = torch.randn(6, 1, 8, 8)
    assert torch.equal(shallow(x), deep(x))


def test_zero_residual_branch_is_the_identity_on_nonnegative_inputs():
    for batchnorm in (True, False):
        block = BasicBlock(4, 4, batchnorm=batchnorm).zero_residual_()
        x = torch.rand(3, 4, 5, 5)
        assert torch.equal(block(x), x)


def test_pad_shortcut_subsamples_and_pads_with_zeros():
    x = torch.randn(2, 3, 7, 7)
    y = pad_shortcut(x, 6, stride=2)
    assert y.shape == (2, 6, 4, 4)
    assert torch.equal(y[:, :3], x[:, :, ::2, ::2]) and torch.equal(y[:, 3:], torch.zeros(2, 3, 4, 4))
    # the shortcut lands where a stride-2 3x3 convolution does
    conv = torch.nn.Conv2d(3, 6, 3, 2, 1)
    assert conv(x).shape == y.shape


def test_shortcut_gradient_is_the_kept_channels_at_the_kept_positions():
    """The branch-scale solution's check, P^T g entry by entry, and its control: a shortcut that
    puts the zero channels first fails it."""
    x = torch.rand(2, 4, 6, 6, requires_grad=True)
    g = torch.randn(2, 8, 3, 3)
    adjoint = torch.zeros_like(x)
    adjoint[:, :, ::2, ::2] = g[:, :4]
    (back,) = torch.autograd.grad(pad_shortcut(x, 8, 2), x, g)
    assert torch.equal(back, adjoint)
    zeros_first = torch.nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 4, 0))
    (wrong,) = torch.autograd.grad(zeros_first, x, g)
    assert not torch.equal(wrong, adjoint)


@settings(max_examples=25, deadline=None)
@given(blocks=st.integers(1, 5), size=st.integers(1, 4), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1e-6, 0.1, 1.0, 10.0]))
def test_stack_jacobian_matches_autograd(blocks, size, seed, scale):
    g = torch.Generator().manual_seed(seed)
    weights = [scale * torch.randn(size, size, generator=g, dtype=torch.float64) for _ in range(blocks)]
    x0 = torch.randn(size, generator=g, dtype=torch.float64)
    for residual in (True, False):
        def net(x):
            for w in weights:
                x = x + torch.tanh(w @ x) if residual else torch.tanh(w @ x)
            return x
        # each block's Jacobian at its own input x_i (the successive activations)
        jacs, x = [], x0
        for w in weights:
            f = lambda v, w=w: torch.tanh(w @ v)  # noqa: E731
            jacs.append(torch.autograd.functional.jacobian(f, x))
            x = x + f(x) if residual else f(x)
        expected = torch.autograd.functional.jacobian(net, x0)
        got = stack_jacobian(jacs, residual=residual)
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


def test_residual_jacobian_keeps_the_identity_when_branches_are_tiny():
    jacs = [1e-8 * torch.ones(3, 3, dtype=torch.float64)] * 50
    torch.testing.assert_close(stack_jacobian(jacs), torch.eye(3, dtype=torch.float64), atol=1e-5, rtol=0)
    assert stack_jacobian(jacs, residual=False).abs().max() == 0  # the plain product vanishes


def test_gradient_norms_shapes_and_no_side_effects():
    torch.manual_seed(0)
    net = cifar_resnet(14, in_channels=1)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    norms = gradient_norms(net, x, y)
    assert norms["activations"].shape == (1 + 6,)
    assert norms["weights"].shape == (1 + 12 + 1,)
    assert torch.isfinite(norms["input"]) and (norms["weights"] > 0).all()
    assert all(p.grad is None for p in net.parameters())


def test_training_reduces_the_error_and_error_rate_is_a_fraction():
    torch.manual_seed(0)
    x = torch.randn(64, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > 0).long()
    net = cifar_resnet(8, in_channels=1, num_classes=2)
    before = error_rate(net, x, y)
    history = train(net, x, y, epochs=8, batch_size=16, momentum=0.0,
                    generator=torch.Generator().manual_seed(0), progress=False)
    assert 0 <= error_rate(net, x, y) <= before and history.loss[-1] < history.loss[0]


@each_scale(SCALES)
def test_every_scale_builds_and_trains_for_two_steps(cfg):
    side = 8 if cfg["data"] == "digits" else 28
    for depth in cfg["depths"]:
        for plain in (False, True):
            torch.manual_seed(0)
            net = cifar_resnet(depth, plain=plain, in_channels=1)
            x, y = torch.randn(4, 1, side, side), torch.randint(0, 10, (4,))
            history = train(net, x, y, epochs=1, batch_size=2, lr=cfg["lr"],
                            momentum=cfg["momentum"], weight_decay=cfg["weight_decay"],
                            milestones=cfg["milestones"], progress=False)
            assert math.isfinite(history.loss[0])


def test_exercise_checkers_reject_plausible_wrong_answers():
    chain = "resnet-ex-linear-chain"
    assert check_answer(chain, "(1 + a)**L") and check_answer(chain, "(a + 1)**L")
    assert check_answer(chain, sp.exp(sp.Symbol("L") * sp.log(1 + sp.Symbol("a"))))  # another form
    assert not check_answer(chain, "1 + a*L")         # only the first-order terms
    assert not check_answer(chain, "a**L")            # the plain network's answer
    assert not check_answer(chain, "(1 + a)**(L - 1)")  # one block short
    assert not check_answer(chain, None)
    count = "resnet-ex-param-count"
    assert check_answer(count, "97216*n - 21926") and check_answer(count, "75290 + 97216*(n - 1)")
    assert not check_answer(count, "97216*n")         # forgets the missing first blocks
    assert not check_answer(count, "97216*n - 21926 + 2752")  # option B's projections counted
    assert "Hint:" in repr(check_answer(count, "97216*n"))


@pytest.mark.parametrize("depth", [8, 14, 20, 32, 44, 56, 110])
def test_param_count_answer_matches_the_model(depth):
    """The exercise's expected answer is the model's own count, at every depth of the paper."""
    value, _ = expected("resnet-ex-param-count")
    (n,) = value.free_symbols
    assert value.subs(n, blocks_per_stage(depth)) == count_parameters(cifar_resnet(depth))


@pytest.mark.parametrize("stride, in_channels, out_channels", [(1, 4, 4), (2, 4, 8)])
@pytest.mark.parametrize("training", [True, False])
def test_preact_block_matches_torch_layers_in_that_order(stride, in_channels, out_channels, training):
    """BN -> ReLU -> conv -> BN -> ReLU -> conv, from torch's own layers, plus the option-A shortcut."""
    torch.manual_seed(0)
    block = PreActBasicBlock(in_channels, out_channels, stride)
    with torch.no_grad():  # BN scales and shifts away from 1 and 0, so a swapped BN would show
        for bn in (block.bn1, block.bn2):
            bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 1.5)
    nn = torch.nn
    branch = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(), nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                           nn.BatchNorm2d(out_channels), nn.ReLU(), nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False))
    for k, name in [(0, "bn1"), (2, "conv1"), (3, "bn2"), (5, "conv2")]:
        branch[k].load_state_dict(getattr(block, name).state_dict())
    block.train(training), branch.train(training)
    x = torch.randn(3, in_channels, 6, 6)
    shortcut = torch.nn.functional.pad(x[:, :, ::stride, ::stride], (0, 0, 0, 0, 0, out_channels - in_channels))
    torch.testing.assert_close(block(x), shortcut + branch(x), rtol=0, atol=1e-6)


def test_preact_zero_branch_is_the_identity_on_every_input_and_the_original_is_not():
    block = PreActBasicBlock(4, 4).zero_residual_()
    x = torch.randn(3, 4, 5, 5)                      # negative entries included
    assert torch.equal(block(x), x)
    original = BasicBlock(4, 4).zero_residual_()
    assert not torch.equal(original(x), x)          # relu(x + 0) clips the negative entries


@pytest.mark.parametrize("preact", [True, False])
def test_a_stack_unrolls_to_its_input_plus_its_branches_only_without_the_relu(preact):
    """prop-resnet-unrolled on real blocks: x_L = x_0 + sum_i F_i(x_i); the original block breaks it."""
    torch.manual_seed(0)
    blocks = [(PreActBasicBlock if preact else BasicBlock)(4, 4).eval() for _ in range(6)]
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    for block in blocks:
        block.double()
    xs = [x]
    for block in blocks:
        xs.append(block(xs[-1]))
    unrolled = x + sum(block.residual(xi) for block, xi in zip(blocks, xs))
    assert torch.allclose(xs[-1], unrolled, rtol=1e-12, atol=1e-12) == preact


def test_input_gradient_ratio_matches_autograd_and_isolates_the_identity_term():
    torch.manual_seed(0)
    blocks = [PreActBasicBlock(4, 4) for _ in range(3)]
    x = torch.rand(2, 4, 5, 5)
    # the whole blocks, by hand: the same g from the same generator
    x0 = x.clone().requires_grad_(True)
    out = x0
    for block in blocks:
        out = block(out)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
    (by_hand,) = torch.autograd.grad((g * out).sum(), x0)
    ratio = input_gradient_ratio(blocks, x, generator=torch.Generator().manual_seed(7))
    assert math.isclose(ratio, (by_hand.norm() / g.norm()).item(), rel_tol=1e-6)
    # through the shortcuts alone: exactly the identity for pre-activation blocks ...
    assert input_gradient_ratio(blocks, x, shortcuts_only=True) == 1.0
    # ... and a 0/1 mask, so at most 1, for the original block with its relu after the addition
    originals = [BasicBlock(4, 4) for _ in range(10)]
    assert input_gradient_ratio(originals, torch.randn(2, 4, 5, 5), shortcuts_only=True) < 1.0
    assert all(p.grad is None for b in blocks + originals for p in b.parameters())


def test_preact_resnet_builds_counts_its_parameters_and_backpropagates():
    torch.manual_seed(0)
    net = preact_resnet(20, in_channels=1)
    # the same count as the original network: the first BN of each transition block normalises its
    # 16 or 32 inputs, not 32 or 64 outputs (-32 - 64), the first block has no BN of its own (-32:
    # the stem's BN-relu is its pre-activation), and a BN of 64 channels follows the last addition (+128)
    assert count_parameters(net) == count_parameters(cifar_resnet(20, in_channels=1))
    assert isinstance(net.blocks()[0].bn1, torch.nn.Identity)
    assert all(isinstance(b, PreActBasicBlock) for b in net.blocks()) and len(net.blocks()) == 9
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    assert net(x).shape == (8, 10)
    norms = gradient_norms(net, x, y)
    assert norms["activations"].shape == (1 + 9,) and torch.isfinite(norms["input"])
    assert torch.isfinite(norms["weights"]).all() and (norms["weights"] > 0).all()


def test_unrolled_three_exercise_rejects_plausible_wrong_answers():
    label = "resnet-ex-unrolled-three"
    assert check_answer(label, "a_0 + a_1*(1 + a_0) + a_2*(1 + a_0)*(1 + a_1)")
    assert check_answer(label, "(1 + a_0)*(1 + a_1)*(1 + a_2) - 1")            # another form
    assert not check_answer(label, "a_0 + a_1 + a_2")                          # the branches' own slopes
    assert not check_answer(label, "(1 + a_0)*(1 + a_1)*(1 + a_2)")            # the identity counted too
    assert not check_answer(label, "a_0*a_1*a_2")
    assert not check_answer(label, None)
