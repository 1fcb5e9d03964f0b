"""Ignite handlers MONAI lacks, each attached with ``attach(engine)`` like MONAI's own.

- :class:`MetricColumns`: per-case, per-channel metric details -> named columns (``dice_wt`` ...): their means become
  engine metrics (so TensorBoard and the stats logger show them), and evaluation writes ``per_case.csv``.
- :class:`SegmentationPanels`: a picture per validation: image | reference | prediction, in TensorBoard.
- :class:`CaseSnapshots`: the same picture for every evaluated case, as ``<case_id>.png`` (the run report shows them).
- :class:`ProgressDisplay`: Ignite's tqdm progress bar with the running loss, hidden when output is not a terminal.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from ignite.engine import Engine, Events

from monai_app.distributed import all_gather_list, rank

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
        metrics: engine metric name -> column prefix, e.g. ``{"val_dice": "dice", "val_hd95": "hd95"}``.
        channel_names: names of the channels, e.g. ``["wt", "tc", "et"]``; columns are ``<prefix>_<channel>``
            (just ``<prefix>`` for a channel named ``""``).
        output_dir: when given, ``per_case.csv`` and ``summary.json`` are written there at the end of each epoch.
        case_key: the item of each data dict that names its case.
    """

    def __init__(self, metrics: Mapping[str, str], channel_names: Sequence[str], output_dir: str | None = None,
                 case_key: str = "case_id") -> None:
        self.metrics = dict(metrics)
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
        return [self._column(prefix, ch) for prefix in self.metrics.values() for ch in self.channel_names]

    @staticmethod
    def _column(prefix: str, channel: str) -> str:
        return f"{prefix}_{channel}" if channel else prefix

    def rows(self, engine: Engine) -> list[dict]:
        """One dict per case: ``case_id`` then every column. Under DDP the case ids of all ranks are gathered, in
        the order MONAI gathers the metric details (so this runs on every rank)."""
        rows = [{"case_id": c} for c in all_gather_list(self.case_ids)]
        for name, prefix in self.metrics.items():
            details = engine.state.metric_details.get(name)
            if details is None:
                raise RuntimeError(f"metric {name!r} has no per-case details: create it with save_details=True")
            details = torch.as_tensor(details).reshape(len(rows), -1).cpu().numpy()
            for row, values in zip(rows, details):
                row.update({self._column(prefix, ch): float(v) for ch, v in zip(self.channel_names, values)})
        return rows

    def __call__(self, engine: Engine) -> None:
        rows = self.rows(engine)
        for col in self.columns:
            values = np.array([r[col] for r in rows], dtype=float)
            engine.state.metrics[col] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
        if self.output_dir is not None and rank() == 0:
            from monai_app.tables import write_metric_tables

            write_metric_tables(rows, self.output_dir, self.columns)
            logger.info("per-case metrics of %d cases written to %s/per_case.csv", len(rows), self.output_dir)


# Colours of the BraTS sub-regions as most viewers show them: edema green, necrotic core red, enhancing yellow.
REGION_COLOURS = np.array([[0, 200, 0], [220, 40, 40], [255, 230, 0]], dtype=np.float32)


def _gray(slice_: np.ndarray) -> np.ndarray:
    """An MRI slice as RGB gray levels, windowed on the brain; the background (exactly 0 outside the brain after
    the bundles' non-zero normalisation) is black, so every case looks alike."""
    brain = slice_ != 0
    lo, hi = np.percentile(slice_[brain], [0.5, 99.5]) if brain.any() else (0.0, 1.0)
    lo = min(lo, hi - 1e-3)  # a uniform brain shows white
    g = np.clip((slice_ - lo) / (hi - lo), 0, 1) * 255 * brain
    return np.repeat(g[..., None], 3, axis=-1)


