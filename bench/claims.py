"""The book's asserted claims, re-run on seeds 0-2 and under other CPUs' numerics, with margins.

Every comparison a chapter asserts goes through ``paperlib.claims.claim``, which appends a JSON
line to ``$PAPERLIB_CLAIMS_LOG`` when that is set. This script executes each chapter once per
(seed, setting): the seed replaces the chapter's ``SEED = 0`` in its ``parameters`` cell, the
setting is an environment from scripts/cpu_settings.py. It then prints one row per claim with
the value on every run and the smallest margin, and writes bench/claims.json and bench/claims.md.

    python bench/claims.py [--seeds 0 1 2] [--settings native] [--jobs 1] [notebook ...]

A claim that fails on some run shows a negative margin and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from cpu_settings import SETTINGS  # noqa: E402

RESULTS = ROOT / "bench" / "claims.json"
TABLE = ROOT / "bench" / "claims.md"


def execute(notebook: Path, seed: int, log: Path) -> tuple[int, str]:
    """Run ``notebook`` top to bottom with ``SEED = seed`` (in this process's environment)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    parameters = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if not parameters or "SEED" not in parameters[0].source:
        raise SystemExit(f"{notebook}: its parameters cell does not define SEED")
    parameters[0].source += f"\nSEED = {seed}  # set by bench/claims.py\n"
    # The sliders are for readers (tagged remove-cell) and assert nothing; under nbclient with other
    # kernels busy, an ipywidgets interact cell has been seen to hang.
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and "widgets.interact" in c.source
                                            and "remove-cell" in c.metadata.get("tags", []))]
    os.environ["PAPERLIB_CLAIMS_LOG"] = str(log)
    client = NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(notebook.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    return len(errors), "; ".join(f"{e.ename}: {e.evalue}"[:300] for e in errors)


def run(notebook: Path, seed: int, setting: str) -> dict:
    """One execution in a child process, so that the setting's environment reaches torch and MKL."""
    with tempfile.TemporaryDirectory() as tmp:
        log, report = Path(tmp) / "claims.jsonl", Path(tmp) / "report.json"
        env = {**os.environ, **SETTINGS[setting], "PYTHONPATH": str(ROOT)}
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--one", str(notebook), str(seed),
                               str(log), str(report)], env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        claims = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        errors, detail = json.loads(report.read_text()) if report.exists() else (1, proc.stderr[-600:])
    return {"notebook": notebook.stem, "seed": seed, "setting": setting, "seconds": round(seconds, 1),
            "errors": errors, "error_detail": detail, "claims": claims}


def table(runs: list[dict]) -> tuple[str, bool]:
    """A Markdown table: claim, bound, the value on each run, and the smallest margin."""
    columns = sorted({(r["setting"], r["seed"]) for r in runs}, key=lambda k: (k[0] != "native", k))
    header = " | ".join(f"{setting} s{seed}" for setting, seed in columns)
    lines = [f"| chapter | claim | bound | {header} | min margin |",
             "|" + "---|" * (len(columns) + 4)]
    ok = True
    rows: dict[tuple[str, str], dict] = {}
    for r in runs:
        for c in r["claims"]:
            row = rows.setdefault((r["notebook"], c["statement"]), {"bound": f'{c["relation"]} {c["bound"]:.4g}'})
            row[(r["setting"], r["seed"])] = c
    for (chapter, statement), row in rows.items():
        values = [f'{row[k]["value"]:.4g}' if k in row else "missing" for k in columns]
        margins = [row[k]["margin"] for k in columns if k in row]
        worst = min(margins)
        ok &= worst >= 0 and len(margins) == len(columns)
        cell = statement.replace("|", "\\|")  # a pipe in a claim must not split the table
        lines.append(f"| {chapter} | {cell} | {row['bound']} | {' | '.join(values)} | {worst:.3g} |")
    for r in runs:
        if r["errors"]:
            ok = False
            lines.append(f"\n{r['notebook']} seed {r['seed']} ({r['setting']}): {r['errors']} "
                         f"cell error(s): {r['error_detail']}")
    return "\n".join(lines), ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", default=["native"], choices=sorted(SETTINGS))
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each uses its setting's threads)")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args()
    if args.one:
        notebook, seed, log, report = args.one
        Path(report).write_text(json.dumps(execute(Path(notebook).resolve(), int(seed), Path(log))))
        return 0
    notebooks = [p.resolve() for p in args.notebooks] or sorted((ROOT / "chapters").rglob("*.ipynb"))
    jobs = [(nb, seed, setting) for nb in notebooks for setting in args.settings for seed in args.seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = []
        for result in pool.map(lambda job: run(*job), jobs):
            print(f"{result['notebook']:>20s} seed {result['seed']} {result['setting']:>8s}: "
                  f"{len(result['claims'])} claims, {result['errors']} errors, {result['seconds']:.0f} s",
                  flush=True)
            runs.append(result)
    text, ok = table(runs)
    print(text)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for r in runs:  # keep other chapters' rows when only some notebooks were re-run
        previous[f"{r['notebook']}/{r['setting']}/{r['seed']}"] = r
    RESULTS.write_text(json.dumps(previous, indent=1, ensure_ascii=False) + "\n")
    TABLE.write_text(table(list(previous.values()))[0] + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
