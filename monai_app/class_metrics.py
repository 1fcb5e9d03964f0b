"""Per-class metrics of multi-class 2-D segmentation, built on Ignite's :class:`~ignite.metrics.ConfusionMatrix`.

- :func:`stack_output`: an ``output_transform`` so Ignite's ``ConfusionMatrix`` / ``mIoU`` can be a MONAI
  ``key_val_metric`` of an evaluator with ``decollate=True``.
- :func:`confusion_matrix` and :func:`class_scores`: one image's (K, K) matrix, and IoU, Dice, precision, recall and
  pixel accuracy from any matrix (rows: reference class, columns: predicted class).
- :class:`ClassMetrics`: a handler that keeps one matrix per image and, at the end of each epoch, puts the
  dataset-level scores (from the summed matrix) into ``engine.state.metrics`` and writes the tables and heat map.

Reference values outside ``[0, num_classes)`` (255 in VOC, a dropped "void" class) are ignored everywhere.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.metrics import ConfusionMatrix
from ignite.utils import to_onehot
from monai.utils import convert_to_tensor

from monai_app.distributed import all_gather_list, rank, world_size
from monai_app.handlers import _items
from monai_app.io import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)


def _tensor(x) -> torch.Tensor:
    """A plain tensor (no MONAI meta data) on the device ``x`` is on."""
    return convert_to_tensor(x, track_meta=False)


def _label_ids(label) -> torch.Tensor:
    """(H, W) or (1, H, W) class ids -> (H, W) long; a (C, H, W) one-hot label -> argmax, all-zero pixels -> -1."""
    label = _tensor(label)
    if label.ndim == 3 and label.shape[0] > 1:
        return torch.where(label.sum(0) > 0, label.argmax(0), -1)
    if label.ndim == 3:
        label = label[0]
    if label.ndim != 2:
        raise ValueError(f"label must be (H, W), (1, H, W) ids or (C, H, W) one-hot, got shape {tuple(label.shape)}")
    return label.round().long() if label.is_floating_point() else label.long()


def _pred_scores(pred, num_classes: int | None = None) -> torch.Tensor:
    """(C, H, W) scores as float; (H, W) or (1, H, W) class ids are one-hot encoded when ``num_classes`` is given."""
    pred = _tensor(pred)
    if pred.ndim == 3 and pred.shape[0] > 1:
        return pred.float()
    if num_classes is None:
        raise ValueError(f"pred must be (C, H, W) class scores with C > 1 channels, got shape {tuple(pred.shape)}; "
                         "keep the network's scores or one-hot the ids (AsDiscreted(argmax=True, to_onehot=C))")
    ids = (pred[0] if pred.ndim == 3 else pred).round().long()
    if ids.ndim != 2 or ids.numel() and not 0 <= int(ids.min()) <= int(ids.max()) < num_classes:
        raise ValueError(f"pred ids must be (H, W) or (1, H, W) in [0, {num_classes}), got shape {tuple(pred.shape)}")
    return to_onehot(ids[None], num_classes)[0].float()


def stack_output(output, pred_key: str = "pred", label_key: str = "label") -> tuple[torch.Tensor, torch.Tensor]:
    """Ignite ``output_transform``: a decollated engine output -> ``(y_pred (B, C, H, W), y (B, H, W) long)``.

    Use it as ``ConfusionMatrix(num_classes, output_transform=stack_output)`` (and ``mIoU`` of that) in a MONAI
    ``key_val_metric``. Images of different sizes are flattened to ``(B, C, N)`` / ``(B, N)``, padded with ignored
    pixels (reference -1), which gives the same matrix.

    Args:
        output: a list of per-image dicts (``decollate=True``) or one dict (per image, or batched (B, C, H, W)).
        pred_key: the key of the class scores: (C, H, W) with C > 1; class ids cannot be told from a probability
            here, so a one-channel ``pred`` is refused.
        label_key: the key of the reference class ids, (1, H, W) or (H, W), float or integer.

    Raises:
        ValueError: ``pred`` does not have C > 1 channels, or a label has an unexpected shape.
    """
    if isinstance(output, Mapping) and _tensor(output[pred_key]).ndim == 4:
        output = [{pred_key: p, label_key: y} for p, y in zip(output[pred_key], output[label_key])]
    items = _items(output)
    preds = [_pred_scores(item[pred_key]) for item in items]
    labels = [_label_ids(item[label_key]).to(p.device) for item, p in zip(items, preds)]
    if len({tuple(p.shape) for p in preds}) == 1:
        return torch.stack(preds), torch.stack(labels)
    size = max(y.numel() for y in labels)
    y_pred = preds[0].new_zeros((len(preds), preds[0].shape[0], size))
    y = labels[0].new_full((len(labels), size), -1)
    for i, (p, ids) in enumerate(zip(preds, labels)):
        y_pred[i, :, : ids.numel()] = p.flatten(1)
        y[i, : ids.numel()] = ids.flatten()
    return y_pred, y


def mean_iou_metric(num_classes: int):
    """An Ignite metric of the dataset-level mean IoU, for an evaluator's ``key_val_metric``.

    Unlike ``ignite.metrics.mIoU`` (which scores a class absent from both reference and prediction as 0 and still
    averages it), classes with no pixels anywhere are left out of the mean, as in :func:`class_scores`, so the key
    metric equals the ``val_miou`` that :class:`ClassMetrics` reports.
    """
    from ignite.metrics import MetricsLambda

    cm = ConfusionMatrix(num_classes, output_transform=stack_output)
    return MetricsLambda(lambda matrix: float(class_scores(matrix.cpu())["miou"]), cm)


def confusion_matrix(pred, label, num_classes: int) -> torch.Tensor:
    """One image's confusion matrix, computed with Ignite's ``ConfusionMatrix``.

    Args:
        pred: (C, H, W) class scores (argmax is taken), or (H, W) / (1, H, W) class ids.
        label: (H, W) or (1, H, W) reference class ids; values outside ``[0, num_classes)`` are ignored.
        num_classes: K.

    Returns:
        An int64 (K, K) CPU tensor: rows are reference classes, columns predicted classes.
    """
    metric = ConfusionMatrix(num_classes)
    scores = _pred_scores(pred, num_classes)
    metric.update((scores[None], _label_ids(label).to(scores.device)[None]))
    return metric.confusion_matrix.cpu()  # this image's own: compute() would also sum it over DDP ranks


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` of pixel counts, NaN where ``den`` is 0."""
    return torch.where(den > 0, num / den.clamp(min=1), torch.nan)


