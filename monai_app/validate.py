"""Check a dataset folder before training: every case opened in full, every problem listed (not only the first).

``monai-app validate <bundle> --dataset-dir DIR`` lists the cases with the same loader code training uses, then
decodes each file (so truncated or corrupt files are found) and checks what the format requires: channels,
shapes and affines that agree, label values of the format's convention, finite voxels, photo and mask sizes.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from monai_app.errors import DatasetError


@dataclass
class ValidationResult:
    """What :func:`validate_dataset` found: ``summary`` (layout, counts, sizes, labels) and ``problems`` (one line
    each, naming the file or case)."""

    bundle: str
    dataset_dir: str
    summary: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    bad_cases: set = field(default_factory=set)
    cases: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str, case: str | None = None) -> None:
        self.problems.append(text)
        if case is not None:
            self.bad_cases.add(case)

    def count(self, key: str, value) -> None:
        self.summary.setdefault(key, Counter())[str(value)] += 1

    def values(self, key: str, values) -> None:
        self.summary.setdefault(key, set()).update(int(v) if float(v).is_integer() else float(v) for v in values)


def _progress(items: list, progress: bool, desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="case", disable=None if progress else True, leave=False)


# ------------------------------------------------------------------------------------------------------- BraTS 3-D
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


def _voxel_problems(path: str, data: np.ndarray, result: ValidationResult, case: str) -> None:
    if data.dtype.kind == "f":
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad:
            result.problem(f"{path}: {bad} NaN or infinite voxel(s)", case)
    if not data.any():
        result.problem(f"{path}: every voxel is 0 (an empty volume)", case)


def _label(path: str, spatial, affine, fmt, result: ValidationResult, case: str) -> None:
    read = _nifti(path, result, case)
    if read is None:
        return
    label, label_affine, _ = read
    label = label.reshape(label.shape[:3]) if label.ndim == 4 and label.shape[3] == 1 else label
    if label.ndim != 3:
        return result.problem(f"{path}: a label map must be 3-D, found shape {label.shape}", case)
    if label.shape != tuple(spatial):
        result.problem(f"{path}: label shape {label.shape} differs from the image's {tuple(spatial)}", case)
    elif not np.allclose(label_affine, affine, atol=1e-3):
        result.problem(f"{path}: label affine differs from the image's (origin, spacing or orientation)", case)
    values = np.unique(label)
    result.values("label values", values)
    unknown = fmt.unknown_labels(values)
    if unknown:
        result.problem(f"{path}: label values {unknown} are not {fmt.name} labels {list(fmt.labels)}", case)


def _brats_case(case: dict, fmt, result: ValidationResult) -> None:
    cid = case["case_id"]
    paths = case["image"] if isinstance(case["image"], list) else [case["image"]]
    volumes = []
    for path in paths:
        read = _nifti(path, result, cid)
        if read is None:
            continue
        data, affine, zooms = read
        _voxel_problems(path, data, result, cid)
        volumes.append((path, data.shape, affine, zooms))
    if len(volumes) != len(paths):
        return  # unreadable modality: recorded; shapes cannot be compared
    if fmt.name == "msd":
        path, shape, affine, zooms = volumes[0]
        if len(shape) != 4 or shape[3] != 4:
            return result.problem(f"{path}: expected a 4-D image with 4 modalities (FLAIR, T1, T1gd, T2), found "
                                  f"shape {shape}", cid)
        spatial = shape[:3]
    else:
        path0, shape0, affine, zooms = volumes[0]
        for path, shape, aff, _ in volumes:
            if len(shape) != 3:
                result.problem(f"{path}: expected a 3-D modality volume, found shape {shape}", cid)
            elif shape != shape0:
                result.problem(f"{path}: shape {shape} differs from the FLAIR's {shape0} ({Path(path0).name})", cid)
            elif not np.allclose(aff, affine, atol=1e-3):
                result.problem(f"{path}: affine differs from the FLAIR's ({Path(path0).name})", cid)
        spatial = shape0[:3]
    result.count("image shapes", "x".join(map(str, spatial)) + (f"x{len(paths)}" if len(paths) > 1 else "x4"))
    result.count("voxel spacing (mm)", "x".join(map(str, zooms)))
    if "label" in case:
        _label(case["label"], spatial, affine, fmt, result, cid)


def _brats_cases(root: Path, dataset_format: str | None, result: ValidationResult) -> tuple[list[dict], object]:
    from monai_app.datasets import brats

    fmt = brats.get_format(brats.resolve_format(root, dataset_format or "auto"))
    result.summary["layout"] = fmt.name
    if fmt.name == "msd":
        cases = brats._msd_cases(root, "train")
        listed = [p for c in cases for p in (c["image"], c.get("label")) if p]
        for missing in (p for p in listed if not Path(p).is_file()):
            result.problem(f"{missing}: listed in dataset.json but does not exist")
        cases = [c for c in cases if Path(c["image"]).is_file() and Path(c.get("label", c["image"])).is_file()]
    else:
        flair = fmt.suffixes[0]
        cases = []
        for folder in sorted({p.parent for p in root.rglob(f"*{flair}.nii*") if brats._visible(p)}):
            try:
                cases.append(brats._per_modality_case(folder, fmt))
            except DatasetError as exc:
                result.problem(str(exc), folder.name)
        unlabelled = [c for c in cases if "label" not in c]
        if unlabelled:
            result.summary["cases without segmentation (not used for training)"] = len(unlabelled)
        cases = [c for c in cases if "label" in c]
    if not cases and not result.problems:
        result.problem(f"{root}: no labelled cases found ({fmt.name} layout)")
    return cases, fmt


# ---------------------------------------------------------------------------------------------------------- 2-D
def _photo(path: str, result: ValidationResult, case: str):
    """``(width, height)`` of a photo decoded in full, or None after recording why it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            result.count("photo modes", im.mode)
            result.count("photo sizes (W x H)", f"{im.width}x{im.height}")
            return im.size
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        result.problem(f"{path}: cannot be read as an image ({type(exc).__name__}: {exc})", case)
        return None


