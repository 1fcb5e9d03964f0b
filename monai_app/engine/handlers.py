"""Ignite handlers MONAI lacks, each attached with ``attach(engine)`` like MONAI's own.

- :class:`MetricColumns`: per-case, per-channel metric details -> named columns (``dice_wt`` ...): their means become
  engine metrics (so TensorBoard and the stats logger show them), and evaluation writes ``per_case.csv``.
- :class:`ClassMetrics`: per-class IoU, Dice, precision and recall of a multi-class (2-D) evaluator from each image's
  confusion matrix: engine metrics (``val_miou`` ...), and the per-image, per-class and confusion-matrix tables.
- :class:`SegmentationPanels`: a picture per validation: image | reference | prediction, in TensorBoard.
- :class:`CaseSnapshots`: the same picture for every evaluated case, as ``<case_id>.png`` (the run report shows them).
- :class:`ProgressDisplay`: Ignite's tqdm progress bar with the running loss, hidden when output is not a terminal.
- :class:`LearningRateLogger`: the optimizer's learning rate in TensorBoard (``train/lr``), once an epoch.

The pictures themselves are drawn by the panel functions of :mod:`monai_app.visualize` (``region_panel``,
``orthogonal_panel``, ``label_panel``). ``MetricColumns`` and ``ClassMetrics`` run on every DDP rank
(``every_rank = True``): they gather the cases of all ranks.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events

from monai_app.engine.distributed import all_gather_list, rank, world_size
from monai_app.errors import UserInputError
from monai_app.files import atomic_path, atomic_write_text
from monai_app.metrics.classes import class_scores, confusion_matrix, plot_confusion_matrix, tag
from monai_app.metrics.tables import write_metric_tables
from monai_app.visualize import region_panel

logger = logging.getLogger(__name__)


def _numpy(x) -> np.ndarray | None:
    """A tensor (or array) of an engine output as a numpy array on the CPU; None stays None."""
    return None if x is None else np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)


def _items(batch) -> list:
    """A (decollated) batch as a list of per-case dicts."""
    return list(batch) if isinstance(batch, (list, tuple)) else [batch]


class MetricColumns:
    """Split metrics computed with ``save_details=True`` into one column per channel.

    Args:
        metrics: engine metric name -> column prefix, e.g. ``{"val_dice": "dice", "val_hd95": "hd95"}``, or -> the
            metric's own list of column names (a metric that scores several things per channel, such as
            :class:`monai_app.metrics.brats.BratsConventionMetric`).
        channel_names: names of the channels, e.g. ``["wt", "tc", "et"]``; columns are ``<prefix>_<channel>``
            (just ``<prefix>`` for a channel named ``""``).
        output_dir: when given, ``per_case.csv`` and ``summary.json`` are written there at the end of each epoch.
        case_key: the item of each data dict that names its case.
    """

    every_rank = True  # takes part in collective steps under DDP (engine.distributed.rank_zero_only)

    def __init__(self, metrics: Mapping[str, str | Sequence[str]], channel_names: Sequence[str],
                 output_dir: str | None = None,
                 case_key: str = "case_id") -> None:
        self.metrics = {name: cols if isinstance(cols, str) else list(cols) for name, cols in metrics.items()}
        self.channel_names = list(channel_names)
        self.output_dir = output_dir
        self.case_key = case_key
        self.case_ids: list[str] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self.case_ids.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect_ids)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _collect_ids(self, engine: Engine) -> None:
        for item in _items(engine.state.batch):
            case = item.get(self.case_key, f"case_{len(self.case_ids):04d}") if isinstance(item, dict) else None
            self.case_ids.append(str(case))

    @property
    def columns(self) -> list[str]:
        return [c for name in self.metrics for c in self._columns_of(name)]

    def _columns_of(self, name: str) -> list[str]:
        prefix = self.metrics[name]
        return [self._column(prefix, ch) for ch in self.channel_names] if isinstance(prefix, str) else prefix

    @staticmethod
    def _column(prefix: str, channel: str) -> str:
        return f"{prefix}_{channel}" if channel else prefix

    def rows(self, engine: Engine) -> list[dict]:
        """One dict per case: ``case_id`` then every column. Under DDP the case ids of all ranks are gathered, in
        the order MONAI gathers the metric details (so this runs on every rank)."""
        rows = [{"case_id": c} for c in all_gather_list(self.case_ids)]
        for name in self.metrics:
            details = engine.state.metric_details.get(name)
            if details is None:
                raise RuntimeError(f"metric {name!r} has no per-case details: create it with save_details=True")
            details = torch.as_tensor(details).reshape(len(rows), -1).cpu().numpy()
            for row, values in zip(rows, details):
                row.update({column: float(v) for column, v in zip(self._columns_of(name), values)})
        return rows

    def __call__(self, engine: Engine) -> None:
        rows = self.rows(engine)
        for col in self.columns:
            values = np.array([r[col] for r in rows], dtype=float)
            engine.state.metrics[col] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
        if self.output_dir is not None and rank() == 0:
            write_metric_tables(rows, self.output_dir, self.columns)
            logger.info("per-case metrics of %d cases written to %s/per_case.csv", len(rows), self.output_dir)


class SegmentationPanels:
    """Write image | reference | prediction pictures of the first ``num_images`` cases of every epoch (one row
    each) to TensorBoard.

    Args:
        summary_writer: the run's ``SummaryWriter`` (shared with ``TensorBoardStatsHandler``).
        panel_fn: builds an RGB uint8 (H, W, 3) array from ``(image, label or None, pred)`` numpy arrays.
        tag: TensorBoard image tag.
        image_key, label_key, pred_key: the keys of the (decollated) engine output.
        num_images: how many cases (rows) the picture shows.
    """

    def __init__(self, summary_writer, panel_fn: Callable = region_panel, tag: str = "val/panels",
                 image_key: str = "image", label_key: str = "label", pred_key: str = "pred",
                 num_images: int = 1) -> None:
        self.writer, self.panel_fn, self.tag = summary_writer, panel_fn, tag
        self.keys = (image_key, label_key, pred_key)
        self.num_images = num_images
        self._panels: list[np.ndarray] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self._panels.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def __call__(self, engine: Engine) -> None:
        for item in _items(engine.state.output)[: self.num_images - len(self._panels)]:
            image, label, pred = (_numpy(item.get(k)) for k in self.keys)
            self._panels.append(self.panel_fn(image, label, pred))

    def _write(self, engine: Engine) -> None:
        if not self._panels:
            return
        width = max(p.shape[1] for p in self._panels)
        rows = [np.pad(p, ((0, 2), (0, width - p.shape[1]), (0, 0))) for p in self._panels]  # 2-pixel gaps
        self.writer.add_image(self.tag, np.concatenate(rows)[:-2], engine.state.epoch, dataformats="HWC")
        self.writer.flush()


class CaseSnapshots:
    """Write image | reference | prediction of every evaluated case to ``<output_dir>/<case_id>.png``.

    Args:
        panel_fn: builds an RGB uint8 (H, W, 3) array from ``(image, label or None, pred)`` numpy arrays
            (:func:`monai_app.visualize.orthogonal_panel` for 3-D BraTS, :func:`monai_app.visualize.label_panel`
            with a palette for 2-D).
        output_dir: folder of the pictures (created when needed).
        image_key, label_key, pred_key: the keys of the (decollated) engine output.
        case_key: the key of the (decollated) batch that names each case.
    """

    def __init__(self, panel_fn: Callable, output_dir: str, image_key: str = "image", label_key: str = "label",
                 pred_key: str = "pred", case_key: str = "case_id") -> None:
        self.panel_fn, self.output_dir, self.case_key = panel_fn, output_dir, case_key
        self.keys = (image_key, label_key, pred_key)
        self._count = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        from PIL import Image


        for out, batch in zip(_items(engine.state.output), _items(engine.state.batch)):
            case = (batch.get(self.case_key) if isinstance(batch, dict) else None) or out.get(self.case_key)
            case = str(case) if case is not None else f"case_{self._count:04d}"
            self._count += 1
            panel = self.panel_fn(*(_numpy(out.get(k)) for k in self.keys))
            with atomic_path(f"{self.output_dir}/{case.replace('/', '_')}.png") as tmp:
                Image.fromarray(np.ascontiguousarray(panel, dtype=np.uint8)).save(tmp, compress_level=3)


class ProgressDisplay:
    """Ignite's progress bar (tqdm) showing the running loss; it hides itself when output is not a terminal."""

    def __init__(self, loss_key: str | None = "loss", desc: str = "") -> None:
        from ignite.handlers import ProgressBar

        self.loss_key = loss_key
        self.bar = ProgressBar(persist=False, desc=desc, disable=None)

    def _loss(self, output) -> dict:
        value = _items(output)[0].get(self.loss_key) if output else None
        return {} if value is None else {"loss": float(value)}

    def attach(self, engine: Engine) -> None:
        self.bar.attach(engine, output_transform=self._loss if self.loss_key else None)


