"""paperlib.stn against torch's affine_grid / grid_sample, on closed forms, and on bad input."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import nbformat
import pytest
import sympy as sp
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import each_scale
from paperlib import distorted_mnist, proofs, stn, stn_models
from paperlib.answers import check_answer
from paperlib.train import error_rate, fit

NOTEBOOK = Path(__file__).resolve().parents[1] / "chapters" / "cnn" / "spatial_transformer.ipynb"


pytestmark = pytest.mark.usefixtures("float64")  # exact comparisons in double precision


def torch_sample(images, grid, align_corners=False):
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=align_corners)


@pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid behavior")
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1e-6, 0.3, 1.0, 30.0, 1e4]), align_corners=st.booleans())
def test_affine_grid_equals_torch(n, h, w, seed, scale, align_corners):
    g = torch.Generator().manual_seed(seed)
    theta = scale * torch.randn(n, 2, 3, generator=g)
    ours = stn.affine_grid(theta, (n, 2, h, w), align_corners)
    expected = F.affine_grid(theta, [n, 2, h, w], align_corners=align_corners)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10 * (1 + scale))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 8), w=st.integers(1, 8),
       seed=st.integers(0, 2**16), spread=st.sampled_from([0.0, 1e-9, 0.5, 1.5, 40.0, 1e3]),
       align_corners=st.booleans())
def test_bilinear_sample_equals_grid_sample_in_values_and_gradients(n, c, h, w, seed, spread,
                                                                     align_corners):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, c, h, w, generator=g, requires_grad=True)
    grid = (spread * torch.randn(n, 4, 5, 2, generator=g)).requires_grad_()
    ours = stn.bilinear_sample(images, grid, align_corners)
    expected = torch_sample(images, grid, align_corners)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    weights = torch.randn(ours.shape, generator=g)
    grads = torch.autograd.grad((ours * weights).sum(), (images, grid))
    expected_grads = torch.autograd.grad((expected * weights).sum(), (images, grid))
    for mine, theirs in zip(grads, expected_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("align_corners", [False, True])
def test_the_whole_transformer_matches_torch_including_the_gradient_of_theta(align_corners):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 2, 11, 13, generator=g, requires_grad=True)
    theta = (torch.eye(2, 3) + 0.3 * torch.randn(4, 2, 3, generator=g)).requires_grad_()
    ours = stn.bilinear_sample(images, stn.affine_grid(theta, (4, 2, 7, 9), align_corners),
                               align_corners)
    expected = torch_sample(images, F.affine_grid(theta, [4, 2, 7, 9], align_corners=align_corners),
                            align_corners)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    for mine, theirs in zip(torch.autograd.grad(ours.pow(2).sum(), (images, theta)),
                            torch.autograd.grad(expected.pow(2).sum(), (images, theta))):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def full_jacobian(sample, theta):
    """dV/dtheta by autograd, N x C x H' x W' x 2 x 3 (each output only depends on its own theta)."""
    jac = torch.autograd.functional.jacobian(sample, theta)
    return torch.stack([jac[n, :, :, :, n] for n in range(len(theta))])


@pytest.mark.parametrize("align_corners", [False, True])
def test_theta_jacobian_equals_autograd_through_ours_and_torch(align_corners):
    """prop-stn-theta-gradient: eq. (7) times (W/2) g_j (first row) and (H/2) g_j (second row) is the
    gradient autograd finds through both samplers; the factor from normalised units left out, or
    taken from the output's size, is not."""
    g = torch.Generator().manual_seed(2)
    images = torch.rand(2, 3, 5, 6, generator=g)
    theta = torch.eye(2, 3) + 0.3 * torch.randn(2, 2, 3, generator=g)
    size = (2, 3, 4, 7)
    formula = stn.theta_jacobian(images, theta, size, align_corners)
    ours = full_jacobian(lambda th: stn.bilinear_sample(
        images, stn.affine_grid(th, size, align_corners), align_corners), theta)
    theirs = full_jacobian(lambda th: torch_sample(
        images, F.affine_grid(th, list(size), align_corners=align_corners), align_corners), theta)
    assert formula.shape == (2, 3, 4, 7, 2, 3) and (formula != 0).float().mean() > 0.5
    torch.testing.assert_close(formula, ours, rtol=0, atol=1e-12)
    torch.testing.assert_close(formula, theirs, rtol=0, atol=1e-12)
    half = torch.tensor([[6.0], [5.0]]) / 2 if not align_corners else torch.tensor([[5.0], [4.0]]) / 2
    wrong = {"normalised units": formula / half,
             "the output's size": formula * torch.tensor([[7 / 6], [4 / 5]]),
             "the other convention's factor": formula * (half + (0.5 if align_corners else -0.5)) / half}
    for name, jac in wrong.items():
        assert (jac - theirs).abs().max() > 0.1, name


