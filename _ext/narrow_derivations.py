"""A checked derivation that fits a phone: its verdicts above the steps, not off-screen (issue 16).

A proof pastes its derivation with ``{glue:math}``: an aligned display whose right-hand column holds
the scope and each step's verdict ("(2) ✓ symbolic"). On a 390-pixel screen that column is beyond
the edge; the display scrolls, but a reader sees the steps without their verdicts. This extension
adds to each pasted derivation a narrow twin made from the same LaTeX (the check's own output,
rearranged, never retyped): each verdict on its own line above its step. ``_static/book.css``
shows the twin instead of the original below 720 pixels.
"""

from __future__ import annotations

import re

from docutils import nodes

VERDICT = re.compile(r"^(?P<step>.*?)\s*&&\s*(?P<verdict>\\small\\text\{.*\})\s*$", re.S)
ROWS = re.compile(r"\s*\\\\\s*\n")


def narrow(latex: str) -> str | None:
    """The aligned derivation with each right-hand note moved onto a line above its row; None
    when the display is not a derivation with notes (it is then left alone)."""
    body = latex.strip()
    if not (body.startswith(r"\begin{aligned}") and body.endswith(r"\end{aligned}")):
        return None
    rows = ROWS.split(body[len(r"\begin{aligned}"):-len(r"\end{aligned}")].strip())
    out, notes = [], 0
    for row in rows:
        match = VERDICT.match(row)
        if match:
            notes += 1
            out += ["&" + match["verdict"], match["step"]]
        else:
            out.append(row)
    if not notes:
        return None
    return "\\begin{aligned}\n" + " \\\\\n".join(out) + "\n\\end{aligned}"


def _add_twins(app, doctree, docname) -> None:
    for node in list(doctree.findall(nodes.math_block)):
        if "pasted-math" not in node.get("classes", []) or "derivation-narrow" in node["classes"]:
            continue
        twin_latex = narrow(node.astext())
        if twin_latex is None:
            continue
        twin = nodes.math_block(twin_latex, twin_latex, **{k: v for k, v in node.attributes.items()
                                                             if k in ("nowrap", "number", "docname")})
        twin["classes"] = [c for c in node["classes"] if c != "derivation-wide"] + ["derivation-narrow"]
        twin["label"] = None
        node["classes"].append("derivation-wide")
        node.parent.insert(node.parent.index(node) + 1, twin)


def setup(app):
    app.connect("doctree-resolved", _add_twins)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
