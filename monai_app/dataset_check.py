"""Check a dataset folder before training: every case opened in full, every problem listed (not only the first).

``monai-app validate <bundle> --dataset-dir DIR`` lists the cases with the listing code of the loaders training
uses (``monai_app.datasets.<format>``), then decodes every file (so truncated or corrupt files are found) and checks
what the format requires: channels, shapes and affines that agree, label values of the format's convention (see
``DATASETS.md``), finite and non-empty volumes, photo and mask sizes. Layout problems (a missing folder, a malformed
``dataset.json``, no cases) are reported as problems too, never raised.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from monai_app.errors import DatasetError, UserInputError

BUNDLES = ("brats_unet3d", "carvana_unet2d", "camvid_unet2d", "voc_unet2d", "ccp_unet2d")
# What ``dataset_format`` may name per bundle: the BraTS label convention, Carvana's mask source, CamVid's layout.
FORMATS = {"brats_unet3d": ("auto", "msd", "brats2021", "brats2023"), "carvana_unet2d": ("auto", "gif", "csv"),
           "camvid_unet2d": ("auto", "seed", "segnet"), "voc_unet2d": ("auto",), "ccp_unet2d": ("auto",)}
ALLOWED_2D = {"carvana_unet2d": "Carvana masks hold 0 and 1", "camvid_unet2d": "CamVid labels are 0..11",
              "voc_unet2d": "VOC labels are 0..20 and void 255", "ccp_unet2d": "CCP tags are 0..58"}
RGB_MODES = ("RGB",)  # photos in any other mode are converted on load (monai_app.transforms.images2d.to_rgb): a note


@dataclass
class ValidationResult:
    """What :func:`validate_dataset` found.

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
        return not self.problems

    def problem(self, text: str, case: str | None = None) -> None:
        self.problems.append(text)
        if case is not None:
            self.bad_cases.add(case)
            self.case_problems += 1

    def count(self, key: str, value) -> None:
        self.summary.setdefault(key, Counter())[str(value)] += 1

    def values(self, key: str, values) -> None:
        self.summary.setdefault(key, set()).update(int(v) if float(v).is_integer() else float(v) for v in values)

    def note(self, text: str) -> None:
        self.summary.setdefault("notes", []).append(text)


def _distinct(data: np.ndarray) -> np.ndarray:
    """The distinct values of ``data`` (a bincount for 8-bit ids, much faster than sorting a volume)."""
    if data.dtype in (np.uint8, np.bool_):
        return np.flatnonzero(np.bincount(data.reshape(-1).view(np.uint8), minlength=1))
    return np.unique(data)


def _exists(path: str | None, what: str, result: ValidationResult, case: str) -> bool:
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


