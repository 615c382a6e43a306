"""Step-size sweeps for the Adam chapter, on seeds 0-2, with step sizes chosen on held-out digits.

The chapter (chapters/optimization/adam.ipynb) loads the JSON this writes and plots it:

* logistic regression (the paper's Fig. 1): each optimizer's step size over a half-decade grid,
  trained on the first 4,000 offline MNIST digits, scored by the cross-entropy on the 500
  validation digits that follow them (``paperlib.adam.SCALES["quick"]["held_out"]``) and on the
  500 test digits. The chapter trains with the step size of lowest mean validation loss, so the
  training loss it reports was not the selection criterion;
* the VAE with and without the bias correction (the paper's Fig. 4): beta2 in {0.99, 0.999, 0.9999}
  and alpha over a half-decade grid, the validation and test negative ELBO after the chapter's 80
  steps, plus the worst minibatch loss after step 5 and the mean of the last 20 minibatch losses.

Quick scale, one CPU thread, about two minutes:

    PYTHONPATH=. python bench/adam_sweep.py          # writes bench/adam_sweep.json
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from paperlib import adam, data

OUT = Path(__file__).with_name("adam_sweep.json")
SEEDS = (0, 1, 2)
LOGREG_GRIDS = {
    "Adam": (0.003, 0.01, 0.03, 0.1),
    "AdaGrad": (0.03, 0.1, 0.3, 1.0),
    "SGD + Nesterov": (0.1, 0.3, 1.0, 3.0),
}
VAE_LRS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
BETA2S = (0.99, 0.999, 0.9999)


def make(name: str, lr: float):
    if name == "Adam":
        return lambda p: adam.Adam(p, lr=lr)
    if name == "AdaGrad":
        return lambda p: torch.optim.Adagrad(p, lr=lr)
    return lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True)


def main() -> None:
    torch.set_num_threads(1)
    scale = adam.SCALES["quick"]
    x, y = data.mnist("train", offline=scale["offline"])
    x = x.flatten(1)
    n = len(x) - scale["held_out"]
    fit_x, fit_y, held_x, held_y = x[:n], y[:n], x[n:], y[n:]
    test_x, test_y = data.mnist("test", offline=scale["offline"])
    test_x = test_x.flatten(1)
    start = time.process_time()

    logreg = []
    for name, grid in LOGREG_GRIDS.items():
        for lr in grid:
            for seed in SEEDS:
                run = adam.train_logreg(make(name, lr), fit_x, fit_y, scale["logreg_epochs"],
                                        scale["batch_size"], seed=seed,
                                        held_out=[(held_x, held_y), (test_x, test_y)])
                logreg.append({"optimizer": name, "lr": lr, "seed": seed, "train": run["train"],
                               "validation": run["held_out"][0], "test": run["held_out"][1]})
                print(f"logreg {name:15s} lr {lr:<6} seed {seed}: validation "
                      f"{run['held_out'][0]:.4f}",
                      flush=True)

    vae_runs = []
    for lr in VAE_LRS:
        for beta2 in BETA2S:
            for corrected in (True, False):
                for seed in SEEDS:
                    run = adam.train_vae(fit_x, beta2, corrected, lr, scale["vae_steps"],
                                         scale["vae_hidden"], seed=seed,
                                         held_out=[held_x, test_x])
                    losses = run["losses"]
                    row = {"lr": lr, "beta2": beta2, "corrected": corrected, "seed": seed,
                           "steps": len(losses), "validation": run["held_out"][0],
                           "test": run["held_out"][1],
                           "worst_after_5": max(losses[5:]) if len(losses) > 5 else None,
                           "last20": float(np.mean(losses[-20:])),
                           "first": losses[0]}
                    vae_runs.append(row)
                    print(f"vae lr {lr:<6} beta2 {beta2:<6} corrected {corrected!s:5} seed {seed}: "
                          f"validation {row['validation']}, worst {row['worst_after_5']:.1f}", flush=True)

    OUT.write_text(json.dumps({
        "script": "bench/adam_sweep.py",
        "scale": "quick", "fit_digits": n, "validation_digits": len(held_x),
        "test_digits": len(test_x), "seeds": list(SEEDS),
        "torch": torch.__version__, "machine": platform.machine(),
        "cpu_seconds": round(time.process_time() - start, 1),
        "logreg": logreg, "vae": vae_runs}, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
