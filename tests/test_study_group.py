"""What a study group needs from every chapter, and the errata page kept in step with the chapters.

Each chapter must open with a learning-goals box, set at least four exercises (two of them "derive it
yourself" cells marked by `check_answer`), ask discussion questions, end with a summary, and offer an
interactive control that the website replaces with a static figure. Every entry of the errata page
must link to a check that exists in a chapter. Which entries the page has is decided by the audit of the
notes (notes_audit.md, tests/test_audit.py): a Pitfall about a mistake the notes do not make stays in its
chapter and is not an errata entry.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from conftest import CHAPTER_NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = CHAPTER_NOTEBOOKS

PITFALL_NAME = re.compile(r"^:name:\s*(pitfall-[\w-]+)\s*$", re.M)
ERRATA_LINK = re.compile(r"\{(ref|prf:ref|eq|doc)\}`(?:[^`<]*<)?([^`<>]+)>?`")
EQUATION_LABEL = re.compile(r"\$\$\s*\(([\w-]+)\)\s*$", re.M)
CHAPTER_LABEL = re.compile(r"^:(?:label|name):\s*(\S+)\s*$", re.M)


def _ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _cells(notebook: Path) -> list:
    return nbformat.read(notebook, as_version=4).cells


def _markdown(cells) -> str:
    return "\n".join(c.source for c in cells if c.cell_type == "markdown")


# --- the checks, as functions of a notebook's cells, so that the tests below can also feed them
# --- a chapter with a part missing and see them fail.

def learning_goals(cells) -> bool:
    head = [c for c in cells[:3] if c.cell_type == "markdown"]
    return any(re.search(r":::\{admonition\} Learning goals.*\n:class:.*\blearning-goals\b", c.source)
               for c in head)


def exercises(cells) -> list[str]:
    return re.findall(r":::\{exercise\}\s*\n:label:\s*(\S+)", _markdown(cells))


def hidden_solutions(cells) -> list[str]:
    md = _markdown(cells)
    found = re.findall(r":::\{solution(?:-start)?\}\s*(\S+)\s*\n:class:\s*dropdown", md)
    return found


READER_CHECK = re.compile(r"check_answer\(\s*[\"']([^\"']+)[\"']\s*,\s*my_answer\s*\)")


def derive_it_yourself(cells) -> list[str]:
    """Code cells in which the reader types an answer that check_answer marks by exercise label."""
    return [c.source for c in cells if c.cell_type == "code"
            and re.search(r"^my_answer\s*=\s*None\b", c.source, re.M)
            and READER_CHECK.search(c.source)]


def expected_answer_in_view(source: str) -> list[str]:
    """The lines of a reader's cell other than `my_answer = None` and the check_answer call:
    whatever else it computes (an expected answer, say) is in the reader's view."""
    lines = [line.split("#")[0].strip() for line in source.splitlines()]
    return [line for line in lines if line and not re.match(r"^my_answer\s*=\s*None$", line)
            and not READER_CHECK.fullmatch(line)]


def discussion_questions(cells) -> list[str]:
    md = _markdown(cells)
    match = re.search(r"^#+ Discussion questions\s*\n(.*?)(?=^#|\Z)", md, re.M | re.S)
    return re.findall(r"^\s*\d+\.\s+\S", match.group(1), re.M) if match else []


def summary(cells) -> bool:
    return re.search(r"^## Summary\s*$", _markdown(cells), re.M) is not None


def widgets_with_static_figure(cells) -> list[int]:
    """Indices of widget cells hidden from the website and preceded by a cell that draws a figure."""
    found = []
    for k, cell in enumerate(cells):
        if cell.cell_type == "code" and "widgets.interact" in cell.source \
                and "remove-cell" in cell.metadata.get("tags", []):
            before = [c for c in cells[:k] if c.cell_type == "code"]
            if before and any("image/png" in out.get("data", {}) for out in before[-1].get("outputs", [])):
                found.append(k)
    return found


def pitfalls(cells) -> list[str]:
    """Pitfall names, each required to be followed directly by the code cell that checks it."""
    names = []
    for k, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        for name in PITFALL_NAME.findall(cell.source):
            following = cells[k + 1] if k + 1 < len(cells) else None
            assert following is not None and following.cell_type == "code", (
                f"{name}: a Pitfall note must be followed by the check cell that shows the wrong version failing")
            names.append(name)
    return names


