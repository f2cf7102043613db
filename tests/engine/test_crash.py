"""Training killed with SIGKILL again and again, each time continued with --resume, ends with the
weights of a run never interrupted (CPU, --deterministic, --workers 0), and no temporary file left.

Half of the kills land inside a write (of last.pt, best.pt or config.yaml, in turn): the child's
``os.fsync`` is slowed (0.3 s) so that the partial ``.<name>.*.tmp`` file is on disk long enough for
the test to see it and kill then; the other half at random moments.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

SLOW_FSYNC = ("import os, sys, time\n"
              "real = os.fsync\n"
              "os.fsync = lambda fd: (time.sleep(0.3), real(fd))[1]\n"
              "from cnnkit.cli.main import main\n"
              "sys.exit(main(sys.argv[1:]))\n")


def command(project: Path, resume: bool) -> list[str]:
    return [sys.executable, "-c", SLOW_FSYNC, "train", "classify", "--data", "shapes:64", "--model", "basic_cnn",
            "--imgsz", "24", "--epochs", "4", "--batch", "8", "--deterministic", "--workers", "0",
            "--save-period", "0.004", "--project", str(project), "--name", "run", "--no-verbose", "--seed", "3",
            *(["--resume"] if resume else [])]


WRITES = ("last.pt", "best.pt", "last.pt", "config.yaml")  # the files whose writes the kills land in, in turn


def temporaries(run: Path, name: str = "*") -> list[Path]:
    return list(run.glob(f".{name}.*.tmp")) if run.is_dir() else []


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def kill_when(proc: subprocess.Popen, run: Path, in_write: str, rng: random.Random) -> bool:
    """SIGKILL ``proc`` inside a write of the file ``in_write`` or, without one, at a random moment;
    False if it finished first."""
    stale = set(temporaries(run))  # the last kill's, which the new process removes as it starts
    started, deadline, training = time.time(), time.monotonic() + 60, False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if in_write and set(temporaries(run, in_write)) - stale:
            break
        config = run / "config.yaml"
        if not in_write and not training and config.is_file() and config.stat().st_mtime >= started:
            # training has begun (config.yaml is written once the data is read): a random moment in it,
            # short enough that ten kills come before the run's end
            training, deadline = True, time.monotonic() + rng.uniform(0.0, 1.2)
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def test_killed_again_and_again_resumes_to_the_uninterrupted_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    straight = subprocess.run(command(tmp_path / "a", False), env=env, capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]

    run, rng, kills, in_writes = tmp_path / "b" / "classify" / "run", random.Random(13), 0, 0
    for attempt in range(40):
        resume = (run / "config.yaml").is_file()  # killed before the run folder was made: start it again
        proc = subprocess.Popen(command(tmp_path / "b", resume), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        in_write = WRITES[attempt // 2 % len(WRITES)] if attempt % 2 == 0 else ""
        if kills >= 10 or not kill_when(proc, run, in_write, rng):
            _, err = proc.communicate(timeout=300)
            if proc.returncode == 0:
                break
            pytest.fail(f"attempt {attempt} exited {proc.returncode}: {err[-2000:]}")
        kills += 1
        in_writes += bool(in_write)
    assert kills >= 10 and in_writes >= 5
    assert proc.returncode == 0
    assert not temporaries(run), temporaries(run)
    a, b = weights(tmp_path / "a" / "classify" / "run" / "last.pt"), weights(run / "last.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run's"
