"""BraTS on disk: label conventions of the layouts (MSD, 2018-2021, 2023-2025 with the resection cavity, PED
2024-2025), and finding cases in real-layout folders built by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses, EnsureChannelFirstd, LoadImaged

from monai_app.datasets.brats import detect_format, find_cases
from monai_app.datasets.brats_inputs import find_inputs, input_format
from monai_app.errors import DatasetError
from monai_app.transforms.brats import BratsLabelToRegionsd

APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "  # what a macOS '._*' companion starts with
SUFFIXES_2021 = ("_flair", "_t1", "_t1ce", "_t2")  # expected channel order: FLAIR, T1, T1ce, T2
SUFFIXES_2023 = ("-t2f", "-t1n", "-t1c", "-t2w")  # the same channels in 2023 names


def _nii(path: Path, shape: tuple[int, ...] = (4, 4, 4), value: float = 1.0, dtype=np.float32) -> Path:
    """A tiny NIfTI file (``.nii`` or ``.nii.gz`` by the name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.full(shape, value, dtype=dtype), np.eye(4)), path)
    return path


def _case(folder: Path, suffixes: tuple[str, ...], seg: str | None, ext: str = ".nii.gz") -> Path:
    """One per-modality case folder named like its files; ``seg`` is the segmentation suffix or None (no label)."""
    for suffix in suffixes:
        _nii(folder / f"{folder.name}{suffix}{ext}")
    if seg is not None:
        _nii(folder / f"{folder.name}{seg}{ext}", dtype=np.uint8)
    return folder


def _msd(root: Path, train: list[str], test: list[str]) -> Path:
    """A hand-written MSD Task01 folder: 4-D images, 3-D labels, and a dataset.json listing them in the given order."""
    for case in train:
        _nii(root / "imagesTr" / f"{case}.nii.gz", (4, 4, 4, 4))
        _nii(root / "labelsTr" / f"{case}.nii.gz", dtype=np.uint8)
    for case in test:
        _nii(root / "imagesTs" / f"{case}.nii.gz", (4, 4, 4, 4))
    meta = {"name": "BRATS", "tensorImageSize": "4D", "numTraining": len(train), "numTest": len(test),
            "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in train],
            "test": [f"./imagesTs/{c}.nii.gz" for c in test]}
    (root / "dataset.json").write_text(json.dumps(meta, indent=4))
    return root


# --- label -> region conventions ----------------------------------------------------------------------------------

# A (1, 2, 2, 1) label map holding background and the three tumour labels of each layout, voxel by voxel:
#   [0, 0] background, [0, 1] first tumour label, [1, 0] second, [1, 1] third.
# MSD: 1 edema, 2 non-enhancing core, 3 enhancing.  2018-21: 1 NCR/NET, 2 edema, 4 enhancing.  2023: 1 NCR, 2 edema,
# 3 enhancing.  Expected region masks (WT, TC, ET) follow docs/DATASETS.md section 1, written out voxel by voxel.
# PED 2024-2025: 1 ET, 2 NETC, 3 CC, 4 ED.
@pytest.mark.parametrize("fmt, labels, wt, tc, et", [
    ("msd", [[0, 1], [2, 3]], [[0, 1], [1, 1]], [[0, 0], [1, 1]], [[0, 0], [0, 1]]),
    ("brats2021", [[0, 1], [2, 4]], [[0, 1], [1, 1]], [[0, 1], [0, 1]], [[0, 0], [0, 1]]),
    ("brats2023", [[0, 1], [2, 3]], [[0, 1], [1, 1]], [[0, 1], [0, 1]], [[0, 0], [0, 1]]),
    ("brats2024ped", [[3, 1], [2, 4]], [[1, 1], [1, 1]], [[1, 1], [1, 0]], [[0, 1], [0, 0]]),
])
def test_label_to_regions_per_layout(fmt, labels, wt, tc, et):
    label = torch.tensor(labels, dtype=torch.uint8)[None, :, :, None]  # (1, 2, 2, 1)
    out = BratsLabelToRegionsd(keys="label", dataset_format=fmt)({"label": label})["label"]
    expected = torch.tensor([wt, tc, et], dtype=torch.float32)[..., None]  # (3, 2, 2, 1)
    assert out.shape == (3, 2, 2, 1) and out.dtype == torch.float32
    assert torch.equal(torch.as_tensor(out), expected)


