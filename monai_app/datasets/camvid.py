"""CamVid street scenes on disk: the seed's prepared ``dataset1`` layout and SegNet's layout (same files).

| part       | seed layout                                          | SegNet layout         |
|------------|------------------------------------------------------|-----------------------|
| train      | ``images_prepped_train/``, ``annotations_prepped_train/`` | ``train/``, ``trainannot/`` |
| validation | ``images_prepped_test/``, ``annotations_prepped_test/``   | ``val/``, ``valannot/``     |
| test       | ``images_prepped_test/`` (the seed scores this set; it is SegNet's val) | ``test/``, ``testannot/`` |

Annotations are grayscale PNGs of ids 0..11; 11 is void (unlabelled), which the published 11-class protocol
ignores.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from monai_app.datasets.checks import ValidationResult, check_2d_case, label_image_of, merge_parts, values_outside
from monai_app.datasets.images import images_in, save_split
from monai_app.errors import DatasetError

logger = logging.getLogger(__name__)

CLASSES = ("sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian",
           "bicyclist", "void")
VOID = 11
# SegNet's CamVid colours, in id order (void black).
PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
           (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192), (0, 0, 0))
LAYOUTS = {
    "seed": {"train": ("images_prepped_train", "annotations_prepped_train"),
             "validation": ("images_prepped_test", "annotations_prepped_test"),
             "test": ("images_prepped_test", "annotations_prepped_test")},
    "segnet": {"train": ("train", "trainannot"), "validation": ("val", "valannot"), "test": ("test", "testannot")},
}


def num_classes(ignore_void: bool) -> int:
    """Classes the model predicts: 11 when void is ignored (the published protocol), else all 12 (the seed's)."""
    return VOID if ignore_void else len(CLASSES)


def class_names(ignore_void: bool) -> list[str]:
    return list(CLASSES[: num_classes(ignore_void)])


def detect_layout(dataset_dir: str | os.PathLike) -> str:
    """``seed`` or ``segnet``, from the folder names."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset_dir does not exist or is not a folder")
    for name, parts in LAYOUTS.items():
        if all((root / folder).is_dir() for folder in parts["train"]):
            return name
    raise DatasetError(f"{root}: not a CamVid folder: expected images_prepped_train/ + annotations_prepped_train/ "
                       "(seed layout) or train/ + trainannot/ (SegNet layout)")


def list_cases(dataset_dir: str | os.PathLike, part: str = "train", layout: str = "auto") -> list[dict]:
    """``[{"case_id", "image", "label"}]`` of one part, sorted by id; an image without its annotation gets the
    annotation's expected path (``<label folder>/<stem>.png``, which does not exist: :func:`find_cases` checks).

    Raises:
        DatasetError: unknown layout or part, or a missing folder.
    """
    root = Path(dataset_dir)
    layout = detect_layout(root) if layout == "auto" else layout
    if layout not in LAYOUTS or part not in LAYOUTS[layout]:
        raise DatasetError(f"unknown CamVid layout/part {layout!r}/{part!r}: layouts {sorted(LAYOUTS)}, parts "
                           "train, validation, test")
    image_dir, label_dir = (root / f for f in LAYOUTS[layout][part])
    images = images_in(image_dir, f"CamVid {part} image folder")
    labels = images_in(label_dir, f"CamVid {part} annotation folder")
    return [{"case_id": s, "image": str(p), "label": str(labels.get(s, label_dir / f"{s}.png"))}
            for s, p in images.items()]


def find_cases(dataset_dir: str | os.PathLike, part: str = "train", layout: str = "auto") -> list[dict]:
    """``[{"case_id", "image", "label"}]`` of one part (``train``, ``validation``, ``test``), sorted by id.

    Raises:
        DatasetError: unknown layout or part, a missing folder, or an image without its annotation.
    """
    cases = list_cases(dataset_dir, part, layout)
    missing = [c["case_id"] for c in cases if not Path(c["label"]).is_file()]
    if missing:
        label_dir, image_dir = Path(cases[0]["label"]).parent, Path(cases[0]["image"]).parent
        raise DatasetError(f"{label_dir}: {len(missing)} image(s) of {image_dir.name}/ have no annotation "
                           f"(e.g. {missing[:3]})")
    return cases


def make_datalists(dataset_dir: str | os.PathLike, output_dir: str | os.PathLike,
                   layout: str = "auto") -> dict[str, list[dict]]:
    """Datalists ``{"train", "validation", "test"}`` of the layout's own split, recorded in ``split.json``."""
    layout = detect_layout(dataset_dir) if layout == "auto" else layout
    split = {part: find_cases(dataset_dir, part, layout) for part in ("train", "validation", "test")}
    if layout == "seed":
        logger.info("seed layout: images_prepped_test/ (SegNet's val split) serves as validation and test set")
    save_split(output_dir, split, layout=layout)
    logger.info("CamVid (%s layout): %s", layout, {k: len(v) for k, v in split.items()})
    return split


def cases_to_check(root: Path, dataset_format: str | None, result: ValidationResult) -> list[dict]:
    """Every image of the train, validation and test parts with its annotation (each file once), the layout in the
    summary.

    Args:
        root: the dataset folder.
        dataset_format: the layout, ``seed`` or ``segnet``; None or ``auto`` detects it.
        result: where layout problems, the layout and the cases per part go.

    Raises:
        DatasetError: no CamVid layout is found.
    """
    layout = detect_layout(root) if (dataset_format or "auto") == "auto" else dataset_format
    result.summary["layout"] = layout
    if layout == "seed":
        result.note("seed layout: images_prepped_test/ serves as both validation and test set (checked once)")
    return merge_parts({p: (lambda p=p: list_cases(root, p, layout)) for p in ("train", "validation", "test")}, result)


def check_case(case: dict, result: ValidationResult) -> None:
    """Check one photo of :func:`cases_to_check` and its annotation: both decode, the sizes agree, ids are 0..11."""
    check_2d_case(case, result, label_image_of, lambda values: values_outside(values, range(len(CLASSES))),
                  "CamVid labels are 0..11")
