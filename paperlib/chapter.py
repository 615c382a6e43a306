"""The set-up cell every chapter runs after its parameters: one call instead of eight variants."""

from __future__ import annotations

import torch

from paperlib import plot
from paperlib.train import pick_device, seed_everything

SCALE_NAMES = ("quick", "paper")


def setup(quick: bool, scales: dict[str, dict], seed: int = 0, *, threads: int | None = 1
          ) -> tuple[dict, torch.Generator, torch.device]:
    """Prepare a chapter: the book's figure style, every random generator seeded with ``seed``,
    the device picked, and the experiment sizes ``scales["quick"]`` or ``scales["paper"]``.

    In quick mode on a CPU, torch is limited to ``threads`` threads (``None`` keeps its default):
    the quick models are small, and a second thread mostly waits for the first on a busy machine.
    Prints the scale chosen and returns ``(scale, generator, device)``.
    """
    if not isinstance(quick, bool):
        raise TypeError(f"quick: expected True (CPU minutes) or False (paper scale), got {quick!r}")
    if set(scales) != set(SCALE_NAMES):
        raise ValueError(f"scales: expected the keys {SCALE_NAMES}, got {tuple(scales)}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads: expected a positive number of threads or None, got {threads!r}")
    plot.use_book_style()
    generator = seed_everything(seed)
    device = pick_device()
    if quick and threads is not None and device.type == "cpu":
        torch.set_num_threads(threads)
    name = "quick" if quick else "paper"
    print(f"scale: {name}, {scales[name]}")
    return scales[name], generator, device
