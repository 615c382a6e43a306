"""Live cells: the book's SymPy checks, editable and runnable in the reader's browser (issue 17).

After every notebook code cell tagged ``proof`` that needs only SymPy, ``paperlib.proofs`` and the
standard library (this covers the ``check_answer`` exercises, tagged ``proof`` too, whose
expected answers ``paperlib.answers`` holds), the page gets a live cell: the notebook cell's own source in a ``textarea``, a Run button, and an
output region. The JavaScript (``live_assets/live-cells.js``, added only to pages that have live
cells) loads Pyodide from the site itself on the first click, never at page load.

Dependencies between cells: each live cell lists the earlier live cells of its page that define
(or mutate) the names it uses, found statically here; the browser runs those first, once, in one
interpreter per page. The setup cell's SymPy / ``paperlib.proofs`` / standard-library imports form
the page's prelude. A cell that uses anything else (torch, numpy, a ``paperlib`` model, or a
name defined by such a cell) is not live; it keeps its Colab button.

Assets: at ``build-finished`` the Pyodide core (``node_modules/pyodide``, pinned in
package-lock.json), the SymPy and mpmath wheels (``.cache/wheels``, pinned in requirements.txt;
``make live-assets`` prepares both) and ``paperlib/_compare.py``, ``proofs.py`` and ``answers.py`` are copied into
``_static/live/`` once per site. A missing asset is a build warning (so ``-W`` fails).
"""

from __future__ import annotations

import ast
import builtins
import html
import json
import re
import shutil
import symtable
import sys
from dataclasses import dataclass, field
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "live_assets"
STATIC = "live"  # _build/html/_static/live/
PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip",
                 "pyodide-lock.json", "package.json")
WHEELS = ("sympy", "mpmath")  # versions: requirements.txt
TAGS = {"proof"}
BROWSER_MODULES = ("_compare.py", "proofs.py", "answers.py")  # the part of paperlib that runs in the browser
# Names the browser runtime (live_runtime.py) provides, like IPython does in a notebook.
RUNTIME_NAMES = {"display", "Math", "Markdown", "Latex"}
BUILTINS = set(dir(builtins)) | {"__name__", "__file__"}
# Modules in the standard library that Pyodide does not ship or that make no sense in a page.
NOT_IN_BROWSER = {"multiprocessing", "subprocess", "threading", "tkinter", "curses", "ctypes",
                  "sqlite3", "ssl", "socket", "venv", "idlelib", "turtle", "readline"}


def allowed_module(name: str) -> bool:
    """True for a module a live cell may import: SymPy, paperlib.proofs, the standard library."""
    top = name.split(".")[0]
    if top == "sympy" or name in {"paperlib.proofs", "paperlib.answers", "IPython.display"}:
        return True
    return top in sys.stdlib_module_names and top not in NOT_IN_BROWSER


