"""One split rule for every task: test/ stays for testing, validation is held out of train, and
evaluation finds the same held-out images again."""

import logging
from pathlib import Path

import numpy as np
import pytest

from cnnkit.data.classify import load_classify_data
from cnnkit.data.request import DataRequest
from cnnkit.data.splits import group_hold_out, hold_out, random_hold_out, resolve_splits, role_of
from cnnkit.errors import CnnkitError
from tests.conftest import write_image_folder, write_png


@pytest.fixture(autouse=True)
def _info_log(caplog):
    caplog.set_level(logging.INFO, logger="cnnkit")


def cifar_like(root: Path, n_train: int = 40, n_test: int = 12) -> Path:
    """train/<class>/ and test/<class>/, as CIFAR-10 image downloads come."""
    return write_image_folder(root, {"train": (n_train, 0), "test": (n_test, 1)}, 16)


train_request = DataRequest("d", seed=0)  # held out by random_hold_out(n, 0.25, 0, "d")


def scoring(split, plan=None):
    return DataRequest("d", split=split, seed=0, trained=plan.to_meta() if plan else None)


def test_split_names_of_publishers():
    assert [role_of(n) for n in ("train", "Valid", "val2017", "validation", "test2017", "images")] == [
        "train", "val", "val", "val", "test", None]


def test_test_split_is_never_validation():
    parts = resolve_splits({"train": list(range(8)), "test": ["t1", "t2"]}, train_request, origin=Path("d"),
                           fraction=0.25)
    plan = parts.plan
    assert len(parts.val) == 2 and set(parts.val) <= set(range(8)) and parts.test == ["t1", "t2"]
    assert plan.val_from == "held out" and plan.test_count == 2


def test_eval_recomputes_the_held_out_images():
    named = {"all": [f"f{i}" for i in range(8)]}
    parts = resolve_splits(named, train_request, origin=Path("d"), fraction=0.25)
    plan = parts.plan
    again = resolve_splits(named, scoring("auto", plan), origin=Path("d"), fraction=0.25)
    assert again.val == parts.val
    everything = resolve_splits(named, scoring("all", plan), origin=Path("d"), fraction=0.25)
    assert len(everything.val) == 8
    other = resolve_splits({"all": [f"g{i}" for i in range(8)]}, scoring("auto", plan), origin=Path("elsewhere"),
                           fraction=0.25)
    assert len(other.val) == 8  # another data set: all of it is new to the model
    moved = resolve_splits(named, scoring("auto", plan), origin=Path("moved"), fraction=0.25)
    assert moved.val == parts.val  # the same files in a renamed folder: still the held-out ones
    with pytest.raises(CnnkitError, match="no test split"):
        resolve_splits(named, scoring("test"), origin=Path("d"), fraction=0.25)


def test_changed_files_are_warned(caplog):
    named = {"all": [f"f{i}" for i in range(8)]}
    plan = resolve_splits(named, train_request, origin=Path("d"), fraction=0.25).plan
    resolve_splits({"all": [f"g{i}" for i in range(8)]}, scoring("val", plan), origin=Path("d"), fraction=0.25)
    assert "some may have been trained on" in caplog.text


def test_cifar_layout_validates_on_train_and_keeps_test(tmp_path: Path, caplog):
    root = cifar_like(tmp_path)
    data = load_classify_data(DataRequest(str(root), imgsz=16, val_split=0.25, seed=0))
    assert len(data.train) + len(data.val) == 40 and len(data.test) == 12
    assert "val = 25% held out of train" in caplog.text
    again = load_classify_data(DataRequest(str(root), imgsz=16, val_split=0.25, seed=0, split="auto",
                                           trained=data.plan.to_meta()))
    assert (again.val.labels == data.val.labels).all()
    test = load_classify_data(DataRequest(str(root), imgsz=16, val_split=0.25, seed=0, split="test"))
    assert len(test.val) == 12


