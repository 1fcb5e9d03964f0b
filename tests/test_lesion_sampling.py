"""brats_unet3d's lesion-aware training: ``patch_sampling: lesion`` (a crop centre per lesion, small ones included)
and ``val_metric: lesion_dice`` (the best checkpoint chosen by the BraTS 2023 lesion-wise Dice), through the real
bundle configs and the ``monai-app`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tb_tags
from monai.data import MetaTensor

from monai_app.cli import main
from monai_app.reports import read_scalars
from monai_app.transforms.lesions import LabelLesionsd, label_lesions
from monai_app.workflow import make_workflow

TINY = ["--channels", "[8,16,32,64]", "--roi_size", "[32,32,32]", "--num_workers", "0", "--sw_batch_size", "2",
        "--batch_size", "1", "--num_samples", "1"]
SHAPE = (64, 64, 48)
TINY_LESIONS = [(50, 50, 10), (50, 12, 38), (14, 50, 38), (48, 30, 30)]  # 2x2x2 voxels each, far apart


@pytest.fixture(scope="module")
def met_data(tmp_path_factory) -> Path:
    """4 training + 2 test synthetic BraTS 2023 MET cases (several metastases per case)."""
    from monai_app.synthetic.brats import write_brats

    out = tmp_path_factory.mktemp("met") / "met"
    write_brats(out, cases=4, dataset_format="brats2023", subchallenge="MET", shape=(48, 48, 32), test_cases=2)
    return out


def _lesion_truth() -> np.ndarray:
    """One big lesion (a ball of ~7000 voxels) and four tiny ones (8 voxels), numbered 1 (big) and 2..5."""
    truth = np.zeros(SHAPE, np.uint8)
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    truth[(z - 16) ** 2 + (y - 16) ** 2 + (x - 16) ** 2 <= 12**2] = 1
    for number, (a, b, c) in enumerate(TINY_LESIONS, start=2):
        truth[a : a + 2, b : b + 2, c : c + 2] = number
    return truth


def _crop_hits(mode: str, tmp_path: Path, met_data: Path, draws: int = 200) -> np.ndarray:
    """How many of ``draws`` training patches of the bundle's ``patch_sampling: mode`` crops contain each lesion
    (index 0: background). The lesion numbers travel in image channel 0, so each patch tells what it holds."""
    workflow = make_workflow("brats_unet3d", "training", {"dataset_dir": str(met_data), "output_dir": str(tmp_path),
                                                           "roi_size": [16, 16, 16], "num_samples": 1,
                                                           "patch_sampling": mode})
    crops = workflow.parser.get_parsed_content("train#augmentation")
    crop = crops[[type(t).__name__ for t in crops].index("Compose")]  # the one patch_sampling chooses
    crop.set_random_state(0)
    truth = _lesion_truth()
    data = {"image": MetaTensor(torch.from_numpy(truth[None].astype(np.float32)).repeat(4, 1, 1, 1)),
            "label": MetaTensor(torch.from_numpy(np.stack([truth > 0] * 3)).to(torch.uint8)),
            "case_id": "synthetic"}
    first_random = crop.get_index_of_first(lambda t: hasattr(t, "R"))
    cached = crop(data, end=first_random)  # what the training cache keeps
    hits = np.zeros(len(TINY_LESIONS) + 2, int)
    for _ in range(draws):
        for patch in crop(dict(cached), start=first_random):
            assert tuple(patch["image"].shape) == (4, 16, 16, 16) and tuple(patch["label"].shape) == (3, 16, 16, 16)
            assert set(patch) == {"image", "label", "case_id"}, "the lesion map and its indices must be dropped"
            hits[np.unique(patch["image"][0].numpy().astype(int))] += 1
    return hits


def test_lesion_sampling_visits_every_tiny_lesion(tmp_path, met_data):
    lesion = _crop_hits("lesion", tmp_path / "lesion", met_data)
    tumour = _crop_hits("tumour", tmp_path / "tumour", met_data)
    print(f"\npatches holding lesion 1 (big), 2..5 (tiny) of 200: lesion {lesion[1:]}, tumour {tumour[1:]}")
    assert lesion[2:].min() >= 10, f"a tiny lesion was seldom in a 'lesion' patch: {lesion[2:]}"
    assert tumour[2:].sum() * 3 <= lesion[2:].sum(), f"'tumour' patches: {tumour[2:]}, 'lesion': {lesion[2:]}"
    assert lesion[1] >= 40 and tumour[1] >= 80  # the big lesion is still well covered by both


def test_lesions_are_26_connected_and_capped():
    mask = np.zeros((10, 10, 10), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = True  # corner to corner: one lesion (the BraTS 2023 rule)
    mask[6:8, 6:8, 6:8] = True
    mask[1, 8, 1] = True
    assert label_lesions(mask).max() == 3
    assert label_lesions(mask, max_lesions=2).max() == 2 and (label_lesions(mask, max_lesions=2) == 2).sum() == 9
    label = MetaTensor(torch.zeros(3, 10, 10, 10), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    label[0][torch.from_numpy(mask)] = 1
    label[1, 5, 5, 5] = 1  # another channel: no lesion of the whole tumour
    out = LabelLesionsd("label")({"label": label})
    assert out["lesions"].shape == (1, 10, 10, 10) and int(out["lesions"].max()) == 3
    assert torch.equal(out["lesions"].affine, label.affine)


@pytest.mark.parametrize("key, value, message", [
    ("patch_sampling", "lesions", "--patch_sampling 'lesions': expected one of tumour, lesion"),
    ("val_metric", "hd95", "--val_metric 'hd95': expected one of dice, lesion_dice"),
    ("lesion_crop_weight", "1.5", "--lesion_crop_weight 1.5: expected a number from 0 to 1")])
def test_a_bad_choice_is_one_line_naming_the_key(key, value, message, tmp_path, met_data, capsys):
    code = main(["train", "brats_unet3d", "--dataset-dir", str(met_data), "--output-dir", str(tmp_path / "run"),
                 "--patch_sampling", "lesion", f"--{key}", value])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "run").glob("models/*.pt"))


def test_lesion_training_keeps_the_best_lesion_dice_and_evaluates(tmp_path, met_data):
    run = tmp_path / "run"
    args = ["--dataset-dir", str(met_data), "--output-dir", str(run), *TINY]
    assert main(["train", "brats_unet3d", *args, "--max-epochs", "2", "--val_interval", "1",
                 "--patch_sampling", "lesion", "--val_metric", "lesion_dice"]) == 0
    settings = json.loads((run / "settings.json").read_text())
    assert settings["patch_sampling"] == "lesion" and settings["val_metric"] == "lesion_dice"
    assert (run / "models" / "model.pt").is_file()
    scalars, _ = tb_tags(run / "tb")
    assert {"val_lesion_dice", "val_mean_dice", "val_dice_wt", "val_dice_tc", "val_dice_et"} <= scalars
    best = torch.load(run / "models" / "last.pt", weights_only=True)["best_metric"]
    steps, values = read_scalars(run / "tb")["val_lesion_dice"]
    assert best["value"] == pytest.approx(values.max()) and best["epoch"] == steps[values.argmax()]
    assert main(["evaluate", "brats_unet3d", *args, "--val_metric", "lesion_dice"]) == 0
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert {"lesion_dice_wt", "lesion_dice_tc", "lesion_dice_et"} <= set(summary)
