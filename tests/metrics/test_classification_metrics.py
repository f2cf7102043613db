"""torchmetrics-based metrics checked against scikit-learn."""

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

from cnnkit.metrics.classification import ClassificationMetrics


def test_against_sklearn(tmp_path):
    rng = np.random.default_rng(0)
    n, c = 300, 7
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 2.0 * np.eye(c)[labels] * rng.random((n, 1))
    metrics = ClassificationMetrics([f"c{i}" for i in range(c)])
    for chunk in np.array_split(np.arange(n), 4):  # streamed in batches
        metrics.update(torch.tensor(logits[chunk]), torch.tensor(labels[chunk]))
    got = metrics.compute()
    pred = logits.argmax(1)
    assert np.isclose(got["top1"], accuracy_score(labels, pred))
    assert np.isclose(got["top5"], top_k_accuracy_score(labels, logits, k=5, labels=range(c)))
    p, r, f, support = precision_recall_fscore_support(labels, pred, labels=range(c), zero_division=0)
    rows = metrics.per_class()
    assert np.allclose([x["precision"] for x in rows], p, atol=1e-6)
    assert np.allclose([x["recall"] for x in rows], r, atol=1e-6)
    assert np.allclose([x["f1"] for x in rows], f, atol=1e-6)
    assert [x["support"] for x in rows] == support.tolist()
    assert np.isclose(got["f1"], f.mean(), atol=1e-6)
    files = metrics.save(tmp_path)
    assert {p.name for p in files} == {"per_class.csv", "confusion_matrix.csv", "confusion_matrix.png"}
    cm_rows = (tmp_path / "confusion_matrix.csv").read_text().splitlines()[1:]
    cm = np.array([[int(v) for v in row.split(",")[1:]] for row in cm_rows])
    assert np.array_equal(cm, confusion_matrix(labels, pred, labels=range(c)))


def test_few_classes_have_no_top5():
    metrics = ClassificationMetrics(["a", "b", "c"])
    metrics.update(torch.tensor([[2.0, 0, 0], [0, 2.0, 0]]), torch.tensor([0, 2]))
    out = metrics.compute()
    assert "top5" not in out and out["top1"] == 0.5


def test_top5_of_a_strong_model_whose_first_batch_is_all_correct():
    """Regression: torchmetrics put top-5 into the compute group of precision/recall/F1 (top-1 based)
    when the first batch was all correct, as a good classifier's often is, and top-5 then equalled
    top-1 for good."""
    rng = np.random.default_rng(0)
    n, c = 256, 10
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), labels] += 4.0  # right at top-1 mostly ...
    wrong = rng.random(n) < 0.1
    wrong[:32] = False  # ... the whole first batch surely so
    logits[np.arange(32), labels[:32]] += 10.0
    logits[wrong, labels[wrong]] = np.sort(logits[wrong], axis=1)[:, -2] - 0.01  # second place: top-5 still right
    metrics = ClassificationMetrics([f"c{i}" for i in range(c)])
    for chunk in np.array_split(np.arange(n), n // 32):
        metrics.update(torch.tensor(logits[chunk]), torch.tensor(labels[chunk]))
    got = metrics.compute()
    assert np.isclose(got["top1"], accuracy_score(labels, logits.argmax(1))) and got["top1"] < 0.95
    assert np.isclose(got["top5"], top_k_accuracy_score(labels, logits, k=5, labels=range(c)))
    assert got["top5"] == 1.0


def test_a_class_absent_from_the_split_is_undefined_not_zero(tmp_path, caplog):
    """Regression: a perfect model on a val split without 'green' scored precision/recall/F1 0.6667, and
    per_class.csv read green,0.0,0.0,0.0,0. An absent class (no images, no predictions) is undefined."""
    classes = ["red", "green", "blue", "grey"]
    labels = np.array([0, 0, 2, 2, 2, 3, 0])
    pred = np.array([0, 0, 2, 2, 3, 3, 0])  # one blue taken for grey; green neither true nor predicted
    metrics = ClassificationMetrics(classes)
    metrics.update(torch.tensor(np.eye(4)[pred] * 5.0), torch.tensor(labels))
    with caplog.at_level("INFO", logger="cnnkit"):
        got = metrics.compute()
    assert "green" in caplog.text and "without images" in caplog.text
    p, r, f, _ = precision_recall_fscore_support(labels, pred, average="macro", zero_division=0)  # present labels
    assert np.isclose(got["precision"], p) and np.isclose(got["recall"], r) and np.isclose(got["f1"], f)
    p_c, r_c, f_c, _ = precision_recall_fscore_support(labels, pred, labels=[0, 2, 3], zero_division=0)
    rows = {row["class"]: row for row in metrics.per_class()}
    assert np.allclose([rows[c]["f1"] for c in ("red", "blue", "grey")], f_c)
    assert np.isnan(rows["green"]["precision"]) and rows["green"]["support"] == 0
    metrics.save(tmp_path)
    text = (tmp_path / "per_class.csv").read_text()
    assert "green,,,,0" in text.splitlines() and "nan" not in text.lower()
    assert "-" in metrics.table().splitlines()[2]


def test_a_perfect_model_scores_one_when_a_class_is_absent():
    metrics = ClassificationMetrics(["red", "green", "blue"])
    labels = torch.tensor([0, 2, 2, 0])
    metrics.update(torch.nn.functional.one_hot(labels, 3).float(), labels)
    assert metrics.compute() == {"top1": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_a_class_predicted_but_absent_counts_as_sklearn_counts_it():
    """Predicted but never true: precision and F1 0 (a false positive, in the means); recall undefined and left
    out (macro recall counted it 0), as scikit-learn's zero_division=nan has it."""
    labels, pred = np.array([0, 0, 2]), np.array([0, 1, 2])
    metrics = ClassificationMetrics(["a", "b", "c"])
    metrics.update(torch.tensor(np.eye(3)[pred]), torch.tensor(labels))
    got = metrics.compute()
    p, r, f, _ = precision_recall_fscore_support(labels, pred, average="macro", zero_division=np.nan)
    assert np.isclose(got["precision"], p) and np.isclose(got["recall"], r) and np.isclose(got["f1"], f)
    assert np.isclose(got["recall"], 0.75) and np.isclose(got["precision"], 2 / 3)
