"""Recognition's output side, without torch: an embedding per image, and the identities a search found."""

from __future__ import annotations

from cnnkit.tasks.common import EmbeddingView


class RecognizeView(EmbeddingView):
    """``{"embedding": [D floats]}`` (unit length); a search adds ``"matches"``: [{name, distance, match}]."""

    @staticmethod
    def describe(prediction: dict) -> str:
        matches = prediction.get("matches")
        if not matches:
            return EmbeddingView.describe(prediction)
        best = matches[0]
        name = best["name"] if best.get("match") is not False else f"unknown (nearest {best['name']})"
        return f"{name} (distance {best['distance']:.3f})"

    @staticmethod
    def csv_row(prediction: dict) -> dict[str, str]:
        row = EmbeddingView.csv_row(prediction)
        if "matches" in prediction:
            row = {"identity": RecognizeView.identity(prediction), **row}
        return row

    @staticmethod
    def identity(prediction: dict) -> str:
        """The nearest enrolled identity within the threshold, else 'unknown'."""
        matches = prediction.get("matches") or []
        return matches[0]["name"] if matches and matches[0].get("match") is not False else "unknown"
