"""The CamVid loader on both layouts (synthetic) and on the real sample files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import CAMVID_SAMPLES, needs_camvid
from monai_app.datasets import camvid
from monai_app.errors import DatasetError

REAL = CAMVID_SAMPLES


@needs_camvid
def test_real_samples_in_the_seed_layout():
    assert camvid.detect_layout(REAL) == "seed"
    train = camvid.find_cases(REAL, "train")
    test = camvid.find_cases(REAL, "test")
    assert [c["case_id"] for c in train][:2] == ["0001TP_006690", "0001TP_006720"] and len(train) == 5
    assert len(test) == 3 and camvid.find_cases(REAL, "validation") == test


@needs_camvid
def test_real_annotations_load_as_ids_through_monai():
    from monai.transforms import LoadImage

    case = camvid.find_cases(REAL, "test")[0]
    label = LoadImage(reader="PILReader", reverse_indexing=False, image_only=True)(case["label"])
    image = LoadImage(reader="PILReader", reverse_indexing=False, image_only=True)(case["image"])
    assert tuple(label.shape) == (360, 480) and tuple(image.shape) == (360, 480, 3)
    assert set(np.unique(label.numpy()).astype(int)) == set(range(12))


@pytest.mark.parametrize("layout", ["seed", "segnet"])
def test_synthetic_layouts(layout, tmp_path):
    from monai_app.synthetic.camvid import write_camvid

    ids = write_camvid(tmp_path / "CamVid", layout=layout, train=3, val=2, test=2, size=(24, 32))
    assert camvid.detect_layout(tmp_path / "CamVid") == layout
    lists = camvid.make_datalists(tmp_path / "CamVid", tmp_path / "run")
    assert [c["case_id"] for c in lists["train"]] == sorted(ids["train"])
    assert [c["case_id"] for c in lists["validation"]] == sorted(ids["val"])
    expected_test = ids["val"] if layout == "seed" else ids["test"]  # the seed scores SegNet's val split
    assert [c["case_id"] for c in lists["test"]] == sorted(expected_test)
    saved = json.loads((tmp_path / "run" / "split.json").read_text())
    assert saved["layout"] == layout and saved["train"] == sorted(ids["train"])


@needs_camvid
def test_missing_annotation_and_wrong_folder_are_named(tmp_path):
    copy = tmp_path / "camvid"
    shutil.copytree(REAL, copy)
    (copy / "annotations_prepped_train" / "0001TP_006720.png").unlink()
    with pytest.raises(DatasetError, match=r"1 image\(s\) of images_prepped_train/ have no annotation.*0001TP_006720"):
        camvid.find_cases(copy, "train")
    with pytest.raises(DatasetError, match="not a CamVid folder"):
        camvid.detect_layout(tmp_path)


def test_void_protocols():
    assert camvid.num_classes(False) == 12 and camvid.class_names(False)[-1] == "void"
    assert camvid.num_classes(True) == 11 and "void" not in camvid.class_names(True)
