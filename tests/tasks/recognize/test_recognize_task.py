"""Recognition end to end: held-out identities, the saved threshold, verify, galleries, search, export."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import cnnkit
from cnnkit.cli.main import main
from cnnkit.errors import CnnkitError
from cnnkit.recognition.identify import fingerprint
from tests.tasks.recognize.conftest import write_identities


def held_out(run) -> set[str]:
    trained = set(cnnkit.load(run / "best.pt").meta.classes)
    return {f"id{k}" for k in range(8)} - trained


def test_validation_holds_out_whole_identities(recognizer):
    meta = cnnkit.load(recognizer / "best.pt").meta
    assert len(meta.classes) in (5, 6) and set(meta.classes) <= {f"id{k}" for k in range(8)}
    figures = json.loads((recognizer / "verification.json").read_text())
    assert figures["identities"] == 8 - len(meta.classes)  # scored on identities it never trained on
    assert {"roc_auc", "tar_far1", "tar_far01", "eer", "rank1", "rank5", "map", "threshold"} <= set(figures)


def test_the_threshold_is_chosen_on_held_out_identities_and_saved(recognizer):
    meta = cnnkit.load(recognizer / "best.pt").meta
    threshold = meta.value("threshold", None)
    assert isinstance(threshold, float) and 0.0 <= threshold <= 2.0
    assert meta.value("target_far", None) == 0.001 and meta.value("distance", None) == "cosine"
    figures = json.loads((recognizer / "verification.json").read_text())
    assert figures["threshold"] == pytest.approx(threshold)


def test_unseen_identities_are_told_apart(recognizer):
    figures = json.loads((recognizer / "verification.json").read_text())
    # chance: ROC AUC 0.5, rank-1 about 0.3 (15 of a query's 47 others are its identity); a few steps of training
    # on 5 identities is far from a good model, so the margin is wide
    assert figures["roc_auc"] > 0.65 and figures["rank1"] > 0.6


def test_verify_same_and_different(recognizer, identities, capsys):
    weights = str(recognizer / "best.pt")
    a, b = sorted(held_out(recognizer))[:2]
    assert main(["verify", "--weights", weights, str(identities / a / "0.png"), str(identities / a / "1.png"),
                 "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert main(["verify", "--weights", weights, str(identities / a / "0.png"), str(identities / b / "0.png"),
                 "--json"]) == 0
    different = json.loads(capsys.readouterr().out)
    assert same["distance"] < different["distance"]
    assert same["threshold"] == pytest.approx(cnnkit.load(weights).meta.value("threshold", None))
    answer = cnnkit.verify(weights, identities / a / "0.png", identities / b / "0.png", threshold=2.0)
    assert answer["same"] is True and answer["threshold"] == 2.0


def test_gallery_add_list_search_remove(recognizer, identities, tmp_path, capsys):
    weights, gallery = str(recognizer / "best.pt"), str(tmp_path / "people.npz")
    names = sorted(held_out(recognizer))
    for name in names:
        enrolled = [str(identities / name / f"{j}.png") for j in range(5)]
        assert main(["gallery", "add", gallery, "--weights", weights, "--name", name, *enrolled]) == 0
    capsys.readouterr()
    assert main(["gallery", "list", gallery, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(i["name"], i["images"]) for i in listed["identities"]] == [(n, 5) for n in names]
    assert main(["search", "--weights", weights, "--gallery", gallery, "--k", "2", "--json",
                 *[str(identities / n / "7.png") for n in names]]) == 0
    answers = json.loads(capsys.readouterr().out)
    found = [a["matches"][0]["name"] for a in answers]
    assert sum(f == n for f, n in zip(found, names)) >= len(names) - 1
    assert all(len(a["matches"]) == 2 for a in answers)
    assert main(["gallery", "remove", gallery, "--name", names[0]]) == 0
    assert names[0] not in [n for n, _ in cnnkit.Gallery.load(gallery).identities()]


def test_a_gallery_of_another_model_is_refused(recognizer, identities, tmp_path, capsys):
    weights, gallery = str(recognizer / "best.pt"), str(tmp_path / "g.npz")
    cnnkit.enrol(weights, gallery, "someone", [identities / "id0" / "0.png", identities / "id0" / "1.png"])
    other = tmp_path / "other.pt"
    ckpt = torch.load(recognizer / "best.pt", map_location="cpu", weights_only=True)
    key = next(k for k, v in ckpt["model"].items() if v.is_floating_point() and "criterion" not in k)
    ckpt["model"][key] = ckpt["model"][key] + 0.01
    torch.save(ckpt, other)
    assert main(["search", "--weights", str(other), "--gallery", gallery, str(identities / "id0" / "2.png")]) == 2
    assert "made by another model" in capsys.readouterr().err


def test_export_gives_the_same_vectors_and_searches_the_checkpoints_gallery(recognizer, identities, tmp_path):
    weights = recognizer / "best.pt"
    images = [identities / "id1" / f"{j}.png" for j in range(4)]
    model = cnnkit.load(weights)
    reference = np.stack([r["embedding"] for r in model.predict(images)])
    gallery = tmp_path / "g.npz"
    cnnkit.enrol(model, gallery, "id1", images[:2])
    for fmt in ("onnx", "torchscript"):
        out, _ = cnnkit.export(weights, fmt, out=tmp_path / f"m.{fmt}")
        exported = cnnkit.load(out)
        vectors = np.stack([r["embedding"] for r in exported.predict(images)])
        np.testing.assert_allclose(vectors, reference, atol=1e-4)
        assert fingerprint(exported) == fingerprint(model)
        found = cnnkit.search(exported, gallery, images[2:], k=1)
        assert [a["matches"][0]["name"] for a in found] == ["id1", "id1"]


def test_one_image_identity_is_refused(tmp_path, capsys):
    data = write_identities(tmp_path / "people", identities=4, per_identity=4)
    for extra in list((data / "id3").iterdir())[1:]:
        extra.unlink()
    assert main(["train", "recognize", "--data", str(data), "--model", "fastnet_small", "--imgsz", "32",
                 "--epochs", "1", "--project", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "id3" in err and "one image" in err and "Traceback" not in err


def test_images_unlike_the_training_images_are_refused_unless_forced(recognizer, identities, tmp_path, capsys):
    weights = str(recognizer / "best.pt")
    big = tmp_path / "big.png"
    Image.open(identities / "id0" / "0.png").resize((640, 640)).save(big)
    colour = tmp_path / "colour.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(colour)
    for odd in (big, colour):
        assert main(["verify", "--weights", weights, str(odd), str(identities / "id0" / "1.png")]) == 2
        err = capsys.readouterr().err
        assert str(odd) in err and "--force" in err
    assert main(["verify", "--weights", weights, str(big), str(identities / "id0" / "1.png"), "--force"]) == 0


def test_search_of_an_empty_gallery_and_a_model_of_another_task(recognizer, identities, tmp_path, capsys):
    weights, gallery = str(recognizer / "best.pt"), str(tmp_path / "g.npz")
    cnnkit.enrol(weights, gallery, "x", [identities / "id0" / "0.png"])
    assert main(["gallery", "remove", gallery, "--name", "x"]) == 0
    assert main(["search", "--weights", weights, "--gallery", gallery, str(identities / "id0" / "1.png")]) == 2
    assert "no identities enrolled" in capsys.readouterr().err
    assert main(["gallery", "list", str(tmp_path / "missing.npz")]) == 2
    assert "cnnkit gallery add" in capsys.readouterr().err


def test_val_scores_the_held_out_identities(recognizer, identities, capsys):
    from cnnkit.api import val

    result = val(recognizer / "best.pt", identities)
    figures = json.loads((recognizer / "verification.json").read_text())
    assert result.metrics["roc_auc"] == pytest.approx(figures["roc_auc"], abs=0.02)  # the same 3 identities
    assert result.metrics["threshold"] >= 0.0


def test_the_wrapper_network_is_not_a_model_to_train(identities, tmp_path, capsys):
    assert main(["train", "recognize", "--data", str(identities), "--model", "embedder", "--epochs", "1",
                 "--project", str(tmp_path)]) == 2
    assert "built around another model" in capsys.readouterr().err


def test_a_model_of_another_task_cannot_verify(tmp_path, identities):
    from tests.export.helpers import write_checkpoint

    weights = write_checkpoint(tmp_path, "classify")
    with pytest.raises(CnnkitError, match="not a recognition model"):
        cnnkit.verify(weights, identities / "id0" / "0.png", identities / "id0" / "1.png")
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_data_check_shows_identities_held_out_whole(identities, capsys):
    assert main(["data", "check", str(identities), "--task", "recognize", "--val-split", "0.34"]) == 0
    out = capsys.readouterr().out
    assert "val: 48 images of 3 identities" in out and "train: 80 images of 5 identities" in out


def test_validation_of_one_identity_is_refused_before_training(tmp_path, capsys):
    data = write_identities(tmp_path / "people", identities=3, per_identity=4)
    assert main(["train", "recognize", "--data", str(data), "--model", "fastnet_small", "--imgsz", "32",
                 "--epochs", "1", "--project", str(tmp_path / "runs")]) == 2
    assert "it needs 2 or more: raise --val-split" in capsys.readouterr().err
    assert main(["data", "check", str(data), "--task", "recognize"]) == 2


def test_verify_takes_one_file_twice_and_search_one_path(recognizer, identities, tmp_path, capsys):
    """Regressions (user trial): a file given twice was one image; a path as a string was read letter by letter."""
    weights, image = str(recognizer / "best.pt"), str(identities / "id0" / "0.png")
    assert main(["verify", "--weights", weights, image, image, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["distance"] < 1e-5
    gallery = tmp_path / "g.npz"
    cnnkit.enrol(weights, gallery, "id0", image)
    assert cnnkit.search(weights, gallery, str(identities / "id0" / "1.png"), k=1)[0]["matches"][0]["name"] == "id0"


def test_scoring_trained_identities_says_it_is_not_open_set(recognizer, identities, caplog):
    import logging

    from cnnkit.api import val

    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        val(recognizer / "best.pt", identities, split="all")
    assert "were trained on: these figures are not open-set" in caplog.text


def test_enrolling_an_image_again_is_warned(recognizer, identities, tmp_path, caplog):
    import logging

    weights, gallery = str(recognizer / "best.pt"), tmp_path / "g.npz"
    cnnkit.enrol(weights, gallery, "id0", [identities / "id0" / "0.png", identities / "id0" / "1.png"])
    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        cnnkit.enrol(weights, gallery, "id0", [identities / "id0" / "1.png", identities / "id0" / "2.png"])
    assert "1 of these images (1.png) are already enrolled as 'id0'" in caplog.text
    assert cnnkit.Gallery.load(gallery).identities() == [("id0", 4)]
