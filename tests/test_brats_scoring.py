"""`monai-app score` against the challenge's own code: the brats2023 and brats2025 conventions must reproduce, per
case and region, what the official tools computed on the committed edge cases (tests/fixtures/brats_metrics, made
by scripts/make_brats_metric_fixtures.py with BraTS-2023-Metrics and BraTS-evaluation 0.0.10 / panoptica 2.1.7
in their own virtual environments). Plus the behaviour of a folder run a user would notice."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_app.cli import main
from monai_app.datasets.brats import get_format
from monai_app.metrics import lesions
from monai_app.metrics.folders import score_case, score_folders

FIXTURES = Path(__file__).parent / "fixtures" / "brats_metrics"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
ONE_MM = [c for c in EXPECTED["cases"] if c["spacing"] == [1.0, 1.0, 1.0]]
COLUMN = {"dice": "dice", "hd95": "hd95", "lesion_dice": "lesion_dice", "lesion_hd95": "lesion_hd95",
          "tp": "lesion_tp", "fp": "lesion_fp", "fn": "lesion_fn"}


def _agrees(ours: float, official: float, tolerance: float) -> bool:
    if math.isnan(official) or math.isinf(official):
        return (math.isnan(ours) and math.isnan(official)) or ours == official
    return abs(ours - official) <= tolerance


@pytest.mark.parametrize("scoring", ["brats2023", "brats2025"])
@pytest.mark.parametrize("case", ONE_MM, ids=[c["case_id"] for c in ONE_MM])
def test_scores_agree_with_the_official_code(case, scoring):
    row = score_case(case["case_id"], FIXTURES / case["prediction"], FIXTURES / case["reference"],
                     case["label_format"], scoring)
    wrong = []
    for region, official in case[scoring].items():
        for key, value in official.items():
            if scoring == "brats2023" and key == "hd95" and math.isinf(value):
                value = lesions.MISSED_DISTANCE_2023  # we write the 2023 code's lesion penalty, not inf
            tolerance = 0.05 if "hd95" in key else 1e-3 if "dice" in key else 0
            ours = row[f"{COLUMN[key]}_{region}"]
            if not _agrees(ours, float(value), tolerance):
                wrong.append(f"{COLUMN[key]}_{region}: ours {ours}, official {value}")
    assert not wrong, f"{case['case_id']} ({case['description']}):\n" + "\n".join(wrong)


def test_every_edge_case_the_issue_names_is_covered():
    text = " ".join(c["description"].lower() for c in ONE_MM)
    for words in ("partial overlap", "missed lesion + false positive", "et empty in the reference only",
                  "et empty in reference and prediction", "empty prediction", "predicted et disjoint",
                  "resection cavity (label 4)", "paediatric", "ten small"):
        assert words in text, words
    assert {c["subchallenge"] for c in ONE_MM} >= {"GLI", "MET", "MEN", "PED"}


@pytest.mark.parametrize("scoring", ["brats2021", "brats2023", "brats2025"])
def test_distances_are_in_millimetres(scoring):
    """Every HD95 scales with the voxel size (the official tools do not, off 1-mm grids)."""
    case = ONE_MM[0]
    pred = np.asarray(nib.load(FIXTURES / case["prediction"]).dataobj) > 0
    ref = np.asarray(nib.load(FIXTURES / case["reference"]).dataobj) > 0
    scorer = {"brats2021": lesions.score_brats2021, "brats2023": lesions.score_brats2023,
              "brats2025": lesions.score_brats2025}[scoring]
    one, two = scorer(pred, ref, (1.0, 1.0, 1.0)), scorer(pred, ref, (2.0, 2.0, 2.0))
    assert two["hd95"] == pytest.approx(2 * one["hd95"]) and two["dice"] == one["dice"]
    assert 0 < one["hd95"] < 20


def _copy_folders(tmp_path: Path, cases: list[dict]) -> tuple[Path, Path]:
    for case in cases:
        for kind in ("prediction", "reference"):
            (tmp_path / kind).mkdir(exist_ok=True)
            shutil.copy(FIXTURES / case[kind], tmp_path / kind)
    return tmp_path / "prediction", tmp_path / "reference"


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {r["case_id"]: r for r in csv.DictReader(f)}


def test_cli_scores_a_2024_folder_by_default_with_the_2025_rules(tmp_path, capsys):
    """Release names (-seg) meet submission names; label 4 (RC) is accepted; the format and the default
    convention come from the BraTS-GLI ids; columns cover WT, TC, ET and the GLI label groups."""
    gli = [c for c in ONE_MM if c["subchallenge"] == "GLI"]
    pred, ref = _copy_folders(tmp_path, gli)
    assert main(["score", "--pred", str(pred), "--ref", str(ref), "--out", str(tmp_path / "out"),
                 "--workers", "2"]) == 0
    rows = _rows(tmp_path / "out" / "per_case.csv")
    assert sorted(rows) == sorted(c["case_id"] for c in gli)
    header = list(next(iter(rows.values())))
    for region in ("wt", "tc", "et", "netc", "snfh", "rc"):
        assert {f"dice_{region}", f"lesion_dice_{region}", f"lesion_hd95_{region}", f"lesion_fp_{region}"} <= set(
            header), region
    for case in gli:
        expected = case["brats2025"]["wt"]["lesion_dice"]
        assert float(rows[case["case_id"]]["lesion_dice_wt"]) == pytest.approx(expected, abs=1e-3)
    scoring = json.loads((tmp_path / "out" / "scoring.json").read_text())
    assert scoring["scoring"] == "brats2025" and scoring["dataset_format"] == "brats2023"
    assert "per_case.csv" in capsys.readouterr().out


def test_a_bad_case_is_named_and_the_others_are_still_scored(tmp_path, capsys):
    pred, ref = _copy_folders(tmp_path, [c for c in ONE_MM if c["subchallenge"] in ("GLI", "MET")][:4])
    names = sorted(p.name for p in pred.iterdir())
    (pred / names[0]).write_bytes(b"not a NIfTI file")
    data = np.asarray(nib.load(pred / names[1]).dataobj).copy()
    data[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(data, nib.load(pred / names[1]).affine), pred / names[1])
    (pred / names[2]).unlink()
    code = main(["score", "--pred", str(pred), "--ref", str(ref), "--out", str(tmp_path / "out"),
                 "--metrics", "brats2023"])
    err = capsys.readouterr().err
    assert code != 0
    assert "3 of 4 reference cases not scored" in err and "cannot read as NIfTI" in err and "[7]" in err
    assert names[0] in err and "no prediction" in err
    assert list(_rows(tmp_path / "out" / "per_case.csv")) == [names[3].removesuffix(".nii.gz")]
    assert len(json.loads((tmp_path / "out" / "scoring.json").read_text())["not_scored"]) == 3


def test_ped_labels_are_scored_in_their_own_convention(tmp_path):
    ped = [c for c in ONE_MM if c["subchallenge"] == "PED"]
    pred, ref = _copy_folders(tmp_path, ped)
    score_folders(pred, ref, "auto", tmp_path / "out")
    rows = _rows(tmp_path / "out" / "per_case.csv")
    assert {"dice_cc", "dice_ed", "dice_netc"} <= set(next(iter(rows.values())))
    assert json.loads((tmp_path / "out" / "scoring.json").read_text())["dataset_format"] == "brats2024ped"
    with pytest.raises(Exception, match="mix BraTS-PED"):
        _copy_folders(tmp_path, ONE_MM[:1])
        score_folders(pred, ref, "auto", tmp_path / "out2")


def test_lesion_rule_follows_the_subchallenge():
    """MET keeps reference lesions above 2 voxels and merges with 1 dilation; GLI leaves out lesions of 50 voxels
    or fewer: the same masks score differently under the two names."""
    ref = np.zeros((40, 40, 40), bool)
    ref[5:8, 5:8, 5:8] = True  # 27 voxels: kept for MET, left out for GLI
    ref[20:30, 20:30, 20:30] = True
    pred = ref.copy()
    pred[5:8, 5:8, 5:8] = False  # the small lesion is missed
    fmt = get_format("brats2023")
    labels = lambda m: m.astype(np.int16) * 3  # ET
    from monai_app.metrics.brats import score_label_maps

    met = score_label_maps(labels(pred), labels(ref), fmt, (1, 1, 1), "brats2023", "BraTS-MET-00001-000")
    gli = score_label_maps(labels(pred), labels(ref), fmt, (1, 1, 1), "brats2023", "BraTS-GLI-00001-000")
    assert met["lesion_fn_et"] == 1 and met["lesion_dice_et"] == pytest.approx(0.5)
    assert gli["lesion_fn_et"] == 0 and gli["lesion_dice_et"] == pytest.approx(1.0)
    assert math.isnan(met["dice_netc"]) and gli["dice_netc"] == 1.0  # MET does not score NETC
