"""Search that finds prose: no code or TeX source in the index or in the result snippets (issue 16).

Sphinx indexes every text node of a page, so a chapter's search entries included its code cells,
their outputs, the live cells' editors and the TeX of every formula ("frac", "mathbb"), and the
result page built each snippet from the page's whole text, TeX source and code included. This
extension
- skips code cells (source and output), live cells and maths when the index is built; Sphinx has
  no option for this, so it wraps ``IndexBuilder._word_collector`` (Sphinx 7.4) to read a copy of
  the page without them;
- on the search page only, adds ``search-snippets.js``, which removes the same elements from a
  page's HTML before Sphinx's ``Search.htmlToText`` makes a snippet of it.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx.search import IndexBuilder

ASSETS = Path(__file__).resolve().parent / "search_assets"
SKIPPED_ELEMENTS = {"cell_code_source", "cell_code_output"}  # myst-nb's nb_element values
SKIPPED_CLASSES = {"live-cell-raw", "cell_output", "cell_input"}


def skipped(node: nodes.Node) -> bool:
    """True for what a reader never searches for: code, outputs, live editors, TeX source."""
    if isinstance(node, (nodes.math, nodes.math_block, nodes.literal_block)):
        return True
    if isinstance(node, nodes.Element):
        return (node.get("nb_element") in SKIPPED_ELEMENTS
                or bool(SKIPPED_CLASSES & set(node.get("classes", []))))
    return False


_original_collector = IndexBuilder._word_collector


def _word_collector(self, doctree: nodes.document):
    pruned = doctree.deepcopy()
    for node in list(pruned.findall(skipped)):
        if node.parent is not None:
            node.parent.remove(node)
    return _original_collector(self, pruned)


def _page_assets(app, pagename, templatename, context, doctree) -> None:
    if pagename == "search":
        app.add_js_file("search-snippets.js", defer="defer")


def setup(app):
    IndexBuilder._word_collector = _word_collector
    app.connect("html-page-context", _page_assets)
    app.connect("builder-inited", lambda app: app.config.html_static_path.append(str(ASSETS)))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
