"""Asserted claims that read as sentences: ``claim("ST-FCN beats FCN", gain, at_least=0.01)``.

Every comparison a chapter makes from a trained model goes through :func:`claim`. It prints one
line, ``✓ ST-FCN beats FCN (asserted ≥ 1 point)``, and raises :class:`ClaimError` when the
measurement misses its threshold, so a reader running the notebook sees a claim fail by name.

The printed line states the bound, not the measured value: a trained model's metric moves in
its last digits from one CPU to the next (vector kernels, thread count), and the committed
outputs must read the same on every machine. Chapters show the measured values in figures.

When the environment variable ``PAPERLIB_CLAIMS_LOG`` names a file, each claim also appends one
JSON line there (statement, value, threshold, margin). ``bench/claims.py`` uses it to re-run
every chapter on seeds 0-2 and tabulate each claim's margin.
"""

from __future__ import annotations

import json
import math
import os

__all__ = ["ClaimError", "claim"]


class ClaimError(AssertionError):
    """A chapter's asserted claim did not hold."""


def _number(name: str, value) -> float:
    if isinstance(value, (bool, str)) or not hasattr(value, "__float__"):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    number = float(value)  # also a NumPy scalar or a one-element tensor
    if math.isnan(number):
        raise ValueError(f"{name}: expected a number, got NaN")
    return number


def claim(statement: str, value: float, *, at_least: float | None = None,
          at_most: float | None = None, scale: float = 1.0, unit: str = "") -> None:
    """Assert ``value >= at_least`` (or ``value <= at_most``) and print the claim with its bound.

    ``scale`` and ``unit`` only format the bound for the reader: ``scale=100, unit=" points"``
    prints a threshold of 0.01 as "1 point". Returns nothing: a margin returned as a cell's last
    value would be displayed, and it is a number that differs from one CPU to the next. The
    margin (how far ``value`` is inside the bound) goes to ``$PAPERLIB_CLAIMS_LOG`` instead.
    """
    if not isinstance(statement, str) or not statement.strip():
        raise ValueError("statement: expected a sentence saying what is claimed")
    if (at_least is None) == (at_most is None):
        raise ValueError("at_least: give exactly one of at_least and at_most")
    measured = _number("value", value)
    bound = _number("at_least" if at_most is None else "at_most",
                    at_least if at_most is None else at_most)
    scale = _number("scale", scale)
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale: expected a positive finite number, got {scale!r}")
    margin = measured - bound if at_most is None else bound - measured
    symbol = "≥" if at_most is None else "≤"
    shown = f"{bound * scale:g}{unit}"
    _log(statement, measured, symbol, bound, margin)
    if not margin >= 0:  # also catches an infinite value on the wrong side
        raise ClaimError(f"✗ {statement}: measured {measured:.4g}, asserted {symbol} {bound:.4g}")
    print(f"✓ {statement} (asserted {symbol} {shown})")


def _log(statement: str, value: float, symbol: str, bound: float, margin: float) -> None:
    path = os.environ.get("PAPERLIB_CLAIMS_LOG")
    if not path:
        return
    record = {"statement": statement, "value": value, "relation": symbol, "bound": bound,
              "margin": margin}
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(record, ensure_ascii=False) + "\n")
