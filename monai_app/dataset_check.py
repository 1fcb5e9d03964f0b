"""Check a dataset folder before training: every case opened in full, every problem listed (not only the first).

``monai-app validate <bundle> --dataset-dir DIR`` lists the cases with the listing code of the loaders training
uses (``monai_app.datasets.<format>``), then decodes every file (so truncated or corrupt files are found) and checks
what the format requires: channels, shapes and affines that agree, label values of the format's convention (see
``docs/DATASETS.md``), finite and non-empty volumes, photo and mask sizes. Layout problems (a missing folder, a
malformed ``dataset.json``, no cases) are reported as problems too, never raised.

This module is the generic driver: :data:`monai_app.datasets.REGISTRY` names each bundle's dataset module, whose
``cases_to_check`` and ``check_case`` (built on :mod:`monai_app.datasets.checks`) do the dataset's own checks.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from collections import Counter
from pathlib import Path

from monai_app.config import flag
from monai_app.datasets import REGISTRY, DatasetEntry
from monai_app.datasets.checks import ValidationResult, photo_notes
from monai_app.errors import DatasetError, UserInputError
from monai_app.files import atomic_write_text, check_output_dir

logger = logging.getLogger(__name__)

BUNDLES = tuple(REGISTRY)  # the bundles whose datasets can be checked, in registry order

__all__ = ["BUNDLES", "ValidationResult", "check_before_training", "format_validation", "validate_dataset"]


def _entry(bundle: str, dataset_format: str | None, options: dict) -> DatasetEntry:
    """The registry entry of ``bundle``, once ``dataset_format`` and the option names are known to suit it."""
    if bundle not in REGISTRY:
        raise UserInputError(f"no dataset checks for bundle {bundle!r}; available: {', '.join(BUNDLES)}")
    entry = REGISTRY[bundle]
    if dataset_format not in (None, *entry.formats):
        raise UserInputError(f"{bundle}: dataset_format must be one of {', '.join(entry.formats)}, "
                             f"got {dataset_format!r}")
    takes = list(inspect.signature(entry.module.cases_to_check).parameters)[3:]
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise UserInputError(f"{bundle}: unknown dataset check option(s) {', '.join(unknown)}; it takes "
                             f"{', '.join(takes) or 'none'}")
    return entry


def validate_dataset(bundle: str, dataset_dir: str | os.PathLike, dataset_format: str | None = None,
                     progress: bool = True, **options) -> ValidationResult:
    """Open every case of ``dataset_dir`` as ``bundle``'s training would list it, and collect every problem.

    Args:
        bundle: one of :data:`BUNDLES`.
        dataset_dir: the dataset folder as downloaded.
        dataset_format: BraTS ``msd``, ``brats2021``, ``brats2023``, ``brats2024ped``; Carvana mask source ``gif`` or
            ``csv``; CamVid layout ``seed`` or ``segnet``; None or ``auto`` detects it as training does.
        progress: a progress bar over cases on a terminal.
        **options: passed to the dataset's ``cases_to_check`` (CCP: ``grouping_file``, the grouping JSON that
            ``label_list.mat`` is checked against, by default the bundle's ``configs/ccp_59_to_14.json``); None
            values count as not given.

    Returns:
        The :class:`ValidationResult`; layout problems (missing folders, no cases, malformed ``dataset.json``) are
        among its problems, not raised.

    Raises:
        UserInputError: an unknown bundle, ``dataset_format`` or option.
    """
    from tqdm import tqdm

    options = {k: v for k, v in options.items() if v is not None}
    module = _entry(bundle, dataset_format, options).module
    root = Path(dataset_dir)
    result = ValidationResult(bundle, str(root))
    if not root.is_dir():
        result.problem(f"{root}: dataset folder does not exist or is not a folder")
        return result
    try:
        cases = module.cases_to_check(root, dataset_format, result, **options)
    except DatasetError as exc:
        result.problem(str(exc))
        return result
    result.cases = len(cases)
    for case in tqdm(cases, desc=f"validate {bundle}", unit="case", disable=None if progress else True, leave=False):
        try:
            module.check_case(case, result)
        except Exception as exc:  # a file no check foresaw must not hide the problems of the other cases
            result.problem(f"{case['case_id']}: cannot be checked ({type(exc).__name__}: {exc})", case["case_id"])
    photo_notes(result)
    return result


def _plural(n: int, word: str) -> str:
    """``1 case``, ``2 cases``."""
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


def _options_key(options: dict) -> dict:
    """The options as JSON values; an option naming a file as its resolved path, size and time (an edit re-checks)."""
    key = {}
    for name, value in sorted(options.items()):
        if isinstance(value, (str, os.PathLike)) and Path(value).is_file():
            stat = Path(value).stat()
            value = [str(Path(value).resolve()), stat.st_size, int(stat.st_mtime_ns)]
        key[name] = json.loads(json.dumps(value, default=str))
    return key


def _record_key(bundle: str, root: Path, dataset_format: str | None, options: dict) -> dict:
    """What a remembered check is valid for, besides the files: the bundle, folder, format and options."""
    return {"bundle": bundle, "dataset_dir": str(root.resolve()), "dataset_format": dataset_format,
            "options": _options_key(options)}


def _checked_before(record: Path | None, key: dict, fingerprint: list) -> bool:
    """Whether ``record`` remembers a clean check of the same key and files."""
    if record is None or not record.is_file():
        return False
    try:
        saved = json.loads(record.read_text())
        return saved.get("key") == key and saved.get("files") == fingerprint
    except (OSError, ValueError, AttributeError):
        return False


def _problems_error(result: ValidationResult, bundle: str, root: Path) -> DatasetError:
    """The error that stops training: the one problem, or the first 20 and how to list them all."""
    if len(result.problems) == 1:
        return DatasetError(f"{result.problems[0]} (training did not start)")
    shown = result.problems[:20]
    more = f"\n  ... and {len(result.problems) - 20} more (`monai-app validate {bundle} --dataset-dir {root}` " \
        "lists them all)" if len(result.problems) > 20 else ""
    return DatasetError(f"{root}: {_plural(len(result.problems), 'problem')} in the dataset; training did not "
                        "start:\n  " + "\n  ".join(shown) + more)


def check_before_training(bundle: str, dataset_dir: str | os.PathLike, dataset_format: str | None = None,
                          output_dir: str | os.PathLike | None = None, enabled: bool = True, **options) -> None:
    """Fail fast, before the first epoch, with the list of every problem :func:`validate_dataset` finds.

    A clean result is remembered in ``output_dir/dataset_check.json`` with the size and time of every file and the
    options, so a resumed or repeated run on an unchanged folder does not read the whole dataset again.

    Args:
        bundle, dataset_dir, dataset_format: as for :func:`validate_dataset` (``auto`` detects the format).
        output_dir: the run folder (checked to be writable; holds ``dataset_check.json``); None: nothing is saved.
        enabled: ``validate_data``: false skips the check.
        **options: passed to :func:`validate_dataset` (CCP: ``grouping_file``).

    Raises:
        UserInputError: ``output_dir`` cannot be written to (checked even when ``enabled`` is false).
        DatasetError: the dataset has problems; the message lists them (as ``monai-app validate`` prints them).
    """
    if output_dir is not None:
        check_output_dir(output_dir)
    if not flag(enabled, "validate_data"):
        return
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset_dir does not exist or is not a folder")
    options = {k: v for k, v in options.items() if v is not None}
    record = Path(output_dir) / "dataset_check.json" if output_dir is not None else None
    key, fingerprint = _record_key(bundle, root, dataset_format, options), _fingerprint(root)
    if _checked_before(record, key, fingerprint):
        return
    logger.info("checking %s before training (every case is read once; `--validate_data false` skips this)", root)
    result = validate_dataset(bundle, root, None if dataset_format == "auto" else dataset_format, **options)
    if not result.ok:
        raise _problems_error(result, bundle, root)
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, json.dumps({"key": key, "cases": result.cases, "files": fingerprint}))
    logger.info("%s: no problems found in %s", root, _plural(result.cases, "case"))
