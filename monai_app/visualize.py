"""Pictures of segmentations for people to look at: image | reference | prediction panels as RGB uint8 arrays.

- :func:`region_panel` and :func:`orthogonal_panel`: a 3-D BraTS case (one axial slice, or axial, coronal and
  sagittal slices through the tumour centre) with the WT/TC/ET regions painted in the usual colours.
- :func:`label_panel`: a 2-D photo with its class-id maps in a dataset's palette.

The engine handlers (:mod:`monai_app.engine.handlers`) put them in TensorBoard and in ``eval/cases/``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from monai_app.datasets.images import colourise

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

