"""``fit()``: build the task's parts, run the epochs, keep checkpoints, stop early, resume."""

from __future__ import annotations

import logging
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from cnnkit import __version__
from cnnkit import distributed as dist_utils
from cnnkit.config import TrainConfig, make_config, save_yaml, to_dict
from cnnkit.device import select_device
from cnnkit.engine.checkpoint import load_checkpoint, save_checkpoint
from cnnkit.engine.health import finite_epoch, finite_model, health_warnings
from cnnkit.engine.logger import RunLogger
from cnnkit.engine.loop import evaluate, train_one_epoch
from cnnkit.engine.midepoch import MidEpochSaver, done_steps, rest_of_epoch
from cnnkit.engine.optim import build_ema, build_optimizer, build_scheduler
from cnnkit.engine.run import Parts, Run, Training
from cnnkit.engine.sizes import SmallerThanStride, check_input_size, check_size_floor
from cnnkit.engine.task import Metrics, Task, TaskData
from cnnkit.errors import CnnkitError
from cnnkit.files import atomic_write_bytes, claim_folder, json_bytes, remove_stale_temporaries
from cnnkit.log import LOGGER
from cnnkit.meta import ModelMeta
from cnnkit.options import make_options


@dataclass
class TrainResult:
    run_dir: Path
    best: dict[str, float]
    epochs_run: int
    is_main: bool = True  # rank 0 (or no DistributedDataParallel): the process that reports


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # set both ways: a deterministic run must not leave the process deterministic for the next one
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if deterministic:
        torch.backends.cudnn.benchmark = False


def run_folder(cfg: TrainConfig) -> tuple[Path, bool]:
    """<project>/<task>/<name>; an empty name picks exp, exp2, ... (the latest one when resuming). Returns the
    folder and whether this run made it: a new folder is claimed atomically (``files.claim_folder``), so two
    runs started at once with one --name never share it (their metrics.csv rows interleaved)."""
    base = Path(cfg.project) / cfg.task
    if cfg.name:
        if Path(cfg.name).name != cfg.name or cfg.name in (".", ".."):
            raise CnnkitError(f"--name {cfg.name}: a run name is one folder name inside --project {cfg.project} "
                              "(no '/' or '..'); choose where runs go with --project")
        folder = base / cfg.name
        if cfg.resume or cfg.exist_ok:
            return folder, not folder.exists()
        return claim_folder(folder), True
    if cfg.resume:  # the latest run; one killed before its first checkpoint has only its config.yaml
        runs = sorted((p for p in base.glob("*/config.yaml")), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise CnnkitError(f"--resume: nothing to resume under {base} (no last.pt); train without --resume")
        return runs[-1].parent, False
    return claim_folder(base / "exp"), True


def make_loader(dataset, batch: int, shuffle: bool, cfg: TrainConfig, info: dist_utils.DistInfo,
                collate_fn: Callable | None) -> DataLoader:
    """A DistributedSampler in every case: its shuffle depends on (seed, epoch) only, so resume repeats it."""
    sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle,
                                 seed=cfg.seed, drop_last=False)
    # the loader's own generator draws the workers' base seed, so the global random state (saved in
    # checkpoints) is not consumed by starting an epoch; it is reseeded per epoch in fit()
    return DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=cfg.workers, collate_fn=collate_fn,
                      pin_memory=torch.cuda.is_available(), persistent_workers=cfg.workers > 0,
                      drop_last=shuffle and drops_last(len(sampler), batch),
                      generator=torch.Generator().manual_seed(cfg.seed))


