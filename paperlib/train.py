"""Seeding, device choice and a minimal training loop shared by every chapter."""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import time
from collections.abc import Callable, Iterator
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
    """What a training loop records: the loss of every step, the mean loss of every epoch and the
    wall-clock seconds at the end of each epoch (a run without data is one epoch)."""

    step_loss: list[float] = field(default_factory=list)
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


def gradient_step(optimizer: torch.optim.Optimizer, loss: Tensor, where: str) -> float:
    """One step of ``optimizer`` on ``loss``: the loss read back once (``finite_loss``, which raises
    before ``backward`` if it is not finite), then zero_grad, backward and step. Returns the loss."""
    value = finite_loss(loss, where)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
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


def _batches(tensors: tuple[Tensor, ...], batch_size: int, generator: torch.Generator | None,
             device: torch.device) -> Iterator[Iterator[tuple[Tensor, ...]]]:
    """Epoch after epoch: the shuffled mini-batches of ``tensors``, each moved to ``device``."""
    n = len(tensors[0])
    while True:
        order = torch.randperm(n, generator=generator)
        yield (tuple(t[index].to(device) for t in tensors) for index in order.split(batch_size))


def fit(model: nn.Module, loss_fn: Callable[..., Tensor], data: Tensor | tuple[Tensor, ...] | None,
        optimizer: torch.optim.Optimizer, epochs: int | None = None, batch_size: int = 100,
        generator: torch.Generator | None = None, max_seconds: float | None = None,
        on_epoch_end: Callable[[int, float], None] | None = None, progress: bool = True, *,
        steps: int | None = None) -> History:
    """Minimise ``loss_fn`` by gradient steps of ``optimizer``; the one training loop of the book.

    ``data`` is a tensor or a tuple of tensors sharing their first dimension: each step calls
    ``loss_fn(*batch)`` on a shuffled mini-batch, moved to the model's device. With
    ``data=None`` each step calls ``loss_fn()``, which draws its own batch (a flow's samples from
    its base density). Give the length as ``epochs`` (passes over ``data``) or as ``steps``
    (gradient steps, the last pass cut short); ``max_seconds`` stops earlier. The loss is read
    back once per step, and a NaN or infinite loss raises ``FloatingPointError`` before its
    ``backward``, carrying the ``history`` recorded so far. ``on_epoch_end(epoch, seconds)`` runs
    after each epoch, outside the timed budget.
    """
    if (epochs is None) == (steps is None):
        raise ValueError(f"epochs: give exactly one of epochs and steps, got epochs={epochs!r}, "
                         f"steps={steps!r}")
    if data is None:
        if steps is None:
            raise ValueError("steps: a loss that draws its own batches (data=None) needs steps")
        epochs, batches = 1, iter([itertools.repeat((), steps)])
        plan = f"training: {steps:,} steps"
    else:
        tensors = data if isinstance(data, tuple) else (data,)
        if any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("data: all tensors must have the same first dimension")
        positive_int("batch_size", batch_size)
        per_epoch = math.ceil(len(tensors[0]) / batch_size)
        if steps is not None:
            positive_int("steps", steps)
            epochs = math.ceil(steps / per_epoch)
        positive_int("epochs", epochs)
        steps = steps if steps is not None else epochs * per_epoch
        batches = _batches(tensors, batch_size, generator, next(model.parameters()).device)
        plan = f"training: {epochs} epoch{'s' * (epochs != 1)}, {steps:,} steps"
    history, elapsed, step = History(), 0.0, 0
    line = _NotebookLine(plan) if progress and _in_jupyter() else None
    with tqdm(total=steps, disable=not progress, leave=False, desc="training",
              mininterval=2.0, file=line) as bar:
        for epoch, epoch_batches in zip(range(epochs), batches):
            start, total, seen = time.perf_counter(), 0.0, 0
            model.train()
            for batch in itertools.islice(epoch_batches, steps - step):
                loss = loss_fn(*batch)
                try:
                    value = gradient_step(optimizer, loss, f"step {step + 1} (epoch {epoch + 1})")
                except FloatingPointError as error:
                    error.history = history
                    raise
                history.step_loss.append(value)
                size = len(batch[0]) if batch else 1  # the epoch's mean loss is per example
                total, seen, step = total + value * size, seen + size, step + 1
                bar.update()
            elapsed += time.perf_counter() - start
            history.loss.append(total / seen)
            history.seconds.append(elapsed)
            bar.set_postfix(loss=f"{history.loss[-1]:.4g}", refresh=False)
            if on_epoch_end is not None:
                model.eval()
                on_epoch_end(epoch, elapsed)
            if max_seconds is not None and elapsed >= max_seconds:
                break
    if line is not None:
        line.close()
    model.eval()
    return history


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread, then restore the setting: for tiny tensors, waking a
    second thread per operation costs far more than it saves (and much more on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
