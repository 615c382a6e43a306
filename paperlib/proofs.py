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

from dataclasses import dataclass

import sympy as sp

from paperlib._compare import Comparison, Domain, compare

__all__ = ["Derivation", "StepError", "verdict_on"]

SCOPES = ("general", "instance: ", "dimension: ")
_RELATIONS = {"=": "=", "==": "=", "<=": r"\le", ">=": r"\ge"}


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
class _Step:
    expr: sp.Expr
    why: str
    relation: str
    verdict: Comparison | None = None


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
        self.domain = Domain.from_assumptions(assumptions)
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
            verdict = compare(previous, step.expr, step.relation, self.domain,
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
    verdict = compare(answer, expected, "=", Domain.from_assumptions(assumptions), 24, 0)
    if verdict.holds:
        return True, f"✓ Right: {answer} equals the expected result ({verdict.method} check)."
    return False, ("✗ Not quite: " + verdict.describe("your answer", "the expected result")
                   + hinted)