def test_theta_jacobian_at_the_identity_takes_the_right_derivative_as_autograd_does():
    """Every sampling point of the identity grid is a pixel centre, a kink; with W = H = 8 no
    centre rounds below its integer, and the formula, ours and torch's all differentiate from the right."""
    images = torch.rand(1, 2, 8, 8, generator=torch.Generator().manual_seed(3))
    theta = torch.eye(2, 3).unsqueeze(0)
    formula = stn.theta_jacobian(images, theta, images.shape)
    for sample in (stn.bilinear_sample, torch_sample):
        torch.testing.assert_close(
            formula, full_jacobian(lambda th: sample(images, stn.affine_grid(th, images.shape)), theta),
            rtol=0, atol=1e-12)
    # the translation theta_13 at the identity: (W/2) (U[:, j + 1] - U[:, j]), zero beyond the last column
    right = torch.diff(images, dim=-1, append=torch.zeros(1, 2, 8, 1))
    torch.testing.assert_close(formula[..., 0, 2], 8 / 2 * right)


def test_theta_jacobian_of_a_single_pixel_with_align_corners_is_zero():
    images = torch.rand(1, 1, 1, 1)
    theta = torch.eye(2, 3).unsqueeze(0) + 0.1
    assert torch.equal(stn.theta_jacobian(images, theta, (1, 1, 3, 2), align_corners=True),
                       torch.zeros(1, 1, 3, 2, 2, 3))


@pytest.mark.parametrize("align_corners", [False, True])
def test_identity_theta_reproduces_the_input(align_corners):
    images = torch.rand(3, 2, 6, 10, generator=torch.Generator().manual_seed(1))
    identity = torch.eye(2, 3).expand(3, 2, 3)
    grid = stn.affine_grid(identity, images.shape, align_corners)
    torch.testing.assert_close(stn.bilinear_sample(images, grid, align_corners), images)


def test_identity_grid_lands_on_pixel_centres_and_the_gradient_is_the_forward_difference():
    """At the identity every sampling point is a pixel centre, a kink of the kernel: torch and
    bilinear_sample both take the derivative from the right, U[j + 1] - U[j] (per pixel)."""
    row = torch.tensor([[[[0.0, 1.0, 4.0, 9.0, 16.0]]]])
    grid = stn.affine_grid(torch.eye(2, 3).unsqueeze(0), row.shape).requires_grad_()
    pixels = stn.to_pixels(grid[..., 0].detach(), 5)
    torch.testing.assert_close(pixels, torch.arange(5.0).view(1, 1, 5))
    for sample in (stn.bilinear_sample, torch_sample):
        (dx,) = torch.autograd.grad(sample(row, grid).sum(), grid)
        per_pixel = dx[0, 0, :, 0] * 2 / 5  # d/dx_s = d/dx * dx/dx_s, dx/dx_s = W / 2
        # (pixel 0 is left out: in float64 its coordinate rounds to -1.1e-16, so floor gives -1 and
        # it gets the left derivative; the chapter counts such centres. W = 8 below has none.)
        torch.testing.assert_close(per_pixel[1:], torch.tensor([3.0, 5.0, 7.0, -16.0]))
    row = torch.arange(8.0).pow(2).view(1, 1, 1, 8)    # W = 8: every centre is exact in binary
    grid = stn.affine_grid(torch.eye(2, 3).unsqueeze(0), row.shape).requires_grad_()
    for sample in (stn.bilinear_sample, torch_sample):
        (dx,) = torch.autograd.grad(sample(row, grid).sum(), grid)
        torch.testing.assert_close(dx[0, 0, :, 0] * 2 / 8,
                                   torch.diff(row[0, 0, 0], append=torch.zeros(1)))


