"""The console side of a run: a progress line now and then when there is no terminal for a bar."""

from cnnkit.engine import logger as run_logger


def logger_on_a_clock(tmp_path, monkeypatch, verbose: bool, steps: int):
    """A RunLogger writing to no terminal, its epoch started, and the list that holds its clock."""
    clock = [100.0]
    monkeypatch.setattr(run_logger.time, "perf_counter", lambda: clock[0])
    log = run_logger.RunLogger(tmp_path, enabled=True, verbose=verbose)
    log.tty = False
    log.epoch_start(0, 3, steps)
    return log, clock


def test_progress_lines_without_a_terminal(tmp_path, monkeypatch, capsys):
    """Regression: with stderr not a terminal, an epoch printed nothing until it ended."""
    log, clock = logger_on_a_clock(tmp_path, monkeypatch, verbose=True, steps=500)
    stats = {"step": 10, "loss": 0.5, "img/s": 40.0}
    log.progress(stats)  # too soon for a line
    clock[0] += run_logger.PROGRESS_EVERY_S
    log.progress({**stats, "step": 120})
    clock[0] += 1.0
    log.progress({**stats, "step": 130})  # too soon again
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    # 120 steps in 30 s, 1,380 to go in the whole run (3 epochs of 500): 345 s
    assert lines == ["epoch 1/3 step 120/500 loss 0.5000 40 img/s, run ends in about 5m45s"]
    log.close()


def test_no_progress_lines_when_quiet(tmp_path, monkeypatch, capsys):
    log, clock = logger_on_a_clock(tmp_path, monkeypatch, verbose=False, steps=10)
    clock[0] += 10 * run_logger.PROGRESS_EVERY_S
    log.progress({"step": 5, "loss": 1.0, "img/s": 1.0})
    assert capsys.readouterr().out == ""
    log.close()


def test_the_run_eta_counts_only_this_process_steps(tmp_path, monkeypatch):
    """A resumed run (epoch 2, step 100 done before) estimates from its own pace, not from steps it did not run."""
    clock = [0.0]
    monkeypatch.setattr(run_logger.time, "perf_counter", lambda: clock[0])
    log = run_logger.RunLogger(tmp_path, enabled=True, verbose=False)
    log.epoch_start(1, 4, 200, first_step=100)
    clock[0] += 50.0
    assert log.run_eta(150) == "7m30s"  # 50 steps in 50 s here; 800 - 350 = 450 steps left: 450 s
    log.close()


def test_no_bar_in_a_terminal_of_no_width(monkeypatch):
    """Regression: under `script` the terminal had 0 columns: tqdm drew nothing, and the 30 s lines were off."""
    import os

    from cnnkit import progress

    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(os, "get_terminal_size", lambda fd=0: os.terminal_size((0, 0)))
    assert not progress.bars_shown()
    monkeypatch.setattr(os, "get_terminal_size", lambda fd=0: os.terminal_size((80, 24)))
    monkeypatch.setattr(progress.sys.stderr, "fileno", lambda: 2, raising=False)
    assert progress.bars_shown()
