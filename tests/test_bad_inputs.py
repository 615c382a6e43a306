"""Bad input to every public function and class of paperlib, in one table.

The book promises (README.md, "Tests"; the docstring of ``paperlib._checks``) that bad input
raises a ``ValueError`` or ``TypeError`` naming the argument, never a NaN three calls later. Checks
that read a tensor's values (targets in [0, 1], w^T u > -1, finite coordinates, distributions that
sum to 1) are opt-in with ``validate=True``, so this table passes it. ``BAD_INPUTS`` holds at least one entry
per public name: a call with one bad argument (a wrong shape, a negative or NaN hyperparameter, an
unknown option, a wrong type), the exception it must raise, and a pattern its message must match:
the argument's name, at the start of the message, where a reader looks first.

The table stays complete: ``test_every_public_name_is_in_the_table`` fails when a public function
or class has neither an entry nor a reason in ``EXEMPT``, and a name that no longer exists fails
``test_the_table_names_only_public_names``. This is the only table of bad arguments: the per-module
test files test behaviour, and a new bad-argument case goes here.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
import sympy as sp
import torch
from matplotlib.figure import Figure
from torch import nn

import paperlib
from paperlib import (_checks, adam, adamw, answers, beta_vae, chapter, claims, data,
                      disentanglement, distorted_mnist, distributions, dsprites, flows, gan, made,
                      maf, plot, potentials, preact_resnet, proofs, radial_flows, resnet, ring, stn,
                      stn_models, train, vae)

NAN = float("nan")
LONG = dict(dtype=torch.long)
X = torch.linspace(0.1, 0.8, 8).reshape(4, 2)  # 4 examples of 2 features, in [0, 1]
W, U_BAD = torch.tensor([1.0, 0.0]), torch.tensor([-2.0, 0.0])  # w^T u = -2: not invertible
P = torch.tensor([0.5, 0.5])  # a distribution over two outcomes
SPRITES = dsprites.DSprites(size=16)  # renders nothing until asked
x = sp.Symbol("x", real=True)


def tiny_gan_call(**bad_argument):
    G, D = gan.Generator(2, 2, hidden_sizes=(4,)), gan.Discriminator(2, hidden_sizes=(4,), pieces=2)
    return gan.train_gan(G, D, lambda n: torch.zeros(n, 2), steps=1, **bad_argument)


def tiny_fit_call(**bad_argument):
    model = nn.Linear(2, 1)
    return train.fit(model, lambda xb: model(xb).mean(), X, torch.optim.SGD(model.parameters()),
                     **bad_argument)


_CASES: dict[str, int] = {}


def bad(name: str, call, exc: type[Exception], match: str):
    """One case for the public name ``name``; its test id is the name, then name#2, name#3, ..."""
    _CASES[name] = _CASES.get(name, 0) + 1
    return pytest.param(call, exc, match, id=name if _CASES[name] == 1 else f"{name}#{_CASES[name]}")


