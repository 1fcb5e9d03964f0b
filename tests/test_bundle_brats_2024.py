"""brats_unet3d on the BraTS 2024-2025 layouts as downloaded, through `python -m monai.bundle run` as users call it:
post-treatment glioma with a resection cavity (label 4: a fourth output channel), BraTS-PED 2024-2025 (its own
label numbers) and BraTS-MET (many small lesions).

Tiny networks on tiny volumes (32³ patches, one or two epochs): what is checked is what a user would notice - the
channel count the run decides and keeps, label maps in the sub-challenge's own numbers, no flag needed to run a
checkpoint - not how well the models segment.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import bundle_run as run_bundle
from conftest import REPO, tb_tags
from monai_app.config import out_channels
from monai_app.synthetic.brats import write_brats

pytestmark = pytest.mark.slow

TINY = {"channels": "[8,16,32,64]", "roi_size": "[32,32,32]", "num_workers": "0", "sw_batch_size": "2"}
SHAPE = (40, 40, 32)
TRAIN = "bundles/brats_unet3d/configs/train.json"
EVALUATE = "['bundles/brats_unet3d/configs/train.json','bundles/brats_unet3d/configs/evaluate.json']"
INFER = "bundles/brats_unet3d/configs/inference.json"


def bundle_run(run_id: str, config_file: str, **overrides) -> None:
    run_bundle(run_id, config_file, **{**TINY, **overrides})


def infer(case: Path, out: Path, weights: Path, torchscript: bool = False) -> None:
    """`monai-app infer` in this process (no interpreter to start: a few seconds less per run)."""
    from monai_app.cli import main

    tiny = [arg for key, value in TINY.items() for arg in (f"--{key}", value)]
    assert main(["infer", "brats_unet3d", "--input", str(case), "--output-dir", str(out),
                 "--torchscript" if torchscript else "--ckpt", str(weights), *tiny]) == 0


def _train(data: Path, out: Path, epochs: int = 1) -> Path:
    bundle_run("training", TRAIN, dataset_dir=data, output_dir=out, max_epochs=epochs, val_interval=1, cache_rate=1.0)
    return out


def _labels(folder: Path) -> dict[str, np.ndarray]:
    """The label maps inference wrote, by case id."""
    return {p.name.removesuffix(".nii.gz"): np.asarray(nib.load(p).dataobj) for p in sorted(folder.glob("*.nii.gz"))}


def _test_cases(data: Path) -> list[Path]:
    """The case folders without a segmentation (the unlabelled ones)."""
    return [p for p in sorted(data.iterdir()) if not list(p.glob("*-seg.nii.gz"))]


@pytest.fixture(scope="module")
def post_treatment(tmp_path_factory) -> tuple[Path, Path]:
    """A BraTS 2024-style GLI folder with resection cavities, and a run folder trained on it for 2 epochs."""
    root = tmp_path_factory.mktemp("gli_rc")
    data = root / "BraTS2024-GLI"
    write_brats(data, cases=4, dataset_format="brats2023", resection_cavity=True, seed=1, shape=SHAPE, test_cases=1)
    return data, _train(data, root / "run", epochs=2)


def test_training_on_post_treatment_data_learns_a_cavity_channel(post_treatment):
    _, run = post_treatment
    record = json.loads((run / "resection_cavity.json").read_text())
    assert record["resection_cavity"] is True and record["decided_by"].startswith("auto: label 4 in BraTS-GLI-")
    settings = json.loads((run / "settings.json").read_text())
    assert settings["dataset_format"] == "brats2023" and settings["resection_cavity"] is True
    assert out_channels(run / "models" / "model.pt") == 4 and out_channels(run / "models" / "last.pt") == 4
    scalars, _ = tb_tags(run / "tb")
    assert {"val_mean_dice", "val_dice_wt", "val_dice_tc", "val_dice_et", "val_rc_dice"} <= scalars
    assert "val_dice_rc" not in scalars  # the key metric and its columns stay WT, TC, ET


def test_evaluation_of_the_cavity_model_needs_no_flag(post_treatment):
    data, run = post_treatment
    bundle_run("evaluating", EVALUATE, dataset_dir=data, output_dir=run)
    with open(run / "eval" / "per_case.csv") as f:
        rows = list(csv.reader(f))
    # the 2024 layout is scored as the official 2025 package scores it, the cavity channel included
    assert rows[0][:4] == ["case_id", "dice_wt", "dice_tc", "dice_et"]
    assert {"lesion_dice_wt", "lesion_hd95_et", "lesion_fp_tc", "dice_rc", "lesion_dice_rc"} <= set(rows[0])
    assert [r[0] for r in rows[1:]] == json.loads((run / "split.json").read_text())["test"]
    assert json.loads((run / "eval" / "settings.json").read_text())["metrics"] == "brats2025"


def test_inference_writes_the_cavity_from_a_checkpoint_and_its_torchscript(post_treatment, tmp_path):
    """The trained 4-channel checkpoint runs with no flag and writes brats2023 labels; one whose RC channel fires
    everywhere and the tumour regions nowhere writes label 4 over the whole brain, from the checkpoint and from its
    TorchScript file."""
    from monai_app.export import export_bundle

    data, run = post_treatment
    case = _test_cases(data)[0]
    infer(case, tmp_path / "trained", run / "models" / "model.pt")
    assert set(np.unique(_labels(tmp_path / "trained")[case.name]).tolist()) <= {0, 1, 2, 3, 4}

    state = torch.load(run / "models" / "model.pt", weights_only=True)
    bias = list(state)[-1]  # the output convolution's bias: one value per channel (WT, TC, ET, RC)
    state[bias] = state[bias] + torch.tensor([-50.0, -50.0, -50.0, 50.0])
    torch.save(state, tmp_path / "cavity.pt")
    export_bundle("brats_unet3d", tmp_path / "cavity.pt", out_dir=tmp_path, formats=("torchscript",),
                  overrides={"channels": [8, 16, 32, 64], "roi_size": [32, 32, 32]})
    infer(case, tmp_path / "ckpt", tmp_path / "cavity.pt")
    infer(case, tmp_path / "ts", tmp_path / "model.ts", torchscript=True)
    brain = np.asarray(nib.load(next(case.glob("*-t2f.nii.gz"))).dataobj) != 0
    for folder in ("ckpt", "ts"):
        label = _labels(tmp_path / folder)[case.name]
        assert set(np.unique(label).tolist()) == {0, 4}, folder
        assert np.mean((label == 4) == brain) > 0.95, folder  # the cavity everywhere in the brain, nothing outside
        settings = json.loads((tmp_path / folder / "inference_settings.json").read_text())
        assert settings["dataset_format"] == "brats2023"


def test_a_3_channel_checkpoint_on_cavity_data_writes_no_cavity(post_treatment, tmp_path):
    from monai.bundle import ConfigParser

    data, _ = post_treatment
    parser = ConfigParser()
    parser.read_config(str(REPO / INFER))
    parser.update({"channels": [8, 16, 32, 64]})
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def")
    assert net.model[-1][-1].conv.unit0.conv.out_channels == 3  # no checkpoint to read: 3 channels
    state = net.state_dict()
    bias = list(state)[-1]
    state[bias] = state[bias] + torch.tensor([50.0, 0.0, 0.0])  # whole tumour everywhere
    torch.save(state, tmp_path / "three.pt")
    case = _test_cases(data)[0]
    infer(case, tmp_path / "out", tmp_path / "three.pt")
    assert 4 not in _labels(tmp_path / "out")[case.name]


def test_ped_training_and_inference_write_only_ped_labels(tmp_path):
    """BraTS-PED 2024-2025 as downloaded: detected from the case ids, trained on its own numbers (1 ET, 2 NETC,
    3 CC, 4 ED); written maps hold ET 1, NETC 2 and ED 4 (a region model writes CC as NETC), no cavity channel."""
    data = tmp_path / "BraTS2024-PED"
    write_brats(data, cases=3, dataset_format="brats2024ped", seed=2, shape=SHAPE, test_cases=0)
    run = _train(data, tmp_path / "run")
    assert json.loads((run / "settings.json").read_text())["dataset_format"] == "brats2024ped"
    assert not (run / "resection_cavity.json").exists() and out_channels(run / "models" / "model.pt") == 3
    infer(data, tmp_path / "pred", run / "models" / "model.pt")  # the whole folder: PED told by the case ids
    written = _labels(tmp_path / "pred")
    assert sorted(written) == sorted(p.name for p in data.iterdir())
    assert all(set(np.unique(label).tolist()) <= {0, 1, 2, 4} for label in written.values())
    assert json.loads((tmp_path / "pred" / "inference_settings.json").read_text())["dataset_format"] == "brats2024ped"


def test_met_cases_through_training_evaluation_and_inference(tmp_path):
    data = tmp_path / "BraTS-MET"
    write_brats(data, cases=3, dataset_format="brats2023", subchallenge="MET", seed=3, shape=SHAPE, test_cases=1)
    run = _train(data, tmp_path / "run")
    assert json.loads((run / "resection_cavity.json").read_text())["resection_cavity"] is False
    assert out_channels(run / "models" / "model.pt") == 3
    bundle_run("evaluating", EVALUATE, dataset_dir=data, output_dir=run)
    assert (run / "eval" / "per_case.csv").is_file() and (run / "report.html").is_file()
    infer(data, tmp_path / "pred", run / "models" / "model.pt")  # the whole folder as downloaded
    written = _labels(tmp_path / "pred")
    assert all(set(np.unique(label).tolist()) <= {0, 1, 2, 3} for label in written.values())
    # scored against the dataset folder itself (case folders holding -seg files), with the MET lesion rule
    from monai_app.cli import main

    assert main(["score", "--pred", str(tmp_path / "pred"), "--ref", str(data), "--out", str(tmp_path / "score"),
                 "--metrics", "brats2023"]) == 0
    with open(tmp_path / "score" / "per_case.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["case_id"] for r in rows] == sorted(p.name for p in data.iterdir() if list(p.glob("*-seg.nii.gz")))
    assert "lesion_dice_rc" in rows[0] and "dice_netc" not in rows[0]  # MET scores RC, not NETC or SNFH
