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

# spatial_transformer

# resnet

# vae

# beta_vae

# gan

# normalizing_flows

# made
