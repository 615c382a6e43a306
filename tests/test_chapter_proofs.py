"""Every chapter's derivation checks, run on their own (`make proofs`), and shown able to fail.

A chapter tags its cells: `parameters` and `setup` (imports, seeding), and `proof` for every cell
that checks a derivation. These tests execute just those cells, in order, in one namespace, with
no training, so the whole book's proofs are checked in seconds.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import nbformat
import pytest
import sympy as sp

from paperlib import proofs

from conftest import CHAPTER_NOTEBOOKS, PROOF_COVERAGE

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = CHAPTER_NOTEBOOKS
KEEP = {"parameters", "setup", "proof"}
ORIGINAL_CHECK = proofs.Derivation.check  # before any test patches it


def proof_cells(notebook: Path) -> list[str]:
    nb = nbformat.read(notebook, as_version=4)
    return [c.source for c in nb.cells
            if c.cell_type == "code" and KEEP & set(c.metadata.get("tags", []))]


def run_cells(sources: list[str], name: str) -> dict:
    namespace = {"__name__": f"proofs_of_{name}", "display": lambda *args, **kwargs: None,
                 "sp": sp, "Derivation": proofs.Derivation}
    for number, source in enumerate(sources):
        code = compile(source, f"<{name} proof cell {number}>", "exec")
        exec(code, namespace)  # noqa: S102 - the book's own notebooks
    return namespace


def ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


class Ledger:
    """Every Derivation a chapter builds, and what became of it: checked, refuted, or neither."""

    def __init__(self, monkeypatch):
        self.built, self.checked, self.refuted = [], set(), set()
        init, check, refute = proofs.Derivation.__init__, proofs.Derivation.check, proofs.Derivation.refute
        ledger = self

        def tracked_init(self, *args, **kwargs):
            init(self, *args, **kwargs)
            ledger.built.append(self)

        def tracked_check(self):
            result = check(self)  # raises for a wrong step: then it is not counted as checked
            ledger.checked.add(id(self))
            return result

        def tracked_refute(self):
            ledger.refuted.add(id(self))
            return refute(self)

        monkeypatch.setattr(proofs.Derivation, "__init__", tracked_init)
        monkeypatch.setattr(proofs.Derivation, "check", tracked_check)
        monkeypatch.setattr(proofs.Derivation, "refute", tracked_refute)

    @property
    def proofs(self) -> list[proofs.Derivation]:
        """The derivations that stand for a true statement (pitfalls, refuted, are not proofs)."""
        return [d for d in self.built if id(d) not in self.refuted]

    def never_checked(self) -> list[str]:
        return [d.title or repr(d) for d in self.proofs if id(d) not in self.checked]


def method(derivation: proofs.Derivation, step) -> str:
    if step.verdict is None or not step.verdict.holds:
        return "unchecked"
    if (derivation.scope or "").startswith("instance"):
        return "instance"
    return step.verdict.method


def coverage(ledger: Ledger) -> list[dict]:
    """The proof-coverage record of one chapter (the format of _build/proof-coverage.json)."""
    relation = {"=": "=", "<=": "<=", ">=": ">="}
    return [{"title": d.title, "label": d.label, "scope": d.scope or "undeclared",
             "steps": [{"tex": proofs._tex(d.display.get(n, step.expr)) if n not in d.display
                        else d.display[n], "relation": relation[step.relation],
                        "method": method(d, step),
                        "points": step.verdict.points if step.verdict and step.verdict.holds else 0}
                       for n, step in enumerate(d.steps, start=1)]}
            for d in ledger.proofs]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=ids)
def test_every_derivation_holds_and_every_corrupted_step_fails(notebook, monkeypatch, pytestconfig):
    """Run the chapter's proof cells (one execution serves both halves of the test):

    1. every check passes, and every Derivation built for a true statement is checked: one that
       is built and displayed but never checked proves nothing; every Derivation declares its scope;
       no step shows the reader the row before it again ("A = A");
    2. each step of each checked derivation, corrupted one at a time (an equality shifted by 1/7,
       an inequality reversed), makes the check raise StepError. Only the corrupted step and the
       one after it are re-checked: the steps before it are unchanged and already checked.
       Pitfalls, the derivations meant to fail (refuted), are left alone.
    """
    sources = proof_cells(notebook)
    assert any("Derivation(" in s for s in sources), f"{notebook}: no cell tagged 'proof'"
    ledger = Ledger(monkeypatch)
    run_cells(sources, notebook.stem)
    pytestconfig.stash.setdefault(PROOF_COVERAGE, {})[notebook.stem] = coverage(ledger)
    assert ledger.proofs, "the chapter checks no derivation"
    assert not ledger.never_checked(), f"built but never checked or refuted: {ledger.never_checked()}"
    undeclared = [d.title or repr(d) for d in ledger.built if not d.scope]
    assert not undeclared, f"no scope= ('general', 'instance: ...', 'dimension: ...'): {undeclared}"
    same = identical_steps(ledger.proofs)
    assert not same, "steps that show the row before them again (A = A):\n" + \
        "\n".join(same)

    survivors, caught = [], 0
    for d in ledger.proofs:
        for n, step in enumerate(d.steps):
            window = copy.copy(d)
            window.start = d.start if n == 0 else d.steps[n - 1].expr
            window.steps = [corrupted(step)] + [copy.copy(s) for s in d.steps[n + 1:n + 2]]
            try:
                ORIGINAL_CHECK(window)
            except proofs.StepError:
                caught += 1
            except (TypeError, ValueError) as error:  # a corruption SymPy cannot even form
                survivors.append(f"{d.title or repr(d)}, step {n + 1}: cannot be corrupted ({error})")
            else:
                survivors.append(f"{d.title or repr(d)}, step {n + 1} ({step.why})")
    assert not survivors, "checks that accepted a corrupted step:\n" + "\n".join(survivors)
    assert caught, "no step was corrupted"


def identical_steps(derivations) -> list[str]:
    """Steps that show the reader the same expression as the row before them, and are the same
    SymPy expression: "A = A", a row that checks nothing and teaches nothing. (A step that is the
    same SymPy expression but is displayed differently, through ``tex=``, is a rewriting that
    SymPy carried out while building the expression, and the check stands.)"""
    found = []
    for d in derivations:
        previous, shown = d.start, proofs._tex(d.display.get(0, d.start))
        for n, step in enumerate(d.steps, start=1):
            tex = proofs._tex(d.display.get(n, step.expr))
            if step.expr == previous and tex == shown:
                found.append(f"{d.title or repr(d)}, step {n} ({step.why or 'no reason given'})")
            previous, shown = step.expr, tex
    return found


def test_a_step_identical_to_the_one_before_is_reported():
    x = sp.Symbol("x")
    rewritten = proofs.Derivation(x * (x + 1), scope="general", title="t").step(
        (x + 1) * x, why="commute")  # SymPy builds both as the same expression
    assert identical_steps([rewritten]) == ["t, step 1 (commute)"]
    assert not identical_steps([proofs.Derivation(x * (x + 1)).step(x**2 + x, why="expand")])


def corrupted(step):
    """The step made wrong: an equality shifted by 1/7, an inequality turned round."""
    wrong = copy.copy(step)
    if step.relation == "=":
        wrong.expr = step.expr + sp.Rational(1, 7)
    else:
        wrong.relation = "<=" if step.relation == ">=" else ">="
    wrong.verdict = None
    return wrong


def test_the_ledger_catches_a_derivation_that_is_never_checked(monkeypatch):
    ledger = Ledger(monkeypatch)
    run_cells(["x = sp.Symbol('x')\nshown = Derivation(x**2).step(x * x)\n"
               "Derivation(x).step(x).check()\nDerivation(x).step(x + 1).refute()"], "demo")
    assert len(ledger.built) == 3 and len(ledger.proofs) == 2
    assert ledger.never_checked() == [repr(ledger.built[0])]


def test_a_step_that_survives_corruption_is_reported(monkeypatch, pytestconfig):
    """The control for the mutation half: a '>=' step between equal expressions survives being
    turned round, so the test must name it."""
    source = ("x = sp.Symbol('x')\nDerivation(x**2, scope='general').step(x * x, rel='>=', why='weak')"
              ".check()")
    monkeypatch.setattr(sys.modules[__name__], "proof_cells", lambda notebook: [source])
    with pytest.raises(AssertionError, match=r"step 1 \(weak\)"):
        test_every_derivation_holds_and_every_corrupted_step_fails(Path("demo.ipynb"), monkeypatch,
                                                                  pytestconfig)
    pytestconfig.stash[PROOF_COVERAGE].pop("demo", None)


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


# --- What a proof block displays is what its check cell checked (issue 14)

STATEMENT = re.compile(r"^:::\{prf:(theorem|lemma|proposition|corollary)\}.*?\n(.*?)^:::\s*$",
                       re.M | re.S)
PROOF = re.compile(r"^:::\{prf:proof\}[^\n]*\n(.*?)^:::\s*$", re.M | re.S)
GLUE_MATH = re.compile(r"^```\{glue:math\}\s+(\S+)\s*$", re.M)
SHOW = re.compile(r"\.show\(\s*[\"']([^\"']+)[\"']\s*(?:,\s*(?:part\s*=\s*)?[\"']([^\"']+)[\"'])?")
DISPLAY_MATH = re.compile(r"\$\$|^```\{math\}|\\begin\{(?:aligned|align|equation)", re.M)


def proof_blocks(notebook: Path) -> list[tuple[str | None, str]]:
    """Each prf:proof block's text with the label of the statement before it, in page order."""
    nb = nbformat.read(notebook, as_version=4)
    text = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    events = [(m.start(), "statement", re.search(r"^:label:\s*(\S+)", m.group(2), re.M))
              for m in STATEMENT.finditer(text)]
    events += [(m.start(), "proof", m.group(1)) for m in PROOF.finditer(text)]
    blocks, label = [], None
    for _, kind, payload in sorted(events, key=lambda e: e[0]):
        if kind == "statement":
            label = payload.group(1) if payload else None
        else:
            blocks.append((label, payload))
    return blocks


