"""The book builds with -W, contains every chapter, and links each one to Colab correctly."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest

URL = re.compile(r"""(?:git\+)?(https?://[^\s"'<>)]+)""")


def _bootstrap_cells(notebook: Path) -> list:
    nb = nbformat.read(notebook, as_version=4)
    return [c for c in nb.cells if c.cell_type == "code" and "PAPERLIB_SOURCE" in c.source]


def test_build_passes_with_warnings_as_errors(built_book) -> None:
    # The fixture fails on a non-zero exit or any WARNING; this records that it ran clean.
    assert (built_book.html / "index.html").exists()
    print(f"book build from scratch: {built_book.seconds:.1f} s")


def test_every_toc_entry_is_built(built_book, toc_docs: list[str]) -> None:
    missing = [d for d in toc_docs
               if not (built_book.html / Path(d).with_suffix(".html")).exists()]
    assert not missing, f"listed in _toc.yml but not built: {missing}"


def test_every_chapter_notebook_is_in_the_toc(chapter_notebooks: list[Path],
                                              toc_chapters: list[Path]) -> None:
    assert chapter_notebooks, "no notebooks under chapters/"
    orphans = sorted(set(chapter_notebooks) - set(toc_chapters))
    assert not orphans, f"notebooks under chapters/ missing from _toc.yml: {orphans}"


def test_colab_button_opens_the_notebook_from_the_configured_repository(
        built_book, toc_chapters: list[Path], book_config: dict,
        repository_url: str) -> None:
    owner_repo = urlparse(repository_url).path.strip("/").removesuffix(".git")
    branch = book_config["repository"].get("branch", "main")
    assert toc_chapters
    for nb_path in toc_chapters:
        page = (built_book.html / nb_path.with_suffix(".html")).read_text()
        colab = set(re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', page))
        expected = (f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/"
                    f"{nb_path.as_posix()}")
        assert colab == {expected}, f"{nb_path}: Colab links {colab}, expected {expected}"


def test_bootstrap_cell_installs_from_the_configured_repository(
        repo: Path, chapter_notebooks: list[Path], repository_url: str) -> None:
    """The repository URL is configured once, in _config.yml; each bootstrap cell must match it."""
    for nb_path in chapter_notebooks:
        cells = _bootstrap_cells(repo / nb_path)
        assert len(cells) == 1, f"{nb_path}: expected one bootstrap cell, found {len(cells)}"
        urls = {u.rstrip("/").removesuffix(".git") for u in URL.findall(cells[0].source)}
        assert urls == {repository_url}, (
            f"{nb_path}: bootstrap cell installs from {urls or 'no URL'}, "
            f"but _config.yml says {repository_url}")


def test_bootstrap_cell_is_first_and_hidden(repo: Path, chapter_notebooks: list[Path]) -> None:
    for nb_path in chapter_notebooks:
        nb = nbformat.read(repo / nb_path, as_version=4)
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "PAPERLIB_SOURCE" in first_code.source, (
            f"{nb_path}: the first code cell must be the Colab bootstrap cell")
        tags = first_code.metadata.get("tags", [])
        assert "remove-input" in tags, f"{nb_path}: bootstrap cell tags {tags} lack remove-input"


def test_bootstrap_cell_is_hidden_on_the_website(built_book,
                                                 toc_chapters: list[Path]) -> None:
    for nb_path in toc_chapters:
        page = (built_book.html / nb_path.with_suffix(".html")).read_text()
        assert "PAPERLIB_SOURCE" not in page, f"{nb_path}: bootstrap cell shown on the page"


def _html_pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html")
                  if not any(part.startswith("_") for part in p.relative_to(html).parts))


class _Loads(HTMLParser):
    """Collects the URLs a page loads by itself: script sources, stylesheets, icons, preloads."""

    LOADING_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        a = dict(attrs)
        if tag in {"script", "img", "iframe"} and a.get("src"):
            self.urls.append(a["src"])
        elif tag == "link" and self.LOADING_RELS & set((a.get("rel") or "").split()):
            self.urls.append(a.get("href") or "")


def test_no_page_loads_anything_from_another_host(built_book) -> None:
    found = {}
    for page in _html_pages(built_book.html):
        parser = _Loads()
        parser.feed(page.read_text())
        offsite = [u for u in parser.urls if urlparse(u).netloc]
        if offsite:
            found[str(page.relative_to(built_book.html))] = offsite
    assert not found, f"pages that load from other hosts: {found}"


def test_mathjax_is_served_locally(built_book, toc_chapters: list[Path]) -> None:
    assert (built_book.html / "_static" / "mathjax" / "tex-chtml.js").exists()
    for nb_path in toc_chapters:
        page = (built_book.html / nb_path.with_suffix(".html")).read_text()
        assert re.search(r'<script[^>]*src="[./]*_static/mathjax/tex-chtml\.js"', page), nb_path


def test_static_folder_holds_no_scripts(repo: Path) -> None:
    # Sphinx adds every .js file in html_static_path to every page.
    scripts = sorted(str(p.relative_to(repo)) for p in (repo / "_static").rglob("*.js"))
    assert not scripts, f"scripts in _static/ would load on every page: {scripts}"


@pytest.mark.parametrize("pattern", [".venv", "_build", "tests", "paperlib", ".pytest_cache",
                                     "README.md", "**.ipynb_checkpoints"])
def test_config_excludes_non_book_files(book_config: dict, pattern: str) -> None:
    assert pattern in book_config["exclude_patterns"]


# --- orientation: numbering, favicon, header buttons, no test plumbing on the page

CAPTION_NUMBER = re.compile(r'<span class="caption-number">\s*([A-Za-z.]+)\s+([\d.]+?)\.?\s*</span>')


def _visible_text(html: str) -> str:
    html = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", html)
    return re.sub(r"<[^>]+>", " ", html)


def test_chapters_are_numbered_in_reading_order_and_so_is_everything_in_them(
        built_book, toc_chapters: list[Path]) -> None:
    """Chapter k is numbered k, and its theorems, lemmas, exercises and figures k.1, k.2, ...
    (as in d2l), so "Theorem 2" can never be ambiguous between chapters."""
    for k, chapter in enumerate(toc_chapters, start=1):
        page = (built_book.html / chapter.with_suffix(".html")).read_text(encoding="utf-8")
        heading = re.search(r'<h1>\s*<span class="section-number">([^<]*)</span>', page)
        assert heading and heading.group(1).strip() == f"{k}.", f"{chapter}: h1 is not numbered {k}."
        numbered = CAPTION_NUMBER.findall(page)
        assert numbered, f"{chapter}: no numbered theorem, lemma or exercise found"
        wrong = [f"{kind} {n}" for kind, n in numbered if not re.fullmatch(rf"{k}\.\d+", n)]
        assert not wrong, f"{chapter}: numbers without the chapter prefix {k}.: {wrong}"


def test_every_page_has_a_favicon_and_the_edit_and_issue_buttons(built_book,
                                                                  toc_chapters: list[Path]) -> None:
    assert (built_book.html / "_static" / "favicon.svg").exists()
    for chapter in toc_chapters:
        page = (built_book.html / chapter.with_suffix(".html")).read_text(encoding="utf-8")
        assert re.search(r'<link rel="icon" href="[^"]*favicon\.svg"', page), chapter
        assert "/edit/main/" in page and "/issues/new" in page, f"{chapter}: edit/issue buttons missing"


def test_no_page_shows_test_plumbing(built_book) -> None:
    for page in sorted(built_book.html.rglob("*.html")):
        if "_static" in page.parts or "_sources" in page.parts:
            continue
        text = _visible_text(page.read_text(encoding="utf-8"))
        assert "NBVAL" not in text, f"{page.relative_to(built_book.html)} shows an nbval marker"


def test_every_figure_has_a_numbered_caption_and_real_alt_text(built_book,
                                                               toc_chapters: list[Path]) -> None:
    """A chapter's figures (notebook outputs) carry alt text that describes them, not their file
    path, and sit in a numbered figure with a caption (myst-nb reads both from cell metadata)."""
    problems = []
    for chapter in toc_chapters:
        page = (built_book.html / chapter.with_suffix(".html")).read_text(encoding="utf-8")
        for alt, src in re.findall(r'<img alt="([^"]*)"[^>]*src="([^"]*_images/[^"]+)"', page):
            if not alt.strip() or re.search(r"\.(png|jpe?g|svg)$|_images/", alt):
                problems.append(f"{chapter}: {src} has alt text {alt!r}")
        images = len(re.findall(r'<img [^>]*src="[^"]*_images/', page))
        captions = len(re.findall(r'<span class="caption-number">Fig\. ', page))
        if captions < images:
            problems.append(f"{chapter}: {images} figures, {captions} numbered captions")
    assert not problems, "\n".join(problems)


def test_a_derivations_narrow_twin_puts_each_verdict_above_its_step():
    """_ext/narrow_derivations.py rearranges the check's own LaTeX, and leaves other maths alone."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_ext"))
    from narrow_derivations import narrow

    wide = ("\\begin{aligned}\n&a && \\small\\text{scope: general} \\\\\n"
            "&= b && \\small\\text{(1) ✓ symbolic}\n\\end{aligned}")
    assert narrow(wide) == ("\\begin{aligned}\n&\\small\\text{scope: general} \\\\\n&a \\\\\n"
                            "&\\small\\text{(1) ✓ symbolic} \\\\\n&= b\n\\end{aligned}")
    assert narrow("\\begin{aligned}\n&a \\\\\n&= b\n\\end{aligned}") is None  # no verdicts
    assert narrow("x = 1") is None


def test_every_chapter_opens_with_its_own_diagram():
    """assets/diagrams: one SVG per paper, drawn for the book, each used by its chapter's opening
    cell with alt text, each self-contained (a title and a description for screen readers, no
    script, no external reference) so the site makes no request beyond its own files."""
    import xml.etree.ElementTree as ET

    root = Path(__file__).resolve().parents[1]
    diagrams = sorted((root / "assets" / "diagrams").glob("*.svg"))
    used = {}
    for notebook in sorted((root / "chapters").rglob("*.ipynb")):
        opening = nbformat.read(notebook, as_version=4).cells[0].source
        found = re.findall(r"```\{figure\} \.\./\.\./assets/diagrams/(\S+\.svg)\n((?::\w+:.*\n)*)", opening)
        assert len(found) == 1, f"{notebook.name}: expected one diagram in the opening cell"
        name, options = found[0]
        alt = re.search(r"^:alt: (.+)$", options, re.M)
        assert alt and len(alt.group(1).split()) >= 8 and not alt.group(1).endswith(".svg"), notebook.name
        used[name] = notebook.name
    assert sorted(used) == [d.name for d in diagrams], (sorted(used), [d.name for d in diagrams])
    ns = "{http://www.w3.org/2000/svg}"
    for svg in diagrams:
        tree = ET.parse(svg).getroot()
        assert tree.find(f"{ns}title") is not None and tree.find(f"{ns}desc") is not None, svg.name
        text = svg.read_text()
        assert "<script" not in text and "http://" not in text.replace("http://www.w3.org", ""), svg.name
        assert "https://" not in text and "viewBox" in text, svg.name
