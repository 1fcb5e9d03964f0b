"""Clothing Co-Parsing (CCP) on disk, and its 59 fine clothing tags grouped into 14 classes for segmentation.

```
photos/0001.jpg ... 2098.jpg                  JPEG RGB, 550 wide, 801-873 high (portrait)
annotations/pixel-level/0001.mat ... 1004.mat  "groundtruth": (H, W) uint8 of tag ids 0..58 (0 = null)
annotations/image-level/1005.mat ... 2098.mat  "tags": (1, n) tag ids of the photo (no pixels)
label_list.mat                                 "label_list": 1 x 59 cell of tag names, "null" first
```

Only the 1004 photos with a pixel-level annotation are used for segmentation; the 1094 with image-level tags only
are left out. The fine tags are mapped to 14 classes by a look-up table kept in a JSON file (the bundle ships
``configs/ccp_59_to_14.json``; see :func:`load_grouping`), so the grouping can be changed without touching code.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from monai_app.config import bundle_path
from monai_app.datasets.checks import ValidationResult, check_2d_case, merge_parts, values_outside
from monai_app.datasets.images import images_in
from monai_app.datasets.splits import load_or_make_split
from monai_app.errors import DatasetError, UserInputError

logger = logging.getLogger(__name__)

NUM_TAGS = 59  # fine tags of label_list.mat, "null" (0) included
PHOTOS = "photos"
PIXEL_LEVEL = "annotations/pixel-level"
IMAGE_LEVEL = "annotations/image-level"
LABEL_LIST = "label_list.mat"
SPLIT = {"train": 704, "validation": 100, "test": 200}  # of the 1004 pixel-level images
# Colours of the 14 classes of the shipped grouping, in class order (background black).
PALETTE = ((0, 0, 0), (128, 64, 0), (250, 190, 150), (255, 215, 0), (160, 32, 240), (0, 100, 0), (30, 144, 255),
           (0, 0, 160), (220, 20, 60), (255, 105, 180), (240, 240, 240), (128, 128, 128), (0, 206, 209),
           (139, 69, 19))


def _loadmat(path: str | os.PathLike, variable: str, what: str) -> np.ndarray:
    """``variable`` of a MATLAB file, or a DatasetError naming the file."""
    from scipy.io import loadmat

    try:
        content = loadmat(str(path), variable_names=[variable])
    except Exception as e:  # scipy raises MatReadError, ValueError, IndexError... on damaged files
        raise DatasetError(f"{path}: cannot read the {what} ({type(e).__name__}: {e})") from None
    if variable not in content:
        raise DatasetError(f"{path}: the {what} has no variable {variable!r}")
    return content[variable]


def read_label_names(path: str | os.PathLike) -> list[str]:
    """The 59 tag names of ``label_list.mat``, ``"null"`` first.

    Raises:
        DatasetError: the file is unreadable, or does not hold 59 names.
    """
    cells = _loadmat(path, "label_list", "label list")
    try:
        names = [str(np.asarray(cell).ravel()[0]) if np.asarray(cell).size else "" for cell in cells.ravel()]
    except (TypeError, IndexError) as e:
        raise DatasetError(f"{path}: 'label_list' is not a cell array of names ({e})") from None
    if len(names) != NUM_TAGS or not all(names):
        raise DatasetError(f"{path}: expected {NUM_TAGS} non-empty tag names in 'label_list', found {len(names)}")
    return names


@dataclass(frozen=True, eq=False)
class Grouping:
    """The mapping of the 59 fine tags to the target classes.

    Attributes:
        classes: the target class names, background first.
        lut: uint8 array of 59 target class ids, indexed by fine tag id.
        by_name: ``{fine tag name: target class name}``, the same mapping by name (may be empty).
        source: the file it was read from, for messages.
    """

    classes: tuple[str, ...]
    lut: np.ndarray
    by_name: dict[str, str] = field(default_factory=dict)
    source: str = "<grouping>"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def apply(self, tags: np.ndarray) -> np.ndarray:
        """Fine tag ids (any shape, 0..58) -> target class ids (uint8)."""
        return self.lut[np.asarray(tags)]

    def check_names(self, label_names: Sequence[str]) -> None:
        """Check that ``by_name`` names every tag of ``label_names`` and agrees with ``lut`` on each.

        Without ``by_name`` only the number of names is checked.

        Raises:
            DatasetError: names the grouping file and every mismatch (missing names, unknown names, lut entries).
        """
        problems = []
        if len(label_names) != len(self.lut):
            problems.append(f"{len(label_names)} tag names for a LUT of {len(self.lut)}")
        missing = [n for n in label_names if n not in self.by_name] if self.by_name else []
        unknown = sorted(set(self.by_name) - set(label_names))
        if missing:
            problems.append(f"by_name lacks {len(missing)} tag(s) {missing[:5]}")
        if unknown:
            problems.append(f"by_name has {len(unknown)} name(s) not in the label list {unknown[:5]}")
        for i, name in enumerate(label_names[: len(self.lut)]):
            target = self.by_name.get(name)
            if target is not None and self.lut[i] != self.classes.index(target):
                problems.append(f"lut[{i}] = {self.lut[i]} ({self.classes[self.lut[i]]}) but by_name[{name!r}] = "
                                f"{target!r} ({self.classes.index(target)})")
        if problems:
            raise DatasetError(f"{self.source}: the grouping does not match the tag names: {'; '.join(problems)}")


def _check_grouping(path: Path, content: object) -> tuple[tuple[str, ...], list, dict]:
    """The (classes, lut, by_name) of a parsed grouping file; DatasetError naming the file and the problem."""
    if not isinstance(content, dict) or not {"target_classes", "lut_59_to_14"} <= set(content):
        raise DatasetError(f"{path}: expected an object with 'target_classes' and 'lut_59_to_14'")
    classes, lut, by_name = content["target_classes"], content["lut_59_to_14"], content.get("by_name", {})
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes) \
            or len(set(classes)) != len(classes):
        raise DatasetError(f"{path}: 'target_classes' must be a list of two or more distinct names, got {classes!r}")
    if not isinstance(lut, list) or len(lut) != NUM_TAGS:
        raise DatasetError(f"{path}: 'lut_59_to_14' must list {NUM_TAGS} class ids (one per tag), "
                           f"found {len(lut) if isinstance(lut, list) else type(lut).__name__}")
    bad = [(i, v) for i, v in enumerate(lut) if isinstance(v, bool) or not isinstance(v, int)
           or not 0 <= v < len(classes)]
    if bad:
        raise DatasetError(f"{path}: 'lut_59_to_14' values must be class ids 0..{len(classes) - 1}; "
                           f"{len(bad)} are not (index, value: {bad[:3]})")
    if not isinstance(by_name, dict) or not all(isinstance(v, str) for v in by_name.values()):
        raise DatasetError(f"{path}: 'by_name' must map tag names to class names")
    unknown = sorted({v for v in by_name.values() if v not in classes})
    if unknown:
        raise DatasetError(f"{path}: 'by_name' maps to class(es) not in 'target_classes': {unknown}")
    return tuple(classes), lut, by_name


def load_grouping(path: str | os.PathLike) -> Grouping:
    """Read a grouping JSON: ``target_classes`` (names), ``lut_59_to_14`` (59 class ids), optional ``by_name``.

    Raises:
        DatasetError: the file is missing or not valid JSON, or its content is inconsistent (see
            :meth:`Grouping.check_names` for the check against a label list).
    """
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the grouping file ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: the grouping file is not valid JSON ({e})") from None
    classes, lut, by_name = _check_grouping(path, content)
    table = np.asarray(lut, dtype=np.uint8)
    table.flags.writeable = False
    return Grouping(classes, table, dict(by_name), str(path))


def _mats_in(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the visible ``.mat`` files in ``folder``, sorted."""
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() == ".mat" and not p.name.startswith((".", "_"))}


