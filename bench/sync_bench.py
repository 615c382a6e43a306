"""Training throughput of the loss paths that used to synchronise on data every call.

Times, on the CPU (or ``--device``), in one short run:

* the VAE chapter's training epoch (``fit`` on ``VAE.loss``, quick scale, Adam fused), images/s:
  ``bernoulli_nll`` used to scan the batch with ``aminmax`` and read the result back;
* ``adam.train_vae`` (the Adam chapter's VAE run, quick scale), steps/s: its loss function used to
  call ``.item()`` on every step on top of ``fit``'s own;
* a K = 10 planar ``NormalizingFlow`` forward and backward on a batch of 256, steps/s: ``planar``
  used to test ``w^T u > -1`` with ``.any()`` in every layer.

Run it against two checkouts with the same interpreter to compare them, e.g.
``PYTHONPATH=/path/to/old python bench/sync_bench.py`` then ``PYTHONPATH=$PWD python bench/sync_bench.py``.
Prints the median of ``--repeats`` timings of each. On the CPU it counts this process's CPU time on
one thread (``--threads``), not wall-clock time: on a machine shared with other jobs, wall-clock
rates here moved by a factor of 50 between identical runs. On a GPU, where the read-backs cost
wall-clock time while the CPU waits, pass ``--wall``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from paperlib import adam, data, flows, vae
from paperlib.train import fit, seed_everything


def median_rate(run, units: float, repeats: int, clock=time.process_time) -> float:
    run()  # warm-up
    rates = []
    for _ in range(repeats):
        start = clock()
        run()
        rates.append(units / (clock() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--wall", action="store_true", help="time wall-clock, not process CPU time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.wall else time.process_time
    device = torch.device(args.device)
    x, _ = data.mnist("train", offline=True)
    x = x[:2000].to(device)
    quick = vae.SCALES["quick"]

    seed_everything(0)
    model = vae.VAE(hidden=quick["hidden"], z_dim=quick["z_dim"]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    vae_rate = median_rate(lambda: fit(model, model.loss, x, optimizer, 1, quick["batch_size"],
                                       progress=False), len(x), args.repeats, clock)

    steps = 40
    adam_rate = median_rate(lambda: adam.train_vae(x, 0.999, True, 1e-3, steps, hidden=200),
                            steps, args.repeats, clock)

    seed_everything(0)
    flow = flows.NormalizingFlow(2, 10).to(device)
    flow_opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    generator = torch.Generator(device=device).manual_seed(0)

    def flow_steps(n: int = 50) -> None:
        for _ in range(n):
            loss = potentials.free_energy(flow, 2, 256, generator=generator)
            flow_opt.zero_grad(set_to_none=True)
            loss.backward()
            flow_opt.step()

    flow_rate = median_rate(flow_steps, 50, args.repeats, clock)
    print(f"device {device}, torch threads {torch.get_num_threads()}, medians of {args.repeats}, "
          f"{'wall-clock' if args.wall else 'process CPU'} time")
    print(f"VAE fit epoch (quick scale, 2,000 digits): {vae_rate:8.0f} images/s")
    print(f"adam.train_vae ({steps} steps, hidden 200):   {adam_rate:8.1f} steps/s")
    print(f"planar flow K=10 free-energy step, N=256:  {flow_rate:8.1f} steps/s")


if __name__ == "__main__":
    main()
