"""Every built page renders in a real browser: maths typeset without error, nothing off-site.

Sphinx never sees TeX errors; only MathJax running in a browser does. Each page is served from
a local HTTP server and loaded in Debian's chromium (driven by playwright, no downloaded
browser). A page passes when every maths element is typeset, none holds an ``mjx-merror``,
every image loads, nothing is requested from any host but 127.0.0.1, and the console is clean.
"""

from __future__ import annotations

import functools
import json
import re
import http.server
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1"}
TIMEOUT_MS = 30_000


def _require_chromium() -> None:
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found (scripts/ensure-chromium.sh installs it in CI)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError as exc:
            reason = f"the playwright package is not importable: {exc}"
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser test must run in CI, but {reason}", pytrace=False)
    pytest.skip(reason)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


@pytest.fixture(scope="module")
def site(built_book):
    """The built HTML served on 127.0.0.1 at a free port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(built_book.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                    headless=True)
        yield browser
        browser.close()


# What a page can get wrong, each kind a list in PageReport.found, in the order problems() reports them.
PROBLEM_KINDS = ("untypeset", "merrors", "offsite_requests", "failed_requests", "broken_images",
                 "leaked_tex", "proofs_run_together", "proofs_without_derivation", "console_errors",
                 "page_errors")


@dataclass
class PageReport:
    """What one page did in the browser: how much maths it typeset, and what it got wrong, by kind."""

    url: str
    math_elements: int = 0
    mjx_containers: int = 0
    found: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in PROBLEM_KINDS})

    def problems(self) -> list[str]:
        return [f"{kind}: {item}" for kind in PROBLEM_KINDS for item in self.found[kind]]


# Runs in the page after load: wait for MathJax's first typeset (when the page loads MathJax)
# and for every image, then report what rendered.
_INSPECT = r"""
async () => {
  // TeX that reached the reader as text: "$\alpha$" or "\frac" outside any typeset maths,
  // code block or script (an output parsed as plain Markdown, a missing math role, ...).
  const leakedTex = () => {
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const skip = 'pre, code, script, style, mjx-container, .highlight, textarea';
    const found = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent;
      if (/\$[^$]*\\[A-Za-z]+|\\(mathbb|mathcal|frac|log|mid|sum|int)\b/.test(text)
          && !node.parentElement.closest(skip)) {
        found.push(text.trim().slice(0, 120));
      }
    }
    return found;
  };
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  // sphinx-proof's proofs (its statements carry their kind as a class too): each must show its
  // steps as a list or as the pasted, checked derivation, never "Proof. 1. ... 2. ..." in one
  // paragraph, and each must paste a derivation (the checked steps with their verdicts).
  const kinds = ['theorem', 'lemma', 'proposition', 'corollary', 'definition', 'remark',
                 'conjecture', 'example', 'property', 'observation', 'criterion', 'algorithm',
                 'axiom', 'assumption', 'notation'];
  const proofs = [...document.querySelectorAll('div.admonition.proof')]
    .filter(d => !kinds.some(k => d.classList.contains(k)));
  const head = d => d.textContent.trim().replace(/\s+/g, ' ').slice(0, 80);
  await Promise.all([...document.images].map(img => {
    img.loading = 'eager';
    return img.complete ? null : new Promise(done => { img.onload = img.onerror = done; });
  }));
  await document.fonts.ready;
  const maths = [...document.querySelectorAll('.math')];
  return {
    math_elements: maths.length,
    mjx_containers: document.querySelectorAll('mjx-container').length,
    untypeset: maths.filter(m => !m.querySelector('mjx-container'))
                    .map(m => m.textContent.trim().slice(0, 120)),
    merrors: [...document.querySelectorAll('mjx-merror')]
                    .map(e => e.getAttribute('data-mjx-error') || e.textContent),
    broken_images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
                    .map(i => i.currentSrc || i.src),
    leaked_tex: leakedTex(),
    proofs_run_together: proofs.filter(d => /^Proof\.\s*(\(.*?\)\s*)?1\.\s/.test(
                            d.querySelector('p') ? d.querySelector('p').textContent.trim() : ''))
                           .map(head),
    proofs_without_derivation: proofs.filter(d => !d.querySelector('.pasted-math mjx-container'))
                                 .map(head),
  };
}
"""


def _local_page(browser, on_offsite: Callable[[str], None] | None = None, **context_options):
    """A new browser context (made with ``context_options``) and a page in it that may load only
    from LOCAL_HOSTS: any other request is aborted and, when ``on_offsite`` is given, its URL is
    passed to it. Returns ``(context, page)``; the caller closes the context."""
    context = browser.new_context(**context_options)

    def route(r):
        if urlparse(r.request.url).hostname in LOCAL_HOSTS:
            r.continue_()
            return
        if on_offsite is not None:
            on_offsite(r.request.url)
        r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return context, page


def audit(browser, url: str, inject: str | None = None) -> PageReport:
    """Load ``url``, optionally run ``inject`` (async JS) after MathJax, and report."""
    report = PageReport(url=url)
    context, page = _local_page(browser, on_offsite=report.found["offsite_requests"].append)
    page.on("console", lambda m: m.type == "error" and report.found["console_errors"].append(
        f"{m.text} ({m.location.get('url', '')})"))
    page.on("pageerror", lambda e: report.found["page_errors"].append(str(e)))
    page.on("requestfailed", lambda r: urlparse(r.url).hostname in LOCAL_HOSTS
            and report.found["failed_requests"].append(f"{r.url}: {r.failure}"))
    page.on("response", lambda r: r.status >= 400
            and report.found["failed_requests"].append(f"{r.url}: HTTP {r.status}"))
    try:
        page.goto(url, wait_until="load")
        page.evaluate(_INSPECT)
        if inject:
            page.evaluate(inject)
        inspected = page.evaluate(_INSPECT)
        page.wait_for_load_state("networkidle")
    finally:
        context.close()
    report.math_elements = inspected["math_elements"]
    report.mjx_containers = inspected["mjx_containers"]
    for kind in ("untypeset", "merrors", "broken_images", "leaked_tex", "proofs_run_together",
                 "proofs_without_derivation"):
        report.found[kind].extend(inspected[kind])
    return report


def _pages(html: Path) -> list[Path]:
    """Every built page a reader can reach, skipping assets and the toc's redirect stub."""
    pages = []
    for p in sorted(html.rglob("*.html")):
        rel = p.relative_to(html)
        if any(part.startswith("_") for part in rel.parts):
            continue  # _static, _sources, _images: assets, not pages
        if 'http-equiv="Refresh"' in p.read_text()[:2000]:
            continue  # index.html: a redirect to the root page, which is audited itself
        pages.append(rel)
    return pages


