"""Check derivations one step at a time with SymPy.

Every chapter of the book writes its proofs twice: once in prose, once as a :class:`Derivation`
whose steps are SymPy expressions. :meth:`Derivation.check` verifies that each step equals the
previous one (or is ``<=`` / ``>=`` it, where the step says so) under the stated assumptions:

* **symbolic** when SymPy simplifies the difference to zero (or proves its sign);
* **numeric** otherwise, by evaluating both sides at random points of the assumptions' domain.
  A step is only accepted numerically when it holds at every point tried, to 1e-9 relative.

A step that fails raises :class:`StepError` naming the step, both sides and the simplified
difference. A step that can be neither proved nor evaluated also fails: nothing passes by default.

Unevaluated objects (``Sum``, ``Integral``, ``sympy.stats`` expectations) are shown as written
and evaluated with ``.doit()`` before comparison, so a step can display a sum and be checked in
closed form. Symbols are taken to be real.
"""

from __future__ import annotations

import cmath
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import sympy as sp

__all__ = ["Derivation", "StepError", "equivalent", "mark_answer", "verdict_on"]

SCOPES = ("general", "instance: ", "dimension: ")
_RELATIONS = {"=": "=", "==": "=", "<=": r"\le", ">=": r"\ge"}
_TOLERANCE = 1e-9
_DIGITS = 30
_INTEGER_DECADES = 4  # an integer with no upper bound is also drawn up to 10^4 above its lower one


class StepError(AssertionError):
    """A derivation step that does not follow from the one before it."""

    def __init__(self, number: int, why: str, relation: str, previous: sp.Expr,
                 current: sp.Expr, difference: sp.Expr | None, detail: str):
        self.number, self.why, self.relation = number, why, relation
        self.previous, self.current, self.difference = previous, current, difference
        label = f"Step {number}" + (f" ({why})" if why else "")
        claim = {"=": "equal to", "<=": "at most", ">=": "at least"}[relation]
        lines = [f"{label} fails: the previous expression is not {claim} this step.",
                 f"  previous:   {previous}",
                 f"  this step:  {current}"]
        if difference is not None:
            lines.append(f"  simplified difference (previous - this step): {difference}")
        lines.append(f"  {detail}")
        super().__init__("\n".join(lines))


@dataclass
class _Verdict:
    holds: bool
    method: str  # "symbolic", "numeric" or "" when it fails
    points: int = 0
    difference: sp.Expr | None = None
    detail: str = ""
    counterexample: tuple[dict, complex, complex] | None = None

    def describe(self, left: str, right: str) -> str:
        if self.counterexample is None:
            return self.detail
        point, a, b = self.counterexample
        where = ", ".join(f"{s} = {float(v):.6g}" for s, v in point.items()) or "every point"
        return f"counterexample: at {where}, {left} is {_fmt(a)} but {right} is {_fmt(b)}."


@dataclass
class _Step:
    expr: sp.Expr
    why: str
    relation: str
    verdict: _Verdict | None = None


