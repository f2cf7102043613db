import dataclasses

import pytest

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
