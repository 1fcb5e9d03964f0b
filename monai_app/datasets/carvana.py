"""Carvana Image Masking Challenge on disk (Kaggle layout): ``train/*.jpg`` with masks in ``train_masks/*_mask.gif``
or ``train_masks.csv`` (run-length encoded), and ``submission.csv`` for predictions.

The 16 views of a car share its id (``<car_id>_<NN>``): splits are made over cars, so no car straddles train and
validation.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import numpy as np

from monai_app.datasets.checks import ValidationResult, check_2d_case, label_image_of, merge_parts, values_outside
from monai_app.datasets.images import images_in
from monai_app.datasets.rle import rle_decode, rle_encode
from monai_app.datasets.splits import load_or_make_split
from monai_app.errors import DatasetError
from monai_app.files import atomic_write_text

logger = logging.getLogger(__name__)

CLASSES = ("background", "car")
PALETTE = ((0, 0, 0), (255, 255, 255))
ORIGINAL_SIZE = (1280, 1918)  # (H, W) of every Carvana photo
MASK_SOURCES = ("auto", "gif", "csv")


def car_id(case_id: str) -> str:
    """The car of an image id: ``0cdf5b5d0ce1_04`` -> ``0cdf5b5d0ce1``."""
    return case_id.rsplit("_", 1)[0]


def _gif_masks(root: Path, images: dict[str, Path]) -> list[dict]:
    """Cases with their GIF mask; a missing mask gets its expected path ``train_masks/<id>_mask.gif``."""
    masks = {stem.removesuffix("_mask"): p for stem, p in images_in(root / "train_masks", "train_masks/").items()}
    return [{"case_id": s, "image": str(p), "label": str(masks.get(s, root / "train_masks" / f"{s}_mask.gif"))}
            for s, p in images.items()]


def _csv_masks(root: Path, images: dict[str, Path]) -> list[dict]:
    """Cases with their RLE row of ``train_masks.csv``; an image without a row gets ``"rle": None``."""
    path = root / "train_masks.csv"
    if not path.is_file():
        raise DatasetError(f"{path}: does not exist (needed with mask_source 'csv')")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not {"img", "rle_mask"} <= set(reader.fieldnames or []):
            raise DatasetError(f"{path}: expected the header 'img,rle_mask', found {reader.fieldnames}")
        rles = {Path(row["img"]).stem: row["rle_mask"] or "" for row in reader}
    return [{"case_id": s, "image": str(p), "rle": rles.get(s)} for s, p in images.items()]


def list_cases(dataset_dir: str | os.PathLike, mask_source: str = "auto") -> tuple[list[dict], str]:
    """``(cases, mask source used)``: every training image, sorted by id, with its mask's path or RLE text, whether
    or not the mask exists (a missing GIF keeps its expected path, a missing CSV row ``"rle": None``).

    Raises:
        DatasetError: the folder is not in the Carvana layout.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset_dir does not exist or is not a folder")
    if mask_source not in MASK_SOURCES:
        raise DatasetError(f"mask_source must be one of {MASK_SOURCES}, got {mask_source!r}")
    images = images_in(root / "train", "train/ folder of Carvana images")
    if not images:
        raise DatasetError(f"{root / 'train'}: no images")
    if mask_source == "auto":
        mask_source = "gif" if (root / "train_masks").is_dir() else "csv"
    return (_gif_masks(root, images) if mask_source == "gif" else _csv_masks(root, images)), mask_source


def find_cases(dataset_dir: str | os.PathLike, mask_source: str = "auto") -> list[dict]:
    """The labelled training images, sorted by id: ``{"case_id", "image", "label"}`` with GIF masks, or
    ``{"case_id", "image", "rle"}`` with masks from ``train_masks.csv``.

    Args:
        dataset_dir: the extracted competition folder (holding ``train/`` and ``train_masks/`` or the CSV).
        mask_source: ``gif``, ``csv``, or ``auto`` (the GIFs when ``train_masks/`` exists, else the CSV).

    Raises:
        DatasetError: the folder is not in the Carvana layout, or an image has no mask.
    """
    root = Path(dataset_dir)
    cases, mask_source = list_cases(root, mask_source)
    if mask_source == "gif":
        missing = [c["case_id"] for c in cases if not Path(c["label"]).is_file()]
        if missing:
            raise DatasetError(f"{root / 'train_masks'}: {len(missing)} train image(s) have no '<id>_mask.gif' "
                               f"(e.g. {missing[:3]}); use mask_source 'csv' to read train_masks.csv instead")
    else:
        missing = [c["case_id"] for c in cases if c["rle"] is None]
        if missing:
            raise DatasetError(f"{root / 'train_masks.csv'}: {len(missing)} train image(s) have no row "
                               f"(e.g. {missing[:3]})")
    logger.info("%s: %d labelled images of %d cars (masks from %s)", root, len(cases),
                len({car_id(c["case_id"]) for c in cases}), mask_source)
    return cases


