"""What the dataset checks of ``monai-app validate`` share: the result they fill in, the readers that decode a file in
full (photos, label images, NIfTI volumes) and record why one cannot be read, and the check of one 2-D case.

Each dataset module carries its own checks (``cases_to_check`` and ``check_case``) built on these;
:mod:`monai_app.dataset_check` runs them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from monai_app.errors import DatasetError

RGB_MODES = ("RGB",)  # photos in any other mode are converted on load (monai_app.transforms.images2d.to_rgb): a note


@dataclass
class ValidationResult:
    """What a dataset check found.

    Attributes:
        bundle: the bundle whose loaders listed the cases.
        dataset_dir: the folder checked.
        summary: layout, cases per part, shapes or sizes seen (``Counter`` of value -> cases), channels, label values
            found (a set), voxel spacing, and ``notes`` (observations that are not problems).
        problems: one line per problem, naming the file (or case folder) and what is wrong.
        bad_cases: ids of the cases with at least one problem.
        cases: number of cases listed and checked.
        case_problems: how many of ``problems`` belong to a case (the others concern the layout).
        missing_folders: folders reported missing once, instead of each file they should hold.
    """

    bundle: str
    dataset_dir: str
    summary: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    bad_cases: set = field(default_factory=set)
    cases: int = 0
    case_problems: int = 0
    missing_folders: set = field(default_factory=set, repr=False)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    def problem(self, text: str, case: str | None = None) -> None:
        """Record a problem, of ``case`` when given (else of the whole dataset)."""
        self.problems.append(text)
        if case is not None:
            self.bad_cases.add(case)
            self.case_problems += 1

    def count(self, key: str, value) -> None:
        """Count one more case with ``value`` under the summary's ``key``."""
        self.summary.setdefault(key, Counter())[str(value)] += 1

    def values(self, key: str, values) -> None:
        """Add ``values`` (integers kept as int) to the set under the summary's ``key``."""
        self.summary.setdefault(key, set()).update(int(v) if float(v).is_integer() else float(v) for v in values)

    def note(self, text: str) -> None:
        """Record an observation that is not a problem."""
        self.summary.setdefault("notes", []).append(text)


def distinct_values(data: np.ndarray) -> np.ndarray:
    """The distinct values of ``data`` (a bincount for 8-bit ids, much faster than sorting a volume)."""
    if data.dtype in (np.uint8, np.bool_):
        return np.flatnonzero(np.bincount(data.reshape(-1).view(np.uint8), minlength=1))
    return np.unique(data)


def values_outside(values: Iterable, allowed: Iterable[int]) -> list[int]:
    """The values among ``values`` that are not in ``allowed``, as ints, in the order given."""
    allowed = set(allowed)
    return [int(v) for v in values if int(v) not in allowed]


def file_exists(path: str | None, what: str, result: ValidationResult, case: str) -> bool:
    """Whether ``path`` is a file; if not, a problem for it, or one for its folder when the folder is missing."""
    if path is not None and Path(path).is_file():
        return True
    folder = Path(str(path)).parent
    if folder.is_dir():
        result.problem(f"{path}: does not exist ({what})", case)
    elif folder not in result.missing_folders:
        result.missing_folders.add(folder)
        result.problem(f"{folder}: folder does not exist, so neither do {Path(str(path)).name} ({what}) and the "
                       "other files listed in it", case)
    else:
        result.bad_cases.add(case)
    return False


def merge_parts(parts: dict[str, Callable[[], list[dict]]], result: ValidationResult,
                shared_note: str | None = None) -> list[dict]:
    """The cases of every part, each file checked once, counted per part in the summary.

    Args:
        parts: ``{part: lister}``, each lister returning the part's cases (a DatasetError is recorded as a problem).
        result: where problems and counts go.
        shared_note: a note for cases already listed by an earlier part, formatted with ``n`` and ``part``.
    """
    cases: dict[str, dict] = {}
    for part, find in parts.items():
        try:
            found = find()
        except DatasetError as exc:
            result.problem(str(exc))
            continue
        result.summary.setdefault("cases per part", {})[part] = len(found)
        shared = sum(c["image"] in cases for c in found)
        if shared and shared_note:
            result.note(shared_note.format(n=shared, part=part))
        for case in found:  # CamVid's seed layout validates and tests on one folder
            cases.setdefault(case["image"], {**case, "part": part})
    return list(cases.values())


