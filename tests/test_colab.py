"""Each chapter runs top to bottom the way Colab runs it: paperlib absent until the first cell.

Colab starts from a Python that has torch, numpy and friends but not paperlib, copies nothing
but the notebook, and runs all cells. This test reproduces that offline: a throwaway virtual
environment that sees .venv's packages through a .pth file (so pip treats them as installed)
but not paperlib, which is never installed into .venv. The bootstrap cell must install paperlib
into the throwaway environment from PAPERLIB_SOURCE (here the checkout, with pip kept off the
network), and the rest of the notebook must then run without error.

nbval already runs every notebook top to bottom (with paperlib on PYTHONPATH), so running each one
a second time here would double the test time for little. What only this test can catch is a
paperlib that imports from the checkout but not once pip-installed (a module left out of the
package, a dependency missing from pyproject.toml). So the beta-VAE chapter, the quickest that reaches
most of paperlib (vae, beta_vae, distributions, dsprites, disentanglement, chapter, train.fit),
runs in full, and every other chapter runs its bootstrap, parameters and setup cells and imports every paperlib module it
names (its proof cells run in tests/test_chapter_proofs.py). PAPERLIB_COLAB_FULL=1 runs every chapter in full.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

KERNEL = "paperlib-colab-test"
CELL_TIMEOUT = 600


def _notebooks() -> list[Path]:
    root = Path(__file__).resolve().parents[1]
    return sorted(p.relative_to(root) for p in (root / "chapters").rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)


@pytest.fixture
def colab_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh interpreter that sees .venv's packages, but not paperlib, with a kernelspec."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip())
    shared = sysconfig.get_paths()["purelib"]  # the site-packages of the interpreter running pytest
    # addsitedir, not a bare path line, so that .venv's own .pth files are processed too.
    (purelib / "shared_venv.pth").write_text(f"import site; site.addsitedir({shared!r})\n")

    kernels = tmp_path / "jupyter" / "kernels" / KERNEL
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like Python", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return python


def _kernel_env(repo: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"} and not k.startswith("PIP_")}
    env.update({
        "PAPERLIB_SOURCE": str(repo),
        "PIP_NO_INDEX": "1",               # no network: everything paperlib needs is present
        "PIP_NO_BUILD_ISOLATION": "0",     # pip reads this inverted: 0 turns isolation OFF, so
                                           # the build uses .venv's setuptools, not a download
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_CONFIG_FILE": os.devnull,     # ignore any pip.conf that points at an index
        "PYTHONNOUSERSITE": "1",
    })
    return env


def _code(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source)


PRECHECK = _code(
    "import importlib.util, sys\n"
    "assert importlib.util.find_spec('paperlib') is None, 'paperlib importable before bootstrap'\n"
    "print('prefix', sys.prefix)")
POSTCHECK = _code(
    "import sys, paperlib\n"
    "assert paperlib.__file__.startswith(sys.prefix), paperlib.__file__\n"
    "print('paperlib', paperlib.__version__, 'from', paperlib.__file__)")


FULL_RUN = {"beta_vae.ipynb"}
KEEP_TAGS = {"parameters", "setup"}  # proof cells: tests/test_chapter_proofs.py


def _cells_to_run(nb: nbformat.NotebookNode, name: str) -> list:
    """All cells, or the bootstrap, tagged cells and an import of every paperlib module named."""
    if name in FULL_RUN or os.environ.get("PAPERLIB_COLAB_FULL") == "1":
        return list(nb.cells)
    code = [c for c in nb.cells if c.cell_type == "code"]
    modules = sorted({m for c in code for m in re.findall(r"\bpaperlib\.(\w+)", c.source)}
                     | {m.strip() for c in code
                        for group in re.findall(r"from paperlib import ([\w ,]+)", c.source)
                        for m in group.split(",")})
    imports = _code("\n".join(f"import paperlib.{m}" for m in modules) or "import paperlib")
    tagged = [c for c in code[1:] if KEEP_TAGS & set(c.metadata.get("tags", []))]
    return [code[0], imports, *tagged]


@pytest.mark.parametrize("notebook", _notebooks(), ids=str)
def test_notebook_runs_like_colab(notebook: Path, repo: Path, colab_python: Path,
                                  tmp_path: Path) -> None:
    env = _kernel_env(repo)
    probe = subprocess.run([str(colab_python), "-c", "import paperlib"], env=env,
                           capture_output=True, text=True, cwd=tmp_path)
    assert probe.returncode != 0, "paperlib is importable before the bootstrap cell ran"
    for module in ("torch", "numpy", "sympy", "ipykernel", "pip", "setuptools"):
        subprocess.run([str(colab_python), "-c", f"import {module}"], env=env, check=True,
                       cwd=tmp_path)

    workdir = tmp_path / "colab"
    workdir.mkdir()
    copy = workdir / notebook.name
    copy.write_bytes((repo / notebook).read_bytes())
    nb = nbformat.read(copy, as_version=4)
    assert "PAPERLIB_SOURCE" in next(c for c in nb.cells if c.cell_type == "code").source, (
        f"{notebook}: the first code cell must be the bootstrap cell")
    nb.cells = [PRECHECK, *_cells_to_run(nb, notebook.name), POSTCHECK]

    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(workdir)}})
    # pip builds a local directory in place, leaving build/ and paperlib.egg-info in the
    # checkout; remove them afterwards (stale files in build/lib would leak into later wheels).
    artefacts = [p for p in (repo / "build", repo / "paperlib.egg-info") if not p.exists()]
    start = time.perf_counter()
    try:
        client.execute(env=env, cwd=str(workdir))
    finally:
        for path in artefacts:
            shutil.rmtree(path, ignore_errors=True)
    print(f"{notebook}: ran in {time.perf_counter() - start:.1f} s")

    prefix = nb.cells[0].outputs[0]["text"].split()[1]
    assert Path(prefix).resolve() == colab_python.parent.parent.resolve(), "the kernel is not the throwaway Python"
    installed = list(colab_python.parent.parent.glob("lib/python*/site-packages/paperlib"))
    assert installed, "the bootstrap cell did not install paperlib into the throwaway venv"
    leaked = list(Path(sysconfig.get_paths()["purelib"]).glob("paperlib*"))
    assert not leaked, f"paperlib was installed into the shared environment: {leaked}"
