"""Lesion post-processing chosen on validation cases: the rules applied (small lesions removed per region, small ET
relabelled as NETC), the greedy search, the rules files, and `monai-app postprocess` -> evaluate / infer / report on
a tiny trained run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_app.cli import main
from monai_app.config import postprocessing_rules
from monai_app.errors import UserInputError
from monai_app.metrics.postprocessing import apply_postprocessing, load_rules, search_postprocessing
from monai_app.transforms.brats import BratsLesionPostprocessd, BratsRegionsToLabeld

MSD_EDEMA, MSD_NETC, MSD_ET = 1, 2, 3


def _tumour(shape=(4, 24, 24, 24)) -> np.ndarray:
    """Nested region masks (C, X, Y, Z): an 8^3 WT, a 6^3 TC and a 4^3 ET inside it; RC (channel 3) elsewhere."""
    regions = np.zeros(shape, bool)
    regions[0, 4:12, 4:12, 4:12] = True
    regions[1, 5:11, 5:11, 5:11] = True
    regions[2, 6:10, 6:10, 6:10] = True
    if shape[0] > 3:
        regions[3, 16:18, 16:18, 16:18] = True
    return regions


def _rules(wt=0, tc=0, et=0, et_to_netc=0) -> dict:
    return {"min_lesion_mm3": {"wt": wt, "tc": tc, "et": et}, "et_to_netc_below_mm3": et_to_netc}


def test_a_speck_below_the_size_is_removed_from_every_region_and_the_cavity_stays():
    regions = _tumour()
    regions[:3, 18:20, 2:4, 2:4] = True  # a 2^3-voxel speck labelled ET (so WT, TC and ET)
    out = apply_postprocessing(regions, _rules(wt=20), spacing=(1.0, 1.0, 2.0))  # speck: 16 mm^3 < 20
    assert not out[:3, 18:20, 2:4, 2:4].any(), "the speck must go from WT, TC and ET"
    np.testing.assert_array_equal(out[:3], _tumour()[:3])  # the tumour (1024 mm^3) stays whole
    np.testing.assert_array_equal(out[3], regions[3])  # RC untouched, although it is a small component
    kept = apply_postprocessing(regions, _rules(wt=20), spacing=(1.0, 1.0, 3.0))  # 24 mm^3 >= 20: kept
    assert kept[:3, 18:20, 2:4, 2:4].all()


def test_a_small_core_lesion_becomes_oedema_and_a_small_et_lesion_becomes_netc():
    regions = _tumour(shape=(3, 24, 24, 24))
    regions[0, 14:22, 14:22, 14:22] = True  # a second tumour whose core is one voxel of ET
    regions[1:, 18, 18, 18] = True
    label = lambda r: BratsRegionsToLabeld("pred", "msd")({"pred": torch.from_numpy(r).float()})["pred"][0].numpy()
    no_small_core = label(apply_postprocessing(regions, _rules(tc=5), (1, 1, 1)))
    assert no_small_core[18, 18, 18] == MSD_EDEMA and no_small_core[7, 7, 7] == MSD_ET
    no_small_et = label(apply_postprocessing(regions, _rules(et=5), (1, 1, 1)))
    assert no_small_et[18, 18, 18] == MSD_NETC and no_small_et[7, 7, 7] == MSD_ET


def test_et_of_a_small_et_case_becomes_netc_in_the_written_label_map():
    regions = _tumour(shape=(3, 24, 24, 24))  # ET: 64 mm^3
    transform = BratsLesionPostprocessd("pred", rules=_rules(et_to_netc=100))
    pred = MetaTensor(torch.from_numpy(regions).float(), affine=torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0])))
    label = BratsRegionsToLabeld("pred", "msd")(transform({"pred": pred}))["pred"][0].numpy()
    assert MSD_ET not in label and (label == MSD_NETC).sum() == 6 ** 3, "all ET relabelled as NETC"
    coarse = MetaTensor(torch.from_numpy(regions).float(), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    kept = transform({"pred": coarse})["pred"]  # at 2 mm the same ET is 512 mm^3: above the threshold
    assert isinstance(kept, MetaTensor) and torch.equal(kept.as_tensor(), coarse.as_tensor())
    assert BratsLesionPostprocessd("pred", rules=None)({"pred": pred})["pred"] is pred


def _cases(specks: bool, false_et: bool = False, n: int = 4) -> list:
    cases = []
    for i in range(n):
        ref = _tumour(shape=(3, 28, 28, 28))
        if false_et and i % 2:  # a case without enhancing tumour
            ref[2] = False
        pred = ref.copy()
        pred[:, 5:11, 5:11, 4] = ref[:, 5:11, 5:11, 5]  # a slightly larger, still good segmentation
        if specks:
            pred[:, 20 + i % 3, 22, 22] = True  # an isolated 1-voxel false positive (in every region)
            pred[:, 24, 18:20, 24] = True  # and a 2-voxel one
        if false_et and i % 2:
            pred[2, 7:9, 7:9, 7:9] = True  # a small false ET inside the core
        cases.append((pred, ref, (1.0, 1.0, 1.0), f"case_{i}"))
    return cases


def test_search_picks_a_size_that_removes_false_positive_specks():
    result = search_postprocessing(_cases(specks=True))
    assert 2 < result["rules"]["min_lesion_mm3"]["wt"] <= 50, result["rules"]
    assert result["after"] > result["before"] + 0.2
    mean = result["table"][-1]
    assert mean["region"] == "mean" and mean["n"] == 4 and mean["lesion_dice_after"] > mean["lesion_dice_before"]
    assert {"lesion_hd95_before", "lesion_hd95_after", "dice_before", "dice_after"} <= set(mean)
    assert any(c["kept"] for c in result["candidates"] if c["step"] == "min_lesion_mm3.wt")


def test_search_keeps_nothing_on_clean_predictions():
    result = search_postprocessing(_cases(specks=False))
    assert result["rules"] == _rules(0.0, 0.0, 0.0, 0.0)
    assert result["after"] == result["before"]


def test_search_relabels_small_false_et():
    cases = _cases(specks=False, false_et=True)
    assert search_postprocessing(cases)["rules"]["min_lesion_mm3"]["et"] > 8  # removed as a small ET lesion, or
    result = search_postprocessing(cases, sizes=(0,))  # with no size rule: relabelled as the case's only ET
    assert 8 < result["rules"]["et_to_netc_below_mm3"] <= 64, result["rules"]  # 8 mm^3 false ET; true ET 64
    assert result["after"] > result["before"]


def test_search_keeps_no_threshold_that_only_fits_the_cases_it_was_chosen_on():
    """Half the validation cases without ET (a small false ET each), half with a small true ET: relabelling small
    ET as NETC raises the mean on these four cases, but whichever case is left out, the others' choice does not
    help it; the search keeps nothing (the held-out glioma cases of BENCHMARKS.md §6 lost ET Dice to such a rule)."""
    cases = _cases(specks=False, false_et=True)
    for i, (pred, ref, _, _) in enumerate(cases):
        if i % 2 == 0:  # a true ET of 64 voxels (the 2023 rule scores lesions above 50), one voxel too many
            ref[2] = False
            ref[2, 6:10, 6:10, 6:10] = True
            pred[2] = ref[2]
            pred[2, 10, 6, 6] = True
    result = search_postprocessing(cases, sizes=(0,), et_thresholds=(100, 250))  # none tells the two kinds apart
    step = [c for c in result["candidates"] if c["step"] == "et_to_netc_below_mm3"]
    best = max(step, key=lambda c: c["score"])
    assert best["score"] > result["before"]  # on all four cases together the threshold looks good...
    assert best["leave_one_out_gain"] < 0 and not best["kept"]  # ...but not on any case left out
    assert result["rules"]["et_to_netc_below_mm3"] == 0


def test_rules_files_and_the_auto_setting(tmp_path):
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    ckpt = run / "models" / "model.pt"
    assert postprocessing_rules("auto", run) is None and postprocessing_rules("auto", ckpt_path=ckpt) is None
    (run / "postprocessing.json").write_text(json.dumps({"rules": _rules(et=50)}))
    assert postprocessing_rules("auto", ckpt_path=str(ckpt)) == str(run / "postprocessing.json")
    assert postprocessing_rules("auto", run) == str(run / "postprocessing.json")
    assert postprocessing_rules("none", run) is None
    assert postprocessing_rules("auto", ckpt_path=[str(ckpt), str(ckpt)]) is None  # several folds: no single run
    assert load_rules(run / "postprocessing.json")["min_lesion_mm3"]["et"] == 50
    with pytest.raises(UserInputError, match=r"missing.json: postprocessing rules file \(--postprocessing_rules\)"):
        postprocessing_rules(str(tmp_path / "missing.json"), run)
    bad = tmp_path / "bad.json"
    for text, problem in (("{", "not a valid postprocessing.json"), ('{"x": 1}', "no 'rules' object"),
                          (json.dumps({"rules": _rules(wt=-1)}), "min_lesion_mm3.wt must be a volume"),
                          (json.dumps({"rules": {"min_lesion_mm3": {"ed": 5}}}), "min_lesion_mm3 must map")):
        bad.write_text(text)
        with pytest.raises(UserInputError, match=problem) as error:
            load_rules(bad)
        assert str(bad) in str(error.value) and "\n" not in str(error.value)


# --- end to end on a tiny trained run -------------------------------------------------------------------------------

TINY = ["--channels", "[8,16,32]", "--num_workers", "0", "--sw_batch_size", "2", "--roi_size", "[32,32,32]"]


@pytest.fixture(scope="module")
def run(msd_tiny, tmp_path_factory) -> Path:
    """One epoch of training on 6 cases split 3 / 2 / 1 (train / validation / test), validated after it."""
    out = tmp_path_factory.mktemp("post_run")
    assert main(["train", "brats_unet3d", "--dataset-dir", str(msd_tiny), "--output-dir", str(out), "--max-epochs",
                 "1", "--val_interval", "1", "--val_fraction", "0.34", "--validate_data", "false", *TINY]) == 0
    return out


def _label_counts(folder: Path) -> np.ndarray:
    labels = [np.asarray(nib.load(p).dataobj) for p in sorted(folder.glob("*.nii.gz"))]
    return np.bincount(np.concatenate([x.ravel() for x in labels]).astype(int), minlength=4)


@pytest.mark.slow
def test_postprocess_writes_the_choice_and_evaluate_infer_and_report_apply_it(run, msd_tiny, tmp_path, capsys):
    eval_before = sorted(p.name for p in (run / "eval").iterdir()) if (run / "eval").exists() else None
    assert main(["postprocess", "brats_unet3d", "--dataset-dir", str(msd_tiny), "--output-dir", str(run),
                 *TINY]) == 0
    record = json.loads((run / "postprocessing.json").read_text())
    split = json.loads((run / "split.json").read_text())
    assert record["n_validation_cases"] == 2 and sorted(record["validation_cases"]) == split["validation"]
    assert [r["region"] for r in record["table"]] == ["wt", "tc", "et", "mean"] and record["candidates"]
    assert "lesion_dice before" in capsys.readouterr().out
    assert (sorted(p.name for p in (run / "eval").iterdir()) if (run / "eval").exists() else None) == eval_before
    assert not list(run.glob(".postprocess_eval_*")), "the temporary evaluation folder is left behind"
    assert "Post-processing chosen on validation cases" in (run / "report.html").read_text()

    # a hand-written choice: all ET is relabelled as NETC
    (run / "postprocessing.json").write_text(json.dumps({**record, "rules": {"et_to_netc_below_mm3": 1e12}}))
    preds, plain = tmp_path / "preds", tmp_path / "plain"
    infer = ["infer", "brats_unet3d", "--input", str(msd_tiny / "imagesTs"), "--ckpt", str(run / "models" / "model.pt"),
             *TINY]
    assert main([*infer, "--output-dir", str(plain), "--postprocessing_rules", "none"]) == 0
    assert main([*infer, "--output-dir", str(preds)]) == 0
    before, after = _label_counts(plain), _label_counts(preds)
    assert before[MSD_ET] > 0, "precondition: the tiny network predicts some ET"
    assert after[MSD_ET] == 0 and after[MSD_NETC] >= before[MSD_NETC] + before[MSD_ET] * 0.5
    settings = json.loads((preds / "inference_settings.json").read_text())
    assert settings["postprocessing"]["et_to_netc_below_mm3"] == 1e12
    assert settings["postprocessing"]["source"] == str(run / "postprocessing.json")
    assert json.loads((plain / "inference_settings.json").read_text())["postprocessing"] is None

    assert main(["evaluate", "brats_unet3d", "--dataset-dir", str(msd_tiny), "--output-dir", str(run), "--metrics",
                 "brats2023", *TINY]) == 0
    with open(run / "eval" / "per_case.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(float(r["lesion_tp_et"]) == 0 and float(r["lesion_fp_et"]) == 0 for r in rows)
    assert json.loads((run / "eval" / "settings.json").read_text())["postprocessing"]["et_to_netc_below_mm3"] == 1e12
    assert "Post-processing chosen on validation cases" in (run / "report.html").read_text()


def test_postprocess_needs_two_validation_cases(msd_tiny, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "split.json").write_text(json.dumps({"seed": 0, "train": [], "validation": ["BRATS_001"], "test": []}))
    with pytest.raises(UserInputError, match="validation split has 1 case"):
        from monai_app.postprocess import run_postprocess

        run_postprocess("brats_unet3d", {"dataset_dir": str(msd_tiny), "output_dir": str(run), "channels": [8, 16, 32],
                                         "num_workers": 0})
