"""The carvana_unet2d and camvid_unet2d bundles end to end, through `python -m monai.bundle run` as users call it.

Tiny networks and a couple of epochs: what is checked is what a user would notice (the run folder, TensorBoard
tags, the metric tables, predictions at the input's size, a Kaggle submission that decodes to the written masks),
on the synthetic layouts and on the real CamVid sample files. Learned quality is measured by `make demo-2d`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import (CAMVID_SAMPLES, CCP_SAMPLES, REPO, VOC_SAMPLES, bundle_run, needs_camvid, needs_voc,
                      tb_tags)
from test_reports import check_report

pytestmark = pytest.mark.slow

TINY = {"features": "[8,16,16,32,32,8]", "num_workers": 0, "image_size": 32, "batch_size": 4}
CARVANA = "bundles/carvana_unet2d/configs"
CAMVID = "bundles/camvid_unet2d/configs"
CAMVID_REAL = CAMVID_SAMPLES


def run(run_id: str, configs: str, **overrides):
    return bundle_run(run_id, configs, **{**TINY, **overrides})


def evaluate_configs(bundle: str) -> str:
    return f"['{bundle}/train.json','{bundle}/evaluate.json']"


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


# ---------------------------------------------------------------------------------------------------- Carvana
@pytest.fixture(scope="module")
def kaggle(tmp_path_factory) -> Path:
    from monai_app.synthetic.carvana import write_carvana

    out = tmp_path_factory.mktemp("carvana") / "carvana"
    write_carvana(out, cars=5, views=4, test_cars=1, size=(48, 72), seed=2)
    return out


@pytest.fixture(scope="module")
def carvana_run(kaggle, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("carvana_run")
    run("training", f"{CARVANA}/train.json", dataset_dir=kaggle, output_dir=out, max_epochs=2)
    return out


def test_carvana_training_run_folder_and_tensorboard(carvana_run, kaggle):
    assert (carvana_run / "models" / "model.pt").is_file()
    assert sorted(p.name for p in (carvana_run / "models").iterdir()) == ["last.pt", "model.pt"]
    split = json.loads((carvana_run / "split.json").read_text())  # the split is over car ids
    assert sorted(split["train"] + split["validation"] + split["test"]) == sorted(
        {p.name.rsplit("_", 1)[0] for p in (kaggle / "train").glob("*.jpg")})
    scalars, images = tb_tags(carvana_run / "tb")
    assert {"train/loss", "train/lr", "val_mean_dice", "val_dice_model_size"} <= scalars
    assert "val/image_reference_prediction" in images


def test_carvana_evaluation_scores_test_cars_at_original_size(carvana_run, kaggle):
    run("evaluating", evaluate_configs(CARVANA), dataset_dir=kaggle, output_dir=carvana_run)
    rows = read_csv(carvana_run / "eval" / "per_case.csv")
    assert rows[0] == ["case_id", "dice", "dice_model_size"]
    test_cars = json.loads((carvana_run / "split.json").read_text())["test"]
    assert {r[0].rsplit("_", 1)[0] for r in rows[1:]} == set(test_cars) and len(rows) - 1 == 4 * len(test_cars)
    assert all(0 <= float(v) <= 1 for r in rows[1:] for v in r[1:])
    cases = [r[0] for r in rows[1:]]
    assert sorted(p.stem for p in (carvana_run / "eval" / "cases").glob("*.png")) == sorted(cases)
    check_report(carvana_run, cases, ["dice", "dice_model_size", "val_mean_dice"])


def test_carvana_inference_masks_and_submission(carvana_run, kaggle, tmp_path):
    from monai_app.datasets.rle import rle_decode

    out = tmp_path / "pred"
    run("inference", f"{CARVANA}/inference.json", input=kaggle / "test", output_dir=out,
        ckpt_path=carvana_run / "models" / "model.pt")
    photos = sorted((kaggle / "test").glob("*.jpg"))
    assert sorted(p.name for p in out.glob("*.png")) == [p.stem + ".png" for p in photos]
    rows = {r["img"]: r["rle_mask"] for r in csv.DictReader(open(out / "submission.csv"))}
    assert sorted(rows) == [p.name for p in photos]
    for photo in photos:
        mask = Image.open(out / f"{photo.stem}.png")
        assert mask.mode == "P" and mask.size == Image.open(photo).size  # palette PNG at the photo's size
        ids = np.asarray(mask)
        assert set(np.unique(ids)) <= {0, 1}
        np.testing.assert_array_equal(rle_decode(rows[photo.name], ids.shape), ids)


def test_carvana_trains_from_the_rle_csv(kaggle, tmp_path):
    out = tmp_path / "run"
    run("training", f"{CARVANA}/train.json", dataset_dir=kaggle, output_dir=out, max_epochs=1, mask_source="csv")
    assert (out / "models" / "model.pt").is_file()


# ----------------------------------------------------------------------------------------------------- CamVid
@pytest.fixture(scope="module")
def camvid_real_run(tmp_path_factory) -> Path:
    """One epoch on the real CamVid sample files (seed layout, 12 classes)."""
    out = tmp_path_factory.mktemp("camvid_real")
    run("training", f"{CAMVID}/train.json", dataset_dir=CAMVID_REAL, output_dir=out, max_epochs=1)
    run("evaluating", evaluate_configs(CAMVID), dataset_dir=CAMVID_REAL, output_dir=out)
    return out


@needs_camvid
def test_camvid_on_real_files_trains_and_reports_every_class(camvid_real_run):
    scalars, images = tb_tags(camvid_real_run / "tb")
    assert {"train/loss", "val_miou", "val_pixel_accuracy", "val_iou_sky", "val_iou_void"} <= scalars
    assert "val/image_reference_prediction" in images
    eval_dir = camvid_real_run / "eval"
    header = read_csv(eval_dir / "per_case.csv")[0]
    assert header[:3] == ["case_id", "pixel_accuracy", "miou"] and "iou_bicyclist" in header and "iou_void" in header
    classes = [r[0] for r in read_csv(eval_dir / "class_scores.csv")[1:]]
    assert classes[:12] == ["sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car",
                            "pedestrian", "bicyclist", "void"] and classes[-1] == "mean"
    matrix = np.array([r[1:] for r in read_csv(eval_dir / "confusion_matrix.csv")[1:]], dtype=np.int64)
    assert matrix.shape == (12, 12) and matrix.sum() == 3 * 480 * 360  # every pixel of the 3 test frames
    assert Image.open(eval_dir / "confusion_matrix.png").size[0] > 300
    cases = [r[0] for r in read_csv(eval_dir / "per_case.csv")[1:]]
    assert sorted(p.stem for p in (eval_dir / "cases").glob("*.png")) == sorted(cases)
    assert Image.open(eval_dir / "cases" / f"{cases[0]}.png").size[1] >= 256  # photo | reference | prediction
    text = check_report(camvid_real_run, cases, ["miou", "iou_void", "val_miou"])
    assert "class_scores.csv" in text and "bicyclist" in text and "confusion_matrix.png" in text


@needs_camvid
def test_camvid_inference_on_real_frames_writes_ids_and_colours(camvid_real_run, tmp_path):
    out = tmp_path / "pred"
    run("inference", f"{CAMVID}/inference.json", input=CAMVID_REAL / "images_prepped_test", output_dir=out,
        ckpt_path=camvid_real_run / "models" / "model.pt")
    for photo in sorted((CAMVID_REAL / "images_prepped_test").glob("*.png")):
        ids, colour = Image.open(out / photo.name), Image.open(out / "colour" / photo.name)
        assert ids.mode == "L" and colour.mode == "RGB" and ids.size == colour.size == (480, 360)
        assert np.asarray(ids).max() <= 11


def test_camvid_ignore_void_on_the_segnet_layout(tmp_path):
    """ignore_void: the model predicts 11 classes, void is in no metric, and predictions never say void."""
    from monai_app.synthetic.camvid import write_camvid

    data = tmp_path / "CamVid"
    write_camvid(data, layout="segnet", train=4, val=2, test=2, size=(36, 48), seed=4)
    out = tmp_path / "run"
    run("training", f"{CAMVID}/train.json", dataset_dir=data, output_dir=out, max_epochs=1, ignore_void=True)
    run("evaluating", evaluate_configs(CAMVID), dataset_dir=data, output_dir=out, ignore_void=True)
    scalars, _ = tb_tags(out / "tb")
    assert "val_iou_bicyclist" in scalars and not any("void" in s for s in scalars)
    header = read_csv(out / "eval" / "per_case.csv")[0]
    assert not any("void" in h for h in header)
    matrix = np.array([r[1:] for r in read_csv(out / "eval" / "confusion_matrix.csv")[1:]], dtype=np.int64)
    labels = [np.asarray(Image.open(p)) for p in sorted((data / "testannot").glob("*.png"))]
    assert matrix.shape == (11, 11) and matrix.sum() == sum(int((lab != 11).sum()) for lab in labels)
    pred = tmp_path / "pred"
    run("inference", f"{CAMVID}/inference.json", input=data / "test", output_dir=pred, ignore_void=True,
        ckpt_path=out / "models" / "model.pt")
    assert all(np.asarray(Image.open(p)).max() <= 10 for p in pred.glob("*.png"))


@needs_camvid
def test_camvid_bundle_runs_from_inside_its_folder(camvid_real_run, tmp_path):
    frame = CAMVID_REAL / "images_prepped_test" / "0016E5_07959.png"
    bundle_run("inference", "configs/inference.json", cwd=REPO / CAMVID.rsplit("/", 1)[0], input=frame,
               output_dir=tmp_path, ckpt_path=camvid_real_run / "models" / "model.pt", **TINY)
    assert Image.open(tmp_path / "0016E5_07959.png").size == (480, 360)


# -------------------------------------------------------------------------------------------------- Pascal VOC
VOC = "bundles/voc_unet2d/configs"
VOC_REAL = VOC_SAMPLES


@pytest.fixture(scope="module")
def voc_run(tmp_path_factory) -> tuple[Path, Path]:
    from monai_app.synthetic.voc import write_voc

    data = tmp_path_factory.mktemp("voc")
    write_voc(data, train=8, val=3, size=(72, 96), seed=1)
    out = tmp_path_factory.mktemp("voc_run")
    run("training", f"{VOC}/train.json", dataset_dir=data, output_dir=out, max_epochs=2)
    run("evaluating", evaluate_configs(VOC), dataset_dir=data, output_dir=out)
    return data, out


def test_voc_trains_on_the_official_splits_and_reports_dice_and_iou(voc_run):
    data, out = voc_run
    split = json.loads((out / "split.json").read_text())
    official_val = (data / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").read_text().split()
    assert split["test"] == sorted(official_val) and not set(split["train"]) & set(split["validation"])
    scalars, images = tb_tags(out / "tb")
    assert {"train/loss", "val_miou", "val_mean_dice", "val_iou_person", "val_iou_background"} <= scalars
    assert "val/image_reference_prediction" in images
    header = read_csv(out / "eval" / "per_case.csv")[0]
    assert "iou_tvmonitor" in header and "dice_aeroplane" in header and len(header) == 3 + 2 * 21
    labels = [np.asarray(Image.open(data / f"VOCdevkit/VOC2012/SegmentationClass/{i}.png")) for i in official_val]
    matrix = np.array([r[1:] for r in read_csv(out / "eval" / "confusion_matrix.csv")[1:]], dtype=np.int64)
    assert matrix.shape == (21, 21) and matrix.sum() == sum(int((lab != 255).sum()) for lab in labels)  # 255 ignored
    assert sorted(p.stem for p in (out / "eval" / "cases").glob("*.png")) == sorted(official_val)
    check_report(out, official_val, ["miou", "iou_tvmonitor", "dice_aeroplane"])


@needs_voc
def test_voc_scores_and_segments_the_real_sample(voc_run, tmp_path):
    """Evaluation on the real sample ignores its 255 outlines; inference writes a VOC palette PNG at its size."""
    from monai_app.datasets.voc import PALETTE

    _, out = voc_run
    ckpt = out / "models" / "model.pt"
    run("evaluating", evaluate_configs(VOC), dataset_dir=VOC_REAL, output_dir=tmp_path / "eval_run", ckpt_path=ckpt)
    label = np.asarray(Image.open(VOC_REAL / "VOC2012/SegmentationClass/2007_000063.png"))
    matrix = np.array([r[1:] for r in read_csv(tmp_path / "eval_run/eval/confusion_matrix.csv")[1:]], dtype=np.int64)
    assert matrix.sum() == int((label != 255).sum()) and matrix[[0, 9, 12]].sum() == matrix.sum()
    run("inference", f"{VOC}/inference.json", input=VOC_REAL / "VOC2012/JPEGImages", output_dir=tmp_path / "pred",
        ckpt_path=ckpt)
    pred = Image.open(tmp_path / "pred" / "2007_000063.png")
    assert pred.mode == "P" and pred.size == (500, 375) and np.asarray(pred).max() <= 20
    assert pred.getpalette()[: 21 * 3] == [c for colour in PALETTE[:21] for c in colour]


# ------------------------------------------------------------------------------------------ Clothing Co-Parsing
CCP = "bundles/ccp_unet2d/configs"
CCP_TINY = {"roi_size": "[64,48]"}


def test_ccp_trains_with_class_weights_and_reports_both_iou_definitions(tmp_path):
    from monai_app.synthetic.ccp import write_ccp

    data = tmp_path / "ccp"
    write_ccp(data, pixel_level=10, image_level=2, size=(96, 64), seed=3)
    out = tmp_path / "run"
    proc = run("training", f"{CCP}/train.json", dataset_dir=data, output_dir=out, max_epochs=1, class_weighting=True,
               **CCP_TINY)
    assert "2 photo(s) have image-level tags only" in proc.stdout + proc.stderr
    assert "class pixel counts over" in proc.stdout + proc.stderr
    run("evaluating", evaluate_configs(CCP), dataset_dir=data, output_dir=out, **CCP_TINY)
    header, *rows = read_csv(out / "eval" / "class_scores.csv")
    assert header == ["class", "pixels", "iou", "dice", "precision", "recall", "image_mean_iou",
                      "image_mean_precision", "images"]
    assert [r[0] for r in rows] == ["background", "hair", "skin", "accessories", "hat", "coat", "shirt", "trousers",
                                    "dress", "skirt", "underwear", "socks", "scarf/tie", "shoes", "mean"]
    assert sum(len(v) for v in json.loads((out / "split.json").read_text()).values() if isinstance(v, list)) == 10
    cases = [r[0] for r in read_csv(out / "eval" / "per_case.csv")[1:]]
    assert sorted(p.stem for p in (out / "eval" / "cases").glob("*.png")) == sorted(cases)
    check_report(out, cases, ["miou", "iou_hair", "scarf/tie"])


def test_ccp_segments_the_real_photos_with_the_trained_grouping(tmp_path):
    """The real sample photos (550 wide, portrait) give palette PNGs of the 14 classes at their own size."""
    from monai_app.synthetic.ccp import write_ccp

    data = tmp_path / "ccp"
    write_ccp(data, pixel_level=4, image_level=0, size=(96, 64), seed=1)
    run("training", f"{CCP}/train.json", dataset_dir=data, output_dir=tmp_path / "run", max_epochs=1, **CCP_TINY)
    run("inference", f"{CCP}/inference.json", input=CCP_SAMPLES / "photos", output_dir=tmp_path / "pred",
        ckpt_path=tmp_path / "run" / "models" / "model.pt", **CCP_TINY)
    for photo in sorted((CCP_SAMPLES / "photos").glob("*.jpg")):
        pred = Image.open(tmp_path / "pred" / f"{photo.stem}.png")
        assert pred.mode == "P" and pred.size == Image.open(photo).size and np.asarray(pred).max() < 14
