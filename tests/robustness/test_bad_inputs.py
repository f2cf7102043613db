"""The bad-input corpus: each case is one line; each must exit 2 with one line that names the file or
flag, print no traceback, and leave its input files as they were.

Placeholders: {in} the case's input folder (written by its writer), {out} a fresh output folder,
{ckpt} a trained classify checkpoint, {nan} the same with non-finite weights, {nometa} with an empty meta,
{data} its data, {busy} a port in use.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.cli.main import main
from tests.robustness.corpus import (
    ann,
    bomb_png,
    classify,
    coco_with,
    image_entries,
    instance_maps,
    nothing,
    png,
    segment,
    text_file,
    with_classify,
    yolo,
)

TRAIN = ["--model", "basic_cnn", "--imgsz", "24", "--epochs", "1", "--batch", "8", "--no-verbose",
         "--project", "{out}"]
TC = ["train", "classify", "--data", "{in}", *TRAIN]
TS = ["train", "segment", "--data", "{in}", "--model", "unet_basic", "--imgsz", "32", "--epochs", "1",
      "--batch", "4", "--no-verbose", "--project", "{out}"]
TI = ["train", "instance", "--data", "{in}", "--model", "maskrcnn_resnet18", "--imgsz", "32", "--epochs", "1",
      "--batch", "2", "--no-verbose", "--project", "{out}"]
CHECK = ["data", "check", "{in}"]
TO_COCO = ["data", "convert", "{in}", "--to", "coco", "--out", "{out}/c"]
PRED = ["predict", "--weights", "{ckpt}", "{in}", "--out", "{out}/p"]
CLS = with_classify(lambda root: None)


def _bomb(root):
    bomb_png(root / "a" / "bomb.png")


def _seg_masks(mask, ext=".png"):
    return lambda root: segment(root, mask=mask, ext=ext)


def _maps(id_map, ext=".png"):
    return lambda root: instance_maps(root, id_map=id_map, ext=ext)


class _Payload:
    """A pickle that would create a file when unpickled: weights_only loading must refuse it."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        import os

        return os.mkdir, (self.target,)


def _pickle_payload(root):
    import torch

    root.mkdir(parents=True, exist_ok=True)
    png(root / "0.png")
    torch.save({"task": "classify", "model": _Payload(root / "pwned")}, root / "evil.pt")


def _readonly_file(root):
    root.mkdir(parents=True, exist_ok=True)
    (root / "file").write_text("not a folder")


