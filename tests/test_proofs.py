"""paperlib.proofs must accept correct steps and reject subtly wrong ones, naming the step."""

import pytest
import sympy as sp
from sympy.stats import Expectation, Normal

from paperlib.proofs import Derivation, StepError, verdict_on  # what answers.check_answer calls

mu = sp.Symbol("mu", real=True)
sigma = sp.Symbol("sigma", positive=True)
beta = sp.Symbol("beta", positive=True)
t = sp.Symbol("t", integer=True, positive=True)
i = sp.Symbol("i", integer=True)
x = sp.Symbol("x", real=True)

KL_CLOSED = (mu**2 + sigma**2 - 2 * sp.log(sigma) - 1) / 2


def kl_expectation():
    """KL(N(mu, sigma^2) || N(0, 1)) as E_q[log q(Z) - log p(Z)], left unevaluated."""
    z = sp.Symbol("z", real=True)
    log_q = -sp.log(sigma) - sp.log(2 * sp.pi) / 2 - (z - mu) ** 2 / (2 * sigma**2)
    log_p = -sp.log(2 * sp.pi) / 2 - z**2 / 2
    return Expectation((log_q - log_p).subs(z, Normal("Z", mu, sigma)))


def test_correct_gaussian_kl_is_proved_symbolically():
    d = Derivation(kl_expectation()).step(KL_CLOSED, why="Gaussian moments").check()
    assert d.checked
    assert "✓ symbolic" in d._repr_markdown_()


@pytest.mark.parametrize("wrong, what", [
    (mu**2 + sigma**2 - 2 * sp.log(sigma) - 1, "dropped 1/2"),
    ((mu**2 + sigma**2 + 2 * sp.log(sigma) - 1) / 2, "flipped sign"),
    ((mu**2 + sigma**2 - sp.log(sigma) - 1) / 2, "log sigma for log sigma^2"),
])
def test_subtly_wrong_kl_steps_are_rejected(wrong, what):
    d = Derivation(kl_expectation()).step(KL_CLOSED, why="closed form").step(wrong, why=what)
    with pytest.raises(StepError) as error:
        d.check()
    assert error.value.number == 2
    message = str(error.value)
    assert f"Step 2 ({what})" in message and "counterexample" in message
    assert "simplified difference" in message
    assert d.steps[0].verdict.holds and not d.steps[1].verdict.holds


def test_geometric_sum_and_off_by_one_lower_limit():
    right = (1 - beta) * sp.Sum(beta ** (t - i), (i, 1, t))
    Derivation(right, assumptions=[beta < 1]).step(1 - beta**t, why="geometric sum").check()
    off_by_one = (1 - beta) * sp.Sum(beta ** (t - i), (i, 0, t))
    with pytest.raises(StepError, match=r"Step 1 \(geometric sum\)"):
        Derivation(off_by_one, assumptions=[beta < 1]).step(1 - beta**t,
                                                           why="geometric sum").check()
    Derivation(off_by_one, assumptions=[beta < 1]).step(1 - beta ** (t + 1)).check()


def test_numeric_fallback_is_reported_and_still_catches_errors():
    # sqrt(x^2) = |x| needs the sign of x: with only x real, simplify proves it; a step SymPy
    # cannot simplify (a Piecewise from a sum with a free ratio) falls back to numbers.
    d = Derivation(sp.Sum(beta**i, (i, 0, t - 1)), assumptions=[beta < 1])
    d.step((1 - beta**t) / (1 - beta), why="geometric series").check()
    assert d.steps[0].verdict.method in {"symbolic", "numeric"}
    if d.steps[0].verdict.method == "numeric":
        assert "numeric (24 points)" in d._repr_markdown_()
    with pytest.raises(StepError):
        Derivation(sp.Sum(beta**i, (i, 0, t - 1)), assumptions=[beta < 1]).step(
            (1 - beta ** (t - 1)) / (1 - beta)).check()


