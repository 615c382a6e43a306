"""Live cells (issue 17): the book's SymPy checks run in the reader's browser, offline.

Three layers. Without a browser: ``paperlib.proofs`` needs nothing but SymPy and the standard
library; the extension (_ext/live_cells.py) picks the right cells and their dependencies; every
live cell runs, as the browser runs it, with numpy and torch made unimportable. In the real
browser (chromium, the site served on 127.0.0.1 by the stdlib's http.server, every other host
blocked): the VAE chapter's Gaussian KL check prints its verdicts, a broken step shows the
StepError naming it, a check_answer exercise accepts another form and rejects a wrong one with its
hint, and no request leaves 127.0.0.1. Cold and warm timings are printed at the end of the run.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import CHAPTER_NOTEBOOKS
from test_browser import LOCAL_HOSTS, browser, site  # noqa: F401 - shared fixtures

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "_ext"))
import live_cells  # noqa: E402

CHAPTERS = CHAPTER_NOTEBOOKS
BLOCK = "import sys\nfor _m in ('numpy', 'torch', 'scipy', 'matplotlib', 'IPython'):\n    sys.modules[_m] = None\n"
VAE = "chapters/generative/vae.html"
COLD_S, WARM_S = 600, 180   # generous: the machine is shared; the report gives the measured values


def _python(code: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


# --- paperlib.proofs runs where numpy does not exist


@pytest.mark.parametrize("module", ["_compare.py", "proofs.py", "answers.py"])
def test_browser_modules_import_only_sympy_and_the_standard_library(module: str) -> None:
    """What the browser has: SymPy, the standard library, paperlib's browser modules, and the
    IPython.display stand-in that live_runtime.py installs."""
    tree = ast.parse((REPO / "paperlib" / module).read_text())
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    allowed = sys.stdlib_module_names | {"sympy"}
    outside = {m for m in modules if m.split(".")[0] not in allowed
               and m not in {"IPython.display", "paperlib._compare", "paperlib.proofs"}}
    assert not outside, f"paperlib/{module} imports {outside}: the browser has only SymPy"


def test_proofs_checks_with_numpy_unimportable() -> None:
    """Numeric steps (random points) and check_answer work with numpy and torch blocked."""
    proc = _python(
        "import sympy as sp\n"
        "from paperlib.answers import check_answer\n"
        "from paperlib.proofs import Derivation, StepError\n"
        "x = sp.Symbol('x', positive=True)\n"
        "d = Derivation(sp.gamma(x + 1)).step(x * sp.gamma(x)).check()\n"  # numeric or symbolic
        "bad = Derivation(sp.log(x)).step(sp.log(x) + 1 / (7 + x**2)).refute()\n"
        "assert isinstance(bad, StepError) and 'counterexample' in str(bad), bad\n"
        "assert check_answer('vae-ex-kl-gradient', '(exp(ell) - 1)/2')\n"
        "assert not check_answer('vae-ex-kl-gradient', '(exp(ell) + 1)/2')\n"
        "print('ok')\n")
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


# --- which cells are live, and what each needs first


def _nb(cells: list[tuple[list[str], str]]) -> dict:
    return {"cells": [{"cell_type": "code", "metadata": {"tags": tags}, "source": src}
                      for tags, src in cells]}


def test_the_extension_picks_sympy_only_cells_and_their_dependencies() -> None:
    page = live_cells.analyse(_nb([
        (["setup"], "import torch\nimport sympy as sp\nfrom paperlib import vae\n"
                    "from paperlib.proofs import Derivation\nmodel = vae.VAE()"),
        (["proof"], "x = sp.Symbol('x')\nd = Derivation(x).step(x)"),        # 1: live
        (["proof"], "t = torch.zeros(3)"),                                  # 2: torch
        (["proof"], "y = t.sum() + x"),                                     # 3: uses 2
        (["proof"], "n = vae.count(model)"),                                # 4: paperlib.vae
        ([], "d.step(x + 0)"),                                              # 5: not a proof cell
        (["proof"], "def f(a, b=1):\n    return a + b + x\nz = f(x)"),      # 6: live, needs 1
        (["proof"], "import numpy as np\nw = np.pi"),                       # 7: numpy
        (["proof"], "e = d.end"),                                           # 8: d changed by 5
        (["proof"], "z2 = z * 2"),                                          # 9: needs 6 and 1
    ]))
    assert sorted(page.cells) == [1, 6, 9]
    assert page.cells[6].deps == [1] and page.cells[9].deps == [1, 6]
    assert "import sympy as sp" in page.prelude and "torch" not in page.prelude
    assert "from paperlib.proofs import Derivation" in page.prelude and "vae" not in page.prelude


def test_live_cells_per_chapter(live_report: dict) -> None:
    counts = {}
    for path in CHAPTERS:
        nb = json.loads(path.read_text())
        page = live_cells.analyse(nb)
        counts[path.stem] = f"{len(page.cells)}/{page.proof_cells}"
        assert page.cells, f"{path}: no live cell"
        for index, cell in page.cells.items():
            assert cell.source == "".join(nb["cells"][index]["source"])  # the notebook's own source
    live_report["live cells per chapter (live/proof cells)"] = counts
    # the VAE chapter's Gaussian KL check and its check_answer blanks need only SymPy: all live
    nb = json.loads((REPO / "chapters/generative/vae.ipynb").read_text())
    vae = live_cells.analyse(nb)
    wanted = [k for k, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
              and ("Gaussian KL, one dimension" in "".join(c["source"])
                   or "check_answer(" in "".join(c["source"]))]
    assert wanted and set(wanted) <= set(vae.cells), sorted(set(wanted) - set(vae.cells))


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_live_cell_runs_as_the_browser_runs_it(notebook: Path) -> None:
    """Each live cell in a fresh interpreter with only the page's prelude and its dependencies
    (definitions only, as in the browser), numpy and torch unimportable: no error."""
    code = f"""
