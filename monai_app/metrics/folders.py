"""Folder-to-folder BraTS scoring (``monai-app score``), as nnU-Net evaluates folders: predictions from any tool
against the references, one row per case in ``per_case.csv``, statistics in ``summary.json``.

A case that cannot be scored (an unreadable file, labels outside the format, a shape mismatch, no prediction) gets
one line naming the file and the problem; the other cases are still scored and written, and the run then ends
with an error listing the cases left out.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm import tqdm

from monai_app.datasets.brats import NIFTI_RE, BratsFormat, get_format, subchallenge
from monai_app.errors import DatasetError, UserInputError
from monai_app.files import atomic_write_text
from monai_app.metrics.brats import check_scoring, default_scoring, score_columns, score_label_maps, scored_groups
from monai_app.metrics.tables import write_metric_tables

logger = logging.getLogger(__name__)

SEG_SUFFIX_RE = re.compile(r"[-_]seg$", re.IGNORECASE)


def case_key(path: Path) -> str:
    """The case id a label-map file stands for: its name without ``.nii[.gz]`` and without a ``-seg`` / ``_seg``
    suffix, so ``BraTS-GLI-00001-000-seg.nii.gz`` (a release) matches ``BraTS-GLI-00001-000.nii.gz`` (a
    submission)."""
    return SEG_SUFFIX_RE.sub("", NIFTI_RE.sub("", path.name))


def _visible_nifti(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith((".", "_")) and NIFTI_RE.search(p.name)
                  and p.is_file())


def case_files(folder: Path, what: str) -> dict[str, Path]:
    """``{case id: path}`` of the label maps of ``folder``: the NIfTI files directly in it or, for a dataset as
    downloaded (one folder per case), the ``*-seg`` / ``*_seg`` files of its case folders."""
    if not folder.is_dir():
        raise UserInputError(f"{folder}: {what} folder does not exist or is not a folder")
    paths = _visible_nifti(folder)
    if not paths:
        paths = [p for sub in sorted(folder.iterdir()) if sub.is_dir() and not sub.name.startswith(".")
                 for p in _visible_nifti(sub) if SEG_SUFFIX_RE.search(NIFTI_RE.sub("", p.name))]
    files: dict[str, Path] = {}
    for path in paths:
        key = case_key(path)
        if key in files:
            raise UserInputError(f"{folder}: two {what} files for case {key}: {files[key]}, {path}")
        files[key] = path
    return files


def detect_label_format(case_ids: list[str]) -> str:
    """The label convention of BraTS 2023-2025 case ids: ``brats2024ped`` for ``BraTS-PED-...``, ``brats2023`` for
    the other sub-challenges; a clear error when the ids name no sub-challenge."""
    codes = {subchallenge(c) for c in case_ids}
    if None in codes:
        raise UserInputError("cannot tell the label convention from the file names: pass --format msd, brats2021, "
                             "brats2023 or brats2024ped")
    if "PED" in codes and len(codes) > 1:
        others = sorted(codes - {"PED"})
        raise UserInputError(f"the references mix BraTS-PED cases (their own label numbers) with {others}: score "
                             "them in separate runs")
    return "brats2024ped" if codes == {"PED"} else "brats2023"


def load_label(path: Path, fmt: BratsFormat) -> tuple[np.ndarray, nib.Nifti1Image]:
    """A 3-D label map and its image, its values checked against ``fmt``.

    Raises:
        UserInputError: the file is unreadable, not 3-D, or holds values that are not ``fmt`` labels.
    """
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
    return data.astype(np.int16), img


def score_case(case_id: str, pred_path: Path, ref_path: Path, dataset_format: str, scoring: str) -> dict:
    """One row of ``per_case.csv``: ``case_id`` and the scores, in mm at the reference's voxel size."""
    fmt = get_format(dataset_format)
    pred, pred_img = load_label(pred_path, fmt)
    ref, ref_img = load_label(ref_path, fmt)
    if pred.shape != ref.shape:
        raise UserInputError(f"case {case_id}: prediction {pred_path} has shape {pred.shape} but reference "
                             f"{ref_path} has shape {ref.shape}")
    if not np.allclose(pred_img.affine, ref_img.affine, atol=1e-3):
        logger.warning("case %s: prediction and reference affines differ; scoring voxel to voxel", case_id)
    spacing = [float(z) for z in ref_img.header.get_zooms()[:3]]
    return {"case_id": case_id, **score_label_maps(pred, ref, fmt, spacing, scoring, case_id)}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _score_all(jobs: list[tuple], workers: int) -> tuple[list[dict], dict[str, str]]:
    """Score every job ``(case_id, pred, ref, format, scoring)``; ``(rows, {case_id: problem})``."""
    rows, failed = [], {}
    progress = tqdm(total=len(jobs), desc="scoring", unit="case", disable=None)

    def record(case_id: str, run) -> None:
        try:
            rows.append(run())
        except (UserInputError, DatasetError) as exc:
            failed[case_id] = str(exc)
            logger.error("not scored: %s", exc)
        progress.update()

    if workers <= 1:
        for job in jobs:
            record(job[0], lambda job=job: score_case(*job))
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker) as pool:
            futures = {pool.submit(score_case, *job): job[0] for job in jobs}
            for future in as_completed(futures):
                record(futures[future], future.result)
    progress.close()
    return rows, failed