def test_normalised_coordinates_round_trip_to_pixels():
    for steps in (1, 2, 7):
        for align_corners in (False, True):
            x = stn.normalised_coordinates(steps, align_corners)
            if steps > 1:
                torch.testing.assert_close(stn.to_pixels(x, steps, align_corners),
                                           torch.arange(float(steps)))
    edges = stn.normalised_coordinates(4)
    torch.testing.assert_close(edges, torch.tensor([-0.75, -0.25, 0.25, 0.75]))


def test_rotation_turns_content_anticlockwise_and_theta_angle_inverts_it():
    image = torch.zeros(1, 1, 9, 9)
    image[0, 0, 4, 7] = 1.0  # a dot right of the centre
    turned = distorted_mnist.rotate(image, torch.tensor([90.0]))
    assert torch.nonzero(turned[0, 0] > 0.5).tolist() == [[1, 4]]  # now above the centre
    angles = torch.tensor([-179.0, -90.0, -12.5, 0.0, 33.0, 90.0, 179.0])
    torch.testing.assert_close(stn.theta_angle(stn.rotation_theta(angles)), angles)
    torch.testing.assert_close(distorted_mnist.rotate(image, torch.zeros(1)), image)
    # a scaled rotation has the same angle
    scaled = 0.7 * stn.rotation_theta(angles)
    torch.testing.assert_close(stn.theta_angle(scaled), angles)


def test_rotated_mnist_is_deterministic_and_in_range():
    x, y, degrees = distorted_mnist.rotated_mnist("test", seed=3)
    x2, _, degrees2 = distorted_mnist.rotated_mnist("test", seed=3)
    assert x.shape == (500, 1, 28, 28) and y.shape == (500,) and degrees.shape == (500,)
    assert torch.equal(x, x2) and torch.equal(degrees, degrees2)
    assert degrees.abs().max() <= 90 and degrees.std() > 40
    assert 0 <= x.min() and x.max() <= 1 + 1e-6


@pytest.mark.parametrize("align_corners", [False, True])
def test_stn_starts_at_the_identity_and_fused_equals_ours(align_corners):
    torch.manual_seed(0)
    module = stn.STN(stn_models.localisation_fcn(), 32, align_corners=align_corners)
    images = torch.rand(5, 1, 28, 28)
    output, theta = module.transform(images)
    torch.testing.assert_close(theta, torch.eye(2, 3).expand(5, 2, 3))
    torch.testing.assert_close(output, images)
    with torch.no_grad():
        module.regression.weight.normal_(0, 0.01)
    module.fused = False
    ours = module(images)
    module.fused = True
    torch.testing.assert_close(module(images), ours, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", stn_models.MODELS)
@each_scale(stn_models.SCALES)
def test_every_model_at_every_scale_builds_and_trains_for_two_steps(name, cfg):
    """The paper-scale switch must not rot: build each configuration and take two steps."""
    torch.manual_seed(0)
    model = stn_models.build(name, cfg).float()
    x = torch.rand(2 * cfg["batch_size"], 1, cfg["image_size"], cfg["image_size"], dtype=torch.float32)
    y = torch.randint(0, 10, (len(x),))
    assert model(x[:3]).shape == (3, 10)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg["lr"])
    history = fit(model, model.loss, (x, y), optimizer, epochs=1, batch_size=cfg["batch_size"],
                  progress=False)
    assert math.isfinite(history.loss[0])
    assert 0 <= error_rate(model, x, y) <= 1


def test_train_is_reproducible():
    cfg = dict(stn_models.SCALES["quick"], epochs={name: 1 for name in stn_models.MODELS})
    x = torch.rand(64, 1, cfg["image_size"], cfg["image_size"])
    y = torch.randint(0, 10, (64,))
    a = stn_models.train("ST-FCN", cfg, x, y, seed=4)
    b = stn_models.train("ST-FCN", cfg, x, y, seed=4)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_the_frozen_control_keeps_theta_at_the_identity_and_the_st_fcn_moves_it():
    cfg = dict(stn_models.SCALES["quick"], epochs={name: 2 for name in stn_models.MODELS})
    x, y = torch.rand(64, 1, cfg["image_size"], cfg["image_size"]), torch.randint(0, 10, (64,))
    identity = torch.eye(2, 3).expand(64, 2, 3)
    frozen = stn_models.train("ST-FCN" + stn_models.FROZEN, cfg, x, y, seed=0)
    moving = stn_models.train("ST-FCN", cfg, x, y, seed=0)
    with torch.no_grad():
        torch.testing.assert_close(frozen.stn.theta(x), identity, rtol=0, atol=0)
        assert (moving.stn.theta(x) - identity).abs().max() > 1e-4
        torch.testing.assert_close(frozen(x), frozen.body(x))  # the control computes an FCN