import importlib, json
sys.path[:0] = [{str(REPO / '_ext')!r}, {str(REPO / '_ext' / 'live_assets')!r}]
import live_cells, live_runtime
live_runtime.install_ipython_display()
page = live_cells.analyse(json.load(open({str(notebook)!r})))
failures = {{}}
for index, cell in page.cells.items():
    session = live_runtime._Session()
    live_runtime.SESSION = session
    steps = [(page.prelude, True)] + [(page.cells[d].source, False) for d in cell.deps]
    for source, checks in steps + [(cell.source, True)]:
        out = json.loads(session.run(source, checks))
        if not checks and any(o["type"] == "error" for o in out):
            out = json.loads(session.run(source))
        errors = [o["text"] for o in out if o["type"] == "error"]
        if errors:
            failures[index] = errors[0][-600:]
            break
print(json.dumps(failures))
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    failures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not failures, json.dumps(failures, indent=1, ensure_ascii=False)


# --- the build


def test_the_build_serves_pyodide_and_the_wheels_once(built_book, live_report: dict) -> None:
    live = built_book.html / "_static" / "live"
    for name in ("pyodide/pyodide.mjs", "pyodide/pyodide.asm.wasm", "pyodide/python_stdlib.zip",
                 "paperlib/proofs.py", "live_runtime.py", "live-cells.js", "live-cells.css"):
        assert (live / name).is_file(), name
    manifest = json.loads((live / "manifest.json").read_text())
    assert manifest["wheels"] == live_cells.pinned_wheels(REPO)
    assert all((live / "wheels" / w).is_file() for w in manifest["wheels"])
    size = sum(p.stat().st_size for p in live.rglob("*") if p.is_file())
    live_report["added to the site (_static/live, once)"] = f"{size / 1e6:.1f} MB"
    assert size < 30e6
    assert (live / "paperlib" / "proofs.py").read_text() == (REPO / "paperlib/proofs.py").read_text()


