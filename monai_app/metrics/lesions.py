"""The three BraTS scoring conventions on one region (a pair of binary masks), each named after the challenge year
whose numbers it reproduces.

- :func:`score_brats2021`: whole-volume Dice and HD95 as BraTS 2017-2021 and the MSD papers report them (both empty:
  1 and 0; one empty: 373.13 mm; HD95 the larger of the two directed 95th percentiles, as MONAI computes it).
- :func:`score_brats2023`: the 2023 challenge's lesion-wise scores, as its public evaluation code
  (``BraTS-2023-Metrics``) defines them: 26-connected lesions, reference lesions merged through dilation, any
  predicted lesion touching a dilated reference lesion is a true positive, small reference lesions left out,
  374 mm for each missed or false-positive lesion. HD95 there is DeepMind's surface-distance percentile: surface
  elements on the voxel-corner grid, weighted by their area.
- :func:`score_brats2025`: what the official ``BraTS-evaluation`` package (on ``panoptica``) reports: global Dice
  and HD95 (one 95th percentile of both directions' border distances pooled), and lesion-wise means over the
  lesions matched one-to-one by maximum bipartite matching of Dice.

Every distance is in millimetres at the given voxel spacing. (The official packages are not, off 1 mm grids:
``panoptica``'s global HD95 ignores the spacing, its lesion HD95 applies it to the wrong axes.) All work happens
inside the bounding box of the two masks plus a margin, so a 240x240x155 case costs what its lesions cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics.utils import get_mask_edges, get_surface_distance
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

EMPTY_DISTANCE_2021 = 373.13
"""HD95 (mm) of BraTS 2017-2021 when exactly one mask is empty: the diagonal of a 240x240x155 mm volume."""
MISSED_DISTANCE_2023 = 374.0
"""HD95 (mm) the 2023 code gives a missed or a false-positive lesion."""
INFINITE_DISTANCE_2025 = 373.0
"""What the 2025 package's parser writes for an infinite global HD95."""
LESION_COLUMNS = ("lesion_dice", "lesion_hd95", "lesion_tp", "lesion_fp", "lesion_fn")

_NEIGHBOURS_26 = np.ones((3, 3, 3), dtype=bool)
_DILATION_18 = ndimage.generate_binary_structure(3, 2)


def crop_box(mask: np.ndarray, margin: int) -> tuple[slice, ...] | None:
    """The bounding box of ``mask`` grown by ``margin`` voxels on every side (clipped to the array); None if empty."""
    if not mask.any():
        return None
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + margin + 1, mask.shape[axis])))
    return tuple(box)


def _union_box(boxes: Sequence[tuple[slice, ...]], margin: int, shape: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(max(min(b[a].start for b in boxes) - margin, 0), min(max(b[a].stop for b in boxes) + margin,
                                                                            shape[a])) for a in range(len(shape)))


def lesions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected components of ``mask``: ``(labels, count)``."""
    labels, count = ndimage.label(mask, structure=_NEIGHBOURS_26)
    return labels, int(count)


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two masks, at least one of them non-empty."""
    return 2.0 * np.count_nonzero(pred & ref) / float(np.count_nonzero(pred) + np.count_nonzero(ref))


def _directed(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], subvoxel: bool):
    """``(pred-to-ref distances, ref-to-pred distances, pred surface areas, ref surface areas)`` of two non-empty
    masks, with MONAI's surface extraction: border voxels (6-neighbourhood erosion) or, ``subvoxel``, DeepMind's
    surface elements on the voxel-corner grid with their areas."""
    box = crop_box(pred | ref, 0)  # cropped and padded here: MONAI's own cropping costs more than the distances
    pred, ref = (np.pad(mask[box], 1) for mask in (pred, ref))
    if subvoxel:  # MONAI's surface-element path takes tensors
        pred, ref = torch.from_numpy(pred), torch.from_numpy(ref)
    edges = [np.asarray(e) for e in get_mask_edges(pred, ref, crop=False, spacing=list(spacing) if subvoxel else None)]
    edges_pred, edges_ref = (e.astype(bool) for e in edges[:2])
    d_pred = np.asarray(get_surface_distance(edges_pred, edges_ref, spacing=list(spacing)), dtype=np.float64)
    d_ref = np.asarray(get_surface_distance(edges_ref, edges_pred, spacing=list(spacing)), dtype=np.float64)
    if not subvoxel:
        return d_pred, d_ref, None, None
    areas_pred, areas_ref = (np.asarray(a, dtype=np.float64) for a in edges[2:])
    return d_pred, d_ref, areas_pred[edges_pred], areas_ref[edges_ref]