def list_cases(dataset_dir: str | os.PathLike) -> list[dict]:
    """``[{"case_id", "image", "label"}]`` of every pixel-level annotation, sorted by id, whether or not its photo
    exists (a missing photo keeps its expected path ``photos/<id>.jpg``; :func:`find_cases` checks).

    Raises:
        DatasetError: not a folder, ``photos/`` or ``annotations/pixel-level/`` missing or empty.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset_dir does not exist or is not a folder")
    photos = images_in(root / PHOTOS, "CCP photos/ folder")
    if not (root / PIXEL_LEVEL).is_dir():
        raise DatasetError(f"{root / PIXEL_LEVEL}: folder of pixel-level annotations does not exist (is {root} "
                           "the Clothing Co-Parsing folder?)")
    labels = _mats_in(root / PIXEL_LEVEL)
    if not labels:
        raise DatasetError(f"{root / PIXEL_LEVEL}: no pixel-level annotations (.mat)")
    return [{"case_id": s, "image": str(photos.get(s, root / PHOTOS / f"{s}.jpg")), "label": str(p)}
            for s, p in labels.items()]


def find_cases(dataset_dir: str | os.PathLike) -> list[dict]:
    """``[{"case_id", "image", "label"}]`` of every photo with a pixel-level annotation, sorted by id.

    Raises:
        DatasetError: not a folder, ``photos/`` or ``annotations/pixel-level/`` missing or empty, or annotations
            without their photo.
    """
    root = Path(dataset_dir)
    cases = list_cases(root)
    orphans = [c["case_id"] for c in cases if not Path(c["image"]).is_file()]
    if orphans:
        raise DatasetError(f"{root / PHOTOS}: {len(orphans)} pixel-level annotation(s) have no photo "
                           f"(e.g. {orphans[:3]})")
    tags_only = len(images_in(root / PHOTOS)) - len(cases)
    tag_files = len(_mats_in(root / IMAGE_LEVEL)) if (root / IMAGE_LEVEL).is_dir() else 0
    logger.info("%s: %d photo(s) with pixel-level annotations; %d photo(s) have image-level tags only (%d file(s) "
                "in %s/) and are left out of segmentation training", root, len(cases), tags_only, tag_files,
                IMAGE_LEVEL)
    return cases


def make_datalists(dataset_dir: str | os.PathLike, output_dir: str | os.PathLike, seed: int = 0,
                   train: int = SPLIT["train"], validation: int = SPLIT["validation"],
                   test: int = SPLIT["test"]) -> dict[str, list[dict]]:
    """Datalists ``{"train", "validation", "test"}``: a seeded ``train``/``validation``/``test`` split of the
    pixel-level images (704/100/200 of the real 1004), scaled in proportion when the dataset holds another number
    of images. The ids of each part are saved in ``output_dir/split.json`` and reused.

    Raises:
        DatasetError: a negative count or none for training, or see :func:`find_cases`.
    """
    counts = {"train": train, "validation": validation, "test": test}
    if any(not isinstance(n, int) or n < 0 for n in counts.values()) or train < 1:
        raise DatasetError(f"split counts must be integers >= 0 (train >= 1), got {counts}")
    cases = find_cases(dataset_dir)
    total = sum(counts.values())
    if len(cases) != total:
        logger.info("%d pixel-level images, not %d: split in proportion to %s", len(cases), total, counts)
    split = load_or_make_split([c["case_id"] for c in cases], output_dir, seed, validation / total, test / total)
    parts = {case_id: part for part, ids in split.items() for case_id in ids}
    return {part: [c for c in cases if parts.get(c["case_id"]) == part] for part in split}


def load_groundtruth(path: str | os.PathLike) -> np.ndarray:
    """The (H, W) uint8 fine tag ids (0..58) of a pixel-level annotation.

    Raises:
        DatasetError: the file is unreadable, lacks ``groundtruth``, or it is not a 2-D array of ids 0..58.
    """
    ids = _loadmat(path, "groundtruth", "pixel-level annotation")
    if ids.dtype.kind == "f" and np.array_equal(ids, np.round(ids)):  # ids saved as doubles
        ids = ids.astype(np.int64)
    if ids.ndim != 2 or ids.dtype.kind not in "ui":
        raise DatasetError(f"{path}: 'groundtruth' must be a 2-D integer array, got {ids.dtype} {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= NUM_TAGS):
        raise DatasetError(f"{path}: 'groundtruth' values must be tag ids 0..{NUM_TAGS - 1}, found "
                           f"{int(ids.min())}..{int(ids.max())}")
    return ids.astype(np.uint8, copy=False)


class LoadCCPLabeld(MapTransform):
    """Replace the ``.mat`` path in ``data[key]`` by its (1, H, W) float32 target class ids (the grouping's LUT
    applied to ``groundtruth``).

    When ``data[ref_key]`` is already a loaded channel-first image (C, H, W), the sizes must match and the label
    gets the image's meta data (``filename_or_obj`` the ``.mat`` path).

    Args:
        keys: the label keys.
        grouping: a :class:`Grouping` or the path of its JSON file.
        ref_key: the image key.
        allow_missing_keys: leave items without the key as they are.
    """

    def __init__(self, keys: KeysCollection = "label", grouping: str | os.PathLike | Grouping | None = None,
                 ref_key: str = "image", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if grouping is None:
            raise UserInputError("LoadCCPLabeld needs a grouping (a Grouping or the path of its JSON file)")
        self.grouping = grouping if isinstance(grouping, Grouping) else load_grouping(grouping)
        self.ref_key = ref_key

    def _meta(self, data: Mapping, path: str, shape: tuple[int, ...]) -> dict:
        """The image's meta data for a label of ``shape`` read from ``path``."""
        ref = data.get(self.ref_key)
        if not isinstance(ref, torch.Tensor) or ref.ndim != 3:
            return {"filename_or_obj": path, "spatial_shape": np.asarray(shape)}
        if tuple(ref.shape[1:]) != shape:
            image = getattr(ref, "meta", {}).get("filename_or_obj", self.ref_key)
            raise DatasetError(f"{path}: the label is {shape[0]}x{shape[1]} (HxW) but its image {image} is "
                               f"{ref.shape[1]}x{ref.shape[2]}")
        meta = copy.deepcopy({k: v for k, v in getattr(ref, "meta", {}).items() if k != "filename_or_obj"})
        return {**meta, "filename_or_obj": path, "original_channel_dim": "no_channel"}

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            path = str(d[key])
            ids = self.grouping.apply(load_groundtruth(path))
            meta = self._meta(d, path, ids.shape)
            d[key] = MetaTensor(torch.from_numpy(ids.astype(np.float32))[None], meta=meta)
        return d


