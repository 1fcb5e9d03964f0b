"""BraTS checks of ``monai-app validate`` (:mod:`monai_app.dataset_check`): MSD ``dataset.json`` and the per-modality
challenge layouts, every NIfTI read in full; channels, shapes, affines, label conventions, finite, non-empty voxels."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from monai_app.errors import DatasetError
from monai_app.dataset_check import ValidationResult, _distinct, _exists


def _nifti(path: str, result: ValidationResult, case: str):
    """``(data, affine, zooms)`` of a NIfTI file read in full, or None after recording why it cannot be read."""
    import nibabel as nib

    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # truncated gzip (EOFError, zlib.error), not NIfTI (ImageFileError), I/O errors
        result.problem(f"{path}: cannot be read as NIfTI ({type(exc).__name__}: {exc})", case)
        return None
    return data, img.affine, tuple(round(float(z), 3) for z in img.header.get_zooms()[:3])


def _voxel_problems(path: str, data: np.ndarray, result: ValidationResult, case: str, names=None) -> None:
    """NaN / infinite voxels, an all-zero volume, or (4-D with ``names``) an all-zero modality."""
    if data.dtype.kind == "f" and not np.isfinite(data.sum(dtype=np.float64)):  # a finite sum: no NaN, no Inf
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad:
            result.problem(f"{path}: {bad} NaN or infinite voxel(s)", case)
    if not data.any():
        result.problem(f"{path}: every voxel is 0 (an empty volume)", case)
    elif names and data.ndim == 4:
        empty = [names[k] for k in range(min(len(names), data.shape[3])) if not data[..., k].any()]
        if empty:
            result.problem(f"{path}: modality {', '.join(empty)} is 0 everywhere", case)


def _label(path: str, spatial, affine, fmt, result: ValidationResult, case: str) -> None:
    read = _nifti(path, result, case)
    if read is None:
        return
    label, label_affine, _ = read
    label = label.reshape(label.shape[:3]) if label.ndim == 4 and label.shape[3] == 1 else label
    if label.ndim != 3:
        return result.problem(f"{path}: a label map must be 3-D, found shape {label.shape}", case)
    if spatial is None:  # no image to compare with
        pass
    elif label.shape != tuple(spatial):
        result.problem(f"{path}: label shape {label.shape} differs from the image's {tuple(spatial)}", case)
    elif not np.allclose(label_affine, affine, atol=1e-3):
        result.problem(f"{path}: label affine differs from the image's (origin, spacing or orientation)", case)
    values = _distinct(label)
    result.values("label values", values[np.isfinite(values)] if values.dtype.kind == "f" else values)
    unknown = fmt.unknown_labels(values)
    if unknown:
        result.problem(f"{path}: label values {unknown} are not {fmt.name} labels {list(fmt.labels)}", case)


def check_brats_case(case: dict, fmt, result: ValidationResult) -> None:
    from monai_app.datasets.brats import CHANNELS

    if case.get("unusable"):
        return  # recorded while listing
    cid = case["case_id"]
    paths = case["image"] if isinstance(case["image"], list) else [case["image"]]
    listed = "listed in dataset.json" if fmt.name == "msd" else "a modality of the case"
    missing = [p for p in paths if not _exists(p, listed, result, cid)]
    if "label" in case and not _exists(case["label"], listed if fmt.name == "msd" else "the segmentation", result,
                                       cid):
        missing.append(case["label"])
    volumes = []
    for path in (p for p in paths if p not in missing):
        read = _nifti(path, result, cid)
        if read is not None:
            _voxel_problems(path, read[0], result, cid, CHANNELS if fmt.name == "msd" else None)
            result.count("image dtypes", read[0].dtype)
            volumes.append((path, *read))
    if len(volumes) != len(paths):  # a modality is missing or unreadable: recorded; shapes cannot be compared
        if "label" in case and case["label"] not in missing:
            _label(case["label"], None, None, fmt, result, cid)  # still find an unreadable label or bad values
        return
    path0, data0, affine, zooms = volumes[0]
    if fmt.name == "msd":
        if data0.ndim != 4 or data0.shape[3] != 4:
            return result.problem(f"{path0}: expected a 4-D image with 4 modalities (FLAIR, T1, T1gd, T2), found "
                                  f"shape {data0.shape}", cid)
    else:
        for path, data, aff, _ in volumes:
            if data.ndim != 3:
                result.problem(f"{path}: expected a 3-D modality volume, found shape {data.shape}", cid)
            elif data.shape != data0.shape:
                result.problem(f"{path}: shape {data.shape} differs from the FLAIR's {data0.shape} "
                               f"({Path(path0).name})", cid)
            elif not np.allclose(aff, affine, atol=1e-3):
                result.problem(f"{path}: affine differs from the FLAIR's ({Path(path0).name})", cid)
    result.count("image shapes", "x".join(map(str, data0.shape[:3])))
    result.count("channels", data0.shape[3] if fmt.name == "msd" else len(paths))
    result.count("voxel spacing (mm)", "x".join(map(str, zooms)))
    if "label" in case and case["label"] not in missing:
        _label(case["label"], data0.shape[:3], affine, fmt, result, cid)


def _msd_json(root: Path, result: ValidationResult) -> dict | None:
    """``dataset.json``, or None after recording every structural problem (each bad entry, not only the first)."""
    path = root / "dataset.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        result.problem(f"{path}: not valid JSON or unreadable ({exc})")
        return None
    if not isinstance(meta, dict) or not isinstance(meta.get("training"), list):
        result.problem(f"{path}: no 'training' list (is this the MSD Task01_BrainTumour dataset.json?)")
        return None
    n = len(result.problems)
    for key in ("training", "test"):
        for i, entry in enumerate(meta.get(key) or []):
            fields = (entry.get("image"), entry.get("label")) if isinstance(entry, dict) else (entry,)
            if not all(isinstance(f, str) and f for f in fields):
                result.problem(f"{path}: '{key}' entry {i} is not " + (
                    "an {\"image\": path, \"label\": path} object" if key == "training" else "an image path")
                    + f": {json.dumps(entry)[:80]}")
    if "modality" in meta and (not isinstance(meta["modality"], dict) or len(meta["modality"]) != 4):
        result.problem(f"{path}: 'modality' must name the 4 channels (FLAIR, T1w, t1gd, T2w), found "
                       f"{meta.get('modality')!r}")
    if isinstance(meta.get("numTraining"), int) and meta["numTraining"] != len(meta["training"]):
        result.note(f"dataset.json: numTraining is {meta['numTraining']} but 'training' lists {len(meta['training'])}")
    return meta if len(result.problems) == n else None


def list_brats_cases(root: Path, dataset_format: str | None,
                     result: ValidationResult) -> tuple[list[dict], object]:
    from monai_app.datasets import brats

    fmt = brats.get_format(brats.resolve_format(root, dataset_format or "auto"))
    result.summary["layout"] = fmt.name
    if fmt.name == "msd":
        meta = _msd_json(root, result)
        if meta is None:
            return [], fmt
        train = [{**c, "part": "training"} for c in brats._msd_cases(root, "train")]
        test = [{**c, "part": "test"} for c in brats._msd_cases(root, "test")] if isinstance(meta.get("test"), list) \
            else []
        ids = Counter(c["case_id"] for c in train)
        for cid in sorted(i for i, n in ids.items() if n > 1):
            result.problem(f"{root / 'dataset.json'}: case {cid} is listed {ids[cid]} times in 'training'", cid)
        cases = sorted(train, key=lambda c: c["case_id"]) + sorted(test, key=lambda c: c["case_id"])
    else:
        cases = []
        for folder in brats.case_folders(root, fmt):
            try:
                case = brats._per_modality_case(folder, fmt)
            except DatasetError as exc:  # a modality file is missing: the case cannot be used
                result.problem(str(exc), folder.name)
                case = {"case_id": folder.name, "image": [], "label": None, "unusable": True}
            cases.append({**case, "part": "training" if "label" in case else "test (no segmentation)"})
        if any("label" not in c for c in cases):
            result.note("case folders without a segmentation file are test cases: training leaves them out")
    if not any(c["part"] == "training" for c in cases):
        result.problem(f"{root}: no labelled cases found ({fmt.name} layout)")
    return cases, fmt
