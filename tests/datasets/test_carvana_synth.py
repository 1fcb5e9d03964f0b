"""The synthetic Carvana writer: the exact Kaggle layout, masks that agree with the CSV, and cars worth segmenting."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_app.synthetic.carvana import write_carvana
from monai_app.datasets.rle import rle_decode
from monai_app.errors import UserInputError

SIZE = (64, 96)  # (H, W)
CARS, VIEWS, TEST_CARS = 3, 4, 1


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list[str]]:
    """A small dataset written once for the module."""
    root = tmp_path_factory.mktemp("carvana")
    return root, write_carvana(root, cars=CARS, views=VIEWS, test_cars=TEST_CARS, size=SIZE, seed=0)


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def _mask(root: Path, image_id: str) -> np.ndarray:
    with Image.open(root / "train_masks" / f"{image_id}_mask.gif") as image:
        assert image.format == "GIF" and image.mode == "P"
        return np.asarray(image)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_ids_are_cars_times_views_with_shared_car_ids(dataset):
    _, ids = dataset
    assert ids == sorted(ids) and len(ids) == CARS * VIEWS
    assert all(re.fullmatch(r"[0-9a-f]{12}_\d\d", i) for i in ids)
    cars = sorted({i[:12] for i in ids})
    assert len(cars) == CARS
    for car in cars:
        assert [i for i in ids if i.startswith(car)] == [f"{car}_{v:02d}" for v in range(1, VIEWS + 1)]


def test_exact_kaggle_layout(dataset):
    root, ids = dataset
    test_rows = _rows(root / "sample_submission.csv")
    test_ids = [row[0][:-4] for row in test_rows[1:]]
    expected = ({f"train/{i}.jpg" for i in ids} | {f"train_masks/{i}_mask.gif" for i in ids}
                | {f"test/{i}.jpg" for i in test_ids} | {"train_masks.csv", "sample_submission.csv", "metadata.csv"})
    assert _files(root) == expected  # no temporary files left behind either
    assert test_rows[0] == ["img", "rle_mask"] and len(test_ids) == TEST_CARS * VIEWS
    assert all(row[1] == "1 1" for row in test_rows[1:])
    assert not {i[:12] for i in test_ids} & {i[:12] for i in ids}


def test_images_are_rgb_jpegs_of_the_requested_size(dataset):
    root, _ = dataset
    for path in sorted((root / "train").iterdir()) + sorted((root / "test").iterdir()):
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (SIZE[1], SIZE[0]))


def test_gif_masks_hold_0_and_1_and_match_the_csv(dataset):
    root, ids = dataset
    rows = _rows(root / "train_masks.csv")
    assert rows[0] == ["img", "rle_mask"]
    assert [row[0] for row in rows[1:]] == [f"{i}.jpg" for i in ids]
    for image_id, (_, rle) in zip(ids, rows[1:]):
        mask = _mask(root, image_id)
        assert mask.shape == SIZE and set(np.unique(mask).tolist()) == {0, 1}
        np.testing.assert_array_equal(rle_decode(rle, SIZE), mask)


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def test_some_cars_cross_the_image_border(dataset):
    root, ids = dataset
    touching = [i for i in ids if _touches_border(_mask(root, i))]
    assert 0 < len(touching) < len(ids)


def test_car_pixels_differ_from_the_studio(dataset):
    root, ids = dataset
    for image_id in ids:
        image = np.asarray(Image.open(root / "train" / f"{image_id}.jpg"), dtype=np.float64)
        car = _mask(root, image_id) > 0
        assert np.abs(image[car].mean(axis=0) - image[~car].mean(axis=0)).mean() > 25.0
        assert image[~car].mean() > 150.0  # a light studio background


def test_metadata_lists_every_car(dataset):
    root, ids = dataset
    rows = _rows(root / "metadata.csv")
    assert rows[0] == ["id", "year", "make", "model", "trim1", "trim2"]
    test_cars = {row[0][:12] for row in _rows(root / "sample_submission.csv")[1:]}
    assert sorted(row[0] for row in rows[1:]) == sorted({i[:12] for i in ids} | test_cars)
    assert all(2000 <= int(row[1]) <= 2020 and row[2] and row[3] for row in rows[1:])


def test_same_seed_same_bytes_other_seed_other_data(dataset, tmp_path):
    root, ids = dataset
    again = write_carvana(tmp_path / "again", cars=CARS, views=VIEWS, test_cars=TEST_CARS, size=SIZE, seed=0,
                          progress=True)
    assert again == ids
    for name in sorted(_files(root)):
        assert (root / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    other = write_carvana(tmp_path / "other", cars=CARS, views=VIEWS, test_cars=TEST_CARS, size=SIZE, seed=1)
    assert not {i[:12] for i in other} & {i[:12] for i in ids}
    assert (tmp_path / "other" / "train_masks.csv").read_text() != (root / "train_masks.csv").read_text()


@pytest.mark.parametrize("kwargs", [{"views": 0}, {"views": 100}, {"cars": 0}, {"size": (8, 96)}, {"seed": -1}])
def test_bad_arguments_are_refused(tmp_path, kwargs):
    with pytest.raises(UserInputError):
        write_carvana(tmp_path, **{"cars": 1, "views": 1, "size": SIZE, **kwargs})