# --- every chapter


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids)
def test_chapter_has_what_a_study_group_needs(notebook: Path) -> None:
    cells = _cells(notebook)
    missing = []
    if not learning_goals(cells):
        missing.append("a learning-goals box (admonition 'Learning goals...' with class learning-goals)")
    labels = exercises(cells)
    if len(labels) < 4:
        missing.append(f"at least 4 exercises (found {len(labels)})")
    unsolved = set(labels) - set(hidden_solutions(cells))
    if unsolved:
        missing.append(f"a hidden solution for {sorted(unsolved)}")
    if len(derive_it_yourself(cells)) < 2:
        missing.append(f"at least 2 derive-it-yourself check_answer cells (found {len(derive_it_yourself(cells))})")
    if not discussion_questions(cells):
        missing.append("a numbered list under 'Discussion questions'")
    if not summary(cells):
        missing.append("a '## Summary' section")
    if not widgets_with_static_figure(cells):
        missing.append("an ipywidgets control (tagged remove-cell) after a static figure")
    assert not missing, f"{notebook.name} lacks: " + "; ".join(missing)


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids)
def test_derive_it_yourself_cells_check_the_readers_answer(notebook: Path) -> None:
    """Each blank is answered inside its solution by a cell that asserts check_answer is satisfied,
    so the expected expression is known to be right (and tests/test_chapter_proofs.py runs it)."""
    cells = _cells(notebook)
    solved = [c.source for c in cells if c.cell_type == "code"
              and re.search(r"^assert check_answer\(", c.source, re.M)
              and "proof" in c.metadata.get("tags", [])]
    assert len(solved) >= len(derive_it_yourself(cells)) >= 2


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids)
def test_expected_answers_stay_out_of_the_readers_view(notebook: Path) -> None:
    """A blank is `my_answer = None` and `check_answer("<label>", my_answer)`, nothing else: the
    expected answer lives in paperlib.answers under the exercise's own label."""
    from paperlib import answers

    cells = _cells(notebook)
    labels = set(exercises(cells))
    problems = []
    for source in derive_it_yourself(cells):
        label = READER_CHECK.search(source).group(1)
        if label not in answers.ANSWERS:
            problems.append(f"{label!r}: no expected answer in paperlib.answers")
        if label not in labels:
            problems.append(f"{label!r}: not the label of an exercise of this chapter")
        extra = expected_answer_in_view(source)
        if extra:
            problems.append(f"{label!r}: the reader's cell also runs {extra}")
    assert not problems, "\n".join(problems)


def test_a_blank_that_computes_its_answer_in_view_is_caught() -> None:
    source = ('a, b = sp.symbols("a b")\nexpected = a / (a + b)\nmy_answer = None\n'
              'check_answer("gan-ex-d-star", my_answer)')
    assert expected_answer_in_view(source) == ['a, b = sp.symbols("a b")', "expected = a / (a + b)"]
    assert expected_answer_in_view('my_answer = None  # type here\ncheck_answer("x", my_answer)') == []


# --- the errata page: the audit of the notes decides its entries (tests/test_audit.py); here, that
# --- every entry links to a check that exists in a chapter, and that Pitfall names stay unique.


def test_pitfall_names_are_unique() -> None:
    in_chapters: dict[str, str] = {}
    for notebook in CHAPTERS:
        for name in pitfalls(_cells(notebook)):
            assert name not in in_chapters, f"{name} is used twice ({in_chapters[name]}, {notebook.name})"
            in_chapters[name] = notebook.name
    assert in_chapters, "no chapter has a named Pitfall note"


def errata_link_problems(errata: str, labels: set[str]) -> list[str]:
    """Errata table rows that link to no chapter check, or to a label, equation or page that does not exist."""
    problems = []
    for line in errata.splitlines():
        if not line.startswith("|") or re.match(r"^\|\s*(the notes say|-)", line):
            continue
        found = ERRATA_LINK.findall(line)
        if not found and "check:" not in line:
            problems.append(f"no chapter check: {line[:70]!r}")
        for role, name in found:
            if role == "doc":
                exists = any((ROOT / f"{name}{ext}").exists() for ext in (".md", ".ipynb"))
            else:
                exists = (f"eq:{name}" if role == "eq" else name) in labels
            if not exists:
                problems.append(f"links to {{{role}}}`{name}`, which no chapter defines")
    return problems


def _chapter_labels() -> set[str]:
    """Theorem, Pitfall and exercise labels, and equation labels as 'eq:<label>'."""
    labels = set()
    for notebook in CHAPTERS:
        for cell in _cells(notebook):
            if cell.cell_type == "markdown":
                labels |= set(CHAPTER_LABEL.findall(cell.source))
                labels |= {f"eq:{name}" for name in EQUATION_LABEL.findall(cell.source)}
    return labels