def _import_ok(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return all(allowed_module(a.name) for a in node.names)
    if isinstance(node, ast.ImportFrom):
        if node.level:
            return False
        if node.module == "paperlib":  # from paperlib import proofs, answers
            return all(a.name in {"proofs", "answers"} for a in node.names)
        if node.module == "IPython.display":
            return all(a.name in RUNTIME_NAMES for a in node.names)
        return allowed_module(node.module or "")
    return True


def _bound_by_import(node: ast.Import | ast.ImportFrom) -> set[str]:
    names = set()
    for a in node.names:
        if a.asname:
            names.add(a.asname)
        elif isinstance(node, ast.Import):
            names.add(a.name.split(".")[0])
        else:
            names.add(a.name)
    return names


@dataclass
class CellNames:
    """What one cell reads and writes at its top level (approximately, by its syntax)."""

    uses: set[str] = field(default_factory=set)
    defines: set[str] = field(default_factory=set)
    mutates: set[str] = field(default_factory=set)
    imports_ok: bool = True


def cell_names(source: str) -> CellNames:
    tree = ast.parse(source)
    out = CellNames()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.imports_ok &= _import_ok(node)
    # Scopes from the compiler's own symbol table: names a function body reads from the module
    # count as uses, its parameters and locals do not.
    top = symtable.symtable(source, "<cell>", "exec")
    for sym in top.get_symbols():
        if sym.is_referenced():
            out.uses.add(sym.get_name())
        if sym.is_assigned() or sym.is_imported():
            out.defines.add(sym.get_name())
    todo = list(top.get_children())
    while todo:
        table = todo.pop()
        todo += table.get_children()
        for sym in table.get_symbols():
            if sym.is_global() and sym.is_referenced():
                out.uses.add(sym.get_name())
            if sym.is_declared_global() and sym.is_assigned():
                out.defines.add(sym.get_name())
    # x.step(...), x[i] = ..., x.attr = ...: the cell changes an object an earlier cell made.
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            func = stmt.value.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                out.mutates.add(func.value.id)
        targets = stmt.targets if isinstance(stmt, ast.Assign) else (
            [stmt.target] if isinstance(stmt, (ast.AugAssign, ast.AnnAssign)) else [])
        for t in targets:
            while isinstance(t, (ast.Attribute, ast.Subscript)):
                t = t.value
            if isinstance(t, ast.Name):
                out.mutates.add(t.id)
    return out


@dataclass
class LiveCell:
    index: int          # the notebook cell's index
    source: str
    deps: list[int]     # indices of earlier live cells to run first, in order


@dataclass
class LivePage:
    prelude: str
    cells: dict[int, LiveCell]
    proof_cells: int    # how many cells carry a proof tag, live or not


def prelude_of(cells: list[dict]) -> tuple[str, set[str], set[str]]:
    """The page's prelude: the parameters cell when it is plain, and the setup cell's allowed
    imports. Returns (source, names it defines, names the setup defines that the browser lacks)."""
    lines, available, missing = [], set(), set()
    for cell in cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.get("cell_type") != "code" or not tags & {"parameters", "setup"}:
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        tree = ast.parse(source)
        names = cell_names(source)
        if "parameters" in tags and names.imports_ok and names.uses <= BUILTINS:
            lines.append(source.rstrip())
            available |= names.defines
            continue
        for stmt in tree.body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)) and _import_ok(stmt):
                lines.append(ast.get_source_segment(source, stmt))
                available |= _bound_by_import(stmt)
        missing |= names.defines - available
    return "\n".join(lines) + "\n", available, missing


def analyse(nb: dict) -> LivePage:
    """Which proof cells of a notebook can run in the browser, and what each needs first."""
    cells = nb["cells"]
    prelude, available, _ = prelude_of(cells)
    definers: dict[str, list[int]] = {}   # name -> live cells that define or mutate it, in order
    unavailable: set[str] = set()
    live: dict[int, LiveCell] = {}
    proof_cells = 0
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & {"parameters", "setup"}:
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        try:
            names = cell_names(source)
        except SyntaxError:
            continue
        free = names.uses - names.defines - BUILTINS - RUNTIME_NAMES
        is_proof = bool(tags & TAGS)
        proof_cells += is_proof
        known = free <= (available | set(definers))
        ok = is_proof and names.imports_ok and known and not (free & unavailable)
        if not ok:
            # whatever this cell defines is now out of the browser's reach
            unavailable |= names.defines | (names.mutates & set(definers))
            continue
        deps: set[int] = set()
        todo = [n for n in free | names.mutates if n in definers]
        seen = set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            for d in definers[name]:
                if d not in deps:
                    deps.add(d)
                    c = live[d]
                    todo += [n for n in _free(c.source) if n in definers and n not in seen]
        live[index] = LiveCell(index, source, sorted(deps))
        for name in names.defines | names.mutates:
            definers.setdefault(name, []).append(index)
            unavailable.discard(name)
    return LivePage(prelude, live, proof_cells)


def _free(source: str) -> set[str]:
    names = cell_names(source)
    return (names.uses - names.defines - BUILTINS - RUNTIME_NAMES) | names.mutates


# --- HTML


def widget(page_id: str, cell: LiveCell, number: int) -> str:
    cell_id = f"live-{page_id}-{cell.index}"
    deps = " ".join(f"live-{page_id}-{d}" for d in cell.deps)
    rows = min(max(cell.source.count("\n") + 1, 3), 16)
    # The newline after <textarea> is dropped by the HTML parser, so a leading one is kept safe.
    return f"""<div class="live-cell" id="{cell_id}" data-live-deps="{deps}" data-cell-index="{cell.index}">
<div class="live-head"><span class="live-label" id="{cell_id}-label">Live check {number}: edit the code and run it in your browser</span></div>
<textarea class="live-source" spellcheck="false" autocapitalize="off" autocomplete="off" rows="{rows}" aria-labelledby="{cell_id}-label">
{html.escape(cell.source)}</textarea>
<div class="live-bar"><button type="button" class="live-run" aria-describedby="{cell_id}-keys">▶ Run</button>
<span class="live-keys" id="{cell_id}-keys">Ctrl+Enter runs it too. Python runs in this page; nothing is sent anywhere.</span>
<span class="live-status" role="status" aria-live="polite"></span></div>
<div class="live-output" aria-live="polite" aria-label="Output of live check {number}"></div>
</div>"""