def test_monai_brats_converter_misreads_msd_labels():
    """The trap of docs/DATASETS.md: MONAI's converter assumes ET = 4, so on MSD labels its ET is empty and its TC is
    edema; ours puts the label-3 voxels in ET."""
    label = torch.tensor([[0, 1], [2, 3]], dtype=torch.uint8)[None, :, :, None]
    monai_tc, _, monai_et = ConvertToMultiChannelBasedOnBratsClasses()(label)  # MONAI's order: TC, WT, ET
    assert not monai_et.any()
    assert torch.equal(monai_tc.to(torch.uint8)[..., 0], torch.tensor([[0, 1], [0, 0]], dtype=torch.uint8))  # edema
    ours = BratsLabelToRegionsd(keys="label", dataset_format="msd")({"label": label})["label"]
    assert torch.equal(torch.as_tensor(ours[2, ..., 0]), torch.tensor([[0.0, 0.0], [0.0, 1.0]]))


def test_the_resection_cavity_is_a_fourth_channel_outside_every_tumour_region():
    """BraTS 2024-2025 post-treatment label 4 (RC): in no tumour region; with ``cavity`` its own fourth mask."""
    label = torch.tensor([[0, 4], [2, 3]], dtype=torch.uint8)[None, :, :, None]
    three = BratsLabelToRegionsd(keys="label", dataset_format="brats2023")({"label": label})["label"]
    assert torch.equal(torch.as_tensor(three[:, 0, 1]), torch.zeros(3, 1))  # RC is not tumour
    four = BratsLabelToRegionsd(keys="label", dataset_format="brats2023", cavity=True)({"label": label})["label"]
    assert four.shape == (4, 2, 2, 1) and torch.equal(torch.as_tensor(four[:3]), torch.as_tensor(three))
    assert torch.equal(torch.as_tensor(four[3, ..., 0]), torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(DatasetError, match="brats2024ped labels have no resection cavity"):
        BratsLabelToRegionsd(keys="label", dataset_format="brats2024ped", cavity=True)


@pytest.mark.parametrize("fmt, bad", [("msd", 4), ("brats2021", 3), ("brats2023", 5), ("brats2024ped", 5)])
def test_label_values_outside_the_format_name_the_file(tmp_path, fmt, bad):
    path = tmp_path / "BRATS_042_seg.nii.gz"
    data = np.zeros((4, 4, 4), dtype=np.uint8)
    data[1, 1, 1], data[2, 2, 2] = 1, bad
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    loaded = EnsureChannelFirstd("label")(LoadImaged("label", image_only=True)({"label": str(path)}))
    with pytest.raises(DatasetError, match=re.escape(str(path))) as err:
        BratsLabelToRegionsd(keys="label", dataset_format=fmt)(loaded)
    assert str(bad) in str(err.value) and fmt in str(err.value)



def test_fractional_label_values_are_refused(tmp_path):
    """A label resampled with linear interpolation holds values between the labels: refuse it, naming the file."""
    path = tmp_path / "BRATS_042_seg.nii.gz"
    data = np.zeros((4, 4, 4), dtype=np.float32)
    data[1, 1, 1], data[2, 2, 2] = 2.5, 3
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    loaded = EnsureChannelFirstd("label")(LoadImaged("label", image_only=True)({"label": str(path)}))
    with pytest.raises(DatasetError, match=re.escape(str(path))):
        BratsLabelToRegionsd(keys="label", dataset_format="msd")(loaded)


# --- find_cases: per-modality layouts ------------------------------------------------------------------------------

def test_brats2018_nested_hgg_lgg_folders_sorted_by_case_id(tmp_path):
    seg = "_seg"
    _case(tmp_path / "HGG" / "Brats18_2013_2_1", SUFFIXES_2021, seg)
    _case(tmp_path / "HGG" / "Brats18_TCIA01_131_1", SUFFIXES_2021, seg)
    _case(tmp_path / "LGG" / "Brats18_2013_0_1", SUFFIXES_2021, seg)  # sorts first by id, though LGG > HGG
    assert detect_format(tmp_path) == "brats2021"
    cases = find_cases(tmp_path)
    assert [c["case_id"] for c in cases] == ["Brats18_2013_0_1", "Brats18_2013_2_1", "Brats18_TCIA01_131_1"]
    first = cases[0]
    assert first["label"] == str(tmp_path / "LGG" / "Brats18_2013_0_1" / "Brats18_2013_0_1_seg.nii.gz")
    assert first["image"][0] == str(tmp_path / "LGG" / "Brats18_2013_0_1" / "Brats18_2013_0_1_flair.nii.gz")
    assert find_cases(tmp_path, part="test") == []


def test_uncompressed_nii_and_misnamed_seg(tmp_path):
    _case(tmp_path / "BraTS20_Training_354", SUFFIXES_2021, "_seg", ext=".nii")
    case = _case(tmp_path / "BraTS20_Training_355", SUFFIXES_2021, seg=None, ext=".nii")
    misnamed = _nii(case / "W39_1998.09.19_Segm.nii", dtype=np.uint8)  # as shipped in the BraTS 2020 release
    cases = find_cases(tmp_path, "brats2021")
    assert [c["case_id"] for c in cases] == ["BraTS20_Training_354", "BraTS20_Training_355"]
    assert cases[0]["label"].endswith("BraTS20_Training_354_seg.nii")
    assert [Path(p).name for p in cases[0]["image"]] == [f"BraTS20_Training_354{s}.nii" for s in SUFFIXES_2021]
    assert cases[1]["label"] == str(misnamed)
    assert [Path(p).name for p in cases[1]["image"]] == [f"BraTS20_Training_355{s}.nii" for s in SUFFIXES_2021]
    assert find_cases(tmp_path, "brats2021", part="test") == []  # the misnamed-seg case is a labelled case


def test_macos_companion_files_are_ignored(tmp_path):
    case = _case(tmp_path / "BraTS20_Training_001", SUFFIXES_2021, "_seg")
    for suffix in (*SUFFIXES_2021, "_seg"):  # beside the real files, and mirrored under __MACOSX as macOS zips do
        (case / f"._BraTS20_Training_001{suffix}.nii.gz").write_bytes(APPLE_DOUBLE)
        mirror = tmp_path / "__MACOSX" / "BraTS20_Training_001" / f"._BraTS20_Training_001{suffix}.nii.gz"
        mirror.parent.mkdir(parents=True, exist_ok=True)
        mirror.write_bytes(APPLE_DOUBLE)
    (tmp_path / "._BraTS20_Training_001").write_bytes(APPLE_DOUBLE)
    assert detect_format(tmp_path) == "brats2021"
    cases = find_cases(tmp_path)
    assert len(cases) == 1 and cases[0]["case_id"] == "BraTS20_Training_001"
    assert [Path(p).name for p in cases[0]["image"]] == [f"BraTS20_Training_001{s}.nii.gz" for s in SUFFIXES_2021]
    assert Path(cases[0]["label"]).name == "BraTS20_Training_001_seg.nii.gz"
    assert find_cases(tmp_path, part="test") == []


@pytest.mark.parametrize("fmt, ids, suffixes, seg", [
    ("brats2021", ["BraTS20_Training_010", "BraTS20_Training_002", "BraTS20_Training_001"], SUFFIXES_2021, "_seg"),
    ("brats2023", ["BraTS-GLI-00010-000", "BraTS-GLI-00002-001", "BraTS-GLI-00002-000"], SUFFIXES_2023, "-seg"),
])
def test_channel_order_sorting_and_test_part(tmp_path, fmt, ids, suffixes, seg):
    for case in ids:  # written out of order
        _case(tmp_path / case, suffixes, seg)
    unlabelled = ids[0].replace("Training", "Validation").replace("00010", "99999")
    _case(tmp_path / unlabelled, suffixes, seg=None)
    assert detect_format(tmp_path) == fmt
    train = find_cases(tmp_path)
    assert [c["case_id"] for c in train] == sorted(ids)
    for case in train:
        folder = tmp_path / case["case_id"]
        # flair, t1, t1ce, t2 - for 2023 that is t2f, t1n, t1c, t2w
        assert case["image"] == [str(folder / f"{case['case_id']}{s}.nii.gz") for s in suffixes]
        assert case["label"] == str(folder / f"{case['case_id']}{seg}.nii.gz")
    test = find_cases(tmp_path, fmt, part="test")
    assert len(test) == 1 and test[0]["case_id"] == unlabelled and "label" not in test[0]
    assert test[0]["image"] == [str(tmp_path / unlabelled / f"{unlabelled}{s}.nii.gz") for s in suffixes]


@pytest.mark.parametrize("ids, fmt", [
    (["BraTS-GLI-02105-100", "BraTS-MET-00001-000", "BraTS-MEN-00004-000", "BraTS-SSA-00002-000"], "brats2023"),
    (["BraTS-PED-00030-000", "BraTS-PED-00012-000"], "brats2024ped"),
])
def test_the_2023_2025_sub_challenges_are_told_apart_by_their_case_ids(tmp_path, ids, fmt):
    """Every sub-challenge shares the -t2f names; only BraTS-PED 2024-2025 numbers its labels otherwise."""
    for case in ids:
        _case(tmp_path / "TrainingData" / case, SUFFIXES_2023, "-seg")
    assert detect_format(tmp_path) == fmt
    assert [c["case_id"] for c in find_cases(tmp_path)] == sorted(ids)
    assert input_format(tmp_path) == fmt and input_format(tmp_path / "TrainingData" / ids[0]) == fmt
    assert find_inputs(tmp_path / "TrainingData" / ids[0])[0]["case_id"] == ids[0]
    assert [c["case_id"] for c in find_cases(tmp_path, "brats2023")] == sorted(ids)  # BraTS-PED 2023: glioma numbers


def test_a_folder_mixing_ped_and_other_cases_asks_for_a_format(tmp_path):
    for case in ("BraTS-PED-00001-000", "BraTS-GLI-00001-000"):
        _case(tmp_path / case, SUFFIXES_2023, "-seg")
    for call in (detect_format, find_cases, input_format):
        with pytest.raises(DatasetError, match=r"1 of 2 case folders are BraTS-PED cases .*brats2024ped"):
            call(tmp_path)
    assert len(find_cases(tmp_path, "brats2023")) == 2  # an explicit format reads them all
    assert input_format(tmp_path, "brats2024ped") == "brats2024ped"


# --- find_cases: MSD ------------------------------------------------------------------------------------------------

def test_msd_training_list_is_sorted_by_case_id(tmp_path):
    root = _msd(tmp_path / "Task01_BrainTumour", ["BRATS_003", "BRATS_001", "BRATS_002"], ["BRATS_005", "BRATS_004"])
    assert detect_format(root) == "msd"
    cases = find_cases(root)
    assert [c["case_id"] for c in cases] == ["BRATS_001", "BRATS_002", "BRATS_003"]
    for case in cases:  # image and label stay paired after sorting
        assert case["image"] == str(root / "imagesTr" / f"{case['case_id']}.nii.gz")
        assert case["label"] == str(root / "labelsTr" / f"{case['case_id']}.nii.gz")
    test = find_cases(root, part="test")
    assert [c["case_id"] for c in test] == ["BRATS_004", "BRATS_005"]
    assert not any("label" in c for c in test)


@pytest.mark.parametrize("text", ["{not json", json.dumps({"name": "BRATS", "test": []}), "[]"])
def test_msd_bad_dataset_json_is_named(tmp_path, text):
    root = _msd(tmp_path / "Task01_BrainTumour", ["BRATS_001"], [])
    (root / "dataset.json").write_text(text)
    with pytest.raises(DatasetError, match=re.escape(str(root / "dataset.json"))):
        find_cases(root)


def test_msd_listed_file_missing_is_named(tmp_path):
    root = _msd(tmp_path / "Task01_BrainTumour", ["BRATS_001", "BRATS_002"], [])
    (root / "labelsTr" / "BRATS_002.nii.gz").unlink()
    with pytest.raises(DatasetError, match=re.escape(str(root / "labelsTr" / "BRATS_002.nii.gz"))):
        find_cases(root)


def test_missing_or_empty_dataset_folder_is_named(tmp_path):
    empty, missing = tmp_path / "empty_dataset", tmp_path / "no_such_dataset"
    empty.mkdir()
    for folder in (empty, missing):
        with pytest.raises(DatasetError, match=re.escape(str(folder))):
            detect_format(folder)
        with pytest.raises(DatasetError, match=re.escape(str(folder))):
            find_cases(folder)


# --- find_inputs / input_format -------------------------------------------------------------------------------------

def test_inputs_single_4d_file(tmp_path):
    image = _nii(tmp_path / "BRATS_485.nii.gz", (4, 4, 4, 4))
    assert find_inputs(image) == [{"case_id": "BRATS_485", "image": str(image)}]
    assert input_format(image) == "msd"


def test_inputs_folder_of_4d_files_ignores_hidden_and_other_files(tmp_path):
    a = _nii(tmp_path / "patient_b.nii.gz", (4, 4, 4, 4))
    b = _nii(tmp_path / "patient_a.nii", (4, 4, 4, 4))
    (tmp_path / "._patient_a.nii").write_bytes(APPLE_DOUBLE)
    (tmp_path / "._patient_b.nii.gz").write_bytes(APPLE_DOUBLE)
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "notes.txt").write_text("not an image")
    cases = find_inputs(tmp_path)
    assert cases == [{"case_id": "patient_a", "image": str(b)}, {"case_id": "patient_b", "image": str(a)}]
    assert input_format(tmp_path) == "msd"


