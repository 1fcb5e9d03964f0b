"""The synthetic BraTS writer: exact on-disk layouts the loader reads, and phantoms worth training on."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_app.datasets.brats import FORMATS, detect_format, find_cases
from monai_app.synthetic.brats import write_brats
from monai_app.errors import DatasetError, UserInputError

SHAPE = (40, 36, 32)
CASES, TEST_CASES = 4, 2
MSD_KEYS = ["name", "description", "reference", "licence", "release", "tensorImageSize", "modality", "labels",
            "numTraining", "numTest", "training", "test"]


@pytest.fixture(scope="module", params=sorted(FORMATS))
def dataset(request, tmp_path_factory) -> tuple[str, Path, list[str]]:
    """One small synthetic dataset per layout, written once for the module."""
    root = tmp_path_factory.mktemp(request.param)
    ids = write_brats(root, cases=CASES, dataset_format=request.param, seed=0, shape=SHAPE, test_cases=TEST_CASES)
    return request.param, root, ids


def _load(item: dict) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """A case as (image X×Y×Z×4 in FLAIR, T1, T1ce, T2 order, label or None, affines of every file)."""
    if isinstance(item["image"], str):
        images = [nib.load(item["image"])]
        data = np.asanyarray(images[0].dataobj)
    else:
        images = [nib.load(p) for p in item["image"]]
        data = np.stack([np.asanyarray(i.dataobj) for i in images], axis=-1)
    label = nib.load(item["label"]) if "label" in item else None
    affines = [i.affine for i in images] + ([label.affine] if label is not None else [])
    return data, None if label is None else np.asanyarray(label.dataobj), affines


def test_msd_layout_and_dataset_json(tmp_path):
    ids = write_brats(tmp_path, cases=CASES, seed=0, shape=SHAPE, test_cases=TEST_CASES)
    assert ids == [f"BRATS_{i:03d}" for i in range(1, CASES + TEST_CASES + 1)]
    train, test = ids[:CASES], ids[CASES:]
    assert sorted(p.name for p in (tmp_path / "imagesTr").iterdir()) == [f"{c}.nii.gz" for c in train]
    assert sorted(p.name for p in (tmp_path / "labelsTr").iterdir()) == [f"{c}.nii.gz" for c in train]
    assert sorted(p.name for p in (tmp_path / "imagesTs").iterdir()) == [f"{c}.nii.gz" for c in test]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset.json", "imagesTr", "imagesTs", "labelsTr"]
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert list(meta) == MSD_KEYS
    assert meta["modality"] == {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    assert meta["labels"] == {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}
    assert (meta["name"], meta["tensorImageSize"], meta["numTraining"], meta["numTest"]) == ("BRATS", "4D", 4, 2)
    assert sorted(e["image"] for e in meta["training"]) == [f"./imagesTr/{c}.nii.gz" for c in train]
    assert all(e["label"] == e["image"].replace("imagesTr", "labelsTr") for e in meta["training"])
    assert [e["image"] for e in meta["training"]] != sorted(e["image"] for e in meta["training"])  # shuffled
    assert sorted(meta["test"]) == [f"./imagesTs/{c}.nii.gz" for c in test]


@pytest.mark.parametrize("fmt, files", [
    ("brats2021", ["BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz",
                   "BraTS20_Training_001/BraTS20_Training_001_seg.nii.gz",
                   "BraTS20_Training_001/BraTS20_Training_001_t1.nii.gz",
                   "BraTS20_Training_001/BraTS20_Training_001_t1ce.nii.gz",
                   "BraTS20_Training_001/BraTS20_Training_001_t2.nii.gz",
                   "BraTS20_Validation_001/BraTS20_Validation_001_flair.nii.gz",
                   "BraTS20_Validation_001/BraTS20_Validation_001_t1.nii.gz",
                   "BraTS20_Validation_001/BraTS20_Validation_001_t1ce.nii.gz",
                   "BraTS20_Validation_001/BraTS20_Validation_001_t2.nii.gz"]),
    ("brats2023", ["BraTS-GLI-00000-000/BraTS-GLI-00000-000-seg.nii.gz",
                   "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1c.nii.gz",
                   "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1n.nii.gz",
                   "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2f.nii.gz",
                   "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2w.nii.gz",
                   "BraTS-GLI-00001-000/BraTS-GLI-00001-000-t1c.nii.gz",
                   "BraTS-GLI-00001-000/BraTS-GLI-00001-000-t1n.nii.gz",
                   "BraTS-GLI-00001-000/BraTS-GLI-00001-000-t2f.nii.gz",
                   "BraTS-GLI-00001-000/BraTS-GLI-00001-000-t2w.nii.gz"]),
])
def test_per_modality_file_names(tmp_path, fmt, files):
    ids = write_brats(tmp_path, cases=1, dataset_format=fmt, shape=(16, 16, 16), test_cases=1)
    assert ids == sorted({f.split("/")[0] for f in files})
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == files


def test_find_cases_reads_every_layout(dataset):
    fmt, root, ids = dataset
    assert detect_format(root) == fmt
    train, test = find_cases(root, "auto", "train"), find_cases(root, "auto", "test")
    assert [c["case_id"] for c in train] == ids[:CASES]
    assert [c["case_id"] for c in test] == ids[CASES:]
    assert all("label" in c for c in train) and not any("label" in c for c in test)
    n_images = 1 if fmt == "msd" else 4
    for item in train + test:
        images = [item["image"]] if isinstance(item["image"], str) else item["image"]
        assert len(images) == n_images and all(Path(p).is_file() for p in images)


@pytest.mark.parametrize("dataset", ["msd"], indirect=True)
def test_msd_dtypes_and_channel_last(dataset):
    _, root, _ = dataset
    for item in find_cases(root, "msd", "train"):
        image, label = nib.load(item["image"]), nib.load(item["label"])
        assert image.ndim == 4 and image.shape[3] == 4 and image.get_data_dtype() == np.float32
        assert label.ndim == 3 and label.get_data_dtype() == np.uint8 and label.shape == image.shape[:3]
        assert np.allclose(image.affine, label.affine)


def test_labels_follow_the_layout_numbers(dataset):
    fmt, root, _ = dataset
    spec = FORMATS[fmt]
    present = [set(np.unique(_load(item)[1]).tolist()) for item in find_cases(root, fmt, "train")]
    for values in present:
        assert values <= set(spec.labels) and {spec.edema, spec.necrosis} <= values
    assert any(spec.enhancing not in v for v in present)  # a case with no enhancing tumour
    assert any(spec.enhancing in v for v in present)


def test_geometry_varies_between_cases(dataset):
    fmt, root, _ = dataset
    shapes, affines = set(), []
    for item in find_cases(root, fmt, "train") + find_cases(root, fmt, "test"):
        image, label, case_affines = _load(item)
        assert all(np.allclose(a, case_affines[0]) for a in case_affines)  # every file of a case: one affine
        assert label is None or label.shape == image.shape[:3]
        shapes.add(image.shape[:3])
        affines.append(case_affines[0])
    assert len(shapes) > 1
    assert all(not np.allclose(a, np.eye(4)) for a in affines)
    assert any((np.diag(a)[:3] < 0).any() for a in affines)
    assert all(np.allclose(a[:3, :3], np.diag(np.diag(a)[:3])) for a in affines)  # axis-aligned


def test_background_is_zero_and_edema_is_bright_on_flair(dataset):
    fmt, root, _ = dataset
    spec = FORMATS[fmt]
    for item in find_cases(root, fmt, "train"):
        image, label, _ = _load(item)
        brain = image[..., 0] != 0
        assert all(np.array_equal(image[..., c] != 0, brain) for c in range(4))  # one brain mask, all channels
        assert 0.1 < brain.mean() < 0.6 and not brain[0].any() and not brain[:, :, -1].any()
        assert (image[brain] > 0).all() and not (label[~brain]).any()
        flair = image[..., 0]
        assert flair[label == spec.edema].mean() > 1.2 * flair[brain & (label == 0)].mean()


def test_same_seed_same_data_other_seed_different(tmp_path):
    def arrays(folder: Path, seed: int) -> list[np.ndarray]:
        write_brats(folder, cases=2, seed=seed, shape=(24, 20, 16), test_cases=1)
        files = sorted(folder.rglob("*.nii.gz"))
        return [np.asanyarray(nib.load(p).dataobj) for p in files] + [nib.load(p).affine for p in files]

    first, again, other = arrays(tmp_path / "a", 3), arrays(tmp_path / "b", 3), arrays(tmp_path / "c", 4)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(first, other, strict=True))
    assert (tmp_path / "a" / "dataset.json").read_text() == (tmp_path / "b" / "dataset.json").read_text()


@pytest.mark.parametrize("kwargs, message", [
    ({"cases": 0}, "cases must be an integer >= 1"),
    ({"test_cases": -1}, "test_cases must be an integer >= 0"),
    ({"shape": (96, 96, 8)}, "shape must be three integers >= 16"),
    ({"shape": (96, 96)}, "shape must be three integers >= 16"),
    ({"seed": -2}, "seed must be an integer >= 0"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, message):
    with pytest.raises(UserInputError, match=message):
        write_brats(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_unknown_format_is_named(tmp_path):
    with pytest.raises(DatasetError, match="unknown BraTS dataset_format 'brats2019'"):
        write_brats(tmp_path, dataset_format="brats2019")