def test_placement_theta_puts_the_digit_centre_at_the_shift_and_scales_it():
    digit = torch.zeros(1, 1, 28, 28)
    digit[0, 0, 13:15, 13:15] = 1.0   # a 2 x 2 dot at the digit's centre
    one = lambda degrees, scale, shift: distorted_mnist.placement_theta(
        torch.tensor([degrees]), torch.tensor([scale]), torch.tensor([shift]), 42)
    canvas = stn.bilinear_sample(digit, stn.affine_grid(one(0.0, 1.0, [6.0, -4.0]), (1, 1, 42, 42)))
    rows, cols = torch.nonzero(canvas[0, 0] > 0.5, as_tuple=True)
    # the canvas centre is between pixels 20 and 21; +6 right, -4 up
    assert cols.float().mean() == 20.5 + 6 and rows.float().mean() == 20.5 - 4
    big = stn.bilinear_sample(digit, stn.affine_grid(one(0.0, 2.0, [0.0, 0.0]), (1, 1, 42, 42)))
    torch.testing.assert_close(big.sum(), 4 * canvas.sum())    # twice the size, four times the ink
    # turned by 90 degrees about the digit's centre: a dot right of the centre goes above it
    right = torch.zeros(1, 1, 28, 28)
    right[0, 0, 13:15, 20:22] = 1.0
    up = stn.bilinear_sample(right, stn.affine_grid(one(90.0, 1.0, [0.0, 0.0]), (1, 1, 42, 42)))
    rows, cols = torch.nonzero(up[0, 0] > 0.5, as_tuple=True)
    assert cols.float().mean() == 20.5 and rows.float().mean() == 20.5 - 7


def test_rts_mnist_is_deterministic_and_its_poses_are_in_range():
    x, y, pose = distorted_mnist.rts_mnist("test", seed=3)
    x2, _, pose2 = distorted_mnist.rts_mnist("test", seed=3)
    assert x.shape == (500, 1, 42, 42) and y.shape == (500,)
    assert torch.equal(x, x2) and all(torch.equal(pose[k], pose2[k]) for k in pose)
    assert pose["degrees"].abs().max() <= 45 and pose["degrees"].std() > 20
    assert 0.7 <= pose["scales"].min() and pose["scales"].max() <= 1.2
    assert pose["shifts"].shape == (500, 2) and pose["shifts"].abs().max() <= 7
    assert 0 <= x.min() and x.max() <= 1 + 1e-6
    # the ink's centre of mass follows the shift
    grid = torch.arange(42.0) - 20.5
    ink = x[:, 0]
    centre_x = (ink.sum(1) * grid).sum(1) / ink.sum((1, 2))
    assert torch.corrcoef(torch.stack([centre_x, pose["shifts"][:, 0]]))[0, 1] > 0.9


def test_pose_slopes_are_one_for_a_transformer_that_undoes_the_pose_and_zero_for_the_identity():
    g = torch.Generator().manual_seed(0)
    n = 200
    pose = dict(degrees=(2 * torch.rand(n, generator=g) - 1) * 45, scales=0.7 + 0.5 * torch.rand(n, generator=g),
                shifts=(2 * torch.rand(n, 2, generator=g) - 1) * 7)
    # undoing the pose: A = s R(-alpha), reading at the digit's offset c
    undo = pose["scales"].view(-1, 1, 1) * stn.rotation_theta(-pose["degrees"])[:, :, :2]
    theta = torch.cat([undo, (pose["shifts"] * 2 / 42).unsqueeze(-1)], -1)
    slopes = distorted_mnist.pose_slopes(theta, pose, 42)
    assert slopes == pytest.approx(dict(translation=1.0, rotation=-1.0, scale=1.0), abs=1e-9)
    still = distorted_mnist.pose_slopes(torch.eye(2, 3).expand(n, 2, 3), pose, 42)
    assert still == pytest.approx(dict(translation=0.0, rotation=0.0, scale=0.0), abs=1e-9)


# --- the chapter's checks -------------------------------------------------------------------