CASES = [
    # ---------------------------------------------------------------- classify data
    ("cls-one-class", lambda r: classify(r, classes=("only",)), TC, "one class"),
    ("cls-bomb", with_classify(_bomb), TC, "bomb.png"),
    ("cls-bomb-check", with_classify(_bomb), CHECK, "bomb.png"),
    ("cls-empty-file", with_classify(text_file("a/empty.png", b"")), TC, "empty.png"),
    ("cls-text-as-png", with_classify(text_file("a/notes.png", "hello")), TC, "notes.png"),
    ("cls-truncated", with_classify(lambda r: (r / "a" / "0.png").write_bytes((r / "a" / "1.png").read_bytes()[:60])),
     TC, "0.png"),
    ("cls-empty-folder", nothing, TC, "no class folders"),
    ("cls-missing-folder", None, TC, "in"),
    ("cls-symlink-loop-one-class", lambda r: (classify(r, classes=("a",)), (r / "a" / "up").symlink_to(r)), TC,
     "one class"),
    ("data-a-text-file", text_file("notes.txt", "hello"), ["train", "classify", "--data", "{in}/notes.txt", *TRAIN],
     "notes.txt"),
    ("config-a-folder", CLS, [*TC, "--config", "{in}/a"], "a"),
    ("csv-missing-file", text_file("labels.csv", "path,label\nnope.png,a\nnope2.png,b\n"),
     ["train", "classify", "--data", "{in}/labels.csv", *TRAIN], "nope.png"),
    ("csv-no-rows", text_file("labels.csv", "path,label\n"), ["train", "classify", "--data", "{in}/labels.csv", *TRAIN],
     "labels.csv"),
    ("csv-binary", text_file("labels.csv", b"\xff\xfe\x00garbage\x00"),
     ["train", "classify", "--data", "{in}/labels.csv", *TRAIN], "labels.csv"),
    ("idx-truncated", text_file("train-images-idx3-ubyte", b"\x00\x00\x08\x03\x00\x00\x00\x05"),
     TC, "idx"),
    # ---------------------------------------------------------------- CLI values
    ("epochs-negative", CLS, [*TC, "--epochs", "-1"], "--epochs"),
    ("batch-zero", CLS, [*TC, "--batch", "0"], "batch"),
    ("imgsz-negative", CLS, [*TC, "--imgsz", "-5"], "imgsz"),
    ("imgsz-tiny", CLS, [*TC, "--imgsz", "2"], "imgsz"),
    ("imgsz-below-stride", CLS, [*TC, "--model", "resnet18", "--imgsz", "8"], "--imgsz 32 or more"),
    ("imgsz-beyond-memory", CLS, [*TC, "--imgsz", "100000"], "--imgsz 100000"),
    ("lr-negative", CLS, [*TC, "--lr", "-1"], "lr"),
    ("val-split-over-1", CLS, [*TC, "--val-split", "1.5"], "--val-split"),
    ("workers-negative", CLS, [*TC, "--workers", "-1"], "workers"),
    ("momentum-negative", CLS, [*TC, "--momentum", "-0.5"], "momentum"),
    ("ema-over-1", CLS, [*TC, "--ema", "1.5"], "ema"),
    ("label-smoothing-1", CLS, [*TC, "--label-smoothing", "1.0"], "--label-smoothing"),
    ("grad-clip-negative", CLS, [*TC, "--grad-clip", "-1"], "--grad-clip"),
    ("val-split-nan", CLS, [*TC, "--val-split", "nan"], "--val-split"),
    ("lr-inf", CLS, [*TC, "--lr", "inf"], "--lr"),
    ("mean-nan", CLS, [*TC, "--mean", "nan", "--std", "0.2"], "--mean"),
    ("predict-overlap-nan", lambda r: png(r / "0.png"), [*PRED, "--overlap", "nan"], "--overlap"),
    ("epochs-text", CLS, [*TC, "--epochs", "ten"], "--epochs"),
    ("optimizer-unknown", CLS, [*TC, "--optimizer", "lbfgs"], "--optimizer"),
    ("model-unknown", CLS, [*TC, "--model", "resnet19"], "resnet19"),
    ("model-wrong-task", CLS, [*TC, "--model", "unet_basic"], "unet_basic"),
    ("task-unknown", CLS, ["train", "clasify", "--data", "{in}", *TRAIN], "clasify"),
    ("data-shapes-0", nothing, ["train", "classify", "--data", "shapes:0", *TRAIN], "shapes:0"),
    ("data-shapes-negative", nothing, ["train", "classify", "--data", "shapes:-3", *TRAIN], "shapes:-3"),
    ("data-shapes-text", nothing, ["train", "classify", "--data", "shapes:many", *TRAIN], "shapes:many"),
    ("mean-two-on-rgb", CLS, [*TC, "--mean", "1", "2"], "--mean"),
    ("std-zero", CLS, [*TC, "--std", "0", "0", "0"], "--std"),
    ("mean-out-of-range", CLS, [*TC, "--mean", "5", "5", "5"], "--mean"),
    ("device-gpu", CLS, [*TC, "--device", "gpu"], "--device"),
    ("device-cuda9", CLS, [*TC, "--device", "cuda:9"], "--device"),
    ("device-tpu", CLS, [*TC, "--device", "tpu"], "--device"),
    ("device-mps", CLS, [*TC, "--device", "mps"], "--device"),
    ("monitor-unknown", CLS, [*TC, "--monitor", "accuracy"], "--monitor"),
    ("val-group-bad-regex", CLS, [*TC, "--val-group", "(unclosed"], "--val-group"),
    ("val-group-no-match", CLS, [*TC, "--val-group", "zzz(\\d+)"], "--val-group"),
    ("pretrained-missing", CLS, [*TC, "--model", "resnet18", "--pretrained", "{in}/none.pth"], "none.pth"),
    ("pretrained-garbage", with_classify(text_file("w.pth", b"garbage")),
     [*TC, "--model", "resnet18", "--pretrained", "{in}/w.pth"], "w.pth"),
    ("config-missing", CLS, [*TC, "--config", "{in}/nope.yaml"], "nope.yaml"),
    ("config-bad-yaml", with_classify(text_file("r.yaml", "epochs: [1,\n")), [*TC, "--config", "{in}/r.yaml"],
     "r.yaml"),
    ("config-unknown-key", with_classify(text_file("r.yaml", "epocs: 3\n")), [*TC, "--config", "{in}/r.yaml"],
     "epocs"),
    ("config-bad-value", with_classify(text_file("r.yaml", "batch: -4\n")), [*TC, "--config", "{in}/r.yaml"],
     "batch"),
    ("config-not-mapping", with_classify(text_file("r.yaml", "- 1\n- 2\n")), [*TC, "--config", "{in}/r.yaml"],
     "r.yaml"),
    ("config-model-args-unknown", with_classify(text_file("r.yaml", "model_args: {widht: 3}\n")),
     [*TC, "--config", "{in}/r.yaml"], "widht"),
    ("resume-nothing", CLS, [*TC, "--resume"], "--resume"),
    ("resume-missing-name", CLS, [*TC, "--resume", "--name", "ghost"], "ghost"),
    # ---------------------------------------------------------------- output paths
    ("project-is-file", _readonly_file, [*TC[:-2], "--project", "{in}/file"], "file"),
    ("project-under-file", _readonly_file, [*TC[:-2], "--project", "{in}/file/runs"], "file"),
    ("project-unwritable", CLS, [*TC[:-2], "--project", "/proc/cnnkit-runs"], "/proc/cnnkit-runs"),
    ("predict-out-is-file", _readonly_file, ["predict", "--weights", "{ckpt}", "{data}/a", "--out", "{in}/file"],
     "file"),
    ("predict-out-unwritable", nothing, ["predict", "--weights", "{ckpt}", "{data}/a", "--out", "/proc/cnnkit-p"],
     "/proc/cnnkit-p"),
    ("val-out-is-file", _readonly_file, ["val", "--weights", "{ckpt}", "--data", "{data}", "--out", "{in}/file"],
     "file"),
    ("export-out-unwritable", nothing, ["export", "--weights", "{ckpt}", "--out", "/proc/cnnkit.onnx"],
     "/proc/cnnkit.onnx"),
    ("convert-out-is-file", _maps(None), ["data", "convert", "{in}", "--to", "coco", "--out", "{in}/images/0.png"],
     "0.png"),
    ("convert-out-not-empty", _maps(None), ["data", "convert", "{in}", "--to", "coco", "--out", "{in}"], "--out"),
    ("demo-out-is-file", _readonly_file, ["demo", "--task", "classify", "--out", "{in}/file"], "file"),
    # ---------------------------------------------------------------- segment data
    ("seg-all-background", _seg_masks(lambda i: np.zeros((32, 32), np.uint8)), TS, "background"),
    ("seg-jpeg-masks", _seg_masks(None, ext=".jpg"), TS, ".jpg"),
    ("seg-mask-size", _seg_masks(lambda i: np.zeros((16, 16), np.uint8) + (i % 2)), TS, "masks"),
    ("seg-float-mask", _seg_masks(lambda i: np.full((32, 32), 0.5, np.float32), ext=".tif"), TS, ".tif"),
    ("seg-no-masks", lambda r: [png(r / "images" / f"{i}.png") for i in range(3)] and (r / "masks").mkdir(), TS,
     "masks"),
    ("seg-classes-file-missing", _seg_masks(None), [*TS, "--classes-file", "{in}/none.csv"], "none.csv"),
    ("seg-classes-file-bad", lambda r: (segment(r), (r / "classes.csv").write_text("x;y\n")), TS, "classes.csv"),
    ("seg-class-weights-bad", _seg_masks(None), [*TS, "--class-weights", "heavy"], "--class-weights"),
    ("seg-class-weights-count", _seg_masks(None), [*TS, "--class-weights", "1,2"], "--class-weights"),
    ("seg-ignore-index-range", _seg_masks(None), [*TS, "--ignore-index", "-1"], "--ignore-index"),
    ("seg-values-outside-classes", lambda r: (segment(r), (r / "classes.csv").write_text("0,bg,0,0,0\n1,a,9,9,9\n")),
     TS, "class values"),
    ("seg-binary-all-background", _seg_masks(lambda i: np.zeros((32, 32), np.uint8)), [*TS, "--binary"],
     "background"),
    ("seg-16-bit-values", _seg_masks(lambda i: np.full((32, 32), 40000 * (i == 2), np.uint16)), TS, "2.png"),
    ("seg-data-shapes-0", nothing, ["train", "segment", "--data", "shapes:0", *TS[4:]], "shapes:0"),
    ("inst-maps-all-empty", _maps(lambda i: np.zeros((32, 32), np.uint8)), TI, "no objects"),
    ("seg-bomb-mask", lambda r: (segment(r), bomb_png(r / "masks" / "0.png")), TS, "0.png"),
    # ---------------------------------------------------------------- instance data: COCO
    ("coco-traversal", coco_with(images=image_entries(file_name="../../../../etc/passwd")), TO_COCO, "passwd"),
    ("coco-absolute-path", coco_with(images=image_entries(file_name="/etc/hostname")), TO_COCO, "hostname"),
    ("coco-no-file-name", coco_with(images=image_entries(file_name=None)), TO_COCO, "file_name"),
    ("coco-no-image-id", coco_with(images=image_entries(id=None)), TO_COCO, "id"),
    ("coco-no-cat-name", coco_with(cats=[{"id": 1}]), TO_COCO, "name"),
    ("coco-no-cat-id", coco_with(cats=[{"name": "square"}]), TO_COCO, "id"),
    ("coco-bbox-3", coco_with(anns=ann(bbox=[1, 2, 3], segmentation=None)), TO_COCO, "bbox"),
    ("coco-bbox-text", coco_with(anns=ann(bbox="wide", segmentation=None)), TO_COCO, "bbox"),
    ("coco-bbox-nan", coco_with(raw='{"images":[{"id":0,"file_name":"0.png","height":32,"width":32}],'
                                    '"annotations":[{"id":1,"image_id":0,"category_id":1,"bbox":[NaN,1,2,3]}],'
                                    '"categories":[{"id":1,"name":"s"}]}'), TO_COCO, "NaN"),
    ("coco-bad-rle", coco_with(anns=ann(segmentation={"counts": "!!!", "size": [32, 32]})), TO_COCO, "RLE"),
    ("coco-rle-wrong-size", coco_with(anns=ann(segmentation={"counts": [0, 1024], "size": [8, 8]})), TO_COCO,
     "size"),
    ("coco-polygon-text", coco_with(anns=ann(segmentation=[["a", "b", "c", "d", "e", "f"]])), TO_COCO,
     "segmentation"),
    ("coco-size-mismatch", coco_with(images=image_entries(height=64, width=48)), TO_COCO, "0.png"),
    ("coco-not-json", coco_with(raw="{not json"), TO_COCO, "annotations.json"),
    ("coco-a-list", coco_with(raw="[1, 2]"), TO_COCO, "annotations.json"),
    ("coco-images-not-list", coco_with(raw='{"images": 5, "annotations": [], "categories": []}'), TO_COCO,
     "images"),
    ("coco-duplicate-image-id", coco_with(images=image_entries(id=1)), TO_COCO, "id"),
    ("convert-classify-data", CLS, TO_COCO, "{in}"),
    ("coco-unknown-category", coco_with(anns=ann(category_id=7)), TO_COCO, "category"),
    ("coco-train-traversal", coco_with(images=image_entries(file_name="../../../../etc/passwd")), TI, "passwd"),
    # ---------------------------------------------------------------- instance data: YOLO
    ("yolo-odd-coords", yolo("0 0.1 0.1 0.5 0.1 0.5\n"), TO_COCO, "0.txt"),
    ("yolo-one-number", yolo("0 0.1\n"), TO_COCO, "0.txt"),
    ("yolo-class-float", yolo("0.5 0.5 0.5 0.2 0.2\n"), TO_COCO, "0.txt"),
    ("yolo-class-range", yolo("3 0.5 0.5 0.2 0.2\n"), TO_COCO, "0.txt"),
    ("yolo-nan", yolo("0 nan 0.5 0.2 0.2\n"), TO_COCO, "0.txt"),
    ("yolo-text", yolo("zero point five\n"), TO_COCO, "0.txt"),
    ("yolo-data-yaml-bad", lambda r: (yolo("0 0.5 0.5 0.2 0.2\n")(r), (r / "data.yaml").write_text("names: [a,\n")),
     TO_COCO, "data.yaml"),
    ("yolo-names-keys-text", lambda r: (yolo("0 0.5 0.5 0.2 0.2\n")(r), (r / "data.yaml").write_text(
        "train: images\nnames: {a: thing}\n")), TO_COCO, "data.yaml"),
    # ---------------------------------------------------------------- instance data: maps
    ("maps-float", _maps(lambda i: np.full((32, 32), 1.5, np.float32), ext=".tif"), TO_COCO, ".tif"),
    ("maps-negative", _maps(lambda i: np.full((32, 32), -1, np.int32), ext=".tif"), TO_COCO, ".tif"),
    ("maps-size", _maps(lambda i: np.ones((8, 8), np.uint8)), TO_COCO, "0.png"),
    ("maps-sidecar-not-json", lambda r: (instance_maps(r), (r / "masks" / "0.json").write_text("{bad")), TO_COCO,
     "0.json"),
    ("maps-jpeg", _maps(None, ext=".jpg"), TO_COCO, ".jpg"),
    # ---------------------------------------------------------------- predict, val, export, checkpoints
    ("predict-unreadable", lambda r: (png(r / "0.png"), (r / "1.png").write_text("x")), PRED, "1.png"),
    ("predict-bomb", lambda r: (png(r / "0.png"), bomb_png(r / "1.png")), PRED, "1.png"),
    ("predict-no-images", text_file("notes.txt", "x"), PRED, "no images"),
    ("predict-topk-0", lambda r: png(r / "0.png"), [*PRED, "--topk", "0"], "--topk"),
    ("predict-batch-0", lambda r: png(r / "0.png"), [*PRED, "--batch", "0"], "--batch"),
    ("predict-overlap-1", lambda r: png(r / "0.png"), [*PRED, "--overlap", "1.5"], "--overlap"),
    ("predict-tile-negative", lambda r: png(r / "0.png"), [*PRED, "--tile", "-4"], "--tile"),
    ("predict-score-2", lambda r: png(r / "0.png"), [*PRED, "--score-thresh", "2"], "--score-thresh"),
    ("predict-max-det-negative", lambda r: png(r / "0.png"), [*PRED, "--max-det", "-1"], "--max-det"),
    ("predict-device-gpu", lambda r: png(r / "0.png"), [*PRED, "--device", "gpu"], "--device"),
    ("weights-missing", lambda r: png(r / "0.png"), ["predict", "--weights", "{in}/none.pt", "{in}"], "none.pt"),
    ("weights-garbage", lambda r: (png(r / "0.png"), (r / "w.pt").write_bytes(b"\x80\x04garbage")),
     ["predict", "--weights", "{in}/w.pt", "{in}/0.png"], "w.pt"),
    ("weights-an-image", lambda r: png(r / "0.png"), ["predict", "--weights", "{in}/0.png", "{in}/0.png"], "0.png"),
    ("weights-nan", lambda r: png(r / "0.png"), ["predict", "--weights", "{nan}", "{in}/0.png"], "nan.pt"),
    ("weights-pickle-payload", _pickle_payload, ["predict", "--weights", "{in}/evil.pt", "{in}/0.png"], "evil.pt"),
    ("val-split-test-missing", nothing, ["val", "--weights", "{ckpt}", "--data", "{data}", "--split", "test",
                                         "--out", "{out}/v"], "test"),
    ("serve-port-in-use", nothing, ["serve", "--weights", "{ckpt}", "--port", "{busy}"], "--port"),
    ("serve-host-unknown", nothing, ["serve", "--weights", "{ckpt}", "--host", "not.a.host.invalid"], "--host"),
    ("export-out-is-the-weights", nothing, ["export", "--weights", "{nan}", "--out", "{nan}"], "nan.pt"),
    ("predict-out-is-the-inputs", lambda r: png(r / "0.png"), [*PRED[:-1], "{in}"], "--out"),
    ("export-out-a-folder", nothing, ["export", "--weights", "{ckpt}", "--out", "{in}"], "in"),
    ("csv-empty-label", with_classify(text_file("l.csv", "a/0.png,a\na/1.png,\n")),
     ["train", "classify", "--data", "{in}/l.csv", *TRAIN], "l.csv"),
    ("recipe-epochs-fraction", with_classify(text_file("r.yaml", "epochs: 1.5\n")), [*TC, "--config", "{in}/r.yaml"],
     "epochs"),
    ("class-weights-negative", _seg_masks(None), [*TS, "--class-weights", "1,-2,3"], "--class-weights"),
    ("pretrained-for-scratch-model", CLS, [*TC, "--model", "fastnet_tiny", "--pretrained", "{in}/a/0.png"],
     "--pretrained"),
    ("classes-file-not-utf8", lambda r: (segment(r), (r / "c.csv").write_bytes(b"0,\xff\xfe\n")),
     [*TS, "--classes-file", "{in}/c.csv"], "c.csv"),
    ("weights-no-meta", nothing, ["export", "--weights", "{nometa}"], "nometa.pt"),
    ("serve-weights-missing", nothing, ["serve", "--weights", "{in}/none.pt", "--port", "1"], "none.pt"),
    ("weights-onnx-garbage", lambda r: (png(r / "0.png"), (r / "m.onnx").write_bytes(b"garbage")),
     ["predict", "--weights", "{in}/m.onnx", "{in}/0.png"], "m.onnx"),
    ("val-data-missing", nothing, ["val", "--weights", "{ckpt}", "--data", "{in}/none"], "none"),
    ("val-other-classes", lambda r: classify(r, classes=("x", "y", "z")), ["val", "--weights", "{ckpt}", "--data",
                                                                          "{in}", "--out", "{out}/v"], "class"),
    ("export-imgsz-negative", nothing, ["export", "--weights", "{ckpt}", "--imgsz", "-3", "--out", "{out}/m.onnx"],
     "--imgsz"),
    ("export-verify-no-data", nothing, ["export", "--weights", "{ckpt}", "--verify", "--data", "{in}/none",
                                        "--out", "{out}/m.onnx", "--no-compile"], "none"),
    ("export-nan", nothing, ["export", "--weights", "{nan}", "--out", "{out}/m.onnx"], "nan.pt"),
    ("summary-imgsz-2", nothing, ["summary", "basic_cnn", "--imgsz", "2"], "--imgsz"),
    ("summary-in-chans-0", nothing, ["summary", "basic_cnn", "--in-chans", "0"], "--in-chans"),
    ("summary-classes-0", nothing, ["summary", "basic_cnn", "--num-classes", "0"], "--num-classes"),
    ("summary-unknown", nothing, ["summary", "resnet19"], "resnet19"),
    ("models-unknown-task", nothing, ["models", "--task", "classfy", "--no-flops"], "classfy"),
    ("serve-port", nothing, ["serve", "--weights", "{ckpt}", "--port", "70000"], "--port"),
    ("serve-workers-0", nothing, ["serve", "--weights", "{ckpt}", "--workers", "0"], "--workers"),
    ("serve-upload-0", nothing, ["serve", "--weights", "{ckpt}", "--max-upload-mb", "0"], "--max-upload-mb"),
    ("serve-timeout-0", nothing, ["serve", "--weights", "{ckpt}", "--timeout", "0"], "--timeout"),
    ("serve-max-pixels-0", nothing, ["serve", "--weights", "{ckpt}", "--max-pixels", "0"], "--max-pixels"),
    ("data-check-missing", None, ["data", "check", "{in}/none"], "none"),
    ("convert-no-to", _maps(None), ["data", "convert", "{in}", "--out", "{out}/c"], "--to"),
    ("max-pixels-0", CLS, [*TC, "--max-pixels", "0"], "--max-pixels"),
]


@pytest.mark.parametrize("writer, argv, expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, capsys, trained, busy_port, writer, argv, expect):
    from tests.robustness.corpus import snapshot

    root, out = tmp_path / "in", tmp_path / "out"
    if writer is not None:
        writer(root)
    before = snapshot(root)
    places = {"{in}": str(root), "{out}": str(out), "{ckpt}": str(trained["ckpt"]), "{nan}": str(trained["nan_ckpt"]),
              "{data}": str(trained["data"]), "{nometa}": str(trained["nometa"]), "{busy}": str(busy_port)}
    args = []
    for a in argv:
        for k, v in places.items():
            a = a.replace(k, v)
        args.append(a)
    try:
        code = main(args)
    except SystemExit as e:  # argparse
        code = e.code
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:") or ": error:" in line]
    assert "Traceback" not in captured.err + captured.out
    assert code == 2, f"exit {code}; stderr: {captured.err[-2000:]}"
    assert len(errors) == 1, captured.err
    for k, v in places.items():
        expect = expect.replace(k, v)
    assert expect.lower() in errors[0].lower(), errors[0]
    assert snapshot(root) == before, "an input file changed"