def dataset_grouping(dataset_dir: str | os.PathLike, path: str | os.PathLike) -> Grouping:
    """:func:`load_grouping`, checked against the dataset's own ``label_list.mat`` when it has one."""
    grouping = load_grouping(path)
    label_list = Path(dataset_dir) / LABEL_LIST
    if label_list.is_file():
        grouping.check_names(read_label_names(label_list))
    return grouping


def class_pixel_counts(cases: Sequence[Mapping], grouping: Grouping) -> list[int]:
    """Pixels of each target class over the annotations of ``cases`` (for class weighting of rare classes)."""
    counts = np.zeros(grouping.num_classes, dtype=np.int64)
    for case in cases:
        counts += np.bincount(grouping.apply(load_groundtruth(case["label"])).ravel(), minlength=grouping.num_classes)
    logger.info("class pixel counts over %d training images: %s", len(cases), counts.tolist())
    return counts.tolist()


def default_grouping_file() -> Path:
    """The grouping the ``ccp_unet2d`` bundle ships: ``configs/ccp_59_to_14.json``."""
    return bundle_path("ccp_unet2d") / "configs" / "ccp_59_to_14.json"


def _check_label_list(root: Path, grouping_file: str | os.PathLike | None, result: ValidationResult) -> None:
    """The tag names of ``label_list.mat`` checked against the grouping, as training does."""
    if not (root / LABEL_LIST).is_file():
        return result.note(f"no {LABEL_LIST}: the tag names cannot be checked against the grouping")
    try:
        dataset_grouping(root, default_grouping_file() if grouping_file is None else grouping_file)
        grouping = "the bundle's grouping" if grouping_file is None else f"the grouping {grouping_file}"
        result.summary["tag names"] = f"{NUM_TAGS} in {LABEL_LIST}, matching {grouping}"
    except DatasetError as exc:
        result.problem(str(exc))


