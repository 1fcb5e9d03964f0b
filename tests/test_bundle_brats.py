"""The brats_unet3d bundle end to end, through `python -m monai.bundle run` exactly as users call it.

One tiny model is trained once (2 epochs, small network) on the synthetic MSD dataset; evaluation and inference
reuse it. Quality is not asserted here (the demo measures it); what a user would notice is: the run folder's
contents, TensorBoard tags, the metric tables, and predictions with the input's geometry.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import BRATS_BUNDLE, REPO, tb_tags
from conftest import bundle_run as run_bundle
from test_reports import check_report

pytestmark = pytest.mark.slow

CONFIGS = BRATS_BUNDLE / "configs"
TINY = {"channels": "[8,16,32,64]", "num_workers": "0", "sw_batch_size": "2"}


def bundle_run(run_id: str, config_file: str, cwd: Path = REPO, **overrides: str) -> subprocess.CompletedProcess:
    return run_bundle(run_id, config_file, cwd, **{**TINY, **overrides})


@pytest.fixture(scope="module")
def trained(msd_tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("brats_run")
    bundle_run("training", "bundles/brats_unet3d/configs/train.json", dataset_dir=msd_tiny, output_dir=out,
               max_epochs=2, val_interval=1, cache_rate=1.0)
    return out


@pytest.fixture(scope="module")
def evaluated(trained, msd_tiny) -> Path:
    configs = "['bundles/brats_unet3d/configs/train.json','bundles/brats_unet3d/configs/evaluate.json']"
    bundle_run("evaluating", configs, dataset_dir=msd_tiny, output_dir=trained)
    return trained / "eval"


def test_training_writes_the_run_folder(trained):
    models = trained / "models"
    assert (models / "model.pt").is_file(), "best checkpoint missing"
    assert sorted(p.name for p in models.iterdir()) == ["last.pt", "model.pt"]
    last = torch.load(models / "last.pt", weights_only=True)
    assert last["trainer"]["iteration"] == 2 * last["trainer"]["epoch_length"]
    assert {"model", "optimizer", "lr_scheduler", "trainer", "best_metric"} <= set(last)
    split = json.loads((trained / "split.json").read_text())
    assert sum(len(split[k]) for k in ("train", "validation", "test")) == 6
    settings = json.loads((trained / "settings.json").read_text())
    assert settings["max_epochs"] == 2 and settings["dataset_format"] == "msd" and settings["channels"] == [8, 16, 32, 64]


def test_tensorboard_shows_loss_lr_region_dice_and_panels(trained):
    scalars, images = tb_tags(trained / "tb")
    assert {"train/loss", "train/lr", "val_dice_wt", "val_dice_tc", "val_dice_et", "val_mean_dice"} <= scalars
    assert "val/flair_reference_prediction" in images


def test_evaluation_adds_no_empty_tensorboard_file(evaluated, trained):
    """TensorBoard lists one run per events file: evaluation must not leave one with nothing in it."""
    for events in (trained / "tb").glob("events.out.tfevents.*"):
        scalars, images = tb_tags(events.parent, events.name)
        assert scalars or images, f"{events.name} holds no scalars or images"


def test_evaluation_tables_cover_the_test_split(evaluated, trained):
    with open(evaluated / "per_case.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["case_id", "dice_wt", "dice_tc", "dice_et", "hd95_wt", "hd95_tc", "hd95_et"]
    assert [r[0] for r in rows[1:]] == json.loads((trained / "split.json").read_text())["test"]
    values = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    assert ((values[:, :3] >= 0) & (values[:, :3] <= 1)).all() and (values[:, 3:] >= 0).all()
    summary = json.loads((evaluated / "summary.json").read_text())
    assert set(summary) == set(rows[0][1:])
    assert summary["dice_wt"]["mean"] == pytest.approx(values[:, 0].mean(), abs=1e-5)
    cases = [r[0] for r in rows[1:]]
    assert sorted(p.stem for p in (evaluated / "cases").glob("*.png")) == sorted(cases)  # one picture per case
    check_report(trained, cases, ["dice_wt", "dice_et", "hd95_wt", "val_dice_tc"])  # written by evaluate itself


def _write_oblique_case(path: Path) -> np.ndarray:
    """A non-cubic 4-D volume with flipped axes, anisotropic spacing and an offset origin."""
    rng = np.random.default_rng(0)
    data = np.zeros((37, 45, 29, 4), np.float32)
    data[5:30, 8:40, 4:25] = rng.uniform(50, 150, (25, 32, 21, 4))
    affine = np.array([[-1.2, 0, 0, 40.0], [0, 0.9, 0, -30.0], [0, 0, -1.5, 12.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), path)
    return affine


def test_inference_keeps_the_input_geometry(trained, msd_tiny, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    affine = _write_oblique_case(inputs / "odd_case.nii")  # uncompressed NIfTI is read too
    for f in (msd_tiny / "imagesTs").glob("*.nii.gz"):
        (inputs / f.name).symlink_to(f)
    out = tmp_path / "out"
    bundle_run("inference", "bundles/brats_unet3d/configs/inference.json", input=inputs, output_dir=out,
               ckpt_path=trained / "models" / "model.pt")
    written = sorted(p.name for p in out.iterdir())
    case_ids = [f.name.removesuffix(".gz").removesuffix(".nii") for f in inputs.iterdir()]
    assert written == sorted([f"{c}.nii.gz" for c in case_ids] + ["inference_settings.json"])
    for f, case in zip(inputs.iterdir(), case_ids):
        src, pred = nib.load(f), nib.load(out / f"{case}.nii.gz")
        assert pred.shape == src.shape[:3], f.name
        np.testing.assert_allclose(pred.affine, src.affine, atol=1e-4, err_msg=f.name)
        assert pred.get_data_dtype() == np.uint8
        assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1, 2, 3}
    np.testing.assert_allclose(nib.load(out / "odd_case.nii.gz").affine, affine, atol=1e-4)


def test_inference_from_inside_the_bundle_folder_on_nrrd(trained, msd_tiny, tmp_path):
    import SimpleITK as sitk

    src = sorted((msd_tiny / "imagesTs").glob("*.nii.gz"))[0]
    ref = nib.load(src)
    vol = sitk.GetImageFromArray(np.asarray(ref.dataobj).transpose(2, 1, 0, 3), isVector=True)
    vol.SetSpacing([1.1, 1.0, 1.25])
    vol.SetOrigin([10.0, -5.0, 3.0])
    sitk.WriteImage(vol, str(tmp_path / "case_a.nrrd"))
    out = tmp_path / "out"
    bundle_run("inference", "configs/inference.json", cwd=BRATS_BUNDLE, input=tmp_path / "case_a.nrrd",
               output_dir=out, ckpt_path=trained / "models" / "model.pt")
    pred = nib.load(out / "case_a.nii.gz")
    assert pred.shape == ref.shape[:3]
    # ITK stores LPS; NIfTI is RAS: the first two axes flip sign, origin included.
    expected = np.diag([-1.1, -1.0, 1.25, 1.0])
    expected[:3, 3] = [-10.0, 5.0, 3.0]
    np.testing.assert_allclose(pred.affine, expected, atol=1e-4)


def test_cli_infers_a_per_modality_case_in_its_own_label_convention(trained, tmp_path):
    from monai_app.cli import main
    from monai_app.synthetic.brats import write_brats

    write_brats(tmp_path / "brats23", cases=1, dataset_format="brats2023", seed=5, shape=(40, 40, 36), test_cases=1)
    case = next(p for p in (tmp_path / "brats23").iterdir() if not list(p.glob("*-seg.nii.gz")))
    out = tmp_path / "out"
    code = main(["infer", "brats_unet3d", "--input", str(case), "--output-dir", str(out), "--ckpt",
                 str(trained / "models" / "model.pt"), "--channels", "[8,16,32,64]", "--num_workers", "0"])
    assert code == 0
    pred = nib.load(out / f"{case.name}.nii.gz")
    assert pred.shape == nib.load(next(case.glob("*-t2f.nii.gz"))).shape
    settings = json.loads((out / "inference_settings.json").read_text())
    assert settings["dataset_format"] == "brats2023"


@pytest.mark.parametrize("fmt", ["brats2021", "brats2023"])
def test_training_reads_the_challenge_layouts_with_their_own_labels(fmt, tmp_path):
    """One epoch on each per-modality layout, format auto-detected: a wrong label convention would stop the run
    (labels outside the convention are refused) and the saved settings name the detected format."""
    from monai_app.synthetic.brats import write_brats

    data = tmp_path / fmt
    write_brats(data, cases=3, dataset_format=fmt, seed=1, shape=(40, 40, 36), test_cases=0)
    out = tmp_path / "run"
    bundle_run("training", "bundles/brats_unet3d/configs/train.json", dataset_dir=data, output_dir=out,
               max_epochs=1, val_interval=1, cache_rate=1.0)
    assert json.loads((out / "settings.json").read_text())["dataset_format"] == fmt
    assert (out / "models" / "model.pt").is_file()


@pytest.mark.parametrize("scoring", ["brats2021", "brats2023", "brats2025"])
def test_evaluation_agrees_with_scoring_the_written_label_maps(scoring, trained, tmp_path):
    """`evaluate` (in memory, nested regions) and `monai-app score` on what inference wrote must give the same
    numbers under each scoring convention: on 1-mm volumes, with flipped axes, they measure the same label maps."""
    from monai_app.synthetic.brats import write_brats
    from monai_app.metrics.folders import score_folders

    data = tmp_path / "Task01_BrainTumour"
    write_brats(data, cases=2, dataset_format="msd", seed=11, shape=(40, 44, 36), test_cases=0)
    for f in [*(data / "imagesTr").glob("*.nii.gz"), *(data / "labelsTr").glob("*.nii.gz")]:
        img = nib.load(f)  # keep the flips and origin, make the spacing 1 mm
        affine = img.affine.copy()
        affine[:3, :3] = np.sign(affine[:3, :3])
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine), f)
    out = tmp_path / "run"
    out.mkdir()
    ids = sorted(p.name.removesuffix(".nii.gz") for p in (data / "labelsTr").glob("*.nii.gz"))
    (out / "split.json").write_text(json.dumps({"train": [], "validation": [], "test": ids}))
    configs = "['bundles/brats_unet3d/configs/train.json','bundles/brats_unet3d/configs/evaluate.json']"
    ckpt = trained / "models" / "model.pt"
    tta = str(scoring == "brats2025").lower()  # and mirroring at test time, in both, once
    bundle_run("evaluating", configs, dataset_dir=data, output_dir=out, ckpt_path=ckpt, metrics=scoring, tta=tta)
    bundle_run("inference", "bundles/brats_unet3d/configs/inference.json", input=data / "imagesTr",
               output_dir=tmp_path / "pred", ckpt_path=ckpt, tta=tta)
    if scoring == "brats2025":
        assert json.loads((out / "eval" / "settings.json").read_text())["tta"] == [0, 1, 2]
        assert json.loads((tmp_path / "pred" / "inference_settings.json").read_text())["tta"] == [0, 1, 2]
    score_folders(tmp_path / "pred", data / "labelsTr", "msd", tmp_path / "score", scoring=scoring)
    with open(out / "eval" / "per_case.csv") as a, open(tmp_path / "score" / "per_case.csv") as b:
        evaluated, scored = list(csv.reader(a)), list(csv.reader(b))
    assert evaluated[0] == scored[0] and [r[0] for r in evaluated] == [r[0] for r in scored]
    assert ("lesion_dice_et" in scored[0]) == (scoring != "brats2021")
    np.testing.assert_allclose(np.array([r[1:] for r in evaluated[1:]], float),
                               np.array([r[1:] for r in scored[1:]], float), rtol=1e-4, atol=1e-4)


def test_cpu_amp_inference_agrees_with_float32(trained, msd_tiny, tmp_path):
    """--amp true on the CPU (bf16 sliding window) writes the same kind of label maps as float32, nearly equal."""
    outs = {}
    for amp in ("false", "true"):
        outs[amp] = tmp_path / amp
        bundle_run("inference", "bundles/brats_unet3d/configs/inference.json", input=msd_tiny / "imagesTs",
                   output_dir=outs[amp], ckpt_path=trained / "models" / "model.pt", device="cpu", amp=amp)
    assert json.loads((outs["true"] / "inference_settings.json").read_text())["amp"] is True
    assert json.loads((outs["false"] / "inference_settings.json").read_text())["amp"] is False  # not 'false'
    for f in sorted(outs["false"].glob("*.nii.gz")):
        a, b = nib.load(f), nib.load(outs["true"] / f.name)
        assert b.shape == a.shape and b.get_data_dtype() == np.uint8
        same = np.mean(np.asarray(a.dataobj) == np.asarray(b.dataobj))
        assert same >= 0.99, f"{f.name}: bf16 and float32 label maps agree on only {same:.3%} of the voxels"