def test_inequalities_and_their_direction():
    y = sp.Symbol("y", positive=True)
    # log y <= y - 1 for y > 0: true one way, false the other
    Derivation(sp.log(y)).step(y - 1, rel="<=", why="tangent line").check()
    with pytest.raises(StepError, match="at least"):
        Derivation(sp.log(y)).step(y - 1, rel=">=").check()
    # Cauchy-Schwarz style: |a| <= sqrt(a^2 + b^2)
    a, b = sp.symbols("a b", real=True)
    Derivation(sp.Abs(a)).step(sp.sqrt(a**2 + b**2), rel="<=").check()


def test_assumptions_restrict_the_domain():
    # sqrt(x^2) = x only for x >= 0; the assumption makes it true, its absence makes it fail
    Derivation(sp.sqrt(x**2), assumptions=[x > 0]).step(x).check()
    with pytest.raises(StepError):
        Derivation(sp.sqrt(x**2)).step(x).check()
    Derivation(sp.sqrt(x**2), assumptions={x: sp.Interval(1, 2)}).step(x).check()


def test_joint_assumptions_filter_the_sample():
    a, b = sp.symbols("a b", positive=True)
    # max(a, b) = b holds whenever a < b, a condition on two symbols at once
    Derivation(sp.Max(a, b), assumptions=[a < b]).step(b).check()
    with pytest.raises(StepError):
        Derivation(sp.Max(a, b)).step(b).check()


def test_a_step_that_cannot_be_evaluated_fails_instead_of_passing():
    f = sp.Function("f")
    # f(x) = f(-x) needs f to be even: SymPy cannot prove it and cannot evaluate an unknown f
    with pytest.raises(StepError, match="could not be proved"):
        Derivation(f(x)).step(f(-x), why="f is even?").check()


def test_the_scope_is_shown_with_the_title():
    d = Derivation(x, title="KL of two Gaussians", scope="instance: J = 2").step(x).check()
    assert d._repr_markdown_().startswith("**KL of two Gaussians** (scope: instance: J = 2)")
    assert "scope: instance: J = 2" in repr(d)
    assert Derivation(x, scope="general").scope == "general"
    assert Derivation(x, scope="dimension: d = 2, 3").scope.startswith("dimension")
    # no scope given: the rendering is as before
    assert Derivation(x, title="t").step(x)._repr_markdown_().startswith("**t**\n")


def test_rendering_shows_every_step_with_status():
    d = Derivation(sp.log(sigma**2), title="a title").step(2 * sp.log(sigma), why="power")
    assert "not checked" in d._repr_markdown_()
    d.check()
    text = d._repr_markdown_()
    assert text.startswith("**a title**")
    assert r"$\log{\left(\sigma^{2} \right)}$" in text and "✓ symbolic" in text
    assert "power" in repr(d)
    # an absolute value must not break the Markdown table into extra cells
    row = Derivation(sp.Abs(x)).step(sp.sqrt(x**2))._repr_markdown_().splitlines()[-1]
    assert row.count("|") == 6


def test_verdict_accepts_any_algebraic_form():
    expected = KL_CLOSED
    for answer in ("(mu^2 + sigma^2 - 1)/2 - log(sigma)", sp.expand(expected),
                   "mu**2/2 + sigma**2/2 - log(sigma**2)/2 - 1/2"):
        right, message = verdict_on(answer, expected)
        assert right and message.startswith("✓ Right"), answer
    # log(sigma^2) = 2 log(sigma) holds for sigma > 0, which the expected result's symbol assumes
    assert verdict_on(sp.log(sigma**2), 2 * sp.log(sigma))[0]
    assert not verdict_on(sp.log(sigma**2), sp.log(sigma))[0]


def test_verdict_rejects_wrong_answers_with_a_hint():
    expected = KL_CLOSED
    right, message = verdict_on("(mu^2 + sigma^2 - 1)/2 + log(sigma)", expected, hint="sign of log")
    assert not right and "Not quite" in message and "sign of log" in message
    right, message = verdict_on("mu**2 + nu", expected)
    assert not right and "nu" in message
    right, message = verdict_on(None, expected)
    assert not right and "Not answered" in message
    assert not verdict_on("mu +* 2", expected)[0]