def cases_to_check(root: Path, dataset_format: str | None, result: ValidationResult,
                   grouping_file: str | os.PathLike | None = None) -> list[dict]:
    """Every pixel-level annotation with its photo, after checking ``label_list.mat`` against the grouping.

    Args:
        root: the dataset folder.
        dataset_format: only None or ``auto`` (one layout).
        result: where layout problems and the case count go.
        grouping_file: the grouping JSON training uses (its ``grouping_file``); None: the bundle's
            :func:`default_grouping_file`.
    """
    _check_label_list(root, grouping_file, result)
    return merge_parts({"pixel-level": lambda: list_cases(root)}, result)


def _groundtruth(case: dict, size: tuple[int, int], result: ValidationResult) -> np.ndarray | None:
    """The tag ids of a case's ``.mat`` annotation, or None after recording why they cannot be read."""
    try:
        return load_groundtruth(case["label"])
    except DatasetError as exc:
        result.problem(str(exc), case["case_id"])
        return None


def check_case(case: dict, result: ValidationResult) -> None:
    """Check one photo of :func:`cases_to_check` and its annotation: both decode, the sizes agree, tags are 0..58."""
    check_2d_case(case, result, _groundtruth, lambda values: values_outside(values, range(NUM_TAGS)),
                  "CCP tags are 0..58", what="pixel-level annotation")