def class_scores(cm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scores of a (K, K) confusion matrix (rows: reference, columns: prediction).

    Returns:
        float64 tensors: per class (K,) ``iou`` = TP/(TP+FP+FN), ``dice`` = 2TP/(2TP+FP+FN), ``precision`` =
        TP/(TP+FP), ``recall`` = TP/(TP+FN), each NaN where its denominator is 0; ``pixels`` (K,) the reference
        pixels of each class; scalars ``pixel_accuracy`` = trace/sum (NaN for an empty matrix), ``miou`` and
        ``mean_dice``, the means over the classes whose value is not NaN.
    """
    cm = torch.as_tensor(cm).double().cpu()
    tp, reference, predicted = cm.diag(), cm.sum(1), cm.sum(0)
    fp, fn = predicted - tp, reference - tp
    scores = {"iou": _ratio(tp, tp + fp + fn), "dice": _ratio(2 * tp, 2 * tp + fp + fn),
              "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn), "pixels": reference}
    scores["pixel_accuracy"] = _ratio(tp.sum(), cm.sum())
    scores["miou"], scores["mean_dice"] = scores["iou"].nanmean(), scores["dice"].nanmean()
    return scores


def tag(name: str) -> str:
    """A metric-name-safe form of a class name: lower case, each run of non-alphanumerics -> ``_``."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def _json_value(value):
    """NaN (and infinite) floats -> ``None``, recursively, since JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return None if isinstance(value, float) and not math.isfinite(value) else value


def plot_confusion_matrix(cm: torch.Tensor, class_names: Sequence[str], path: str | os.PathLike) -> None:
    """Write a heat map of the row-normalised matrix (each row sums to 1 over its reference pixels) to ``path``.

    Rows without reference pixels are grey. Uses a ``Figure`` with the Agg canvas: no pyplot, no global backend.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = torch.as_tensor(cm).double().cpu().numpy()
    rows = counts.sum(1, keepdims=True)
    norm = np.divide(counts, rows, out=np.full_like(counts, np.nan), where=rows > 0)
    k = len(class_names)
    side, font = max(5.0, 0.6 * k + 2.5), max(7.0, min(10.0, 150.0 / k))
    fig = Figure(figsize=(side + 1.2, side), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(norm, cmap=colormaps["Blues"].with_extremes(bad="0.85"), vmin=0.0, vmax=1.0)
    for (i, j), value in np.ndenumerate(norm):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=font,
                    color="white" if value > 0.6 else ("0.1" if value >= 0.005 else "0.6"))
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", rotation_mode="anchor", fontsize=font + 1)
    ax.set_yticks(range(k), class_names, fontsize=font + 1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title("confusion matrix (rows: reference, normalised)")
    fig.colorbar(image, ax=ax, shrink=0.8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _csv_text(header: Sequence, rows: Sequence[Sequence]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[f"{v:.6g}" if isinstance(v, float) else v for v in row] for row in rows])
    return buffer.getvalue()


class ClassMetrics:
    """Per-class IoU, Dice, precision and recall of a multi-class segmentation evaluator, attached with ``attach``.

    Each image's confusion matrix is kept (on the CPU) during the epoch. At its end, ``engine.state.metrics`` gets
    ``<prefix>miou``, ``<prefix>pixel_accuracy``, ``<prefix>mean_dice`` and ``<prefix>iou_<class>`` from the summed
    matrix (the standard dataset-level definition), and ``output_dir`` (when given) gets ``per_case.csv`` and
    ``summary.json`` (per image), ``class_scores.csv`` and ``dataset_scores.json`` (per class),
    ``confusion_matrix.csv`` and ``confusion_matrix.png``.

    Args:
        class_names: the K class names, in label order; in metric and column names they are lower-cased with
            non-alphanumerics replaced by ``_`` (see :func:`tag`).
        output_dir: where to write the tables at the end of each epoch; nothing is written when ``None``.
        prefix: the prefix of the engine metric names.
        pred_key, label_key: keys of each item of the (decollated) ``engine.state.output``: (C, H, W) scores or
            (1, H, W) ids, and (1, H, W) or (H, W) reference ids.
        case_key: the key of each item of ``engine.state.batch`` that names the image (else ``image_0000`` ...).
    """

    def __init__(self, class_names: Sequence[str], output_dir: str | os.PathLike | None = None, prefix: str = "val_",
                 pred_key: str = "pred", label_key: str = "label", case_key: str = "case_id") -> None:
        self.class_names = [str(n) for n in class_names]
        self.tags = [tag(n) for n in self.class_names]
        if len(self.tags) < 2 or "" in self.tags or len(set(self.tags)) != len(self.tags):
            raise ValueError(f"need at least 2 class names with distinct, non-empty tags, got {self.class_names}")
        self.output_dir, self.prefix = output_dir, prefix
        self.pred_key, self.label_key, self.case_key = pred_key, label_key, case_key
        self.case_ids: list[str] = []
        self.matrices: list[torch.Tensor] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def reset(self, engine: Engine | None = None) -> None:
        self.case_ids.clear()
        self.matrices.clear()

    def update(self, engine: Engine) -> None:
        """Keep the confusion matrix and case id of each image of the iteration."""
        batch = _items(engine.state.batch) if engine.state.batch is not None else []
        for i, item in enumerate(_items(engine.state.output)):
            source = batch[i] if i < len(batch) and isinstance(batch[i], Mapping) else item
            case = source.get(self.case_key, item.get(self.case_key))
            case = case.item() if isinstance(case, torch.Tensor) and case.numel() == 1 else case
            self.case_ids.append(f"image_{len(self.case_ids):04d}" if case is None else str(case))
            self.matrices.append(confusion_matrix(item[self.pred_key], item[self.label_key], len(self.tags)))

    def rows(self) -> list[dict]:
        """One dict per image: ``case_id``, ``pixel_accuracy``, ``miou``, ``iou_<class>`` ..., ``dice_<class>`` ...."""
        rows = []
        for case, cm in zip(self.case_ids, self.matrices):
            s = class_scores(cm)
            row = {"case_id": case, "pixel_accuracy": float(s["pixel_accuracy"]), "miou": float(s["miou"])}
            row.update({f"iou_{t}": float(v) for t, v in zip(self.tags, s["iou"])})
            row.update({f"dice_{t}": float(v) for t, v in zip(self.tags, s["dice"])})
            rows.append(row)
        return rows

    def class_table(self) -> dict[str, dict]:
        """Per class name: dataset-level ``iou``, ``dice``, ``precision``, ``recall`` (from the summed matrix),
        ``pixels`` (reference pixels), and ``image_mean_iou`` / ``image_mean_precision``: the per-image values
        averaged over the ``images`` whose reference contains the class (NaN values, such as the precision in an
        image where the class is never predicted, are left out of the mean)."""
        dataset = class_scores(self.total())
        per_image = [class_scores(cm) for cm in self.matrices]
        table = {}
        for k, name in enumerate(self.class_names):
            present = [s for s in per_image if s["pixels"][k] > 0]
            table[name] = {key: float(dataset[key][k]) for key in ("iou", "dice", "precision", "recall")}
            table[name]["image_mean_iou"] = _nanmean([s["iou"][k] for s in present])
            table[name]["image_mean_precision"] = _nanmean([s["precision"][k] for s in present])
            table[name].update(pixels=int(dataset["pixels"][k]), images=len(present))
        return table

    def total(self) -> torch.Tensor:
        """The sum of the images' confusion matrices (int64, K x K)."""
        return sum(self.matrices, torch.zeros(len(self.tags), len(self.tags), dtype=torch.int64))

    def __call__(self, engine: Engine) -> None:
        if world_size() > 1:  # under DDP each rank saw its share of the images: gather them all, on every rank
            self.case_ids, self.matrices = all_gather_list(self.case_ids), all_gather_list(self.matrices)
        total = self.total()
        scores = class_scores(total)
        metrics = {"miou": scores["miou"], "pixel_accuracy": scores["pixel_accuracy"], "mean_dice": scores["mean_dice"]}
        metrics.update({f"iou_{t}": v for t, v in zip(self.tags, scores["iou"])})
        engine.state.metrics.update({f"{self.prefix}{k}": float(v) for k, v in metrics.items()})
        if not self.matrices:
            logger.warning("class metrics: no images this epoch")
            return
        if self.output_dir is not None and rank() == 0:
            self.write(total, scores)
        logger.info("class metrics of %d images: mIoU %.4f, pixel accuracy %.4f", len(self.matrices),
                    float(scores["miou"]), float(scores["pixel_accuracy"]))

    def write(self, total: torch.Tensor, scores: Mapping[str, torch.Tensor]) -> None:
        """Write the per-image, per-class and confusion-matrix files to ``output_dir``, each atomically."""
        from monai_app.tables import write_metric_tables

        out = Path(self.output_dir)
        columns = ["pixel_accuracy", "miou", *(f"{m}_{t}" for m in ("iou", "dice") for t in self.tags)]
        write_metric_tables(self.rows(), out, columns)
        table = self.class_table()
        header = ["class", "pixels", "iou", "dice", "precision", "recall", "image_mean_iou", "image_mean_precision",
                  "images"]
        rows = [[name, *(values[h] for h in header[1:])] for name, values in table.items()]
        rows.append(["mean", *(_nanmean([values[h] for values in table.values()]) for h in header[1:])])
        atomic_write_text(out / "class_scores.csv", _csv_text(header, rows))
        summary = {"miou": float(scores["miou"]), "mean_dice": float(scores["mean_dice"]),
                   "pixel_accuracy": float(scores["pixel_accuracy"]), "images": len(self.matrices),
                   "image_mean_miou": _nanmean([v["image_mean_iou"] for v in table.values()]), "classes": table}
        atomic_write_text(out / "dataset_scores.json", json.dumps(_json_value(summary), indent=1) + "\n")
        matrix = [[name, *counts] for name, counts in zip(self.class_names, total.tolist())]
        atomic_write_text(out / "confusion_matrix.csv", _csv_text(["reference\\predicted", *self.class_names], matrix))
        plot_confusion_matrix(total, self.class_names, out / "confusion_matrix.png")
        logger.info("per-class metrics of %d images written to %s", len(self.matrices), out)
