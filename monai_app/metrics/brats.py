"""BraTS scoring on top of MONAI's metrics: HD95 with the BraTS empty-mask convention, and folder-to-folder scoring.

Dice needs no code of ours: ``monai.metrics.DiceMetric(include_background=True, ignore_empty=False)`` already
scores a case with both masks empty as 1 and a prediction on an empty reference as 0 (the BraTS convention).
MONAI's Hausdorff distance, however, returns NaN whenever either mask is empty; BraTS scores both-empty as 0 and
one-empty as 373.13 mm (the diagonal of a 240x240x155 mm volume). :class:`BratsHausdorffDistanceMetric` adds that.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.metrics import DiceMetric, HausdorffDistanceMetric
from monai.utils import MetricReduction
from tqdm import tqdm

from monai_app.datasets.brats import NIFTI_RE, REGIONS, BratsFormat, get_format
from monai_app.errors import UserInputError
from monai_app.metrics.tables import write_metric_tables
from monai_app.transforms.brats import brats_region_masks

logger = logging.getLogger(__name__)

BRATS_EMPTY_DISTANCE = 373.13
"""HD95 (mm) BraTS gives a case where exactly one of prediction and reference is empty."""

COLUMNS = [f"dice_{r}" for r in REGIONS] + [f"hd95_{r}" for r in REGIONS]


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


def _case_files(folder: Path, what: str) -> dict[str, Path]:
    """``{case_id: path}`` of the visible NIfTI files directly in ``folder``."""
    if not folder.is_dir():
        raise UserInputError(f"{folder}: {what} folder does not exist or is not a folder")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith((".", "_")) or not NIFTI_RE.search(path.name) or not path.is_file():
            continue
        case_id = NIFTI_RE.sub("", path.name)
        if case_id in files:
            raise UserInputError(f"{folder}: two {what} files for case {case_id}: {files[case_id].name}, {path.name}")
        files[case_id] = path
    return files


def _load_label(path: Path, fmt: BratsFormat) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Load a 3D label map, check its values against ``fmt``; returns (data, image)."""
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as e:  # nibabel raises several types for unreadable files
        raise UserInputError(f"{path}: cannot read as NIfTI ({e})") from None
    while data.ndim > 3 and data.shape[-1] == 1:  # some tools write (X, Y, Z, 1)
        data = data[..., 0]
    if data.ndim != 3:
        raise UserInputError(f"{path}: a label map must be 3D, got shape {data.shape}")
    bad = fmt.unknown_labels(np.unique(data))
    if bad:
        raise UserInputError(f"{path}: label values {bad} are not {fmt.name} labels {list(fmt.labels)}")
    return data.astype(np.int16), img  # checked: whole, small numbers; int16 is native-endian for torch


def _match_cases(pred_dir: Path, ref_dir: Path) -> list[tuple[str, Path, Path]]:
    """(case_id, prediction, reference) for every reference case; every one must have a prediction."""
    refs, preds = _case_files(ref_dir, "reference"), _case_files(pred_dir, "prediction")
    if not refs:
        raise UserInputError(f"{ref_dir}: no reference label maps (*.nii, *.nii.gz) in this folder")
    missing = sorted(set(refs) - set(preds))
    if missing:
        raise UserInputError(f"{pred_dir}: no prediction for {len(missing)} of {len(refs)} reference cases, e.g. "
                             f"{', '.join(missing[:5])}")
    extra = sorted(set(preds) - set(refs))
    if extra:
        logger.warning("%s: ignoring %d predictions without a reference, e.g. %s", pred_dir, len(extra),
                       ", ".join(extra[:5]))
    return [(case_id, preds[case_id], refs[case_id]) for case_id in sorted(refs)]


def _score_case(case_id: str, pred_path: Path, ref_path: Path, fmt: BratsFormat, dice: DiceMetric,
                hd95: BratsHausdorffDistanceMetric) -> dict:
    """One row of scores: Dice and HD95 (mm, at the reference's voxel size) of WT, TC and ET."""
    pred, pred_img = _load_label(pred_path, fmt)
    ref, ref_img = _load_label(ref_path, fmt)
    if pred.shape != ref.shape:
        raise UserInputError(f"case {case_id}: prediction {pred_path} has shape {pred.shape} but reference "
                             f"{ref_path} has shape {ref.shape}")
    if not np.allclose(pred_img.affine, ref_img.affine, atol=1e-3):
        logger.warning("case %s: prediction and reference affines differ; scoring voxel to voxel", case_id)
    y_pred = brats_region_masks(torch.from_numpy(pred), fmt).unsqueeze(0).float()
    y = brats_region_masks(torch.from_numpy(ref), fmt).unsqueeze(0).float()
    spacing = [float(z) for z in ref_img.header.get_zooms()[:3]]
    d = dice(y_pred, y)[0].tolist()
    h = hd95(y_pred, y, spacing=spacing)[0].tolist()
    return {"case_id": case_id, **dict(zip(COLUMNS, d + h))}


def score_folders(pred_dir: str | os.PathLike, ref_dir: str | os.PathLike, dataset_format: str,
                  out_dir: str | os.PathLike) -> dict:
    """Score a folder of predicted BraTS label maps against a folder of references, as nnU-Net evaluates folders.

    Files are matched by case id (the file name without ``.nii`` / ``.nii.gz``; names starting with ``.`` or ``_``
    are ignored). Each case gets Dice (BraTS convention) and HD95 in mm for WT, TC and ET.

    Args:
        pred_dir: predicted label maps, from any tool, in the label convention of ``dataset_format``.
        ref_dir: reference label maps.
        dataset_format: ``msd``, ``brats2021`` or ``brats2023`` (label numbering of both folders).
        out_dir: where ``per_case.csv`` and ``summary.json`` are written.

    Returns:
        The summary written to ``summary.json``.

    Raises:
        UserInputError: a folder is missing or empty, a reference case has no prediction, shapes differ, or a
            file holds label values outside ``dataset_format``.
    """
    fmt = get_format(dataset_format)
    cases = _match_cases(Path(pred_dir), Path(ref_dir))
    dice = DiceMetric(include_background=True, reduction="none", ignore_empty=False)
    hd95 = BratsHausdorffDistanceMetric(reduction="none")
    rows = [_score_case(case_id, pred, ref, fmt, dice, hd95)
            for case_id, pred, ref in tqdm(cases, desc="scoring", unit="case", disable=None)]
    logger.info("scored %d cases of %s against %s", len(rows), pred_dir, ref_dir)
    return write_metric_tables(rows, out_dir, columns=COLUMNS)
