"""BraTS scoring on top of MONAI's metrics: HD95 with the BraTS empty-mask convention for the evaluation engine, and
the per-case scores of a label map under each scoring convention (:mod:`monai_app.metrics.lesions`).

Dice needs no code of ours: ``monai.metrics.DiceMetric(include_background=True, ignore_empty=False)`` already
scores a case with both masks empty as 1 and a prediction on an empty reference as 0 (the BraTS convention).
MONAI's Hausdorff distance, however, returns NaN whenever either mask is empty; BraTS scores both-empty as 0 and
one-empty as 373.13 mm (the diagonal of a 240x240x155 mm volume). :class:`BratsHausdorffDistanceMetric` adds that.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.metrics import CumulativeIterationMetric, HausdorffDistanceMetric
from monai.utils import MetricReduction

from monai_app.datasets.brats import REGIONS, BratsFormat, get_format, subchallenge
from monai_app.errors import UserInputError
from monai_app.metrics.lesions import (EMPTY_DISTANCE_2021, LESION_COLUMNS, crop_box, score_brats2021,
                                      score_brats2023, score_brats2025)

logger = logging.getLogger(__name__)

BRATS_EMPTY_DISTANCE = EMPTY_DISTANCE_2021
"""HD95 (mm) BraTS gives a case where exactly one of prediction and reference is empty."""


def _spacing_from_affine(affine: torch.Tensor, batch_size: int, img_dim: int) -> list[list[float]]:
    """Per-batch-item voxel sizes: the column norms of the spatial part of a (4, 4) or (B, 4, 4) affine."""
    affine = torch.as_tensor(affine, dtype=torch.float64)
    affine = affine.reshape(-1, *affine.shape[-2:])
    if affine.shape[0] == 1:
        affine = affine.expand(batch_size, -1, -1)
    if affine.shape[0] != batch_size:
        raise ValueError(f"affine batch size {affine.shape[0]} does not match the data batch size {batch_size}")
    norms = torch.linalg.norm(affine[:, :img_dim, :img_dim], dim=1)
    return norms.tolist()


def image_spacing(image: torch.Tensor) -> list[float]:
    """The voxel size (mm) of one channel-first image: from its affine when it is a ``MetaTensor``, else 1 mm."""
    affine = getattr(image, "affine", None)
    return _spacing_from_affine(affine, 1, image.ndim - 1)[0] if affine is not None else [1.0] * (image.ndim - 1)


class BratsHausdorffDistanceMetric(HausdorffDistanceMetric):
    """Percentile Hausdorff distance (HD95 by default) in millimetres, with the BraTS convention for empty masks.

    Per batch item and channel: both masks empty scores 0.0, exactly one empty scores ``empty_distance``; otherwise
    MONAI's symmetric percentile Hausdorff distance. Without a ``spacing`` argument the voxel spacing is read from
    the affine of ``y`` (or ``y_pred``) when it is a ``MetaTensor``, so distances are in millimetres.

    Args:
        percentile: percentile of the surface distances (95 for HD95).
        empty_distance: score of a case where exactly one of the two masks is empty.
        include_background: whether to score the first channel (BraTS region channels are all foreground).
        reduction: MONAI metric reduction applied by ``aggregate``.
        get_not_nans: whether ``aggregate`` also returns the not-NaN counts.
    """

    def __init__(
        self,
        percentile: float = 95.0,
        empty_distance: float = BRATS_EMPTY_DISTANCE,
        include_background: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(include_background=include_background, percentile=percentile, reduction=reduction,
                         get_not_nans=get_not_nans)
        self.empty_distance = float(empty_distance)

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        """Distances of shape (B, C); see the class docstring for the empty-mask rule and the spacing."""
        if kwargs.get("spacing") is None:
            source = next((t for t in (y, y_pred) if isinstance(t, MetaTensor) and t.affine is not None), None)
            if source is not None:
                kwargs["spacing"] = _spacing_from_affine(source.affine, y_pred.shape[0], y_pred.ndim - 2)
        with warnings.catch_warnings():
            # MONAI warns once per empty mask (and, in 1.6, about a deprecated argument it passes itself).
            warnings.filterwarnings("ignore", message=".* is all 0, this may result in nan/inf distance")
            warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
            hd = super()._compute_tensor(y_pred, y, **kwargs)
        first = 0 if self.include_background else 1
        pred_any = y_pred[:, first:].reshape(*hd.shape, -1).bool().any(-1).to(hd.device)
        ref_any = y[:, first:].reshape(*hd.shape, -1).bool().any(-1).to(hd.device)
        hd = torch.where(~pred_any & ~ref_any, torch.zeros_like(hd), hd)
        return torch.where(pred_any ^ ref_any, torch.full_like(hd, self.empty_distance), hd)


SCORING = ("brats2021", "brats2023", "brats2025")
"""The scoring conventions, each named after the challenge year whose numbers it reproduces."""
RULES_2023 = {"GLI": (3, 50.0), "SSA": (3, 50.0), "PED": (3, 50.0), "MEN": (1, 50.0), "MET": (1, 2.0)}
"""BraTS 2023 lesion rule per sub-challenge: (dilation iterations, largest left-out reference lesion in mm^3)."""
GROUPS_2025 = {"GLI": ("netc", "snfh", "rc"), "SSA": ("netc", "snfh", "rc"), "MET": ("rc",), "MEN": (), "GoAT": (),
               "PED": ("netc", "cc", "ed")}
"""Label groups the official 2025 configurations score besides WT, TC and ET, per sub-challenge."""
SCORERS = {"brats2021": score_brats2021, "brats2023": score_brats2023, "brats2025": score_brats2025}


def default_scoring(dataset_format: str) -> str:
    """``brats2025`` for the 2023-2025 layouts, ``brats2021`` for MSD and BraTS 2018-2021."""
    return "brats2025" if get_format(dataset_format).groups else "brats2021"


def check_scoring(scoring: str) -> str:
    """``scoring`` itself; a clear error for an unknown convention."""
    if scoring not in SCORING:
        raise UserInputError(f"unknown scoring convention {scoring!r}; choose one of {', '.join(SCORING)}")
    return scoring


def scored_groups(fmt: BratsFormat, case_id: str) -> dict[str, list[int]]:
    """``{name: labels}`` of the regions scored for one case: WT, TC, ET and the label groups its sub-challenge's
    official configuration scores (every group of the layout when the id names no sub-challenge)."""
    groups = fmt.scored_groups()
    names = GROUPS_2025.get(subchallenge(case_id) or "", tuple(name for name, _ in fmt.groups))
    return {name: labels for name, labels in groups.items() if name in REGIONS or name in names}


def rule_options(scoring: str, case_id: str) -> dict:
    """Keyword arguments of the convention's scorer for one case: the 2023 lesion rule of its sub-challenge (GLI's
    for ids that name none); nothing for the other conventions."""
    if scoring != "brats2023":
        return {}
    dilation, min_volume = RULES_2023.get(subchallenge(case_id) or "", RULES_2023["GLI"])
    return {"dilation": dilation, "min_volume": min_volume}


def score_columns(fmt: BratsFormat, scoring: str) -> list[str]:
    """Columns of ``per_case.csv`` for a layout and convention: ``dice_R``, ``hd95_R``, then for the lesion-wise
    conventions ``lesion_dice_R``, ``lesion_hd95_R``, ``lesion_tp_R``, ``lesion_fp_R`` and ``lesion_fn_R``."""
    return convention_columns(scoring, list(fmt.scored_groups()))


def convention_columns(scoring: str, regions: Sequence[str]) -> list[str]:
    """``dice_R``, ``hd95_R`` (and, lesion-wise, ``lesion_dice_R`` ... ``lesion_fn_R``) for each of ``regions``."""
    kinds = ["dice", "hd95"] + (list(LESION_COLUMNS) if scoring != "brats2021" else [])
    return [f"{kind}_{region}" for kind in kinds for region in regions]


def score_label_maps(pred: np.ndarray, ref: np.ndarray, fmt: BratsFormat, spacing, scoring: str,
                     case_id: str = "") -> dict:
    """Scores of one case: every column of :func:`score_columns` for the regions of :func:`scored_groups` (the
    layout's other groups stay NaN).

    Args:
        pred, ref: label maps of one shape, in ``fmt``'s numbers.
        fmt: the label convention.
        spacing: voxel size (mm) per axis.
        scoring: ``brats2021``, ``brats2023`` or ``brats2025``.
        case_id: names the sub-challenge (``BraTS-MET-...``), which sets the groups and the 2023 lesion rule.
    """
    options = rule_options(scoring, case_id)
    row = dict.fromkeys(score_columns(fmt, scoring), math.nan)
    # every convention works inside the labelled voxels' bounding box (+ the largest dilation and a border): exact,
    # and what makes a 240x240x155 case cost what its lesions cost
    box = crop_box((pred != 0) | (ref != 0), max(d for d, _ in RULES_2023.values()) + 2)
    pred, ref = (pred[box], ref[box]) if box is not None else (pred[:1, :1, :1] * 0, ref[:1, :1, :1] * 0)
    for region, labels in scored_groups(fmt, case_id).items():
        scores = SCORERS[scoring](np.isin(pred, labels), np.isin(ref, labels), spacing, **options)
        row.update({f"{kind}_{region}": float(value) for kind, value in scores.items()})
    return row


class BratsConventionMetric(CumulativeIterationMetric):
    """Per-case scores of region masks under a scoring convention, for the evaluation engine: one row of
    :attr:`columns` per case (``dice_R``, ``hd95_R`` and, lesion-wise, ``lesion_dice_R`` ... for each channel R).

    The voxel spacing comes from the affine of ``y`` (or ``y_pred``) when it is a ``MetaTensor``; the 2023 lesion
    rule of the sub-challenge is read from the reference's file name (``BraTS-MET-...``), GLI's otherwise.

    Args:
        scoring: ``brats2021``, ``brats2023`` or ``brats2025``.
        channel_names: names of the scored channels, in order (further channels, if any, are not scored).
    """

    def __init__(self, scoring: str = "brats2025", channel_names: Sequence[str] = REGIONS) -> None:
        super().__init__()
        self.scoring = check_scoring(scoring)
        self.channel_names = list(channel_names)
        self.columns = convention_columns(self.scoring, self.channel_names)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        source = next((t for t in (y, y_pred) if isinstance(t, MetaTensor) and t.affine is not None), None)
        spacings = (_spacing_from_affine(source.affine, y_pred.shape[0], y_pred.ndim - 2) if source is not None
                    else [[1.0] * (y_pred.ndim - 2)] * y_pred.shape[0])
        names = y.meta.get("filename_or_obj", []) if isinstance(y, MetaTensor) else []
        names = [names] if isinstance(names, str) else list(names)
        pred, ref = (t.detach().cpu().numpy() > 0.5 for t in (y_pred, y))
        rows = []
        for b in range(pred.shape[0]):
            options = rule_options(self.scoring, str(names[b]) if b < len(names) else "")
            scores = {}
            for c, name in enumerate(self.channel_names):
                result = SCORERS[self.scoring](pred[b, c], ref[b, c], spacings[b], **options)
                scores.update({f"{kind}_{name}": float(v) for kind, v in result.items()})
            rows.append([scores[column] for column in self.columns])
        return torch.tensor(rows, dtype=torch.float64)

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """Mean over cases and channels of the first lesion-wise Dice columns (whole-volume Dice for brats2021),
        NaN left out."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            return torch.tensor(math.nan)
        first = self.columns.index(f"{'dice' if self.scoring == 'brats2021' else 'lesion_dice'}_"
                                   f"{self.channel_names[0]}")
        values = data[:, first:first + len(self.channel_names)]
        return values[torch.isfinite(values)].mean() if torch.isfinite(values).any() else torch.tensor(math.nan)
