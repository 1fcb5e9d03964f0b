"""The Pascal VOC 2012 loader on the real sample files and on a small synthetic dataset."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES, VOC_SAMPLES, needs_voc
from monai_app.datasets import voc
from monai_app.errors import DatasetError

REAL = VOC_SAMPLES
REAL_ID = "2007_000063"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A synthetic VOC dataset (8 train, 4 val ids) under ``<root>/VOCdevkit/VOC2012``, written once."""
    from monai_app.synthetic.voc import write_voc

    root = tmp_path_factory.mktemp("voc")
    return root, write_voc(root, train=8, val=4, size=(32, 40))


@needs_voc
@pytest.mark.parametrize("start", [SAMPLES, REAL, REAL / "VOC2012"], ids=["parent", "VOCdevkit", "VOC2012"])
def test_find_root_from_each_starting_point(start):
    assert voc.find_root(start) == REAL / "VOC2012"


@needs_voc
def test_real_sample_cases_and_split_files():
    cases = voc.find_cases(REAL, "train")
    assert [c["case_id"] for c in cases] == [REAL_ID]
    assert cases[0]["image"] == str(REAL / "VOC2012" / "JPEGImages" / f"{REAL_ID}.jpg")
    assert cases[0]["label"] == str(REAL / "VOC2012" / "SegmentationClass" / f"{REAL_ID}.png")
    assert all(voc.read_ids(REAL, split) == [REAL_ID] for split in ("train", "val", "trainval"))


@needs_voc
def test_real_label_loads_as_palette_indices_through_monai():
    from monai.transforms import LoadImage

    label = LoadImage(reader="PILReader", reverse_indexing=False, image_only=True)(voc.find_cases(REAL)[0]["label"])
    assert tuple(label.shape) == (375, 500)
    values = set(np.unique(label.numpy()).astype(int).tolist())
    assert values == {0, 9, 12, 255} and voc.check_label_values(label.numpy()) == []
    assert [voc.CLASSES[v] for v in sorted(values - {voc.IGNORE})] == ["background", "chair", "dog"]


@needs_voc
def test_colormap_is_the_real_palette():
    cmap = voc.colormap()
    assert len(cmap) == 256 and voc.PALETTE == cmap and len(voc.CLASSES) == 21
    assert [cmap[i] for i in (0, 1, 2, 3, 15, 255)] == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0),
                                                         (192, 128, 128), (224, 224, 192)]
    with Image.open(REAL / "VOC2012" / "SegmentationClass" / f"{REAL_ID}.png") as png:
        assert png.mode == "P" and png.getpalette()[: 256 * 3] == [c for rgb in cmap for c in rgb]
    assert voc.colormap(3) == cmap[:3]


@needs_voc
def test_real_sample_datalists_warn_that_train_and_val_overlap(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        lists = voc.make_datalists(REAL, tmp_path)
    assert [c["case_id"] for c in lists["train"]] == [REAL_ID] == [c["case_id"] for c in lists["test"]]
    assert lists["validation"] == [] and "both train.txt and val.txt" in caplog.text


def test_synthetic_datalists_split_train_and_keep_val_as_test(synthetic, tmp_path):
    root, ids = synthetic
    lists = voc.make_datalists(root, tmp_path, seed=0, val_fraction=0.25)
    parts = {k: [c["case_id"] for c in v] for k, v in lists.items()}
    assert parts["test"] == ids["val"] == voc.read_ids(root, "val")
    assert sorted(parts["train"] + parts["validation"]) == ids["train"] and len(parts["validation"]) == 2
    assert not set(parts["train"]) & set(parts["validation"]) and not set(parts["test"]) & set(ids["train"])
    assert all(c.keys() == {"case_id", "image", "label"} for v in lists.values() for c in v)
    saved = json.loads((tmp_path / "split.json").read_text())
    assert saved["seed"] == 0 and "official val.txt as test" in saved["protocol"] and saved["validation"] == \
        parts["validation"]
    assert voc.make_datalists(root, tmp_path, seed=7, val_fraction=0.5) == lists  # the saved split is reused
    (tmp_path / "split.json").write_text(json.dumps({"train": ["2099_000001"], "validation": [], "test": []}))
    with pytest.raises(DatasetError, match=r"split.json: the saved split names 1 case\(s\) not in the dataset.*2099_000001"):
        voc.make_datalists(root, tmp_path)


def test_missing_files_are_counted_and_named(synthetic, tmp_path):
    root, ids = synthetic
    copy = tmp_path / "copy"
    shutil.copytree(root / "VOCdevkit", copy / "VOCdevkit")
    (copy / "VOCdevkit" / "VOC2012" / "JPEGImages" / f"{ids['train'][1]}.jpg").unlink()
    (copy / "VOCdevkit" / "VOC2012" / "SegmentationClass" / f"{ids['train'][2]}.png").unlink()
    with pytest.raises(DatasetError, match=rf"2 file\(s\) of the ids in .*train.txt are missing.*{ids['train'][1]}"):
        voc.find_cases(copy, "train")
    (copy / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(DatasetError, match=r"val.txt: split file does not exist"):
        voc.find_cases(copy, "val")
    with pytest.raises(DatasetError, match="not a Pascal VOC folder"):
        voc.find_root(tmp_path)
    with pytest.raises(DatasetError, match="does not exist or is not a folder"):
        voc.find_root(tmp_path / "nowhere")


def test_split_files_with_crlf_and_blank_lines(tmp_path):
    sets = tmp_path / "VOC2012" / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_bytes(b"2008_000002\r\n\r\n 2007_000032 \r\n")
    (sets / "val.txt").write_bytes(b"\n")
    assert voc.read_ids(tmp_path, "train") == ["2008_000002", "2007_000032"]
    with pytest.raises(DatasetError, match="val.txt: lists no ids"):
        voc.find_cases(tmp_path, "val")


def test_check_label_values():
    assert voc.check_label_values(np.array([[0, 20], [255, 7]], np.uint8)) == []
    assert voc.check_label_values([0, 21, 254, 255, 3]) == [21, 254]