def test_inputs_one_brats2023_case_folder(tmp_path):
    case = _case(tmp_path / "BraTS-GLI-00123-000", SUFFIXES_2023, seg=None)
    cases = find_inputs(case)
    assert len(cases) == 1 and cases[0]["case_id"] == "BraTS-GLI-00123-000"
    assert cases[0]["image"] == [str(case / f"BraTS-GLI-00123-000{s}.nii.gz") for s in SUFFIXES_2023]
    assert input_format(case) == "brats2023"


def test_inputs_folder_of_case_folders(tmp_path):
    for case in ("BraTS20_Validation_002", "BraTS20_Validation_001"):
        _case(tmp_path / case, SUFFIXES_2021, seg=None)
    (tmp_path / "._BraTS20_Validation_001").write_bytes(APPLE_DOUBLE)
    cases = find_inputs(tmp_path)
    assert [c["case_id"] for c in cases] == ["BraTS20_Validation_001", "BraTS20_Validation_002"]
    assert [Path(p).name for p in cases[0]["image"]] == [f"BraTS20_Validation_001{s}.nii.gz" for s in SUFFIXES_2021]
    assert input_format(tmp_path) == "brats2021"


def test_inputs_msd_root_gives_its_test_images(tmp_path):
    root = _msd(tmp_path / "Task01_BrainTumour", ["BRATS_001", "BRATS_002"], ["BRATS_486", "BRATS_485"])
    cases = find_inputs(root)
    assert sorted(c["case_id"] for c in cases) == ["BRATS_485", "BRATS_486"]
    assert all(c["image"] == str(root / "imagesTs" / f"{c['case_id']}.nii.gz") and "label" not in c for c in cases)
    assert input_format(root) == "msd"


