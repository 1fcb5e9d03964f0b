"""The resection cavity (RC) of post-treatment BraTS scans (label 4 of ``brats2023``: BraTS 2024-2025 GLI, MET 2025):
whether a training learns it as a fourth output channel, decided once per run folder (:func:`cavity_channel`).

The cavity is not tumour: outside WT, TC and ET. A network that learns it has four sigmoid outputs (WT, TC, ET, RC);
:class:`monai_app.transforms.brats.BratsRegionsToLabeld` writes label 4 where RC is on and WT off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from monai_app.config import flag
from monai_app.datasets.brats import get_format
from monai_app.errors import DatasetError, UserInputError
from monai_app.files import atomic_write_text

logger = logging.getLogger(__name__)


CAVITY_RECORD = "resection_cavity.json"
"""The run folder's record of :func:`cavity_channel`'s decision, beside ``split.json``."""


def _has_label(path: str, value: int) -> bool:
    """Whether the label map ``path`` holds ``value``; a :class:`DatasetError` naming a file that cannot be read."""
    try:
        return bool((np.asanyarray(nib.load(path).dataobj) == value).any())
    except Exception as exc:  # nibabel raises many kinds for a damaged file
        raise DatasetError(f"{path}: cannot be read as NIfTI ({type(exc).__name__}: {exc})") from exc


def _record_key(dataset_format: str, train: Sequence[Mapping]) -> dict:
    """What a recorded decision was made on: the format and the training cases."""
    ids = "\n".join(sorted(c["case_id"] for c in train))
    return {"dataset_format": dataset_format, "train_cases": len(train),
            "train_ids_sha1": hashlib.sha1(ids.encode()).hexdigest()}


def _recorded(path: Path, key: dict) -> bool | None:
    """The decision recorded in ``path`` for ``key``, or None (no record, another key, an unreadable file)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same = isinstance(record, dict) and all(record.get(k) == v for k, v in key.items())
    return record["resection_cavity"] if same and isinstance(record.get("resection_cavity"), bool) else None


def cavity_channel(resection_cavity: bool | str, dataset_format: str, train: Sequence[Mapping],
                   output_dir: str | os.PathLike) -> bool:
    """Whether the network learns a resection-cavity (RC) output channel, a fourth after WT, TC and ET.

    ``resection_cavity`` ``true`` / ``false`` decides; ``auto`` is true when the format has a cavity label
    (``brats2023``: 4) and a training label map holds it. The decision is kept in ``output_dir/``
    :data:`CAVITY_RECORD` with the training cases it was made on, so a resumed training and the evaluation of the run
    agree with its checkpoint, and the labels are read once (up to the first that holds the cavity). Formats without
    a cavity label need no reading and leave no record.

    Args:
        resection_cavity: ``auto``, or a switch (``true``, ``false``, ...).
        dataset_format: the layout's name (resolved, not ``auto``).
        train: the training datalist (``case_id``, ``label``).
        output_dir: the run folder.

    Raises:
        UserInputError: ``resection_cavity`` is no switch, or true for a format without a cavity label.
        DatasetError: a label file cannot be read.
    """
    fmt = get_format(dataset_format)
    auto = str(resection_cavity).strip().lower() == "auto"
    wanted = None if auto else flag(resection_cavity, "resection_cavity")
    if wanted and fmt.cavity is None:
        raise UserInputError(f"--resection_cavity true: {fmt.name} labels have no resection cavity (brats2023 has: "
                             "label 4)")
    if fmt.cavity is None:
        return False
    path, key = Path(output_dir) / CAVITY_RECORD, _record_key(fmt.name, train)
    recorded = _recorded(path, key)
    if auto and recorded is not None or wanted is not None and wanted == recorded:
        return recorded
    if auto:
        logger.info("looking for the resection cavity (label %d) in %d training label maps (once: the answer is kept "
                    "in %s)", fmt.cavity, len(train), path)
        found = next((c["case_id"] for c in train if "label" in c and _has_label(c["label"], fmt.cavity)), None)
        wanted = found is not None
        reason = f"auto: label {fmt.cavity} in {found}" if found else f"auto: no training label holds {fmt.cavity}"
    else:
        reason = f"resection_cavity {str(wanted).lower()}"
    logger.info("resection cavity (RC) output channel %s (%s)", "on: 4 output channels" if wanted else
                "off: 3 output channels", reason)
    atomic_write_text(path, json.dumps({"resection_cavity": wanted, "decided_by": reason, **key}, indent=1) + "\n")
    return wanted