BAD_INPUTS = [
    # _checks: the shared checks themselves
    bad("_checks.positive_int", lambda: _checks.positive_int("width", True), ValueError, r"^width\b"),
    bad("_checks.positive_ints", lambda: _checks.positive_ints(depth=3, width=0), ValueError, r"^width\b"),
    bad("_checks.same_shape", lambda: _checks.same_shape(mu=X, logvar=X[:, :1]),
        ValueError, r"^logvar\b"),
    bad("_checks.float_tensor", lambda: _checks.float_tensor("theta", torch.zeros(2, **LONG)),
        TypeError, r"^theta\b"),
    bad("_checks.batch", lambda: _checks.batch("z", torch.zeros(3, 4), 2), ValueError, r"^z\b"),
    bad("_checks.degree_tensor", lambda: _checks.degree_tensor("hidden", torch.tensor([1.0])),
        TypeError, r"^hidden\b"),
    bad("_checks.nonnegative", lambda: _checks.nonnegative("lr", NAN), ValueError, r"^lr\b"),
    bad("_checks.beta_pair", lambda: _checks.beta_pair((0.9, 1.0)), ValueError, r"^betas\b"),
    bad("_checks.loss_weight", lambda: _checks.loss_weight("gamma", torch.ones(2)),
        TypeError, r"^gamma\b"),
    # chapter
    bad("chapter.setup", lambda: chapter.setup("yes", vae.SCALES), TypeError, r"^quick\b"),
    bad("chapter.setup", lambda: chapter.setup(True, {"quick": {}}), ValueError, r"^scales\b"),
    bad("chapter.setup", lambda: chapter.setup(True, vae.SCALES, threads=0), ValueError, r"^threads\b"),
    # claims
    bad("claims.claim", lambda: claims.claim("A beats B", NAN, at_least=0.0), ValueError, r"^value\b"),
    bad("claims.claim", lambda: claims.claim(" ", 1.0, at_least=0.0), ValueError, r"^statement\b"),
    bad("claims.claim", lambda: claims.claim("A", 1.0), ValueError, r"^at_least\b"),
    bad("claims.claim", lambda: claims.claim("A", 1.0, at_least=0.0, at_most=2.0), ValueError,
        r"^at_least\b"),
    bad("claims.claim", lambda: claims.claim("A", "1.0", at_least=0.0), TypeError, r"^value\b"),
    bad("claims.claim", lambda: claims.claim("A", 1.0, at_most=NAN), ValueError, r"^at_most\b"),
    bad("claims.claim", lambda: claims.claim("A", 1.0, at_least=0.0, scale=0.0), ValueError,
        r"^scale\b"),
    # adam
    bad("adam.AdaMax", lambda: adam.AdaMax([nn.Parameter(torch.zeros(2))], lr=-2e-3), ValueError, r"^lr\b"),
    bad("adam.AdaMax", lambda: adam.AdaMax([nn.Parameter(torch.zeros(2))], betas=(0.9, 1.0)),
        ValueError, r"^betas\b"),
    bad("adam.AdaMax", lambda: adam.AdaMax([nn.Parameter(torch.zeros(2))], eps=NAN), ValueError, r"^eps\b"),
    bad("adamw.AdamW", lambda: adamw.AdamW([nn.Parameter(torch.zeros(2))], weight_decay=-0.1),
        ValueError, r"^weight_decay\b"),
    bad("adamw.AdamW", lambda: adamw.AdamW([nn.Parameter(torch.zeros(2))], weight_decay=NAN),
        ValueError, r"^weight_decay\b"),
    bad("adamw.AdamW", lambda: adamw.AdamW([nn.Parameter(torch.zeros(2))], betas=(0.9,)), ValueError, r"^betas\b"),
    bad("adam.bias_correction", lambda: adam.bias_correction(1.0, t=3), ValueError, r"^beta\b"),
    bad("adam.step_size", lambda: adam.step_size(-1e-3, (0.9, 0.999), 1), ValueError, r"^lr\b"),
    bad("adam.eps_hat", lambda: adam.eps_hat(NAN, 0.999, 1), ValueError, r"^eps\b"),
    bad("adam.step_bound", lambda: adam.step_bound(1e-3, (0.9,)), ValueError, r"^betas\b"),
    bad("adam.reddi_gradient", lambda: adam.reddi_gradient(0), ValueError, r"^t\b"),
    bad("adam.Adam", lambda: adam.Adam([nn.Parameter(torch.zeros(2))], betas=(0.9, 1.0)),
        ValueError, r"^betas\b"),
    bad("adam.reddi_online", lambda: adam.reddi_online(True, steps=0), ValueError, r"^steps\b"),
    bad("adam.train_logreg", lambda: adam.train_logreg(adam.Adam, X[:, 0], X[:, 0].long(), 1),
        ValueError, r"^x\b"),
    bad("adam.train_vae", lambda: adam.train_vae(X, 0.999, True, 1e-3, steps=0, hidden=4),
        ValueError, r"^steps\b"),
    bad("adam.Adam", lambda: adam.Adam([nn.Parameter(torch.zeros(1))], lr=-1e-3), ValueError, r"^lr\b"),
    bad("adam.Adam", lambda: adam.Adam([nn.Parameter(torch.zeros(1))], eps=-1e-8), ValueError, r"^eps\b"),
    bad("adam.Adam", lambda: adam.Adam([nn.Parameter(torch.zeros(1))], betas=(0.9, -0.1)),
        ValueError, r"^betas\b"),
    bad("adam.Adam", lambda: adam.Adam([nn.Parameter(torch.zeros(1))], betas=(0.9,)),
        ValueError, r"^betas\b"),
    bad("adam.Adam", lambda: adam.Adam([nn.Parameter(torch.zeros(1))], betas=(1.0, 0.999)),
        ValueError, r"^betas\b"),
    bad("adam.bias_correction", lambda: adam.bias_correction(0.9, 0), ValueError, r"^t\b"),
    bad("adam.step_size", lambda: adam.step_size(1e-3, (0.9, 1.5), 1), ValueError, r"^betas\b"),
    bad("adam.eps_hat", lambda: adam.eps_hat(-1e-8, 0.999, 1), ValueError, r"^eps\b"),
    bad("adam.eps_hat", lambda: adam.eps_hat(1e-8, 0.999, 2.5), ValueError, r"^t\b"),
    bad("adam.step_bound", lambda: adam.step_bound(1e-3, (-0.1, 0.999)), ValueError, r"^betas\b"),
    bad("adam.reddi_gradient", lambda: adam.reddi_gradient(1, C=2.0), ValueError, r"^C\b"),
    # data
    bad("data.read_idx", lambda: data.read_idx("t10k-images-idx3-ubyte.gz", kind="pixels"),
        ValueError, r"^kind\b"),
    bad("data.mnist", lambda: data.mnist("validation"), ValueError, r"^split\b"),
    bad("data.binarize", lambda: data.binarize(X, threshold=1.5), ValueError, r"^threshold\b"),
    bad("data.binarize", lambda: data.binarize(torch.tensor([1.5])), ValueError, r"^images\b"),
    bad("data.binarize", lambda: data.binarize(torch.tensor([-0.1])), ValueError, r"^images\b"),
    bad("data.binarize", lambda: data.binarize(torch.tensor([NAN])), ValueError, r"^images\b"),
    bad("data.binarize", lambda: data.binarize(torch.tensor([0, 1], dtype=torch.uint8)),
        TypeError, r"^images\b"),
    bad("data.binarize", lambda: data.binarize(np.array([0.5])), TypeError, r"^images\b"),
    bad("data.binarize", lambda: data.binarize(torch.tensor([0.5]), threshold=-0.1),
        ValueError, r"^threshold\b"),
    bad("data.binarize", lambda: data.binarize(torch.tensor([0.5]), threshold=NAN),
        ValueError, r"^threshold\b"),
    # distributions
    bad("distributions.reparameterize", lambda: distributions.reparameterize(X, torch.zeros(4, 3)),
        ValueError, r"^logvar\b"),
    bad("distributions.kl_normal", lambda: distributions.kl_normal(X, torch.zeros(2)), ValueError, r"^logvar\b"),
    bad("distributions.log_normal", lambda: distributions.log_normal(X, X, torch.zeros(4, 1)),
        ValueError, r"^logvar\b"),
    bad("distributions.bernoulli_nll", lambda: distributions.bernoulli_nll(X, 255 * X, validate=True), ValueError, r"^x\b"),
    bad("distributions.gaussian_nll", lambda: distributions.gaussian_nll(X, X, var=NAN), ValueError, r"^var\b"),
    bad("distributions.bernoulli_nll", lambda: distributions.bernoulli_nll(torch.zeros(2, 3), torch.full((2, 3), 1.5),
                                                       validate=True), ValueError, r"^x\b"),
    bad("distributions.gaussian_nll", lambda: distributions.gaussian_nll(X, X, var=0.0), ValueError, r"^var\b"),
    bad("distributions.check_likelihood", lambda: distributions.check_likelihood("poisson"),
        ValueError, r"^likelihood\b"),
    bad("distributions.nll", lambda: distributions.nll(X, X, likelihood="laplace"), ValueError,
        r"^likelihood\b"),
    bad("distributions.nll", lambda: distributions.nll(X, X, "gaussian", var=0.0), ValueError,
        r"^var\b"),
    # dsprites
    bad("dsprites.DSprites", lambda: dsprites.DSprites(size=4), ValueError, r"^size\b"),
    bad("dsprites.DSprites", lambda: SPRITES.index([0, 0, 0, 0]), ValueError, r"^factors\b"),
    bad("dsprites.DSprites", lambda: SPRITES.index([0, 6, 0, 0, 0]), ValueError, r"^factors\b"),
    bad("dsprites.DSprites", lambda: SPRITES.index([0, 0, 0, 0, -1]), ValueError, r"^factors\b"),
    bad("dsprites.DSprites", lambda: SPRITES.index(torch.zeros(5)), TypeError, r"^factors\b"),
    bad("dsprites.DSprites", lambda: SPRITES.index([0, 0, 0, 0, 0.5]), TypeError, r"^factors\b"),
    bad("dsprites.DSprites", lambda: SPRITES.index("00000"), TypeError, r"^factors\b"),
    bad("dsprites.DSprites", lambda: SPRITES.render(torch.zeros(2, 4, dtype=torch.long)),
        ValueError, r"^factors\b"),
    bad("dsprites.DSprites", lambda: SPRITES.factors(len(SPRITES)), IndexError, r"^index\b"),
    bad("dsprites.DSprites", lambda: SPRITES.factors(1.5), TypeError, r"^index\b"),
    bad("dsprites.DSprites", lambda: SPRITES[-1], IndexError, r"^index\b"),
    bad("dsprites.DSprites", lambda: SPRITES["a"], TypeError, r"^index\b"),
    # disentanglement
    bad("disentanglement.discretize", lambda: disentanglement.discretize(X, bins=0),
        ValueError, r"^bins\b"),
    bad("disentanglement.discretize", lambda: disentanglement.discretize(X[:, 0]), ValueError, r"^z\b"),
    bad("disentanglement.discrete_entropy", lambda: disentanglement.discrete_entropy(X),
        TypeError, r"^v\b"),
    bad("disentanglement.discrete_mutual_info",
        lambda: disentanglement.discrete_mutual_info(torch.zeros(4, 2, **LONG), torch.zeros(3, 1, **LONG)),
        ValueError, r"^v\b"),
    bad("disentanglement.mutual_information_gap",
        lambda: disentanglement.mutual_information_gap(X, torch.ones(3)), ValueError, r"^entropy\b"),
    bad("disentanglement.mutual_information_gap",
        lambda: disentanglement.mutual_information_gap(X[:1], torch.ones(2)), ValueError, r"^info\b"),
    bad("disentanglement.mig", lambda: disentanglement.mig(X, torch.zeros(4, 2, **LONG)),
        ValueError, r"^factors\b"),
    bad("disentanglement.mig", lambda: disentanglement.mig(X, X), TypeError, r"^factors\b"),
    bad("disentanglement.mig", lambda: disentanglement.mig(X, torch.tensor([[0], [1], [0], [1]]), bins=0),
        ValueError, r"^bins\b"),
    # flows
    bad("radial_flows.beta_hat", lambda: radial_flows.beta_hat(0.5, torch.tensor(0.0)), TypeError, r"^alpha\b"),
    bad("radial_flows.radial", lambda: radial_flows.radial(X, torch.zeros(2), 0.5, -0.75, validate=True),
        ValueError, r"^beta\b"),
    bad("radial_flows.radial", lambda: radial_flows.radial(X, torch.zeros(2), -1.0, 0.0, validate=True),
        ValueError, r"^alpha\b"),
    bad("radial_flows.radial_inverse", lambda: radial_flows.radial_inverse(X, torch.zeros(2), 0.5, -0.5, validate=True),
        ValueError, r"^beta\b"),
    bad("radial_flows.RadialFlow", lambda: radial_flows.RadialFlow(d=0), ValueError, r"^d\b"),
    bad("radial_flows.RadialFlow", lambda: radial_flows.RadialFlow(2, init_scale=-1.0), ValueError, r"^init_scale\b"),
    bad("radial_flows.RadialFlow", lambda: radial_flows.RadialFlow(2)(torch.zeros(3, 4)), ValueError, r"^z\b"),
    bad("flows.u_hat", lambda: flows.u_hat(torch.zeros(3), torch.zeros(2)), ValueError, r"^w\b"),
    bad("flows.planar", lambda: flows.planar(X, U_BAD, W, 0.0, validate=True), ValueError, r"^u\b"),
    bad("flows.planar_inverse", lambda: flows.planar_inverse(X, U_BAD, W, 0.0, validate=True),
        ValueError, r"^u\b"),
    bad("flows.PlanarFlow", lambda: flows.PlanarFlow(d=0), ValueError, r"^d\b"),
    bad("flows.FlowLayer", lambda: flows.FlowLayer(2, init_scale=NAN), ValueError, r"^init_scale\b"),
    bad("flows.compose", lambda: flows.compose([flows.PlanarFlow(2)], [[0.0, 0.0]]), TypeError, r"^z\b"),
    bad("flows.NormalizingFlow", lambda: flows.NormalizingFlow(2, K=-1), ValueError, r"^K\b"),
    bad("flows.Flow", lambda: flows.Flow(0, []), ValueError, r"^d\b"),
    bad("flows.Flow", lambda: flows.Flow(2, [flows.PlanarFlow(2)]).inverse(torch.zeros(3, 3)),
        ValueError, r"^z\b"),
    bad("flows.Flow", lambda: flows.Flow(2, []).base_sample(-1), ValueError, r"^n\b"),
    bad("potentials.annealed_beta", lambda: potentials.annealed_beta(10, anneal_steps=0),
        ValueError, r"^anneal_steps\b"),
    bad("potentials.free_energy", lambda: potentials.free_energy(flows.NormalizingFlow(2, 1), 1, 8, beta=NAN),
        ValueError, r"^beta\b"),
    bad("potentials.fit_flows", lambda: potentials.fit_flows([flows.NormalizingFlow(2, 1)], [1, 2], steps=1),
        ValueError, r"^targets\b"),
    bad("potentials.fit_flows", lambda: potentials.fit_flows([flows.NormalizingFlow(2, 1)], [1], steps=0),
        ValueError, r"^steps\b"),
    bad("potentials.fit_flows", lambda: potentials.fit_flows([flows.NormalizingFlow(2, 1),
                                                    flows.NormalizingFlow(2, 2)], [1, 1], steps=1),
        ValueError, r"^flows\b"),
    bad("flows.FlowVAE", lambda: flows.FlowVAE(x_dim=4, hidden=3, z_dim=2, K=-1),
        ValueError, r"^K\b"),
    bad("flows.PlanarFlow", lambda: flows.PlanarFlow(2)(torch.zeros(3, 4)), ValueError, r"^z\b"),
    bad("flows.PlanarFlow", lambda: flows.PlanarFlow(2)([[0.0, 0.0]]), TypeError, r"^z\b"),
    bad("flows.NormalizingFlow", lambda: flows.NormalizingFlow(2, K=1).sample(0),
        ValueError, r"^n\b"),
    bad("potentials.free_energy", lambda: potentials.free_energy(flows.NormalizingFlow(2, 1), 1, 4, beta=-1.0),
        ValueError, r"^beta\b"),
    bad("flows.FlowVAE", lambda: flows.FlowVAE(x_dim=4, hidden=2, z_dim=1, K=1).elbo(
        torch.zeros(2, 4), kl="analytic"), ValueError, r"^kl\b"),
    # potentials
    bad("potentials.potential", lambda: potentials.potential(5, X), ValueError, r"^k\b"),
    bad("potentials.potential", lambda: potentials.potential(1, torch.zeros(1, 3)), ValueError,
        r"^z\b"),
    bad("potentials.energy", lambda: potentials.energy(0, X), ValueError, r"^k\b"),
    bad("potentials.box_wall", lambda: potentials.box_wall(X, box=-4.0), ValueError, r"^box\b"),
    bad("potentials.log_normalizer", lambda: potentials.log_normalizer(1, points=1),
        ValueError, r"^points\b"),
    bad("potentials.log_normalizer", lambda: potentials.log_normalizer(1, box=0.0), ValueError,
        r"^box\b"),
    bad("potentials.kl_box", lambda: potentials.kl_box(flows.NormalizingFlow(2, 1), 1, box=-1.0),
        ValueError, r"^box\b"),
    # gan
    bad("gan.non_saturating_criterion",
        lambda: gan.non_saturating_criterion(P, torch.tensor([0.5, -0.5]), validate=True), ValueError, r"^p_g\b"),
    bad("gan.optimal_discriminator",
        lambda: gan.optimal_discriminator(P, torch.tensor([0.5, -0.5]), validate=True), ValueError, r"^p_g\b"),
    bad("gan.kl_divergence", lambda: gan.kl_divergence(P, torch.tensor([0.5, 0.6]), validate=True),
        ValueError, r"^q\b"),
    bad("gan.js_divergence", lambda: gan.js_divergence(P, torch.full((3,), 1 / 3), validate=True),
        ValueError, r"^q\b"),
    bad("gan.virtual_criterion", lambda: gan.virtual_criterion(P, torch.tensor([0.5, 0.25]), validate=True),
        ValueError, r"^p_g\b"),
    bad("gan.discriminator_loss", lambda: gan.discriminator_loss([0.0], torch.zeros(2)),
        TypeError, r"^real_logits\b"),
    bad("gan.minimax_generator_loss", lambda: gan.minimax_generator_loss(torch.zeros(4, **LONG)),
        TypeError, r"^fake_logits\b"),
    bad("gan.non_saturating_generator_loss", lambda: gan.non_saturating_generator_loss([0.0]),
        TypeError, r"^fake_logits\b"),
    bad("gan.parzen_log_likelihood", lambda: gan.parzen_log_likelihood(X, X, sigma=NAN),
        ValueError, r"^sigma\b"),
    bad("gan.Maxout", lambda: gan.Maxout(4, 3, pieces=0), ValueError, r"^pieces\b"),
    bad("gan.Generator", lambda: gan.Generator(z_dim=0, x_dim=2), ValueError, r"^z_dim\b"),
    bad("gan.Generator", lambda: gan.Generator(2, 2, hidden_sizes=(8, 0)), ValueError,
        r"^hidden_sizes\b"),
    bad("gan.Discriminator", lambda: gan.Discriminator(2, dropout=1.0), ValueError, r"^dropout\b"),
    bad("gan.train_gan", lambda: tiny_gan_call(loss="wasserstein"), ValueError, r"^loss\b"),
    bad("ring.ring_of_gaussians", lambda: ring.ring_of_gaussians(8, std=-0.02),
        ValueError, r"^std\b"),
    bad("ring.mode_coverage", lambda: ring.mode_coverage(torch.zeros(5, 3)),
        ValueError, r"^samples\b"),
    bad("gan.optimal_discriminator", lambda: gan.optimal_discriminator(
        torch.tensor([-0.1]), torch.tensor([0.5]), validate=True), ValueError, r"^p_data\b"),
    bad("gan.optimal_discriminator", lambda: gan.optimal_discriminator(
        torch.tensor([0.1]), torch.tensor([0.5, 0.2])), ValueError, r"^p_g\b"),
    bad("gan.js_divergence", lambda: gan.js_divergence(P, torch.tensor([0.5, 0.6]), validate=True),
        ValueError, r"^q\b"),
    bad("gan.kl_divergence", lambda: gan.kl_divergence([0.5, 0.5], P), TypeError, r"^p\b"),
    bad("gan.virtual_criterion", lambda: gan.virtual_criterion(
        torch.tensor([1.5, -0.5]), P, validate=True), ValueError, r"^p_data\b"),
    bad("gan.discriminator_loss", lambda: gan.discriminator_loss(torch.tensor([1]), torch.zeros(1)),
        TypeError, r"^real_logits\b"),
    bad("gan.minimax_generator_loss", lambda: gan.minimax_generator_loss(None),
        TypeError, r"^fake_logits\b"),
    bad("gan.parzen_log_likelihood", lambda: gan.parzen_log_likelihood(
        torch.zeros(3, 2), torch.zeros(3, 4), 1.0), ValueError, r"^test\b"),
    bad("gan.parzen_log_likelihood", lambda: gan.parzen_log_likelihood(X, X, sigma=0.0),
        ValueError, r"^sigma\b"),
    bad("gan.non_saturating_generator_loss",
        lambda: gan.non_saturating_generator_loss(torch.tensor([1])), TypeError, r"^fake_logits\b"),
    bad("gan.Generator", lambda: gan.Generator(2, 2)(torch.zeros(3, 5)), ValueError, r"^z\b"),
    bad("gan.Discriminator", lambda: gan.Discriminator(2, scale=0.0), ValueError, r"^scale\b"),
    bad("gan.Discriminator", lambda: gan.Discriminator(2)(torch.zeros(3)), ValueError, r"^x\b"),
    bad("ring.ring_of_gaussians", lambda: ring.ring_of_gaussians(0), ValueError, r"^n\b"),
    # made
    bad("maf.MAFLayer", lambda: maf.MAFLayer(1, [4]), ValueError, r"^d\b"),
    bad("maf.MAFLayer", lambda: maf.MAFLayer(3, []), ValueError, r"^hidden_sizes\b"),
    bad("maf.MAFLayer", lambda: maf.MAFLayer(3, [4])(torch.zeros(2, 4)), ValueError, r"^x\b"),
    bad("maf.MAFLayer", lambda: maf.MAFLayer(3, [4]).inverse(torch.zeros(3)), ValueError, r"^u\b"),
    bad("maf.MAF", lambda: maf.MAF(3, [4], num_layers=0), ValueError, r"^num_layers\b"),
    bad("maf.MAF", lambda: maf.MAF(3, [4]).log_prob(torch.zeros(2, 2)), ValueError, r"^x\b"),
    bad("maf.MAF", lambda: maf.MAF(3, [4]).inverse(torch.zeros(2, 2)), ValueError, r"^u\b"),
    bad("maf.MAF", lambda: maf.MAF(3, [4]).sample(0), ValueError, r"^n\b"),
    bad("made.input_degrees", lambda: made.input_degrees(torch.tensor([0, 0, 2])),
        ValueError, r"^ordering\b"),
    bad("made.hidden_degrees", lambda: made.hidden_degrees(torch.tensor([1, 2, 3]), size=0, d=3),
        ValueError, r"^size\b"),
    bad("made.hidden_mask", lambda: made.hidden_mask(torch.tensor([1.0, 2.0]), torch.tensor([1])),
        TypeError, r"^previous\b"),
    bad("made.output_mask", lambda: made.output_mask(torch.tensor([1]), torch.tensor([1.0, 2.0])),
        TypeError, r"^outputs\b"),
    bad("made.direct_mask", lambda: made.direct_mask(torch.tensor([1.0, 2.0])),
        TypeError, r"^inputs\b"),
    bad("made.connectivity", lambda: made.connectivity([]), ValueError, r"^masks\b"),
    bad("made.mixture_nll", lambda: made.mixture_nll(torch.zeros(5)), ValueError, r"^log_probs\b"),
    bad("made.MaskedLinear", lambda: made.MaskedLinear(3, 2).set_mask(torch.ones(3, 3)),
        ValueError, r"^mask\b"),
    bad("made.MADE", lambda: made.MADE(d=1, hidden_sizes=[4]), ValueError, r"^d\b"),
    bad("made.input_degrees", lambda: made.input_degrees(torch.tensor([0.0, 1.0])),
        TypeError, r"^ordering\b"),
    bad("made.hidden_degrees", lambda: made.hidden_degrees(torch.tensor([1]), 4, 1),
        ValueError, r"^d\b"),
    bad("made.hidden_mask", lambda: made.hidden_mask(torch.tensor([1, 2]), [1, 2]),
        TypeError, r"^current\b"),
    bad("made.output_mask", lambda: made.output_mask(torch.tensor([[1, 2]]), torch.tensor([1, 2])),
        TypeError, r"^hidden\b"),
    bad("made.direct_mask", lambda: made.direct_mask(torch.tensor([], **LONG)),
        TypeError, r"^inputs\b"),
    bad("made.connectivity", lambda: made.connectivity([torch.ones(3, 2), torch.ones(2, 4)]),
        ValueError, r"^masks\b"),
    bad("made.MaskedLinear", lambda: made.MaskedLinear(3, 2).set_mask(torch.ones(3, 2)),
        ValueError, r"^mask\b"),
    bad("made.MADE", lambda: made.MADE(4, []), ValueError, r"^hidden_sizes\b"),
    bad("made.MADE", lambda: made.MADE(4, [4], num_masks=0), ValueError, r"^num_masks\b"),
    bad("made.MADE", lambda: made.MADE(4, [4], num_masks=2).update_masks(2),
        ValueError, r"^index\b"),
    bad("made.MADE", lambda: made.MADE(4, [4])(torch.zeros(2, 5)), ValueError, r"^x\b"),
    bad("made.MADE", lambda: made.MADE(4, [4]).sample(0), ValueError, r"^n\b"),
    bad("made.MADE", lambda: made.MADE(4, [4]).nll(torch.full((2, 4), 2.0), validate=True),
        ValueError, r"^x\b"),
    # proofs
    bad("proofs.Derivation", lambda: proofs.Derivation(x).step(x, rel="<"), ValueError, r"^rel\b"),
    bad("proofs.Derivation", lambda: proofs.Derivation(x, assumptions=["x > 0"]), TypeError,
        r"^assumptions\b"),
    bad("proofs.Derivation", lambda: proofs.Derivation(x, samples=0), ValueError, r"^samples\b"),
    bad("proofs.Derivation", lambda: proofs.Derivation(x, scope="for all x, probably"), ValueError,
        r"^scope\b"),
    bad("proofs.verdict_on", lambda: proofs.verdict_on("x", x, assumptions=[42]),
        TypeError, r"^assumptions\b"),
    # answers
    bad("answers.check_answer", lambda: answers.check_answer("no-such-exercise", "x"),
        KeyError, r"^.label\b"),
    bad("answers.expected", lambda: answers.expected("no-such-exercise"), KeyError, r"^.label\b"),
    bad("answers.answer", lambda: _register_twice("bad-inputs-demo"), ValueError, r"^label\b"),
    bad("answers.answer", lambda: answers.answer("bad-inputs-demo", positiv="a"), ValueError, r"^symbols\b"),
    bad("answers.answer", lambda: answers.answer("bad-inputs-demo", positive="a")(lambda a, b: a / b),
        ValueError, r"^symbols\b"),
    # resnet
    # preact_resnet
    bad("preact_resnet.PreActBasicBlock", lambda: preact_resnet.PreActBasicBlock(16, 8), ValueError, r"^out_channels\b"),
    bad("preact_resnet.PreActBasicBlock", lambda: preact_resnet.PreActBasicBlock(0, 16), ValueError, r"^in_channels\b"),
    bad("preact_resnet.PreActBasicBlock", lambda: preact_resnet.PreActBasicBlock(16, 16, stride=3), ValueError, r"^stride\b"),
    bad("preact_resnet.PreActBasicBlock", lambda: preact_resnet.PreActBasicBlock(16, 16, branch_scale=NAN),
        ValueError, r"^branch_scale\b"),
    bad("preact_resnet.PreActResNet", lambda: preact_resnet.PreActResNet(depth=9), ValueError, r"^depth\b"),
    bad("preact_resnet.preact_resnet", lambda: preact_resnet.preact_resnet(8, num_classes=0), ValueError, r"^num_classes\b"),
    bad("preact_resnet.preact_resnet", lambda: preact_resnet.preact_resnet(8, in_channels=1)(torch.zeros(2, 3, 8, 8)),
        ValueError, r"^x\b"),
    bad("resnet.deepen", lambda: resnet.deepen(preact_resnet.preact_resnet(8), depth=14), TypeError, r"^model\b"),
    bad("preact_resnet.input_gradient_ratio", lambda: preact_resnet.input_gradient_ratio([nn.Linear(2, 2)], X),
        TypeError, r"^blocks\b"),
    bad("preact_resnet.input_gradient_ratio",
        lambda: preact_resnet.input_gradient_ratio([preact_resnet.PreActBasicBlock(2, 2)], torch.zeros(1, 2, 3, 3, **LONG)),
        TypeError, r"^x\b"),
    bad("resnet.blocks_per_stage", lambda: resnet.blocks_per_stage(21), ValueError, r"^depth\b"),
    bad("resnet.pad_shortcut", lambda: resnet.pad_shortcut(torch.zeros(1, 4, 2, 2), out_channels=2),
        ValueError, r"^out_channels\b"),
    bad("resnet.stack_jacobian", lambda: resnet.stack_jacobian([torch.eye(2), torch.eye(3)]),
        ValueError, r"^jacobians\b"),
    bad("resnet.count_parameters", lambda: resnet.count_parameters("resnet"),
        TypeError, r"^model\b"),
    bad("resnet.BasicBlock", lambda: resnet.BasicBlock(16, 16, plain=True, branch_scale=0.5),
        ValueError, r"^branch_scale\b"),
    bad("resnet.CifarResNet", lambda: resnet.CifarResNet(depth=9), ValueError, r"^depth\b"),
    bad("resnet.cifar_resnet", lambda: resnet.cifar_resnet(8, num_classes=0),
        ValueError, r"^num_classes\b"),
    bad("resnet.deepen", lambda: resnet.deepen(resnet.cifar_resnet(14), depth=8),
        ValueError, r"^depth\b"),
    bad("resnet.gradient_norms",
        lambda: resnet.gradient_norms(nn.Linear(2, 2), X, torch.zeros(4, **LONG)),
        TypeError, r"^model\b"),
    bad("resnet.train",
        lambda: resnet.train(nn.Linear(2, 2), X, torch.zeros(4, **LONG), epochs=1, lr=NAN),
        ValueError, r"^lr\b"),
    bad("resnet.blocks_per_stage", lambda: resnet.blocks_per_stage(20.0), TypeError, r"^depth\b"),
    bad("resnet.cifar_resnet", lambda: resnet.cifar_resnet(9), ValueError, r"^depth\b"),
    bad("resnet.cifar_resnet", lambda: resnet.cifar_resnet(8, plain=True, branch_scale=0.5),
        ValueError, r"^branch_scale\b"),
    bad("resnet.CifarResNet", lambda: resnet.cifar_resnet(8)(torch.zeros(2, 1, 8, 8)),
        ValueError, r"^x\b"),
    bad("resnet.pad_shortcut", lambda: resnet.pad_shortcut(torch.zeros(1, 4, 2, 2), 8, stride=3),
        ValueError, r"^stride\b"),
    bad("resnet.pad_shortcut", lambda: resnet.pad_shortcut(torch.zeros(4, 2, 2), 8),
        ValueError, r"^x\b"),
    bad("resnet.stack_jacobian", lambda: resnet.stack_jacobian([]), ValueError, r"^jacobians\b"),
    bad("resnet.deepen", lambda: resnet.deepen(resnet.cifar_resnet(8, plain=True), 14),
        ValueError, r"^model\b"),
    bad("resnet.deepen", lambda: resnet.deepen(nn.Linear(2, 2), 14), TypeError, r"^model\b"),
    bad("resnet.train", lambda: resnet.train(nn.Linear(2, 2), X, torch.zeros(4, **LONG), epochs=1,
                                             lr=-1.0), ValueError, r"^lr\b"),
    bad("resnet.gradient_norms", lambda: resnet.gradient_norms(
        resnet.cifar_resnet(8, in_channels=1), torch.zeros(2, 1, 8, 8), torch.zeros(3, **LONG)),
        ValueError, r"^y\b"),
    # stn
    bad("stn.theta_jacobian", lambda: stn.theta_jacobian(torch.zeros(2, 1, 4, 4), torch.zeros(1, 2, 3),
                                                          (1, 1, 3, 3)), ValueError, r"^images\b"),
    bad("stn.theta_jacobian", lambda: stn.theta_jacobian(torch.zeros(1, 1, 4, 4), torch.zeros(1, 3, 3),
                                                          (1, 1, 3, 3)), ValueError, r"^theta\b"),
    bad("stn.normalised_coordinates", lambda: stn.normalised_coordinates(0),
        ValueError, r"^steps\b"),
    bad("stn.to_pixels", lambda: stn.to_pixels(torch.zeros(3), steps=0), ValueError, r"^steps\b"),
    bad("stn.affine_grid", lambda: stn.affine_grid(torch.zeros(2, 3, 3), (2, 1, 4, 4)),
        ValueError, r"^theta\b"),
    bad("stn.bilinear_sample",
        lambda: stn.bilinear_sample(torch.zeros(1, 4, 4), torch.zeros(1, 2, 2, 2)),
        ValueError, r"^images\b"),
    bad("stn.rotation_theta", lambda: stn.rotation_theta(torch.zeros(2, 1)),
        ValueError, r"^degrees\b"),
    bad("stn.theta_angle", lambda: stn.theta_angle(torch.zeros(2, 2, 2)), ValueError, r"^theta\b"),
    bad("distorted_mnist.rotate", lambda: distorted_mnist.rotate(torch.zeros(2, 1, 4, 4), torch.zeros(3)),
        ValueError, r"^degrees\b"),
    bad("distorted_mnist.rotated_mnist", lambda: distorted_mnist.rotated_mnist(max_degrees=270.0),
        ValueError, r"^max_degrees\b"),
    bad("distorted_mnist.placement_theta", lambda: distorted_mnist.placement_theta(torch.zeros(2), -torch.ones(2),
                                                           torch.zeros(2, 2), 42),
        ValueError, r"^scales\b"),
    bad("distorted_mnist.rts_mnist", lambda: distorted_mnist.rts_mnist(scale_range=(1.2, 0.7)), ValueError, r"^scale_range\b"),
    bad("distorted_mnist.pose_slopes", lambda: distorted_mnist.pose_slopes(torch.zeros(2, 2, 3), {}, 42), ValueError, r"^pose\b"),
    bad("stn.STN", lambda: stn.STN(nn.Flatten(), features=0), ValueError, r"^features\b"),
    bad("stn_models.localisation_fcn", lambda: stn_models.localisation_fcn(hidden=0), ValueError, r"^hidden\b"),
    bad("stn_models.localisation_cnn", lambda: stn_models.localisation_cnn(channels=0),
        ValueError, r"^channels\b"),
    bad("stn_models.Classifier", lambda: stn_models.Classifier(nn.Flatten())(torch.zeros(2, 1, 27, 27)),
        ValueError, r"^images\b"),
    bad("stn_models.Classifier", lambda: stn_models.Classifier(nn.Flatten(), image_size=0),
        ValueError, r"^image_size\b"),
    bad("stn_models.fcn", lambda: stn_models.fcn(hidden=0), ValueError, r"^hidden\b"),
    bad("stn_models.fcn", lambda: stn_models.fcn(image_size=28.0), ValueError, r"^image_size\b"),
    bad("stn_models.cnn", lambda: stn_models.cnn(channels=-1), ValueError, r"^channels\b"),
    bad("stn_models.build", lambda: stn_models.build("ResNet", stn_models.SCALES["quick"]), ValueError, r"^name\b"),
    bad("stn_models.train", lambda: stn_models.train("FCN", stn_models.SCALES["quick"], torch.zeros(4, 1, 28, 28),
                                                     torch.zeros(4, **LONG), seed=-1), ValueError, r"^seed\b"),
    bad("stn.affine_grid", lambda: stn.affine_grid(torch.zeros(2, 2, 3, **LONG), (2, 1, 4, 4)),
        TypeError, r"^theta\b"),
    bad("stn.affine_grid", lambda: stn.affine_grid(torch.zeros(2, 2, 3), (3, 1, 4, 4)),
        ValueError, r"^size\b"),
    bad("stn.affine_grid", lambda: stn.affine_grid(torch.zeros(2, 2, 3), (2, 4, 4)),
        ValueError, r"^size\b"),
    bad("stn.bilinear_sample",
        lambda: stn.bilinear_sample(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4, 3)),
        ValueError, r"^grid\b"),
    bad("stn.bilinear_sample", lambda: stn.bilinear_sample(
        torch.zeros(2, 1, 4, 4), torch.full((2, 4, 4, 2), NAN), validate=True), ValueError, r"^grid\b"),
    bad("stn.rotation_theta", lambda: stn.rotation_theta([30.0]), TypeError, r"^degrees\b"),
    bad("stn.theta_angle", lambda: stn.theta_angle(torch.zeros(2, 3, 2)), ValueError, r"^theta\b"),
    bad("distorted_mnist.rotated_mnist", lambda: distorted_mnist.rotated_mnist(max_degrees=-5), ValueError,
        r"^max_degrees\b"),
    bad("distorted_mnist.rts_mnist", lambda: distorted_mnist.rts_mnist(max_shift=30.0), ValueError, r"^max_shift\b"),
    bad("distorted_mnist.placement_theta", lambda: distorted_mnist.placement_theta(torch.zeros(2), torch.ones(2),
                                                           torch.zeros(3, 2), 42),
        ValueError, r"^shifts\b"),
    bad("distorted_mnist.pose_slopes", lambda: distorted_mnist.pose_slopes(torch.zeros(2, 2, 3), {"degrees": torch.zeros(2)},
                                                   42), ValueError, r"^pose\b"),
    bad("stn_models.localisation_cnn", lambda: stn_models.localisation_cnn(image_size=12), ValueError,
        r"^image_size\b"),
    bad("stn_models.Classifier", lambda: stn_models.Classifier(stn_models.fcn(image_size=42), image_size=42)(
        torch.zeros(2, 1, 28, 28)), ValueError, r"^images\b"),
    bad("stn.STN", lambda: stn.STN(stn_models.localisation_fcn(), 32).transform(torch.zeros(2, 28, 28)),
        ValueError, r"^images\b"),
    # train
    bad("train.seed_everything", lambda: train.seed_everything(-1), ValueError, r"^seed\b"),
    bad("train.pick_device", lambda: train.pick_device("gpu"), ValueError, r"^prefer\b"),
    bad("train.fit", lambda: tiny_fit_call(epochs=0), ValueError, r"^epochs\b"),
    bad("train.finite_loss", lambda: train.finite_loss(torch.tensor(NAN), "step 3"),
        FloatingPointError, r"^loss became nan at step 3\b"),
    bad("train.error_rate", lambda: train.error_rate(nn.Linear(2, 2), X, torch.zeros(3, **LONG)),
        ValueError, r"^y\b"),
    bad("train.fit", lambda: tiny_fit_call(epochs=1, batch_size=0), ValueError, r"^batch_size\b"),
    bad("train.fit", lambda: train.fit(nn.Linear(2, 1), lambda xb, yb: xb.sum(), (X, X[:3]),
                                       torch.optim.SGD(nn.Linear(2, 1).parameters()), 1),
        ValueError, r"^data\b"),
    # vae
    bad("vae.elbo_surgery", lambda: vae.elbo_surgery(X, X, samples=0), ValueError, r"^samples\b"),
    bad("vae.latent_activity", lambda: vae.latent_activity(X[:1]), ValueError, r"^mu\b"),
    bad("vae.active_units", lambda: vae.active_units(X, threshold=-1.0), ValueError, r"^threshold\b"),
    bad("vae.AutoregressiveVAE", lambda: vae.AutoregressiveVAE(x_dim=4, hidden=0), ValueError,
        r"^hidden\b"),
    bad("vae.elbo", lambda: vae.elbo(X, X, X, X, likelihood="poisson"),
        ValueError, r"^likelihood\b"),
    bad("vae.VAE", lambda: vae.VAE(x_dim=4, hidden=0), ValueError, r"^hidden\b"),
    bad("vae.iw_bound", lambda: vae.iw_bound(torch.zeros(6, 2), k=4), ValueError, r"^k\b"),
    bad("vae.elbo", lambda: vae.elbo(X, X, X, X, kl="mc"), ValueError, r"^z\b"),
    bad("vae.elbo", lambda: vae.elbo(X, X, X, X, kl="exact"), ValueError, r"^kl\b"),
    bad("vae.VAE", lambda: vae.VAE(z_dim=0), ValueError, r"^z_dim\b"),
    bad("vae.VAE", lambda: vae.VAE(likelihood="laplace"), ValueError, r"^likelihood\b"),
    bad("vae.VAE", lambda: vae.VAE(var=-1.0), ValueError, r"^var\b"),
    bad("vae.VAE", lambda: vae.VAE().loss(torch.zeros(2, 1, 27, 27)), ValueError, r"^x\b"),
    bad("vae.VAE", lambda: vae.VAE(x_dim=6, hidden=8, z_dim=2).log_weights(torch.zeros(2, 6),
                                                                           samples=0),
        ValueError, r"^samples\b"),
    bad("vae.VAE", lambda: vae.VAE(x_dim=6, hidden=8, z_dim=2).log_px(torch.zeros(2, 6), samples=0),
        ValueError, r"^samples\b"),
    bad("vae.iw_bound", lambda: vae.iw_bound(torch.zeros(6, 2), 0), ValueError, r"^k\b"),
    bad("vae.iw_bound", lambda: vae.iw_bound(torch.zeros(6), 2), ValueError, r"^log_weights\b"),
    bad("vae.iw_bound", lambda: vae.iw_bound([[0.0]], 1), TypeError, r"^log_weights\b"),
    # beta_vae
    bad("beta_vae.beta_vae_loss", lambda: beta_vae.beta_vae_loss(X, X, X, X, beta=-1.0),
        ValueError, r"^beta\b"),
    bad("beta_vae.capacity_loss", lambda: beta_vae.capacity_loss(X, X, X, X, C=NAN), ValueError, r"^C\b"),
    bad("beta_vae.capacity_schedule", lambda: beta_vae.capacity_schedule(step=-1), ValueError, r"^step\b"),
    bad("beta_vae.active_latents", lambda: beta_vae.active_latents(X), ValueError, r"^kl_per_latent\b"),
    bad("beta_vae.ConvVAE", lambda: beta_vae.ConvVAE(image_size=48), ValueError, r"^image_size\b"),
    bad("beta_vae.beta_vae_loss", lambda: beta_vae.beta_vae_loss(X, X, X, X, beta=NAN), ValueError, r"^beta\b"),
    bad("beta_vae.beta_vae_loss", lambda: beta_vae.beta_vae_loss(X, X, X, X, beta="4"), TypeError, r"^beta\b"),
    bad("beta_vae.beta_vae_loss", lambda: beta_vae.beta_vae_loss(X, X, X, torch.zeros(4, 3)),
        ValueError, r"^logvar\b"),
    bad("beta_vae.capacity_loss", lambda: beta_vae.capacity_loss(X, X, X, X, gamma=-1.0), ValueError, r"^gamma\b"),
    bad("beta_vae.capacity_loss", lambda: beta_vae.capacity_loss(X, X, X, X, gamma=NAN), ValueError, r"^gamma\b"),
    bad("beta_vae.capacity_loss", lambda: beta_vae.capacity_loss(X, X, X, X, C=-0.5), ValueError, r"^C\b"),
    bad("beta_vae.capacity_schedule", lambda: beta_vae.capacity_schedule(0, C_max=-1.0), ValueError, r"^C_max\b"),
    bad("beta_vae.capacity_schedule", lambda: beta_vae.capacity_schedule(0, steps=0), ValueError, r"^steps\b"),
    bad("beta_vae.active_latents", lambda: beta_vae.active_latents(torch.zeros(3), threshold=-1.0),
        ValueError, r"^threshold\b"),
    bad("beta_vae.ConvVAE", lambda: beta_vae.ConvVAE(z_dim=0), ValueError, r"^z_dim\b"),
    bad("beta_vae.ConvVAE", lambda: beta_vae.ConvVAE(32)(torch.zeros(2, 1, 64, 64)), ValueError, r"^x\b"),
    # plot
    bad("plot.tile", lambda: plot.tile(torch.zeros(4, 3, 3), ncol=0), ValueError, r"^ncol\b"),
    bad("plot.image_grid",  # two channels; an Axes of its own, so no pyplot figure is left open
        lambda: plot.image_grid(torch.zeros(4, 2, 3, 3), 2, ax=Figure().add_subplot()),
        ValueError, r"^images\b"),
]

