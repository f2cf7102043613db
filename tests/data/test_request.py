"""One request for every loader: built once from the config (and a model's card), with an explicit
train/eval switch."""

import pytest

from cnnkit.config import make_config
from cnnkit.data.request import DataRequest
from cnnkit.errors import CnnkitError


def test_from_config_reads_the_common_fields_and_the_card_wins():
    cfg = make_config({"task": "segment", "data": "d", "imgsz": 64, "val_split": 0.3, "val_group": "^(p\\d)_",
                       "seed": 7, "cache": "none", "skip_bad": True, "max_size": 300})
    request = DataRequest.from_config(cfg)
    assert (request.source, request.imgsz, request.val_split, request.val_group, request.seed, request.cache,
            request.skip_bad, request.max_size) == ("d", 64, 0.3, "^(p\\d)_", 7, "none", True, 300)
    assert request.training and request.split is None and request.trained is None and request.high is None
    plan = {"fraction": 0.3, "seed": 7}
    scoring = DataRequest.from_config(cfg, {"imgsz": 32, "max_size": 200, "in_chans": 1, "pixel_max": 4095.0,
                                            "split": plan}, split="val")
    assert not scoring.training and scoring.split == "val"
    assert (scoring.imgsz, scoring.max_size, scoring.channels, scoring.high, scoring.trained) == (32, 200, 1, 4095.0,
                                                                                                  plan)


def test_the_switch_takes_only_evaluation_splits():
    for split in (None, "auto", "val", "train", "test", "all"):
        assert DataRequest("d", split=split).training is (split is None)
    with pytest.raises(CnnkitError, match="--split valid: choose one of auto, val, train, test, all"):
        DataRequest("d", split="valid")


def test_fraction_is_the_tasks_default_unless_given():
    assert DataRequest("d").fraction(0.1) == 0.1 and DataRequest("d", val_split=0.25).fraction(0.1) == 0.25
