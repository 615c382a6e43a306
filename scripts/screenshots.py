"""Screenshots of the built site for reviews and closing notes, taken with the project's own
browser tooling (playwright driving Debian's chromium, the site served on 127.0.0.1).

    make book && .venv/bin/python scripts/screenshots.py        # writes assets/screenshots/*.png

- desktop-chapter-top.png: the VAE chapter's first screen at 1280x800;
- desktop-proof.png: the proof of the Gaussian KL (Proposition 4.x), its checked derivations pasted
  in with scope and per-step verdicts;
- phone-proof-with-live-check.png: the same proof at 390x844, its check cell opened ("Show code
  cell source") and run in the browser (Pyodide), with the verdicts it printed;
- dark-mode-figure.png: a figure with its numbered caption, in the dark theme.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
OUT = ROOT / "assets" / "screenshots"
PAGE = "chapters/generative/vae.html"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


def serve() -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def typeset(page) -> None:
    page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise")
    page.evaluate("MathJax.startup.promise")
    page.wait_for_timeout(500)


def gaussian_kl_proof(page):
    """The statement of the Gaussian KL proposition and the proof block right after it."""
    statement = page.locator("div.admonition#prop-gauss-kl")
    return statement, page.locator("div.admonition#prop-gauss-kl ~ div.admonition.proof").first


def main() -> None:
    if not (HTML / PAGE).exists():
        raise SystemExit("build the book first: make book")
    OUT.mkdir(parents=True, exist_ok=True)
    server, site = serve()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])

            desktop = browser.new_page(viewport={"width": 1280, "height": 800})
            desktop.goto(site + PAGE)
            typeset(desktop)
            desktop.screenshot(path=OUT / "desktop-chapter-top.png")
            statement, proof = gaussian_kl_proof(desktop)
            statement.scroll_into_view_if_needed()
            box_top, box_end = statement.bounding_box(), proof.bounding_box()
            desktop.screenshot(path=OUT / "desktop-proof.png", full_page=True, clip={
                "x": box_top["x"] - 8, "y": box_top["y"] + desktop.evaluate("scrollY") - 8,
                "width": box_end["width"] + 16,
                "height": box_end["y"] + box_end["height"] - box_top["y"] + 16})

            phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
            phone.goto(site + PAGE)
            typeset(phone)
            cell = phone.locator(".live-cell").filter(
                has=phone.locator("textarea.live-source", has_text='show("prop-gauss-kl", "1d")')).first
            cell.evaluate("c => { const d = c.closest('details'); if (d) d.open = true; }")
            cell.locator("button.live-run").click()
            phone.wait_for_function(
                "c => !c.hasAttribute('aria-busy') && c.querySelector('.live-output').textContent.trim()",
                arg=cell.element_handle(), timeout=120_000)
            phone.evaluate("MathJax.typesetPromise ? MathJax.typesetPromise() : null")
            phone.wait_for_timeout(800)
            cell.locator(".live-output").scroll_into_view_if_needed()
            phone.screenshot(path=OUT / "phone-proof-with-live-check.png")

            dark = browser.new_page(viewport={"width": 1280, "height": 800}, color_scheme="dark")
            dark.goto(site + PAGE)
            dark.evaluate("document.documentElement.dataset.theme = 'dark'")
            typeset(dark)
            figure = dark.locator("figure").first
            figure.scroll_into_view_if_needed()
            figure.screenshot(path=OUT / "dark-mode-figure.png")
            browser.close()
    finally:
        server.shutdown()
    for name in sorted(OUT.glob("*.png")):
        print(name.relative_to(ROOT))


if __name__ == "__main__":
    main()
