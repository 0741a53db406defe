"""Long work shows progress off a terminal; torch threads are pinned only where asked, and restored."""

from __future__ import annotations

import logging

import pytest
import torch

import unfoldtheory as ut
from unfoldtheory._device import torch_threads
from unfoldtheory._progress import progress


def test_progress_logs_lines_when_not_on_a_terminal(caplog, monkeypatch):
    monkeypatch.setattr("unfoldtheory._progress._interactive", lambda: False)
    with caplog.at_level(logging.INFO, logger="unfoldtheory.progress"):
        bar = progress(4, "work", interval=0.0)
        for _ in range(4):
            bar.set_postfix(loss=0.5)
            bar.update(1)
        bar.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "unfoldtheory.progress"]
    assert lines and lines[0].startswith("work: 1/4 (25%)") and "loss=0.5" in lines[0]
    assert lines[-1].endswith("(done)") and "4/4 (100%)" in lines[-1]


def test_progress_is_silent_when_disabled(caplog):
    with caplog.at_level(logging.INFO, logger="unfoldtheory.progress"):
        bar = progress(2, "quiet", enabled=False, interval=0.0)
        bar.update(2)
        bar.close()
    assert not [r for r in caplog.records if r.name == "unfoldtheory.progress"]


def test_training_reports_progress_off_a_terminal(caplog, monkeypatch):
    monkeypatch.setattr("unfoldtheory._progress._interactive", lambda: False)
    gen = ut.problems.SparseRecovery.gaussian(m=6, n=10, p=0.2, snr_db=40, seed=0)
    net = ut.models.LISTA(gen.A, 2, device="cpu")
    import unfoldtheory.training as tr

    monkeypatch.setattr(tr, "make_progress", lambda total, desc, enabled=True: progress(total, desc, enabled, 0.0))
    with caplog.at_level(logging.INFO, logger="unfoldtheory.progress"):
        ut.training.train(net, gen, epochs=1, steps_per_epoch=3, batch_size=8, val_size=8, num_threads=1)
    assert any("LISTA [end_to_end]: 3/3" in r.getMessage() for r in caplog.records)


def test_torch_threads_pins_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None) as n:
        assert n == before
    with pytest.raises(ut.InvalidInputError, match="num_threads"):
        with torch_threads(0):
            pass


def test_train_restores_the_callers_threads():
    before = torch.get_num_threads()
    gen = ut.problems.SparseRecovery.gaussian(m=6, n=10, p=0.2, snr_db=40, seed=0)
    net = ut.models.LISTA(gen.A, 2, device="cpu")
    ut.training.train(net, gen, epochs=1, steps_per_epoch=2, batch_size=8, val_size=8, num_threads=1,
                      progress=False)
    assert torch.get_num_threads() == before
    with pytest.raises(ut.InvalidInputError, match="num_threads"):
        ut.training.train(net, gen, epochs=1, steps_per_epoch=2, num_threads=-1)


def test_cli_threads_option(tmp_path, capsys):
    from unfoldtheory.cli import main

    assert main(["claims", "--threads", "1"]) == 0
    assert main(["claims", "--threads", "-2"]) == 2
    assert "--threads must be >= 0" in capsys.readouterr().err
