"""The CCP loader and its 59 -> 14 grouping, on the real sample files and on a synthetic dataset."""

from __future__ import annotations

import json
import logging
import re
import shutil

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from conftest import CCP_SAMPLES, REPO
from monai_app.datasets import ccp
from monai_app.datasets.splits import split_ids
from monai_app.errors import DatasetError

REAL = CCP_SAMPLES
GROUPING = REPO / "bundles" / "ccp_unet2d" / "configs" / "ccp_59_to_14.json"
# The 14-class ids in the real 0001.mat with the shipped grouping (null, blouse, hair, shoes, skin, skirt, stockings,
# sunglasses, vest -> background, shirt, hair, shoes, skin, skirt, socks, accessories, coat).
SAMPLE_CLASSES = {0, 1, 2, 3, 5, 6, 9, 11, 13}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from monai_app.synthetic.ccp import write_ccp

    root = tmp_path_factory.mktemp("ccp") / "ccp"
    return root, write_ccp(root, pixel_level=10, image_level=3, size=(64, 44), seed=1)


def _monai_transform(grouping):
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    return Compose([LoadImaged(keys="image", reader="PILReader", reverse_indexing=False, image_only=True),
                    EnsureChannelFirstd(keys="image"), ccp.LoadCCPLabeld(keys="label", grouping=grouping)])


def test_real_label_names():
    names = ccp.read_label_names(REAL / "label_list.mat")
    assert len(names) == 59 and names[0] == "null"
    assert (names[2], names[41], names[51]) == ("bag", "skin", "t-shirt")


def test_shipped_grouping_matches_the_real_names():
    grouping = ccp.load_grouping(GROUPING)
    grouping.check_names(ccp.read_label_names(REAL / "label_list.mat"))
    assert grouping.num_classes == 14 == len(ccp.PALETTE) and grouping.classes[0] == "background"
    assert grouping.lut.dtype == np.uint8 and grouping.lut.shape == (59,) and grouping.lut.max() == 13
    assert grouping.by_name["cardigan"] == "coat" and grouping.by_name["tights"] == "socks"


def test_real_annotation_loads_as_14_classes_through_monai():
    case = ccp.find_cases(REAL)[0]
    raw = ccp.load_groundtruth(case["label"])
    assert raw.dtype == np.uint8 and raw.shape == (832, 550)
    grouping = ccp.load_grouping(GROUPING)
    data = _monai_transform(grouping)(case)
    label = data["label"]
    assert tuple(label.shape) == (1, 832, 550) and label.dtype.is_floating_point
    assert label.meta["filename_or_obj"] == case["label"] and tuple(data["image"].shape) == (3, 832, 550)
    found = set(np.unique(label.numpy()).astype(int).tolist())
    assert found == set(grouping.lut[np.unique(raw)].tolist()) == SAMPLE_CLASSES


def test_find_cases_leaves_out_image_level_photos(caplog):
    with caplog.at_level(logging.INFO, logger="monai_app.datasets.ccp"):
        cases = ccp.find_cases(REAL)
    assert [c["case_id"] for c in cases] == ["0001"] and cases[0]["image"].endswith("photos/0001.jpg")
    assert "1 photo(s) have image-level tags only" in caplog.text


def test_1004_images_split_exactly_704_100_200(tmp_path):
    ids = [f"{i:04d}" for i in range(1, 1005)]
    total = sum(ccp.SPLIT.values())
    parts = split_ids(ids, 0, ccp.SPLIT["validation"] / total, ccp.SPLIT["test"] / total)
    assert {k: len(v) for k, v in parts.items()} == {"train": 704, "validation": 100, "test": 200}
    for folder, suffix in (("photos", ".jpg"), ("annotations/pixel-level", ".mat")):  # empty files: never read
        (tmp_path / "ccp" / folder).mkdir(parents=True)
        for i in ids:
            (tmp_path / "ccp" / folder / f"{i}{suffix}").touch()
    lists = ccp.make_datalists(tmp_path / "ccp", tmp_path / "run")
    assert {k: len(v) for k, v in lists.items()} == {"train": 704, "validation": 100, "test": 200}


def test_synthetic_datalists_are_disjoint_and_the_split_is_reused(synthetic, tmp_path, caplog):
    root, ids = synthetic
    lists = ccp.make_datalists(root, tmp_path)
    case_ids = {part: [c["case_id"] for c in cases] for part, cases in lists.items()}
    assert sorted(sum(case_ids.values(), [])) == ids and all(len(v) >= 1 for v in case_ids.values())
    assert json.loads((tmp_path / "split.json").read_text())["train"] == case_ids["train"]
    with caplog.at_level(logging.INFO, logger="monai_app.datasets.splits"):
        assert ccp.make_datalists(root, tmp_path, seed=5) == lists
    assert "reusing the split" in caplog.text


