"""Prediction options: one dataclass per task, from which flags, query parameters and checks are made."""

import argparse
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cnnkit.api import load
from cnnkit.cli.main import build_parser
from cnnkit.errors import CnnkitError
from cnnkit.options import make_options, option_infos
from cnnkit.tasks import get_spec, task_names
from tests.export.helpers import write_checkpoint


def test_every_option_has_help_a_default_of_its_type_and_a_range_that_holds_it():
    for name in task_names():
        spec = get_spec(name)
        for info in option_infos(spec.options) + option_infos(spec.train_options):  # prediction and training
            assert info.help and info.kind in (bool, int, float, str), (name, info.name)
            info.check(info.default)  # the default is inside its own range


def test_options_are_checked_by_name_value_and_runtime():
    opts = get_spec("instance").options
    assert make_options(opts, {"max_det": 5}, "instance").max_det == 5
    with pytest.raises(CnnkitError, match="--topk: not an option of instance"):
        make_options(opts, {"topk": 3}, "instance", flags=True)
    with pytest.raises(CnnkitError, match="--score-thresh: must be at most 1.0"):
        make_options(opts, {"score_thresh": 2.0}, "instance", flags=True)
    with pytest.raises(CnnkitError, match="--tile: not available for instance on onnx"):
        make_options(opts, {"tile": 256}, "instance", runtime="onnx", flags=True)
    with pytest.raises(CnnkitError, match="Did you mean 'max_det'"):
        make_options(opts, {"max_dets": 5}, "instance")


def test_the_cli_flags_are_generated_from_every_tasks_options():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    predict = {o for a in sub.choices["predict"]._actions for o in a.option_strings}
    val = {o for a in sub.choices["val"]._actions for o in a.option_strings}
    every = {i.flag for t in task_names() for i in option_infos(get_spec(t).options)}
    assert every <= predict
    assert {"--max-det", "--tta"} <= val and "--topk" not in val  # val takes those that change evaluation


def test_instance_prediction_never_changes_the_model_and_runs_in_parallel(tmp_path):
    """Regression: predict set roi_heads' thresholds on the module on every call (and export for good), so the
    server ran checkpoint predictions one at a time behind a lock."""
    model = load(write_checkpoint(tmp_path, "instance"), device="cpu")
    heads = model.module.net.roi_heads
    before = (heads.score_thresh, heads.nms_thresh, heads.detections_per_img)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (96, 96, 3), dtype=np.uint8) for _ in range(4)]
    settings = [{"score_thresh": 0.0, "max_det": 7}, {"score_thresh": 0.3, "nms_thresh": 0.3}]
    serial = [model.predict(images, **s) for s in settings]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda s: model.predict(images, **s), settings * 3))
    assert (heads.score_thresh, heads.nms_thresh, heads.detections_per_img) == before
    assert model.thread_safe
    for i, got in enumerate(parallel):
        assert got == serial[i % 2]
    assert all(len(p["instances"]) <= 7 for p in serial[0])
    assert all(inst["score"] >= 0.3 for p in serial[1] for inst in p["instances"])


def test_val_takes_max_det_for_detectors_and_refuses_it_for_classifiers(tmp_path, capsys):
    """Regression: `cnnkit val` had no --max-det where predict had one."""
    from cnnkit.cli.main import main

    weights = write_checkpoint(tmp_path, "instance")
    assert main(["val", "--weights", str(weights), "--data", "shapes:8", "--max-det", "3", "--out",
                 str(tmp_path / "v")]) == 0
    assert (tmp_path / "v" / "metrics.json").is_file()
    classifier = write_checkpoint(tmp_path, "classify")
    assert main(["val", "--weights", str(classifier), "--data", "shapes:8", "--max-det", "3"]) == 2
    assert "--max-det: not an option of classify" in capsys.readouterr().err