def drops_last(images: int, batch: int) -> bool:
    """Drop an epoch's last, partial training batch only when it is small (a quarter of a batch or less, or one
    image, which batch norm cannot train on): dropping it whatever its size lost 51 of 115 images an epoch."""
    left = images % batch
    return images > batch and 0 < left and (left <= batch // 4 or left == 1)


def checkpoint_state(model, cfg: TrainConfig, epoch: int, best: float, metrics: dict,
                     training: dict | None = None) -> dict[str, Any]:
    state = {"cnnkit_version": __version__, "task": cfg.task, "meta": model.meta.to_dict(), "config": to_dict(cfg),
             "model": model.state_dict(), "epoch": epoch, "best_fitness": best, "metrics": metrics}
    return {**state, **(training or {})}


RESUME_FREE = ("epochs", "device", "workers", "resume", "name", "project", "exist_ok", "verbose", "monitor")


def resume_point(cfg: TrainConfig, run_dir: Path) -> tuple[TrainConfig, dict[str, Any] | None]:
    """With --resume: the run's saved config (new epochs, device and workers allowed) and last.pt."""
    if not cfg.resume:
        return cfg, None
    if not (run_dir / "last.pt").is_file():
        if not (run_dir / "config.yaml").is_file():
            raise CnnkitError(f"--resume: {run_dir} holds no last.pt to continue; check --name and --project, or "
                              "train without --resume")
        LOGGER.warning("warning: %s was stopped before its first checkpoint (no last.pt); starting it afresh", run_dir)
        return _fresh_start(cfg, run_dir), None
    ckpt = load_checkpoint(run_dir / "last.pt")
    if "optimizer" not in ckpt:
        raise CnnkitError(f"{run_dir / 'last.pt'}: holds no training state; train without --resume")
    epochs = cfg.epochs or ckpt["config"]["epochs"]  # 0: not given again, so the run's own
    if ckpt["epoch"] >= epochs:
        raise CnnkitError(f"{run_dir / 'last.pt'}: already finished {ckpt['epoch']} epochs; "
                          f"pass --epochs N with N > {ckpt['epoch']} to train longer")
    saved = {**ckpt["config"], "epochs": epochs, "device": cfg.device, "workers": cfg.workers}
    defaults = to_dict(TrainConfig(task=cfg.task))
    differ = [k for k, v in to_dict(cfg).items() if k not in RESUME_FREE and v != defaults[k]
              and v != ckpt["config"].get(k)]
    if differ:  # a resumed run that silently took other settings would not be the run it claims to be
        raise CnnkitError(f"--resume continues {run_dir} as it was set up, but "
                          + ", ".join(f"--{k.replace('_', '-')} {to_dict(cfg)[k]!r} (run: {ckpt['config'].get(k)!r})"
                                      for k in differ)
                          + " differ; drop them to resume, or start a new run without --resume. Only "
                          + ", ".join("--" + k for k in ("epochs", "device", "workers")) + " may change")
    return make_config({**saved, "resume": True}, origin=str(run_dir / "last.pt"), saved=True), ckpt


def _fresh_start(cfg: TrainConfig, run_dir: Path) -> TrainConfig:
    """The run's own config.yaml (new epochs, device and workers allowed), to start again in its folder."""
    from cnnkit.config import load_yaml

    saved = load_yaml(run_dir / "config.yaml", saved=True)
    return make_config({**saved, "epochs": cfg.epochs or saved.get("epochs", 10), "device": cfg.device,
                        "workers": cfg.workers, "resume": False, "exist_ok": True, "name": run_dir.name,
                        "project": cfg.project}, origin=str(run_dir / "config.yaml"), saved=True)


def build_parts(cfg: TrainConfig, task: Task, data: TaskData, device: torch.device, steps_per_epoch: int,
                resume: dict[str, Any] | None, batch: int) -> Parts:
    """Model (its input size checked), optimiser, schedule, scaler, EMA; ``batch``: this process's batch."""
    model = task.build_model(cfg, data.meta)
    check_input_size(model, cfg, data.meta, batch, device)
    # data-dependent initialisation (FastNet's whitening stem) is for new weights, not pretrained or resumed ones
    if resume is None and not cfg.pretrained and data.init_batch is not None and hasattr(model.net, "init_from_data"):
        model.net.init_from_data(model.normalize(data.init_batch))
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg, *fixed_encoder(model, cfg, steps_per_epoch))
    parts = Parts(model, optimizer, build_scheduler(optimizer, cfg, steps_per_epoch),
                  torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda"),
                  build_ema(model, cfg.ema))
    if resume is not None:
        parts.restore(resume)
    return parts


def fixed_encoder(model: torch.nn.Module, cfg: TrainConfig, steps_per_epoch: int
                  ) -> tuple[list[torch.nn.Parameter], int]:
    """The pretrained encoder's parameters and the steps they stay fixed (``--freeze-epochs``); the model
    (an ``ImageModel``) says which parameters are its encoder, so the engine imports no model code."""
    steps = getattr(cfg.options, "freeze_epochs", 0) * steps_per_epoch  # an option of the tasks that fine-tune
    return (list(model.encoder_parameters()), steps) if steps else ([], 0)


