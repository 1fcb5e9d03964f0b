"""Bad input through the real entry points: ``python -m monai.bundle run`` (a subprocess, as users run it) and
``monai-app`` (its ``main()``). Each must end in one line naming the file and the problem, a non-zero exit, no
traceback, and nothing written for training (no checkpoint, no TensorBoard file).

The damages are in ``bad_inputs.py``; ``scripts/bad_input_table.py`` prints the README's troubleshooting table from
the same list. Inference over folders with bad cases is in ``test_inference_bad_input.py``.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bad_inputs import DAMAGES, clean_datasets, damaged
from conftest import REPO
from monai_app.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, Path]:
    return clean_datasets(tmp_path_factory.mktemp("clean"))


def bundle_run(run_id: str, config: str, **overrides) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", config]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def one_error_line(text: str, prefix: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    return lines[0]


@pytest.mark.parametrize("name", list(DAMAGES))
def test_training_fails_fast_with_the_problem_in_one_line(name, clean, tmp_path, capsys):
    bundle, root, expected = damaged(name, clean, tmp_path)
    out = tmp_path / "run"
    proc = bundle_run("training", f"bundles/{bundle}/configs/train.json", dataset_dir=root, output_dir=out,
                      num_workers=0)
    assert proc.returncode != 0
    line = one_error_line(proc.stderr, "error: ")
    assert expected in line and "training did not start" in line or "does not exist or is not a folder" in line, line
    assert not (out / "models").exists() and not (out / "tb").exists()  # nothing written: it stopped before

    cli_out = tmp_path / "cli_run"
    assert main(["train", bundle, "--dataset-dir", str(root), "--output-dir", str(cli_out), "--num_workers",
                 "0"]) == 2
    line = one_error_line(capsys.readouterr().err, "monai-app: error: ")
    assert expected in line, line
    assert not (cli_out / "models").exists()


def test_debug_shows_the_traceback(tmp_path):
    proc = bundle_run("training", "bundles/brats_unet3d/configs/train.json", dataset_dir=tmp_path / "missing",
                      output_dir=tmp_path / "run", debug="true")
    assert proc.returncode != 0 and "Traceback (most recent call last)" in proc.stderr
    assert "DatasetError: " in proc.stderr and "dataset_dir does not exist" in proc.stderr


def test_several_problems_are_listed_together(clean, tmp_path, capsys):
    """One run shows every problem, not only the first, so a user fixes the dataset in one go."""
    import shutil

    import numpy as np

    from bad_inputs import _label_value, _msd, _resave, _set, _truncated_nifti

    root = tmp_path / "Task01_BrainTumour"
    shutil.copytree(clean["msd"], root)
    _resave(_msd(root, 1), _set(np.inf, (1, 1, 1, 2)))  # an infinite voxel in the second case
    expected = [_truncated_nifti(root), _label_value(root), f"{_msd(root, 1)}: 1 NaN or infinite voxel(s)"]
    code = main(["train", "brats_unet3d", "--dataset-dir", str(root), "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and f"monai-app: error: {root}: 3 problems in the dataset; training did not start:" in err
    for fragment in expected:
        assert sum(fragment in line for line in err.splitlines()) == 1, err


def test_an_unwritable_output_folder_is_named_before_any_work(clean, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    proc = bundle_run("training", "bundles/brats_unet3d/configs/train.json", dataset_dir=clean["msd"],
                      output_dir=locked / "run")
    assert proc.returncode != 0
    assert f"{locked / 'run'}: output folder is not writable" in one_error_line(proc.stderr, "error: ")


def test_an_output_path_under_a_file_is_named_before_any_work(clean, tmp_path, capsys):
    """(runs as root too: no permission can make a regular file a folder)"""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = bundle_run("training", "bundles/brats_unet3d/configs/train.json", dataset_dir=clean["msd"],
                      output_dir=blocker / "run")
    assert proc.returncode != 0
    assert f"{blocker / 'run'}: output folder is not writable" in one_error_line(proc.stderr, "error: ")
    assert main(["train", "brats_unet3d", "--dataset-dir", str(clean["msd"]), "--output-dir",
                 str(blocker / "run")]) == 2
    line = one_error_line(capsys.readouterr().err, "monai-app: error: ")
    assert f"{blocker / 'run'}: output folder is not writable" in line


# -------------------------------------------------------------------------------------------------- checkpoints
def _checkpoints(tmp_path: Path) -> dict[str, Path]:
    from monai.networks.nets import UNet

    other = UNet(spatial_dims=2, in_channels=3, out_channels=2, channels=(8, 16), strides=(2,))
    paths = {"another bundle's": tmp_path / "carvana_model.pt", "corrupted": tmp_path / "corrupted.pt",
             "truncated": tmp_path / "truncated.pt", "not weights": tmp_path / "pickled.pt"}
    torch.save({"model": other.state_dict()}, paths["another bundle's"])
    data = paths["another bundle's"].read_bytes()
    paths["truncated"].write_bytes(data[: len(data) // 2])
    paths["corrupted"].write_bytes(b"\x00garbage" * 100)
    torch.save({"model": other.state_dict(), "args": argparse_namespace()}, paths["not weights"])
    return paths


def argparse_namespace():
    import argparse

    return argparse.Namespace(lr=0.1)


CHECKPOINT_MESSAGES = {"another bundle's": "does not fit this bundle's network",
                       "corrupted": "not a PyTorch checkpoint, or a damaged one",
                       "truncated": "not a PyTorch checkpoint, or a truncated or damaged one",
                       "not weights": "holds a Python object (argparse.Namespace) besides weights; it is not loaded"}


def test_bad_checkpoints_are_named_by_inference_and_nothing_is_written(clean, tmp_path, capsys):
    images = sorted((clean["msd"] / "imagesTr").glob("*.nii.gz"))[:1]
    for kind, ckpt in _checkpoints(tmp_path).items():
        out = tmp_path / f"pred_{kind.replace(' ', '_')}"
        proc = bundle_run("inference", "bundles/brats_unet3d/configs/inference.json", input=images[0],
                          output_dir=out, ckpt_path=ckpt, channels="[8,16,32,64]", num_workers=0)
        assert proc.returncode != 0
        line = one_error_line(proc.stderr, "error: ")
        assert f"{ckpt}: {CHECKPOINT_MESSAGES[kind]}" in line, line
        assert not list(out.glob("*.nii.gz"))
        assert main(["infer", "brats_unet3d", "--input", str(images[0]), "--output-dir", str(out), "--ckpt",
                     str(ckpt), "--channels", "[8,16,32,64]", "--num_workers", "0"]) == 2
        assert f"{ckpt}: {CHECKPOINT_MESSAGES[kind]}" in one_error_line(capsys.readouterr().err, "monai-app: error: ")


def test_a_full_disk_while_saving_a_checkpoint_stops_training_and_keeps_the_last_one(clean, tmp_path, monkeypatch,
                                                                                       capsys):
    """ENOSPC is simulated in the writer of ``last.pt`` (no test can fill a real disk safely)."""
    import monai_app.engine.checkpoints as checkpoints

    out = tmp_path / "run"
    args = ["train", "brats_unet3d", "--dataset-dir", str(clean["msd"]), "--output-dir", str(out), "--max-epochs", "1",
            "--channels", "[8,16,32,64]", "--num_workers", "0", "--val_interval", "1", "--roi_size", "[16,16,16]"]
    assert main(args) == 0
    before = (out / "models" / "last.pt").read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        if str(f).endswith(".pt") and ".last.pt." in str(f):
            Path(f).write_bytes(b"partial")  # a write that got half-way
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(checkpoints.torch, "save", full_disk)
    assert main(args[:7] + ["2"] + args[8:]) == 2
    line = one_error_line(capsys.readouterr().err, "monai-app: error: ")
    assert f"{out / 'models' / 'last.pt'}: could not be written (no space left on device" in line, line
    assert "the previous checkpoint is kept" in line
    assert (out / "models" / "last.pt").read_bytes() == before  # the previous checkpoint is whole
    assert not [p.name for p in (out / "models").iterdir() if p.name not in ("last.pt", "model.pt")]


def test_photos_that_are_not_8_bit_rgb_are_converted_and_train(clean, tmp_path, capsys):
    """Grayscale, RGBA, 16-bit and palette photos are not errors: training reads them as RGB (validate notes them)."""
    import shutil

    import numpy as np
    from PIL import Image

    root = tmp_path / "CamVid"
    shutil.copytree(clean["camvid"], root)
    photos = sorted((root / "images_prepped_train").glob("*.png"))
    rgb = [np.asarray(Image.open(p).convert("RGB")) for p in photos[:3]]
    Image.fromarray(rgb[0]).convert("L").save(photos[0])
    Image.fromarray(rgb[1]).convert("RGBA").save(photos[1])
    Image.fromarray((np.asarray(Image.fromarray(rgb[2]).convert("L"), np.uint16) * 257)).save(photos[2])  # 16-bit
    assert {Image.open(p).mode for p in photos[:3]} == {"L", "RGBA", "I;16"}
    out = tmp_path / "run"
    assert main(["train", "camvid_unet2d", "--dataset-dir", str(root), "--output-dir", str(out), "--max-epochs", "1",
                 "--num_workers", "0", "--image_size", "32", "--features", "[4,8,16,32,64,4]"]) == 0
    assert (out / "models" / "last.pt").is_file()
    assert main(["validate", "camvid_unet2d", "--dataset-dir", str(root)]) == 0
    assert "photo(s) are not 8-bit RGB" in capsys.readouterr().out
