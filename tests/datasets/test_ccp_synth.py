"""The synthetic CCP writer: the exact real layout and MATLAB files, and outfits covering the 59 -> 14 grouping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat

from conftest import CCP_SAMPLES, REPO
from monai_app.datasets import ccp
from monai_app.synthetic.ccp import LABEL_NAMES, write_ccp
from monai_app.errors import UserInputError

SIZE = (64, 44)  # (H, W)
GROUPING = REPO / "bundles" / "ccp_unet2d" / "configs" / "ccp_59_to_14.json"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list[str]]:
    """12 pixel-level and 4 image-level photos, written once for the module."""
    root = tmp_path_factory.mktemp("ccp")
    return root, write_ccp(root, pixel_level=12, image_level=4, size=SIZE, seed=0)


def _groundtruths(root: Path, ids: list[str]) -> list[np.ndarray]:
    return [loadmat(root / "annotations" / "pixel-level" / f"{i}.mat")["groundtruth"] for i in ids]


def test_exact_layout_and_names(dataset):
    root, ids = dataset
    assert ids == [f"{i:04d}" for i in range(1, 13)]
    expected = {"label_list.mat", *(f"photos/{i:04d}.jpg" for i in range(1, 17)),
                *(f"annotations/pixel-level/{i}.mat" for i in ids),
                *(f"annotations/image-level/{i:04d}.mat" for i in range(13, 17))}
    assert {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} == expected
    assert [c["case_id"] for c in ccp.find_cases(root)] == ids


def test_mat_files_round_trip_like_the_real_ones(dataset):
    root, ids = dataset
    heights = set()
    for case_id, truth in zip(ids, _groundtruths(root, ids)):
        with Image.open(root / "photos" / f"{case_id}.jpg") as photo:
            assert (photo.format, photo.mode) == ("JPEG", "RGB") and photo.size == truth.shape[::-1]
        assert truth.dtype == np.uint8 and truth.ndim == 2 and truth.shape[1] == SIZE[1] and truth.max() <= 58
        assert 0.96 * SIZE[0] - 1 <= truth.shape[0] <= 1.05 * SIZE[0] + 1
        heights.add(truth.shape[0])
    assert len(heights) > 1  # heights vary as in the real photos
    tags = loadmat(root / "annotations" / "image-level" / "0013.mat")["tags"]
    real = loadmat(CCP_SAMPLES / "annotations" / "image-level" / "1005.mat")["tags"]
    assert tags.dtype == real.dtype == np.uint8 and tags.ndim == real.ndim == 2 and tags.shape[0] == 1
    assert tags[0, 0] == 0 and tags.max() <= 58 and list(tags[0]) == sorted(set(tags[0]))


def test_label_list_round_trips_to_the_real_names(dataset):
    root, _ = dataset
    raw, real = (loadmat(p / "label_list.mat")["label_list"] for p in (root, CCP_SAMPLES))
    assert raw.shape == real.shape == (1, 59) and raw.dtype == real.dtype == object
    assert ccp.read_label_names(root / "label_list.mat") == ccp.read_label_names(CCP_SAMPLES / "label_list.mat")
    assert list(LABEL_NAMES) == ccp.read_label_names(root / "label_list.mat")


def test_fine_tags_cover_the_groups(dataset):
    root, ids = dataset
    grouping = ccp.load_grouping(GROUPING)
    tags = set().union(*(np.unique(t).tolist() for t in _groundtruths(root, ids)))
    by_group: dict[str, set[str]] = {}
    for tag in tags:
        by_group.setdefault(grouping.classes[grouping.lut[tag]], set()).add(LABEL_NAMES[tag])
    assert len(set(grouping.classes) - set(by_group) - {"underwear"}) == 0, sorted(by_group)
    for group, least in (("shirt", 3), ("trousers", 3), ("coat", 2), ("shoes", 4), ("accessories", 4), ("socks", 2)):
        assert len(by_group[group]) >= least, (group, by_group[group])
    assert by_group["skin"] == {"skin"} and by_group["hair"] == {"hair"} and by_group["background"] == {"null"}


def test_same_seed_same_files_other_seed_other_files(dataset, tmp_path):
    root, _ = dataset
    write_ccp(tmp_path / "a", pixel_level=2, image_level=1, size=SIZE, seed=0)
    write_ccp(tmp_path / "b", pixel_level=2, image_level=1, size=SIZE, seed=1)
    for name in ("photos/0001.jpg", "photos/0003.jpg"):
        assert (tmp_path / "a" / name).read_bytes() == (root / name).read_bytes()
    np.testing.assert_array_equal(*_groundtruths(tmp_path / "a", ["0002"]), *_groundtruths(root, ["0002"]))
    # photo 0003 is image-level here, pixel-level in the module's dataset: its tags are its pixels' tags there
    tags = loadmat(tmp_path / "a" / "annotations" / "image-level" / "0003.mat")["tags"]
    np.testing.assert_array_equal(tags[0], np.unique(*_groundtruths(root, ["0003"])))
    assert (tmp_path / "b" / "photos/0001.jpg").read_bytes() != (root / "photos/0001.jpg").read_bytes()


@pytest.mark.parametrize("kwargs", [{"size": (16, 44)}, {"pixel_level": 0}, {"image_level": -1}, {"seed": 1.5},
                                    {"pixel_level": 9000, "image_level": 1000}])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(UserInputError):
        write_ccp(tmp_path, **kwargs)
