"""Is plain-56's high training error in the ResNet chapter slow optimisation or divergence?

The chapter trains plain and residual networks on 1,497 of scikit-learn's 8x8 digits with SGD at
learning rate 0.1, no momentum, no warm-up, batch 32, for 188 steps, and plain-56 ends with a high
training error. Two readings: the paper's (the solver makes slow progress on a deep plain
network), or an unstable step size (the chapter measures a first-layer gradient hundreds of times
the classifier's at initialisation, so 0.1 may be far too large for plain-56's first layers).

This script re-runs the chapter's protocol exactly (same split, pixel mean, shuffling and seeds)
for plain-56 at learning rates 0.1, 0.03 and 0.01, and with the paper's own warm-up for its
110-layer network (0.01 for the first epoch, then 0.1), on seeds 0-2, and ResNet-56 at 0.01 on
seed 0 (a control: does a smaller step slow every network?). It
records the loss and the mistakes of every step (on the batch, in train mode, as the paper's
training-error curves are), so that divergence (a loss that climbs above its starting value of
ln 10, or a network stuck at chance) shows, and the final training error in eval mode (BN's
running statistics, as the chapter measures it). It also
runs plain-56 (seed 0) three times longer (564 steps) at 0.1: slow optimisation keeps improving,
a diverged network does not.

    PYTHONPATH=. python bench/resnet_lr_sweep.py     # writes bench/resnet_lr_sweep.json

About five minutes on one idle core. On a busy machine, split it by seed and merge:
``... resnet_lr_sweep.py 0 & ... resnet_lr_sweep.py 1 2; ... resnet_lr_sweep.py --merge
bench/resnet_lr_sweep.part0.json bench/resnet_lr_sweep.part1-2.json``. The chapter (chapters/cnn/resnet.ipynb) loads and plots the JSON.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from paperlib import data, resnet
from paperlib.train import error_rate, seed_everything

OUT = Path(__file__).with_suffix(".json")
SEEDS = [0, 1, 2]
# schedule name -> learning rate of each epoch (the chapter's quick protocol: 4 epochs)
SCHEDULES = {"0.1": [0.1] * 4, "0.03": [0.03] * 4, "0.01": [0.01] * 4,
             "warm-up 0.01, then 0.1": [0.01, 0.1, 0.1, 0.1]}
LONG = {"0.1, 12 epochs": [0.1] * 12}


def split() -> tuple[torch.Tensor, ...]:
    """The chapter's split: a fixed permutation, 1,497 to train, per-pixel mean subtracted."""
    x, y = data.digits()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train_idx = order[:1497]
    pixel_mean = x[train_idx].mean(0, keepdim=True)
    return x[train_idx] - pixel_mean, y[train_idx]


def run(kind: str, depth: int, lrs: list[float], seed: int, x: torch.Tensor,
        y: torch.Tensor) -> dict:
    """resnet.train's loop (SGD, weight decay 1e-4, batch 32), with the loss of every step kept."""
    gen = seed_everything(seed)
    net = resnet.cifar_resnet(depth, plain=kind == "plain", in_channels=1)
    optimizer = torch.optim.SGD(net.parameters(), lr=lrs[0], momentum=0.0, weight_decay=1e-4)
    losses, wrong, errors = [], [], []
    for epoch, lr in enumerate(lrs):
        for group in optimizer.param_groups:
            group["lr"] = lr
        net.train()
        order = torch.randperm(len(x), generator=gen)
        for first in range(0, len(x), 32):
            index = order[first:first + 32]
            logits = net(x[index])
            loss = F.cross_entropy(logits, y[index])
            losses.append(round(loss.item(), 4))
            # mistakes on the batch as it is trained on (train mode: BN uses the batch's statistics)
            wrong.append(int((logits.argmax(1) != y[index]).sum()))
            if not math.isfinite(losses[-1]):
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if not math.isfinite(losses[-1]):
            break
        if len(lrs) > 4 and (epoch + 1) % 4 == 0:  # long runs: every 4 epochs
            errors.append(error_rate(net, x, y))
    error = error_rate(net, x, y) if math.isfinite(losses[-1]) else float("nan")
    return {"network": f"{kind}-{depth}", "seed": seed, "lrs": lrs, "losses": losses,
            "wrong": wrong, "train_error": error, "errors_every_4_epochs": errors}


def main() -> None:
    torch.set_num_threads(1)
    x, y = split()
    start = time.process_time()
    rows = []
    seeds = [int(s) for s in sys.argv[1:]] or SEEDS
    # plain-56 (the question); ResNet-56 at the smallest rate, as a control for "a smaller step
    # slows every network"; plain-56 three times longer at the chapter's rate
    jobs = [("plain", 56, name, lrs, seed) for seed in seeds for name, lrs in SCHEDULES.items()]
    jobs += [("ResNet", 56, "0.01", SCHEDULES["0.01"], seed) for seed in seeds if seed == 0]
    jobs += [("plain", 56, name, lrs, seed) for seed in seeds if seed == 0 for name, lrs in LONG.items()]
    out = OUT if seeds == SEEDS else OUT.with_name(f"{OUT.stem}.part{'-'.join(map(str, seeds))}.json")
    for kind, depth, name, lrs, seed in jobs:
        row = run(kind, depth, lrs, seed, x, y) | {"schedule": name}
        rows.append(row)
        print(f"{row['network']:10} {name:24} seed {seed}: training error "
              f"{100 * row['train_error']:5.1f}%, highest step loss {max(row['losses']):.3g} "
              f"({time.process_time() - start:.0f} s)", flush=True)
        out.write_text(json.dumps({"script": "bench/resnet_lr_sweep.py", "seeds": seeds,
                                   "rows": rows, "complete": False}))
    out.write_text(json.dumps({"script": "bench/resnet_lr_sweep.py", "seeds": seeds,
                               "rows": rows, "complete": True,
                               "cpu_seconds": round(time.process_time() - start)}))
    print(f"wrote {out} in {time.process_time() - start:.0f} s of CPU", file=sys.stderr)


def merge(parts: list[Path]) -> None:
    """Join the files of runs split by seed (``python bench/resnet_lr_sweep.py 0`` and ``... 1 2``)."""
    loaded = [json.loads(p.read_text()) for p in parts]
    assert all(part["complete"] for part in loaded), "a part is not complete"
    OUT.write_text(json.dumps({"script": "bench/resnet_lr_sweep.py",
                               "seeds": sorted(s for part in loaded for s in part["seeds"]),
                               "rows": [r for part in loaded for r in part["rows"]], "complete": True,
                               "cpu_seconds": sum(part["cpu_seconds"] for part in loaded)}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--merge"]:
        merge([Path(p) for p in sys.argv[2:]])
    else:
        main()
