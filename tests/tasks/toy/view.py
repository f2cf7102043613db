"""The toy task's output side and its exported-graph runner, without torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnkit.data.images import image_to_array


class BrightnessView:
    def __init__(self, spec: Any):
        self.name = spec.name

    def record(self, prediction: dict) -> dict:
        return {"brightness": prediction["brightness"]}

    def describe(self, prediction: dict) -> str:
        return f"brightness {prediction['brightness']}"

    def csv_row(self, prediction: dict) -> dict[str, str]:
        return {"brightness": str(prediction["brightness"])}

    def visualise(self, image: Image.Image, prediction: dict, meta: Any) -> Image.Image:
        return image.convert("RGB")

    def write_outputs(self, image: Image.Image, prediction: dict, meta: Any, folder: Path, stem: str,
                      pictures: bool = True) -> dict[str, str]:
        return {}

    def write_results(self, records: list[dict], meta: Any, folder: Path) -> None:
        return None


class BrightnessRunner:
    def __init__(self, spec: Any):
        self.spec = spec

    def predict(self, model: Any, images: list[Image.Image], options: Any) -> list[dict]:
        side = model.input_shape[-1]
        batch = np.stack([image_to_array(im, model.meta.in_chans, side).transpose(2, 0, 1) for im in images])
        values = model.run(np.ascontiguousarray(batch))[0]
        return [{"brightness": round(float(v), options.decimals)} for v in values.reshape(-1)]
