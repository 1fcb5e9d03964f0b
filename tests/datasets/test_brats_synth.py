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


# --- BraTS 2023-2025 sub-challenges, post-treatment scans, BraTS-PED ---------------------------------------------

def _cases(root: Path, fmt: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(case id, image X×Y×Z×4, label) of every training case."""
    return [(item["case_id"], *_load(item)[:2]) for item in find_cases(root, fmt, "train")]


def _ratio(image: np.ndarray, label: np.ndarray, value: int, channel: int) -> float:
    """Mean intensity of ``value``'s voxels over that of normal brain, on one channel."""
    brain = image[..., 0] != 0
    return float(image[..., channel][label == value].mean() / image[..., channel][brain & (label == 0)].mean())


def test_ped_cases_hold_every_ped_label_and_a_cystic_component(tmp_path):
    ids = write_brats(tmp_path, cases=4, dataset_format="brats2024ped", seed=0, shape=SHAPE, test_cases=1)
    assert ids == [f"BraTS-PED-{i:05d}-000" for i in range(5)] and detect_format(tmp_path) == "brats2024ped"
    cases = _cases(tmp_path, "brats2024ped")
    present = set().union(*(set(np.unique(label).tolist()) for _, _, label in cases))
    assert present == {0, 1, 2, 3, 4}  # 1 ET, 2 NETC, 3 CC, 4 ED
    assert sum(3 in label for _, _, label in cases) == 3  # a cyst in three cases of four
    for _, image, label in cases:
        assert {2, 4} <= set(np.unique(label).tolist())  # NETC and edema always
        if 3 in label:
            assert _ratio(image, label, 3, 3) > 1.3  # fluid: bright on T2


def test_met_cases_hold_several_small_enhancing_lesions(tmp_path):
    from scipy import ndimage

    met, gli = tmp_path / "met", tmp_path / "gli"
    ids = write_brats(met, cases=4, dataset_format="brats2023", subchallenge="MET", seed=0, shape=(64, 64, 48),
                      test_cases=0)
    assert ids == [f"BraTS-MET-{i:05d}-000" for i in range(4)] and detect_format(met) == "brats2023"
    write_brats(gli, cases=4, dataset_format="brats2023", seed=0, shape=(64, 64, 48), test_cases=0)
    sizes, glioma_sizes, enhancing, glioma_enhancing = [], [], [], []
    for (_, image, label), (_, glioma, glioma_label) in zip(_cases(met, "brats2023"), _cases(gli, "brats2023")):
        lesions, n = ndimage.label(label > 0)
        assert 3 <= n <= 12
        assert all((label[lesions == i] == 3).any() and (label[lesions == i] == 2).any() for i in range(1, n + 1))
        sizes += np.bincount(lesions.ravel())[1:].tolist()
        glioma_sizes.append(int((glioma_label > 0).sum()))
        enhancing.append(_ratio(image, label, 3, 2))  # T1 with contrast
        if 3 in glioma_label:
            glioma_enhancing.append(_ratio(glioma, glioma_label, 3, 2))
    assert max(sizes) < min(glioma_sizes) and np.median(sizes) < 0.2 * np.median(glioma_sizes)  # small lesions
    assert 1.1 < np.mean(enhancing) < np.mean(glioma_enhancing)  # enhancing, but weaker than the glioma phantom


def test_post_treatment_cases_hold_a_csf_like_resection_cavity(tmp_path):
    write_brats(tmp_path / "rc", cases=4, dataset_format="brats2023", resection_cavity=True, seed=0, shape=SHAPE,
                test_cases=0)
    write_brats(tmp_path / "gli", cases=4, dataset_format="brats2023", seed=0, shape=SHAPE, test_cases=0)
    with_rc, without = _cases(tmp_path / "rc", "brats2023"), _cases(tmp_path / "gli", "brats2023")
    assert [4 in label for _, _, label in with_rc] == [True, True, False, True]  # most cases
    for (_, image, label), (_, _, plain) in zip(with_rc, without):
        assert set(np.unique(label).tolist()) <= {0, 1, 2, 3, 4}
        assert np.array_equal(np.isin(label, (1, 3)), np.isin(plain, (1, 3)))  # the tumour core is left as it was
        if 4 in label:
            flair, t1, t1c, t2 = (_ratio(image, label, 4, c) for c in range(4))
            assert flair < 0.8 and t1 < 0.8 and t1c < 0.8 and t2 > 1.3, (flair, t1, t1c, t2)
            assert (plain[label == 4] != 1).all() and (plain[label == 4] != 3).all()


def test_new_options_are_deterministic(tmp_path):
    def files(folder: Path) -> list[bytes]:
        write_brats(folder, cases=2, dataset_format="brats2023", subchallenge="MET", resection_cavity=True, seed=5,
                    shape=(24, 20, 16), test_cases=0)
        return [np.asanyarray(nib.load(p).dataobj).tobytes() for p in sorted(folder.rglob("*.nii.gz"))]

    assert files(tmp_path / "a") == files(tmp_path / "b")


@pytest.mark.parametrize("kwargs, message", [
    ({"dataset_format": "msd", "resection_cavity": True}, "only the brats2023 layout .* resection-cavity label"),
    ({"dataset_format": "brats2024ped", "resection_cavity": True}, "not brats2024ped"),
    ({"dataset_format": "brats2023", "subchallenge": "PED"}, "subchallenge must be one of GLI, MEN, MET, SSA, GoAT"),
    ({"dataset_format": "brats2021", "subchallenge": "MET"}, "not brats2021"),
])
def test_options_a_layout_does_not_have_are_named(tmp_path, kwargs, message):
    with pytest.raises(UserInputError, match=message):
        write_brats(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())
