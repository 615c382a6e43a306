"""How a derivation's step is compared with the one before it: symbolically when SymPy can
decide, else numerically at random points drawn from the assumptions' domain.

The machinery behind :meth:`paperlib.proofs.Derivation.check` and
:func:`paperlib.proofs.verdict_on`; not called by the chapters directly. Imports only SymPy and the
standard library, so it runs in the browser too.
"""

from __future__ import annotations

import cmath
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import sympy as sp

TOLERANCE = 1e-9
DIGITS = 30
INTEGER_DECADES = 4  # an integer with no upper bound is also drawn up to 10^4 above its lower one


@dataclass
class Comparison:
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
        return f"counterexample: at {where}, {left} is {fmt(a)} but {right} is {fmt(b)}."


@dataclass
class Domain:
    """Where each symbol lives, plus conditions that tie several symbols together."""

    sets: dict[sp.Symbol, sp.Set] = field(default_factory=dict)
    joint: list[sp.Basic] = field(default_factory=list)

    @classmethod
    def from_assumptions(cls, assumptions) -> Domain:
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
                value = sp.Integer(lo_i + int(10 ** rng.uniform(0, INTEGER_DECADES)))
        else:
            if lo.is_finite and hi.is_finite:
                x = float(lo) + (float(hi) - float(lo)) * rng.uniform(0.01, 0.99)
            elif lo.is_finite:
                x = float(lo) + math.exp(rng.uniform(-3, 2.5))
            elif hi.is_finite:
                x = float(hi) - math.exp(rng.uniform(-3, 2.5))
            else:
                x = rng.gauss(0.0, 2.0)
            value = sp.Float(x, DIGITS)
        return value if region.contains(value) == sp.true else None


def evaluate(expr: sp.Expr, point: Mapping[sp.Symbol, sp.Expr]) -> complex | None:
    try:
        value = complex(sp.N(expr.subs(point).doit(), DIGITS))
    except (TypeError, ValueError, ZeroDivisionError, ArithmeticError):
        return None
    if not (cmath.isfinite(value)):
        return None
    return value


def doit(expr: sp.Expr) -> sp.Expr:
    return sp.sympify(expr).doit()


def symbolic_zero(difference: sp.Expr) -> tuple[bool, sp.Expr]:
    simplified = sp.simplify(difference)
    if simplified == 0:
        return True, simplified
    expanded = sp.simplify(sp.expand(sp.expand_log(simplified)))
    if expanded == 0:
        return True, expanded
    return False, min(simplified, expanded, key=sp.count_ops)


def compare(previous: sp.Expr, current: sp.Expr, relation: str, domain: Domain,
             samples: int, seed: int) -> Comparison:
    """Decide whether ``previous <relation> current`` holds on ``domain``."""
    a, b = doit(previous), doit(current)
    symbols = sorted(a.free_symbols | b.free_symbols, key=lambda s: s.name)
    swap = domain.assumed(symbols)
    back = {v: k for k, v in swap.items()}
    difference = sp.sympify(a - b).xreplace(swap)
    if relation == "=":
        proved, simplified = symbolic_zero(difference)
    else:
        simplified = sp.simplify(difference)
        sign = simplified.is_nonnegative if relation == ">=" else simplified.is_nonpositive
        proved = bool(sign)
    simplified = simplified.xreplace(back)
    if proved:
        return Comparison(True, "symbolic", difference=simplified)
    if simplified.is_number and simplified.is_real:
        # the difference is a constant: decided symbolically, no need for random points
        return Comparison(False, "", difference=simplified,
                        detail=f"the two sides differ by the constant {simplified}.")
    if any(not s.is_commutative for s in symbols):
        return Comparison(False, "", difference=simplified,
                        detail="could not be proved symbolically, and non-commutative symbols "
                               "(matrices) cannot be evaluated at random numbers.")
    if a.atoms(sp.Indexed) or b.atoms(sp.Indexed):
        return Comparison(False, "", difference=simplified,
                        detail="could not be proved symbolically, and indexed symbols "
                               "(x[n]) cannot be evaluated at random points.")

    rng = random.Random(seed)
    tried = 0
    for point in domain.sample(symbols, samples, rng):
        va, vb = evaluate(a, point), evaluate(b, point)
        if va is None or vb is None:
            continue
        tried += 1
        scale = TOLERANCE * (1.0 + abs(va) + abs(vb))
        if relation == "=":
            ok = abs(va - vb) <= scale
        else:
            if abs(va.imag) > scale or abs(vb.imag) > scale:
                ok = False
            else:
                gap = va.real - vb.real
                ok = gap >= -scale if relation == ">=" else gap <= scale
        if not ok:
            return Comparison(False, "", tried, simplified, counterexample=(point, va, vb))
    if tried < max(3, samples // 2):
        return Comparison(False, "", tried, simplified,
                        f"could not be proved symbolically, and only {tried} of {samples} "
                        "random points could be evaluated numerically.")
    return Comparison(True, "numeric", tried, simplified)


def fmt(value: complex) -> str:
    return f"{value.real:.10g}" if abs(value.imag) < 1e-12 else f"{value:.6g}"