@dataclass
class _Domain:
    """Where each symbol lives, plus conditions that tie several symbols together."""

    sets: dict[sp.Symbol, sp.Set] = field(default_factory=dict)
    joint: list[sp.Basic] = field(default_factory=list)

    @classmethod
    def from_assumptions(cls, assumptions) -> _Domain:
        domain = cls()
        if assumptions is None:
            return domain
        if isinstance(assumptions, Mapping):
            items = list(assumptions.items())
        else:
            items = list(assumptions) if isinstance(assumptions, Iterable) else [assumptions]
        for item in items:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], sp.Set):
                domain._restrict(item[0], item[1])
            elif isinstance(item, (sp.logic.boolalg.Boolean, sp.core.relational.Relational)):
                free = item.free_symbols
                if len(free) == 1:
                    (symbol,) = free
                    domain._restrict(symbol, item.as_set())
                else:
                    domain.joint.append(item)
            else:
                raise TypeError(
                    "assumptions: expected relations such as `sigma > 0` or a mapping "
                    f"{{symbol: Interval}}, got {item!r}")
        return domain

    def _restrict(self, symbol: sp.Symbol, region: sp.Set) -> None:
        if not isinstance(symbol, sp.Symbol):
            raise TypeError(f"assumptions: {symbol!r} is not a SymPy symbol")
        self.sets[symbol] = self.set_of(symbol).intersect(region)

    def set_of(self, symbol: sp.Symbol) -> sp.Set:
        if symbol in self.sets:
            return self.sets[symbol]
        base = sp.S.Integers if symbol.is_integer else sp.S.Reals
        if symbol.is_positive:
            return base.intersect(sp.Interval.open(0, sp.oo))
        if symbol.is_nonnegative:
            return base.intersect(sp.Interval(0, sp.oo))
        if symbol.is_negative:
            return base.intersect(sp.Interval.open(-sp.oo, 0))
        return base

    def assumed(self, symbols: Iterable[sp.Symbol]) -> dict[sp.Symbol, sp.Symbol]:
        """Replacement symbols that carry what SymPy's assumption system can use (the sign)."""
        out = {}
        for s in symbols:
            if not s.is_commutative:  # a matrix-like symbol stays itself: JS is not SJ
                continue
            region = self.set_of(s)
            facts = {"real": True}
            if s.is_integer or region.is_subset(sp.S.Integers):
                facts["integer"] = True
            if region.is_subset(sp.Interval.open(0, sp.oo)):
                facts["positive"] = True
            elif region.is_subset(sp.Interval(0, sp.oo)):
                facts["nonnegative"] = True
            elif region.is_subset(sp.Interval.open(-sp.oo, 0)):
                facts["negative"] = True
            out[s] = sp.Dummy(s.name, **facts)
        return out

    def sample(self, symbols: list[sp.Symbol], n: int, rng: random.Random
               ) -> list[dict[sp.Symbol, sp.Expr]]:
        points: list[dict[sp.Symbol, sp.Expr]] = []
        # a condition on symbols this comparison does not involve cannot be decided at its points
        joint = [c for c in self.joint if c.free_symbols <= set(symbols)]
        for _ in range(50 * n):
            if len(points) == n:
                break
            point = {s: self._draw(s, rng) for s in symbols}
            if any(p is None for p in point.values()):
                continue
            if all(bool(c.subs(point)) for c in joint):
                points.append(point)
        return points

    def _draw(self, symbol: sp.Symbol, rng: random.Random) -> sp.Expr | None:
        region = self.set_of(symbol)
        hull = sp.Interval(region.inf, region.sup) if region is not sp.S.EmptySet else None
        if hull is None:
            return None
        lo, hi = hull.start, hull.end
        integer = symbol.is_integer or region.is_subset(sp.S.Integers)
        if integer:
            lo_i = int(sp.ceiling(lo)) if lo.is_finite else (int(sp.floor(hi)) - 20 if hi.is_finite else -10)
            if hi.is_finite:
                value = sp.Integer(rng.randint(lo_i, int(sp.floor(hi))))
            elif rng.random() < 0.5:  # "for every t >= 1": small t, where most slips show ...
                value = sp.Integer(rng.randint(lo_i, lo_i + 20))
            else:  # ... and t spread log-uniformly up to 10^4 above the bound, not t <= 21 only
                value = sp.Integer(lo_i + int(10 ** rng.uniform(0, _INTEGER_DECADES)))
        else:
            if lo.is_finite and hi.is_finite:
                x = float(lo) + (float(hi) - float(lo)) * rng.uniform(0.01, 0.99)
            elif lo.is_finite:
                x = float(lo) + math.exp(rng.uniform(-3, 2.5))
            elif hi.is_finite:
                x = float(hi) - math.exp(rng.uniform(-3, 2.5))
            else:
                x = rng.gauss(0.0, 2.0)
            value = sp.Float(x, _DIGITS)
        return value if region.contains(value) == sp.true else None


def _evaluate(expr: sp.Expr, point: Mapping[sp.Symbol, sp.Expr]) -> complex | None:
    try:
        value = complex(sp.N(expr.subs(point).doit(), _DIGITS))
    except (TypeError, ValueError, ZeroDivisionError, ArithmeticError):
        return None
    if not (cmath.isfinite(value)):
        return None
    return value


def _doit(expr: sp.Expr) -> sp.Expr:
    return sp.sympify(expr).doit()


def _symbolic_zero(difference: sp.Expr) -> tuple[bool, sp.Expr]:
    simplified = sp.simplify(difference)
    if simplified == 0:
        return True, simplified
    expanded = sp.simplify(sp.expand(sp.expand_log(simplified)))
    if expanded == 0:
        return True, expanded
    return False, min(simplified, expanded, key=sp.count_ops)