EXEMPT = {
    "data.digits": "takes no arguments",
    "plot.use_book_style": "takes no arguments",
    "train.one_thread": "a context manager that takes no arguments",
    "maf.Reverse": "takes no arguments; MAF builds it",
    "train.gradient_step": "called by fit and train_gan on losses their models computed; its one "
                           "check, a finite loss, is tested with fit",
    "_compare.Comparison": "a record of one step's verdict, built by compare",
    "_compare.Domain": "built by Derivation from its assumptions, which proofs.Derivation's entries check",
    "_compare.compare": "called by Derivation.check and verdict_on with arguments they have checked",
    "_compare.evaluate": "called by compare at points Domain.sample drew",
    "_compare.doit": "evaluates a SymPy expression's unevaluated parts: every expression is valid input",
    "_compare.symbolic_zero": "called by compare on a difference of two SymPy expressions",
    "_compare.fmt": "formats a number for a message: every complex number is valid input",
    "distributions.log_standard_normal": "log N(z; 0, I) over the last dimension: every real "
                                         "tensor is valid input",
    "vae.GaussianVAE": "the base class that VAE and beta_vae.ConvVAE share; readers build those",
    "flows.m": "the elementwise map -1 + softplus(x): every real tensor of any shape is valid",
    "potentials.standard_normal_energy": "||z||^2 / 2 over the last dimension: every real tensor is "
                                    "valid input",
    "gan.GANHistory": "a dataclass of recorded losses that train_gan fills, not user input",
    "train.History": "a dataclass of recorded losses that fit fills, not user input",
    "claims.ClaimError": "an exception class: raised by claim, not called by readers",
    "answers.Answer": "a record of one exercise's expected answer, built by the answer decorator",
    "answers.Verdict": "the result check_answer returns, not built by readers",
    "proofs.DisplayMath": "holds a LaTeX string for display; Derivation.math builds it",
    "proofs.StepError": "an exception class: raised by Derivation.check, not called by readers",
}


