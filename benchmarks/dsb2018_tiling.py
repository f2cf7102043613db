"""DSB2018 held-out images through ``Model.predict``: untiled, and tiled with the tile merge of this
checkout and with a former one, all from the same weights and, for the two merges, the same raw tile
detections. Measures what tiling costs and what a merge rule changes.

    git show cf350c9:src/cnnkit/tasks/inst_infer.py > /tmp/old_merge.py   # the IoU-only rule
    python benchmarks/dsb2018_tiling.py --weights runs/instance/exp/last.pt --old-merge /tmp/old_merge.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location("old_merge", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_merge"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/dsb2018"))
    parser.add_argument("--old-merge", type=Path, required=True, help="a former cnnkit/tasks/inst_infer.py")
    args = parser.parse_args()

    from cnnkit.api import load
    from cnnkit.data.instance import InstanceDataset
    from cnnkit.data.instance_data import load_instance_data
    from cnnkit.data.request import DataRequest
    from cnnkit.metrics.coco import COCOMetrics
    from cnnkit.tasks.instance import infer as inst_infer

    old = load_module(args.old_merge)
    model = load(args.weights, device="cpu")
    items = load_instance_data(DataRequest(str(args.data), val_split=0.1, seed=0)).val
    dataset = InstanceDataset(items, model.meta["in_chans"])
    paths = ("untiled", "tiled_former_merge", "tiled")
    new_merge, use_old = inst_infer.merge_tiles, [False]

    def merge(dets, rects):
        if not use_old[0]:
            return new_merge(dets, rects)
        former = old.merge_tiles([old.Detection(d.box, d.label, d.score, d.mask, d.top, d.left, d.tile)
                                  for d in dets], rects)
        return [inst_infer.Detection(d.box, d.label, d.score, d.mask, d.top, d.left, d.tile) for d in former]

    inst_infer.merge_tiles = merge  # detect_tiled looks it up at call time
    scores = {(p, part): COCOMetrics(model.meta["classes"], masks=True, max_dets=model.meta["detections"])
              for p in paths for part in ("all", "tiled_only")}
    crop, start = model.meta["crop"], time.perf_counter()
    for i, item in enumerate(items):
        _, target = dataset[i]
        h, w = target["masks"].shape[-2:]
        tiled = h * w > 4 * crop[0] * crop[1]  # what the predictor tiles on its own
        preds = {"untiled": model.predict([item.image], score_thresh=0.05, tile=max(h, w))[0]}
        use_old[0] = True
        preds["tiled_former_merge"] = model.predict([item.image], score_thresh=0.05)[0] if tiled else preds["untiled"]
        use_old[0] = False
        preds["tiled"] = model.predict([item.image], score_thresh=0.05)[0] if tiled else preds["untiled"]
        for path in paths:
            for part in ("all", "tiled_only") if tiled else ("all",):
                m = scores[path, part]
                m.images.append({"id": i + 1, "height": h, "width": w})
                m.gt += m.ground_truth(target, i + 1)
                m.dt += [{"image_id": i + 1, "category_id": inst["class_id"] + 1, "score": inst["score"],
                          "bbox": [inst["box"][0], inst["box"][1], inst["box"][2] - inst["box"][0],
                                   inst["box"][3] - inst["box"][1]], "segmentation": inst["rle"]}
                         for inst in preds[path]["instances"]]
        if tiled:
            counts = {p: len(preds[p]["instances"]) for p in paths}
            print(f"image {i} {w}x{h}: {counts}, ground truth {len(target['masks'])}, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    report = {"weights": str(args.weights), "images": len(items)}
    for (path, part), m in scores.items():
        report[f"{path}/{part}"] = {k: round(v, 4) for k, v in m.compute().items()
                                    if k in ("mask_ap", "mask_ap50", "mask_ap75")}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
