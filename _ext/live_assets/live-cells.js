// Live cells (issue 17): run the page's SymPy checks in the reader's browser with Pyodide.
// Added by _ext/live_cells.py only to pages that have live cells. Nothing loads until the first
// click on a Run button; everything comes from this site (_static/live/), never from a CDN.
// This one file is both the page's script and, started again as a Web Worker, the interpreter:
// Python runs off the page's thread, so the page stays responsive while SymPy works.

// --- in the worker: Pyodide, SymPy, paperlib.proofs, one namespace for the page
if (typeof window === "undefined") {
  const base = new URL(".", self.location.href);  // .../_static/live/
  const fetchOk = async (url) => {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response;
  };
  const timings = {};
  const lap = (name, since) => { timings[name] = +((performance.now() - since) / 1000).toFixed(2); return performance.now(); };
  let ready = null;
  const boot = async () => {
    let t = performance.now();
    const { loadPyodide } = await import(new URL("pyodide/pyodide.mjs", base).href);
    const pyodide = await loadPyodide({ indexURL: new URL("pyodide/", base).href });
    t = lap("pyodide", t);
    self.postMessage({ progress: "Loading SymPy…" });
    const manifest = await (await fetchOk(new URL("manifest.json", base))).json();
    for (const wheel of manifest.wheels) {
      const data = await (await fetchOk(new URL("wheels/" + wheel, base))).arrayBuffer();
      pyodide.unpackArchive(data, "wheel");
    }
    t = lap("wheels", t);
    self.postMessage({ progress: "Starting SymPy…" });
    pyodide.FS.mkdirTree("/home/pyodide/live/paperlib");
    for (const path of ["live_runtime.py", "paperlib/_compare.py", "paperlib/proofs.py",
                        "paperlib/answers.py"]) {
      const text = await (await fetchOk(new URL(path, base))).text();
      pyodide.FS.writeFile("/home/pyodide/live/" + path, text);
    }
    pyodide.FS.writeFile("/home/pyodide/live/paperlib/__init__.py",
      '"""paperlib in the browser: only _compare.py, proofs.py and answers.py (SymPy and the standard library)."""\n');
    pyodide.runPython("import sys; sys.path.insert(0, '/home/pyodide/live')\n" +
      "import live_runtime; live_runtime.install_ipython_display()\nimport sympy");
    lap("import_sympy", t);
    return pyodide.pyimport("live_runtime");
  };
  self.onmessage = async (event) => {
    const { id, source, checks } = event.data;
    try {
      if (!ready) ready = boot();
      const runtime = await ready;
      const outputs = source === undefined ? [] : JSON.parse(runtime.run(source, checks));
      self.postMessage({ id, outputs, timings });
    } catch (error) {
      ready = null;  // a failed load can be retried
      self.postMessage({ id, error: String((error && error.message) || error), timings });
    }
  };
} else (function () {
  "use strict";
  const script = document.currentScript;
  let python = null;         // Promise of {run}, once the worker has loaded Python
  let queue = Promise.resolve();
  const done = new Set();    // ids of the cells already run in this page's interpreter
  let preludeDone = false;
  let current = null;        // the status line of the cell that is running
  // Seconds spent in each phase, for the tests and the curious: window.liveCells.timings.
  const timings = {};
  window.liveCells = { timings };
  const lap = (name, since) => { timings[name] = +((performance.now() - since) / 1000).toFixed(2); return performance.now(); };

  function boot() {
    if (!python) {
      const worker = new Worker(script.src, { type: "module" });  // Pyodide needs a module worker
      const pending = new Map();
      let next = 0;
      worker.onmessage = (event) => {
        const { id, outputs, error, timings: phases, progress } = event.data;
        if (progress !== undefined) {
          if (current) current.textContent = `Loading Python in your browser, ~10 s… ${progress}`;
          return;
        }
        Object.assign(timings, phases);
        const { resolve, reject } = pending.get(id);
        pending.delete(id);
        if (error !== undefined) reject(new Error(error));
        else resolve(outputs);
      };
      worker.onerror = (event) => {
        for (const { reject } of pending.values()) reject(new Error(event.message || "the Python worker failed"));
        pending.clear();
      };
      const call = (source, checks) => new Promise((resolve, reject) => {
        const id = next++;
        pending.set(id, { resolve, reject });
        worker.postMessage({ id, source, checks });
      });
      python = call(undefined, true).then(() => ({ run: (source, checks = true) => call(source, checks) }));
      python.catch(() => { worker.terminate(); python = null; preludeDone = false; done.clear(); });
    }
    return python;
  }

  const escape = (s) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));

  // Inline Markdown as paperlib.proofs writes it: **bold**, `code`, $maths$.
  function inline(text) {
    return escape(text).split(/(\$[^$]+\$)/).map((part) => {
      if (/^\$[^$]+\$$/.test(part)) return `<span class="math notranslate nohighlight">\\(${part.slice(1, -1)}\\)</span>`;
      return part.replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>").replace(/`([^`]+)`/g, "<code>$1</code>");
    }).join("");
  }

  // The derivation tables of Derivation._repr_markdown_ (and plain paragraphs).
  function markdown(text) {
    const out = [];
    for (const block of text.split(/\n\s*\n/)) {
      const lines = block.split("\n").filter((l) => l.trim());
      if (lines.length && lines.every((l) => l.trim().startsWith("|"))) {
        const rows = lines.filter((l) => !/^\|[\s:|-]+\|$/.test(l.trim())).map((l) =>
          l.trim().replace(/^\||\|$/g, "").split(/(?<!\\)\|/).map((c) => c.replace(/\\\|/g, "|").trim()));
        const [head, ...body] = rows;
        out.push('<div class="live-table"><table><thead><tr>' + head.map((c) => `<th>${inline(c)}</th>`).join("") +
          "</tr></thead><tbody>" + body.map((r) => "<tr>" + r.map((c) => `<td>${inline(c)}</td>`).join("") + "</tr>").join("") +
          "</tbody></table></div>");
      } else if (lines.length) {
        out.push(`<p>${inline(lines.join(" "))}</p>`);
      }
    }
    return out.join("");
  }

  function render(output, element) {
    const node = document.createElement("div");
    if (output.type === "markdown") {
      node.className = "live-markdown";
      node.innerHTML = markdown(output.text);
    } else if (output.type === "latex") {
      node.className = "live-latex";
      const tex = output.text.trim().replace(/^\$+|\$+$/g, "");
      node.innerHTML = `<span class="math notranslate nohighlight">\\[${escape(tex)}\\]</span>`;
      node.dataset.tex = tex;  // the display's source, as the check printed it
    } else {
      const pre = document.createElement("pre");
      pre.className = output.type === "error" ? "live-error" : "live-text";
      pre.textContent = output.text;
      node.appendChild(pre);
    }
    element.appendChild(node);
  }

  const pause = () => new Promise((resolve) => setTimeout(resolve, 30));  // let the page paint

  async function execute(cell) {
    const button = cell.querySelector(".live-run");
    const status = cell.querySelector(".live-status");
    const output = cell.querySelector(".live-output");
    button.disabled = true;
    cell.setAttribute("aria-busy", "true");
    const started = performance.now();
    current = status;
    try {
      if (!python) status.textContent = "Loading Python in your browser, ~10 s…";
      else status.textContent = "Running…";
      await pause();
      const { run } = await boot();
      const prelude = document.querySelector("script.live-prelude");
      if (!preludeDone && prelude) {
        status.textContent = "Running the chapter's imports…";
        await pause();
        const t = performance.now();
        const failed = (await run(prelude.textContent)).filter((o) => o.type === "error");
        if (failed.length) throw new Error("the chapter's imports failed:\n" + failed[0].text);
        preludeDone = true;
        lap("prelude", t);
      }
      const deps = (cell.dataset.liveDeps || "").split(/\s+/).filter((id) => id && !done.has(id));
      for (const id of deps) {
        const dep = document.getElementById(id);
        status.textContent = `Defining what it needs from ${dep.querySelector(".live-label").textContent.split(":")[0]}…`;
        await pause();
        const t = performance.now();
        // Definitions only (checks skipped); if that fails, the cell as it is, checks and all.
        const source = dep.querySelector(".live-source").value;
        let failed = (await run(source, false)).filter((o) => o.type === "error");
        if (failed.length) failed = (await run(source)).filter((o) => o.type === "error");
        lap("dep " + id, t);
        if (failed.length) {
          output.replaceChildren();
          render({ type: "error", text: `An earlier cell this one needs failed (${id}):\n${failed[0].text}` }, output);
          status.textContent = "Failed in an earlier cell.";
          return;
        }
        done.add(id);
      }
      status.textContent = "Running…";
      await pause();
      const t = performance.now();
      const outputs = await run(cell.querySelector(".live-source").value);
      lap("run " + cell.id, t);
      const failed = outputs.some((o) => o.type === "error");
      if (!failed) done.add(cell.id);
      output.replaceChildren();
      for (const o of outputs) render(o, output);
      if (!outputs.length) render({ type: "text", text: "(ran, printed nothing)" }, output);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      status.textContent = failed ? `Stopped with an error (${seconds} s).` : `Done in ${seconds} s.`;
      cell.dataset.liveSeconds = seconds;
      if (window.MathJax && MathJax.typesetPromise) await MathJax.typesetPromise([output]);
    } catch (error) {
      output.replaceChildren();
      render({ type: "error", text: "Could not run Python in this page: " + (error && error.message || error) }, output);
      status.textContent = "Failed.";
    } finally {
      button.disabled = false;
      cell.removeAttribute("aria-busy");
    }
  }

  function enqueue(cell) {
    queue = queue.then(() => execute(cell));
    return queue;
  }

  function init() {
    for (const cell of document.querySelectorAll(".live-cell")) {
      cell.querySelector(".live-run").addEventListener("click", () => enqueue(cell));
      cell.querySelector(".live-source").addEventListener("keydown", (event) => {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey || event.shiftKey)) {
          event.preventDefault();
          enqueue(cell);
        }
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