def test_inputs_skip_existing_outputs(tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    for case in ("BRATS_001", "BRATS_002", "BRATS_003"):
        _nii(inputs / f"{case}.nii.gz", (4, 4, 4, 4))
    _nii(out / "BRATS_002.nii.gz", dtype=np.uint8)  # finished by an earlier run
    (out / "BRATS_003.nii").write_bytes(b"")  # another extension: not a finished .nii.gz output
    assert [c["case_id"] for c in find_inputs(inputs, out, skip_existing=True)] == ["BRATS_001", "BRATS_003"]
    assert [c["case_id"] for c in find_inputs(inputs, out)] == ["BRATS_001", "BRATS_002", "BRATS_003"]


def test_inputs_missing_or_empty_are_named(tmp_path):
    missing, empty = tmp_path / "no_such_input", tmp_path / "empty_input"
    empty.mkdir()
    (empty / "._scan.nii.gz").write_bytes(APPLE_DOUBLE)  # only junk
    for path in (missing, empty):
        with pytest.raises(DatasetError, match=re.escape(str(path))):
            find_inputs(path)


def test_input_format_honours_an_explicit_format(tmp_path):
    case = _case(tmp_path / "BraTS-GLI-00000-000", SUFFIXES_2023, seg=None)
    assert input_format(case, "brats2021") == "brats2021"
    assert input_format(case, "msd") == "msd"
    with pytest.raises(DatasetError, match="brats2019"):
        input_format(case, "brats2019")


def test_a_folder_of_links_to_case_folders_is_read_in_its_own_convention(tmp_path):
    """Datasets assembled from symbolic links to case folders (usual on shared machines) are found and keep their
    label convention: inference on them once wrote MSD numbers into BraTS 2023 cases."""
    from monai_app.datasets.brats import find_cases, resolve_format
    from monai_app.datasets.brats_inputs import input_format
    from monai_app.synthetic.brats import write_brats

    write_brats(tmp_path / "met", cases=2, dataset_format="brats2023", seed=1, shape=(24, 24, 16), test_cases=0,
                subchallenge="MET")
    links = tmp_path / "links"
    links.mkdir()
    for case in sorted((tmp_path / "met").iterdir()):
        (links / case.name).symlink_to(case)
    assert input_format(links) == "brats2023" and resolve_format(links) == "brats2023"
    assert [c["case_id"] for c in find_cases(links)] == sorted(p.name for p in (tmp_path / "met").iterdir())
