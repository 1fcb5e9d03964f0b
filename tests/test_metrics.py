"""Scoring: BraTS Dice / HD95 conventions and the per-case tables, checked against hand-computed values."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import monai
import monai.metrics
import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor, list_data_collate

from monai_app.errors import UserInputError
from monai_app.metrics.brats import BratsHausdorffDistanceMetric
from monai_app.metrics.folders import score_folders
from monai_app.metrics.tables import write_metric_tables

SHAPE = (20, 20, 20)
EMPTY = 373.13
HEADER = "case_id,dice_wt,dice_tc,dice_et,hd95_wt,hd95_tc,hd95_et"
MSD_TO_BRATS2021 = np.array([0, 2, 1, 4], dtype=np.uint8)  # edema 1->2, necrosis 2->1, enhancing 3->4


def _cube(label: int = 1, x0: int = 4) -> np.ndarray:
    """A 4x4x4 cube (64 voxels) of ``label`` at x in [x0, x0+4), y and z in [4, 8)."""
    a = np.zeros(SHAPE, np.uint8)
    a[x0:x0 + 4, 4:8, 4:8] = label
    return a


def _voxel(x: int, label: int = 3) -> np.ndarray:
    a = np.zeros(SHAPE, np.uint8)
    a[x, 10, 10] = label
    return a


def _save(path: Path, data: np.ndarray, zooms: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(np.uint8), np.diag([*zooms, 1.0])), str(path))


def _msd_cases() -> dict[str, tuple[np.ndarray, np.ndarray, tuple[float, float, float]]]:
    """case_id -> (prediction, reference, zooms), MSD labels (1 edema, 2 non-enhancing core, 3 enhancing)."""
    cored = _cube(1)
    cored[5:7, 5:7, 5:7] = 2
    fp_et = _cube(1)
    fp_et[6, 6, 6] = 3
    empty = np.zeros(SHAPE, np.uint8)
    return {  # written in unsorted order on purpose
        "e_empty": (empty, empty, (1.0, 1.0, 1.0)),
        "c_identical": (cored, cored.copy(), (1.0, 1.0, 1.0)),
        "a_fp_et": (fp_et, _cube(1), (1.0, 1.0, 1.0)),
        "d_hd_mm": (_voxel(8), _voxel(5), (2.0, 1.0, 1.0)),
        "b_shift": (_cube(1, x0=5), _cube(1), (1.0, 1.0, 1.0)),
    }


# Hand-computed expectations, columns in HEADER order.
# a_fp_et: WT identical (Dice 1, HD 0); TC and ET are one predicted voxel on an empty reference -> Dice 0, HD 373.13.
# b_shift: 64-voxel cubes shifted by 1 voxel overlap in 48 -> Dice 2*48/128 = 0.75. Every surface voxel of one cube
#   lies 0 or 1 voxel from the other's surface, and 20 of the 56 surface voxels lie 1 away (> 5 %) -> HD95 1.0.
#   TC and ET are empty in both -> Dice 1, HD 0.
# d_hd_mm: single voxels 3 apart along x with 2 mm voxels -> no overlap (Dice 0), HD95 6 mm in every region.
EXPECTED = {
    "a_fp_et": [1.0, 0.0, 0.0, 0.0, EMPTY, EMPTY],
    "b_shift": [0.75, 1.0, 1.0, 1.0, 0.0, 0.0],
    "c_identical": [1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
    "d_hd_mm": [0.0, 0.0, 0.0, 6.0, 6.0, 6.0],
    "e_empty": [1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
}


def _write_folders(root: Path, relabel: np.ndarray | None = None) -> tuple[Path, Path]:
    for case_id, (pred, ref, zooms) in _msd_cases().items():
        if relabel is not None:
            pred, ref = relabel[pred], relabel[ref]
        _save(root / "pred" / f"{case_id}.nii.gz", pred, zooms)
        _save(root / "ref" / f"{case_id}.nii", ref, zooms)  # .nii and .nii.gz match by case id
    return root / "pred", root / "ref"


def _read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_score_folders_msd_hand_computed(tmp_path):
    pred, ref = _write_folders(tmp_path)
    (pred / "._a_fp_et.nii.gz").write_bytes(b"macOS junk")  # hidden companions are ignored
    _save(pred / "z_extra.nii.gz", np.zeros(SHAPE))  # extra prediction: logged and ignored
    score_folders(pred, ref, "msd", tmp_path / "eval")
    rows = _read_rows(tmp_path / "eval" / "per_case.csv")
    assert ",".join(rows[0]) == HEADER
    assert [r[0] for r in rows[1:]] == sorted(EXPECTED)
    for row in rows[1:]:
        np.testing.assert_allclose([float(v) for v in row[1:]], EXPECTED[row[0]], atol=1e-5, err_msg=row[0])


def test_dice_convention_empty_regions(tmp_path):
    pred, ref = _write_folders(tmp_path)
    score_folders(pred, ref, "msd", tmp_path / "eval")
    by_case = {r[0]: dict(zip(HEADER.split(","), r)) for r in _read_rows(tmp_path / "eval" / "per_case.csv")[1:]}
    assert float(by_case["c_identical"]["dice_et"]) == 1.0  # ET empty in both
    assert float(by_case["a_fp_et"]["dice_et"]) == 0.0  # ET predicted, none in the reference
    assert float(by_case["b_shift"]["dice_wt"]) == pytest.approx(96 / 128)


def test_summary_matches_numpy(tmp_path):
    pred, ref = _write_folders(tmp_path)
    summary = score_folders(pred, ref, "msd", tmp_path / "eval")
    assert json.loads((tmp_path / "eval" / "summary.json").read_text()) == summary
    columns = HEADER.split(",")[1:]
    for i, column in enumerate(columns):
        values = np.array([EXPECTED[c][i] for c in EXPECTED])
        stats = summary[column]
        assert stats["n"] == len(EXPECTED)
        assert stats["mean"] == pytest.approx(np.mean(values), abs=1e-5)
        assert stats["median"] == pytest.approx(np.median(values), abs=1e-5)
        assert stats["std"] == pytest.approx(np.std(values), abs=1e-5)
        assert stats["min"] == pytest.approx(values.min(), abs=1e-5)
        assert stats["max"] == pytest.approx(values.max(), abs=1e-5)
    assert summary["dice_wt"]["mean"] == pytest.approx((1 + 0.75 + 1 + 0 + 1) / 5, abs=1e-6)


def test_brats2021_labels_give_same_scores(tmp_path):
    pred, ref = _write_folders(tmp_path / "msd")
    pred21, ref21 = _write_folders(tmp_path / "b21", relabel=MSD_TO_BRATS2021)
    assert 3 not in np.unique(np.asanyarray(nib.load(str(ref21 / "c_identical.nii")).dataobj))
    score_folders(pred, ref, "msd", tmp_path / "eval_msd")
    score_folders(pred21, ref21, "brats2021", tmp_path / "eval_b21")
    assert _read_rows(tmp_path / "eval_b21" / "per_case.csv") == _read_rows(tmp_path / "eval_msd" / "per_case.csv")


def test_brats2021_label_3_is_rejected(tmp_path):
    pred, ref = _write_folders(tmp_path, relabel=MSD_TO_BRATS2021)
    _save(ref / "c_identical.nii", _cube(3))
    with pytest.raises(UserInputError, match=r"c_identical\.nii.*\[3\]"):
        score_folders(pred, ref, "brats2021", tmp_path / "eval")


def test_missing_prediction_names_case(tmp_path):
    pred, ref = _write_folders(tmp_path)
    (pred / "b_shift.nii.gz").unlink()
    with pytest.raises(UserInputError, match="b_shift") as e:
        score_folders(pred, ref, "msd", tmp_path / "eval")
    assert "1 of 5" in str(e.value)
    # the other cases are scored and written; the missing one is named in scoring.json
    assert [r[0] for r in _read_rows(tmp_path / "eval" / "per_case.csv")[1:]] == sorted(set(EXPECTED) - {"b_shift"})
    assert list(json.loads((tmp_path / "eval" / "scoring.json").read_text())["not_scored"]) == ["b_shift"]


def test_shape_mismatch_names_case(tmp_path):
    pred, ref = _write_folders(tmp_path)
    _save(pred / "c_identical.nii.gz", np.zeros((20, 20, 19)))
    with pytest.raises(UserInputError, match=r"c_identical.*\(20, 20, 19\).*\(20, 20, 20\)"):
        score_folders(pred, ref, "msd", tmp_path / "eval")


def test_empty_reference_folder_is_an_error(tmp_path):
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    with pytest.raises(UserInputError, match="no reference"):
        score_folders(tmp_path / "pred", tmp_path / "ref", "msd", tmp_path / "eval")


def _channels(*pairs: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, C, X, Y, Z) float tensors of prediction and reference, one channel per (pred, ref) pair of masks."""
    pred = torch.from_numpy(np.stack([p > 0 for p, _ in pairs])[None]).float()
    ref = torch.from_numpy(np.stack([r > 0 for _, r in pairs])[None]).float()
    return pred, ref


