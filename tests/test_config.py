import dataclasses
from pathlib import Path

import pytest
import yaml

import cnnkit.tasks  # noqa: F401 - registers the tasks, whose options the config reads
from cnnkit.config import TrainConfig, config_fields, load_yaml, make_config, save_yaml
from cnnkit.errors import CnnkitError


def test_every_field_has_default_and_help():
    for f in config_fields():
        assert f.metadata.get("help"), f.name
    TrainConfig()  # all defaults


def test_config_is_frozen():
    cfg = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(CnnkitError, match="unknown config key 'epoch'.*Did you mean 'epochs'"):
        make_config({"epoch": 3})


def test_values_are_coerced_and_checked():
    cfg = make_config({"epochs": "3", "amp": "true", "lr": "0.1", "mean": "0.5,0.4", "std": "0.2,0.2"})
    assert (cfg.epochs, cfg.amp, cfg.lr, cfg.mean) == (3, True, 0.1, [0.5, 0.4])
    with pytest.raises(CnnkitError, match="'epochs' must be a whole number"):
        make_config({"epochs": "many"})
    with pytest.raises(CnnkitError, match="'optimizer' must be one of"):
        make_config({"optimizer": "lion"})


def test_yaml_overrides_and_round_trip(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 7\nmodel: resnet18\nmodel_args: {}\n")
    cfg = make_config(load_yaml(recipe))
    assert cfg.epochs == 7 and cfg.model == "resnet18" and cfg.batch == TrainConfig().batch
    out = tmp_path / "config.yaml"
    save_yaml(cfg, out)
    assert make_config(load_yaml(out)) == cfg


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(CnnkitError, match="bad.yaml: unknown config key 'learning_rate'"):
        load_yaml(bad)
    with pytest.raises(CnnkitError, match="config file not found"):
        load_yaml(tmp_path / "missing.yaml")


@pytest.mark.parametrize("key, value", [("batch", 0), ("val_split", -0.2), ("val_split", 1.0), ("lr", -1.0),
                                        ("epochs", -1)])
def test_values_out_of_range_are_refused(key, value):
    with pytest.raises(CnnkitError, match=f"'{key}' must be"):
        make_config({key: value})


# every task field, at its default, as each config.yaml and checkpoint of an earlier release held them
OLD_STYLE_TASK_FIELDS = {"max_size": 0, "label_smoothing": 0.0, "loss": "", "class_weights": "none",
                         "ignore_index": 255, "binary": False, "classes_file": "", "method": "simclr", "val": "",
                         "shift_augment": False, "freeze_epochs": 0, "augment": "light", "tta": False}


def test_config_py_holds_no_task_name_and_the_config_no_task_field():
    """Regression: TrainConfig held every task's fields (task_only=True) and adding a task edited config.py."""
    import cnnkit.config
    from cnnkit.config import config_fields
    from cnnkit.tasks import task_names

    text = Path(cnnkit.config.__file__).read_text()
    for task in task_names():
        assert f'"{task}"' not in text and f"'{task}'" not in text and f" {task}:" not in text, task
    common = {f.name for f in config_fields()}
    assert not common & set(OLD_STYLE_TASK_FIELDS)


def test_the_config_holds_the_tasks_options_and_saves_them_flat(tmp_path):
    from cnnkit.tasks.segment import SegmentTrainOptions

    cfg = make_config({"task": "segment", "binary": "true", "max_size": 32, "epochs": 2})
    assert cfg.options == SegmentTrainOptions(binary=True, max_size=32) and cfg.epochs == 2
    save_yaml(cfg, tmp_path / "config.yaml")
    saved = load_yaml(tmp_path / "config.yaml")
    assert saved["binary"] is True and saved["max_size"] == 32 and "options" not in saved
    assert make_config(saved) == cfg
    assert TrainConfig(task="segment").options == SegmentTrainOptions()  # filled in from the task


@pytest.mark.parametrize("values, match", [
    ({"task": "classify", "binary": True}, "'binary' is an option of segment, not classify"),
    ({"task": "pretrain", "augment": "strong"}, "'augment' is an option of classify, segment, instance, "
                                                "detect, recognize and click, not pretrain"),
    ({"task": "segment", "method": "mae"}, "'method' is an option of pretrain, not segment"),
    ({"task": "classify", "label_smothing": 0.1}, "unknown config key 'label_smothing'.*'label_smoothing'"),
    ({"task": "segment", "ignore_index": 70000}, "'ignore_index' must be at most 65535"),
    ({"task": "classify", "label_smoothing": 1.0}, "'label_smoothing' must be below 1.0"),
    ({"task": "classify", "loss": "dice"}, "'loss' must be one of ce, got 'dice'"),
])
def test_a_task_takes_only_its_own_options(values, match):
    with pytest.raises(CnnkitError, match=match):
        make_config(values)


def test_a_recipe_is_checked_against_its_task(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("binary: true\nepochs: 2\n")
    assert load_yaml(recipe, task="segment")["binary"] is True
    with pytest.raises(CnnkitError, match="r.yaml: 'binary' is an option of segment, not classify"):
        load_yaml(recipe, task="classify")
    recipe.write_text("task: pretrain\nloss: ce\n")
    with pytest.raises(CnnkitError, match="'loss' is an option of classify, segment and recognize, not pretrain"):
        load_yaml(recipe)


def test_an_old_style_config_yaml_still_reads(tmp_path):
    """A config.yaml of an earlier release holds every task's fields; a run's own is read with them dropped (a
    recipe with another task's field is still refused)."""
    old = {**dict(make_config({"task": "pretrain"}).__dict__), **OLD_STYLE_TASK_FIELDS, "method": "mae"}
    old.pop("options")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    cfg = make_config(load_yaml(path, saved=True), saved=True)
    assert cfg.task == "pretrain" and cfg.options.method == "mae"
    with pytest.raises(CnnkitError, match="is an option of .*, not pretrain"):
        load_yaml(path)


def test_an_old_style_run_resumes(tmp_path):
    """Regression guard: runs saved before each task declared its options (every task's field in config.yaml and
    last.pt) continue with --resume."""
    import cnnkit
    from cnnkit.engine.checkpoint import load_checkpoint, save_checkpoint

    tiny = dict(task="classify", data="shapes:48", model="basic_cnn", model_args={"preset": "tiny"}, imgsz=24,
                batch=16, verbose=False, project=str(tmp_path), name="old")
    run = cnnkit.train(**tiny, epochs=1, label_smoothing=0.1).run_dir
    ckpt = load_checkpoint(run / "last.pt")
    ckpt["config"] = {**OLD_STYLE_TASK_FIELDS, **ckpt["config"]}  # the other tasks' fields, as before
    save_checkpoint(ckpt, run / "last.pt")
    (run / "config.yaml").write_text(yaml.safe_dump(ckpt["config"], sort_keys=False))
    result = cnnkit.train(**tiny, epochs=2, resume=True)
    assert result.epochs_run == 2
    assert load_checkpoint(run / "last.pt")["config"]["label_smoothing"] == 0.1
    assert "binary" not in load_yaml(run / "config.yaml")  # rewritten in the new form: its own options only


def test_every_shipped_recipe_names_its_task_and_reads():
    from cnnkit.config import recipe_names

    for name in recipe_names():
        values = load_yaml(name)
        assert values.get("task"), name
        make_config(values, origin=name)


def test_a_learning_rate_of_0_is_refused():
    """Regression: `--lr 0` trained every epoch without changing a weight, and exited 0."""
    with pytest.raises(CnnkitError, match="--lr 0: the weights would never change"):
        make_config({"lr": 0}, origin="command line")
