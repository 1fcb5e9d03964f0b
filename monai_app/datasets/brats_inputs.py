"""What BraTS inference reads: one image file (4-D NIfTI, NRRD, MetaImage), a folder of them, one case folder of
per-modality files, a folder of case folders, or an MSD dataset root (its ``imagesTs``) (:func:`find_inputs`); and
the label convention to write the predictions in (:func:`input_format`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from monai_app.datasets.brats import (FORMATS, BratsFormat, case_folders, challenge_format, get_format, msd_cases,
                                      per_modality_case, visible)
from monai_app.errors import DatasetError
from monai_app.files import unfinished_cases

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def image_stem(path: Path) -> str | None:
    """Case id of an image file (its name without the image extension), or None if it is no image file."""
    name = path.name
    ext = next((e for e in IMAGE_EXTENSIONS if name.lower().endswith(e)), None)
    return name[: -len(ext)] if ext and visible(path) else None


def _folder_format(folder: Path) -> BratsFormat | None:
    """The per-modality format whose FLAIR file lies directly in ``folder``, if any: BraTS 2023-2025 names
    (``brats2024ped`` for a ``BraTS-PED-...`` case folder), else BraTS 2018-2021 names."""
    if any(visible(p) for p in folder.glob(f"*{FORMATS['brats2023'].suffixes[0]}.nii*")):
        return FORMATS[challenge_format([folder], folder)]
    if any(visible(p) for p in folder.glob(f"*{FORMATS['brats2021'].suffixes[0]}.nii*")):
        return FORMATS["brats2021"]
    return None


def _input_cases(path: Path) -> list[dict]:
    if path.is_file():
        stem = image_stem(path)
        if stem is None:
            raise DatasetError(f"{path}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)})")
        return [{"case_id": stem, "image": str(path)}]
    if (path / "dataset.json").is_file():
        return sorted(msd_cases(path, "test"), key=lambda c: c["case_id"])
    fmt = _folder_format(path)
    if fmt is not None:  # one case folder of per-modality files
        return [per_modality_case(path, fmt)]
    cases = []
    for child in sorted(p for p in path.iterdir() if visible(p)):
        if child.is_dir() and (fmt := _folder_format(child)) is not None:
            try:
                cases.append(per_modality_case(child, fmt))
            except DatasetError as exc:  # one incomplete case folder: reported at the end, the others go on
                cases.append({"case_id": child.name, "image": str(child), "input_error": str(exc)})
        elif child.is_file() and image_stem(child) is not None:
            cases.append({"case_id": image_stem(child), "image": str(child)})
    seen: dict[str, str] = {}
    for case in cases:  # two inputs of one name would write the same output file
        image = case["image"]
        name = Path(image[0]).parent.name + "/" if isinstance(image, list) else Path(image).name
        if seen.setdefault(case["case_id"], name) != name:
            raise DatasetError(f"{path}: two inputs are named {case['case_id']!r} ({seen[case['case_id']]}, {name}); "
                               "their outputs would overwrite each other")
    return cases


def find_inputs(input_path: str | os.PathLike, output_dir: str | os.PathLike | None = None,
                skip_existing: bool = False, extension: str = ".nii.gz") -> list[dict]:
    """Cases to segment from ``input_path``: one image file (a 4-D NIfTI, or any ITK format such as ``.nrrd``,
    ``.mha``), a folder of such files, a case folder of per-modality files, a folder of case folders, or an MSD
    dataset root (its ``imagesTs``).

    Args:
        input_path: the file or folder.
        output_dir: where predictions go; with ``skip_existing``, cases whose output exists are left out.
        skip_existing: resume an interrupted run instead of redoing finished cases.
        extension: the output file extension checked by ``skip_existing``.

    A case that cannot be listed in full (a case folder without one of its modalities, a file listed in
    ``dataset.json`` that is missing) gets an ``input_error`` item: inference reports it and goes on with the others.

    Raises:
        DatasetError: the path does not exist or holds no image, or it is one case folder missing a modality.
    """
    path = Path(input_path)
    if not path.exists():
        raise DatasetError(f"{path}: input does not exist")
    cases = _input_cases(path)
    for case in cases:
        missing = [f for f in case["image"] if not Path(f).is_file()] if isinstance(case["image"], list) else \
            [case["image"]] if not Path(case["image"]).is_file() else []
        if missing and "input_error" not in case:
            case["input_error"] = f"{missing[0]}: listed input file does not exist"
    if not cases:
        raise DatasetError(f"{path}: no input images found (NIfTI, NRRD or MetaImage files, or BraTS case folders)")
    if skip_existing and output_dir is not None:  # a bool: configs parse the switch (switches#skip_existing)
        cases = unfinished_cases(cases, output_dir, extension)
    logger.info("%s: %d case(s) to segment", path, len(cases))
    return cases


def input_format(input_path: str | os.PathLike, dataset_format: str = "auto") -> str:
    """The label convention to write predictions in: ``dataset_format`` itself, or with ``auto`` the per-modality
    layout found in the input (BraTS 2023-2025 names: ``brats2023``, or ``brats2024ped`` when every case folder is a
    ``BraTS-PED-...`` case; BraTS 2018-2021 names: ``brats2021``), else MSD.

    Raises:
        DatasetError: an unknown ``dataset_format``, or ``auto`` on a folder mixing BraTS-PED and other case folders.
    """
    if dataset_format != "auto":
        return get_format(dataset_format).name
    path = Path(input_path)
    if path.is_dir():
        folders = case_folders(path, FORMATS["brats2023"])
        if folders:
            return challenge_format(folders, path)
        if case_folders(path, FORMATS["brats2021"]):
            return "brats2021"
    return "msd"
