"""BraTS checks of ``monai-app validate``: MSD ``dataset.json`` and the per-modality challenge layouts (2018-2021,
2023-2025, PED), every NIfTI read in full; channels, shapes, affines, label conventions (the resection cavity and the
PED cystic component included), finite, non-empty voxels; the sub-challenges of BraTS 2023-2025 case ids.

:func:`cases_to_check` lists the cases as :mod:`monai_app.datasets.brats` does for training (each with its layout's
name under ``"format"``), :func:`check_case` checks one.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from monai_app.datasets import brats
from monai_app.datasets.checks import ValidationResult, distinct_values, file_exists, read_nifti, voxel_problems
from monai_app.errors import DatasetError


def _check_label(path: str, spatial, affine, fmt: brats.BratsFormat, result: ValidationResult, case: str) -> None:
    """A label map: readable, 3-D, of the image's shape and affine (when given), of ``fmt``'s label values."""
    read = read_nifti(path, result, case)
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
    values = distinct_values(label)
    result.values("label values", values[np.isfinite(values)] if values.dtype.kind == "f" else values)
    if fmt.cavity is not None:
        result.count(f"resection cavity (label {fmt.cavity})", "present" if fmt.cavity in values else "absent")
    unknown = fmt.unknown_labels(values)
    if unknown:
        result.problem(f"{path}: label values {unknown} are not {fmt.name} labels {list(fmt.labels)}", case)


def _read_volumes(case: dict, fmt: brats.BratsFormat, result: ValidationResult) -> tuple[list, list, list]:
    """``(image paths, missing paths, [(path, data, affine, zooms)] of the images read)`` of one case."""
    cid = case["case_id"]
    paths = case["image"] if isinstance(case["image"], list) else [case["image"]]
    listed = "listed in dataset.json" if fmt.name == "msd" else "a modality of the case"
    missing = [p for p in paths if not file_exists(p, listed, result, cid)]
    if "label" in case and not file_exists(case["label"], listed if fmt.name == "msd" else "the segmentation",
                                           result, cid):
        missing.append(case["label"])
    volumes = []
    for path in (p for p in paths if p not in missing):
        read = read_nifti(path, result, cid)
        if read is not None:
            voxel_problems(path, read[0], result, cid, brats.CHANNELS if fmt.name == "msd" else None)
            result.count("image dtypes", read[0].dtype)
            volumes.append((path, *read))
    return paths, missing, volumes


def _shapes_agree(volumes: list, fmt: brats.BratsFormat, result: ValidationResult, cid: str) -> bool:
    """Whether the images of a case have the layout's shape (MSD: one 4-D image of 4 modalities; per-modality: 3-D
    volumes of one shape and affine); False after recording an MSD image of the wrong shape."""
    path0, data0, affine, _ = volumes[0]
    if fmt.name == "msd":
        if data0.ndim != 4 or data0.shape[3] != 4:
            result.problem(f"{path0}: expected a 4-D image with 4 modalities (FLAIR, T1, T1gd, T2), found shape "
                           f"{data0.shape}", cid)
            return False
        return True
    for path, data, aff, _ in volumes:
        if data.ndim != 3:
            result.problem(f"{path}: expected a 3-D modality volume, found shape {data.shape}", cid)
        elif data.shape != data0.shape:
            result.problem(f"{path}: shape {data.shape} differs from the FLAIR's {data0.shape} ({Path(path0).name})",
                           cid)
        elif not np.allclose(aff, affine, atol=1e-3):
            result.problem(f"{path}: affine differs from the FLAIR's ({Path(path0).name})", cid)
    return True


def check_case(case: dict, result: ValidationResult) -> None:
    """Read every file of one case of :func:`cases_to_check` in full and record every problem.

    Args:
        case: ``{"case_id", "image": path or [4 paths], "label"?, "format": layout name}``.
        result: where problems and the summary go.
    """
    if case.get("unusable"):
        return  # recorded while listing
    fmt, cid = brats.get_format(case["format"]), case["case_id"]
    paths, missing, volumes = _read_volumes(case, fmt, result)
    if len(volumes) != len(paths):  # a modality is missing or unreadable: recorded; shapes cannot be compared
        if "label" in case and case["label"] not in missing:
            _check_label(case["label"], None, None, fmt, result, cid)  # still find an unreadable label or bad values
        return
    if not _shapes_agree(volumes, fmt, result, cid):
        return
    _, data0, affine, zooms = volumes[0]
    result.count("image shapes", "x".join(map(str, data0.shape[:3])))
    result.count("channels", data0.shape[3] if fmt.name == "msd" else len(paths))
    result.count("voxel spacing (mm)", "x".join(map(str, zooms)))
    if "label" in case and case["label"] not in missing:
        _check_label(case["label"], data0.shape[:3], affine, fmt, result, cid)


def _msd_entries(path: Path, meta: dict, result: ValidationResult) -> None:
    """Record every malformed ``training`` / ``test`` entry and a ``modality`` that does not name 4 channels."""
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
    _msd_entries(path, meta, result)
    if isinstance(meta.get("numTraining"), int) and meta["numTraining"] != len(meta["training"]):
        result.note(f"dataset.json: numTraining is {meta['numTraining']} but 'training' lists {len(meta['training'])}")
    return meta if len(result.problems) == n else None


def _msd_cases(root: Path, result: ValidationResult) -> list[dict] | None:
    """The training then test cases of ``dataset.json``, each sorted by id; duplicate training ids are problems.
    None when ``dataset.json`` itself has problems (recorded)."""
    meta = _msd_json(root, result)
    if meta is None:
        return None
    train = [{**c, "part": "training"} for c in brats.msd_cases(root, "train")]
    test = [{**c, "part": "test"} for c in brats.msd_cases(root, "test")] if isinstance(meta.get("test"), list) \
        else []
    ids = Counter(c["case_id"] for c in train)
    for cid in sorted(i for i, n in ids.items() if n > 1):
        result.problem(f"{root / 'dataset.json'}: case {cid} is listed {ids[cid]} times in 'training'", cid)
    return sorted(train, key=lambda c: c["case_id"]) + sorted(test, key=lambda c: c["case_id"])


def _per_modality_cases(root: Path, fmt: brats.BratsFormat, result: ValidationResult) -> list[dict]:
    """The case folders of a per-modality layout; one missing a modality is a problem and an unusable case."""
    cases = []
    for folder in brats.case_folders(root, fmt):
        try:
            case = brats.per_modality_case(folder, fmt)
        except DatasetError as exc:  # a modality file is missing: the case cannot be used
            result.problem(str(exc), folder.name)
            case = {"case_id": folder.name, "image": [], "label": None, "unusable": True}
        cases.append({**case, "part": "training" if "label" in case else "test (no segmentation)"})
    if any("label" not in c for c in cases):
        result.note("case folders without a segmentation file are test cases: training leaves them out")
    _subchallenges(cases, fmt, result)
    return cases


def _subchallenges(cases: list[dict], fmt: brats.BratsFormat, result: ValidationResult) -> None:
    """Count the BraTS 2023-2025 sub-challenges (GLI, MEN, MET, PED, ...) of the case ids, and note cases whose
    sub-challenge suggests another label convention than ``fmt`` (not a problem: the user may have chosen it)."""
    if fmt.name not in ("brats2023", "brats2024ped"):
        return
    codes = Counter(brats.subchallenge(c["case_id"]) or "other" for c in cases)
    result.summary["sub-challenges"] = codes
    ped = codes.get("PED", 0)
    if fmt.name == "brats2023" and ped:
        result.note(f"{ped} BraTS-PED case(s) read with the glioma labels (1 NETC, 2 SNFH, 3 ET), as BraTS-PED 2023 "
                    "numbered them; BraTS-PED 2024-2025 data: --dataset-format brats2024ped")
    elif fmt.name == "brats2024ped" and ped < len(cases):
        result.note(f"{len(cases) - ped} case(s) are no BraTS-PED cases but are read with the BraTS-PED 2024-2025 "
                    "labels (1 ET, 2 NETC, 3 CC, 4 ED)")


def cases_to_check(root: Path, dataset_format: str | None, result: ValidationResult) -> list[dict]:
    """Every case of a BraTS dataset folder, as training lists it, with its part and layout name.

    Args:
        root: the dataset folder.
        dataset_format: ``msd``, ``brats2021``, ``brats2023``, ``brats2024ped``, or None / ``auto`` (detect).
        result: where layout problems, the layout and the cases per part go.

    Raises:
        DatasetError: the folder is of no known BraTS layout.
    """
    fmt = brats.get_format(brats.resolve_format(root, dataset_format or "auto"))
    result.summary["layout"] = fmt.name
    cases = _msd_cases(root, result) if fmt.name == "msd" else _per_modality_cases(root, fmt, result)
    if cases is not None and not any(c["part"] == "training" for c in cases):
        result.problem(f"{root}: no labelled cases found ({fmt.name} layout)")
    result.summary["cases per part"] = dict(Counter(c["part"] for c in cases or []))
    return [{**c, "format": fmt.name} for c in cases or []]