def _labels_2d(bundle: str, case: dict, size, result: ValidationResult) -> np.ndarray | None:
    from monai_app.datasets import ccp, rle

    cid = case["case_id"]
    if "rle" in case:  # Carvana's train_masks.csv
        try:
            return rle.rle_decode(case["rle"], (size[1], size[0]))
        except ValueError as exc:
            result.problem(f"train_masks.csv: the run-length mask of {cid} does not decode for its {size[0]}x{size[1]} "
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
    from monai_app.datasets import camvid, ccp, voc

    if bundle == "voc_unet2d":
        return voc.check_label_values(values)
    allowed = {"carvana_unet2d": {0, 1}, "camvid_unet2d": set(range(len(camvid.CLASSES))),
               "ccp_unet2d": set(range(ccp.NUM_TAGS))}[bundle]
    return [int(v) for v in values if int(v) not in allowed]


def _case_2d(bundle: str, case: dict, result: ValidationResult) -> None:
    cid = case["case_id"]
    what = {"carvana_unet2d": "mask", "ccp_unet2d": "pixel-level annotation"}.get(bundle, "annotation")
    photo_ok = _exists(case["image"], f"the photo of {case.get('label', cid)}", result, cid)
    if "rle" in case and case["rle"] is None:
        result.problem(f"train_masks.csv: no row for {Path(case['image']).name}", cid)
        label_ok = False
    else:
        label_ok = "rle" in case or _exists(case["label"], f"the {what} of {Path(case['image']).name}", result, cid)
    size = _photo(case["image"], result, cid) if photo_ok else None
    if size is None or not label_ok:
        if label_ok and "label" in case:  # no photo to compare with: still find an unreadable label
            _labels_2d(bundle, case, (0, 0), result)
        return
    ids = _labels_2d(bundle, case, size, result)
    if ids is None:
        return
    where = case.get("label", f"train_masks.csv ({cid})")
    if ids.shape[:2] != (size[1], size[0]):
        result.problem(f"{where}: label size {ids.shape[1]}x{ids.shape[0]} differs from the photo's "
                       f"{size[0]}x{size[1]} ({Path(case['image']).name})", cid)
    values = _distinct(ids)
    result.values("label values", values)
    invalid = _invalid_2d(bundle, values)
    if invalid:
        result.problem(f"{where}: label values {invalid} are not labels of this dataset ({ALLOWED_2D[bundle]})", cid)


def _parts_2d(bundle: str, root: Path, dataset_format: str | None, result: ValidationResult) -> dict:
    """``{part: lister}`` of the bundle's loader, each lister returning the part's cases."""
    from monai_app.datasets import camvid, carvana, ccp, voc

    fmt = dataset_format or "auto"
    if bundle == "carvana_unet2d":
        def train() -> list[dict]:
            cases, source = carvana.list_cases(root, fmt)
            result.summary["mask source"] = "train_masks/*.gif" if source == "gif" else "train_masks.csv"
            return cases

        return {"train": train}
    if bundle == "camvid_unet2d":
        layout = camvid.detect_layout(root) if fmt == "auto" else fmt
        result.summary["layout"] = layout
        if layout == "seed":
            result.note("seed layout: images_prepped_test/ serves as both validation and test set (checked once)")
        return {p: (lambda p=p: camvid.list_cases(root, p, layout)) for p in ("train", "validation", "test")}
    if bundle == "voc_unet2d":
        result.summary["VOC2012 folder"] = str(voc.find_root(root))
        return {s: (lambda s=s: voc.list_cases(root, s)) for s in ("train", "val")}
    _ccp_label_list(root, result)
    return {"pixel-level": lambda: ccp.list_cases(root)}


def _ccp_label_list(root: Path, result: ValidationResult) -> None:
    """The tag names of ``label_list.mat`` checked against the bundle's grouping, as training does."""
    from monai_app.datasets import ccp
    from monai_app.config import bundle_path

    if not (root / ccp.LABEL_LIST).is_file():
        return result.note(f"no {ccp.LABEL_LIST}: the tag names cannot be checked against the grouping")
    try:
        ccp.dataset_grouping(root, bundle_path("ccp_unet2d") / "configs" / "ccp_59_to_14.json")
        result.summary["tag names"] = f"{ccp.NUM_TAGS} in {ccp.LABEL_LIST}, matching the bundle's grouping"
    except DatasetError as exc:
        result.problem(str(exc))


def _cases_2d(bundle: str, root: Path, dataset_format: str | None, result: ValidationResult) -> list[dict]:
    cases: dict[str, dict] = {}
    for part, find in _parts_2d(bundle, root, dataset_format, result).items():
        try:
            found = find()
        except DatasetError as exc:
            result.problem(str(exc))
            continue
        result.summary.setdefault("cases per part", {})[part] = len(found)
        shared = sum(c["image"] in cases for c in found)
        if shared and bundle == "voc_unet2d":
            result.note(f"{shared} id(s) of {part}.txt are also in an earlier list (checked once)")
        for case in found:  # CamVid's seed layout validates and tests on one folder
            cases.setdefault(case["image"], {**case, "part": part})
    return list(cases.values())


def _photo_notes(result: ValidationResult) -> None:
    modes = result.summary.get("photo modes", Counter())
    other = {m: n for m, n in modes.items() if m not in RGB_MODES}
    if other:
        modes = ", ".join(f"{m}: {n}" for m, n in other.items())
        result.note(f"{sum(other.values())} photo(s) are not 8-bit RGB ({modes}): training converts them to RGB")


# -------------------------------------------------------------------------------------------------------- public
def validate_dataset(bundle: str, dataset_dir: str | os.PathLike, dataset_format: str | None = None,
                     progress: bool = True) -> ValidationResult:
    """Open every case of ``dataset_dir`` as ``bundle``'s training would list it, and collect every problem.

    Args:
        bundle: one of :data:`BUNDLES`.
        dataset_dir: the dataset folder as downloaded.
        dataset_format: BraTS ``msd``, ``brats2021``, ``brats2023``; Carvana mask source ``gif`` or ``csv``; CamVid
            layout ``seed`` or ``segnet``; None or ``auto`` detects it as training does.
        progress: a progress bar over cases on a terminal.

    Returns:
        The :class:`ValidationResult`; layout problems (missing folders, no cases, malformed ``dataset.json``) are
        among its problems, not raised.

    Raises:
        UserInputError: an unknown bundle or ``dataset_format``.
    """
    from tqdm import tqdm

    if bundle not in BUNDLES:
        raise UserInputError(f"no dataset checks for bundle {bundle!r}; available: {', '.join(BUNDLES)}")
    if dataset_format not in (None, *FORMATS[bundle]):
        raise UserInputError(f"{bundle}: dataset_format must be one of {', '.join(FORMATS[bundle])}, "
                             f"got {dataset_format!r}")
    root = Path(dataset_dir)
    result = ValidationResult(bundle, str(root))
    if not root.is_dir():
        result.problem(f"{root}: dataset folder does not exist or is not a folder")
        return result
    try:
        if bundle == "brats_unet3d":
            from monai_app.dataset_check_brats import check_brats_case, list_brats_cases

            cases, fmt = list_brats_cases(root, dataset_format, result)
            check = lambda case: check_brats_case(case, fmt, result)  # noqa: E731
        else:
            cases = _cases_2d(bundle, root, dataset_format, result)
            check = lambda case: _case_2d(bundle, case, result)  # noqa: E731
    except DatasetError as exc:
        result.problem(str(exc))
        return result
    result.cases = len(cases)
    if bundle == "brats_unet3d":
        result.summary["cases per part"] = dict(Counter(c["part"] for c in cases))
    for case in tqdm(cases, desc=f"validate {bundle}", unit="case", disable=None if progress else True, leave=False):
        try:
            check(case)
        except Exception as exc:  # a file no check foresaw must not hide the problems of the other cases
            result.problem(f"{case['case_id']}: cannot be checked ({type(exc).__name__}: {exc})", case["case_id"])
    _photo_notes(result)
    return result


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def format_validation(result: ValidationResult) -> str:
    """A readable summary, then every problem on its own line, then the count."""
    lines = [f"{result.dataset_dir}  ({result.bundle})", f"  cases checked: {result.cases}"]
    for key, value in result.summary.items():
        if key == "notes":
            continue
        if isinstance(value, Counter):
            value = ", ".join(f"{k} ({n})" for k, n in value.most_common(8)) + (
                f", ... {len(value) - 8} more" if len(value) > 8 else "")
        elif isinstance(value, set):
            value = " ".join(map(str, sorted(value)))
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        lines.append(f"  {key}: {value}")
    lines += [f"  note: {n}" for n in result.summary.get("notes", [])]
    if result.ok:
        return "\n".join(lines + [f"no problems found in {_plural(result.cases, 'case')}"])
    lines += ["problems:"] + [f"  {p}" for p in result.problems]
    count = _plural(len(result.problems), "problem")
    if result.bad_cases:
        cases = f"in {len(result.bad_cases)} of {_plural(result.cases, 'case')}"
        layout = len(result.problems) - result.case_problems
        count += f" {cases}" if not layout else f" ({result.case_problems} {cases}, {layout} about the whole dataset)"
    return "\n".join(lines + [count])


# ------------------------------------------------------------------------------------------- before training
def _fingerprint(root: Path) -> list:
    """Every file under ``root`` as (relative path, size, modification time): what a cached check is valid for."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append([str(path.relative_to(root)), stat.st_size, int(stat.st_mtime_ns)])
    return files


def check_before_training(bundle: str, dataset_dir: str | os.PathLike, dataset_format: str | None = None,
                          output_dir: str | os.PathLike | None = None, enabled: bool = True) -> None:
    """Fail fast, before the first epoch, with the list of every problem :func:`validate_dataset` finds.

    A clean result is remembered in ``output_dir/dataset_check.json`` with the size and time of every file, so a
    resumed or repeated run on an unchanged folder does not read the whole dataset again.

    Raises:
        UserInputError: ``output_dir`` cannot be written to (checked even when ``enabled`` is false).
        DatasetError: the dataset has problems; the message lists them (as ``monai-app validate`` prints them).
    """
    import json
    import logging

    from monai_app.files import atomic_write_text, check_output_dir
    from monai_app.config import flag

    if output_dir is not None:
        check_output_dir(output_dir)
    if not flag(enabled, "validate_data"):
        return
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset_dir does not exist or is not a folder")
    record = Path(output_dir) / "dataset_check.json" if output_dir is not None else None
    key = {"bundle": bundle, "dataset_dir": str(root.resolve()), "dataset_format": dataset_format}
    fingerprint = _fingerprint(root)
    if record is not None and record.is_file():
        try:
            saved = json.loads(record.read_text())
            if saved.get("key") == key and saved.get("files") == fingerprint:
                return
        except (OSError, ValueError):
            pass
    log = logging.getLogger(__name__)
    log.info("checking %s before training (every case is read once; `--validate_data false` skips this)", root)
    result = validate_dataset(bundle, root, None if dataset_format == "auto" else dataset_format)
    if not result.ok:
        if len(result.problems) == 1:
            raise DatasetError(f"{result.problems[0]} (training did not start)")
        shown = result.problems[:20]
        more = f"\n  ... and {len(result.problems) - 20} more (`monai-app validate {bundle} --dataset-dir {root}` " \
            "lists them all)" if len(result.problems) > 20 else ""
        raise DatasetError(f"{root}: {_plural(len(result.problems), 'problem')} in the dataset; training did not "
                           "start:\n  " + "\n  ".join(shown) + more)
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, json.dumps({"key": key, "cases": result.cases, "files": fingerprint}))
    log.info("%s: no problems found in %s", root, _plural(result.cases, "case"))