def proof_namespace(edit=None) -> dict:
    """Run the chapter's setup and proof cells; with ``edit``, stop after the first cell it changes."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code"
             and {"parameters", "setup", "proof"} & set(c.metadata.get("tags", []))]
    namespace = {"__name__": "stn_proofs", "display": lambda *a, **k: None}
    for source in cells:
        edited = edit(source) if edit else source
        exec(compile(edited, "<stn proof cell>", "exec"), namespace)  # noqa: S102
        if edit and edited != source:
            break
    return namespace


def test_the_derive_it_yourself_checkers_reject_plausible_wrong_answers():
    shift, gradient = "spatial_transformer-ex-shift", "spatial_transformer-ex-bilinear-gradient"
    assert check_answer(shift, "-2*k/W") and check_answer(shift, "-k/(W/2)")
    assert not check_answer(shift, "2*k/W")       # the sign: the grid moves, not the image
    assert not check_answer(shift, "-k")          # pixels taken as normalised units
    assert not check_answer(shift, "-k/W")        # half-widths taken as widths
    assert not check_answer(shift, None)
    assert check_answer(gradient, "(1 - fy)*(U01 - U00) + fy*(U11 - U10)")
    assert check_answer(gradient, "U01 - U00 + fy*(U00 - U01 - U10 + U11)")
    assert not check_answer(gradient, "U01 - U00 + U11 - U10")                  # weights dropped
    assert not check_answer(gradient, "(1 - fx)*(U10 - U00) + fx*(U11 - U01)")  # d/dy
    verdict = check_answer(gradient, "U01 - U00")
    assert "Not quite" in repr(verdict) and "Hint" in repr(verdict)
    theta_11 = "spatial_transformer-ex-theta-gradient"
    assert check_answer(theta_11, "(c - (W - 1)/2)*(U_right - U_left)")
    assert check_answer(theta_11, "W/2*((2*c + 1)/W - 1)*(U_right - U_left)")
    assert not check_answer(theta_11, "((2*c + 1)/W - 1)*(U_right - U_left)")   # normalised units
    assert not check_answer(theta_11, "W/2*(U_right - U_left)")                 # theta_13's answer
    assert not check_answer(theta_11, "(c - W/2)*(U_right - U_left)")           # centre off by half a pixel
    assert not check_answer(theta_11, "(c - (W - 1)/2)*(U_left - U_right)")     # the sign
    assert not check_answer(theta_11, None)


def test_the_identity_check_fails_when_align_corners_is_mixed():
    """The chapter's identity proof, edited to normalise with align_corners=True: it must fail."""
    right = "x_t_of_j = (2 * j + 1) / W - 1"
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert any(right in c.source for c in nb.cells)
    with pytest.raises(proofs.StepError):
        proof_namespace(lambda s: s.replace(right, "x_t_of_j = 2 * j / (W - 1) - 1"))


@pytest.mark.parametrize("right, wrong", [
    # the kernel at whole-pixel offsets: 1 at d = 0, not at d = 1
    ("on_centres.step(KD(d, 0)", "on_centres.step(KD(d, 1)"),
    # the identity grid reads U_ij, not its transpose
    ("reads_itself.step(U[i, j_px]", "reads_itself.step(U[j_px, i]"),
    # lemma: the weight of U_{m0} is 1 - f, of U_{m0+1} is f, not the other way round
    ("(1 - f) * KD(k, 0) + f * KD(k, 1), why=", "f * KD(k, 0) + (1 - f) * KD(k, 1), why="),
    # eq. (6) of the paper against a wrong closed form: x paired with the row index n
    ("eq6.step(kernel(x - m_pix) * kernel(y - n)", "eq6.step(kernel(x - n) * kernel(y - m_pix)"),
    # ... and the kernel without its max(0, .)
    ("eq6.step(kernel(x - m_pix) * kernel(y - n)", "eq6.step((1 - sp.Abs(x - m_pix)) * (1 - sp.Abs(y - n))"),
    # eq. (7) of the paper with its sign turned round
    ("eq7_term.step(eq7_case(m_real - x)", "eq7_term.step(eq7_case(x - m_real)"),
    ("KD(k, 1) - KD(k, 0), why=", "KD(k, 0) - KD(k, 1), why="),
    # the derivative from the left, U_{m0} - U_{m0-1}, is not the one between m0 and m0 + 1
    ("eq7.step(U[m0 + 1] - U[m0]", "eq7.step(U[m0] - U[m0 - 1]"),
])
def test_the_chapters_checks_fail_on_a_wrong_version(right, wrong):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert sum(right in c.source for c in nb.cells) == 1
    with pytest.raises(proofs.StepError):
        proof_namespace(lambda s: s.replace(right, wrong))


