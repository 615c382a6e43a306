// Search result snippets show prose: the TeX source of formulas, code cells, their outputs and the
// live editors are removed from a page before Sphinx cuts its snippet (_ext/search_snippets.py).
(() => {
  if (typeof Search === "undefined" || !Search.htmlToText) return;
  const htmlToText = Search.htmlToText;
  const hidden = ".math, mjx-container, .cell_input, .cell_output, .live-cell-raw, div.highlight";
  Search.htmlToText = (htmlString, anchor) => {
    const page = new DOMParser().parseFromString(htmlString, "text/html");
    page.querySelectorAll(hidden).forEach((element) => element.remove());
    return htmlToText(page.documentElement.outerHTML, anchor);
  };
})();