def test_every_page_renders_cleanly_offline(browser, site, built_book, toc_docs,
                                            toc_chapters, equation_counts) -> None:
    pages = _pages(built_book.html)
    expected = {Path(d).with_suffix(".html") for d in toc_docs}
    assert expected <= set(pages), f"toc pages not found: {expected - set(pages)}"
    chapters = {c.with_suffix(".html") for c in toc_chapters}

    failures = {}
    for rel in pages:
        report = audit(browser, site + rel.as_posix())
        equation_counts[rel.as_posix()] = report.mjx_containers
        problems = report.problems()
        if rel in chapters and report.mjx_containers == 0:
            problems.append("a chapter page with no typeset maths")
        if report.math_elements and not report.mjx_containers:
            problems.append(f"{report.math_elements} maths elements but MathJax typeset none")
        if problems:
            failures[rel.as_posix()] = problems
    assert not failures, "\n".join(f"{page}:\n  " + "\n  ".join(p)
                                   for page, p in failures.items())


def _chapter_url(site: str, toc_chapters) -> str:
    assert toc_chapters, "no chapter in the toc to test the browser check on"
    return site + toc_chapters[0].with_suffix(".html").as_posix()


def _append(html: str) -> str:
    # Outside the article's mathjax_ignore region, like any page-level maths.
    return f"""async () => {{
      const el = document.createElement('div');
      el.innerHTML = {json.dumps(html)};
      document.body.appendChild(el);
      if (window.MathJax && MathJax.typesetPromise) {{ await MathJax.typesetPromise([el]); }}
    }}"""


@pytest.mark.parametrize("snippet, flagged", [
    (r'<span class="math">\(\undefinedmacro + 1\)</span>', "merrors"),
    ('<img src="no-such-figure.png" alt="missing">', "broken_images"),
    ('<img src="https://example.org/figure.png" alt="remote">', "offsite_requests"),
    (r'<p>| 1 | $\mathbb E_q[\log p(x)]$ | raw Markdown table |</p>', "leaked_tex"),
    ('<div class="proof admonition"><p>Proof. 1. Expand. 2. Collect.</p></div>',
     "proofs_run_together"),
    ('<div class="proof admonition"><p>Proof.</p><ol><li>Expand.</li></ol></div>',
     "proofs_without_derivation"),
])
def test_the_check_catches_a_broken_page(browser, site, toc_chapters, snippet, flagged) -> None:
    """The audit is not vacuous: an undefined macro, a broken image, an off-site request, TeX
    left as plain text (a Markdown output that was not parsed), a proof whose numbered steps run
    together in one paragraph, and a proof that pastes no checked derivation each fail it."""
    report = audit(browser, _chapter_url(site, toc_chapters), inject=_append(snippet))
    assert report.found[flagged], f"{flagged} not detected: {report}"
    assert report.problems()


def test_defined_maths_injected_the_same_way_passes(browser, site, toc_chapters) -> None:
    """The control for the negative test: valid TeX added the same way typesets cleanly."""
    url = _chapter_url(site, toc_chapters)
    before = audit(browser, url)
    after = audit(browser, url, inject=_append(r'<span class="math">\(\alpha + 1\)</span>'))
    assert not after.problems(), after.problems()
    assert after.mjx_containers == before.mjx_containers + 1


# --- phones: nothing makes the page scroll sideways, and check verdicts stay in view

