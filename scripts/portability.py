"""`make portability`: every chapter re-executed as another CPU would run it, compared by nbval.

For each setting in scripts/cpu_settings.py (by default the two that `make test` does not
already run), re-execute the notebooks under chapters/ with that environment and compare every
output with the committed one (nbval, same sanitizers as `make test`). Any mismatch or
exception fails. Prints the wall time of each setting.

    python scripts/portability.py [--settings avx2 default] [notebook ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_settings import OTHER_CPUS, SETTINGS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=OTHER_CPUS, choices=sorted(SETTINGS))
    parser.add_argument("notebooks", nargs="*", default=["chapters"])
    args = parser.parse_args()
    failed = []
    for name in args.settings:
        env = {**os.environ, **SETTINGS[name], "PYTHONPATH": str(REPO)}
        shown = " ".join(f"{k}={v}" for k, v in SETTINGS[name].items()) or "(unchanged)"
        print(f"=== portability: {name}: {shown}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(
            [str(Path(sys.executable).parent / "pytest"), *args.notebooks, "--nbval",
             "--nbval-sanitize-with", "tests/nbval_sanitize.cfg", "--timeout=900",
             "-p", "no:cacheprovider", "-q"], cwd=REPO, env=env)
        print(f"=== portability: {name}: exit {code}, {time.perf_counter() - start:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"portability: outputs changed or a cell failed under {', '.join(failed)}")
        return 1
    print("portability: every chapter reproduced its committed outputs under "
          + ", ".join(args.settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
