"""Drop duplicated inline <script> blocks from every page.

Sphinx 7.4 adds an inline script registered after builder initialisation twice: once as
``_JavaScript(None, body=...)`` and again, in ``prepare_writing``, as ``_JavaScript('', ...)``;
the two compare unequal, so both are written. sphinx-thebe registers
``const THEBE_JS_URL = ...`` that way, and the second copy throws
"SyntaxError: Identifier 'THEBE_JS_URL' has already been declared" on every page
(tests/test_browser.py fails on page errors).
"""

from __future__ import annotations


def _dedupe(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = (js.filename or "", js.priority, tuple(sorted(js.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
