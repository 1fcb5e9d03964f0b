"""``monai-app validate``: every case opened, every problem listed with its file, on the real layouts."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES
from monai_app.cli import main
from monai_app.validate import format_validation, validate_dataset


@pytest.fixture(scope="module")
def msd(tmp_path_factory):
    from monai_app.datasets.brats_synth import write_brats

    out = tmp_path_factory.mktemp("v") / "Task01_BrainTumour"
    write_brats(out, cases=5, dataset_format="msd", shape=(32, 32, 24), seed=1, test_cases=0)
    return out


def _copy(src, tmp_path):
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_a_clean_msd_dataset_has_no_problems_and_a_summary(msd):
    result = validate_dataset("brats_unet3d", msd, progress=False)
    assert result.ok and result.cases == 5
    assert result.summary["layout"] == "msd"
    assert result.summary["label values"] <= {0, 1, 2, 3} and 3 in result.summary["label values"]
    assert sum(result.summary["image shapes"].values()) == 5
    assert "no problems found in 5 cases" in format_validation(result)


def test_every_damage_in_an_msd_dataset_is_reported_with_its_file(msd, tmp_path):
    root = _copy(msd, tmp_path)
    ids = sorted(p.name.split(".")[0] for p in (root / "labelsTr").glob("*.nii.gz"))
    # 1: a truncated label file
    data = (root / "labelsTr" / f"{ids[0]}.nii.gz").read_bytes()
    (root / "labelsTr" / f"{ids[0]}.nii.gz").write_bytes(data[: len(data) // 2])
    # 2: label value 4 (a BraTS 2021 label in an MSD dataset) and 3: NaN voxels in the image
    lab = nib.load(root / "labelsTr" / f"{ids[1]}.nii.gz")
    arr = np.asarray(lab.dataobj).copy()
    arr[0, 0, 0] = 4
    nib.save(nib.Nifti1Image(arr, lab.affine), root / "labelsTr" / f"{ids[1]}.nii.gz")
    img = nib.load(root / "imagesTr" / f"{ids[1]}.nii.gz")
    vol = np.asarray(img.dataobj).astype(np.float32)
    vol[1, 1, 1, 0] = np.nan
    nib.save(nib.Nifti1Image(vol, img.affine), root / "imagesTr" / f"{ids[1]}.nii.gz")
    # 4: three modalities instead of four
    img = nib.load(root / "imagesTr" / f"{ids[2]}.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., :3], img.affine), root / "imagesTr" / f"{ids[2]}.nii.gz")
    # 5: a label whose shape differs from its image
    lab = nib.load(root / "labelsTr" / f"{ids[3]}.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(lab.dataobj)[:-2], lab.affine), root / "labelsTr" / f"{ids[3]}.nii.gz")
    # 6: a listed file that is missing
    (root / "imagesTr" / f"{ids[4]}.nii.gz").unlink()

    result = validate_dataset("brats_unet3d", root, progress=False)
    text = "\n".join(result.problems)
    assert f"{ids[0]}.nii.gz: cannot be read as NIfTI" in text
    assert f"{ids[1]}.nii.gz: label values [4] are not msd labels [0, 1, 2, 3]" in text
    assert f"{ids[1]}.nii.gz: 1 NaN or infinite voxel(s)" in text
    assert f"{ids[2]}.nii.gz: expected a 4-D image with 4 modalities" in text and ", 3)" in text
    assert f"{ids[3]}.nii.gz: label shape" in text and "differs from the image's" in text
    assert f"imagesTr/{ids[4]}.nii.gz: listed in dataset.json but does not exist" in text
    assert len(result.problems) == 6 and not result.ok
    assert format_validation(result).endswith("6 problem(s) in 4 of 4 cases")


def test_malformed_dataset_json_and_a_missing_folder_are_problems_not_tracebacks(msd, tmp_path, capsys):
    root = _copy(msd, tmp_path)
    (root / "dataset.json").write_text("{ not json")
    result = validate_dataset("brats_unet3d", root, progress=False)
    assert len(result.problems) == 1 and "dataset.json: not valid JSON" in result.problems[0]
    assert main(["validate", "brats_unet3d", "--dataset-dir", str(tmp_path / "nowhere")]) == 1
    assert "nowhere: dataset folder does not exist" in capsys.readouterr().out


def test_brats2021_case_folders_with_mismatched_modalities(tmp_path):
    from monai_app.datasets.brats_synth import write_brats

    root = tmp_path / "BraTS2021"
    write_brats(root, cases=3, dataset_format="brats2021", shape=(24, 24, 16), seed=2, test_cases=0)
    folders = sorted(p for p in root.rglob("*_t1.nii.gz"))
    t1 = nib.load(folders[0])
    nib.save(nib.Nifti1Image(np.asarray(t1.dataobj)[:-1], t1.affine), folders[0])  # one modality a slice short
    clean = validate_dataset("brats_unet3d", root, progress=False)
    assert clean.summary["layout"] == "brats2021" and clean.summary["label values"] <= {0, 1, 2, 4}
    assert len(clean.problems) == 1 and f"{folders[0]}: shape" in clean.problems[0]
    assert "differs from the FLAIR's" in clean.problems[0]


def test_2d_datasets_from_the_synthetic_writers_validate(tmp_path):
    from monai_app.datasets.camvid_synth import write_camvid
    from monai_app.datasets.carvana_synth import write_carvana
    from monai_app.datasets.ccp_synth import write_ccp
    from monai_app.datasets.voc_synth import write_voc

    write_carvana(tmp_path / "carvana", cars=2, views=2, test_cars=1, size=(32, 48))
    write_camvid(tmp_path / "camvid", layout="segnet", train=3, val=1, test=1, size=(24, 32))
    write_voc(tmp_path / "voc", train=3, val=2, size=(30, 40))
    write_ccp(tmp_path / "ccp", pixel_level=3, image_level=1, size=(48, 32))
    for bundle, folder, labels in (("carvana_unet2d", "carvana", {0, 1}), ("camvid_unet2d", "camvid", set(range(12))),
                                   ("voc_unet2d", "voc", set(range(21)) | {255}), ("ccp_unet2d", "ccp", set(range(59)))):
        result = validate_dataset(bundle, tmp_path / folder, progress=False)
        assert result.ok, (bundle, result.problems)
        assert result.cases > 0 and result.summary["label values"] <= labels, bundle
    shutil.rmtree(tmp_path / "carvana" / "train_masks")  # the same masks from train_masks.csv
    assert validate_dataset("carvana_unet2d", tmp_path / "carvana", progress=False).ok


def test_every_damage_in_2d_datasets_is_reported(tmp_path):
    from scipy.io import savemat

    from monai_app.datasets.camvid_synth import write_camvid
    from monai_app.datasets.ccp_synth import write_ccp
    from monai_app.datasets.voc_synth import write_voc

    write_camvid(tmp_path / "camvid", train=3, val=1, test=1, size=(24, 32))
    images = sorted((tmp_path / "camvid" / "images_prepped_train").glob("*.png"))
    images[0].write_bytes(images[0].read_bytes()[:60])  # a corrupted PNG
    label = sorted((tmp_path / "camvid" / "annotations_prepped_train").glob("*.png"))[1]
    Image.fromarray(np.zeros((20, 32), np.uint8)).save(label)  # a mask of the wrong size
    result = validate_dataset("camvid_unet2d", tmp_path / "camvid", progress=False)
    assert len(result.problems) == 2
    assert f"{images[0]}: cannot be read as an image" in result.problems[0]
    assert f"{label}: label size 32x20 differs from the photo's 32x24" in result.problems[1]

    write_voc(tmp_path / "voc", train=2, val=1, size=(30, 40))
    png = sorted((tmp_path / "voc").rglob("SegmentationClass/*.png"))[0]
    ids = np.asarray(Image.open(png)).copy()
    ids[0, 0] = 30
    pal = Image.open(png).getpalette()
    out = Image.fromarray(ids, mode="P")
    out.putpalette(pal)
    out.save(png)
    problems = validate_dataset("voc_unet2d", tmp_path / "voc", progress=False).problems
    assert problems == [f"{png}: label values [30] are not labels of this dataset"]

    write_ccp(tmp_path / "ccp", pixel_level=2, image_level=0, size=(48, 32))
    mat = sorted((tmp_path / "ccp" / "annotations" / "pixel-level").glob("*.mat"))[0]
    savemat(mat, {"labels": np.zeros((48, 32), np.uint8)})  # the wrong variable name
    problems = validate_dataset("ccp_unet2d", tmp_path / "ccp", progress=False).problems
    assert len(problems) == 1 and f"{mat}: the pixel-level annotation has no variable 'groundtruth'" in problems[0]


@pytest.mark.parametrize("bundle, folder, values", [
    ("camvid_unet2d", "camvid_dataset1", set(range(12))), ("voc_unet2d", "VOCdevkit", {0, 9, 12, 255}),
    ("ccp_unet2d", "ccp", {0, 5, 19, 39, 41, 42, 45, 47, 55})])
def test_the_real_samples_validate(bundle, folder, values, capsys):
    assert main(["validate", bundle, "--dataset-dir", str(SAMPLES / folder)]) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out
    assert validate_dataset(bundle, SAMPLES / folder, progress=False).summary["label values"] == values
