"""The expected answers of the book's "derive it yourself" exercises, keyed by exercise label.

A chapter's exercise cell is only ``my_answer = None`` and ``check_answer("gan-ex-d-star",
my_answer)``: the expected result lives here, out of the reader's view on the page, and is marked
by :func:`paperlib.proofs.verdict_on` (symbolically, or at random points of the domain), so any
equivalent form of the right answer is accepted.

Each entry is a function registered with :func:`answer`: its parameters are the answer's
symbols, whose assumptions the decorator declares (``positive="a b"``), and it returns the expected
expression, or a pair ``(expected, assumptions)``. It is built only when the exercise is checked.
SymPy and the standard library only: this module runs in the reader's browser too (the book's live
cells).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp

from paperlib.proofs import verdict_on

__all__ = ["ANSWERS", "ASSUMPTIONS", "Verdict", "answer", "check_answer", "expected"]


# What a symbol of an expected answer can be, by the keyword of :func:`answer` that declares it.
ASSUMPTIONS = {
    "real": dict(real=True),
    "positive": dict(positive=True),
    "positive_integer": dict(positive=True, integer=True),
    "nonnegative_integer": dict(nonnegative=True, integer=True),
}


@dataclass(frozen=True)
class Answer:
    build: Callable[..., object]
    hint: str = ""
    symbols: dict[str, str] = field(default_factory=dict)  # parameter name -> key of ASSUMPTIONS


ANSWERS: dict[str, Answer] = {}


def answer(label: str, hint: str = "", **symbols: str) -> Callable:
    """Register the decorated builder as the expected answer of the exercise ``label``.

    The builder's parameters are the answer's SymPy symbols. Each keyword names an entry of
    ``ASSUMPTIONS`` and lists the parameters that carry it: ``@answer("x", positive="a b")`` over
    ``def _x(a, b)`` builds it with two positive symbols ``a`` and ``b``.
    """
    unknown = sorted(set(symbols) - set(ASSUMPTIONS))
    if unknown:
        raise ValueError(f"symbols: expected keywords from {sorted(ASSUMPTIONS)}, got {unknown}")
    kinds = {name: kind for kind, names in symbols.items() for name in names.split()}

    def register(build: Callable[..., object]) -> Callable[..., object]:
        if label in ANSWERS:
            raise ValueError(f"label: {label!r} already has an expected answer")
        parameters = list(inspect.signature(build).parameters)
        if sorted(parameters) != sorted(kinds):
            raise ValueError(f"symbols: {label!r} builds from {parameters} but declares {sorted(kinds)}")
        ANSWERS[label] = Answer(build, hint, kinds)
        return build
    return register


def expected(label: str) -> tuple[sp.Expr, object]:
    """The expected expression of exercise ``label`` and the assumptions it is checked under."""
    if label not in ANSWERS:
        raise KeyError(f"label: no exercise {label!r}; known: {', '.join(sorted(ANSWERS))}")
    entry = ANSWERS[label]
    built = entry.build(**{name: sp.Symbol(name, **ASSUMPTIONS[kind]) for name, kind in entry.symbols.items()})
    value, assumptions = built if isinstance(built, tuple) else (built, None)
    return sp.sympify(value), assumptions


class Verdict:
    """A marked answer: true when right; shown (in Jupyter, or printed) as its one-line verdict."""

    def __init__(self, right: bool, message: str) -> None:
        self.right, self.message = right, message

    def __bool__(self) -> bool:
        return self.right

    def __repr__(self) -> str:
        return self.message


def check_answer(label: str, answer) -> Verdict:
    """Mark the reader's ``answer`` to exercise ``label``.

    ``answer`` is ``None`` (not answered yet), a string such as ``"a/(a + b)"`` or a SymPy
    expression; symbols are matched to the expected answer's by name, whatever their assumptions.
    The result is true when the answer is right, and a cell that ends with the call shows its
    one-line verdict (with the exercise's hint when the answer is missing or wrong).
    """
    value, assumptions = expected(label)
    if isinstance(answer, sp.Basic):
        by_name = {s.name: s for s in value.free_symbols}
        answer = answer.subs({s: by_name[s.name] for s in answer.free_symbols
                              if isinstance(s, sp.Symbol) and s.name in by_name}, simultaneous=True)
    return Verdict(*verdict_on(answer, value, assumptions, ANSWERS[label].hint))


# --- One section per chapter, in reading order. Labels are the exercises' own (`:label:`).

# adam

@answer("adam-ex-adamax-two", positive="a1 a2 beta2",
        hint="v_2 = (1 - beta2^p)((beta2 a1)^p + a2^p): take the larger of beta2 a1 and a2 out of it")
def _adam_ex_adamax_two(a1, a2, beta2):
    # lim_{p -> oo} ((1 - beta2^p)((beta2 a1)^p + a2^p))^(1/p): the larger of the two discounted gradients
    return sp.Max(beta2 * a1, a2), [beta2 < 1]


@answer("adam-ex-adamax-growing", positive="r beta1",
        hint="for r >= beta2 the newest gradient r^t is u_t; m_t is a geometric series in beta1/r")
def _adam_ex_adamax_growing(r, beta1):
    # m_t / ((1 - beta1^t) u_t) -> (1 - beta1) / (1 - beta1/r), with u_t = r^t
    return r * (1 - beta1) / (r - beta1), [beta1 < r, r < 1]


@answer("adam-ex-first-step", positive="alpha beta1 beta2 g_1",
        hint="m_1 and v_1 start from zero: m_1 = (1 - beta1) g_1, v_1 = (1 - beta2) g_1^2")
def _adam_ex_first_step(alpha, beta1, beta2, g_1):
    # one uncorrected step of Algorithm 1 from m_0 = v_0 = 0, eps = 0: alpha m_1 / sqrt(v_1)
    m_1, v_1 = (1 - beta1) * g_1, (1 - beta2) * g_1**2
    return sp.simplify(alpha * m_1 / sp.sqrt(v_1)), [beta1 < 1, beta2 < 1]


@answer("adam-ex-second-moment", positive="beta2 sigma", real="mu", positive_integer="t",
        hint="v_t averages g^2, and E[g^2] = Var[g] + E[g]^2; the weights sum to 1 - beta2^t")
def _adam_ex_second_moment(beta2, sigma, mu, t):
    # E[v_t] = (1 - beta2) sum_{i<=t} beta2^(t-i) E[g_i^2]: weights 1 - beta2^t, E[g^2] = sigma^2 + mu^2
    return (1 - beta2**t) * (sigma**2 + mu**2), [beta2 < 1]


@answer("adam-ex-growing", positive="beta1 beta2 r",
        hint="factor r^t out of m_t and r^(2t) out of v_t; what is left are geometric series in "
             "beta1/r and beta2/r^2")
def _adam_ex_growing(beta1, beta2, r):
    # m_t ~ (1 - beta1) r^t / (1 - beta1/r) and v_t ~ (1 - beta2) r^(2t) / (1 - beta2/r^2) for large t
    return ((1 - beta1) / (1 - beta1 / r) * sp.sqrt(1 - beta2 / r**2) / sp.sqrt(1 - beta2),
            [beta1 < 1, beta2 < 1, r > 1])


# spatial_transformer

@answer("spatial_transformer-ex-shift", real="j k t", positive="W",
        hint="theta moves the sampling grid; the content moves the other way, and t is in half-widths")
def _spatial_transformer_ex_shift(j, k, t, W):
    # output pixel j reads pixel ((x_t + t + 1) W - 1) / 2 with x_t = (2j + 1)/W - 1; the content
    # moves right by k when that pixel is j - k
    reads = (((2 * j + 1) / W - 1 + t + 1) * W - 1) / 2
    return sp.solve(sp.Eq(reads, j - k), t)[0]


@answer("spatial_transformer-ex-bilinear-gradient", real="fx fy U00 U01 U10 U11",
        hint="eq. (7) of the paper: each row contributes its right neighbour minus its left, "
             "weighted by the y kernel")
def _spatial_transformer_ex_bilinear_gradient(fx, fy, U00, U01, U10, U11):
    V = U00 * (1 - fx) * (1 - fy) + U01 * fx * (1 - fy) + U10 * (1 - fx) * fy + U11 * fx * fy
    return sp.diff(V, fx), [fx > 0, fx < 1, fy > 0, fy < 1]


@answer("spatial_transformer-ex-theta-gradient", nonnegative_integer="c", positive="W", real="U_left U_right",
        hint="theta_11 multiplies x^t: find column c's target coordinate, and the factor that turns "
             "half-widths into pixels")
def _spatial_transformer_ex_theta_gradient(c, W, U_left, U_right):
    # prop-stn-theta-gradient with g_i1 = x_t of column c and eq. (7) = U_right - U_left (f_y = 0)
    x_t = (2 * c + 1) / W - 1
    return W / 2 * x_t * (U_right - U_left)


# resnet

@answer("resnet-ex-unrolled-three", real="a_0 a_1 a_2",
        hint="x_i depends on x_0: the derivative of a_i x_i is a_i times dx_i/dx_0")
def _resnet_ex_unrolled_three(a_0, a_1, a_2):
    # d/dx_0 of a_0 x_0 + a_1 x_1 + a_2 x_2, with dx_i/dx_0 = (1 + a_0) ... (1 + a_(i-1))
    return a_0 + a_1 * (1 + a_0) + a_2 * (1 + a_0) * (1 + a_1)


@answer("resnet-ex-linear-chain", real="a", positive_integer="L",
        hint="each block multiplies by its derivative 1 + a")
def _resnet_ex_linear_chain(a, L):
    return (1 + a) ** L


@answer("resnet-ex-param-count", positive_integer="n",
        hint="a block with c channels has 18 c^2 + 4 c parameters; the first blocks of stages 2 and 3 "
             "differ")
def _resnet_ex_param_count(n):
    # stem 464, stage 1 4672 n, stage 2 13952 + 18560 (n - 1), stage 3 55552 + 73984 (n - 1),
    # classifier 650 (tests/test_resnet.py compares it with the model's count at every depth)
    return 97216 * n - 21926

# vae

@answer("vae-ex-surgery-info", positive="a",
        hint="q(z) is (1/2, 1/2) for every a; average log(q(z|x) / q(z)) over the four pairs (x, z)")
def _vae_ex_surgery_info(a):
    # I_q(x; z) = sum_{x, z} p_data(x) q(z|x) log(q(z|x) / q(z)),  p_data = q(z) = (1/2, 1/2)
    return sp.log(2) + a * sp.log(a) + (1 - a) * sp.log(1 - a), [a < 1]


@answer("vae-ex-kl-general", real="mu1 mu2", positive="s1 s2",
        hint="write log q - log p, then use E[(z - mu2)^2] = s1^2 + (mu1 - mu2)^2 under q")
def _vae_ex_kl_general(mu1, mu2, s1, s2):
    # KL(N(mu1, s1^2) || N(mu2, s2^2))
    return sp.log(s2 / s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - sp.Rational(1, 2)


@answer("vae-ex-kl-gradient", real="ell",
        hint="differentiate exp(ell) and -ell separately; mu does not depend on ell")
def _vae_ex_kl_gradient(ell):
    # d/d ell of (mu^2 + e^ell - ell - 1) / 2
    return (sp.exp(ell) - 1) / 2


# beta_vae

@answer("beta_vae-ex-mig", hint="I(z_2; v_1) = H(z_2) - H(z_2 | v_1), with H(z_2) = (3/2) log 2 and "
                                "H(z_2 | v_1) = log 2; then divide each gap by H(v_k) = log 2")
def _beta_vae_ex_mig():
    log2 = sp.log(2)
    gap_1 = (log2 - log2 / 2) / log2                        # v_1: I(z_1; v_1) - I(z_2; v_1)
    gap_2 = (log2 / 2 - 0) / log2                           # v_2: I(z_2; v_2) - I(z_1; v_2)
    return (gap_1 + gap_2) / 2


@answer("beta_vae-ex-dF-dbeta", real="D R C beta", hint="F is linear in beta; keep both R and C")
def _beta_vae_ex_dF_dbeta(D, R, C, beta):
    return sp.diff(-D - beta * (R - C), beta)               # F = -D - beta (R - C)


@answer("beta_vae-ex-min-loss", positive="v beta sigma", hint="put d* = beta sigma^2 into both terms of J(d)")
def _beta_vae_ex_min_loss(v, beta, sigma):
    d = beta * sigma**2                                     # the minimiser d*
    return d / (2 * sigma**2) + beta / 2 * sp.log(v / d), [beta * sigma**2 < v]


# gan

@answer("gan-ex-ns-remainder", positive="a b",
        hint="write every logarithm with log a, log b, log(a + b) and log 2, then collect")
def _gan_ex_ns_remainder(a, b):
    # b log((a+b)/a) - [b log(b/a) - a log(a/m) - b log(b/m)] with m = (a + b)/2
    return (a + b) * sp.log(2) + a * sp.log(a / (a + b))


@answer("gan-ex-d-star", positive="a b", hint="set a/y - b/(1 - y) = 0 and solve for y")
def _gan_ex_d_star(a, b):
    return a / (a + b)


@answer("gan-ex-c-at-optimum", hint="with p_g = p_data the optimal discriminator is 1/2 at every x")
def _gan_ex_c_at_optimum():
    return -2 * sp.log(2)


@answer("gan-ex-ns-gradient", positive="D", hint="the derivative of log D is 1/D")
def _gan_ex_ns_gradient(D):
    return -1 / D, [(D, sp.Interval.open(0, 1))]


# normalizing_flows

@answer("normalizing_flows-ex-radial-2d", positive="alpha r", real="beta",
        hint="at z = (r, 0) the Jacobian is diagonal: differentiate the radius map and the tangential scaling")
def _normalizing_flows_ex_radial_2d(alpha, r, beta):
    # (1 + beta h)^(d - 1) (1 + beta h + beta h' r) with d = 2, h = 1/(alpha + r), h' = -1/(alpha + r)^2
    return (1 + beta / (alpha + r)) * (1 + alpha * beta / (alpha + r) ** 2), [beta > -alpha]


@answer("normalizing_flows-ex-radial-inverse", positive="alpha s", real="beta",
        hint="multiply by alpha + r to get a quadratic in r, and keep its non-negative root")
def _normalizing_flows_ex_radial_inverse(alpha, s, beta):
    # r^2 + (alpha + beta - s) r - alpha s = 0, the root r >= 0
    return (s - alpha - beta + sp.sqrt((alpha + beta - s) ** 2 + 4 * alpha * s)) / 2, [beta > -alpha]


@answer("normalizing_flows-ex-planar-1d", real="u w z b",
        hint="differentiate tanh(wz + b) with the chain rule")
def _normalizing_flows_ex_planar_1d(u, w, z, b):
    # f'(z) = 1 + u w (1 - tanh^2(w z + b)), positive when u w > -1
    return sp.log(1 + u * w * (1 - sp.tanh(w * z + b) ** 2)), [u * w > -1]


@answer("normalizing_flows-ex-affine", real="s c", positive="a",
        hint="z = (s - c)/a, and divide by |df/dz| = a")
def _normalizing_flows_ex_affine(s, c, a):
    # ln q(s) = ln N((s - c)/a; 0, 1) - ln a, the density of N(c, a^2)
    return -sp.log(2 * sp.pi) / 2 - (s - c) ** 2 / (2 * a**2) - sp.log(a)


# made

@answer("made-ex-maf-logdet", real="alpha_1 alpha_2",
        hint="the Jacobian is lower triangular: multiply its diagonal entries du_d/dx_d")
def _made_ex_maf_logdet(alpha_1, alpha_2):
    # log|det du/dx| = log(exp(-alpha_1) exp(-alpha_2))
    return -alpha_1 - alpha_2

@answer("made-ex-weights", positive_integer="D H",
        hint="a hidden unit of degree m sees m inputs and feeds D - m outputs")
def _made_ex_weights(D, H):
    return H * D + D * (D - 1) / 2


@answer("made-ex-copying", positive="p", positive_integer="D",
        hint="every input gets the same product; how many inputs are there?")
def _made_ex_copying(p, D):
    return (2 * p) ** D, [p <= 1]

