"""The rules that keep committed outputs true on any CPU (issue "Every claim holds on any machine").

nbval compares every output with the committed one, and `make portability` does so again under
other CPUs' numerics. These tests keep the escape hatches closed: no ignore markers in what
readers see, ignored outputs only for wall-clock timings, and a SEED that bench/claims.py can set.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from conftest import CHAPTER_NOTEBOOKS

NOTEBOOKS = CHAPTER_NOTEBOOKS
MARKERS = re.compile(r"NBVAL_|PYTEST_VALIDATE_")
# A timing cell measures time or prints a measured duration ("CPU seconds", "# wall clock").
TIMING = re.compile(r"\b(perf_counter|process_time|time\.time|timeit|monotonic)\b|seconds|wall clock")


def code_cells(notebook: Path):
    return [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]


def ids(path: Path) -> str:
    return path.stem


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=ids)
def test_no_nbval_markers_in_cell_sources(notebook):
    marked = [n for n, c in enumerate(code_cells(notebook)) if MARKERS.search(c.source)]
    assert not marked, f"code cells {marked} carry an nbval comment marker; use a cell tag"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=ids)
def test_ignored_outputs_are_timings(notebook):
    """An output nbval does not compare must be a wall-clock timing: the cell measures time. The
    one other exception is a slider for Jupyter and Colab, which the website never shows."""
    untimed = [n for n, c in enumerate(code_cells(notebook))
               if "nbval-ignore-output" in c.metadata.get("tags", []) and not TIMING.search(c.source)
               and not ("widgets.interact" in c.source and "remove-cell" in c.metadata.get("tags", []))]
    assert not untimed, f"code cells {untimed} are tagged nbval-ignore-output but time nothing"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=ids)
def test_the_parameters_cell_sets_the_seed(notebook):
    parameters = [c for c in code_cells(notebook) if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1, "one cell tagged parameters"
    assert re.search(r"^SEED = 0\b", parameters[0].source, re.M), "parameters must set SEED = 0"
    setup = [c for c in code_cells(notebook) if "setup" in c.metadata.get("tags", [])]
    assert len(setup) == 1 and re.search(r"^scale, generator, device = chapter\.setup\(QUICK, \w+\.SCALES, SEED\b",
                                         setup[0].source, re.M), \
        "the setup cell seeds everything from SEED with chapter.setup(QUICK, <module>.SCALES, SEED)"
