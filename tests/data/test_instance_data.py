"""Instance loaders on fake files in each format, the bad-annotation rules, and the joint transforms."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnkit.data.instance import InstanceDataset, InstanceTransform, masks_to_boxes_np
from cnnkit.data.instance_data import load_instance_data, read_split, synthetic_items
from cnnkit.data.request import DataRequest
from cnnkit.data.synthetic import SHAPE_NAMES, make_scene
from cnnkit.errors import CnnkitError
from tests.conftest import SHARED, write_png

SIZE = 48


def write_maps(root: Path, n: int = 6, classes: bool = False, bits16: bool = True) -> list:
    """images/<i>.png + masks/<i>.png instance maps (16-bit ids 1000+k, so ids need not be 1..N)."""
    scenes = [make_scene(i, 0, SIZE, max_distractors=3) for i in range(n)]
    for i, s in enumerate(scenes):
        write_png(root / "images" / f"{i}.png", s.image)
        ids = np.zeros((SIZE, SIZE), np.uint16 if bits16 else np.uint8)
        for k, m in enumerate(s.instances, 1):
            ids[m] = 1000 + k if bits16 else k
        write_png(root / "masks" / f"{i}.png", ids)
        if classes:
            table = {str(1000 + k if bits16 else k): SHAPE_NAMES[c] for k, c in enumerate(s.instance_classes, 1)}
            (root / "masks" / f"{i}.json").write_text(json.dumps(table))
    if classes:
        (root / "classes.txt").write_text("\n".join(SHAPE_NAMES) + "\n")
    return scenes


def full(items, i):
    return items[i].objects.window((0, 0, *items[i].objects.size))


def test_instance_maps_16bit_with_classes(tmp_path: Path):
    scenes = write_maps(tmp_path, classes=True)
    items, names, layout = read_split(tmp_path, False, None)
    assert layout == "masks" and names == list(SHAPE_NAMES)
    objs = full(items, 2)
    assert len(objs["masks"]) == len(scenes[2].instances)
    assert sorted(objs["labels"].tolist()) == sorted(scenes[2].instance_classes.tolist())
    np.testing.assert_array_equal(objs["boxes"], masks_to_boxes_np(objs["masks"]))


def test_instance_maps_single_class_default(tmp_path: Path):
    write_maps(tmp_path, bits16=False)
    items, names, _ = read_split(tmp_path, False, None)
    assert names == ["object"] and set(full(items, 0)["labels"].tolist()) == {0}


def test_mask_size_mismatch_names_the_file(tmp_path: Path):
    write_maps(tmp_path, n=2)
    write_png(tmp_path / "masks" / "1.png", np.zeros((10, 10), np.uint16))
    with pytest.raises(CnnkitError, match="1.png: mask is"):
        read_split(tmp_path, False, None)


def test_per_object_pngs_and_dsb_original_layout(tmp_path: Path):
    scene = make_scene(3, 0, SIZE, max_distractors=3)
    for root, image, mask_dir in ((tmp_path / "a", tmp_path / "a/images/x.png", tmp_path / "a/masks/x"),
                                  (tmp_path / "b", tmp_path / "b/x/images/x.png", tmp_path / "b/x/masks")):
        write_png(image, scene.image)
        for k, m in enumerate(scene.instances):
            write_png(mask_dir / f"{k}.png", (m * 255).astype(np.uint8))
        items, _, layout = read_split(root, False, None)
        objs = full(items, 0)
        assert len(items) == 1 and len(objs["masks"]) == len(scene.instances)
        np.testing.assert_array_equal(objs["masks"].astype(bool), scene.instances)


def coco_file(tmp_path: Path, anns: list, images: int = 2, categories=None) -> Path:
    for i in range(images):
        write_png(tmp_path / "images" / f"{i}.png", np.zeros((40, 50, 3), np.uint8))
    coco = {"images": [{"id": i + 1, "file_name": f"{i}.png", "width": 50, "height": 40} for i in range(images)],
            "annotations": anns, "categories": categories or [{"id": 7, "name": "cell"}, {"id": 9, "name": "dust"}]}
    path = tmp_path / "train.json"
    path.write_text(json.dumps(coco))
    return path


def test_coco_polygons_rle_crowd_and_empty_images(tmp_path: Path):
    from pycocotools import mask as mask_util

    rle_mask = np.zeros((40, 50), np.uint8, order="F")
    rle_mask[5:15, 30:45] = 1
    rle = mask_util.encode(rle_mask)
    rle["counts"] = rle["counts"].decode()
    anns = [{"id": 1, "image_id": 1, "category_id": 9, "segmentation": [[10, 10, 20, 10, 20, 20, 10, 20]],
             "bbox": [10, 10, 10, 10], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 7, "segmentation": rle, "iscrowd": 1}]
    items, names = read_split(coco_file(tmp_path, anns), False, None)[:2]
    assert names == ["cell", "dust"] and len(items) == 2
    objs = full(items, 0)
    assert objs["labels"].tolist() == [1, 0] and objs["crowd"].tolist() == [False, True]
    assert objs["masks"][0].sum() == 100 and objs["masks"][1].sum() == 150
    assert len(full(items, 1)["labels"]) == 0  # an image without objects is kept


def test_coco_bad_annotations_are_counted(tmp_path: Path, caplog):
    anns = [{"id": 1, "image_id": 1, "category_id": 7, "segmentation": [[1, 1, 5, 5]], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [40, 30, 30, 30], "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 7, "bbox": [60, 50, 5, 5], "iscrowd": 0}]
    items = read_split(coco_file(tmp_path, anns), False, None)[0]
    objs = full(items, 0)
    assert len(objs["labels"]) == 1 and objs["boxes"][0].tolist() == [40, 30, 50, 40]
    assert "polygon(s) with fewer than 3 points skipped" in caplog.text and "clipped" in caplog.text


@pytest.mark.parametrize("case, message", [
    ("category", "unknown category 3"), ("image", "not found"), ("empty", "no images listed")])
def test_coco_errors_name_the_file(tmp_path: Path, case: str, message: str):
    anns = [{"id": 1, "image_id": 1, "category_id": 3 if case == "category" else 7, "bbox": [1, 1, 5, 5]}]
    path = coco_file(tmp_path, anns)
    if case == "image":
        (tmp_path / "images" / "1.png").unlink()
    if case == "empty":
        path.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(CnnkitError, match=message) as info:
        read_split(path, False, None)
    assert "train.json" in str(info.value) or "1.png" in str(info.value)


def test_yolo_polygons_and_boxes(tmp_path: Path):
    write_png(tmp_path / "images" / "a.png", np.zeros((40, 80, 3), np.uint8))
    write_png(tmp_path / "images" / "b.png", np.zeros((40, 80, 3), np.uint8))
    (tmp_path / "labels").mkdir()
    lines = ["1 0.25 0.25 0.5 0.25 0.5 0.75 0.25 0.75", "0 0.75 0.5 0.25 0.5", "0 0.1 0.1"]
    (tmp_path / "labels" / "a.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "classes.txt").write_text("cell\ndust\n")
    items, names, layout = read_split(tmp_path, False, None)
    assert layout == "yolo" and names == ["cell", "dust"]
    objs = full(items, 0)
    assert objs["labels"].tolist() == [1, 0]  # the 1-point polygon is skipped; the box line's mask is its box
    assert abs(int(objs["masks"][0].sum()) - 20 * 20) <= 40 and objs["masks"][1].sum() == 20 * 20
    assert len(full(items, 1)["labels"]) == 0  # b.png has no label file: no objects
    (tmp_path / "labels" / "a.txt").write_text("5 0.1 0.1 0.2 0.2 0.3 0.1\n")
    with pytest.raises(CnnkitError, match=r"a.txt:1: class 5"):
        read_split(tmp_path, False, None)


def test_images_without_objects_train_beside_others(tmp_path: Path):
    """Regression: a YOLO image with no label lines had no masks in its target, and Mask R-CNN stopped
    with "Every element of targets should have a masks key" when it shared a batch with others."""
    from cnnkit.models.detection import build_rcnn

    write_png(tmp_path / "images" / "a.png", np.zeros((40, 80, 3), np.uint8))
    write_png(tmp_path / "images" / "b.png", np.zeros((40, 80, 3), np.uint8))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.25 0.25 0.5 0.25 0.5 0.75 0.25 0.75\n")
    (tmp_path / "labels" / "b.txt").write_text("")
    (tmp_path / "classes.txt").write_text("cell\n")
    items, _, _ = read_split(tmp_path, False, None)
    dataset = InstanceDataset(items, 3, InstanceTransform("light", (32, 32)), masks=True)
    (image_a, target_a), (image_b, target_b) = dataset[0], dataset[1]
    assert target_b["masks"].shape == (0, 32, 32) and target_b["boxes"].shape == (0, 4)
    torch.manual_seed(0)
    model = build_rcnn("resnet18", num_classes=1, fpn_channels=16, mask_channels=16, box_batch=16).train()
    losses = model([image_a.float() / 255, image_b.float() / 255], [target_a, target_b])
    assert all(torch.isfinite(v) for v in losses.values())


def test_split_is_fixed_by_seed(tmp_path: Path):
    write_maps(tmp_path, n=10)
    a = load_instance_data(DataRequest(str(tmp_path), val_split=0.2, seed=3))
    b = load_instance_data(DataRequest(str(tmp_path), val_split=0.2, seed=3))
    assert [i.image for i in a.val] == [i.image for i in b.val] and len(a.val) == 2 and len(a.train) == 8


def test_transform_keeps_boxes_masks_consistent_and_drops_cropped_objects():
    items = synthetic_items(6, 0, size=96)
    ds = InstanceDataset(items, 3, InstanceTransform("strong", (40, 40)))
    torch.manual_seed(0)
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.shape == (3, 40, 40) and image.dtype == torch.uint8
        masks = target["masks"].numpy()
        assert (masks.reshape(len(masks), 40 * 40).sum(1) >= 4).all()  # nothing cropped away is kept
        np.testing.assert_array_equal(target["boxes"].numpy(), masks_to_boxes_np(masks))
        assert (target["labels"] >= 1).all()


def test_eval_dataset_gives_whole_images_and_all_objects():
    items = synthetic_items(2, 0, size=64)
    image, target = InstanceDataset(items, 3)[1]
    assert image.shape == (3, 64, 64) and len(target["masks"]) == len(full(items, 1)["masks"])


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED / "dsb2018" / "masks").is_dir(), reason="../shared/datasets/dsb2018 is absent")
def test_dsb2018_as_it_is():
    data = load_instance_data(DataRequest(str(SHARED / "dsb2018"), val_split=0.1, seed=0))
    assert data.layout == "masks" and len(data.train) + len(data.val) == 664 and len(data.val) == 66
    objs = data.val[0].objects.window((0, 0, *data.val[0].objects.size))
    assert len(objs["masks"]) > 0 and objs["masks"].shape[1:] == data.val[0].objects.size


def test_a_yolo_line_of_a_class_alone_is_a_counted_skip(tmp_path, caplog):
    """Regression: '0' (no coordinates) raised a numpy error; it is a polygon of no points, skipped and counted."""
    write_png(tmp_path / "images" / "a.png", np.zeros((40, 80, 3), np.uint8))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0\n0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "classes.txt").write_text("cell\n")
    items = read_split(tmp_path, False, None)[0]
    assert len(items[0].objects.boxes) == 1 and "fewer than 3 points skipped" in caplog.text


def crowd_coco(root: Path, images: int = 2, first_id: int = 100) -> Path:
    """images/<i>.png (40x50) and annotations.json with categories 3 (cell) and 17 (dust), image ids from
    ``first_id``; per image one cell (a polygon), one dust box and one crowd region of cells (RLE)."""
    from pycocotools import mask as mask_util

    crowd = np.zeros((40, 50), np.uint8, order="F")
    crowd[20:36, 25:45] = 1
    rle = mask_util.encode(crowd)
    rle["counts"] = rle["counts"].decode()
    listed, anns = [], []
    for i in range(images):
        write_png(root / "images" / f"{i}.png", np.full((40, 50, 3), 40 * i, np.uint8))
        listed.append({"id": first_id + i, "file_name": f"{i}.png", "width": 50, "height": 40})
        anns += [{"image_id": first_id + i, "category_id": 3, "segmentation": [[2, 2, 14, 2, 14, 14, 2, 14]],
                  "bbox": [2, 2, 12, 12], "iscrowd": 0, "area": 144},
                 {"image_id": first_id + i, "category_id": 17, "bbox": [16, 2, 8, 8], "iscrowd": 0, "area": 64},
                 {"image_id": first_id + i, "category_id": 3, "segmentation": rle, "bbox": [25, 20, 20, 16],
                  "iscrowd": 1, "area": 320}]
    coco = {"images": listed, "annotations": [{"id": k + 1, **a} for k, a in enumerate(anns)],
            "categories": [{"id": 17, "name": "dust"}, {"id": 3, "name": "cell"}]}
    path = root / "annotations.json"
    path.write_text(json.dumps(coco))
    return path


def test_coco_crowd_regions_are_no_training_targets(tmp_path: Path):
    """Training drops crowd regions from the targets; evaluation keeps them, flagged iscrowd, for COCOeval."""
    items = read_split(crowd_coco(tmp_path), False, None)[0]
    train = InstanceDataset(items, 3, max_size=0, drop_crowd=True, masks=True)
    _, target = train[0]
    assert target["labels"].tolist() == [1, 2] and target["iscrowd"].tolist() == [0, 0]
    _, target = InstanceDataset(items, 3, masks=True)[0]
    assert target["labels"].tolist() == [1, 2, 1] and target["iscrowd"].tolist() == [0, 0, 1]


def test_coco_source_ids_are_kept(tmp_path: Path):
    crowd_coco(tmp_path, images=4)
    data = load_instance_data(DataRequest(str(tmp_path / "annotations.json"), val_split=0.5))
    assert data.classes == ["cell", "dust"] and data.category_ids == [3, 17]
    assert data.coco_files == [str((tmp_path / "annotations.json").resolve())]
    write_maps(tmp_path / "maps", n=2)
    maps = load_instance_data(DataRequest(str(tmp_path / "maps")))
    assert maps.category_ids is None  # not from COCO: class index + 1


@pytest.mark.parametrize("side", [41, 53, 67, 79, 29])
def test_resized_samples_keep_masks_and_boxes_on_their_objects(side):
    """Regression: instance masks (and the boxes recomputed from them) were resized with torchvision's
    default nearest and sat about half a pixel down and right of their objects in the image."""
    from torchvision import tv_tensors

    from cnnkit.data.instance import resize_sample
    from tests.data.test_transforms import SIDE, block_pairs, centroid

    offsets, box_offsets = [], []
    for image, mask in block_pairs():
        sample = {"image": tv_tensors.Image(image), "masks": tv_tensors.Mask(mask[None].byte()),
                  "boxes": tv_tensors.BoundingBoxes(torch.tensor([[0.0, 0, 1, 1]]), format="XYXY",
                                                    canvas_size=(SIDE, SIDE))}
        out = resize_sample(sample, (side, side))
        assert out["image"].shape[-2:] == out["masks"].shape[-2:] == (side, side)
        offsets.append(centroid(out["masks"][0]) - centroid(out["image"][0]))
        x0, y0, x1, y1 = masks_to_boxes_np(out["masks"].numpy())[0]
        box_offsets.append(np.array([(y0 + y1) / 2 - 0.5, (x0 + x1) / 2 - 0.5]) - centroid(out["image"][0]))
    assert np.abs(np.mean(offsets, axis=0)).max() < 0.1
    assert np.abs(np.mean(box_offsets, axis=0)).max() < 0.1
