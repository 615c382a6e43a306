"""Seeding, device choice and a minimal training loop shared by every chapter."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from paperlib._checks import positive_int


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def pick_device(prefer: str | None = None) -> torch.device:
    """``prefer`` if given, else the first of cuda, mps and cpu that is available."""
    if prefer is not None:
        try:
            return torch.device(prefer)
        except RuntimeError as error:
            raise ValueError(f"prefer: expected a device such as 'cpu' or 'cuda', "
                             f"got {prefer!r}") from error
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class History:
    """Per-epoch mean training loss and the wall-clock seconds at the end of each epoch."""

    loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def finite_loss(loss: Tensor, where: str) -> float:
    """The loss as a float (one synchronisation), or FloatingPointError if it is NaN or infinite.

    Call it before ``backward``: the parameters are still finite when it raises.
    """
    value = loss.item()
    if not math.isfinite(value):
        raise FloatingPointError(f"loss became {value} at {where}: lower the learning rate or "
                                 "check the inputs")
    return value


def _in_jupyter() -> bool:
    """True inside a Jupyter kernel (Jupyter, Colab, nbval), where stderr is not a terminal."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class _NotebookLine:
    """Where tqdm writes inside Jupyter: one output line, replaced in place as training runs.

    tqdm's own notebook bar is a widget, and its terminal bar leaves one saved output fragment per
    refresh ("\\rtraining: 22%|..."), which the website then shows as a stack of grey boxes.
    Here the live bar is a single display, and ``close`` puts back the line it started with, a
    plan without timings: tools that record only the first display (nbval) and tools that apply
    every update (nbclient, Jupyter) then save the same text, on every run and every machine.
    """

    def __init__(self, plan: str) -> None:
        from IPython.display import Pretty, display

        self._pretty, self._plan = Pretty, plan
        self._handle = display(Pretty(plan), display_id=True)

    def write(self, text: str) -> None:
        text = text.strip("\r\n ")
        if text:
            self._handle.update(self._pretty(text))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._handle.update(self._pretty(self._plan))


def fit(model: nn.Module, loss_fn: Callable[[Tensor], Tensor], data: Tensor | tuple[Tensor, ...],
        optimizer: torch.optim.Optimizer, epochs: int, batch_size: int = 100,
        generator: torch.Generator | None = None, max_seconds: float | None = None,
        on_epoch_end: Callable[[int, float], None] | None = None,
        progress: bool = True) -> History:
    """Minimise ``loss_fn(*batch)`` over shuffled mini-batches of ``data``.

    ``data`` is a tensor or a tuple of tensors sharing their first dimension; each batch is
    moved to the model's device. Stops after ``epochs`` epochs or ``max_seconds`` of training,
    whichever comes first, and raises ``FloatingPointError`` as soon as a loss is NaN or
    infinite. ``on_epoch_end(epoch, seconds)`` runs after each epoch, outside the timed budget.
    """
    tensors = data if isinstance(data, tuple) else (data,)
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError("data: all tensors must have the same first dimension")
    positive_int("epochs", epochs)
    positive_int("batch_size", batch_size)
    device = next(model.parameters()).device
    history, elapsed = History(), 0.0
    steps = epochs * math.ceil(n / batch_size)
    plan = f"training: {epochs} epoch{'s' * (epochs != 1)}, {steps:,} steps"
    line = _NotebookLine(plan) if progress and _in_jupyter() else None
    with tqdm(total=steps, disable=not progress, leave=False, desc="training",
              mininterval=2.0, file=line) as bar:
        for epoch in range(epochs):
            start, total = time.perf_counter(), 0.0
            model.train()
            order = torch.randperm(n, generator=generator)
            for first in range(0, n, batch_size):
                index = order[first:first + batch_size]
                loss = loss_fn(*(t[index].to(device) for t in tensors))
                value = finite_loss(loss, f"epoch {epoch + 1}, batch {first // batch_size + 1}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += value * len(index)
                bar.update()
            elapsed += time.perf_counter() - start
            history.loss.append(total / n)
            history.seconds.append(elapsed)
            bar.set_postfix(loss=f"{total / n:.4g}", refresh=False)
            if on_epoch_end is not None:
                model.eval()
                on_epoch_end(epoch, elapsed)
            if max_seconds is not None and elapsed >= max_seconds:
                break
    if line is not None:
        line.close()
    model.eval()
    return history


@torch.no_grad()
def error_rate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> float:
    """The fraction of ``x`` that the classifier ``model`` (in eval mode) misclassifies."""
    if len(x) == 0:
        raise ValueError("x: expected at least one example")
    if len(x) != len(y):
        raise ValueError(f"y: expected {len(x)} labels (one per example), got {len(y)}")
    positive_int("batch_size", batch_size)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        wrong = sum((model(x[k:k + batch_size].to(device)).argmax(1).cpu() != y[k:k + batch_size])
                    .sum().item() for k in range(0, len(x), batch_size))
    finally:
        model.train(was_training)
    return wrong / len(x)
