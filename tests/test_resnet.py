"""paperlib.resnet: Table 6's parameter counts, the exact identity argument, Jacobians, bad input."""

import math

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlib.answers import check_answer, expected
from paperlib.resnet import (SCALES, BasicBlock, blocks_per_stage, cifar_resnet, count_parameters,
                             deepen, gradient_norms, pad_shortcut, stack_jacobian, train)
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


@pytest.mark.parametrize("scale", sorted(SCALES))
def test_every_scale_builds_and_trains_for_two_steps(scale):
    cfg = SCALES[scale]
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