def test_group_hold_out_keeps_each_sequence_on_one_side(caplog):
    names = [f"/d/images/{seq}_{i:04d}.png" for seq, n in (("0001TP", 62), ("0006R0", 101), ("0016E5", 204))
             for i in range(n)]
    for seed in range(5):
        train, val = group_hold_out(names, 0.25, seed, r"([^/_]+)_\d+\.png$", "d")
        seqs = lambda idx: {names[i].split("/")[-1].split("_")[0] for i in idx}  # noqa: E731
        assert not seqs(train) & seqs(val) and len(train) + len(val) == len(names)
        assert len(val) == 101  # 0006R0: the group nearest a quarter of the frames, whatever the seed
    assert "validation holds out 1 of 3 groups whole" in caplog.text
    many = [f"p{g}_{i}.png" for g in range(30) for i in range(g % 4 + 1)]  # 30 groups: chosen greedily
    train, val = group_hold_out(many, 0.2, 0, r"^(p\d+)_", "d")
    assert abs(len(val) - 0.2 * len(many)) <= 4 and len(train) + len(val) == len(many)
    with pytest.raises(CnnkitError, match="finds no group"):
        group_hold_out(["a.png", "b_1.png"], 0.5, 0, r"^(\w+)_\d", "d")
    with pytest.raises(CnnkitError, match="finds one group"):
        group_hold_out(["a_1.png", "a_2.png"], 0.5, 0, r"^(\w+)_\d", "d")


def test_val_group_through_a_loader(tmp_path):
    root = write_image_folder(tmp_path / "c", {"train": (40, 0)}, 16)
    for i, p in enumerate(sorted(root.rglob("*.png"))):
        p.rename(p.with_name(f"patient{i % 5}_{p.name}"))
    data = load_classify_data(DataRequest(str(root), imgsz=16, val_split=0.2, val_group=r"(patient\d)_"))
    patients = lambda split: {p.name.split("_")[0] for p in split.paths or []}  # noqa: E731
    streamed = load_classify_data(DataRequest(str(root), imgsz=16, val_split=0.2, val_group=r"(patient\d)_",
                                              cache="none"))
    assert len(data.val) == 8 and not patients(streamed.train) & patients(streamed.val)


def test_split_train_with_a_val_folder_is_all_of_train():
    named = {"train": [f"t{i}" for i in range(4)], "val": ["v0", "v1"]}
    parts = resolve_splits(named, scoring("train"), origin=Path("d"), fraction=0.25)
    assert parts.val == named["train"]


def test_linked_class_folders_and_hidden_files(tmp_path, caplog):
    import os

    root = write_image_folder(tmp_path / "d", {"all": (12, 0)}, 16) / "all"
    (root / ".DS_Store").write_bytes(b"\0")
    (root / "circle" / "._x.png").write_bytes(b"\0")
    (root / "square" / "Thumbs.db").write_bytes(b"\0")
    load_classify_data(DataRequest(str(root), imgsz=16))
    assert caplog.text.count("skipped") == 1 and "3 hidden files" in caplog.text  # one line for the tree
    os.symlink(root / "circle", root / "zigzag")
    with pytest.raises(CnnkitError, match="are one folder"):
        load_classify_data(DataRequest(str(root), imgsz=16))


def test_a_copy_holding_few_held_out_images_is_warned_of(tmp_path, caplog):
    """A copy that kept 2 of 6 held-out images was scored whole, with no word that most of it had trained."""
    import logging

    from cnnkit.data.splits import held_out_found, name_hashes

    trained = {"val_hashes": name_hashes([f"v{i}.png" for i in range(6)])}
    items = [tmp_path / n for n in ("v0.png", "v1.png", *(f"t{i}.png" for i in range(20)))]
    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        assert held_out_found(items, tmp_path, trained, str) is None
    assert "2 of the 6 images held out at training are here" in caplog.text
    assert held_out_found(items[:1] + [tmp_path / f"v{i}.png" for i in range(1, 5)], tmp_path, trained, str)


