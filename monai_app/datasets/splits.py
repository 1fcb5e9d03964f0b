"""Seeded case splits, saved once in the run folder and reused (as nnU-Net's splits_final.json)."""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Iterable

from monai_app.errors import DatasetError, UserInputError
from monai_app.files import atomic_write_text

logger = logging.getLogger(__name__)

SPLIT_FILE = "split.json"
PARTS = ("train", "validation", "test")


def split_ids(ids: Iterable[str], seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1) -> dict:
    """Split case ids into train / validation / test, independent of the order the ids come in.

    Ids are sorted, then shuffled with ``seed``; validation and test each get at least one case when there are
    three or more cases, so a held-out score always exists.
    """
    ordered = sorted(set(ids))
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise DatasetError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must sum below 1")
    random.Random(seed).shuffle(ordered)
    n = len(ordered)
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 and n >= 3 else 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 and n >= 3 else 0
    parts = {
        "test": ordered[:n_test],
        "validation": ordered[n_test : n_test + n_val],
        "train": ordered[n_test + n_val :],
    }
    return {k: sorted(parts[k]) for k in PARTS}


def _read_saved(path: Path, what: str):
    """The JSON content of a saved split or folds file, None when there is none; a DatasetError when it is not JSON."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: the saved {what} {'is' if what == 'split' else 'are'} not valid JSON ({e})") from None


def load_saved_split(output_dir: str | os.PathLike, ids: Iterable[str]) -> dict | None:
    """The ids per part of ``output_dir/split.json`` when it exists, else None.

    Raises:
        DatasetError: the file is not valid JSON, lacks a part, or names cases that are not among ``ids``.
    """
    path = Path(output_dir) / SPLIT_FILE
    split = _read_saved(path, "split")
    if split is None:
        return None
    if not isinstance(split, dict) or not all(isinstance(split.get(k, []), list) for k in PARTS):
        raise DatasetError(f"{path}: the saved split must be an object with lists 'train', 'validation', 'test'")
    missing = sorted(set().union(*(split.get(k, []) for k in PARTS)) - set(ids))
    if missing:
        raise DatasetError(
            f"{path}: the saved split names {len(missing)} case(s) not in the dataset (e.g. {missing[:3]}); "
            "use a new output_dir or delete the file"
        )
    logger.info("reusing the split saved in %s", path)
    return {k: split.get(k, []) for k in PARTS}


def load_or_make_split(
    ids: Iterable[str], output_dir: str | os.PathLike, seed: int = 0, val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> dict:
    """Reuse ``output_dir/split.json`` when present (so evaluation scores the cases training held out), else make it.

    Raises:
        DatasetError: the saved split names cases that are not in the dataset.
    """
    ids = sorted(set(ids))
    saved = load_saved_split(output_dir, ids)
    if saved is not None:
        return saved
    split = split_ids(ids, seed, val_fraction, test_fraction)
    atomic_write_text(Path(output_dir) / SPLIT_FILE, json.dumps({"seed": seed, **split}, indent=1) + "\n")
    logger.info("split %d cases: %s (saved in %s)", len(ids), {k: len(v) for k, v in split.items()},
                Path(output_dir) / SPLIT_FILE)
    return split


FOLDS_FILE = "folds.json"


def fold_ids(ids: Iterable[str], seed: int = 0, num_folds: int = 5, test_fraction: float = 0.1) -> dict:
    """Split case ids once into a held-out test part and ``num_folds`` disjoint folds of the rest (nnU-Net's
    5-fold cross-validation), independent of the order the ids come in.

    The test part is the one :func:`split_ids` holds out with the same ``seed`` and ``test_fraction``; the other
    cases, in the same shuffled order, are dealt round-robin into the folds.

    Raises:
        DatasetError: fewer cases outside the test part than folds.
    """
    ordered = sorted(set(ids))
    test = split_ids(ordered, seed, 0.0, test_fraction)["test"]
    held = set(test)
    rest = [i for i in ordered if i not in held]
    random.Random(seed).shuffle(rest)
    if len(rest) < num_folds:
        raise DatasetError(f"{len(ordered)} cases, {len(test)} held out for testing: too few for {num_folds} folds "
                           "(pass a smaller --num_folds)")
    return {"seed": seed, "test": test, "folds": [sorted(rest[k::num_folds]) for k in range(num_folds)]}


def load_saved_folds(root: str | os.PathLike, ids: Iterable[str]) -> dict | None:
    """The content of ``root/folds.json`` (``seed``, ``test``, ``folds``) when it exists, else None.

    Raises:
        DatasetError: the file is not valid JSON, lacks ``test`` or ``folds``, has overlapping folds, or names cases
            that are not among ``ids``.
    """
    path = Path(root) / FOLDS_FILE
    saved = _read_saved(path, "folds")
    if saved is None:
        return None
    saved = saved if isinstance(saved, dict) else {}
    folds = saved.get("folds")
    if not isinstance(saved.get("test"), list) or not isinstance(folds, list) or not folds \
            or not all(isinstance(f, list) for f in folds):
        raise DatasetError(f"{path}: the saved folds must be an object with a list 'test' and a list of lists 'folds'")
    named = [i for part in [saved["test"], *folds] for i in part]
    if len(named) != len(set(named)):
        raise DatasetError(f"{path}: a case is in two folds (or in a fold and the test part); delete the file")
    missing = sorted(set(named) - set(ids))
    if missing:
        raise DatasetError(f"{path}: the saved folds name {len(missing)} case(s) not in the dataset (e.g. "
                           f"{missing[:3]}); use a new output folder or delete the file")
    logger.info("reusing the folds saved in %s", path)
    return {"seed": saved.get("seed"), "test": saved["test"], "folds": folds}


def load_or_make_folds(ids: Iterable[str], root: str | os.PathLike, seed: int = 0, num_folds: int = 5,
                       test_fraction: float = 0.1) -> dict:
    """Reuse ``root/folds.json`` when present (every fold run of ``root`` trains on the same folds and keeps the
    same test cases), else make it with :func:`fold_ids`.

    Raises:
        DatasetError: the saved folds are damaged, name unknown cases, or are not ``num_folds`` folds.
    """
    ids = sorted(set(ids))
    folds = load_saved_folds(root, ids)
    path = Path(root) / FOLDS_FILE
    if folds is None:
        folds = fold_ids(ids, seed, num_folds, test_fraction)
        atomic_write_text(path, json.dumps(folds, indent=1) + "\n")
        logger.info("split %d cases into %d test cases and %d folds of %s (saved in %s)", len(ids),
                    len(folds["test"]), num_folds, [len(f) for f in folds["folds"]], path)
    elif len(folds["folds"]) != num_folds:
        raise DatasetError(f"{path}: holds {len(folds['folds'])} folds, but num_folds is {num_folds}; pass "
                           f"--num_folds {len(folds['folds'])} or use a new output folder")
    return folds


def fold_split(folds: dict, fold: int) -> dict:
    """The train / validation / test ids of fold run ``fold``: validation is fold ``fold``, train the other folds."""
    train = sorted(i for k, part in enumerate(folds["folds"]) if k != fold for i in part)
    return {"train": train, "validation": sorted(folds["folds"][fold]), "test": sorted(folds["test"])}


def load_or_make_fold_split(ids: Iterable[str], output_dir: str | os.PathLike, fold: int, seed: int = 0,
                            num_folds: int = 5, test_fraction: float = 0.1) -> dict:
    """The split of fold run ``fold`` in ``output_dir`` (such as ``runs/brats/fold_0``): its folds come from
    ``folds.json`` in the folds root, ``output_dir``'s parent (made once, shared by every fold), and the split is
    saved as ``output_dir/split.json`` too, so evaluation, reports and packaging of the fold run work unchanged.

    Raises:
        DatasetError: the saved folds are damaged, or ``output_dir/split.json`` holds another split (the folds were
            made again since this run started).
    """
    ids = sorted(set(ids))
    root = Path(os.path.abspath(output_dir)).parent
    split = fold_split(load_or_make_folds(ids, root, seed, num_folds, test_fraction), fold)
    saved = load_saved_split(output_dir, ids)
    path = Path(output_dir) / SPLIT_FILE
    if saved is None:
        atomic_write_text(path, json.dumps({"seed": seed, "fold": fold, "num_folds": num_folds, **split},
                                           indent=1) + "\n")
    elif {k: sorted(v) for k, v in saved.items()} != split:
        raise DatasetError(f"{path}: holds another split than fold {fold} of {root / FOLDS_FILE}; use a new output "
                           "folder or delete the file")
    return split


def folds_test_split(ids: Iterable[str], root: str | os.PathLike) -> dict | None:
    """For a folds root (a folder holding ``folds.json`` and no ``split.json``, as evaluating an ensemble of its
    folds does): the saved test ids, every other case as train and no validation; else None."""
    if (Path(root) / SPLIT_FILE).is_file():
        return None
    ids = sorted(set(ids))
    folds = load_saved_folds(root, ids)
    if folds is None:
        return None
    test = set(folds["test"])
    return {"train": [i for i in ids if i not in test], "validation": [], "test": sorted(test)}


def check_fold(fold: int | str | None, num_folds: int | str = 5) -> int | None:
    """``fold`` as an int (None: no folds), checked against ``num_folds``.

    Raises:
        UserInputError: ``num_folds`` is below 2, or ``fold`` is not a whole number from 0 to ``num_folds`` - 1.
    """
    if fold is None or str(fold).strip().lower() in ("none", "null", ""):
        return None
    try:
        folds = int(str(num_folds))
    except ValueError:
        raise UserInputError(f"--num_folds: expected a whole number, got {num_folds!r}") from None
    if folds < 2:
        raise UserInputError(f"--num_folds {num_folds}: cross-validation needs at least 2 folds")
    try:
        value = int(str(fold))
    except ValueError:
        value = -1
    if not 0 <= value < folds:
        raise UserInputError(f"--fold {fold!r}: expected a fold from 0 to {folds - 1} (num_folds is {folds})")
    return value
