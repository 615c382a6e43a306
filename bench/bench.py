"""`make bench`: how fast the book verifies and how fast paperlib trains, measured in one run.

Prints a table and writes bench/results.json. It measures

* the whole `make test` (timed from outside) and, from its nbval run's JUnit report, each
  notebook's nbval execution time;
* the site build time (`jupyter-book build -W` into a fresh directory);
* VAE and MADE training throughput, in images/s: paperlib's loop as the chapters train (preloaded
  tensors, loss on logits, `fit`, Adam with `fused=True`) against a reference loop written the way
  pytorch/examples' `vae/main.py` is (a `DataLoader` over a `TensorDataset`, a sigmoid decoder,
  `binary_cross_entropy`, the default Adam). Same model, same batch size, same data, same machine,
  interleaved in one run. paperlib's loop with the default Adam is timed too, so that the table
  separates what the data path saves from what the fused optimiser saves;
* the VAE training step's achieved GFLOP/s (FLOPs counted by torch's FlopCounterMode) as a fraction
  of this machine's float32 matmul peak (`torch.mm` on large square matrices, measured here).

`--skip-test` skips `make test` (and the per-notebook times) for a quick look at the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from paperlib import data, made, vae
from paperlib.train import fit, seed_everything

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
TARGET_RATIO = 1.2


# --- the machine's limit ---------------------------------------------------------------------

def matmul_peak_gflops(n: int = 2048, repeats: int = 20) -> float:
    """Best float32 GFLOP/s of torch.mm on n x n matrices (2 n^3 FLOPs per product)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


# --- training loops --------------------------------------------------------------------------

def reference_vae_epoch(model: vae.VAE, x: torch.Tensor, optimizer, batch_size: int) -> None:
    """One epoch the way pytorch/examples' vae/main.py trains: DataLoader, sigmoid, BCE."""
    loader = DataLoader(TensorDataset(x), batch_size=batch_size, shuffle=True)
    model.train()
    train_loss = 0.0
    for (batch,) in loader:
        optimizer.zero_grad()
        mu, logvar = model.encode(batch)
        std = torch.exp(0.5 * logvar)
        z = mu + torch.randn_like(std) * std
        recon = torch.sigmoid(model.decode(z))
        bce = F.binary_cross_entropy(recon, batch.view(-1, 784), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = bce + kld
        loss.backward()
        train_loss += loss.item()
        optimizer.step()


def reference_made_epoch(model: made.MADE, x: torch.Tensor, optimizer, batch_size: int) -> None:
    """The same reference loop for MADE: DataLoader, sigmoid outputs, binary_cross_entropy."""
    loader = DataLoader(TensorDataset(x), batch_size=batch_size, shuffle=True)
    model.train()
    for (batch,) in loader:
        optimizer.zero_grad()
        probs = torch.sigmoid(model(batch))
        loss = F.binary_cross_entropy(probs, batch.view(len(batch), -1), reduction="sum") / len(batch)
        loss.backward()
        optimizer.step()


def images_per_second(run_epoch: Callable[[], None], n_images: int, repeats: int,
                      epochs_per_timing: int = 3) -> list[float]:
    """Images per second over ``epochs_per_timing`` epochs, after one warm-up epoch."""
    run_epoch()  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(epochs_per_timing):
            run_epoch()
        rates.append(epochs_per_timing * n_images / (time.perf_counter() - start))
    return rates


def compare(name: str, make_model, paperlib_epoch, reference_epoch, x: torch.Tensor,
            batch_size: int, repeats: int) -> dict:
    """paperlib's loop against the reference, interleaved so that drift hits all of them alike."""
    loops = {"paperlib": (paperlib_epoch, True), "paperlib_default_adam": (paperlib_epoch, False),
             "reference": (reference_epoch, False)}
    rates: dict[str, list[float]] = {which: [] for which in loops}
    for rep in range(repeats):
        for which, (epoch, fused) in loops.items():
            seed_everything(rep)
            model = make_model()
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
            rates[which] += images_per_second(lambda: epoch(model, x, optimizer, batch_size),
                                              len(x), repeats=1)
    ours, plain, ref = (statistics.median(rates[which]) for which in loops)
    return {"model": name, "batch_size": batch_size, "images": len(x),
            "paperlib_images_per_s": round(ours, 1),
            "paperlib_default_adam_images_per_s": round(plain, 1),
            "reference_images_per_s": round(ref, 1),
            "ratio": round(ours / ref, 3), "ratio_default_adam": round(plain / ref, 3),
            "repeats": repeats}


def vae_flops_per_image(model: vae.VAE, x: torch.Tensor) -> float:
    """FLOPs of one training step (forward and backward), per image."""
    with FlopCounterMode(display=False) as counter:  # the optimiser's FLOPs are not counted
        model.loss(x).backward()
    return counter.get_total_flops() / len(x)


# --- the book ----------------------------------------------------------------------------------

def time_make_test(junit_dir: Path) -> tuple[float, int]:
    """Seconds and exit code of `make test`, which writes its JUnit reports into ``junit_dir``
    (suite.xml for the test suite, nbval.xml for the chapters, which run beside it)."""
    start = time.perf_counter()
    proc = subprocess.run(["make", "test", f"JUNIT_DIR={junit_dir}"], cwd=ROOT)
    return time.perf_counter() - start, proc.returncode


def notebook_times(junit: Path) -> dict[str, float]:
    """Seconds nbval spent per notebook: the sum of its cells' test times."""
    seconds: dict[str, float] = defaultdict(float)
    for case in ET.parse(junit).iter("testcase"):
        where = case.get("classname", "") + "::" + case.get("name", "")
        if ".ipynb" in where and "Cell" in case.get("name", ""):
            notebook = where[:where.index(".ipynb")].replace(".", "/") + ".ipynb"
            seconds[notebook.split("::")[0]] += float(case.get("time", 0))
    return dict(sorted(seconds.items()))


def time_book_build() -> float:
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([str(jupyter_book), "build", str(ROOT), "--path-output", out, "-W",
                        "--keep-going", "--quiet"], cwd=ROOT, check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        return time.perf_counter() - start


# --- main --------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-test", action="store_true", help="do not run make test")
    parser.add_argument("--repeats", type=int, default=5, help="epochs timed per loop (median)")
    args = parser.parse_args()

    results: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                 "torch": torch.__version__, "threads": torch.get_num_threads()}}
    train_x, _ = data.mnist("train", offline=True)
    binary_x = data.binarize(train_x)
    quick = vae.SCALES["quick"]

    peak = matmul_peak_gflops()
    vae_cmp = compare("VAE", lambda: vae.VAE(hidden=quick["hidden"], z_dim=quick["z_dim"]),
                      lambda m, x, opt, b: fit(m, m.loss, x, opt, 1, b, progress=False),
                      reference_vae_epoch, train_x, quick["batch_size"], args.repeats)
    made_cfg = made.SCALES["quick"]
    made_cmp = compare("MADE", lambda: made.MADE(784, [made_cfg["hidden"]], seed=0, direct=False),
                       lambda m, x, opt, b: fit(m, m.loss, x, opt, 1, b, progress=False),
                       reference_made_epoch, binary_x, made_cfg["batch_size"], args.repeats)
    flops = vae_flops_per_image(vae.VAE(hidden=quick["hidden"], z_dim=quick["z_dim"]),
                                train_x[:quick["batch_size"]])
    achieved = flops * vae_cmp["paperlib_images_per_s"] / 1e9
    results["throughput"] = [vae_cmp, made_cmp]
    results["vae_step"] = {"flops_per_image": flops, "achieved_gflops": round(achieved, 2),
                           "matmul_peak_gflops": round(peak, 2),
                           "fraction_of_peak": round(achieved / peak, 3)}
    results["book_build_seconds"] = round(time_book_build(), 1)

    if args.skip_test:
        previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results["make_test"] = previous.get("make_test", {"note": "not measured (--skip-test)"})
        results["notebooks_seconds"] = previous.get("notebooks_seconds", {})
    else:
        with tempfile.TemporaryDirectory() as tmp:
            seconds, code = time_make_test(Path(tmp))
            junit = Path(tmp) / "nbval.xml"
            results["make_test"] = {"seconds": round(seconds, 1), "exit_code": code}
            results["notebooks_seconds"] = ({k: round(v, 1) for k, v in notebook_times(junit).items()}
                                            if junit.exists() else {})

    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    ok = vae_cmp["ratio"] >= TARGET_RATIO
    print(f"\nVAE throughput ratio {vae_cmp['ratio']:.2f}x "
          f"({'meets' if ok else 'BELOW'} the {TARGET_RATIO}x target); results in {RESULTS}")
    return 0