def fit(cfg: TrainConfig, task: Task, on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` for ``task`` (the task object: the engine imports no task);
    returns the run folder and best metrics. ``cnnkit.api.train_with`` finds the task by name."""
    cfg = replace(cfg, monitor=cfg.monitor or task.default_monitor)
    if cfg.epochs < 1 and not cfg.resume:
        raise CnnkitError(f"--epochs {cfg.epochs}: train for 1 epoch or more")
    device = select_device(cfg.device)
    info = dist_utils.init_distributed(device)
    if not info.is_main:  # one copy of each message, rank 0's; the other ranks say only what goes wrong
        LOGGER.setLevel(max(LOGGER.getEffectiveLevel(), logging.ERROR))
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    seed_everything(cfg.seed, cfg.deterministic)
    run_dir, new_folder = dist_utils.broadcast_object(run_folder(cfg) if info.is_main else None, info)
    try:
        cfg, resume = resume_point(cfg, run_dir)
    except CnnkitError:
        if new_folder:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    cfg = replace(cfg, monitor=cfg.monitor or task.default_monitor)  # a config.yaml written before it was set
    try:
        return _fit_in(cfg, task, on_epoch_end, Run(info, device, run_dir), resume)
    except Exception:
        # a run that failed before its first checkpoint leaves no folder (the next run keeps its name)
        if info.is_main and new_folder and run_dir.is_dir() and not (run_dir / "last.pt").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _fit_in(cfg: TrainConfig, task: Task, on_epoch_end: Callable[[int, dict], None] | None, run: Run,
            resume: dict[str, Any] | None) -> TrainResult:
    """``fit`` once the run folder and the resume point are known."""
    info, device, run_dir = run.info, run.device, run.folder
    if info.is_main:
        for stale in remove_stale_temporaries(run_dir):  # a killed writer's partial file
            LOGGER.info("removed %s, left by an interrupted write", stale)
    local_batch = max(1, cfg.batch // info.world_size)
    check_size_floor(cfg, local_batch, device)
    data = task.build_data(cfg, meta=ModelMeta.from_dict(resume["meta"], "last.pt") if resume else None)
    assert data.train is not None  # build_data without a split: training
    train_loader = make_loader(data.train, local_batch, True, cfg, info, data.collate_fn)
    val_loader = make_loader(data.val, local_batch * 2, False, cfg, info, data.collate_fn)
    try:
        parts = build_parts(cfg, task, data, device, len(train_loader), resume, min(local_batch, len(data.train)))
    except SmallerThanStride as e:
        if cfg.imgsz or resume:
            raise
        # the images' own size was chosen, and the model downsamples more: the nearest size it takes
        LOGGER.info("the images are %d px, below %s's total stride; training at %d px", data.meta.imgsz,
                    cfg.model, e.minimum)
        return _fit_in(replace(cfg, imgsz=e.minimum), task, on_epoch_end, run, resume)
    loss_fn, metrics = task.build_loss(cfg, data), task.build_metrics(data.meta, device)
    train_model = DistributedDataParallel(parts.model) if info.enabled else parts.model
    if cfg.compile:
        train_model = torch.compile(train_model)

    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(replace(cfg, resume=False), run_dir / "config.yaml")  # a recipe that starts a run, reused as is
    start_epoch = resume["epoch"] if resume else 0
    log = run.log = RunLogger(run_dir, info.is_main, cfg.verbose, start_epoch)
    log.info(f"{cfg.task}: {cfg.model} on {cfg.data} ({len(data.train)} train / {len(data.val)} val images, "
             f"{data.labels or str(data.meta.num_classes) + ' classes'}, {data.meta.imgsz} px) -> {run_dir}")
    try:
        epoch = run_epochs(cfg, task, data, parts, Training(train_model, train_loader, val_loader, loss_fn, metrics),
                           run, resume, on_epoch_end)
    except KeyboardInterrupt:
        if info.is_main:
            print(f"interrupted; continue with: cnnkit train {cfg.task} --resume --name {run_dir.name} --project "
                  f"{cfg.project}", file=sys.stderr)
        raise
    if not parts.best_metrics:
        raise CnnkitError(f"{run_dir}: no epoch had finite validation figures, so no best.pt was written; "
                          "lower --lr (or use --grad-clip) and train again")
    if parts.best_report:
        log.info(parts.best_report)
    if data.test is not None and info.is_main:
        test_once(parts, task, data, cfg, run)
    best = parts.best_metrics
    log.info(f"best epoch {best.get('epoch')}: " + " ".join(f"{k}={v:.4f}" for k, v in best.items()
                                                        if k not in ("epoch", "lr", "time_s") and "img_s" not in k))
    shown = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))
    log.info(f"results saved to {run_dir}: " + ", ".join(shown))
    log.close()
    dist_utils.cleanup(info)
    return TrainResult(run_dir, parts.best_metrics, epoch + 1, info.is_main)


def run_epochs(cfg: TrainConfig, task: Task, data: TaskData, parts: Parts, training: Training, run: Run,
               resume: dict[str, Any] | None, on_epoch_end: Callable[[int, dict], None] | None) -> int:
    """The epochs of ``fit``: train, validate, keep checkpoints, stop early; returns the last epoch index."""
    train_model, train_loader, val_loader = training.model, training.train_loader, training.val_loader
    loss_fn, metrics = training.loss_fn, training.metrics
    info, device, run_dir, log = run.info, run.device, run.folder, run.logger
    start_epoch = resume["epoch"] if resume else 0
    elapsed0, t0, epoch = (resume or {}).get("elapsed_s", 0.0), time.perf_counter(), start_epoch
    warned: set[str] = set()
    tta_given = {"tta": True} if getattr(cfg.options, "tta", False) else {}  # an option of the tasks with flip TTA
    tta = task.eval_forward(make_options(task.options, tta_given, cfg.task, flags=True))
    for epoch in range(start_epoch, cfg.epochs):
        train_loader.sampler.set_epoch(epoch)
        train_loader.generator.manual_seed(cfg.seed + epoch)
        done = done_steps(resume if epoch == start_epoch else None)
        if done[0]:
            log.info(f"resuming epoch {epoch + 1} after step {done[0]} of {len(train_loader)}")
        log.epoch_start(epoch, cfg.epochs, len(train_loader), done[0])
        def save_mid(steps: int, loss: float, seen: int, epoch: int = epoch) -> None:
            save_mid_epoch(parts, cfg, epoch, run_dir, elapsed0 + time.perf_counter() - t0, (steps, loss, seen))

        saver = MidEpochSaver(cfg.save_period * 60, save_mid)
        row: dict[str, Any] = {"epoch": epoch + 1}
        row.update(train_one_epoch(train_model, rest_of_epoch(train_loader, done[0]) if done[0] else train_loader,
                                   loss_fn, parts.optimizer, parts.scheduler,
                                   device=device, scaler=parts.scaler, ema=parts.ema, amp=cfg.amp,
                                   grad_clip=cfg.grad_clip, channels_last=cfg.channels_last,
                                   batch_transform=data.batch_transform, forward=data.train_forward,
                                   progress=log.progress, done=done, on_step=saver if info.is_main else None))
        row.update(evaluate(parts.eval_model, log.validating(val_loader), metrics, device=device, loss_fn=loss_fn,
                            amp=cfg.amp, forward=tta, channels_last=cfg.channels_last))
        row.update({k: dist_utils.reduce_mean(row[k], info, device) for k in ("train_loss", "val_loss") if k in row})
        row["lr"] = parts.optimizer.param_groups[0]["lr"]
        row["time_s"] = elapsed0 + time.perf_counter() - t0
        end_epoch(parts, cfg, row, run_dir, info.is_main, metrics)
        log.epoch_end(row, cfg.monitor)
        warned = health_warnings(row, data.meta, warned, log)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)
        stop = cfg.patience > 0 and parts.bad_epochs >= cfg.patience
        if dist_utils.broadcast_flag(stop, info, device):
            log.info(f"early stop: no {cfg.monitor} improvement for {cfg.patience} epochs")
            break
    return epoch


def save_mid_epoch(parts: Parts, cfg: TrainConfig, epoch: int, run_dir: Path, elapsed_s: float,
                   done: tuple[int, float, int]) -> None:
    """last.pt inside epoch ``epoch`` (0-based, not finished): the training state after ``done[0]`` steps."""
    state = checkpoint_state(parts.model, cfg, epoch, parts.best, {}, parts.training_state(elapsed_s))
    state["partial"] = {"steps": done[0], "loss_sum": done[1], "seen": done[2]}
    save_checkpoint(state, run_dir / "last.pt")


def test_once(parts: Parts, task: Task, data: TaskData, cfg: TrainConfig, run: Run) -> dict[str, float]:
    """Score the test split once with best.pt's weights; reports go to ``<run folder>/test``. The test set
    takes no part in any choice (best epoch, early stop), so this is the run's untouched figure."""
    device, run_dir, log = run.device, run.folder, run.logger
    assert data.test is not None  # fit calls this only for data with a test split
    best = load_checkpoint(run_dir / "best.pt")
    parts.eval_model.load_state_dict(best["model"])
    loader = DataLoader(data.test, batch_size=max(1, cfg.batch), num_workers=cfg.workers, collate_fn=data.collate_fn)
    metrics = task.build_metrics(data.meta, device)
    # as validation ran: a task that evaluates by more than a forward pass (a click model's clicking) needs its own
    forward = task.eval_forward(make_options(task.options, {}, cfg.task, flags=True))
    results = evaluate(parts.eval_model, loader, metrics, device=device, amp=cfg.amp,
                       channels_last=cfg.channels_last, forward=forward)
    metrics.save(run_dir / "test")
    atomic_write_bytes(run_dir / "test" / "metrics.json", json_bytes(results, indent=2))
    log.info(f"test ({len(data.test)} images, best.pt of epoch {best['epoch']}, scored once): "
             + " ".join(f"{k}={v:.4f}" for k, v in results.items()))
    return results


def lower_is_better(metric: str) -> bool:
    """Losses and error rates (an equal error rate, ``eer``), clicks needed (``noc85``) and failure rates
    (``fail85``) improve downwards; every other metric upwards."""
    return ("loss" in metric or metric == "eer" or metric.endswith("_error")
            or metric.startswith(("noc", "fail")))


def better(fitness: float, row: dict[str, Any], parts: Parts) -> bool:
    """Higher fitness, or the same fitness with a lower validation loss: a tie on top-1 keeps the surer model."""
    if fitness != parts.best:
        return fitness > parts.best
    loss, best_loss = row.get("val_loss"), parts.best_metrics.get("val_loss")
    return loss is not None and best_loss is not None and loss < best_loss


def end_epoch(parts: Parts, cfg: TrainConfig, row: dict[str, Any], run_dir: Path, is_main: bool,
              metrics: Metrics) -> None:
    """Track the best epoch by ``cfg.monitor``; on rank 0 write last.pt and, when improved, best.pt
    and the task's reports from this epoch's evaluation (so nothing is evaluated twice)."""
    if cfg.monitor not in row:
        raise CnnkitError(f"--monitor {cfg.monitor}: not a metric of {cfg.task}; choose one of "
                          f"{', '.join(k for k in row if k != 'epoch')}")
    # best_fitness is the monitored value with its sign turned so that higher is always better
    fitness = -row[cfg.monitor] if lower_is_better(cfg.monitor) else row[cfg.monitor]
    improved = (finite_epoch(row, cfg.monitor) and better(fitness, row, parts)
                and finite_model(parts.eval_model, row["epoch"]))
    if improved:
        parts.best, parts.best_metrics, parts.bad_epochs = fitness, dict(row), 0
    else:
        parts.bad_epochs += 1
    if not is_main:
        return
    epoch = row["epoch"]
    if improved:
        card_values = getattr(metrics, "card_extra", None)  # what this evaluation chose for the card (a threshold)
        if card_values is not None and card_values():
            for model in {id(m): m for m in (parts.model, parts.eval_model)}.values():
                model.meta = model.meta.replace(extra={**model.meta.extra, **card_values()})
        save_checkpoint(checkpoint_state(parts.eval_model, cfg, epoch, parts.best, row), run_dir / "best.pt")
        metrics.save(run_dir)
        parts.best_report = metrics.table()
    save_checkpoint(checkpoint_state(parts.model, cfg, epoch, parts.best, row, parts.training_state(row["time_s"])),
                    run_dir / "last.pt")
