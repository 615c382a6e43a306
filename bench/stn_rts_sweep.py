"""The spatial-transformer chapter's side experiment: test error against training length, 3 seeds.

The chapter trains each model for one fixed number of epochs on RTS MNIST (Table 1's rotated,
translated and scaled digits on a 42 x 42 canvas). This script checks that the FCN -> ST-FCN gap
is not an artefact of that choice: FCN, ST-FCN and the control ST-FCN (theta = I) for 5 to 40
epochs, seeds 0-2, the chapter's quick settings otherwise. It also records how far each trained
ST-FCN undoes the pose (``distorted_mnist.pose_slopes``). Writes bench/stn_rts_sweep.json, which the chapter
plots.

    PYTHONPATH=. python bench/stn_rts_sweep.py [--epochs 5 10 20 40] [--seeds 0 1 2]

About 3 CPU minutes on one thread (the sum of the cpu_seconds it records).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from paperlib import distorted_mnist, stn_models
from paperlib.train import error_rate

OUT = Path(__file__).with_suffix(".json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[5, 10, 20, 40])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=["FCN", "ST-FCN", "ST-FCN" + stn_models.FROZEN])
    args = parser.parse_args()
    torch.set_num_threads(1)
    quick = stn_models.SCALES["quick"]
    train_x, train_y, _ = distorted_mnist.rts_mnist("train", canvas=quick["image_size"], seed=0)
    test_x, test_y, test_pose = distorted_mnist.rts_mnist("test", canvas=quick["image_size"], seed=1)
    runs = []
    for seed in args.seeds:
        for epochs in args.epochs:
            for name in args.models:
                scale = dict(quick, epochs={m: epochs for m in stn_models.MODELS})
                start = time.process_time()
                model = stn_models.train(name, scale, train_x, train_y, seed=seed)
                row = dict(model=name, epochs=epochs, seed=seed,
                           cpu_seconds=round(time.process_time() - start, 2),
                           test_error=error_rate(model, test_x, test_y),
                           train_error=error_rate(model, train_x, train_y))
                if model.stn is not None:
                    with torch.no_grad():
                        theta = model.stn.theta(test_x)
                    row["pose_slopes"] = distorted_mnist.pose_slopes(theta, test_pose, quick["image_size"])
                runs.append(row)
                print(json.dumps(row), flush=True)
    OUT.write_text(json.dumps(dict(script="bench/stn_rts_sweep.py", torch=torch.__version__,
                                   settings={k: v for k, v in quick.items() if k != "epochs"},
                                   runs=runs), indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