@pytest.fixture(scope="module")
def chapter() -> dict:
    return proof_namespace()


@pytest.mark.parametrize("name, wrong", [
    # each wrong only at one whole-number offset: the random integers must include that offset
    ("on_centres", "KD(d, 0) + KD(d, -1)"), ("on_centres", "0 * d"), ("on_centres", "KD(d, 0) + KD(d, 1)"),
    ("one_term", "(1 - f) * KD(k, 0) + f * KD(k, 1) + f * KD(k, -1)"), ("one_term", "f * KD(k, 1)"),
    ("one_term", "(1 - f) * KD(k, 0)"), ("one_term", "(1 - f) * KD(k, 0) + f * KD(k, 1) + f * KD(k, 2)"),
    ("eq7_cases", "KD(k, 1) - KD(k, 0) + KD(k, -1)"), ("eq7_cases", "KD(k, 1)"), ("eq7_cases", "-KD(k, 0)"),
    ("eq7_cases", "KD(k, 1) - KD(k, 0) + KD(k, 2)"),
])
def test_the_integer_offset_checks_reach_every_offset_that_matters(chapter, name, wrong):
    """The kernel steps are checked at random integers: a value wrong at d or k = -1, 0, 1 or 2 alone
    must meet a counterexample, so those offsets are among the points tried."""
    derivation = copy.copy(chapter[name])
    derivation.steps = [copy.copy(step) for step in derivation.steps]
    derivation.steps[-1].expr = sp.sympify(eval(wrong, chapter))  # noqa: S307 - the test's own strings
    derivation.steps[-1].verdict = None
    with pytest.raises(proofs.StepError):
        derivation.check()


@pytest.mark.parametrize("name, number, wrong", [
    # the grid in normalised units, or with align_corners=True's factor (W - 1)/2
    ("grid_chain", 3, "g_[j_col]"), ("grid_chain", 3, "(W - 1) / 2 * g_[j_col]"),
    # the chain with the W/2 left out, with W in place of H, or with the y-difference for x
    ("first_row", 2, "dV_dx * g_[j_col]"), ("second_row", 2, "dV_dy * W / 2 * g_[j_col]"),
    ("first_row", 1, "dV_dy * sp.diff(x_pixel, theta_[1, j_col])"),
])
def test_the_theta_gradient_checks_fail_on_a_wrong_version(chapter, name, number, wrong):
    """prop-stn-theta-gradient's derivations, with one step replaced by a plausible wrong one."""
    right = chapter[name]
    assert right.checked
    window = copy.copy(right)                   # the step before it stays, checked already
    window.start = right.start if number == 1 else right.steps[number - 2].expr
    window.steps = [copy.copy(right.steps[number - 1])]
    window.steps[0].expr = sp.sympify(eval(wrong, chapter))  # noqa: S307 - the test's own strings
    with pytest.raises(proofs.StepError):
        window.check()


@pytest.mark.parametrize("sampler", ["ours", "torch"])
def test_the_output_point_that_reads_p_is_a_inverse_of_p_minus_b(sampler):
    """The grid-direction statement against the grid generator itself: from each sampling position
    p, A^-1 (p - b) gives back the output pixel centre that reads it; A p + b, A (p - b) and A^-1 p
    do not."""
    theta = torch.tensor([[[0.9, -0.4, 0.2], [0.3, 0.7, -0.1]]])
    A, b = theta[0, :, :2], theta[0, :, 2]
    grid = (stn.affine_grid(theta, (1, 1, 5, 7)) if sampler == "ours"
            else F.affine_grid(theta, [1, 1, 5, 7], align_corners=False))
    p = grid[0].reshape(-1, 2)
    xs, ys = (2 * torch.arange(7) + 1) / 7 - 1, (2 * torch.arange(5) + 1) / 5 - 1
    centres = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)
    torch.testing.assert_close(torch.linalg.solve(A, (p - b).T).T, centres, rtol=0, atol=1e-12)
    for wrong in (p @ A.T + b, (p - b) @ A.T, torch.linalg.solve(A, p.T).T):
        assert (wrong - centres).abs().max() > 0.1