def overlay_regions(gray_rgb: np.ndarray, regions: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Paint nested region masks (WT, TC, ET; H, W) over an RGB slice: edema, core and enhancing in their colours."""
    out = gray_rgb.copy()
    wt, tc, et = (regions[i] > 0.5 for i in range(3))
    for mask, colour in zip((wt & ~tc, tc & ~et, et), REGION_COLOURS):
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
    return out


def region_panel(image: np.ndarray, label: np.ndarray | None, pred: np.ndarray, channel: int = 0,
                 min_height: int = 240) -> np.ndarray:
    """An RGB uint8 picture (H, 3W or 2W, 3): the image channel | reference overlay | prediction overlay, on the
    axial slice where the reference (else the prediction) has most tumour, enlarged to at least ``min_height``."""
    ref_or_pred = label if label is not None and label.any() else pred
    z = int(np.argmax(ref_or_pred[0].reshape(-1, ref_or_pred.shape[-1]).sum(0))) if ref_or_pred.any() else \
        image.shape[-1] // 2
    base = _gray(image[channel, ..., z])
    tiles = [base] + ([overlay_regions(base, label[..., z])] if label is not None else [])
    tiles.append(overlay_regions(base, pred[..., z]))
    panel = np.concatenate([np.rot90(t) for t in tiles], axis=1)  # rot90: anterior-up display of RAS arrays
    scale = max(1, -(-min_height // panel.shape[0]))  # nearest-neighbour enlargement so TensorBoard shows detail
    return panel.repeat(scale, axis=0).repeat(scale, axis=1).astype(np.uint8)


def _tumour_centre(label: np.ndarray | None, pred: np.ndarray, shape: Sequence[int]) -> tuple[int, ...]:
    """The centre (voxel indices) of the reference's whole tumour, else the prediction's, else of the volume."""
    for regions in (label, pred):
        if regions is not None and regions[0].any():
            return tuple(int(round(c)) for c in np.argwhere(regions[0] > 0.5).mean(0))
    return tuple(n // 2 for n in shape)


def orthogonal_panel(image: np.ndarray, label: np.ndarray | None, pred: np.ndarray, channel: int = 0,
                     min_row_height: int = 128) -> np.ndarray:
    """An RGB uint8 picture of a 3-D case in three rows (axial, coronal, sagittal slices through the tumour centre),
    each row image channel | reference overlay | prediction overlay, enlarged (nearest) to ``min_row_height``.

    ``image`` is (C, H, W, D); ``label`` (or None) and ``pred`` are (3, H, W, D) nested WT/TC/ET region masks.
    """
    x, y, z = _tumour_centre(label, pred, image.shape[1:])
    cuts = ((slice(None), slice(None), z), (slice(None), y, slice(None)), (x, slice(None), slice(None)))
    rows = []
    for cut in cuts:  # rot90: anterior-up (axial) and superior-up (coronal, sagittal) display of RAS arrays
        base = _gray(image[(channel, *cut)])
        tiles = [base] + [overlay_regions(base, r[(slice(None), *cut)]) for r in (label, pred) if r is not None]
        rows.append(np.concatenate([np.rot90(t) for t in tiles], axis=1))
    scale = max(1, -(-min_row_height // min(r.shape[0] for r in rows)))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]  # white gaps
    panel = np.concatenate(rows)[:-2]
    return panel.repeat(scale, axis=0).repeat(scale, axis=1).astype(np.uint8)


def _nearest(ids: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resampling of a 2-D array to ``shape``."""
    rows = (np.arange(shape[0]) * ids.shape[0] // shape[0]).clip(0, ids.shape[0] - 1)
    cols = (np.arange(shape[1]) * ids.shape[1] // shape[1]).clip(0, ids.shape[1] - 1)
    return ids[np.ix_(rows, cols)]


def _class_ids(x: np.ndarray) -> np.ndarray:
    """(C, H, W) class scores -> (H, W) ids by argmax; one channel holds ids (or a probability, thresholded)."""
    if x.shape[0] > 1:
        return x.argmax(0)
    return (x[0] > 0.5).astype(np.int64) if x.max() <= 1 else x[0].round().astype(np.int64)


def label_panel(image: np.ndarray, label: np.ndarray | None, pred: np.ndarray, palette: Sequence[Sequence[int]],
                min_height: int = 128, max_height: int = 320) -> np.ndarray:
    """An RGB uint8 picture of a 2-D case: the photo | reference | prediction (2-pixel grey gaps between them),
    labels in the palette's colours.

    ``image`` is (3, h, w) in [0, 1] (or 0-255); ``label`` and ``pred`` may be at another size (the original
    photo's, when the image was resized without padding): they are resampled to the image's size. The picture is
    enlarged (nearest) to at least ``min_height`` or thinned to at most ``max_height`` rows.
    """
    from monai_app.transforms2d import colourise

    rgb = np.moveaxis(np.asarray(image, dtype=np.float32)[:3], 0, -1)
    rgb = np.clip(rgb * (255.0 if rgb.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    tiles = [rgb] + [colourise(_nearest(_class_ids(x), rgb.shape[:2]), palette) for x in (label, pred) if x is not None]
    gap = np.full((rgb.shape[0], 2, 3), 200, dtype=np.uint8)  # light-grey separators, so black tiles do not merge
    panel = np.concatenate([part for tile in tiles for part in (gap, tile)][1:], axis=1)
    step = -(-panel.shape[0] // max_height)
    if step > 1:
        return np.ascontiguousarray(panel[::step, ::step])
    scale = max(1, -(-min_height // panel.shape[0]))
    return panel.repeat(scale, axis=0).repeat(scale, axis=1)


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
            (:func:`orthogonal_panel` for 3-D BraTS, :func:`label_panel` with a palette for 2-D).
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

        from monai_app.io import atomic_path

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


class LearningRateLogger:
    """Log the optimizer's learning rate (first parameter group) to TensorBoard as ``train/lr`` every epoch."""

    def __init__(self, summary_writer, optimizer, tag: str = "train/lr") -> None:
        self.writer, self.optimizer, self.tag = summary_writer, optimizer, tag

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.writer.add_scalar(self.tag, self.optimizer.param_groups[0]["lr"], engine.state.epoch)