# The training loops each throughput result times: (the table's name for it, its key in the result).
LOOPS = (("paperlib loop", "paperlib_images_per_s"),
         ("paperlib loop with the default Adam", "paperlib_default_adam_images_per_s"),
         ("reference loop (DataLoader, sigmoid+BCE)", "reference_images_per_s"))


def print_table(results: dict) -> None:
    rows = [("what", "measured")]
    for item in results["throughput"]:
        for loop, key in LOOPS:
            rows.append((f"{item['model']} training, {loop}", f"{item[key]:.0f} images/s"))
        rows.append((f"{item['model']} ratio paperlib / reference",
                     f"{item['ratio']:.2f}x ({item['ratio_default_adam']:.2f}x with the default Adam)"))
    step = results["vae_step"]
    rows.append(("VAE step achieved / matmul peak",
                 f"{step['achieved_gflops']:.1f} / {step['matmul_peak_gflops']:.1f} GFLOP/s "
                 f"= {100 * step['fraction_of_peak']:.0f}%"))
    rows.append(("site build (jupyter-book -W)", f"{results['book_build_seconds']:.1f} s"))
    test = results["make_test"]
    rows.append(("make test", f"{test['seconds']:.0f} s (exit {test['exit_code']})"
                 if "seconds" in test else test.get("note", "")))
    for notebook, seconds in results["notebooks_seconds"].items():
        rows.append((f"  nbval {notebook}", f"{seconds:.1f} s"))
    width = max(len(r[0]) for r in rows)
    for left, right in rows:
        print(f"{left:<{width}}  {right}")


if __name__ == "__main__":
    sys.exit(main())