# ---------------------------------------------------------------------------------------------------------- 2-D
def read_photo(path: str, result: ValidationResult, case: str) -> tuple[int, int] | None:
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


def read_label_image(path: str, result: ValidationResult, case: str) -> np.ndarray | None:
    """Class ids of a PNG / GIF label image (palette indices, as the loaders read them), or None after recording
    why they cannot be read."""
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


def label_image_of(case: dict, size: tuple[int, int], result: ValidationResult) -> np.ndarray | None:
    """The class ids of ``case["label"]``, a label image (``size``, the photo's, is not needed to read it)."""
    return read_label_image(case["label"], result, case["case_id"])


def check_2d_case(case: dict, result: ValidationResult, read_labels: Callable, invalid_labels: Callable,
                  allowed: str, what: str = "annotation", no_labels: str | None = None) -> None:
    """Check one photo and its labels: both exist and decode, their sizes agree, every value is a label.

    Args:
        case: ``{"case_id", "image", "label"}``; without ``"label"`` the labels are held in the case itself (read by
            ``read_labels``) and named ``case["where"]`` in messages.
        result: where problems and the summary go.
        read_labels: ``(case, (width, height) of the photo, result)`` -> (H, W) class ids, or None after recording
            why they cannot be read.
        invalid_labels: distinct label values -> those that are no label of the dataset.
        allowed: the dataset's labels in words, for the message (``CamVid labels are 0..11``).
        what: what the label file is called in messages.
        no_labels: a problem to record instead of looking for labels (the case has none).
    """
    cid, image = case["case_id"], case["image"]
    photo_ok = file_exists(image, f"the photo of {case.get('label', cid)}", result, cid)
    if no_labels is not None:
        result.problem(no_labels, cid)
        label_ok = False
    else:
        label_ok = "label" not in case or file_exists(case["label"], f"the {what} of {Path(image).name}", result, cid)
    size = read_photo(image, result, cid) if photo_ok else None
    if size is None or not label_ok:
        if label_ok and "label" in case:  # no photo to compare with: still find an unreadable label
            read_labels(case, (0, 0), result)
        return
    ids = read_labels(case, size, result)
    if ids is None:
        return
    where = case.get("label", case.get("where"))
    if ids.shape[:2] != (size[1], size[0]):
        result.problem(f"{where}: label size {ids.shape[1]}x{ids.shape[0]} differs from the photo's "
                       f"{size[0]}x{size[1]} ({Path(image).name})", cid)
    values = distinct_values(ids)
    result.values("label values", values)
    invalid = invalid_labels(values)
    if invalid:
        result.problem(f"{where}: label values {invalid} are not labels of this dataset ({allowed})", cid)


def photo_notes(result: ValidationResult) -> None:
    """A note counting the photos that are not 8-bit RGB (training converts them)."""
    modes = result.summary.get("photo modes", Counter())
    other = {m: n for m, n in modes.items() if m not in RGB_MODES}
    if other:
        modes = ", ".join(f"{m}: {n}" for m, n in other.items())
        result.note(f"{sum(other.values())} photo(s) are not 8-bit RGB ({modes}): training converts them to RGB")


# ---------------------------------------------------------------------------------------------------------- 3-D
def read_nifti(path: str, result: ValidationResult, case: str) -> tuple[np.ndarray, np.ndarray, tuple] | None:
    """``(data, affine, zooms)`` of a NIfTI file read in full, or None after recording why it cannot be read."""
    import nibabel as nib

    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # truncated gzip (EOFError, zlib.error), not NIfTI (ImageFileError), I/O errors
        result.problem(f"{path}: cannot be read as NIfTI ({type(exc).__name__}: {exc})", case)
        return None
    return data, img.affine, tuple(round(float(z), 3) for z in img.header.get_zooms()[:3])


def voxel_problems(path: str, data: np.ndarray, result: ValidationResult, case: str,
                   names: tuple[str, ...] | None = None) -> None:
    """Record NaN / infinite voxels, an all-zero volume, or (4-D with ``names``) an all-zero modality."""
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
