"""The engine on tiny synthetic runs: run folder, resume, early stopping, options."""

import csv
import functools

import pytest
import torch

import cnnkit
from cnnkit.api import train_with
from cnnkit.config import make_config
from cnnkit.engine.checkpoint import load_checkpoint
from cnnkit.errors import CnnkitError

TINY = dict(task="classify", data="shapes:64", model="basic_cnn", model_args={"preset": "tiny"}, imgsz=24,
            epochs=2, batch=16, lr=0.05, verbose=False)


def test_run_folder_has_everything(tmp_path):
    result = cnnkit.train(**TINY, project=str(tmp_path))
    assert result.run_dir == tmp_path / "classify" / "exp"
    names = {p.name for p in result.run_dir.iterdir()}
    assert {"config.yaml", "metrics.csv", "results.png", "confusion_matrix.png", "confusion_matrix.csv",
            "per_class.csv", "last.pt", "best.pt"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    with (result.run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and "top1" in rows[0]
    ckpt = load_checkpoint(result.run_dir / "best.pt")
    meta = ckpt["meta"]
    assert meta.classes == ("circle", "square", "triangle", "star") and meta.in_chans == 3
    assert meta.imgsz == 24 and len(meta.mean) == 3 and meta.cnnkit_version == cnnkit.__version__
    assert "optimizer" not in ckpt and "optimizer" in load_checkpoint(result.run_dir / "last.pt")
    again = cnnkit.train(**TINY, project=str(tmp_path))
    assert again.run_dir.name == "exp2"


def test_learns_the_shapes(tmp_path):
    result = cnnkit.train(task="classify", data="shapes:600", model="fastnet_small", imgsz=32, epochs=6, batch=64,
                          lr=0.2, warmup_epochs=0.5, label_smoothing=0.1, project=str(tmp_path), verbose=False)
    assert result.best["top1"] > 0.6  # chance is 0.25


def _weights(run_dir):
    return load_checkpoint(run_dir / "last.pt")["model"]


@pytest.mark.parametrize("extra", [{}, {"ema": 0.9, "grad_clip": 1.0, "optimizer": "adamw", "lr": 0.003}])
def test_resume_gives_the_same_weights(tmp_path, extra):
    cfg = dict(TINY, epochs=3, deterministic=True, augment="light", **extra)
    straight = cnnkit.train(**cfg, project=str(tmp_path / "a"))

    def interrupt(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_with(make_config(dict(cfg, project=str(tmp_path / "b"), name="run")), on_epoch_end=interrupt)
    resumed = cnnkit.train(**dict(cfg, project=str(tmp_path / "b"), name="run", resume=True))
    assert resumed.run_dir == tmp_path / "b" / "classify" / "run"
    a, b = _weights(straight.run_dir), _weights(resumed.run_dir)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with (resumed.run_dir / "metrics.csv").open() as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2", "3"]
    # regression: config.yaml said resume: true, so reused as a recipe it asked for a last.pt of the new run
    assert "resume: false" in (resumed.run_dir / "config.yaml").read_text()


@pytest.mark.parametrize("extra", [{}, {"ema": 0.9, "optimizer": "adamw", "lr": 0.003}])
def test_resume_mid_epoch_gives_the_same_weights(tmp_path, monkeypatch, extra):
    """A run stopped inside an epoch, after a mid-epoch checkpoint, resumes to the same weights."""
    import cnnkit.engine.trainer as trainer

    cfg = dict(TINY, epochs=2, deterministic=True, augment="light", workers=0, **extra)
    straight = cnnkit.train(**cfg, project=str(tmp_path / "a"))

    class StopAfterSaving(trainer.MidEpochSaver):
        saves = 0

        def __call__(self, steps, loss_sum, seen):
            super().__call__(steps, loss_sum, seen)
            StopAfterSaving.saves += 1
            if StopAfterSaving.saves == 6:  # the second epoch's second step (4 steps an epoch)
                raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "MidEpochSaver", StopAfterSaving)
    with pytest.raises(KeyboardInterrupt):
        train_with(make_config(dict(cfg, project=str(tmp_path / "b"), name="run", save_period=1e-9)))
    partial = load_checkpoint(tmp_path / "b" / "classify" / "run" / "last.pt")
    assert partial["epoch"] == 1 and partial["partial"]["steps"] == 2
    monkeypatch.undo()
    resumed = cnnkit.train(**dict(cfg, project=str(tmp_path / "b"), name="run", resume=True))
    a, b = _weights(straight.run_dir), _weights(resumed.run_dir)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with (resumed.run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    with (straight.run_dir / "metrics.csv").open() as f:
        first = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["train_loss"]) == pytest.approx(float(first[1]["train_loss"]), rel=1e-5)  # whole epoch


def test_resume_keeps_the_runs_own_epochs(tmp_path, caplog):
    def interrupt(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_with(make_config(dict(TINY, epochs=3, project=str(tmp_path), name="run")), on_epoch_end=interrupt)
    again = {k: v for k, v in TINY.items() if k != "epochs"}
    with pytest.raises(CnnkitError, match=r"--lr 0.5 \(run: 0.05\) differ"):  # never ignored without a word
        cnnkit.train(**dict(again, lr=0.5), project=str(tmp_path), name="run", resume=True)
    resumed = cnnkit.train(**again, project=str(tmp_path), name="run",
                           resume=True)  # no epochs given: the run's own 3, not the default 10
    assert resumed.epochs_run == 3
    with pytest.raises(CnnkitError, match="1 epoch or more"):
        cnnkit.train(**dict(TINY, epochs=0), project=str(tmp_path))


def test_resume_with_nothing_to_resume(tmp_path):
    with pytest.raises(CnnkitError, match="nothing to resume"):
        cnnkit.train(**TINY, project=str(tmp_path), resume=True)
    with pytest.raises(CnnkitError, match="ghost holds no last.pt to continue; check --name"):  # no --weights
        cnnkit.train(**TINY, project=str(tmp_path), name="ghost", resume=True)


def test_resume_of_a_finished_run_asks_for_more_epochs(tmp_path):
    cnnkit.train(**TINY, project=str(tmp_path), name="done")
    with pytest.raises(CnnkitError, match="already finished 2 epochs"):
        cnnkit.train(**TINY, project=str(tmp_path), name="done", resume=True)
    longer = cnnkit.train(**dict(TINY, epochs=3), project=str(tmp_path), name="done", resume=True)
    assert longer.epochs_run == 3


def test_early_stopping(tmp_path):
    # lr 1e-12 (below the float32 resolution of the weights) and GroupNorm: the weights never change, so neither
    # do the metrics (with BatchNorm the running statistics moved at lr 0 and top-1 could improve in epoch 2)
    frozen = dict(TINY, epochs=10, lr=1e-12, warmup_epochs=0, model_args={"preset": "tiny", "norm": "group"})
    result = cnnkit.train(**frozen, patience=2, project=str(tmp_path))
    assert result.epochs_run == 3  # epoch 1 sets the best, 2 and 3 do not improve


def test_monitor_a_loss_means_lower_is_better(tmp_path):
    result = cnnkit.train(**dict(TINY, epochs=3), monitor="val_loss", project=str(tmp_path))
    with (result.run_dir / "metrics.csv").open() as f:
        losses = [float(r["val_loss"]) for r in csv.DictReader(f)]
    best = load_checkpoint(result.run_dir / "best.pt")
    assert best["epoch"] == 1 + losses.index(min(losses))


def test_clicks_and_failures_are_lower_is_better():
    from cnnkit.engine.trainer import lower_is_better

    assert lower_is_better("noc85") and lower_is_better("noc90") and lower_is_better("fail85")
    assert not lower_is_better("iou@5") and not lower_is_better("miou") and lower_is_better("val_loss")


def test_unknown_monitor(tmp_path):
    with pytest.raises(CnnkitError, match="--monitor acc: not a metric"):
        cnnkit.train(**TINY, monitor="acc", project=str(tmp_path))


def test_channels_last_and_streaming(tmp_path, shapes_folder):
    result = cnnkit.train(**dict(TINY, data=str(shapes_folder), epochs=1), channels_last=True, cache="none",
                          workers=1, project=str(tmp_path))
    assert 0 <= result.best["top1"] <= 1


def test_amp_on_cpu_uses_bfloat16(tmp_path):
    result = cnnkit.train(**dict(TINY, epochs=1), amp=True, project=str(tmp_path))
    assert torch.isfinite(torch.tensor(result.best["train_loss"]))


@pytest.mark.slow
def test_compile_trains_and_saves_plain_weights(tmp_path, monkeypatch):
    # dynamo and AOTAutograd as torch.compile runs them, without inductor's C++ build (30 s on 2 cores):
    # what is tested here is that the compiled wrapper's names stay out of the checkpoint
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    result = cnnkit.train(**dict(TINY, epochs=1), compile=True, project=str(tmp_path))
    keys = load_checkpoint(result.run_dir / "best.pt")["model"].keys()
    assert not any("_orig_mod" in k for k in keys)  # loadable without torch.compile


@pytest.mark.gpu
def test_amp_on_gpu(tmp_path):
    result = cnnkit.train(**TINY, amp=True, channels_last=True, device="cuda", project=str(tmp_path))
    assert result.best["top1"] >= 0


def test_a_deterministic_run_does_not_stay_deterministic():
    from cnnkit.engine.trainer import seed_everything

    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    seed_everything(0, deterministic=False)  # the next run in the same process
    assert not torch.are_deterministic_algorithms_enabled()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path):
    with pytest.raises(CnnkitError, match="--monitor"):  # found at the first epoch's end
        cnnkit.train(**TINY, project=str(tmp_path), name="run", monitor="accuracy")
    assert not (tmp_path / "classify" / "run").exists()
    assert cnnkit.train(**TINY, project=str(tmp_path), name="run").run_dir.name == "run"  # not run2


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_afresh(tmp_path, caplog):
    from cnnkit.config import save_yaml

    run = tmp_path / "classify" / "run"
    save_yaml(make_config(dict(TINY, project=str(tmp_path), name="run")), run / "config.yaml")
    (run / ".config.yaml.x1.tmp").write_text("half")  # a write the kill interrupted
    result = cnnkit.train(project=str(tmp_path), name="run", resume=True)  # nothing else given: the run's own
    assert result.run_dir == run and result.epochs_run == TINY["epochs"] and (run / "last.pt").is_file()
    assert "starting it afresh" in caplog.text and not list(run.glob(".*.tmp"))