def _area_percentile(distances: np.ndarray, areas: np.ndarray, percent: float) -> float:
    """DeepMind's robust Hausdorff of one direction: the smallest distance below which ``percent`` % of the surface
    area lies."""
    if distances.size == 0:
        return math.inf
    order = np.lexsort((areas, distances))
    cumulative = np.cumsum(areas[order]) / np.sum(areas)
    index = min(int(np.searchsorted(cumulative, percent / 100.0)), distances.size - 1)
    return float(distances[order][index])


def hd95_directed_max(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """BraTS 2021 / MONAI: the larger of the two directed 95th percentiles of border distances (both non-empty)."""
    d_pred, d_ref, _, _ = _directed(pred, ref, spacing, subvoxel=False)
    return float(max(np.percentile(d_pred, 95), np.percentile(d_ref, 95)))


def hd95_pooled(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """``panoptica``: one 95th percentile of both directions' border distances pooled (both non-empty)."""
    d_pred, d_ref, _, _ = _directed(pred, ref, spacing, subvoxel=False)
    return float(np.percentile(np.concatenate([d_ref, d_pred]), 95))


def hd95_surface_elements(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """DeepMind's ``compute_robust_hausdorff(..., 95)``: area-weighted, on the voxel-corner grid; inf when one mask
    is empty."""
    if not pred.any() or not ref.any():
        return math.inf
    d_pred, d_ref, a_pred, a_ref = _directed(pred, ref, spacing, subvoxel=True)
    return max(_area_percentile(d_ref, a_ref, 95.0), _area_percentile(d_pred, a_pred, 95.0))


def score_brats2021(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> dict:
    """Whole-volume ``dice`` and ``hd95`` with the BraTS 2017-2021 empty-mask convention."""
    if not pred.any() and not ref.any():
        return {"dice": 1.0, "hd95": 0.0}
    if not pred.any() or not ref.any():
        return {"dice": 0.0, "hd95": EMPTY_DISTANCE_2021}
    return {"dice": dice(pred, ref), "hd95": hd95_directed_max(pred, ref, spacing)}


def _merged_reference(ref: np.ndarray, dilation: int) -> tuple[np.ndarray, int]:
    """Reference lesions after the 2023 merge: the voxels of ``ref`` labelled by the components of ``ref`` dilated
    ``dilation`` times with the 18-neighbourhood."""
    grown = ndimage.binary_dilation(ref, structure=_DILATION_18, iterations=dilation) if dilation > 0 else ref
    labels, count = lesions(grown)
    return np.where(ref, labels, 0), count


def score_brats2023(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], dilation: int = 3,
                    min_volume: float = 50.0) -> dict:
    """The BraTS 2023 lesion-wise scores of one region, and its legacy whole-volume Dice and HD95.

    Args:
        pred, ref: binary masks.
        spacing: voxel size in mm per axis.
        dilation: 18-neighbourhood dilations that merge reference lesions and define a detection (3 for GLI, SSA
            and PED; 1 for MEN and MET).
        min_volume: reference lesions of at most this volume (mm^3; voxels at 1 mm) are left out (50; MET 2).

    Returns:
        ``dice``, ``hd95`` (both empty: 1 and 0; one empty: 0 and 374), ``lesion_dice``, ``lesion_hd95`` (the sums
        over kept reference lesions, with 0 and 374 for each missed one, and 0 and 374 for each false-positive
        lesion, divided by their count; 1 and 0 when there is nothing to count), and ``lesion_tp``, ``lesion_fp``,
        ``lesion_fn`` (lesion counts; tp and fn count kept reference lesions).
    """
    box = crop_box(pred | ref, dilation + 1)
    if box is None:
        return {"dice": 1.0, "hd95": 0.0, "lesion_dice": 1.0, "lesion_hd95": 0.0, "lesion_tp": 0, "lesion_fp": 0,
                "lesion_fn": 0}
    pred, ref = pred[box], ref[box]
    legacy_hd = hd95_surface_elements(pred, ref, spacing)
    out = {"dice": dice(pred, ref), "hd95": MISSED_DISTANCE_2023 if math.isinf(legacy_hd) else legacy_hd}
    pred_labels, _ = lesions(pred)
    merged, count = _merged_reference(ref, dilation)
    pred_boxes, ref_boxes = ndimage.find_objects(pred_labels), ndimage.find_objects(merged)
    voxel_volume = float(np.prod(spacing))
    detected: set[int] = set()
    kept_dice, kept_hd, tp, fn = [], [], 0, 0
    for k in range(1, count + 1):
        near = _union_box([ref_boxes[k - 1]], dilation + 1, ref.shape)
        lesion = merged[near] == k
        grown = ndimage.binary_dilation(lesion, structure=_DILATION_18, iterations=dilation)
        hits = sorted(set(np.unique(pred_labels[near][grown]).tolist()) - {0})
        detected.update(hits)
        if np.count_nonzero(lesion) * voxel_volume <= min_volume:
            continue
        if not hits:
            kept_dice.append(0.0)
            kept_hd.append(MISSED_DISTANCE_2023)
            fn += 1
            continue
        pair = _union_box([ref_boxes[k - 1], *(pred_boxes[h - 1] for h in hits)], 1, ref.shape)
        found, lesion = np.isin(pred_labels[pair], hits), merged[pair] == k
        kept_dice.append(dice(found, lesion))
        kept_hd.append(hd95_surface_elements(found, lesion, spacing))
        tp += 1
    fp = len(pred_boxes) - len(detected)
    counted = len(kept_dice) + fp
    out.update(lesion_tp=tp, lesion_fp=fp, lesion_fn=fn)
    if counted == 0:
        return {**out, "lesion_dice": 1.0, "lesion_hd95": 0.0}
    return {**out, "lesion_dice": sum(kept_dice) / counted,
            "lesion_hd95": (sum(kept_hd) + MISSED_DISTANCE_2023 * fp) / counted}


def _matched_pairs(pred_labels: np.ndarray, n_pred: int, ref_labels: np.ndarray, n_ref: int) -> list[tuple]:
    """``[(ref lesion, pred lesion, dice)]`` of the maximum bipartite matching by Dice of overlapping lesions."""
    both = (pred_labels > 0) & (ref_labels > 0)
    if not both.any():
        return []
    pairs, overlap = np.unique(np.stack([ref_labels[both], pred_labels[both]]), axis=1, return_counts=True)
    ref_sizes = np.bincount(ref_labels.ravel(), minlength=n_ref + 1)
    pred_sizes = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)
    cost = np.full((n_ref, n_pred), 1.0 + 1e-6)
    cost[pairs[0] - 1, pairs[1] - 1] = 1.0 - 2.0 * overlap / (ref_sizes[pairs[0]] + pred_sizes[pairs[1]])
    rows, cols = linear_sum_assignment(cost)
    return [(r + 1, c + 1, 1.0 - cost[r, c]) for r, c in zip(rows, cols) if cost[r, c] < 1.0]


def score_brats2025(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> dict:
    """The official BraTS 2025 package's per-region numbers (``brats-parse-metrics seg``).

    Returns:
        ``dice`` and ``hd95`` (global; NaN and NaN when both masks are empty, 0 and 373 when they do not overlap),
        ``lesion_dice`` and ``lesion_hd95`` (means over the matched lesions; NaN when neither side has a lesion,
        0 and inf when no lesion is matched), ``lesion_tp``, ``lesion_fp``, ``lesion_fn``.
    """
    box = crop_box(pred | ref, 1)
    if box is None:
        return {"dice": math.nan, "hd95": math.nan, "lesion_dice": math.nan, "lesion_hd95": math.nan,
                "lesion_tp": 0, "lesion_fp": 0, "lesion_fn": 0}
    pred, ref = pred[box], ref[box]
    overlapping = bool((pred & ref).any())
    out = {"dice": dice(pred, ref) if overlapping else 0.0,
           "hd95": hd95_pooled(pred, ref, spacing) if overlapping else INFINITE_DISTANCE_2025}
    pred_labels, n_pred = lesions(pred)
    ref_labels, n_ref = lesions(ref)
    matched = _matched_pairs(pred_labels, n_pred, ref_labels, n_ref)
    out.update(lesion_tp=len(matched), lesion_fp=n_pred - len(matched), lesion_fn=n_ref - len(matched))
    if not matched:
        return {**out, "lesion_dice": 0.0, "lesion_hd95": math.inf}
    pred_boxes, ref_boxes = ndimage.find_objects(pred_labels), ndimage.find_objects(ref_labels)
    distances = []
    for r, p, _ in matched:
        pair = _union_box([ref_boxes[r - 1], pred_boxes[p - 1]], 1, ref.shape)
        distances.append(hd95_pooled(pred_labels[pair] == p, ref_labels[pair] == r, spacing))
    return {**out, "lesion_dice": float(np.mean([d for _, _, d in matched])), "lesion_hd95": float(np.mean(distances))}
