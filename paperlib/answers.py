"""The expected answers of the book's "derive it yourself" exercises, keyed by exercise label.

A chapter's exercise cell is only ``my_answer = None`` and ``check_answer("gan-ex-d-star",
my_answer)``: the expected result lives here, out of the reader's view on the page, and is marked
by :func:`paperlib.proofs.verdict_on` (symbolically, or at random points of the domain), so any
equivalent form of the right answer is accepted.

Each entry is a function of no arguments that builds the expected expression with SymPy, or a
pair ``(expected, assumptions)``, registered with :func:`answer`. It is built only when the
exercise is checked. SymPy and the standard library only: this module runs in the reader's
browser too (the book's live cells).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from paperlib.proofs import verdict_on

__all__ = ["ANSWERS", "Verdict", "answer", "check_answer", "expected"]


@dataclass(frozen=True)
class Answer:
    build: Callable[[], object]
    hint: str = ""


ANSWERS: dict[str, Answer] = {}


def answer(label: str, hint: str = "") -> Callable:
    """Register the decorated builder as the expected answer of the exercise ``label``."""
    def register(build: Callable[[], object]) -> Callable[[], object]:
        if label in ANSWERS:
            raise ValueError(f"label: {label!r} already has an expected answer")
        ANSWERS[label] = Answer(build, hint)
        return build
    return register


def expected(label: str) -> tuple[sp.Expr, object]:
    """The expected expression of exercise ``label`` and the assumptions it is checked under."""
    if label not in ANSWERS:
        raise KeyError(f"label: no exercise {label!r}; known: {', '.join(sorted(ANSWERS))}")
    built = ANSWERS[label].build()
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

@answer("adam-ex-first-step",
        hint="m_1 and v_1 start from zero: m_1 = (1 - beta1) g_1, v_1 = (1 - beta2) g_1^2")
def _adam_ex_first_step():
    alpha, beta1, beta2, g_1 = sp.symbols("alpha beta1 beta2 g_1", positive=True)
    # one uncorrected step of Algorithm 1 from m_0 = v_0 = 0, eps = 0: alpha m_1 / sqrt(v_1)
    m_1, v_1 = (1 - beta1) * g_1, (1 - beta2) * g_1**2
    return sp.simplify(alpha * m_1 / sp.sqrt(v_1)), [beta1 < 1, beta2 < 1]


@answer("adam-ex-second-moment",
        hint="v_t averages g^2, and E[g^2] = Var[g] + E[g]^2; the weights sum to 1 - beta2^t")
def _adam_ex_second_moment():
    beta2, sigma = sp.symbols("beta2 sigma", positive=True)
    mu, t = sp.Symbol("mu", real=True), sp.Symbol("t", integer=True, positive=True)
    # E[v_t] = (1 - beta2) sum_{i<=t} beta2^(t-i) E[g_i^2]: weights 1 - beta2^t, E[g^2] = sigma^2 + mu^2
    return (1 - beta2**t) * (sigma**2 + mu**2), [beta2 < 1]


@answer("adam-ex-growing",
        hint="factor r^t out of m_t and r^(2t) out of v_t; what is left are geometric series in "
             "beta1/r and beta2/r^2")
def _adam_ex_growing():
    beta1, beta2, r = sp.symbols("beta1 beta2 r", positive=True)
    # m_t ~ (1 - beta1) r^t / (1 - beta1/r) and v_t ~ (1 - beta2) r^(2t) / (1 - beta2/r^2) for large t
    return ((1 - beta1) / (1 - beta1 / r) * sp.sqrt(1 - beta2 / r**2) / sp.sqrt(1 - beta2),
            [beta1 < 1, beta2 < 1, r > 1])


# spatial_transformer

@answer("spatial_transformer-ex-shift",
        hint="theta moves the sampling grid; the content moves the other way, and t is in half-widths")
def _spatial_transformer_ex_shift():
    j, k, t = sp.symbols("j k t", real=True)
    W = sp.Symbol("W", positive=True)
    # output pixel j reads pixel ((x_t + t + 1) W - 1) / 2 with x_t = (2j + 1)/W - 1; the content
    # moves right by k when that pixel is j - k
    reads = (((2 * j + 1) / W - 1 + t + 1) * W - 1) / 2
    return sp.solve(sp.Eq(reads, j - k), t)[0]


@answer("spatial_transformer-ex-bilinear-gradient",
        hint="eq. (7) of the paper: each row contributes its right neighbour minus its left, "
             "weighted by the y kernel")
def _spatial_transformer_ex_bilinear_gradient():
    fx, fy, U00, U01, U10, U11 = sp.symbols("fx fy U00 U01 U10 U11", real=True)
    V = U00 * (1 - fx) * (1 - fy) + U01 * fx * (1 - fy) + U10 * (1 - fx) * fy + U11 * fx * fy
    return sp.diff(V, fx), [fx > 0, fx < 1, fy > 0, fy < 1]


# resnet

@answer("resnet-ex-linear-chain", hint="each block multiplies by its derivative 1 + a")
def _resnet_ex_linear_chain():
    a = sp.Symbol("a", real=True)
    L = sp.Symbol("L", integer=True, positive=True)
    return (1 + a) ** L


@answer("resnet-ex-param-count",
        hint="a block with c channels has 18 c^2 + 4 c parameters; the first blocks of stages 2 and 3 "
             "differ")
def _resnet_ex_param_count():
    n = sp.Symbol("n", integer=True, positive=True)
    # stem 464, stage 1 4672 n, stage 2 13952 + 18560 (n - 1), stage 3 55552 + 73984 (n - 1),
    # classifier 650 (tests/test_resnet.py compares it with the model's count at every depth)
    return 97216 * n - 21926

# vae

@answer("vae-ex-kl-general",
        hint="write log q - log p, then use E[(z - mu2)^2] = s1^2 + (mu1 - mu2)^2 under q")
def _vae_ex_kl_general():
    mu1, mu2 = sp.symbols("mu1 mu2", real=True)
    s1, s2 = sp.symbols("s1 s2", positive=True)
    # KL(N(mu1, s1^2) || N(mu2, s2^2))
    return sp.log(s2 / s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - sp.Rational(1, 2)


@answer("vae-ex-kl-gradient",
        hint="differentiate exp(ell) and -ell separately; mu does not depend on ell")
def _vae_ex_kl_gradient():
    ell = sp.Symbol("ell", real=True)
    # d/d ell of (mu^2 + e^ell - ell - 1) / 2
    return (sp.exp(ell) - 1) / 2


# beta_vae

@answer("beta_vae-ex-dF-dbeta", hint="F is linear in beta; keep both R and C")
def _beta_vae_ex_dF_dbeta():
    D, R, C, beta = sp.symbols("D R C beta", real=True)
    return sp.diff(-D - beta * (R - C), beta)               # F = -D - beta (R - C)


@answer("beta_vae-ex-min-loss", hint="put d* = beta sigma^2 into both terms of J(d)")
def _beta_vae_ex_min_loss():
    v, beta, sigma = sp.symbols("v beta sigma", positive=True)
    d = beta * sigma**2                                     # the minimiser d*
    return d / (2 * sigma**2) + beta / 2 * sp.log(v / d), [beta * sigma**2 < v]


# gan

@answer("gan-ex-d-star", hint="set a/y - b/(1 - y) = 0 and solve for y")
def _gan_ex_d_star():
    a, b = sp.symbols("a b", positive=True)
    return a / (a + b)


@answer("gan-ex-c-at-optimum", hint="with p_g = p_data the optimal discriminator is 1/2 at every x")
def _gan_ex_c_at_optimum():
    return -2 * sp.log(2)


@answer("gan-ex-ns-gradient", hint="the derivative of log D is 1/D")
def _gan_ex_ns_gradient():
    D = sp.Symbol("D", positive=True)
    return -1 / D, [(D, sp.Interval.open(0, 1))]


# normalizing_flows

@answer("normalizing_flows-ex-planar-1d", hint="differentiate tanh(wz + b) with the chain rule")
def _normalizing_flows_ex_planar_1d():
    u, w, z, b = sp.symbols("u w z b", real=True)
    # f'(z) = 1 + u w (1 - tanh^2(w z + b)), positive when u w > -1
    return sp.log(1 + u * w * (1 - sp.tanh(w * z + b) ** 2)), [u * w > -1]


@answer("normalizing_flows-ex-affine", hint="z = (s - c)/a, and divide by |df/dz| = a")
def _normalizing_flows_ex_affine():
    s, c = sp.symbols("s c", real=True)
    a = sp.Symbol("a", positive=True)
    # ln q(s) = ln N((s - c)/a; 0, 1) - ln a, the density of N(c, a^2)
    return -sp.log(2 * sp.pi) / 2 - (s - c) ** 2 / (2 * a**2) - sp.log(a)


# made

@answer("made-ex-weights", hint="a hidden unit of degree m sees m inputs and feeds D - m outputs")
def _made_ex_weights():
    D, H = sp.symbols("D H", positive=True, integer=True)
    return H * D + D * (D - 1) / 2


@answer("made-ex-copying", hint="every input gets the same product; how many inputs are there?")
def _made_ex_copying():
    p = sp.Symbol("p", positive=True)
    D = sp.Symbol("D", positive=True, integer=True)
    return (2 * p) ** D, [p <= 1]

