"""paperlib.train: seeding, device choice, and the fit loop's contract."""

import pytest
import torch
from torch import nn

from paperlib.chapter import setup
from paperlib.train import fit, one_thread, pick_device, seed_everything


def test_seeding_makes_runs_repeatable():
    seed_everything(3)
    a = torch.randn(4)
    seed_everything(3)
    assert torch.equal(a, torch.randn(4))
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device().type in {"cpu", "cuda", "mps"}


def regression(n=256):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    return x, y


def test_fit_reduces_the_loss_and_records_history():
    x, y = regression()
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    seen = []
    history = fit(model, lambda xb, yb: (model(xb).squeeze(1) - yb).pow(2).mean(), (x, y),
                  torch.optim.SGD(model.parameters(), lr=0.1), epochs=20, batch_size=32,
                  generator=torch.Generator().manual_seed(0), progress=False,
                  on_epoch_end=lambda epoch, seconds: seen.append(epoch))
    assert len(history.loss) == len(history.seconds) == 20 and seen == list(range(20))
    assert history.loss[-1] < 1e-3 * history.loss[0]
    assert history.seconds == sorted(history.seconds)


def test_fit_stops_with_a_clear_error_on_nan():
    x, y = regression()
    model = nn.Linear(3, 1)
    before = model.weight.detach().clone()
    calls = []

    def loss_fn(xb, yb):                     # finite twice, then NaN
        calls.append(1)
        return model(xb).sum() * (float("nan") if len(calls) == 3 else 1.0)

    with pytest.raises(FloatingPointError, match=r"step 3 \(epoch 1\)") as raised:
        fit(model, loss_fn, (x, y), torch.optim.SGD(model.parameters(), lr=0.0), epochs=2,
            batch_size=8, progress=False)
    # the two finite steps are recorded; the NaN never reached backward or the optimizer
    assert len(raised.value.history.step_loss) == 2
    assert torch.equal(model.weight, before)


def test_fit_counts_steps_across_epochs():
    x, y = regression(64)                    # 8 batches of 8 per epoch
    model = nn.Linear(3, 1)
    history = fit(model, lambda xb, yb: (model(xb).squeeze(1) - yb).pow(2).mean(), (x, y),
                  torch.optim.SGD(model.parameters(), lr=0.01), steps=19, batch_size=8, progress=False)
    assert len(history.step_loss) == 19 and len(history.loss) == 3   # 8 + 8 + 3 steps
    assert history.loss[0] == pytest.approx(sum(history.step_loss[:8]) / 8)


def test_fit_without_data_calls_the_loss_with_no_arguments():
    model = nn.Linear(2, 1)
    draws = []

    def free_energy():
        draws.append(1)
        return model(torch.ones(4, 2)).pow(2).mean()

    history = fit(model, free_energy, None, torch.optim.SGD(model.parameters(), lr=0.1), steps=5,
                  progress=False)
    assert len(draws) == 5 == len(history.step_loss) and len(history.loss) == 1
    assert history.step_loss[-1] < history.step_loss[0]
    with pytest.raises(ValueError, match="^steps"):
        fit(model, free_energy, None, torch.optim.SGD(model.parameters()), epochs=2, progress=False)
    with pytest.raises(ValueError, match="^epochs"):
        fit(model, free_energy, (torch.ones(3, 2),), torch.optim.SGD(model.parameters()), epochs=1,
            steps=1, progress=False)


def test_fit_respects_the_time_budget():
    x, y = regression()
    model = nn.Linear(3, 1)
    history = fit(model, lambda xb, yb: (model(xb).squeeze(1) - yb).pow(2).mean(), (x, y),
                  torch.optim.SGD(model.parameters(), lr=0.01), epochs=10_000, batch_size=8,
                  max_seconds=0.2, progress=False)
    assert len(history.loss) < 10_000 and history.seconds[-1] >= 0.2


def test_in_a_notebook_the_progress_bar_leaves_one_line_without_timings(monkeypatch, tmp_path):
    """Inside Jupyter the bar is one output replaced in place, ending as a summary: no stack of
    stderr fragments in the saved notebook (or on the website), nothing that varies between runs."""
    import os
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import torch\nfrom torch import nn\nfrom paperlib.train import fit\n"
        "torch.manual_seed(0)\nm = nn.Linear(2, 1)\nx = torch.randn(3000, 2)\n"
        "fit(m, lambda xb: m(xb).pow(2).mean(), x, torch.optim.SGD(m.parameters(), lr=0.01),\n"
        "    epochs=2, batch_size=10)\nprint('done')")]
    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data", "stream"], outputs
    # the same text nbval records (the first display) and nbclient saves (the last update)
    assert outputs[0].data["text/plain"] == "training: 2 epochs, 600 steps"
    assert outputs[1].name == "stdout" and outputs[1].text == "done\n"
    # and nbval, which records the first display and not its updates, agrees with the saved copy
    import subprocess
    import sys

    saved = tmp_path / "fit.ipynb"
    nbformat.write(nb, saved)
    nbval = subprocess.run([sys.executable, "-m", "pytest", str(saved), "--nbval", "-q",
                            "-p", "no:cacheprovider"], capture_output=True, text=True, cwd=tmp_path)
    assert nbval.returncode == 0, nbval.stdout[-2000:]


def test_chapter_setup_seeds_picks_the_scale_and_limits_threads_in_quick_mode(capsys):
    scales = {"quick": {"steps": 5}, "paper": {"steps": 5000}}
    before = torch.get_num_threads()
    try:
        scale, generator, device = setup(True, scales, seed=3, threads=1)
        assert scale == {"steps": 5} and "scale: quick" in capsys.readouterr().out
        assert torch.equal(torch.randn(3), (seed_everything(3), torch.randn(3))[1])
        assert torch.equal(torch.randn(2, generator=generator),
                           torch.randn(2, generator=torch.Generator().manual_seed(3)))
        assert device == pick_device() and torch.get_num_threads() == 1
        torch.set_num_threads(2)
        assert setup(False, scales)[0] == {"steps": 5000} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_one_thread_restores_the_setting_even_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with one_thread():
            assert torch.get_num_threads() == 1
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