PHONE = {"width": 390, "height": 844}
_OVERFLOW = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const width = document.documentElement.clientWidth;
  const outside = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.right > width + 1; };
  const name = e => e.tagName.toLowerCase() + '.' + String(e.className || '').split(' ')[0];
  return {
    page_scrolls_sideways: document.documentElement.scrollWidth > width + 1,
    wide_blocks: [...document.querySelectorAll('table, pre, div.highlight, mjx-container[display="true"]')]
                   .filter(outside).map(name),
    verdicts_off_screen: [...document.querySelectorAll('.cell_output table tr > :last-child')]
                   .filter(outside).map(e => e.textContent.trim().slice(0, 40)),
    // a proof's derivation shown with its verdicts in a right-hand column, not the narrow twin
    // that puts each verdict above its step (_ext/narrow_derivations.py)
    verdict_columns: [...document.querySelectorAll('div.pasted-math')]
                   .filter(d => d.offsetParent !== null && !d.classList.contains('derivation-narrow'))
                   .map(d => d.textContent.trim().slice(0, 60)),
    narrow_derivations: [...document.querySelectorAll('div.pasted-math.derivation-narrow')]
                   .filter(d => d.offsetParent !== null).length,
  };
}
"""


def phone_report(browser, url: str, inject: str | None = None) -> dict:
    context, page = _local_page(browser, viewport=PHONE)
    try:
        page.goto(url, wait_until="load")
        if inject:
            page.evaluate(inject)
        return page.evaluate(_OVERFLOW)
    finally:
        context.close()


def test_on_a_phone_no_table_or_code_block_makes_the_page_scroll_sideways(browser, site,
                                                                        toc_chapters) -> None:
    """At 390 x 844, check tables and code scroll inside their own boxes (_static/book.css), the
    verdict column of every check table is on screen, and every proof shows its derivation with
    each verdict above its step."""
    failures = {}
    for chapter in toc_chapters:
        report = phone_report(browser, site + chapter.with_suffix(".html").as_posix())
        if (report["page_scrolls_sideways"] or report["wide_blocks"] or report["verdicts_off_screen"]
                or report["verdict_columns"] or not report["narrow_derivations"]):
            failures[chapter.as_posix()] = report
    assert not failures, json.dumps(failures, indent=1, ensure_ascii=False)[:3000]


def test_the_phone_check_catches_a_wide_block(browser, site, toc_chapters) -> None:
    """The control: a fixed-width box wider than the phone is reported."""
    url = _chapter_url(site, toc_chapters)
    report = phone_report(browser, url, inject=_append('<div style="width: 900px">wide</div>'
                                                       '<pre style="width: 900px">x</pre>'))
    assert report["page_scrolls_sideways"] or report["wide_blocks"], report


def test_the_phone_check_catches_a_derivation_with_its_verdicts_beside_it(browser, site,
                                                                          toc_chapters) -> None:
    """The control: a pasted derivation without its narrow twin is reported on a phone."""
    report = phone_report(browser, _chapter_url(site, toc_chapters), inject=_append(
        '<div class="pasted-math math">\\[a = b \\quad \\text{(1) ✓ symbolic}\\]</div>'))
    assert report["verdict_columns"], report


# --- search: results quote prose, not TeX source or code

RAW_SOURCE = re.compile(r"\\[A-Za-z]+|\$|\bimport \w|\bsp\.\w|= Derivation\(")


def test_search_snippets_quote_prose_not_tex_or_code(browser, site, built_book) -> None:
    """Searching for words that occur beside formulas and code gives snippets free of TeX and
    code (_ext/search_snippets.py); the index lists no page for TeX command words."""
    context, page = _local_page(browser)
    snippets = {}
    try:
        for query in ("reparameterization", "derivation", "jacobian"):
            page.goto(site + f"search.html?q={query}", wait_until="load")
            page.wait_for_function(
                "document.querySelectorAll('#search-results li p.context').length > 2")
            page.wait_for_timeout(500)  # the later results' snippets
            snippets[query] = page.eval_on_selector_all(
                "#search-results li p.context", "ps => ps.map(p => p.textContent)")
        # the control: the same function keeps prose and drops a formula and a code cell
        control = page.evaluate("""Search.htmlToText('<div role="main"><p>prose words '
            + '<span class="math">\\\\(\\\\alpha\\\\)</span></p><div class="cell_input">import torch</div></div>')""")
    finally:
        context.close()
    bad = {q: [s[:160] for s in found if RAW_SOURCE.search(s)] for q, found in snippets.items()}
    assert not any(bad.values()), bad
    assert all(len(found) >= 3 for found in snippets.values()), snippets
    assert "prose words" in control and not RAW_SOURCE.search(control), control
    assert RAW_SOURCE.search(r"the ELBO \(\mathbb E_q\)") and RAW_SOURCE.search("import torch")

    text = (built_book.html / "searchindex.js").read_text()
    terms = json.loads(text[text.index("(") + 1:text.rindex(")")])["terms"]
    listed = {c: terms[c] for c in ("mathbb", "frac", "mathcal", "operatorname") if terms.get(c)}
    assert not listed, f"TeX command words indexed as searchable text: {listed}"
