"""The Python side of the book's live cells, run inside Pyodide (and tested under CPython).

One namespace per page. ``run(source)`` executes a cell like Jupyter does (the value of a final
expression is displayed) and returns JSON: a list of outputs, each ``{"type": "text" | "markdown"
| "latex" | "error", "text": ...}``. ``display`` and the ``IPython.display`` names the chapters
use (``Math``, ``Markdown``, ``Latex``) are provided here, since IPython is not in the browser.
"""

from __future__ import annotations

import ast
import json
import sys
import traceback
import types

CELL = "<live cell>"


class _Rich:
    def __init__(self, data: str):
        self.data = data


class Markdown(_Rich):
    def _repr_markdown_(self) -> str:
        return self.data


class Math(_Rich):
    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.data.strip().strip('$')}$"


class Latex(_Rich):
    def _repr_latex_(self) -> str:
        return self.data


class _Session:
    def __init__(self) -> None:
        self.outputs: list[dict] = []
        self.namespace: dict = {"__name__": "__main__", "display": self.display}

    def _emit(self, kind: str, text: str) -> None:
        if kind == "text" and self.outputs and self.outputs[-1]["type"] == "text":
            self.outputs[-1]["text"] += text
        elif text:
            self.outputs.append({"type": kind, "text": text})

    def display(self, *objects, **_ignored) -> None:
        for obj in objects:
            if obj is None:
                continue
            markdown = getattr(obj, "_repr_markdown_", None)
            latex = getattr(obj, "_repr_latex_", None)
            if callable(markdown) and (text := markdown()):
                self._emit("markdown", text)
            elif callable(latex) and (text := latex()):
                self._emit("latex", text)
            else:
                self._emit("text", repr(obj) + "\n")

    def run(self, source: str, checks: bool = True) -> str:
        """Run one cell; returns its outputs as JSON.

        ``checks=False`` is for an earlier cell run only for the names it defines: its
        derivations are built but not checked (``check``/``refute``/``check_answer`` do nothing),
        which saves most of the time. The reader's own cell always runs with its checks; a
        derivation made this way shows its steps as "not checked" until its own cell is run.
        """
        if checks:
            return self._run(source)
        proofs = sys.modules.get("paperlib.proofs")
        if proofs is None:
            return self._run(source)
        saved = proofs.Derivation.check, proofs.Derivation.refute, proofs.Derivation.show
        # the chapters' exercises mark answers with paperlib.answers.check_answer (by label)
        answers = sys.modules.get("paperlib.answers")
        real = getattr(answers, "check_answer", None)
        stub = lambda *args, **kwargs: True  # noqa: E731
        replaced = real is not None and self.namespace.get("check_answer") is real
        proofs.Derivation.check = lambda derivation: derivation
        proofs.Derivation.refute = lambda derivation: "(not checked: run this cell itself)"
        proofs.Derivation.show = lambda derivation, *args, **kwargs: None
        if replaced:
            self.namespace["check_answer"] = stub
        try:
            return self._run(source)
        finally:
            proofs.Derivation.check, proofs.Derivation.refute, proofs.Derivation.show = saved
            if replaced and self.namespace.get("check_answer") is stub:
                self.namespace["check_answer"] = real

    def _run(self, source: str) -> str:
        self.outputs = []
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = _Writer(self)
        try:
            tree = ast.parse(source, CELL, "exec")
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = ast.Expression(tree.body.pop().value)
            exec(compile(tree, CELL, "exec"), self.namespace)  # noqa: S102 - the reader's own code
            if last is not None:
                self.display(eval(compile(last, CELL, "eval"), self.namespace))  # noqa: S307
        except BaseException as error:  # noqa: BLE001 - every error is shown to the reader
            self._emit("error", _describe(error))
        finally:
            sys.stdout, sys.stderr = stdout, stderr
        return json.dumps(self.outputs)


class _Writer:
    def __init__(self, session: _Session):
        self.session = session

    def write(self, text: str) -> int:
        self.session._emit("text", text)
        return len(text)

    def flush(self) -> None:
        pass


def _describe(error: BaseException) -> str:
    """The error as a reader needs it: the lines of their cell it passed through, then the
    message (a StepError names the step, both sides and the counterexample)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == CELL]
    lines = [f"line {f.lineno}: {f.line}" for f in frames if f.line]
    message = "".join(traceback.format_exception_only(type(error), error)).rstrip()
    return "\n".join(lines + [message])


def install_ipython_display() -> None:
    """Stand-ins for the few ``IPython.display`` names the chapters import (not in Pyodide)."""
    package = types.ModuleType("IPython")
    package.__path__ = []
    module = types.ModuleType("IPython.display")
    module.Markdown, module.Math, module.Latex = Markdown, Math, Latex
    module.display = lambda *objects, **kw: SESSION.display(*objects, **kw)
    package.display = module
    sys.modules["IPython"], sys.modules["IPython.display"] = package, module


SESSION = _Session()
run = SESSION.run
