"""paperlib.claims: a claim prints its bound, raises by name when it fails, and logs for the bench."""

from __future__ import annotations

import json

import pytest
import torch

from paperlib.claims import ClaimError, claim


def test_a_claim_that_holds_prints_the_bound_not_the_value(capsys):
    result = claim("ST-FCN beats FCN", 0.042, at_least=0.01, scale=100, unit=" points")
    assert result is None  # a returned margin would be displayed, CPU-dependent, as a cell's value
    out = capsys.readouterr().out
    assert out == "✓ ST-FCN beats FCN (asserted ≥ 1 points)\n"
    assert "4.2" not in out  # the measured value moves across CPUs; the line must not


def test_at_most_and_tensor_values(capsys):
    claim("the KL is small", torch.tensor(0.1), at_most=0.5)
    assert "≤ 0.5" in capsys.readouterr().out


@pytest.mark.parametrize(("value", "kwargs"), [(0.005, {"at_least": 0.01}), (0.6, {"at_most": 0.5}),
                                               (float("-inf"), {"at_least": 0.0})])
def test_a_claim_that_fails_raises_with_its_statement_and_measurement(value, kwargs, capsys):
    with pytest.raises(ClaimError, match=r"^✗ A beats B: measured"):
        claim("A beats B", value, **kwargs)
    assert capsys.readouterr().out == ""  # no ✓ printed for a failed claim


def test_claim_error_is_an_assertion_error():
    assert issubclass(ClaimError, AssertionError)


def test_claims_are_logged_when_asked(tmp_path, monkeypatch):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("PAPERLIB_CLAIMS_LOG", str(log))
    claim("A beats B", 3.0, at_least=1.0)
    with pytest.raises(ClaimError):
        claim("C beats D", 0.0, at_least=1.0)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["statement"], r["margin"]) for r in records] == [("A beats B", 2.0), ("C beats D", -1.0)]
    assert records[0]["relation"] == "≥" and records[0]["bound"] == 1.0
