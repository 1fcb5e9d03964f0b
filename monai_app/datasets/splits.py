"""Seeded case splits, saved once in the run folder and reused (as nnU-Net's splits_final.json)."""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Iterable

from monai_app.errors import DatasetError
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


def load_saved_split(output_dir: str | os.PathLike, ids: Iterable[str]) -> dict | None:
    """The ids per part of ``output_dir/split.json`` when it exists, else None.

    Raises:
        DatasetError: the file is not valid JSON, lacks a part, or names cases that are not among ``ids``.
    """
    path = Path(output_dir) / SPLIT_FILE
    if not path.is_file():
        return None
    try:
        split = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: the saved split is not valid JSON ({e})") from None
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
