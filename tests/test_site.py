"""A crawler over the built website: no broken internal link or anchor, no missing image, no page
without a title. (That every page's maths renders is tests/test_browser.py's job.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest


@dataclass
class Page:
    title: str = ""
    h1: int = 0
    ids: set[str] = field(default_factory=set)
    links: list[str] = field(default_factory=list)    # href of <a>
    sources: list[str] = field(default_factory=list)  # src of <img>, <script>; href of <link>
    redirect: str = ""                                # <meta http-equiv="refresh"> target


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page, self._in_title = Page(), False

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if "id" in attrs:
            self.page.ids.add(attrs["id"])
        if tag == "a" and "name" in attrs:
            self.page.ids.add(attrs["name"])
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":
            self.page.redirect = (attrs.get("content") or "").partition("url=")[2].strip()
            self.page.links.append(self.page.redirect)
        if tag == "a" and attrs.get("href"):
            self.page.links.append(attrs["href"])
        if tag in {"img", "script"} and attrs.get("src"):
            self.page.sources.append(attrs["src"])
        if tag == "link" and attrs.get("href") and attrs.get("rel") in {"stylesheet", "icon"}:
            self.page.sources.append(attrs["href"])
        self._in_title = self._in_title or tag == "title"
        self.page.h1 += tag == "h1"

    def handle_endtag(self, tag) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data) -> None:
        if self._in_title:
            self.page.title += data


def parse(path: Path) -> Page:
    parser = _Parser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.page


def crawl(html: Path) -> dict[Path, Page]:
    """Every page of the site (not the theme's Jinja templates that Sphinx copies to _static)."""
    return {p: parse(p) for p in sorted(html.rglob("*.html"))
            if "_static" not in p.relative_to(html).parts}


def _internal(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and not url.startswith(("mailto:", "javascript:"))


def broken(pages: dict[Path, Page]) -> list[str]:
    """Internal links to missing files or anchors, and missing images, scripts or styles."""
    problems = []
    for path, page in pages.items():
        for url, kind in [(u, "link") for u in page.links] + [(u, "source") for u in page.sources]:
            if not _internal(url):
                continue
            parts = urlsplit(url)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{path.name}: {kind} to missing {url}")
            elif kind == "link" and parts.fragment and target.suffix == ".html":
                anchors = pages[target].ids if target in pages else parse(target).ids
                if unquote(parts.fragment) not in anchors:
                    problems.append(f"{path.name}: link to missing anchor {url}")
    return problems


def untitled(pages: dict[Path, Page]) -> list[str]:
    """Pages (other than redirects) whose <title> is empty, or that have no heading at all."""
    return [f"{path.name}: title {page.title.strip()!r}, {page.h1} h1"
            for path, page in pages.items() if not page.redirect
            if not page.title.strip() or page.title.strip().startswith("<no title>")
            or (path.name not in {"genindex.html", "search.html"} and page.h1 == 0)]


@pytest.fixture(scope="module")
def pages(built_book) -> dict[Path, Page]:
    return crawl(built_book.html)


def test_no_broken_internal_link_anchor_or_image(pages) -> None:
    assert len(pages) >= 4
    problems = broken(pages)
    assert not problems, "\n".join(problems[:50])


def test_every_page_has_a_title_and_a_heading(pages) -> None:
    problems = untitled(pages)
    assert not problems, "\n".join(problems)


def test_the_crawler_finds_broken_links_images_and_titles(tmp_path: Path) -> None:
    """The checks above are not vacuous."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(
        '<html><head><title>Home</title></head><body><h1 id="top">Home</h1>'
        '<a href="sub/page.html#here">ok</a><a href="sub/page.html#nowhere">bad anchor</a>'
        '<a href="missing.html">bad link</a><img src="figure.png"><a href="https://example.org">x</a>'
        '</body></html>')
    (tmp_path / "sub" / "page.html").write_text(
        '<html><head><title></title></head><body><p id="here">no heading</p>'
        '<a href="../index.html#top">back</a></body></html>')
    (tmp_path / "old.html").write_text('<html><head><meta http-equiv="Refresh" content="0; url=gone.html">'
                                       '</head></html>')
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "template.html").write_text('<link rel="stylesheet" href="{{ x }}">')
    pages = crawl(tmp_path)
    problems = broken(pages)
    assert any("missing anchor sub/page.html#nowhere" in p for p in problems)
    assert any("missing missing.html" in p for p in problems)
    assert any("missing figure.png" in p for p in problems)
    assert any("old.html: link to missing gone.html" in p for p in problems)
    assert len(problems) == 4, problems
    assert [p.split(":")[0] for p in untitled(pages)] == ["page.html"]
