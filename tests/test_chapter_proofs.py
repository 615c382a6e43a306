"""Every chapter's derivation checks, run on their own (`make proofs`), and shown able to fail.

A chapter tags its cells: `parameters` and `setup` (imports, seeding), and `proof` for every cell
that checks a derivation. These tests execute just those cells, in order, in one namespace, with
no training, so the whole book's proofs are checked in seconds.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import sympy as sp

from paperlib import proofs

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "chapters").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
KEEP = {"parameters", "setup", "proof"}


def proof_cells(notebook: Path) -> list[str]:
    nb = nbformat.read(notebook, as_version=4)
    return [c.source for c in nb.cells
            if c.cell_type == "code" and KEEP & set(c.metadata.get("tags", []))]


def run_cells(sources: list[str], name: str) -> dict:
    namespace = {"__name__": f"proofs_of_{name}", "display": lambda *args, **kwargs: None}
    for number, source in enumerate(sources):
        code = compile(source, f"<{name} proof cell {number}>", "exec")
        exec(code, namespace)  # noqa: S102 - the book's own notebooks
    return namespace


def ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=ids)
def test_every_derivation_in_the_chapter_holds(notebook):
    sources = proof_cells(notebook)
    assert any("Derivation(" in s for s in sources), f"{notebook}: no cell tagged 'proof'"
    run_cells(sources, notebook.stem)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=ids)
def test_every_check_rejects_a_corrupted_step(notebook, monkeypatch):
    """Corrupt the last step of every derivation the chapter checks (an equality shifted by
    1/7, an inequality reversed): each corrupted chain must raise StepError. Pitfalls, the
    derivations meant to fail, are left alone; the real checks run as usual."""
    original = proofs.Derivation.check
    survivors, corrupted = [], []

    def check(self):
        result = original(self)  # a pitfall raises here, as refute() expects
        verdicts = [step.verdict for step in self.steps]
        last = self.steps[-1]
        saved = (last.expr, last.relation)
        if last.relation == "=":
            last.expr = last.expr + sp.Rational(1, 7)
        else:
            last.relation = "<=" if last.relation == ">=" else ">="
        try:
            original(self)
        except proofs.StepError:
            corrupted.append(self.title)
        else:
            survivors.append(self.title or repr(self))
        finally:
            last.expr, last.relation = saved
            for step, verdict in zip(self.steps, verdicts):
                step.verdict = verdict
        return result

    monkeypatch.setattr(proofs.Derivation, "check", check)
    run_cells(proof_cells(notebook), notebook.stem)
    assert corrupted, "no derivation was checked"
    assert not survivors, f"checks that accepted a corrupted step: {survivors}"


def test_dropping_the_half_in_the_chapters_gaussian_kl_fails():
    """The chapter's own check cell, edited the way a reader might slip: drop the 1/2."""
    sources = proof_cells(ROOT / "chapters" / "generative" / "vae.ipynb")
    (index,) = [k for k, s in enumerate(sources) if "Gaussian KL, one dimension" in s]
    right = "(mu**2 + sigma**2 - sp.log(sigma**2) - 1) / 2"
    assert right in sources[index]
    sources[index] = sources[index].replace(right, "(mu**2 + sigma**2 - sp.log(sigma**2) - 1)")
    with pytest.raises(proofs.StepError) as error:
        run_cells(sources[:index + 1], "vae")
    assert error.value.number == 3 and "collect terms" in str(error.value)