def _register_twice(label: str) -> None:
    """answers.answer with a label that already has an answer (the registry is left as it was)."""
    try:
        answers.answer(label)(lambda: 0)
        answers.answer(label)(lambda: 1)
    finally:
        answers.ANSWERS.pop(label, None)


def public_names() -> set[str]:
    """"module.name" for each function or class defined (not imported) in a paperlib module."""
    names = set()
    for info in pkgutil.iter_modules(paperlib.__path__):
        module = importlib.import_module(f"paperlib.{info.name}")
        for name, obj in vars(module).items():
            if (not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
                    and obj.__module__ == module.__name__):
                names.add(f"{info.name}.{name}")
    return names


TABLE_IDS = [entry.id for entry in BAD_INPUTS]
TABLE_NAMES = {entry_id.split("#")[0] for entry_id in TABLE_IDS}


@pytest.mark.parametrize(("call", "exc", "match"), BAD_INPUTS)
def test_bad_input_raises_an_error_that_names_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_every_public_name_is_in_the_table():
    missing = sorted(public_names() - TABLE_NAMES - set(EXEMPT))
    assert not missing, f"add a BAD_INPUTS entry (or an EXEMPT reason) for {missing}"


def test_the_table_names_only_public_names():
    stale = sorted((TABLE_NAMES | set(EXEMPT)) - public_names())
    assert not stale, f"no longer public functions or classes of paperlib: {stale}"
    assert len(TABLE_IDS) == len(set(TABLE_IDS)), "one id per case"
    assert not TABLE_NAMES & set(EXEMPT), "a name is either tested or exempt, not both"
    assert all(reason.strip() for reason in EXEMPT.values()), "every exemption needs a reason"