def test_hd95_spacing_from_metatensor_affine():
    empty = np.zeros(SHAPE, np.uint8)
    pred, ref = _channels((empty, empty), (_voxel(8), empty), (empty, _voxel(5)), (_voxel(8), _voxel(5)))
    affine = torch.diag(torch.tensor([2.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    metric = BratsHausdorffDistanceMetric(reduction="none")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # empty-mask warnings are silenced
        hd = metric(MetaTensor(pred, affine=affine), MetaTensor(ref, affine=affine))
    np.testing.assert_allclose(hd.numpy(), [[0.0, EMPTY, EMPTY, 6.0]], atol=1e-5)
    assert metric.aggregate().shape == (1, 4)
    # an explicit spacing wins over the affine: 3 voxels of 1 mm
    hd1 = BratsHausdorffDistanceMetric()(MetaTensor(pred, affine=affine), MetaTensor(ref, affine=affine), spacing=1.0)
    assert float(hd1[0, 3]) == pytest.approx(3.0)


def test_hd95_batched_affine_per_item_spacing():
    pred, ref = _channels((_voxel(8), _voxel(5)))
    items = [MetaTensor(ref[0], affine=torch.diag(torch.tensor([s, 1.0, 1.0, 1.0]))) for s in (2.0, 0.5)]
    y = list_data_collate(items)  # affine (2, 4, 4)
    assert y.affine.shape == (2, 4, 4)
    hd = BratsHausdorffDistanceMetric(reduction="none")(torch.cat([pred, pred]), y)
    np.testing.assert_allclose(hd.numpy(), [[6.0], [1.5]], atol=1e-5)


def test_monai_native_hausdorff_empty_masks_are_nan():
    """Why the subclass exists: MONAI 1.6 scores both-empty and one-empty masks as NaN (not 0 / 373.13)."""
    empty = np.zeros(SHAPE, np.uint8)
    pred, ref = _channels((empty, empty), (_voxel(8), empty), (empty, _voxel(5)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd = monai.metrics.HausdorffDistanceMetric(include_background=True, percentile=95)(pred, ref)
    assert torch.isnan(hd).all()


def test_no_monai_name_clash():
    assert not hasattr(monai.metrics, BratsHausdorffDistanceMetric.__name__)
    assert not hasattr(monai, BratsHausdorffDistanceMetric.__name__)


def test_write_metric_tables_format_and_nan(tmp_path):
    rows = [{"case_id": "b", "x": 1 / 3, "y": math.nan}, {"case_id": "a", "x": 2.0, "y": 5.0}]
    summary = write_metric_tables(rows, tmp_path)
    assert (tmp_path / "per_case.csv").read_text() == "case_id,x,y\na,2,5\nb,0.333333,nan\n"
    assert summary["y"] == {"mean": 5.0, "median": 5.0, "std": 0.0, "min": 5.0, "max": 5.0, "n": 1}
    assert summary["x"]["n"] == 2
    assert summary["x"]["std"] == pytest.approx(np.std([1 / 3, 2.0]))
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
