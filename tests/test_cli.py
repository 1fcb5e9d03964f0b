"""The monai-app command line: one-line errors for user mistakes, overrides, listing, scoring."""

from __future__ import annotations

import re

import numpy as np
import nibabel as nib
import pytest

from monai_app.cli import main, parse_overrides


def test_overrides_parse_json_values_and_dashes():
    assert parse_overrides(["--max_epochs", "5", "--roi-size", "[96,96,96]", "--device=cpu", "--amp", "false"]) == {
        "max_epochs": 5, "roi_size": [96, 96, 96], "device": "cpu", "amp": False}


def test_override_without_value_is_a_user_error(capsys):
    assert main(["train", "brats_unet3d", "--dataset-dir", "x", "--max_epochs"]) == 2
    assert "--max_epochs needs a value" in capsys.readouterr().err


def test_missing_dataset_dir_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    code = main(["train", "brats_unet3d", "--dataset-dir", str(missing), "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert str(missing) in err and "does not exist" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_bundle_lists_the_available_ones(capsys):
    assert main(["train", "no_such_bundle", "--dataset-dir", "x"]) == 2
    assert "brats_unet3d" in capsys.readouterr().err


def test_list_describes_every_bundle_with_its_data_layouts(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "brats_unet3d" in out and "FLAIR" in out and "enhancing tumour" in out
    for bundle in ("carvana_unet2d", "camvid_unet2d", "voc_unet2d", "ccp_unet2d"):
        assert bundle in out
    for layout in ("imagesTr/", "<case>_{flair,t1,t1ce,t2,seg}", "train_masks.csv", "trainannot/",
                   "ImageSets/Segmentation", "annotations/pixel-level"):
        assert layout in out


@pytest.mark.parametrize("command", ["list", "synth", "validate", "train", "evaluate", "report", "infer", "export",
                                     "package", "score"])
def test_every_command_help_shows_an_example_of_itself(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    examples = capsys.readouterr().out.split("examples:", 1)[1]
    assert re.search(rf"^  monai-app {command}\b", examples, re.MULTILINE)


def test_score_writes_tables(tmp_path, capsys):
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir(), pred.mkdir()
    label = np.zeros((10, 10, 10), np.uint8)
    label[2:6, 2:6, 2:6] = 1
    nib.save(nib.Nifti1Image(label, np.eye(4)), ref / "c1.nii.gz")
    nib.save(nib.Nifti1Image(label, np.eye(4)), pred / "c1.nii.gz")
    assert main(["score", "--pred", str(pred), "--ref", str(ref), "--format", "msd", "--out", str(tmp_path / "s")]) == 0
    lines = (tmp_path / "s" / "per_case.csv").read_text().splitlines()
    assert lines[1].startswith("c1,1,1,1,0,0,0")


def test_synth_rejects_an_unknown_dataset(tmp_path, capsys):
    assert main(["synth", "kitti", "--out", str(tmp_path)]) == 2
    assert "kitti" in capsys.readouterr().err


@pytest.mark.parametrize("dataset, folder", [("carvana", "train_masks"), ("camvid", "annotations_prepped_train"),
                                             ("voc", "VOCdevkit/VOC2012/SegmentationClass"),
                                             ("ccp", "annotations/pixel-level")])
def test_synth_writes_2d_layouts(dataset, folder, tmp_path, capsys):
    assert main(["synth", dataset, "--out", str(tmp_path / dataset), "--cases", "2", "--size", "32", "48"]) == 0
    assert (tmp_path / dataset / folder).is_dir()
    assert str(tmp_path / dataset) in capsys.readouterr().out


def test_synth_unknown_dataset_is_a_user_error(tmp_path, capsys):
    assert main(["synth", "mnist", "--out", str(tmp_path)]) == 2
    assert "available: brats, carvana, camvid, voc, ccp" in capsys.readouterr().err
