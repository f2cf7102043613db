"""Output files hold no NaN or Infinity literals: undefined values are empty CSV cells and JSON nulls."""

import json
import math

from cnnkit.files import atomic_write_csv, json_bytes


def test_undefined_values_are_empty_cells(tmp_path):
    path = tmp_path / "rows.csv"
    atomic_write_csv(path, [{"class": "a", "iou": float("nan"), "acc": math.inf, "n": 0}, {"class": "b", "iou": 0.5}])
    assert path.read_text().splitlines() == ["class,iou,acc,n", "a,,,0", "b,0.5,,"]


def test_undefined_values_are_json_null():
    data = {"miou": float("nan"), "per": [1.0, -math.inf, (2, float("nan"))], "name": "x"}
    text = json_bytes(data).decode()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"miou": None, "per": [1.0, None, [2, None]], "name": "x"}