def _compare(previous: sp.Expr, current: sp.Expr, relation: str, domain: _Domain,
             samples: int, seed: int) -> _Verdict:
    """Decide whether ``previous <relation> current`` holds on ``domain``."""
    a, b = _doit(previous), _doit(current)
    symbols = sorted(a.free_symbols | b.free_symbols, key=lambda s: s.name)
    swap = domain.assumed(symbols)
    back = {v: k for k, v in swap.items()}
    difference = sp.sympify(a - b).xreplace(swap)
    if relation == "=":
        proved, simplified = _symbolic_zero(difference)
    else:
        simplified = sp.simplify(difference)
        sign = simplified.is_nonnegative if relation == ">=" else simplified.is_nonpositive
        proved = bool(sign)
    simplified = simplified.xreplace(back)
    if proved:
        return _Verdict(True, "symbolic", difference=simplified)
    if simplified.is_number and simplified.is_real:
        # the difference is a constant: decided symbolically, no need for random points
        return _Verdict(False, "", difference=simplified,
                        detail=f"the two sides differ by the constant {simplified}.")
    if any(not s.is_commutative for s in symbols):
        return _Verdict(False, "", difference=simplified,
                        detail="could not be proved symbolically, and non-commutative symbols "
                               "(matrices) cannot be evaluated at random numbers.")
    if a.atoms(sp.Indexed) or b.atoms(sp.Indexed):
        return _Verdict(False, "", difference=simplified,
                        detail="could not be proved symbolically, and indexed symbols "
                               "(x[n]) cannot be evaluated at random points.")

    rng = random.Random(seed)
    tried = 0
    for point in domain.sample(symbols, samples, rng):
        va, vb = _evaluate(a, point), _evaluate(b, point)
        if va is None or vb is None:
            continue
        tried += 1
        scale = _TOLERANCE * (1.0 + abs(va) + abs(vb))
        if relation == "=":
            ok = abs(va - vb) <= scale
        else:
            if abs(va.imag) > scale or abs(vb.imag) > scale:
                ok = False
            else:
                gap = va.real - vb.real
                ok = gap >= -scale if relation == ">=" else gap <= scale
        if not ok:
            return _Verdict(False, "", tried, simplified, counterexample=(point, va, vb))
    if tried < max(3, samples // 2):
        return _Verdict(False, "", tried, simplified,
                        f"could not be proved symbolically, and only {tried} of {samples} "
                        "random points could be evaluated numerically.")
    return _Verdict(True, "numeric", tried, simplified)


def _fmt(value: complex) -> str:
    return f"{value.real:.10g}" if abs(value.imag) < 1e-12 else f"{value:.6g}"


def _text(words: str) -> str:
    """Words for \\text{...}: characters TeX or MathJax would read as markup are escaped."""
    for char, escaped in (("\\", "/"), ("{", r"\{"), ("}", r"\}"), ("$", r"\$"),
                          ("&", r"\&"), ("#", r"\#"), ("%", r"\%"),
                          ("~", "∼")):  # TeX's ~ is a space
        words = words.replace(char, escaped)
    return words


def _tex(expr: sp.Expr) -> str:
    # A bare "|" would split a Markdown table cell: use \vert / \Vert instead.
    text = expr if isinstance(expr, str) else sp.latex(expr)
    return text.replace(r"\|", r"\Vert ").replace("|", r"\vert ")


class Derivation:
    """A chain ``start = step_1 = step_2 >= step_3 ...`` whose links are checked by SymPy.

    ``assumptions`` are relations such as ``sigma > 0`` or ``0 < beta < 1`` (or a mapping
    ``{symbol: Interval}``); conditions on several symbols at once filter the random points.
    ``tex`` replaces how the start is shown, as ``step(..., tex=...)`` does for a step.
    ``scope`` says how far the check reaches: ``"general"`` (symbolic in every symbol of the
    statement), ``"instance: <which>"`` (one model or distribution standing for the class) or
    ``"dimension: d = 2, 3"`` (fixed sizes); it is shown with the title.

    >>> x = sp.Symbol("x", positive=True)
    >>> Derivation(sp.log(x**2)).step(2 * sp.log(x), why="log of a power").check()  # doctest: +SKIP
    """

    def __init__(self, start, assumptions=None, title: str = "", samples: int = 24,
                 seed: int = 0, tex: str | None = None, scope: str | None = None):
        if samples < 1:
            raise ValueError(f"samples: expected a positive number of random points, got {samples}")
        if scope is not None and not (scope == "general" or scope.startswith(SCOPES[1:])):
            raise ValueError(f"scope: expected 'general', 'instance: ...' or 'dimension: ...', "
                             f"got {scope!r}")
        self.title, self.scope = title, scope
        self.label: str | None = None  # the prf: label of the statement whose proof shows it
        self.start = sp.sympify(start)
        self.domain = _Domain.from_assumptions(assumptions)
        self.samples, self.seed = samples, seed
        self.steps: list[_Step] = []
        self.display: dict[int, str] = {} if tex is None else {0: tex}

    def step(self, expr, why: str = "", rel: str = "=", tex: str | None = None) -> Derivation:
        """Add a step; ``rel`` is how the previous expression relates to this one.

        ``tex`` replaces the rendered LaTeX (the checked expression is still ``expr``).
        """
        if rel not in _RELATIONS:
            raise ValueError(f"rel: expected one of {sorted(set(_RELATIONS))}, got {rel!r}")
        relation = "=" if rel == "==" else rel
        self.steps.append(_Step(sp.sympify(expr), why, relation))
        if tex is not None:
            self.display[len(self.steps)] = tex
        return self

    def check(self) -> Derivation:
        """Verify every step; raise :class:`StepError` at the first one that fails."""
        previous = self.start
        for number, step in enumerate(self.steps, start=1):
            verdict = _compare(previous, step.expr, step.relation, self.domain,
                               self.samples, self.seed + number)
            step.verdict = verdict
            if not verdict.holds:
                raise StepError(number, step.why, step.relation, previous, step.expr,
                                verdict.difference,
                                verdict.describe("the previous expression", "this step"))
            previous = step.expr
        return self

    def refute(self) -> StepError:
        """Check a derivation that is meant to be wrong (a pitfall): return its StepError.

        Raises ``AssertionError`` if every step holds, so a pitfall that stops failing is noticed.
        """
        try:
            self.check()
        except StepError as error:
            return error
        raise AssertionError(f"expected a step of {self.title or 'this derivation'!r} to fail, "
                             "but every step holds")

    @property
    def checked(self) -> bool:
        return bool(self.steps) and all(s.verdict and s.verdict.holds for s in self.steps)

    @property
    def end(self) -> sp.Expr:
        return self.steps[-1].expr if self.steps else self.start

    def _status(self, step: _Step) -> str:
        if step.verdict is None:
            return "not checked"
        if not step.verdict.holds:
            return "✗ fails"
        if step.verdict.method == "symbolic":
            return "✓ symbolic"
        return f"✓ numeric ({step.verdict.points} points)"

    def _rows(self):
        yield 0, "", _tex(self.display.get(0, self.start)), "start", ""
        for number, step in enumerate(self.steps, start=1):
            yield (number, _RELATIONS[step.relation], _tex(self.display.get(number, step.expr)),
                   step.why, self._status(step))

    def _repr_markdown_(self) -> str:
        title = f"**{self.title}**" if self.title else ""
        if self.scope:
            title += f" (scope: {self.scope})" if title else f"scope: {self.scope}"
        lines = [title, ""] if title else []
        lines += ["| step | | expression | why | check |", "|---:|:-:|:--|:--|:--|"]
        for number, rel, tex, why, status in self._rows():
            relation = f"${rel}$" if rel else ""
            why = why.replace("|", r"\|")  # an escaped pipe stays inside its table cell
            lines.append(f"| {number} | {relation} | ${tex}$ | {why} | {status} |")
        return "\n".join(lines)

    def math(self) -> DisplayMath:
        """The chain as one aligned display, each step's verdict at its right.

        The start's right-hand column states the scope; each step's gives its number and how it
        was checked (symbolic, numeric with its number of points, and "instance" when the scope
        is one), so the proof's prose can give the reasons as a list numbered the same way.
        """
        instance = bool(self.scope and self.scope.startswith("instance"))
        rows = []
        for number, rel, tex, _, status in self._rows():
            verdict = status.replace(" (", ", ").rstrip(")")  # "✓ numeric, 24 points"
            if number == 0:
                verdict = f"scope: {self.scope}" if self.scope else ""
            else:  # "(2) ✓ symbolic": the number the proof's prose gives the step
                verdict = f"({number}) {verdict}" + (", instance" if instance else "")
            right = rf" && \small\text{{{_text(verdict)}}}" if verdict else ""
            rows.append(("&" if number == 0 else f"&{rel} ") + tex + right)
        return DisplayMath("\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}")

    def show(self, label: str, part: str | None = None) -> None:
        """Display the chain (:meth:`math`) and glue it for the proof of ``label`` to show.

        ``label`` is the ``prf:`` label of the theorem, lemma or proposition; the proof block
        then shows this very derivation with ``{glue:math}`` and the same key: ``label``, or
        ``label:part`` when one proof shows several derivations. In Jupyter or Colab the cell
        shows the display itself; the glue metadata is what myst-nb reads when it builds the site.
        """
        if not label or not isinstance(label, str):
            raise ValueError(f"label: expected the prf: label of a statement, got {label!r}")
        if part is not None and not (isinstance(part, str) and part):
            raise ValueError(f"part: expected a short non-empty name or None, got {part!r}")
        if not self.checked:
            raise ValueError(f"{self.title or 'this derivation'!r}: check() it before show(): "
                             "a proof displays only checked steps")
        from IPython.display import display  # the book's runtime (Jupyter, or the browser's)

        self.label = label
        key = label if part is None else f"{label}:{part}"
        display(self.math(), metadata={"scrapbook": {"name": key, "mime_prefix": ""}})

    def __repr__(self) -> str:
        head = [self.title] if self.title else []
        if self.scope:
            head.append(f"scope: {self.scope}")
        plain = {"": "", "=": "=", r"\le": "<=", r"\ge": ">="}
        body = [f"{n:>3} {plain[rel]:>2} {why or '-'}: {status or 'start'}"
                for n, rel, _, why, status in self._rows()]
        return "\n".join(head + body)


class DisplayMath:
    """LaTeX for one display equation (what myst-nb's ``{glue:math}`` reads as text/latex)."""

    def __init__(self, latex: str) -> None:
        self.latex = latex

    def _repr_latex_(self) -> str:
        return f"$$\n{self.latex}\n$$"

    def __repr__(self) -> str:
        return self.latex


def equivalent(a, b, assumptions=None, samples: int = 24, seed: int = 0) -> bool:
    """True when ``a`` and ``b`` are equal on the assumptions' domain (symbolic or numeric)."""
    return _compare(sp.sympify(a), sp.sympify(b), "=", _Domain.from_assumptions(assumptions),
                    samples, seed).holds


def mark_answer(answer, expected, assumptions=None, hint: str = "") -> bool:
    """Mark a reader's answer right or wrong, whatever algebraic form it is written in.

    The chapters' exercises call :func:`paperlib.answers.check_answer` with the exercise's label,
    which looks the expected answer up and marks it with :func:`verdict_on`; this prints the
    one-line verdict and returns whether the answer is right.
    """
    right, message = verdict_on(answer, expected, assumptions, hint)
    print(message)
    return right


def verdict_on(answer, expected, assumptions=None, hint: str = "") -> tuple[bool, str]:
    """Whether ``answer`` equals ``expected``, and the one-line verdict a reader sees.

    ``answer`` is a SymPy expression or a string such as ``"mu**2 / 2"`` (parsed with the symbols
    of ``expected``); ``hint`` is added when the answer is missing or wrong.
    """
    expected = sp.sympify(expected)
    hinted = f" Hint: {hint}" if hint else ""
    if answer is None or answer is Ellipsis:
        return False, "Not answered yet." + hinted
    if isinstance(answer, str):
        names = {s.name: s for s in expected.free_symbols}
        try:
            answer = sp.parse_expr(answer, local_dict=names, transformations=(
                sp.parsing.sympy_parser.standard_transformations
                + (sp.parsing.sympy_parser.convert_xor,)))
        except (SyntaxError, TypeError, sp.SympifyError) as error:
            return False, f"✗ Could not read the answer ({error})."
    answer = sp.sympify(answer)
    unknown = answer.free_symbols - expected.free_symbols
    if unknown:
        names = ", ".join(sorted(s.name for s in unknown))
        return False, (f"✗ Not quite: the answer uses {names}, which the expected result does "
                       "not." + hinted)
    verdict = _compare(answer, expected, "=", _Domain.from_assumptions(assumptions), 24, 0)
    if verdict.holds:
        return True, f"✓ Right: {answer} equals the expected result ({verdict.method} check)."
    return False, ("✗ Not quite: " + verdict.describe("your answer", "the expected result")
                   + hinted)
