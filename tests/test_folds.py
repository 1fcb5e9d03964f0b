"""Cross-validation folds, ensembles over checkpoints and saved probabilities (brats_unet3d).

The folds are held to what a user relies on: made once in the folds root and reused, disjoint, covering every case
outside the test part, the same test cases for every fold. ``monai-app train --folds`` trains each fold once (a
second call retrains nothing); inference over the folds' folder is their ensemble, whose saved probabilities are the
mean of the single models' saved probabilities; the probability maps lie on the input's grid.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_app.cli import main
from monai_app.datasets.brats import make_datalists
from monai_app.errors import DatasetError, UserInputError

TINY = ["--channels", "[8,16,32,64]", "--num_workers", "0", "--sw_batch_size", "2", "--roi_size", "[32,32,32]",
        "--device", "cpu", "--amp", "false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """7 labelled MSD cases (one held out for testing, three folds of two) and one unlabelled case."""
    from monai_app.synthetic.brats import write_brats

    out = tmp_path_factory.mktemp("folds") / "Task01_BrainTumour"
    write_brats(out, cases=7, dataset_format="msd", seed=5, shape=(32, 32, 24), test_cases=1)
    return out


def ids(datalist: list[dict]) -> set[str]:
    return {c["case_id"] for c in datalist}


def test_folds_are_made_once_disjoint_cover_the_rest_and_share_the_test_cases(data, tmp_path):
    root = tmp_path / "runs"
    lists = [make_datalists(data, root / f"fold_{f}", fold=f, num_folds=3) for f in range(3)]
    saved = (root / "folds.json").read_text()
    folds = json.loads(saved)["folds"]
    single = make_datalists(data, tmp_path / "single")  # a run without folds: today's split.json
    everything = set().union(*(ids(part) for part in single.values()))
    assert all(ids(d["test"]) == set(json.loads(saved)["test"]) == ids(single["test"]) for d in lists)
    assert len(ids(lists[0]["test"])) == 1
    validation = [ids(d["validation"]) for d in lists]
    assert [sorted(v) for v in validation] == folds
    assert sum(map(len, validation)) == len(set().union(*validation)) == len(everything) - 1  # disjoint
    assert set().union(*validation) == everything - ids(single["test"])  # covering the cases outside the test part
    for d, v in zip(lists, validation):
        assert ids(d["train"]) == set().union(*validation) - v
        assert not ids(d["train"]) & ids(d["test"])
    saved_split = json.loads((root / "fold_1" / "split.json").read_text())  # evaluation of a fold run reads it
    assert set(saved_split["validation"]) == validation[1] and saved_split["fold"] == 1

    again = make_datalists(data, root / "fold_2", fold=2, num_folds=3, seed=99)  # reused, whatever the seed
    assert (root / "folds.json").read_text() == saved and ids(again["validation"]) == validation[2]
    evaluation = make_datalists(data, root)  # the folds root: the ensemble's evaluation scores the test cases
    assert ids(evaluation["test"]) == ids(lists[0]["test"]) and not (root / "split.json").exists()


def test_a_bad_fold_or_damaged_folds_file_is_a_one_line_error(data, tmp_path):
    for fold in (3, -1, "x"):
        with pytest.raises(UserInputError, match=r"--fold .*expected a fold from 0 to 2") as err:
            make_datalists(data, tmp_path / "runs" / "fold_0", fold=fold, num_folds=3)
        assert "\n" not in str(err.value)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "folds.json").write_text(json.dumps({"test": ["BRATS_999"], "folds": [["BRATS_001"]] * 2}))
    with pytest.raises(DatasetError, match=r"folds\.json: a case is in two folds"):
        make_datalists(data, tmp_path / "runs" / "fold_0", fold=0, num_folds=2)
    (tmp_path / "runs" / "folds.json").write_text(json.dumps({"test": ["BRATS_999"], "folds": [["BRATS_001"], []]}))
    with pytest.raises(DatasetError, match=r"folds\.json: the saved folds name 1 case\(s\) not in the dataset"):
        make_datalists(data, tmp_path / "runs" / "fold_0", fold=0, num_folds=2)


def test_a_failing_fold_stops_the_folds_with_the_fold_named(data, tmp_path, capsys):
    root = tmp_path / "runs"
    root.mkdir()
    (root / "folds.json").write_text(json.dumps({"test": ["BRATS_999"], "folds": [["BRATS_001"], []]}))
    code = main(["train", "brats_unet3d", "--dataset-dir", str(data), "--output-dir", str(root), "--folds", "all",
                 "--num_folds", "2", "--validate_data", "false", *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith(f"monai-app: error: fold 0 ({root / 'fold_0'}): {root / 'folds.json'}: ")
    assert not (root / "fold_1").exists()  # the later folds were not run
    assert main(["train", "brats_unet3d", "--dataset-dir", str(data), "--output-dir", str(root), "--fold", "2",
                 "--num_folds", "2"]) == 2
    assert capsys.readouterr().err.strip().endswith("--fold 2: folds go from 0 to 1 (num_folds is 2)")


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Path:
    """Folds 0 and 1 of 2, one epoch each, through `monai-app train --folds 0 1`."""
    root = tmp_path_factory.mktemp("cv") / "runs"
    args = ["train", "brats_unet3d", "--dataset-dir", str(data), "--output-dir", str(root), "--folds", "0", "1",
            "--num_folds", "2", "--max-epochs", "1", "--val_interval", "1", *TINY]
    assert main(args) == 0
    return root


def test_train_folds_trains_each_fold_once(data, trained):
    models = [trained / f"fold_{f}" / "models" / name for f in (0, 1) for name in ("model.pt", "last.pt")]
    assert all(m.is_file() for m in models)
    stamps = [m.stat().st_mtime_ns for m in models]
    settings = json.loads((trained / "fold_1" / "settings.json").read_text())
    assert (settings["fold"], settings["num_folds"]) == (1, 2)
    args = ["train", "brats_unet3d", "--dataset-dir", str(data), "--output-dir", str(trained), "--folds", "all",
            "--num_folds", "2", "--max-epochs", "1", "--val_interval", "1", *TINY]
    assert main(args) == 0
    assert [m.stat().st_mtime_ns for m in models] == stamps  # finished folds: nothing retrained


def infer(data: Path, out: Path, *ckpt: Path) -> Path:
    args = ["infer", "brats_unet3d", "--input", str(data / "imagesTs"), "--output-dir", str(out), "--ckpt",
            *map(str, ckpt), "--save-probabilities", *TINY]
    assert main(args) == 0
    return out


def test_ensemble_of_the_folds_averages_the_probabilities_on_the_input_grid(data, trained, tmp_path):
    ensemble = infer(data, tmp_path / "ensemble", trained)  # the folds' folder
    singles = [infer(data, tmp_path / f"fold_{f}", trained / f"fold_{f}" / "models" / "model.pt") for f in (0, 1)]
    settings = json.loads((ensemble / "inference_settings.json").read_text())
    assert settings["checkpoints"] == [str(trained / f"fold_{f}" / "models" / "model.pt") for f in (0, 1)]
    image = nib.load(next((data / "imagesTs").glob("*.nii.gz")))
    case = image.get_filename().split("/")[-1]
    assert (ensemble / case).is_file() and sorted(p.name for p in ensemble.iterdir()) == \
        sorted([case, "inference_settings.json", "probabilities"])  # label maps stay where they were
    maps = [nib.load(out / "probabilities" / case) for out in (ensemble, *singles)]
    for m in maps:
        assert m.shape == (*image.shape[:3], 3) and np.allclose(m.affine, image.affine)
        assert m.get_data_dtype() == np.int16  # 2 bytes a voxel, scaled to floats by every NIfTI reader
    mean, first, second = (m.get_fdata() for m in maps)
    assert 0 <= mean.min() and mean.max() <= 1
    assert np.abs(first - second).max() > 0.05  # two different models...
    np.testing.assert_allclose(mean, (first + second) / 2, atol=2e-3)  # ...and the ensemble is their mean
    labels = nib.load(ensemble / case).get_fdata()
    assert labels.shape == image.shape[:3] and (labels > 0).sum() > 0


def test_evaluate_the_ensemble_on_the_folds_test_cases(data, trained):
    assert main(["evaluate", "brats_unet3d", "--dataset-dir", str(data), "--output-dir", str(trained), "--ckpt",
                 str(trained), *TINY]) == 0
    settings = json.loads((trained / "eval" / "settings.json").read_text())
    assert len(settings["checkpoints"]) == 2
    test = json.loads((trained / "folds.json").read_text())["test"]
    rows = (trained / "eval" / "per_case.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == test


def test_a_folder_without_checkpoints_is_a_one_line_error(data, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["infer", "brats_unet3d", "--input", str(data / "imagesTs"), "--output-dir", str(tmp_path / "out"),
                 "--ckpt", str(tmp_path / "empty"), *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith(f"monai-app: error: {tmp_path / 'empty'}: no checkpoint in this folder")
    assert not any("Traceback" in line for line in err), err


def test_postprocessing_of_the_folds_is_chosen_out_of_fold_and_applied_to_their_ensemble(data, trained, tmp_path):
    assert main(["postprocess", "brats_unet3d", "--dataset-dir", str(data), "--output-dir", str(trained),
                 *TINY]) == 0
    record = json.loads((trained / "postprocessing.json").read_text())
    folds = json.loads((trained / "folds.json").read_text())
    assert sorted(record["validation_cases"]) == sorted(c for fold in folds["folds"] for c in fold)  # every fold's
    assert record["checkpoint"] == [str(trained / f"fold_{f}" / "models" / "model.pt") for f in (0, 1)]
    out = tmp_path / "ensemble"
    assert main(["infer", "brats_unet3d", "--input", str(data / "imagesTs"), "--output-dir", str(out), "--ckpt",
                 str(trained), *TINY]) == 0
    settings = json.loads((out / "inference_settings.json").read_text())
    assert settings["postprocessing"]["source"] == str(trained / "postprocessing.json")
