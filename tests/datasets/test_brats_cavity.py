"""Whether a training learns the resection cavity (BraTS 2024-2025 post-treatment label 4) as a fourth output
channel: decided once per run folder, from the training labels or by the user, and kept for resumes and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_app.datasets.brats_cavity import CAVITY_RECORD, cavity_channel
from monai_app.errors import DatasetError, UserInputError


def _labels(folder: Path, values: dict[str, int]) -> list[dict]:
    """A training datalist of tiny label maps, case id -> the largest label it holds."""
    items = []
    for case, top in values.items():
        data = np.zeros((4, 4, 4), np.uint8)
        data.flat[: top + 1] = np.arange(top + 1)
        path = folder / f"{case}-seg.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
        items.append({"case_id": case, "image": [], "label": str(path)})
    return items


def test_auto_finds_the_cavity_once_and_keeps_the_answer(tmp_path):
    train = _labels(tmp_path / "data", {"BraTS-GLI-00001-100": 3, "BraTS-GLI-00002-100": 4})
    run = tmp_path / "run"
    assert cavity_channel("auto", "brats2023", train, run) is True
    record = json.loads((run / CAVITY_RECORD).read_text())
    assert record["resection_cavity"] is True and record["decided_by"] == "auto: label 4 in BraTS-GLI-00002-100"
    assert record["dataset_format"] == "brats2023" and record["train_cases"] == 2
    for item in train:  # a resumed run or its evaluation reads no label again
        Path(item["label"]).unlink()
    assert cavity_channel("auto", "brats2023", train, run) is True


def test_auto_without_a_cavity_label_in_training_is_off(tmp_path):
    train = _labels(tmp_path / "data", {"BraTS-GLI-00001-000": 3, "BraTS-GLI-00002-000": 2})
    assert cavity_channel("auto", "brats2023", train, tmp_path / "run") is False
    assert json.loads((tmp_path / "run" / CAVITY_RECORD).read_text())["resection_cavity"] is False
    more = train + _labels(tmp_path / "data", {"BraTS-GLI-00003-100": 4})  # another split: decided again
    assert cavity_channel("auto", "brats2023", more, tmp_path / "run") is True


def test_the_user_decides_and_evaluation_follows_the_run(tmp_path):
    train = _labels(tmp_path / "data", {"BraTS-GLI-00001-100": 4})
    assert cavity_channel("false", "brats2023", train, tmp_path / "run") is False
    assert cavity_channel("auto", "brats2023", train, tmp_path / "run") is False  # the run's 3-channel model
    assert cavity_channel(True, "brats2023", train, tmp_path / "other") is True


def test_formats_without_a_cavity_label(tmp_path):
    train = _labels(tmp_path / "data", {"BRATS_001": 3})
    for fmt in ("msd", "brats2021", "brats2024ped"):
        assert cavity_channel("auto", fmt, train, tmp_path / "run") is False
    assert not (tmp_path / "run").exists()  # nothing read, nothing recorded
    with pytest.raises(UserInputError, match="--resection_cavity true: msd labels have no resection cavity"):
        cavity_channel("true", "msd", train, tmp_path / "run")
    with pytest.raises(UserInputError, match="--resection_cavity: expected true or false, got 'sometimes'"):
        cavity_channel("sometimes", "brats2023", train, tmp_path / "run")


def test_an_unreadable_label_is_named(tmp_path):
    train = _labels(tmp_path / "data", {"BraTS-GLI-00001-000": 3})
    Path(train[0]["label"]).write_bytes(b"not a NIfTI file")
    with pytest.raises(DatasetError, match=f"{train[0]['label']}: cannot be read as NIfTI"):
        cavity_channel("auto", "brats2023", train, tmp_path / "run")
