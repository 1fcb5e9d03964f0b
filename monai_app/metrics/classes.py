"""Per-class metrics of multi-class 2-D segmentation, built on Ignite's :class:`~ignite.metrics.ConfusionMatrix`.

- :func:`stack_output`: an ``output_transform`` so Ignite's ``ConfusionMatrix`` / ``mIoU`` can be a MONAI
  ``key_val_metric`` of an evaluator with ``decollate=True``.
- :func:`confusion_matrix` and :func:`class_scores`: one image's (K, K) matrix, and IoU, Dice, precision, recall and
  pixel accuracy from any matrix (rows: reference class, columns: predicted class).
- :func:`mean_iou_metric`, :func:`tag` and :func:`plot_confusion_matrix` (the heat map of ``eval/``).

The handler that keeps one matrix per image and writes the tables, :class:`monai_app.engine.handlers.ClassMetrics`,
is built on these.

Reference values outside ``[0, num_classes)`` (255 in VOC, a dropped "void" class) are ignored everywhere.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from ignite.metrics import ConfusionMatrix
from ignite.utils import to_onehot
from monai.utils import convert_to_tensor

from monai_app.files import atomic_path

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
    items = list(output) if isinstance(output, (list, tuple)) else [output]  # decollated, or one item
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