def test_errata_entries_link_to_checks_that_exist() -> None:
    errata = (ROOT / "errata.md").read_text()
    labels = _chapter_labels()
    assert errata.count("\n|") > 2, "the errata page has no entries"
    problems = errata_link_problems(errata, labels)
    assert not problems, "\n".join(problems)
    row = next(line for line in errata.splitlines() if line.startswith("|") and ERRATA_LINK.search(line))
    assert errata_link_problems(ERRATA_LINK.sub("{ref}`x <no-such-pitfall>`", row), labels)


def test_every_pitfall_note_in_a_chapter_is_named() -> None:
    """An unnamed Pitfall could not be linked from the audit or the errata page."""
    for notebook in CHAPTERS:
        for cell in _cells(notebook):
            if cell.cell_type == "markdown" and re.search(r"\{admonition\}\s*Pitfall", cell.source):
                assert PITFALL_NAME.search(cell.source), f"{notebook.name}: unnamed Pitfall: {cell.source[:80]!r}"


# --- the checks above can fail


def _vae_cells():
    return _cells(ROOT / "chapters" / "generative" / "vae.ipynb")


def test_the_checks_fail_on_a_chapter_with_parts_removed() -> None:
    cells = _vae_cells()
    assert learning_goals(cells) and summary(cells) and discussion_questions(cells)
    assert len(exercises(cells)) >= 4 and len(derive_it_yourself(cells)) >= 2
    assert widgets_with_static_figure(cells)

    stripped = [nbformat.from_dict(dict(c)) for c in cells]
    for c in stripped:
        if c.cell_type == "markdown":
            c.source = (c.source.replace("learning-goals", "tip").replace("## Summary", "## Recap")
                        .replace("Discussion questions", "Questions").replace(":::{exercise}", ":::{note}"))
        if c.cell_type == "code":
            c.source = c.source.replace("my_answer = None", "my_answer = 'x'").replace(
                "widgets.interact", "widgets.fixed")
    assert not learning_goals(stripped)
    assert not summary(stripped)
    assert not discussion_questions(stripped)
    assert exercises(stripped) == []
    assert derive_it_yourself(stripped) == []
    assert widgets_with_static_figure(stripped) == []


def test_a_pitfall_without_its_check_cell_is_rejected() -> None:
    cells = _vae_cells()
    k = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and PITFALL_NAME.search(c.source))
    broken = cells[:k + 1] + [nbformat.v4.new_markdown_cell("prose instead of the check")] + cells[k + 1:]
    with pytest.raises(AssertionError, match="followed by the check cell"):
        pitfalls(broken)


# --- the study-group page: one session plan per chapter

PLAN_PARTS = ("Before the session.", "Agenda (60 minutes).", "Run live.", "At the board.", "Discuss.")


def session_plans(text: str) -> dict[str, str]:
    """The study-group page's sections, keyed by the chapter each one links with {doc}."""
    plans = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        doc = re.search(r"\{doc\}`(chapters/[\w/]+)`", section)
        if doc:
            plans[doc.group(1)] = section
    return plans


def plan_problems(plan: str, exercise_labels: list[str]) -> list[str]:
    problems = [f"no '**{part}**'" for part in PLAN_PARTS if f"**{part}**" not in plan]
    board = re.search(r"\*\*At the board\.\*\*(.*?)(?=\*\*|\Z)", plan, re.S)
    refs = re.findall(r"\{ref\}`([\w-]+)`", board.group(1)) if board else []
    if not set(refs) & set(exercise_labels):
        problems.append("'At the board' names none of the chapter's exercises")
    return problems


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids)
def test_study_group_page_has_a_session_plan_for_the_chapter(notebook: Path) -> None:
    plans = session_plans((ROOT / "study_group.md").read_text())
    doc = str(notebook.relative_to(ROOT).with_suffix(""))
    assert doc in plans, f"study_group.md has no section linking {{doc}}`{doc}`"
    problems = plan_problems(plans[doc], exercises(_cells(notebook)))
    assert not problems, f"{doc}: " + "; ".join(problems)


def test_session_plan_check_can_fail() -> None:
    plans = session_plans((ROOT / "study_group.md").read_text())
    plan = plans["chapters/generative/vae"]
    labels = exercises(_vae_cells())
    assert plan_problems(plan, labels) == []
    assert plan_problems(plan.replace("**Run live.**", "Run live:"), labels) == ["no '**Run live.**'"]
    assert plan_problems(plan, ["some-other-exercise"])