def _mask(path: str, result: ValidationResult, case: str) -> np.ndarray | None:
    """Class ids of a PNG / GIF label image, or None after recording why they cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("P", "L", "1", "I", "I;16"):
                result.problem(f"{path}: a label image holds class ids (palette or gray), found mode {im.mode}", case)
                return None
            return np.asarray(im)
    except Exception as exc:
        result.problem(f"{path}: cannot be read as a label image ({type(exc).__name__}: {exc})", case)
        return None


def _labels_2d(bundle: str, case: dict, size, result: ValidationResult) -> np.ndarray | None:
    from monai_app.datasets import ccp, rle

    cid = case["case_id"]
    if "rle" in case:  # Carvana's train_masks.csv
        try:
            return rle.rle_decode(case["rle"], (size[1], size[0]))
        except (ValueError, IndexError) as exc:
            result.problem(f"train_masks.csv: the run-length mask of {cid} does not decode for a {size[0]}x{size[1]} "
                           f"photo ({exc})", cid)
            return None
    if bundle == "ccp_unet2d":
        try:
            return ccp.load_groundtruth(case["label"])
        except DatasetError as exc:
            result.problem(str(exc), cid)
            return None
    return _mask(case["label"], result, cid)


def _invalid_2d(bundle: str, values: np.ndarray) -> list[int]:
    from monai_app.datasets import camvid, voc

    if bundle == "voc_unet2d":
        return voc.check_label_values(values)
    allowed = {"carvana_unet2d": {0, 1}, "camvid_unet2d": set(range(len(camvid.CLASSES))),
               "ccp_unet2d": set(range(59))}[bundle]
    return [int(v) for v in values if int(v) not in allowed]


def _case_2d(bundle: str, case: dict, result: ValidationResult) -> None:
    cid = case["case_id"]
    size = _photo(case["image"], result, cid)
    if size is None:
        return
    ids = _labels_2d(bundle, case, size, result)
    if ids is None:
        return
    where = case.get("label", f"train_masks.csv ({cid})")
    if ids.shape[:2] != (size[1], size[0]):
        result.problem(f"{where}: label size {ids.shape[1]}x{ids.shape[0]} differs from the photo's "
                       f"{size[0]}x{size[1]} ({Path(case['image']).name})", cid)
    values = np.unique(ids)
    result.values("label values", values)
    invalid = _invalid_2d(bundle, values)
    if invalid:
        result.problem(f"{where}: label values {invalid} are not labels of this dataset", cid)


def _cases_2d(bundle: str, root: Path, result: ValidationResult) -> list[dict]:
    from monai_app.datasets import camvid, carvana, ccp, voc

    if bundle == "carvana_unet2d":
        parts = {"train": lambda: carvana.find_cases(root)}
    elif bundle == "camvid_unet2d":
        layout = camvid.detect_layout(root)
        result.summary["layout"] = layout
        parts = {p: (lambda p=p: camvid.find_cases(root, p, layout)) for p in ("train", "validation", "test")}
    elif bundle == "voc_unet2d":
        parts = {s: (lambda s=s: voc.find_cases(root, s)) for s in ("train", "val")}
    else:
        parts = {"pixel-level": lambda: ccp.find_cases(root)}
    cases: dict[str, dict] = {}
    for part, find in parts.items():
        try:
            found = find()
        except DatasetError as exc:
            result.problem(str(exc))
            continue
        result.summary.setdefault("cases per part", {})[part] = len(found)
        cases.update({c["image"]: c for c in found})  # CamVid's seed layout validates and tests on one folder
    return list(cases.values())


# -------------------------------------------------------------------------------------------------------- public
BUNDLES = ("brats_unet3d", "carvana_unet2d", "camvid_unet2d", "voc_unet2d", "ccp_unet2d")


def validate_dataset(bundle: str, dataset_dir: str | os.PathLike, dataset_format: str | None = None,
                     progress: bool = True) -> ValidationResult:
    """Open every case of ``dataset_dir`` as ``bundle``'s training would, and collect every problem.

    Layout problems (missing folders, no cases, malformed ``dataset.json``) are problems too, not exceptions.
    """
    if bundle not in BUNDLES:
        raise DatasetError(f"no dataset checks for bundle {bundle!r}; available: {', '.join(BUNDLES)}")
    root = Path(dataset_dir)
    result = ValidationResult(bundle, str(root))
    if not root.is_dir():
        result.problem(f"{root}: dataset folder does not exist or is not a folder")
        return result
    try:
        if bundle == "brats_unet3d":
            cases, fmt = _brats_cases(root, dataset_format, result)
            check = lambda case: _brats_case(case, fmt, result)
        else:
            cases = _cases_2d(bundle, root, result)
            check = lambda case: _case_2d(bundle, case, result)
    except DatasetError as exc:
        result.problem(str(exc))
        return result
    result.cases = len(cases)
    for case in _progress(cases, progress, f"validate {bundle}"):
        check(case)
    return result


def format_validation(result: ValidationResult) -> str:
    """A readable summary, then every problem on its own line, then the count."""
    lines = [f"{result.dataset_dir}  ({result.bundle})", f"  cases checked: {result.cases}"]
    for key, value in result.summary.items():
        if isinstance(value, Counter):
            value = ", ".join(f"{k} ({n})" for k, n in value.most_common(8)) + (
                f", ... {len(value) - 8} more" if len(value) > 8 else "")
        elif isinstance(value, set):
            value = " ".join(map(str, sorted(value)))
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        lines.append(f"  {key}: {value}")
    if result.ok:
        return "\n".join(lines + [f"no problems found in {result.cases} cases"])
    lines += ["problems:"] + [f"  {p}" for p in result.problems]
    cases = f" in {len(result.bad_cases)} of {result.cases} cases" if result.bad_cases else ""
    lines.append(f"{len(result.problems)} problem(s){cases}")
    return "\n".join(lines)