def prelude_html(page_id: str, prelude: str) -> str:
    safe = prelude.replace("</", "<\\/")
    return f'<script type="text/x-python" class="live-prelude" data-page="{page_id}">\n{safe}</script>'


# --- Sphinx


def _notebook(app, docname: str) -> dict | None:
    path = Path(app.env.doc2path(docname))
    if path.suffix != ".ipynb":
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _insert(app, doctree, docname: str) -> None:
    from docutils import nodes

    if app.builder.format != "html":
        return
    nb = _notebook(app, docname)
    if nb is None:
        return
    page = analyse(nb)
    if not page.cells:
        return
    page_id = re.sub(r"[^A-Za-z0-9]+", "-", docname).strip("-")
    number = 0
    first = True
    for node in list(doctree.findall(nodes.container)):
        index = node.get("cell_index")
        if node.get("nb_element") != "cell_code" or index not in page.cells:
            continue
        number += 1
        markup = widget(page_id, page.cells[index], number)
        if first:
            markup = prelude_html(page_id, page.prelude) + "\n" + markup
            first = False
        raw = nodes.raw("", markup, format="html", classes=["live-cell-raw"])
        # The editor shows the cell's own source, so it takes the place of the static copy
        # (one copy of the code on the page), inside the "Show code cell source" toggle when
        # the cell is tagged hide-input; a cell whose input is removed gets it after it.
        source = [child for child in node.findall(nodes.container)
                  if child.get("nb_element") == "cell_code_source"]
        if source:
            source[0].replace_self(raw)
        else:
            node.parent.insert(node.parent.index(node) + 1, raw)


def _has_live_cells(doctree) -> bool:
    from docutils import nodes

    return doctree is not None and any(
        "live-cell-raw" in n.get("classes", []) for n in doctree.findall(nodes.raw))


def _page_assets(app, pagename, templatename, context, doctree) -> None:
    if _has_live_cells(doctree):
        app.add_css_file(f"{STATIC}/live-cells.css")
        app.add_js_file(f"{STATIC}/live-cells.js", defer="defer")


def pinned_wheels(root: Path) -> list[str]:
    """The wheel file names for SymPy and mpmath, at the versions requirements.txt pins."""
    pins = {}
    for line in (root / "requirements.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return [f"{name}-{pins[name]}-py3-none-any.whl" for name in WHEELS]


def copy_assets(root: Path, static: Path) -> list[str]:
    """Copy what the live cells need into ``static`` (…/_static/live); returns what is missing."""
    out = static / STATIC
    missing = []
    sources = [(ASSETS / n, out / n) for n in ("live-cells.js", "live-cells.css", "live_runtime.py")]
    sources += [(root / "paperlib" / n, out / "paperlib" / n) for n in BROWSER_MODULES]
    sources += [(root / "node_modules" / "pyodide" / n, out / "pyodide" / n) for n in PYODIDE_FILES]
    wheels = pinned_wheels(root)
    sources += [(root / ".cache" / "wheels" / w, out / "wheels" / w) for w in wheels]
    for src, dst in sources:
        if not src.exists():
            missing.append(str(src.relative_to(root) if src.is_relative_to(root) else src))
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    (out / "manifest.json").write_text(json.dumps({"wheels": wheels}, indent=1) + "\n")
    return missing


def _build_finished(app, exception) -> None:
    from sphinx.util import logging

    if exception is not None or app.builder.format != "html":
        return
    missing = copy_assets(Path(app.srcdir), Path(app.outdir) / "_static")
    if missing:
        logging.getLogger(__name__).warning(
            "live cells: missing %s; run `make live-assets` (npm ci and pip download)",
            ", ".join(missing))


def setup(app):
    app.connect("doctree-resolved", _insert)
    app.connect("html-page-context", _page_assets)
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