def test_only_pages_with_live_cells_load_the_script(built_book) -> None:
    with_cells = []
    for page in built_book.html.rglob("*.html"):
        if "_static" in page.parts:
            continue
        text = page.read_text()
        loads = text.count("_static/live/live-cells.js")
        cells = text.count('<div class="live-cell"')
        assert loads == (1 if cells else 0), (page, loads, cells)
        assert "_static/live/pyodide" not in text, page  # Python loads on a click, not with the page
        if cells:
            with_cells.append(page.name)
    assert "vae.html" in with_cells


def test_http_server_serves_the_module_and_wasm_types(built_book) -> None:
    """`python -m http.server` (what a reader or the tests run) gives .mjs and .wasm the MIME types
    a browser requires for a module script and wasm streaming."""
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1",
                             "--directory", str(built_book.html)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        port = int(line.split("port ")[1].split()[0])
        types = {}
        for name in ("pyodide.mjs", "pyodide.asm.wasm"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_static/live/pyodide/{name}") as r:
                types[name] = r.headers["Content-Type"]
        assert "javascript" in types["pyodide.mjs"] and types["pyodide.asm.wasm"] == "application/wasm", types
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- in the browser


class LivePage:
    def __init__(self, browser, url: str):
        self.requests: list[str] = []
        self.offsite: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context()
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url, wait_until="load")
        self.page.wait_for_load_state("networkidle")

    def _route(self, route):
        url = route.request.url
        if urlparse(url).hostname in LOCAL_HOSTS:
            self.requests.append(url)
            route.continue_()
        else:
            self.offsite.append(url)
            route.abort()

    def cell(self, text: str):
        cells = self.page.locator(".live-cell").filter(
            has=self.page.locator("textarea.live-source", has_text=text))
        assert cells.count() == 1, f"{cells.count()} live cells hold {text!r}"
        # a check cell tagged hide-input keeps its live editor in the "Show code cell source"
        # toggle: open it, as a reader would
        cells.first.evaluate("c => { const d = c.closest('details'); if (d) d.open = true; }")
        return cells.first

    def run(self, cell, source: str | None = None, timeout_s: float = COLD_S, key: bool = False):
        """Optionally replace the source, run, wait for the output; returns (text, seconds)."""
        if source is not None:
            cell.locator("textarea.live-source").fill(source)
        start = time.perf_counter()
        if key:
            cell.locator("textarea.live-source").press("Control+Enter")
        else:
            cell.locator("button.live-run").click()
        self.page.wait_for_function(
            "c => !c.hasAttribute('aria-busy') && c.querySelector('.live-output').textContent.trim()",
            arg=cell.element_handle(), timeout=timeout_s * 1000, polling=100)
        seconds = time.perf_counter() - start
        return output_text(cell), seconds


def output_text(cell) -> str:
    """What a live cell printed: its text, and the TeX source of each display it showed (a
    derivation's verdicts are inside its typeset display)."""
    return cell.locator(".live-output").evaluate(
        "o => [...o.children].map(e => e.dataset.tex || e.innerText).join('\\n')")


@pytest.fixture(scope="module")
def vae_page(browser, site):  # noqa: F811 - the fixtures imported above
    page = LivePage(browser, site + VAE)
    yield page
    page.context.close()


KL = 'title="Gaussian KL, one dimension"'
HALF = "kl_1d.step((mu**2 + sigma**2 - sp.log(sigma**2) - 1) / 2"
EXERCISE = 'check_answer("vae-ex-kl-general", my_answer)'


