"""The synthetic Pascal VOC writer: the exact real layout and file names, palette PNGs with void outlines, XML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_app.datasets.voc import CLASSES, IGNORE, PALETTE
from monai_app.synthetic.voc import write_voc
from monai_app.errors import UserInputError

SIZE = (48, 64)  # (H, W)
NAME = re.compile(r"20(0[7-9]|1[01])_\d{6}")
VALID = set(range(len(CLASSES))) | {IGNORE}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    """18 images (12 train, 6 val), written once for the module."""
    root = tmp_path_factory.mktemp("voc")
    return root / "VOCdevkit" / "VOC2012", write_voc(root, train=12, val=6, size=SIZE, seed=0)


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as png:
        assert png.format == "PNG" and png.mode == "P"
        assert png.getpalette()[: 256 * 3] == [c for rgb in PALETTE for c in rgb]
        return np.asarray(png)


def test_exact_layout_and_real_style_ids(dataset):
    voc, ids = dataset
    assert {k: len(v) for k, v in ids.items()} == {"train": 12, "val": 6}
    stems = ids["train"] + ids["val"]
    assert len(set(stems)) == 18 and all(NAME.fullmatch(s) for s in stems)
    assert all(split == sorted(split) for split in ids.values())
    expected = {f"ImageSets/Segmentation/{s}.txt" for s in ("train", "val", "trainval")}
    expected |= {f"{folder}/{s}{ext}" for s in stems for folder, ext in (
        ("JPEGImages", ".jpg"), ("SegmentationClass", ".png"), ("SegmentationObject", ".png"), ("Annotations", ".xml"))}
    assert {p.relative_to(voc).as_posix() for p in voc.rglob("*") if p.is_file()} == expected


def test_split_files_are_sorted_lf_lists(dataset):
    voc, ids = dataset
    for split, expected in (*ids.items(), ("trainval", sorted(ids["train"] + ids["val"]))):
        text = (voc / "ImageSets" / "Segmentation" / f"{split}.txt").read_bytes().decode()
        assert "\r" not in text and text.endswith("\n") and text.splitlines() == expected


def test_labels_have_void_outlines_and_match_images(dataset):
    voc, ids = dataset
    sizes, classes = set(), set()
    for stem in ids["train"] + ids["val"]:
        labels = _png(voc / "SegmentationClass" / f"{stem}.png")
        objects = _png(voc / "SegmentationObject" / f"{stem}.png")
        with Image.open(voc / "JPEGImages" / f"{stem}.jpg") as jpeg:
            assert jpeg.format == "JPEG" and jpeg.mode == "RGB" and jpeg.size[::-1] == labels.shape == objects.shape
        assert 0.7 * SIZE[0] - 1 <= labels.shape[0] <= SIZE[0] and 0.7 * SIZE[1] - 1 <= labels.shape[1] <= SIZE[1]
        assert set(np.unique(labels).tolist()) <= VALID and IGNORE in labels and 0 in labels
        for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):  # no two regions touch: void between
            assert not np.any((a != b) & (a != IGNORE) & (b != IGNORE))
        assert np.array_equal(objects == IGNORE, labels == IGNORE) and np.array_equal(objects == 0, labels == 0)
        sizes.add(labels.shape)
        classes |= set(np.unique(labels).tolist()) - {0, IGNORE}
    assert len(sizes) > 5 and len(classes) >= 15


def test_annotations_parse_and_name_the_objects(dataset):
    voc, ids = dataset
    for stem in ids["train"] + ids["val"]:
        root = ET.parse(voc / "Annotations" / f"{stem}.xml").getroot()
        labels = _png(voc / "SegmentationClass" / f"{stem}.png")
        assert root.tag == "annotation" and root.findtext("filename") == f"{stem}.jpg"
        assert (int(root.findtext("size/height")), int(root.findtext("size/width"))) == labels.shape
        names = [obj.findtext("name") for obj in root.iter("object") if obj.findtext("difficult") == "0"]
        assert {CLASSES[v] for v in np.unique(labels) if 0 < v < IGNORE} == set(names)
        objects = np.unique(_png(voc / "SegmentationObject" / f"{stem}.png")).tolist()
        assert objects == [0, *range(1, len(names) + 1), IGNORE]
        for box in root.iter("bndbox"):
            x0, y0, x1, y1 = (int(box.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
            assert 1 <= x0 <= x1 <= labels.shape[1] and 1 <= y0 <= y1 <= labels.shape[0]


def test_seeds_are_reproducible(tmp_path):
    runs = [write_voc(tmp_path / name, train=2, val=1, size=SIZE, seed=seed, progress=name == "a")
            for name, seed in (("a", 3), ("b", 3), ("c", 4))]
    assert runs[0] == runs[1] and runs[0] != runs[2]

    def label_bytes(name: str, run: dict) -> list[bytes]:
        folder = tmp_path / name / "VOCdevkit" / "VOC2012" / "SegmentationClass"
        return [(folder / f"{s}.png").read_bytes() for s in run["train"] + run["val"]]

    assert label_bytes("a", runs[0]) == label_bytes("b", runs[1]) != label_bytes("c", runs[2])


@pytest.mark.parametrize("kwargs", [{"train": 0}, {"val": -1}, {"size": (8, 64)}, {"size": 48}, {"seed": 1.5}])
def test_bad_arguments_are_refused(kwargs, tmp_path):
    with pytest.raises(UserInputError):
        write_voc(tmp_path, **kwargs)