def test_synthetic_labels_through_monai(synthetic):
    root, ids = synthetic
    case = ccp.find_cases(root)[0]
    data = _monai_transform(str(GROUPING))(case)
    assert data["label"].shape[1:] == data["image"].shape[1:] and data["label"].max() <= 13


def test_missing_folders_and_photos_are_named(tmp_path, synthetic):
    copy = tmp_path / "ccp"
    shutil.copytree(REAL, copy)
    shutil.rmtree(copy / "annotations" / "pixel-level")
    with pytest.raises(DatasetError, match="annotations/pixel-level: folder of pixel-level annotations does not"):
        ccp.find_cases(copy)
    shutil.rmtree(copy / "photos")
    with pytest.raises(DatasetError, match="photos: CCP photos/ folder does not exist"):
        ccp.find_cases(copy)
    orphan = tmp_path / "synthetic"
    shutil.copytree(synthetic[0], orphan)
    (orphan / "photos" / "0002.jpg").unlink()
    with pytest.raises(DatasetError, match=r"1 pixel-level annotation\(s\) have no photo \(e.g. \['0002'\]\)"):
        ccp.find_cases(orphan)


def test_bad_annotations_are_named(tmp_path):
    savemat(tmp_path / "tags.mat", {"tags": np.array([[0, 5]], np.uint8)})
    with pytest.raises(DatasetError, match=r"tags.mat: the pixel-level annotation has no variable 'groundtruth'"):
        ccp.load_groundtruth(tmp_path / "tags.mat")
    savemat(tmp_path / "high.mat", {"groundtruth": np.full((4, 3), 59, np.uint8)})
    with pytest.raises(DatasetError, match=r"high.mat: 'groundtruth' values must be tag ids 0..58, found 59..59"):
        ccp.load_groundtruth(tmp_path / "high.mat")
    (tmp_path / "junk.mat").write_text("not a MAT file")
    with pytest.raises(DatasetError, match="junk.mat: cannot read the pixel-level annotation"):
        ccp.load_groundtruth(tmp_path / "junk.mat")


def test_image_and_label_size_mismatch_names_the_file_and_both_sizes(tmp_path):
    label = tmp_path / "0001.mat"
    savemat(label, {"groundtruth": np.zeros((10, 12), np.uint8)})
    case = {"image": str(REAL / "photos" / "0001.jpg"), "label": str(label)}
    with pytest.raises(RuntimeError) as info:  # MONAI's Compose wraps what a transform raises
        _monai_transform(ccp.load_grouping(GROUPING))(case)
    assert isinstance(info.value.__cause__, DatasetError)
    assert re.fullmatch(r".*/0001.mat: the label is 10x12 \(HxW\) but its image .*/0001.jpg is 832x550",
                        str(info.value.__cause__))


def test_bad_grouping_files_are_named(tmp_path):
    content = json.loads(GROUPING.read_text())
    bad = tmp_path / "short.json"
    bad.write_text(json.dumps({**content, "lut_59_to_14": content["lut_59_to_14"][:58]}))
    with pytest.raises(DatasetError, match=r"short.json: 'lut_59_to_14' must list 59 class ids .*found 58"):
        ccp.load_grouping(bad)
    bad.write_text(json.dumps({**content, "lut_59_to_14": [14] + content["lut_59_to_14"][1:]}))
    with pytest.raises(DatasetError, match=r"values must be class ids 0..13; 1 are not \(index, value: \[\(0, 14\)\]"):
        ccp.load_grouping(bad)
    lut = list(content["lut_59_to_14"])
    lut[11] = 6  # cardigan -> shirt, while by_name still says coat
    bad.write_text(json.dumps({**content, "lut_59_to_14": lut}))
    with pytest.raises(DatasetError, match=r"short.json: .*lut\[11\] = 6 \(shirt\) but by_name\['cardigan'\] = 'coat'"):
        ccp.load_grouping(bad).check_names(ccp.read_label_names(REAL / "label_list.mat"))
    with pytest.raises(DatasetError, match="missing.json: cannot read the grouping file"):
        ccp.load_grouping(tmp_path / "missing.json")


def test_label_list_must_hold_59_names(tmp_path):
    names = loadmat(REAL / "label_list.mat")["label_list"]
    savemat(tmp_path / "short.mat", {"label_list": names[:, :58]})
    with pytest.raises(DatasetError, match="short.mat: expected 59 non-empty tag names in 'label_list', found 58"):
        ccp.read_label_names(tmp_path / "short.mat")
