"""Shared fixtures: the book's configuration, its table of contents, and one fresh build of it."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]
# Every chapter notebook (absolute paths), for tests that parametrize over chapters at collection.
CHAPTER_NOTEBOOKS = sorted(p for p in (REPO / "chapters").rglob("*.ipynb")
                           if ".ipynb_checkpoints" not in p.parts)

# Property tests: the same examples on every run (a failure in CI reproduces locally), and no
# per-example deadline (the machine is shared; timing is make bench's business, not hypothesis's).
settings.register_profile("paperlib", deadline=None, derandomize=True)
settings.load_profile("paperlib")

# Equations rendered per page, filled by tests/test_browser.py and printed at the end of the run.
EQUATIONS = pytest.StashKey[dict]()
# Live cells (tests/test_live_cells.py): timings and sizes measured in the browser, printed at the end.
LIVE_REPORT = pytest.StashKey[dict]()
# Each chapter's derivations and how each step was established, filled by
# tests/test_chapter_proofs.py; printed as a table and written to _build/proof-coverage.json.
PROOF_COVERAGE = pytest.StashKey[dict]()
COVERAGE_FILE = REPO / "_build" / "proof-coverage.json"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[EQUATIONS] = {}
    config.stash[LIVE_REPORT] = {}


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    chapters = config.stash.get(PROOF_COVERAGE, {})
    if chapters:
        _report_coverage(terminalreporter, chapters)
    counts = config.stash.get(EQUATIONS, {})
    if counts:
        terminalreporter.section("MathJax equations rendered per page (mjx-container)")
        for page, n in sorted(counts.items()):
            terminalreporter.write_line(f"{n:6d}  {page}")
    live = config.stash.get(LIVE_REPORT, {})
    if live:
        terminalreporter.section("Live cells (Pyodide in the browser)")
        for key, value in live.items():
            terminalreporter.write_line(f"{key}: {value}")


def _report_coverage(terminalreporter, chapters: dict) -> None:
    """One row per chapter: derivations, steps, and how the steps were established."""
    methods = ("symbolic", "numeric", "instance", "unchecked")
    terminalreporter.section("Proof coverage (steps of checked derivations; make proofs)")
    terminalreporter.write_line(f"{'chapter':20s} {'derivations':>11s} {'in proofs':>9s} "
                                f"{'steps':>6s} {'displayed':>9s} "
                                + " ".join(f"{m:>9s}" for m in methods) + f" {'no scope':>9s}")
    for name, derivations in sorted(chapters.items()):
        steps = [s for d in derivations for s in d["steps"]]
        shown = [d for d in derivations if d["label"]]  # pasted into a prf:proof block
        displayed = sum(len(d["steps"]) for d in shown)
        undeclared = sum(d["scope"] == "undeclared" for d in derivations)
        terminalreporter.write_line(f"{name:20s} {len(derivations):11d} {len(shown):9d} "
                                    f"{len(steps):6d} {displayed:9d} "
                                    + " ".join(f"{sum(s['method'] == m for s in steps):9d}"
                                               for m in methods) + f" {undeclared:9d}")
    COVERAGE_FILE.parent.mkdir(exist_ok=True)
    previous = json.loads(COVERAGE_FILE.read_text()) if COVERAGE_FILE.exists() else {"chapters": {}}
    previous["chapters"].update(chapters)
    COVERAGE_FILE.write_text(json.dumps(previous, indent=1, ensure_ascii=False) + "\n")
    terminalreporter.write_line(f"written to {COVERAGE_FILE.relative_to(REPO)}")


def each_scale(scales: dict[str, dict]):
    """Parametrize a test over a paperlib module's ``SCALES`` table: one case per scale, named after
    it (``[paper]``, ``[quick]``), which receives that scale's configuration as ``cfg``."""
    return pytest.mark.parametrize("cfg", [pytest.param(scales[name], id=name) for name in sorted(scales)])


def assert_trains_for_two_steps(model, loss, x, optimizer, batch_size: int) -> None:
    """Take two gradient steps of paperlib's ``fit`` on ``x`` and check that both recorded step
    losses are finite: a configuration (the paper's, above all) must not rot unnoticed."""
    from paperlib.train import fit

    history = fit(model, loss, x, optimizer, steps=2, batch_size=batch_size, progress=False)
    assert len(history.step_loss) == 2 and all(map(math.isfinite, history.step_loss))


@pytest.fixture
def float64():
    """Double precision as torch's default for one test (for exact comparisons), then restored."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture(scope="session")
def equation_counts(pytestconfig: pytest.Config) -> dict:
    return pytestconfig.stash[EQUATIONS]


@pytest.fixture(scope="session")
def live_report(pytestconfig: pytest.Config) -> dict:
    return pytestconfig.stash[LIVE_REPORT]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def book_config() -> dict:
    return yaml.safe_load((REPO / "_config.yml").read_text())


@pytest.fixture(scope="session")
def repository_url(book_config: dict) -> str:
    """The repository URL, configured in one place: `repository: url:` in _config.yml."""
    return book_config["repository"]["url"].rstrip("/")


def _toc_files(entry: dict) -> list[str]:
    files = [entry["file"]] if "file" in entry else []
    for key in ("parts", "chapters", "sections"):
        for child in entry.get(key, []):
            files += _toc_files(child)
    return files


@pytest.fixture(scope="session")
def toc_docs() -> list[str]:
    """Every document in _toc.yml (root first), as paths without suffix."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return [toc["root"]] + _toc_files(toc)


def _strip_suffix(doc: str) -> str:
    return str(Path(doc).with_suffix("")) if Path(doc).suffix in {".md", ".ipynb"} else doc


@pytest.fixture(scope="session")
def chapter_notebooks() -> list[Path]:
    """Every notebook under chapters/, as paths relative to the repository root."""
    return [p.relative_to(REPO) for p in CHAPTER_NOTEBOOKS]


@pytest.fixture(scope="session")
def toc_chapters(toc_docs: list[str]) -> list[Path]:
    """The notebooks the toc lists, relative to the repository root."""
    docs = [_strip_suffix(d) for d in toc_docs]
    return [Path(d + ".ipynb") for d in docs if (REPO / (d + ".ipynb")).exists()]


ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class BuiltBook:
    html: Path
    log: str
    seconds: float


@pytest.fixture(scope="session")
def built_book(tmp_path_factory: pytest.TempPathFactory) -> BuiltBook:
    """Build the book once, from scratch, with -W --keep-going, into a temporary directory.

    A fresh output directory matters: an incremental build does not re-read unchanged pages,
    so their warnings would go unreported. Any non-zero exit or any WARNING fails every test
    that uses the build, with the warnings in the message.
    """
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.run(
        [str(jupyter_book), "build", str(REPO), "--path-output", str(out), "-W", "--keep-going"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    seconds = time.perf_counter() - start
    log = ANSI.sub("", proc.stdout + proc.stderr)
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    if proc.returncode != 0 or warnings:
        detail = "\n".join(warnings) or log[-4000:]
        pytest.fail(f"jupyter-book build -W failed (exit {proc.returncode}):\n{detail}",
                    pytrace=False)
    print(f"\nbook built in {seconds:.1f} s into {out / '_build' / 'html'}")
    return BuiltBook(html=out / "_build" / "html", log=log, seconds=seconds)