class TimeBudget:
    """Stop training after the first epoch that ends past ``minutes`` of wall-clock or process CPU time.

    The epoch is finished (and ``last.pt`` saved) as usual, so the run resumes like any other; when that epoch was no
    validation epoch, ``validator`` runs once more so the best checkpoint also considers the final weights.

    Args:
        minutes: the budget; ``None`` or 0 for none.
        clock: ``"wall"`` (elapsed time) or ``"cpu"`` (CPU time of this process, all its threads: what benchmarks
            comparing recipes on a shared machine use).
        validator: the validation engine (``validate#evaluator``), or None.
    """

    CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
    every_rank = True  # under DDP every rank stops (and validates) together, when any rank has spent the budget

    def __init__(self, minutes: float | None = None, clock: str = "wall", validator: Engine | None = None) -> None:
        if clock not in self.CLOCKS:
            raise UserInputError(f"--budget_clock: expected wall or cpu, got {clock!r}")
        if minutes is not None and (not isinstance(minutes, (int, float)) or minutes < 0):
            raise UserInputError(f"--max_minutes: expected a number of minutes >= 0, got {minutes!r}")
        self.seconds = 60.0 * float(minutes or 0)
        self.clock, self.validator = self.CLOCKS[clock], validator
        self.start = 0.0

    def attach(self, engine: Engine) -> None:
        if self.seconds > 0:
            engine.add_event_handler(Events.STARTED, self._started)
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)
            engine.add_event_handler(Events.COMPLETED, self._completed)

    def _started(self, engine: Engine) -> None:
        self.start = self.clock()

    def _completed(self, engine: Engine) -> None:
        logger.info("trained %d epochs in %.2f min (%s time)", engine.state.epoch, (self.clock() - self.start) / 60,
                    "CPU" if self.clock is time.process_time else "wall-clock")

    def __call__(self, engine: Engine) -> None:
        spent = self.clock() - self.start
        if not any(all_gather_list([spent >= self.seconds])):
            return
        epoch = engine.state.epoch
        logger.info("time budget of %.1f min spent (%.1f min) after epoch %d: stopping", self.seconds / 60,
                    spent / 60, epoch)
        if self.validator is not None and self.validator.state.epoch != epoch:
            self.validator.run(epoch)
        engine.terminate()


class LearningRateLogger:
    """Log the optimizer's learning rate (first parameter group) to TensorBoard as ``train/lr`` every epoch."""

    def __init__(self, summary_writer, optimizer, tag: str = "train/lr") -> None:
        self.writer, self.optimizer, self.tag = summary_writer, optimizer, tag

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.writer.add_scalar(self.tag, self.optimizer.param_groups[0]["lr"], engine.state.epoch)


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan



def _json_value(value):
    """NaN (and infinite) floats -> ``None``, recursively, since JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return None if isinstance(value, float) and not math.isfinite(value) else value


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

    every_rank = True  # takes part in collective steps under DDP (engine.distributed.rank_zero_only)

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