def write_groups(root: Path, sizes=(3, 4, 5, 6, 2)) -> Path:
    """images/ + masks/ of patients p0..p4 (``sizes`` images each), and the same files as two class folders."""
    rng = np.random.default_rng(0)
    for g, n in enumerate(sizes):
        for i in range(n):
            name = f"p{g}_{i}.png"
            image = rng.integers(0, 255, (16, 16, 3), np.uint8)
            mask = np.zeros((16, 16), np.uint8)
            mask[4:12, 4:12] = 1
            write_png(root / "pairs" / "images" / name, image)
            write_png(root / "pairs" / "masks" / name, mask)
            write_png(root / "classes" / ("a" if i % 2 else "b") / name, image)
    return root


def held_names(data) -> tuple[set[str], set[str]]:
    """(train, val) file names of a loader's result (classify, segment: paths; instance: items)."""
    def names(part) -> set[str]:
        return {Path(p).name for p in (part.paths if hasattr(part, "paths") else [i.image for i in part])}
    return names(data.train), names(data.val)


def every_task(root: Path, **fields) -> dict[str, tuple[set[str], set[str]]]:
    from cnnkit.config import make_config
    from cnnkit.data.instance_data import load_instance_data
    from cnnkit.data.segment import load_segment_data
    from cnnkit.tasks import get_task

    pairs = str(root / "pairs")
    pretrain = get_task("pretrain").build_data(make_config({"task": "pretrain", "data": pairs, "imgsz": 16,
                                                            "cache": "none", **fields}))
    return {"classify": held_names(load_classify_data(DataRequest(str(root / "classes"), imgsz=16, **fields))),
            "segment": held_names(load_segment_data(DataRequest(pairs, **fields))),
            "instance": held_names(load_instance_data(DataRequest(pairs, **fields))),
            "pretrain": ({p.name for p in pretrain.train.items}, {p.name for p in pretrain.val.items})}


def test_every_task_holds_out_the_same_whole_groups(tmp_path):
    """One hold-out for every loader, pretrain's included: --val-group gives each the same patients."""
    found = every_task(write_groups(tmp_path), val_split=0.25, val_group=r"^(p\d)_")
    groups = {task: ({n.split("_")[0] for n in train}, {n.split("_")[0] for n in val})
              for task, (train, val) in found.items()}
    for task, (train, val) in groups.items():
        assert not train & val, task  # no patient on both sides
        assert len(found[task][0]) + len(found[task][1]) == 20, task
    assert len({frozenset(val) for _, val in groups.values()}) == 1  # the same patients held out everywhere


def test_every_task_holds_out_the_same_random_images(tmp_path):
    """Without --val-group, the tasks without classes hold out the same images at random, and classify the same
    fraction of each class."""
    found = every_task(write_groups(tmp_path), val_split=0.25, seed=3)
    assert found["segment"] == found["instance"] == found["pretrain"]
    assert len(found["segment"][1]) == 5 and len(found["classify"][1]) == 5


def test_hold_out_is_random_stratified_or_grouped():
    names = [f"p{i % 4}_{i}.png" for i in range(16)]
    expected = random_hold_out(16, 0.25, 0, "d")
    assert all((got == want).all() for got, want in zip(hold_out(names, 0.25, 0, "d"), expected))
    labels = np.array([i % 2 for i in range(16)])
    _, val = hold_out(names, 0.25, 0, "d", strata=labels)
    assert sorted(np.bincount(labels[val])) == [2, 2]
    _, val = hold_out(names, 0.25, 0, "d", group=r"^(p\d)_", strata=labels)  # groups win over classes
    assert len({names[i][:2] for i in val}) == 1 and len(val) == 4
    assert len(hold_out(names, 0.05, 0, "d", least=2)[1]) == 2  # pretraining: two to compare in a batch


def test_evaluation_holds_out_by_the_saved_plan():
    """A model's saved fraction and seed choose the images scored, whatever the request says."""
    named = {"all": [f"f{i}" for i in range(20)]}
    plan = resolve_splits(named, DataRequest("d", seed=5), origin=Path("d"), fraction=0.25).plan
    again = resolve_splits(named, DataRequest("d", split="val", seed=0, trained=plan.to_meta()), origin=Path("d"),
                           fraction=0.5)
    assert len(again.val) == 5 and again.val == resolve_splits(named, DataRequest("d", seed=5), origin=Path("d"),
                                                               fraction=0.25).val
