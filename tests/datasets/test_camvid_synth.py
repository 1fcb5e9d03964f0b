"""The synthetic CamVid writer: the exact real layouts and file names, and street scenes holding every class."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_app.synthetic.camvid import CLASSES, write_camvid
from monai_app.errors import UserInputError

SIZE = (48, 64)  # (H, W)
FOLDERS = {"seed": {"train": ("images_prepped_train", "annotations_prepped_train"),
                    "val": ("images_prepped_test", "annotations_prepped_test")},
           "segnet": {"train": ("train", "trainannot"), "val": ("val", "valannot"), "test": ("test", "testannot")}}
NAME = re.compile(r"0001TP_\d{6}|0006R0_f\d{5}|0016E5_\d{5}|Seq05VD_f\d{5}")


@pytest.fixture(scope="module", params=sorted(FOLDERS))
def dataset(request, tmp_path_factory) -> tuple[str, Path, dict[str, list[str]]]:
    """One small dataset per layout (12 training images), written once for the module."""
    root = tmp_path_factory.mktemp(request.param)
    return request.param, root, write_camvid(root, layout=request.param, train=12, val=3, test=2, size=SIZE)


def _label(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "L", (SIZE[1], SIZE[0]))
        return np.asarray(image)


def test_exact_layout_and_real_style_names(dataset):
    layout, root, ids = dataset
    expected_counts = {"train": 12, "val": 3, "test": 2 if layout == "segnet" else 0}
    assert {k: len(v) for k, v in ids.items()} == expected_counts
    stems = [s for split in ids.values() for s in split]
    assert len(set(stems)) == len(stems) and all(NAME.fullmatch(s) for s in stems)
    assert all(split == sorted(split) for split in ids.values())
    expected = {f"{folder}/{stem}.png" for split, pair in FOLDERS[layout].items() for folder in pair
                for stem in ids[split]}
    assert {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} == expected


def test_images_and_labels_are_png_pairs_with_labels_0_to_11(dataset):
    layout, root, ids = dataset
    for split, (images, labels) in FOLDERS[layout].items():
        for stem in ids[split]:
            with Image.open(root / images / f"{stem}.png") as image:
                assert (image.format, image.mode, image.size) == ("PNG", "RGB", (SIZE[1], SIZE[0]))
            assert _label(root / labels / f"{stem}.png").max() < len(CLASSES) == 12


def test_every_class_occurs_in_the_training_images(dataset):
    layout, root, ids = dataset
    labels = FOLDERS[layout]["train"][1]
    found = set().union(*(np.unique(_label(root / labels / f"{s}.png")).tolist() for s in ids["train"]))
    assert found == set(range(12))


def test_classes_have_distinct_colours(dataset):
    layout, root, ids = dataset
    images, labels = FOLDERS[layout]["train"]
    pixels = np.concatenate([np.asarray(Image.open(root / images / f"{s}.png")).reshape(-1, 3) for s in ids["train"]])
    classes = np.concatenate([_label(root / labels / f"{s}.png").ravel() for s in ids["train"]])
    sky, road, tree = (pixels[classes == k].mean(axis=0) for k in (0, 3, 5))
    assert sky[2] > road[2] + 40 and tree[1] > tree[0] + 15 and tree[1] > tree[2] + 15


def test_same_seed_same_bytes_other_seed_other_labels(tmp_path):
    runs = {name: write_camvid(tmp_path / name, layout="segnet", train=3, val=1, test=1, size=SIZE, seed=seed,
                               progress=name == "b") for name, seed in (("a", 4), ("b", 4), ("c", 5))}
    assert runs["a"] == runs["b"] == runs["c"]  # names do not depend on the seed
    for folder in ("train", "trainannot", "valannot", "testannot"):
        for path in sorted((tmp_path / "a" / folder).iterdir()):
            assert path.read_bytes() == (tmp_path / "b" / folder / path.name).read_bytes()
    differ = [(tmp_path / "a" / "trainannot" / f"{s}.png").read_bytes()
              != (tmp_path / "c" / "trainannot" / f"{s}.png").read_bytes() for s in runs["a"]["train"]]
    assert all(differ)


def test_seed_layout_ignores_test_and_writes_no_test_split(tmp_path):
    ids = write_camvid(tmp_path, layout="seed", train=2, val=1, test=5, size=SIZE)
    assert ids["test"] == [] and len(ids["val"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotations_prepped_test", "annotations_prepped_train",
                                                          "images_prepped_test", "images_prepped_train"]


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="layout"):
        write_camvid(tmp_path, layout="cityscapes", size=SIZE)
    for kwargs in ({"train": 0}, {"val": -1}, {"size": (8, 64)}, {"size": 64}, {"seed": -2}):
        with pytest.raises(UserInputError):
            write_camvid(tmp_path, **{"size": SIZE, **kwargs})
    assert not any(tmp_path.iterdir())
