"""Per-class segmentation metrics: hand-computed scores, ignored labels, the epoch handler and its files."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from ignite.engine import Engine, Events
from ignite.metrics import ConfusionMatrix, mIoU
from PIL import Image

from monai_app.engine.handlers import ClassMetrics

from monai_app.metrics.classes import class_scores, confusion_matrix, stack_output

# A 4x4 image with 3 classes.
REF = torch.tensor([[0, 0, 1, 1],
                    [0, 0, 1, 1],
                    [2, 2, 1, 1],
                    [2, 2, 2, 2]])
PRED = torch.tensor([[0, 0, 1, 1],
                     [0, 1, 1, 1],
                     [2, 0, 1, 1],
                     [2, 2, 2, 1]])
# Three pixels differ: (1, 1) reference 0 predicted 1, (2, 1) reference 2 predicted 0, (3, 3) reference 2
# predicted 1. So (rows reference, columns predicted):
#   class 0: 4 reference pixels, 3 right -> TP 3, FN 1, FP 1 (the 2 at (2, 1))
#   class 1: 6 reference pixels, all right -> TP 6, FN 0, FP 2 (at (1, 1) and (3, 3))
#   class 2: 6 reference pixels, 4 right -> TP 4, FN 2, FP 0
CM = [[3, 1, 0],
      [0, 6, 0],
      [1, 1, 4]]
IOU = [3 / 5, 6 / 8, 4 / 6]  # TP / (TP + FP + FN)
DICE = [6 / 8, 12 / 14, 8 / 10]  # 2TP / (2TP + FP + FN)
PRECISION = [3 / 4, 6 / 8, 4 / 4]  # TP / (TP + FP)
RECALL = [3 / 4, 6 / 6, 4 / 6]  # TP / (TP + FN)
ACCURACY = 13 / 16

# A second, 2x3 image without class 2 in its reference; its last column is ignored (255), and class 2 is
# predicted only there. Class 0: TP 1, FN 1, FP 0; class 1: TP 2, FN 0, FP 1; class 2: no pixels -> NaN.
REF_B = torch.tensor([[0, 0, 255], [1, 1, 255]])
PRED_B = torch.tensor([[0, 1, 2], [1, 1, 0]])
CM_B = [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
IOU_B = [1 / 2, 2 / 3, math.nan]
MIOU_B = (1 / 2 + 2 / 3) / 2


def scores_of(ids: torch.Tensor, num_classes: int = 3) -> torch.Tensor:
    """(H, W) ids -> (C, H, W) scores whose argmax is ``ids`` (softmax-like, not exactly one-hot)."""
    scores = torch.rand(num_classes, *ids.shape) * 0.4
    return scores.scatter_(0, ids[None], 0.9)


def assert_close(actual, expected) -> None:
    assert torch.as_tensor(actual).double().tolist() == pytest.approx(expected, nan_ok=True, abs=1e-12)


@pytest.mark.parametrize("as_scores", [True, False], ids=["scores", "ids"])
def test_hand_computed_scores(as_scores):
    pred = scores_of(PRED) if as_scores else PRED[None].float()
    cm = confusion_matrix(pred, REF[None].float(), 3)
    assert cm.dtype == torch.int64 and cm.tolist() == CM
    s = class_scores(cm)
    assert_close(s["iou"], IOU)
    assert_close(s["dice"], DICE)
    assert_close(s["precision"], PRECISION)
    assert_close(s["recall"], RECALL)
    assert_close(s["pixels"], [4, 6, 6])
    assert float(s["pixel_accuracy"]) == pytest.approx(ACCURACY)
    assert float(s["miou"]) == pytest.approx((3 / 5 + 3 / 4 + 2 / 3) / 3)
    assert float(s["mean_dice"]) == pytest.approx(sum(DICE) / 3)


def test_absent_class_is_nan_and_a_false_detection_is_zero():
    ref = torch.zeros(2, 2, dtype=torch.long)
    pred = torch.tensor([[0, 0], [0, 1]])  # class 1 predicted, absent from the reference; class 2 nowhere
    s = class_scores(confusion_matrix(pred, ref, 3))
    assert_close(s["iou"], [3 / 4, 0.0, math.nan])
    assert_close(s["dice"], [6 / 7, 0.0, math.nan])
    assert_close(s["precision"], [1.0, 0.0, math.nan])
    assert_close(s["recall"], [3 / 4, math.nan, math.nan])
    assert float(s["miou"]) == pytest.approx(3 / 8)  # NaN classes left out of the mean
    assert math.isnan(float(class_scores(torch.zeros(3, 3, dtype=torch.long))["pixel_accuracy"]))


@pytest.mark.parametrize("ignored", [255, 3])
def test_ignored_labels_change_nothing(ignored):
    # an extra column of ignored reference pixels, with every class predicted there
    ref = torch.cat([REF, torch.full((4, 1), ignored)], dim=1)
    for extra in ([0, 1, 2, 1], [2, 2, 2, 2], [0, 0, 0, 0]):
        pred = torch.cat([PRED, torch.tensor(extra)[:, None]], dim=1)
        assert confusion_matrix(pred, ref, 3).tolist() == CM
        assert confusion_matrix(scores_of(pred), ref[None].float(), 3).tolist() == CM


def test_one_channel_pred_is_refused_by_stack_output():
    with pytest.raises(ValueError, match="C > 1"):
        stack_output([{"pred": PRED[None].float(), "label": REF[None]}])


def test_stack_output_shapes_and_padding():
    y_pred, y = stack_output({"pred": scores_of(PRED), "label": REF[None].float()})
    assert y_pred.shape == (1, 3, 4, 4) and y.shape == (1, 4, 4) and y.dtype == torch.long
    items = [{"pred": scores_of(PRED), "label": REF[None]}, {"pred": scores_of(PRED_B), "label": REF_B}]
    y_pred, y = stack_output(items)
    assert y_pred.shape == (2, 3, 16) and y.shape == (2, 16) and (y[1, 6:] == -1).all()


def _run(handler: ClassMetrics, items: list[dict], batch: list[dict], max_epochs: int = 1, **metrics) -> list[dict]:
    """Run an engine whose one iteration has the (decollated) ``batch`` and outputs ``items``; return the
    metrics of each epoch."""
    engine = Engine(lambda e, b: items)
    handler.attach(engine)
    for name, metric in metrics.items():
        metric.attach(engine, name)
    epochs = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: epochs.append(dict(e.state.metrics)))
    engine.run([batch], max_epochs=max_epochs)
    return epochs


def _two_images() -> tuple[list[dict], list[dict]]:
    items = [{"pred": scores_of(PRED), "label": REF[None].float()}, {"pred": scores_of(PRED_B), "label": REF_B}]
    return items, [{"case_id": "a"}, {"case_id": "b"}]


def _read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_handler_metrics_files_and_reset(tmp_path):
    items, batch = _two_images()
    epochs = _run(ClassMetrics(["Sky", "Road Marking", "car"], output_dir=tmp_path), items, batch, max_epochs=2)

    # summed matrix: [[4, 2, 0], [0, 8, 0], [1, 1, 4]] -> IoU 4/7, 8/11, 4/6 and 16 of 20 pixels right
    total_iou = [4 / 7, 8 / 11, 4 / 6]
    metrics = epochs[-1]
    assert metrics["val_miou"] == pytest.approx(sum(total_iou) / 3)
    assert metrics["val_pixel_accuracy"] == pytest.approx(16 / 20)
    assert metrics["val_mean_dice"] == pytest.approx((8 / 11 + 16 / 19 + 8 / 10) / 3)
    assert [metrics[f"val_iou_{t}"] for t in ("sky", "road_marking", "car")] == pytest.approx(total_iou)
    # ... which is not the mean of the images' mIoU
    image_mean = (sum(IOU) / 3 + MIOU_B) / 2
    assert abs(metrics["val_miou"] - image_mean) > 0.01
    assert epochs[0] == epochs[1]  # reset at each epoch: the second gives the same numbers

    per_case = _read_csv(tmp_path / "per_case.csv")
    assert list(per_case[0]) == ["case_id", "pixel_accuracy", "miou", "iou_sky", "iou_road_marking", "iou_car",
                                 "dice_sky", "dice_road_marking", "dice_car"]
    assert [r["case_id"] for r in per_case] == ["a", "b"]
    assert float(per_case[1]["miou"]) == pytest.approx(MIOU_B, rel=1e-5)
    assert per_case[1]["iou_car"] == "nan" and per_case[1]["dice_car"] == "nan"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["miou"]["mean"] == pytest.approx(image_mean)

    scores = {r["class"]: r for r in _read_csv(tmp_path / "class_scores.csv")}
    assert list(scores) == ["Sky", "Road Marking", "car", "mean"]
    assert float(scores["Sky"]["image_mean_iou"]) == pytest.approx((3 / 5 + 1 / 2) / 2, rel=1e-5)
    assert float(scores["car"]["image_mean_iou"]) == pytest.approx(4 / 6, rel=1e-5)  # only image a has a car
    assert scores["car"]["images"] == "1" and scores["Sky"]["images"] == "2" and scores["car"]["pixels"] == "6"
    assert float(scores["Sky"]["image_mean_precision"]) == pytest.approx((3 / 4 + 1) / 2, rel=1e-5)
    assert float(scores["Road Marking"]["iou"]) == pytest.approx(8 / 11, rel=1e-5)

    dataset = json.loads((tmp_path / "dataset_scores.json").read_text())
    assert dataset["miou"] == pytest.approx(metrics["val_miou"])
    assert dataset["classes"]["car"]["images"] == 1
    assert dataset["image_mean_miou"] == pytest.approx(((3 / 5 + 1 / 2) / 2 + (3 / 4 + 2 / 3) / 2 + 4 / 6) / 3)

    with open(tmp_path / "confusion_matrix.csv", newline="") as f:
        matrix = list(csv.reader(f))
    assert matrix[0] == ["reference\\predicted", "Sky", "Road Marking", "car"]
    counts = [[int(c) for c in row[1:]] for row in matrix[1:]]
    assert counts == [[4, 2, 0], [0, 8, 0], [1, 1, 4]] and sum(map(sum, counts)) == 16 + 4
    with Image.open(tmp_path / "confusion_matrix.png") as png:
        assert png.format == "PNG" and png.width > 300 and png.height > 300
    assert not list(tmp_path.glob(".*part*"))  # no temporary files left behind


def test_handler_names_unnamed_images():
    items, _ = _two_images()
    handler = ClassMetrics(["a", "b", "c"], prefix="test_")
    metrics = _run(handler, items, [{}, {}])[0]
    assert handler.case_ids == ["image_0000", "image_0001"]
    assert metrics["test_pixel_accuracy"] == pytest.approx(16 / 20)


def test_handler_rejects_clashing_class_names():
    with pytest.raises(ValueError, match="distinct"):
        ClassMetrics(["Road-Marking", "road marking"])


def test_ignite_miou_with_stack_output_matches_the_handler():
    items, batch = _two_images()
    # images of different sizes: stack_output pads them with ignored pixels
    cm = ConfusionMatrix(3, output_transform=stack_output)
    metrics = _run(ClassMetrics(["sky", "road", "car"]), items, batch, ignite_miou=mIoU(cm), ignite_cm=cm)[0]
    assert metrics["ignite_cm"].tolist() == [[4, 2, 0], [0, 8, 0], [1, 1, 4]]
    assert metrics["ignite_miou"] == pytest.approx(metrics["val_miou"])