def score_folders(pred_dir: str | os.PathLike, ref_dir: str | os.PathLike, dataset_format: str = "auto",
                  out_dir: str | os.PathLike = "scores", scoring: str | None = None, workers: int = 1) -> dict:
    """Score a folder of predicted BraTS label maps against the references.

    Args:
        pred_dir: predicted label maps, from any tool, in the label convention of ``dataset_format``.
        ref_dir: reference label maps, or a dataset as downloaded (case folders holding ``*-seg`` files).
        dataset_format: ``msd``, ``brats2021``, ``brats2023``, ``brats2024ped``, or ``auto`` (from BraTS
            2023-2025 file names).
        out_dir: where ``per_case.csv``, ``summary.json`` and ``scoring.json`` are written.
        scoring: ``brats2021``, ``brats2023`` or ``brats2025``; None takes the layout's default
            (:func:`monai_app.metrics.brats.default_scoring`).
        workers: cases scored in parallel (processes).

    Returns:
        The summary written to ``summary.json``.

    Raises:
        UserInputError: a folder is missing or holds no reference; or, after the other cases were scored and
            written, some cases could not be scored (each named, with its problem).
    """
    refs, preds = case_files(Path(ref_dir), "reference"), case_files(Path(pred_dir), "prediction")
    if not refs:
        raise UserInputError(f"{ref_dir}: no reference label maps (*.nii, *.nii.gz, or case folders with *-seg "
                             "files) in this folder")
    fmt = get_format(detect_label_format(list(refs)) if dataset_format == "auto" else dataset_format)
    scoring = check_scoring(scoring or default_scoring(fmt.name))
    failed = {c: f"{refs[c]}: no prediction {c}.nii.gz (or {c}-seg.nii.gz) in {pred_dir}"
              for c in refs if c not in preds}
    for problem in failed.values():
        logger.error("not scored: %s", problem)
    extra = sorted(set(preds) - set(refs))
    if extra:
        logger.warning("%s: ignoring %d predictions without a reference, e.g. %s", pred_dir, len(extra),
                       ", ".join(extra[:5]))
    jobs = [(c, preds[c], refs[c], fmt.name, scoring) for c in sorted(refs) if c in preds]
    rows, errors = _score_all(jobs, max(1, min(workers, len(jobs))))
    failed.update(errors)
    scored = {g for row in rows for g in scored_groups(fmt, row["case_id"])}
    columns = [c for c in score_columns(fmt, scoring) if c.rsplit("_", 1)[1] in scored]
    summary = write_metric_tables(rows, out_dir, columns)
    atomic_write_text(Path(out_dir) / "scoring.json", json.dumps(
        {"scoring": scoring, "dataset_format": fmt.name, "predictions": str(Path(pred_dir).resolve()),
         "references": str(Path(ref_dir).resolve()), "scored": len(rows),
         "not_scored": dict(sorted(failed.items()))}, indent=1) + "\n")
    logger.info("scored %d of %d cases (%s convention, %s labels)", len(rows), len(refs), scoring, fmt.name)
    if failed:
        problems = [failed[c] for c in sorted(failed)]
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise UserInputError(f"{len(failed)} of {len(refs)} reference cases not scored: {'; '.join(problems[:3])}{more}"
                             f". All are listed in {Path(out_dir) / 'scoring.json'}; the {len(rows)} others are in "
                             "per_case.csv")
    return summary