def make_datalists(dataset_dir: str | os.PathLike, output_dir: str | os.PathLike, mask_source: str = "auto",
                   seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1) -> dict[str, list[dict]]:
    """Datalists ``{"train", "validation", "test"}`` split over **cars** with ``seed``; the car ids of each part
    are saved in ``output_dir/split.json`` and reused."""
    cases = find_cases(dataset_dir, mask_source)
    split = load_or_make_split([car_id(c["case_id"]) for c in cases], output_dir, seed, val_fraction, test_fraction)
    return {part: [c for c in cases if car_id(c["case_id"]) in set(cars)] for part, cars in split.items()}


def cases_to_check(root: Path, dataset_format: str | None, result: ValidationResult) -> list[dict]:
    """Every training image with its mask, as :func:`list_cases` finds them (the mask source in the summary).

    Args:
        root: the dataset folder.
        dataset_format: the mask source, ``gif`` or ``csv``; None or ``auto`` picks it as training does.
        result: where layout problems, the mask source and the case count go.
    """
    def train() -> list[dict]:
        """The cases, those with a CSV row named ``train_masks.csv (<id>)`` in messages."""
        cases, source = list_cases(root, dataset_format or "auto")
        result.summary["mask source"] = "train_masks/*.gif" if source == "gif" else "train_masks.csv"
        return [c if "label" in c else {**c, "where": f"train_masks.csv ({c['case_id']})"} for c in cases]

    return merge_parts({"train": train}, result)


def _rle_labels(case: dict, size: tuple[int, int], result: ValidationResult) -> np.ndarray | None:
    """The mask of a ``train_masks.csv`` row decoded for a photo of ``size`` (W, H), or None after recording why
    it does not decode; a GIF mask read as a label image."""
    if "rle" not in case:
        return label_image_of(case, size, result)
    try:
        return rle_decode(case["rle"], (size[1], size[0]))
    except ValueError as exc:
        result.problem(f"train_masks.csv: the run-length mask of {case['case_id']} does not decode for its "
                       f"{size[0]}x{size[1]} photo ({exc})", case["case_id"])
        return None


def check_case(case: dict, result: ValidationResult) -> None:
    """Check one photo of :func:`cases_to_check` and its mask (a GIF or a ``train_masks.csv`` row): both decode,
    the sizes agree, every value is 0 or 1."""
    no_row = f"train_masks.csv: no row for {Path(case['image']).name}" if "rle" in case and case["rle"] is None \
        else None
    check_2d_case(case, result, _rle_labels, lambda values: values_outside(values, (0, 1)),
                  "Carvana masks hold 0 and 1", what="mask", no_labels=no_row)


def write_submission(output_dir: str | os.PathLike, datalist: list[dict], name: str = "submission.csv") -> Path:
    """Write Kaggle's ``submission.csv`` (``img,rle_mask``) from the ``<case_id>.png`` masks in ``output_dir``.

    Raises:
        DatasetError: a mask of the datalist is missing from ``output_dir``.
    """
    from PIL import Image

    out = Path(output_dir)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["img", "rle_mask"])
    for case in sorted(datalist, key=lambda c: c["case_id"]):
        mask_path = out / f"{case['case_id']}.png"
        if not mask_path.is_file():
            raise DatasetError(f"{mask_path}: no predicted mask to encode")
        with Image.open(mask_path) as img:
            writer.writerow([Path(case["image"]).name, rle_encode(np.asarray(img))])
    atomic_write_text(out / name, buffer.getvalue())
    logger.info("wrote %s (%d images)", out / name, len(datalist))
    return out / name