def test_the_page_has_live_cells_and_loads_no_python_before_a_click(vae_page) -> None:
    page = vae_page.page
    assert page.locator(".live-cell").count() >= 20
    for cell in page.locator(".live-cell").all()[:3]:
        assert cell.locator("textarea.live-source").count() == 1
        assert cell.locator("button.live-run").count() == 1
        assert cell.locator(".live-output[aria-live]").count() == 1
    loaded = [u for u in vae_page.requests if "/_static/live/" in u and not u.endswith((".js", ".css"))]
    assert not loaded, f"fetched before any click: {loaded}"


def test_the_gaussian_kl_check_prints_its_verdicts(vae_page, live_report: dict) -> None:
    cell = vae_page.cell(KL)
    vae_page.page.evaluate("""c => { window.statuses = [];
      new MutationObserver(() => window.statuses.push(c.querySelector('.live-status').textContent))
        .observe(c.querySelector('.live-status'), {childList: true, characterData: true, subtree: true}); }""",
                           cell.element_handle())
    output, _ = vae_page.run(cell)  # timed in the page itself, as data-live-seconds
    cold = float(cell.get_attribute("data-live-seconds") or "nan")
    live_report["cold: first click to first output, Gaussian KL check (s)"] = cold
    live_report["cold, by phase (s)"] = vae_page.page.evaluate("window.liveCells.timings")
    assert output.count("✓ symbolic") == 3, output
    assert "scope: general" in output and r"\text{(3) ✓ symbolic}" in output, output
    assert "Error" not in output, output
    statuses = vae_page.page.evaluate("window.statuses")
    assert any("Loading Python in your browser, ~10 s" in s for s in statuses), statuses
    assert cold < COLD_S
    assert not vae_page.errors, vae_page.errors


def test_dropping_the_half_shows_a_step_error_naming_the_step(vae_page, live_report: dict) -> None:
    cell = vae_page.cell(KL)
    source = cell.locator("textarea.live-source").input_value()
    assert HALF in source
    output, warm = vae_page.run(cell, source.replace(HALF, HALF[:-4]), timeout_s=WARM_S)
    live_report["warm: second run, the edited KL check (s)"] = round(warm, 1)
    assert "StepError: Step 3 (collect terms) fails" in output, output
    assert "counterexample" in output
    # and back: the original source passes again, run from the keyboard this time
    output, warm2 = vae_page.run(cell, source, timeout_s=WARM_S, key=True)
    live_report["warm: third run, original source, Ctrl+Enter (s)"] = round(warm2, 1)
    assert output.count("✓ symbolic") == 3, output
    assert warm < WARM_S


def test_an_exercise_accepts_another_form_and_rejects_a_wrong_one_with_its_hint(vae_page) -> None:
    cell = vae_page.cell(EXERCISE)
    source = cell.locator("textarea.live-source").input_value()
    assert "my_answer = None" in source
    other_form = '"(s1**2 + mu1**2 - 2*mu1*mu2 + mu2**2)/(2*s2**2) + log(s2) - log(s1) - 1/2"'
    output, _ = vae_page.run(cell, source.replace("my_answer = None", f"my_answer = {other_form}"),
                             timeout_s=WARM_S)
    assert "✓ Right" in output, output
    wrong = '"log(s2/s1) + (s1**2 + (mu1 - mu2)**2) / s2**2 - 1/2"'
    output, _ = vae_page.run(cell, source.replace("my_answer = None", f"my_answer = {wrong}"),
                             timeout_s=WARM_S)
    assert "✗ Not quite" in output and "Hint: write log q - log p" in output, output


def test_the_run_button_is_keyboard_operable_with_visible_focus(vae_page) -> None:
    page = vae_page.page
    cell = vae_page.cell(KL)
    cell.locator("textarea.live-source").focus()
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.className")
    assert "live-run" in focused, focused
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), outline


def test_no_request_left_127_0_0_1(vae_page) -> None:
    assert any(u.endswith("pyodide.asm.wasm") for u in vae_page.requests)  # it did load Python
    assert not vae_page.offsite, vae_page.offsite