def test_refute_returns_the_error_of_a_wrong_derivation_and_rejects_a_right_one():
    error = Derivation(sp.log(sigma**2)).step(sp.log(sigma), why="wrong").refute()
    assert isinstance(error, StepError) and error.number == 1
    with pytest.raises(AssertionError, match="expected a step"):
        Derivation(sp.log(sigma**2)).step(2 * sp.log(sigma)).refute()


def test_math_renders_the_checked_chain_with_each_verdict():
    """What a proof block shows through {glue:math}: the scope, then the same steps, each with
    its number and verdict."""
    d = Derivation(sp.log(sigma**2), scope="general").step(2 * sp.log(sigma), why="power")
    assert r"\text{(1) not checked}" in d.math().latex  # before check(), nothing claims a verdict
    d.check()
    latex = d.math()._repr_latex_()
    assert latex.startswith("$$\n\\begin{aligned}") and latex.endswith("\\end{aligned}\n$$")
    assert r"&\log{\left(\sigma^{2} \right)} && \small\text{scope: general}" in latex
    assert r"&= 2 \log{\left(\sigma \right)} && \small\text{(1) ✓ symbolic}" in latex
    instance = Derivation(sp.Abs(x) ** 2, scope="instance: x real, {50% & $}").step(x**2).check()
    latex = instance.math().latex
    assert latex.endswith(r"\text{(1) ✓ symbolic, instance}" + "\n\\end{aligned}")
    assert r"\text{scope: instance: x real, \{50\% \& \$\}}" in latex  # TeX's specials escaped


def test_show_displays_and_glues_only_a_checked_derivation(monkeypatch):
    """show(label) is what a proof block pastes: the display, with myst-nb's glue metadata."""
    import IPython.display
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append((obj, kw)))
    d = Derivation(sp.log(sigma**2), scope="general").step(2 * sp.log(sigma))
    with pytest.raises(ValueError, match="check"):
        d.show("thm-x")  # unchecked: a proof would display a step nobody verified
    d.check().show("thm-x", part="b")
    (obj, kw), = shown
    assert obj.latex == d.math().latex and d.label == "thm-x"
    assert kw["metadata"] == {"scrapbook": {"name": "thm-x:b", "mime_prefix": ""}}
    for bad in ("", None):
        with pytest.raises(ValueError, match="label"):
            d.show(bad)


def test_for_every_integer_t_is_not_checked_at_small_t_only():
    """A step that holds for t <= 21 but not for every t >= 1 fails: unbounded integers are also
    drawn log-uniformly up to 10^4 (here t^2 <= 1000 t breaks at t > 1000)."""
    t = sp.Symbol("t", integer=True, positive=True)
    with pytest.raises(StepError):
        Derivation(1000 * t, scope="general").step(t**2, rel=">=", why="small t only").check()
    Derivation(1000 * t, assumptions=[t <= 1000], scope="general").step(t**2, rel=">=").check()


def test_a_joint_condition_on_a_symbol_the_step_does_not_use_is_skipped():
    """A condition such as A >= -log(mu) cannot be decided at points that give no value to A:
    the comparison of steps in mu alone samples mu and ignores it (it used to raise TypeError)."""
    import random

    from paperlib._compare import Domain
    A, mu = sp.Symbol("A", real=True), sp.Symbol("mu", positive=True)
    domain = Domain.from_assumptions([A >= -sp.log(mu), mu < 1])
    points = domain.sample([mu], 5, random.Random(0))
    assert len(points) == 5 and all(0 < p[mu] < 1 for p in points)
    both = domain.sample([A, mu], 20, random.Random(0))  # with A, the condition filters
    assert both and all(p[A] >= -sp.log(p[mu]) for p in both)


def test_non_commutative_symbols_are_not_made_commutative():
    """(1 + J)(1 + S) is not (1 + S)(1 + J) for matrices: a check must not pass it."""
    J, S = sp.symbols("J S", commutative=False)
    with pytest.raises(StepError):
        Derivation((1 + J) * (1 + S), scope="general").step((1 + S) * (1 + J)).check()
    Derivation((1 + J) * (1 + S), scope="general").step(1 + J + S + J * S).check()
