"""Pascal VOC 2012 semantic segmentation on disk (the ``VOCdevkit/VOC2012`` folder of the official tar)::

    VOCdevkit/VOC2012/
      JPEGImages/<id>.jpg               RGB photos (ids such as 2007_000032), up to 500 x 500, sizes vary
      SegmentationClass/<id>.png        palette PNG: 0 background, 1-20 the classes, 255 void (outlines, difficult)
      SegmentationObject/<id>.png       instance ids (not used for semantic segmentation)
      ImageSets/Segmentation/train.txt  1464 ids, one a line; val.txt 1449 ids; trainval.txt both
      Annotations/<id>.xml              detection boxes (not used)

The label PNGs hold palette indices: read them as indices (PIL mode "P", as MONAI's PILReader does), never converted
to RGB. The official val set is the benchmark's set with public labels, so it is the test set here; the validation
set that picks the best epoch is a seeded part of train.txt. ``dataset_dir`` may be the folder holding
``VOCdevkit/``, ``VOCdevkit/`` itself or ``VOCdevkit/VOC2012/``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from monai_app.datasets.checks import ValidationResult, check_2d_case, label_image_of, merge_parts
from monai_app.datasets.images import save_split
from monai_app.datasets.splits import PARTS, load_saved_split, split_ids
from monai_app.errors import DatasetError

logger = logging.getLogger(__name__)

CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
           "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
IGNORE = 255  # void: object outlines and difficult objects, ignored by the loss and the metrics
SEGMENTATION_SETS = Path("ImageSets", "Segmentation")
PROTOCOL = "train.txt split into train/validation; official val.txt as test"


def colormap(n: int = 256) -> list[tuple[int, int, int]]:
    """The VOC colours of indices ``0..n-1``: the bits of the index interleaved into the high bits of R, G, B."""
    colours = []
    for index in range(n):
        r = g = b = 0
        c = index
        for j in range(8):
            r |= (c & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours.append((r, g, b))
    return colours


PALETTE = colormap()  # 256 entries, so that void (255) shows as (224, 224, 192)


def find_root(dataset_dir: str | os.PathLike) -> Path:
    """The ``VOC2012`` folder, from itself, from ``VOCdevkit/`` or from the folder holding ``VOCdevkit/``.

    Raises:
        DatasetError: none of the three holds ``ImageSets/Segmentation``.
    """
    base = Path(dataset_dir)
    if not base.is_dir():
        raise DatasetError(f"{base}: dataset_dir does not exist or is not a folder")
    for root in (base, base / "VOC2012", base / "VOCdevkit" / "VOC2012"):
        if (root / SEGMENTATION_SETS).is_dir():
            return root
    raise DatasetError(f"{base}: not a Pascal VOC folder: expected VOCdevkit/VOC2012/ImageSets/Segmentation (give "
                       "the folder holding VOCdevkit/, VOCdevkit/ or VOCdevkit/VOC2012/)")


def read_ids(root: str | os.PathLike, split: str) -> list[str]:
    """The ids listed in ``ImageSets/Segmentation/<split>.txt``, in file order (blank lines and CRLF tolerated).

    Raises:
        DatasetError: the split file does not exist.
    """
    path = find_root(root) / SEGMENTATION_SETS / f"{split}.txt"
    if not path.is_file():
        found = sorted(p.stem for p in path.parent.glob("*.txt"))
        raise DatasetError(f"{path}: split file does not exist (found: {found})")
    return [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]


def list_cases(dataset_dir: str | os.PathLike, split: str = "train") -> list[dict]:
    """``[{"case_id", "image", "label"}]`` of the ids of ``split``, sorted by id, whether or not their files exist
    (:func:`find_cases` checks that they do).

    Raises:
        DatasetError: no VOC folder, or the split file is missing or empty.
    """
    root = find_root(dataset_dir)
    ids = sorted(set(read_ids(root, split)))
    if not ids:
        raise DatasetError(f"{root / SEGMENTATION_SETS / f'{split}.txt'}: lists no ids")
    return [{"case_id": i, "image": str(root / "JPEGImages" / f"{i}.jpg"),
             "label": str(root / "SegmentationClass" / f"{i}.png")} for i in ids]


def find_cases(dataset_dir: str | os.PathLike, split: str = "train") -> list[dict]:
    """``[{"case_id", "image", "label"}]`` of the ids of ``split`` (``train``, ``val``, ``trainval``), sorted by id.

    Raises:
        DatasetError: no VOC folder, the split file is missing or empty, or images or labels of it are missing
            (all of them are counted in one error).
    """
    root = find_root(dataset_dir)
    cases = list_cases(root, split)
    missing = [Path(c[key]).relative_to(root).as_posix() for c in cases for key in ("image", "label")
               if not Path(c[key]).is_file()]
    if missing:
        raise DatasetError(f"{root}: {len(missing)} file(s) of the ids in {SEGMENTATION_SETS.as_posix()}/{split}.txt "
                           f"are missing (e.g. {missing[:3]})")
    return cases


def make_datalists(dataset_dir: str | os.PathLike, output_dir: str | os.PathLike, seed: int = 0,
                   val_fraction: float = 0.1) -> dict[str, list[dict]]:
    """Datalists ``{"train", "validation", "test"}``: test is the official val.txt; train.txt is split with
    ``seed`` into train and validation (for choosing the best epoch). The ids are saved in ``output_dir/split.json``,
    and an existing ``split.json`` is reused instead (so evaluation scores what training held out).

    Raises:
        DatasetError: see :func:`find_cases`; a saved split is malformed or names ids of neither list.
    """
    train, test = find_cases(dataset_dir, "train"), find_cases(dataset_dir, "val")
    shared = sorted({c["case_id"] for c in train} & {c["case_id"] for c in test})
    if shared:  # never in the real lists (the bundled one-image sample lists its image in both)
        logger.warning("%s: %d id(s) are in both train.txt and val.txt (e.g. %s): test scores will be optimistic",
                       find_root(dataset_dir) / SEGMENTATION_SETS, len(shared), shared[:3])
    cases = {c["case_id"]: c for c in train + test}
    saved = load_saved_split(output_dir, cases)
    saved = saved and {k: sorted(v) for k, v in saved.items()}
    ids = saved or {**split_ids([c["case_id"] for c in train], seed, val_fraction, 0.0),
                    "test": [c["case_id"] for c in test]}
    split = {part: [cases[i] for i in ids[part]] for part in PARTS}
    if saved is None:
        save_split(output_dir, split, seed=seed, protocol=PROTOCOL)
    logger.info("Pascal VOC: %s", {k: len(v) for k, v in split.items()})
    return split


def check_label_values(values: Iterable[int] | np.ndarray) -> list[int]:
    """The distinct values among ``values`` that are no VOC label (neither a class 0-20 nor void 255), sorted."""
    valid = set(range(len(CLASSES))) | {IGNORE}
    return [v for v in np.unique(np.asarray(values)).tolist() if v not in valid]


def cases_to_check(root: Path, dataset_format: str | None, result: ValidationResult) -> list[dict]:
    """Every id of ``train.txt`` and ``val.txt`` with its photo and label paths (an id in both checked once), the
    ``VOC2012`` folder in the summary.

    Args:
        root: the dataset folder (holding ``VOCdevkit/``, ``VOCdevkit/`` or ``VOCdevkit/VOC2012/``).
        dataset_format: only None or ``auto`` (one layout).
        result: where layout problems, the folder and the cases per part go.

    Raises:
        DatasetError: no VOC folder is found.
    """
    result.summary["VOC2012 folder"] = str(find_root(root))
    return merge_parts({s: (lambda s=s: list_cases(root, s)) for s in ("train", "val")}, result,
                       shared_note="{n} id(s) of {part}.txt are also in an earlier list (checked once)")


def check_case(case: dict, result: ValidationResult) -> None:
    """Check one photo of :func:`cases_to_check` and its label PNG: both decode, the sizes agree, every value is a
    class 0..20 or void 255."""
    check_2d_case(case, result, label_image_of, check_label_values, "VOC labels are 0..20 and void 255")
