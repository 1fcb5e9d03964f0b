"""The Carvana loader on the synthetic Kaggle layout: GIF and CSV masks, the split by car, submission.csv."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from monai_app.datasets import carvana
from monai_app.datasets.rle import rle_decode
from monai_app.errors import DatasetError


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    from monai_app.synthetic.carvana import write_carvana

    out = tmp_path_factory.mktemp("carvana") / "carvana"
    write_carvana(out, cars=10, views=4, test_cars=1, size=(32, 48), seed=1)
    return out


def test_gif_and_csv_masks_find_the_same_images(kaggle):
    gif = carvana.find_cases(kaggle, "gif")
    csv_cases = carvana.find_cases(kaggle, "csv")
    assert [c["case_id"] for c in gif] == [c["case_id"] for c in csv_cases]
    assert len(gif) == 40 and all(c["label"].endswith("_mask.gif") for c in gif)
    first_gif = np.asarray(Image.open(gif[0]["label"]))
    np.testing.assert_array_equal(rle_decode(csv_cases[0]["rle"], first_gif.shape), first_gif)
    assert carvana.find_cases(kaggle)[0].get("label") == gif[0]["label"]  # auto prefers the GIFs


def test_split_keeps_every_car_on_one_side_and_is_reused(kaggle, tmp_path):
    lists = carvana.make_datalists(kaggle, tmp_path, seed=0, val_fraction=0.2, test_fraction=0.2)
    cars = {part: {carvana.car_id(c["case_id"]) for c in cases} for part, cases in lists.items()}
    assert not (cars["train"] & cars["validation"]) and not (cars["train"] & cars["test"])
    assert not (cars["validation"] & cars["test"])
    assert sum(len(v) for v in lists.values()) == 40
    assert all(len(v) % 4 == 0 for v in lists.values())  # whole cars (4 views each) per part
    saved = json.loads((tmp_path / "split.json").read_text())
    assert sorted(saved["test"]) == sorted(cars["test"])
    again = carvana.make_datalists(kaggle, tmp_path, seed=99)  # a different seed: the saved split still wins
    assert again == lists


def test_missing_masks_are_named(kaggle, tmp_path):
    copy = tmp_path / "carvana"
    shutil.copytree(kaggle, copy)
    victim = sorted((copy / "train_masks").iterdir())[0]
    victim.unlink()
    with pytest.raises(DatasetError, match="have no '<id>_mask.gif'"):
        carvana.find_cases(copy, "gif")
    shutil.rmtree(copy / "train_masks")
    assert len(carvana.find_cases(copy)) == 40  # auto falls back to train_masks.csv
    (copy / "train_masks.csv").write_text("image,mask\n")
    with pytest.raises(DatasetError, match="img,rle_mask"):
        carvana.find_cases(copy, "csv")


def test_not_a_carvana_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        carvana.find_cases(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="train/ folder"):
        carvana.find_cases(tmp_path)


def test_submission_encodes_the_written_masks(tmp_path):
    from monai_app.datasets.images import write_label_png

    rng = np.random.default_rng(0)
    masks = {f"abcdefabcdef_0{i}": (rng.random((6, 9)) > 0.5).astype(np.uint8) for i in (1, 2)}
    for case, mask in masks.items():
        write_label_png(mask, tmp_path / f"{case}.png", carvana.PALETTE)
    datalist = [{"case_id": c, "image": f"/data/test/{c}.jpg"} for c in masks]
    path = carvana.write_submission(tmp_path, datalist)
    rows = list(csv.DictReader(path.open()))
    assert [r["img"] for r in rows] == [f"{c}.jpg" for c in sorted(masks)]
    for row in rows:
        np.testing.assert_array_equal(rle_decode(row["rle_mask"], (6, 9)), masks[row["img"][:-4]])
    with pytest.raises(DatasetError, match="no predicted mask"):
        carvana.write_submission(tmp_path, [{"case_id": "missing", "image": "missing.jpg"}])
