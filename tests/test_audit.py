"""The audit of the notes (notes_audit.md) and the errata page derived from it (errata.md).

notes_audit.md reads every file of ``../shared/seeds`` (beside the repository) line by line and gives each
mathematical statement a row: its line, a short quote, a verdict, why, and where the book checks it. The
errata page is the list of the audit's *corrected* and *imprecise* rows. These tests fail when

* a row has no verdict from the fixed list, or links to nothing (no reference and no ``check: ...``);
* a reference names a label, equation or page that does not exist;
* the counts at the top of a note's section (or in the summary table) disagree with its rows;
* a note file is not covered, the notes are out of order, a line number is past the end of its note or
  points at a blank line, or a word-for-word quote is not on the lines the row gives;
* an errata entry has no audit row, links to a row that is neither corrected nor imprecise, or has no
  chapter check; or a corrected or imprecise row is missing from the errata page.

Where the notes are not beside the clone, the tests that read them skip with a reason; CI has them.
The last tests feed the checks doctored pages and see each one fail.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CHAPTER_NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"
AUDIT = ROOT / "notes_audit.md"
ERRATA = ROOT / "errata.md"

VERDICTS = ("correct", "corrected", "imprecise", "not checkable")
ERRATA_SECTIONS = ("Adam", "Spatial transformer networks", "Residual networks", "Variational auto-encoders",
                   r"$\beta$-VAE", "Generative adversarial networks", "Normalizing flows", "MADE")

ROW = re.compile(r'^\|\s*<a id="audit-(?P<id>(?P<note>\d{3})-(?P<line>\d+)[a-z]?)"></a>(?P<shown>\d+)\s*\|(?P<rest>.*)\|\s*$')
NOTE_HEAD = re.compile(r"^## Note (\d{3}) \(`([^`]+)`\)\s*$", re.M)
COUNTS = re.compile(r"\*\*Counts:\*\* (\d+) statements: (\d+) correct, (\d+) corrected, (\d+) imprecise, "
                    r"(\d+) not checkable\.")
SUMMARY = re.compile(r"^\| \{ref\}`(\d{3}) <audit-\d{3}>` \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|\s*$", re.M)
ROLE = re.compile(r"\{(prf:ref|ref|eq|doc)\}`([^`]*)`")
AUDIT_LINK = re.compile(r'<a href="notes_audit\.html#audit-([\w-]+)">')
LOCAL_LINK = re.compile(r'<a href="#audit-([\w-]+)">')
QUOTED = re.compile(r"“([^”]+)”")


@dataclass
class Row:
    id: str
    note: str
    line: int
    quote: str
    verdict: str
    why: str
    check: str


def cells(rest: str) -> list[str]:
    return [c.strip() for c in rest.split("|")]


def audit_rows(text: str) -> list[Row]:
    rows = []
    for line in text.splitlines():
        m = ROW.match(line)
        if m:
            quote, verdict, why, check = (cells(m["rest"]) + ["", "", "", ""])[:4]
            rows.append(Row(m["id"], m["note"], int(m["shown"]), quote, verdict, why, check))
    return rows


def note_sections(text: str) -> list[tuple[str, str, str]]:
    """(note number, file name, the section's text) for every '## Note' section, in page order."""
    heads = list(NOTE_HEAD.finditer(text))
    return [(h[1], h[2], text[h.end():heads[k + 1].start() if k + 1 < len(heads) else len(text)])
            for k, h in enumerate(heads)]


def chapter_targets() -> tuple[set[str], set[str]]:
    """Labels (theorems, pitfalls, exercises, targets) and equation labels defined in the chapters."""
    labels, equations = set(), set()
    for notebook in CHAPTER_NOTEBOOKS:
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            source = "".join(cell["source"])
            labels |= set(re.findall(r"^:(?:label|name):\s*(\S+)\s*$", source, re.M))
            labels |= set(re.findall(r"^\(([\w-]+)\)=\s*$", source, re.M))
            equations |= set(re.findall(r"\$\$\s*\(([\w-]+)\)\s*$", source, re.M))
    return labels, equations


def role_target(role: str, body: str) -> str:
    m = re.fullmatch(r"[^<]*<([^>]+)>", body)
    return (m[1] if m else body).strip()


def reference_problems(where: str, text: str, labels: set[str], equations: set[str]) -> list[str]:
    problems = []
    for role, body in ROLE.findall(text):
        target = role_target(role, body)
        if role == "eq":
            ok = target in equations
        elif role == "doc":
            ok = any((ROOT / f"{target}{ext}").exists() for ext in (".md", ".ipynb"))
        elif target.startswith("audit-"):
            ok = True   # the audit's own section labels; checked by the page's structure
        else:
            ok = target in labels
        if not ok:
            problems.append(f"{where}: {{{role}}}`{body}` names nothing that exists")
    return problems


def row_problems(text: str, labels: set[str], equations: set[str]) -> list[str]:
    problems = []
    rows = audit_rows(text)
    if not rows:
        return ["the audit has no rows"]
    ids = [r.id for r in rows]
    problems += [f"{i}: anchor used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for r in rows:
        if int(re.match(r"\d+", r.id.split("-")[1])[0]) != r.line:
            problems.append(f"{r.id}: anchor and line number disagree ({r.line})")
        if r.verdict not in VERDICTS:
            problems.append(f"{r.id}: verdict {r.verdict!r} is not one of {VERDICTS}")
        if not r.quote:
            problems.append(f"{r.id}: no quote")
        if not ROLE.search(r.check) and not re.match(r"check:\s*\S", r.check):
            problems.append(f"{r.id}: links to nothing (no reference and no 'check: ...')")
        problems += reference_problems(r.id, r.check + " " + r.why, labels, equations)
    for target in LOCAL_LINK.findall(text):
        if target not in ids:
            problems.append(f"link to #audit-{target}, which is no row")
    return problems


def tally(rows: list[Row]) -> tuple[int, ...]:
    return (len(rows),) + tuple(sum(r.verdict == v for r in rows) for v in VERDICTS)


def count_problems(text: str) -> list[str]:
    problems = []
    sections = note_sections(text)
    if not sections:
        return ["the audit has no '## Note' sections"]
    summary = {m[1]: tuple(int(x) for x in m.groups()[1:]) for m in SUMMARY.finditer(text)}
    for note, name, body in sections:
        found = COUNTS.search(body)
        actual = tally(audit_rows(body))
        if not found:
            problems.append(f"note {note}: no '**Counts:** ...' line")
        elif tuple(int(x) for x in found.groups()) != actual:
            problems.append(f"note {note}: counts say {found.group(0)!r}, rows give {actual}")
        if summary.get(note) != actual:
            problems.append(f"note {note}: summary table says {summary.get(note)}, rows give {actual}")
        if any(r.note != note for r in audit_rows(body)):
            problems.append(f"note {note}: holds rows of another note")
    return problems


def _normalise(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().lower()


def coverage_problems(text: str, seeds: Path) -> list[str]:
    problems = []
    files = sorted(p.name for p in seeds.glob("*.txt"))
    sections = note_sections(text)
    names = [name for _, name, _ in sections]
    if names != files:
        problems.append(f"the audit covers {names}, the notes are {files} (each once, in order)")
    for note, name, body in sections:
        path = seeds / name
        if not path.exists() or name[:3] != note:
            problems.append(f"note {note}: {name} is not a note file numbered {note}")
            continue
        lines = path.read_text().split("\n")
        rows = audit_rows(body)
        if not rows:
            problems.append(f"note {note}: no rows")
        if [r.line for r in rows] != sorted(r.line for r in rows):
            problems.append(f"note {note}: rows are not in line order")
        for r in rows:
            if not 1 <= r.line <= len(lines) or not lines[r.line - 1].strip():
                problems.append(f"{r.id}: line {r.line} is blank or past the end of {name}")
                continue
            # A word-for-word quote (in curly quotes, with no maths) must be on the row's lines.
            near = _normalise(" ".join(lines[max(0, r.line - 3):r.line + 5]))
            for quoted in QUOTED.findall(r.quote):
                if "$" in quoted or "…" in quoted or "[" in quoted:
                    continue
                if _normalise(quoted) not in near:
                    problems.append(f"{r.id}: “{quoted}” is not on lines {r.line - 2}-{r.line + 5} of {name}")
    return problems


def errata_rows(text: str) -> list[tuple[str, str]]:
    """(section, row) for every table row of the errata page."""
    found, section = [], None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("|") and section and not re.match(r"^\|\s*(the notes say|-)", line):
            found.append((section, line))
    return found


def errata_problems(errata: str, audit: str, labels: set[str], equations: set[str]) -> list[str]:
    problems = []
    by_id = {r.id: r for r in audit_rows(audit)}
    linked: list[str] = []
    sections = [line[3:].strip() for line in errata.splitlines() if line.startswith("## ")]
    if sections != [s for s in ERRATA_SECTIONS if s in sections] or len(set(sections)) != len(sections):
        problems.append(f"errata sections {sections} are not in the order {ERRATA_SECTIONS}")
    rows = errata_rows(errata)
    if not rows:
        problems.append("the errata page has no entries")
    for section, line in rows:
        ids = AUDIT_LINK.findall(line)
        head = line[:60]
        if not ids:
            problems.append(f"errata ({section}) {head!r}: no audit row")
        for i in ids:
            if i not in by_id:
                problems.append(f"errata ({section}) links audit-{i}, which is no audit row")
            elif by_id[i].verdict not in ("corrected", "imprecise"):
                problems.append(f"errata ({section}) links audit-{i}, whose verdict is {by_id[i].verdict!r}")
        linked += ids
        outside = AUDIT_LINK.sub("", line)
        if not ROLE.search(outside) and "check:" not in outside:
            problems.append(f"errata ({section}) {head!r}: no chapter check")
        problems += reference_problems(f"errata ({section})", outside, labels, equations)
    for i in sorted({i for i in linked if linked.count(i) > 1}):
        problems.append(f"audit-{i} is listed twice on the errata page")
    for r in by_id.values():
        if r.verdict in ("corrected", "imprecise") and r.id not in linked:
            problems.append(f"audit-{r.id} ({r.verdict}) has no errata entry")
    return problems


# --- the pages as they are


@pytest.fixture(scope="module")
def audit() -> str:
    return AUDIT.read_text()


@pytest.fixture(scope="module")
def targets() -> tuple[set[str], set[str]]:
    return chapter_targets()


def needs_seeds() -> None:
    if not SEEDS.is_dir() or not any(SEEDS.glob("*.txt")):
        pytest.skip(f"the notes are not at {SEEDS} (CI has a copy of shared/ beside the clone)")


def test_every_row_has_a_verdict_and_a_link_that_exists(audit, targets) -> None:
    problems = row_problems(audit, *targets)
    assert not problems, "\n".join(problems)


def test_counts_agree_with_the_rows(audit) -> None:
    problems = count_problems(audit)
    assert not problems, "\n".join(problems)


def test_every_note_is_covered_line_by_line(audit) -> None:
    needs_seeds()
    problems = coverage_problems(audit, SEEDS)
    assert not problems, "\n".join(problems)


def test_errata_is_the_audits_corrected_and_imprecise_rows(audit, targets) -> None:
    problems = errata_problems(ERRATA.read_text(), audit, *targets)
    assert not problems, "\n".join(problems)


# --- the checks can fail


def _first_row(text: str) -> str:
    return next(line for line in text.splitlines() if ROW.match(line))


def test_a_row_that_links_to_nothing_is_rejected(audit, targets) -> None:
    row = _first_row(audit)
    bare = row.rsplit("|", 2)[0] + "| |"
    assert any("links to nothing" in p for p in row_problems(audit.replace(row, bare), *targets))


def test_a_missing_label_is_rejected(audit, targets) -> None:
    row = next(line for line in audit.splitlines() if ROW.match(line) and "{prf:ref}`" in line)
    broken = re.sub(r"\{prf:ref\}`[^`]+`", "{prf:ref}`no-such-label`", row, count=1)
    assert any("no-such-label" in p for p in row_problems(audit.replace(row, broken), *targets))


def test_counts_that_disagree_are_rejected(audit) -> None:
    first = COUNTS.search(audit)
    wrong = audit.replace(first.group(0), first.group(0).replace(" statements", "0 statements", 1), 1)
    assert count_problems(wrong)
    row = next(line for line in audit.splitlines() if ROW.match(line) and "| correct |" in line)
    assert count_problems(audit.replace(row, row.replace("| correct |", "| corrected |", 1)))


def test_a_note_left_out_is_rejected(audit) -> None:
    needs_seeds()
    sections = note_sections(audit)
    note, name, body = sections[-1]
    assert coverage_problems(audit.replace(f"## Note {note} (`{name}`)", "## Something else"), SEEDS)
    row = _first_row(audit)
    m = ROW.match(row)
    moved = row.replace(f"</a>{m['shown']} ", "</a>99999 ").replace(f"audit-{m['id']}", f"audit-{m['note']}-99999")
    assert any("past the end" in p for p in coverage_problems(audit.replace(row, moved), SEEDS))
    quoted = next(line for line in audit.splitlines() if ROW.match(line) and re.search(r"“[^”$…\[]+”", line))
    misquoted = re.sub(r"“([^”$…\[]+)”", "“words no note contains”", quoted, count=1)
    assert any("words no note contains" in p for p in coverage_problems(audit.replace(quoted, misquoted), SEEDS))


def test_errata_out_of_step_with_the_audit_is_rejected(audit, targets) -> None:
    errata = ERRATA.read_text()
    entry = errata_rows(errata)[0][1]
    assert any("has no errata entry" in p for p in errata_problems(errata.replace(entry + "\n", ""), audit, *targets))
    unlinked = AUDIT_LINK.sub("<a>", entry)
    assert any("no audit row" in p for p in errata_problems(errata.replace(entry, unlinked), audit, *targets))
    correct = next(r for r in audit_rows(audit) if r.verdict == "correct")
    extra = f'| x | corrected | y | <a href="notes_audit.html#audit-{correct.id}">x</a> | {{prf:ref}}`thm-elbo` |'
    assert any("whose verdict is 'correct'" in p
               for p in errata_problems(errata.replace(entry, entry + "\n" + extra), audit, *targets))