def glued_keys(notebook: Path) -> set[str]:
    """The keys the chapter's proof cells glue with Derivation.show(label[, part])."""
    return {label if part is None else f"{label}:{part}"
            for source in proof_cells(notebook) for label, part in SHOW.findall(source)
            for part in [part or None]}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=ids)
def test_every_proof_block_shows_the_derivation_that_checks_it(notebook):
    """Each prf:proof pastes at least one checked Derivation of its own statement
    ({glue:math} with the statement's label), and types no display maths of its own: every
    relation a proof displays is a checked step. Every glued derivation is shown by a proof."""
    blocks = proof_blocks(notebook)
    assert blocks, f"{notebook.name}: no prf:proof block"
    glued, pasted, problems = glued_keys(notebook), set(), []
    for number, (label, body) in enumerate(blocks, start=1):
        keys = GLUE_MATH.findall(body)
        pasted |= set(keys)
        where = f"proof {number} (of {label or 'an unlabelled statement'})"
        if not keys:
            problems.append(f"{where} pastes no derivation ({{glue:math}})")
        for key in keys:
            if key.split(":")[0] != label:
                problems.append(f"{where} pastes {key!r}, which belongs to another statement")
            if key not in glued:
                problems.append(f"{where} pastes {key!r}, which no proof cell shows")
        if DISPLAY_MATH.search(GLUE_MATH.sub("", body)):
            problems.append(f"{where} types display maths of its own instead of a checked step")
    problems += [f"{key!r} is shown by a check cell but pasted by no proof"
                 for key in sorted(glued - pasted)]
    assert not problems, "\n".join(problems)


def test_the_proof_block_test_catches_a_typed_equation_and_a_missing_paste(tmp_path):
    """The control: a proof that types its own display maths, and one that pastes nothing."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(
                    ":::{prf:lemma} L\n:label: lem-a\n\nx.\n:::\n\n:::{prf:proof}\n1. Expand.\n\n"
                    "$$\na = b\n$$\n\n```{glue:math} lem-a\n```\n:::\n\n"
                    ":::{prf:lemma} M\n:label: lem-b\n\ny.\n:::\n\n:::{prf:proof}\nObvious.\n:::"),
                nbformat.v4.new_code_cell("d.check().show('lem-a')", metadata={"tags": ["proof"]})]
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(AssertionError) as error:
        test_every_proof_block_shows_the_derivation_that_checks_it(path)
    assert "proof 1 (of lem-a) types display maths" in str(error.value)
    assert "proof 2 (of lem-b) pastes no derivation" in str(error.value)
