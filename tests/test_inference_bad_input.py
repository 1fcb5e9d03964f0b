"""Inference over a folder with bad cases in it, as users run it: each bad case is reported on one line naming it
and its problem, the good cases are still segmented, the run exits non-zero at the end, and no partial output is
left. An output folder that cannot be written, or a full disk, stops with one clear line.

The network is randomly initialised (what is checked is the files, not their quality), tiny, on tiny volumes.
"""

from __future__ import annotations

import errno
import gzip
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO

BRATS = "bundles/brats_unet3d/configs/inference.json"
CARVANA = "bundles/carvana_unet2d/configs/inference.json"
BRATS_TINY = {"channels": "[8,16,32,64]", "roi_size": "[32,32,32]", "sw_batch_size": "1"}
TINY_2D = {"features": "[8,16,16,32,32,8]", "image_size": "32"}


def _checkpoint(config: str, path: Path, **overrides) -> Path:
    """A randomly initialised network of the bundle, saved as inference loads it."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(REPO / config))
    for key, value in overrides.items():
        parser[key] = value
    torch.manual_seed(0)
    torch.save({"model": parser.get_parsed_content("network_def").state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def brats_ckpt(tmp_path_factory) -> Path:
    return _checkpoint(BRATS, tmp_path_factory.mktemp("ckpt") / "model.pt", channels=[8, 16, 32, 64])


@pytest.fixture(scope="module")
def good_volumes(tmp_path_factory) -> list[Path]:
    """Two 4-D MSD test volumes with non-identity affines."""
    from monai_app.synthetic.brats import write_brats

    root = tmp_path_factory.mktemp("msd") / "Task01_BrainTumour"
    write_brats(root, cases=1, dataset_format="msd", seed=7, shape=(28, 32, 24), test_cases=2)
    return sorted((root / "imagesTs").glob("*.nii.gz"))


def _bad_volumes(folder: Path, good: Path) -> dict[str, str]:
    """Write one bad case of each kind into ``folder``; returns ``{case_id: what its error line must say}``."""
    img = nib.load(good)
    data, affine = np.asarray(img.dataobj, dtype=np.float32), img.affine
    raw = good.read_bytes()
    (folder / "truncated.nii.gz").write_bytes(raw[: len(raw) // 2])
    (folder / "text.nii.gz").write_text("patient notes, saved under the wrong name\n")
    (folder / "gzipped_text.nii.gz").write_bytes(gzip.compress(b"not a NIfTI header " * 40))
    (folder / "empty.nii").write_bytes(b"")
    nib.save(nib.Nifti1Image(data[..., 0], affine), folder / "one_modality.nii.gz")
    nib.save(nib.Nifti1Image(data[..., :3], affine), folder / "three_modalities.nii.gz")
    nan = data.copy()
    nan[3, 4, 5, 1], nan[6, 7, 8, 2] = np.nan, np.inf
    nib.save(nib.Nifti1Image(nan, affine), folder / "nan_voxels.nii.gz")
    return {
        "truncated": "truncated.nii.gz: truncated or damaged NIfTI file (Compressed file ended",
        "text": "text.nii.gz: not a NIfTI file, or a damaged one (",
        "gzipped_text": "gzipped_text.nii.gz: not a NIfTI file, or a damaged one (",
        "empty": "empty.nii: empty file (0 bytes)",
        "one_modality": "one_modality.nii.gz: a single 3-D volume of shape (",
        "three_modalities": "three_modalities.nii.gz: 3 channels; expected 4 channels (flair, t1, t1ce, t2)",
        "nan_voxels": "nan_voxels.nii.gz: 2 voxel(s) are NaN or infinite",
    }


def _bundle_run(config: str, **overrides) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file", config]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def _cli_overrides() -> list[str]:
    """BRATS_TINY as `monai-app` options, no workers."""
    return [a for k, v in {**BRATS_TINY, "num_workers": "0"}.items() for a in (f"--{k}", v)]


def _error_lines(stderr: str) -> list[str]:
    """stderr without MONAI's notice about trusting config files."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("parsing config_file")]


def _no_partial_files(out: Path) -> None:
    leftovers = [p.name for p in out.rglob("*") if ".part" in p.name]
    assert leftovers == [], f"temporary files left behind: {leftovers}"


def _check_case_lines(lines: list[str], expected: dict[str, str]) -> None:
    """Exactly one line per bad case, ``<case_id>: <file>: <problem>``."""
    for case, says in expected.items():
        mine = [line for line in lines if line.startswith(f"{case}: ")]
        assert len(mine) == 1, f"{case}: expected one line, got {mine}\n" + "\n".join(lines)
        assert says in mine[0], f"{case}: {mine[0]!r} does not say {says!r}"


def _check_predictions(out: Path, inputs: dict[str, Path]) -> None:
    for case, src in inputs.items():
        pred, ref = nib.load(out / f"{case}.nii.gz"), nib.load(src)
        assert pred.shape == ref.shape[:3], case
        np.testing.assert_allclose(pred.affine, ref.affine, atol=1e-4, err_msg=case)
        assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1, 2, 3}


def test_bundle_run_reports_each_bad_case_and_segments_the_good_ones(brats_ckpt, good_volumes, tmp_path):
    """Through `python -m monai.bundle run`, with 2 DataLoader workers (errors raised inside workers)."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    good = {}
    for i, src in enumerate(good_volumes):
        (inputs / f"good_{i}.nii.gz").symlink_to(src)
        good[f"good_{i}"] = src
    expected = _bad_volumes(inputs, good_volumes[0])
    proc = _bundle_run(BRATS, input=inputs, output_dir=out, ckpt_path=brats_ckpt, num_workers=2, **BRATS_TINY)
    lines = _error_lines(proc.stderr)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    _check_case_lines(lines, expected)
    assert lines[-1] == (f"error: {len(expected)} of {len(expected) + 2} case(s) failed (listed above; nothing was "
                         f"written for them); the other 2 were written to {out.resolve()}"), lines[-1]
    assert len(lines) == len(expected) + 1, "\n".join(lines)
    assert sorted(p.name for p in out.iterdir()) == ["good_0.nii.gz", "good_1.nii.gz", "inference_settings.json"]
    _no_partial_files(out)
    _check_predictions(out, good)


def test_cli_reports_incomplete_and_damaged_case_folders(brats_ckpt, tmp_path, capsys):
    """`monai-app infer` over a folder of BraTS 2023 case folders: one misses a modality, one has a truncated file."""
    from monai_app.cli import main
    from monai_app.synthetic.brats import write_brats

    data = tmp_path / "brats23"
    write_brats(data, cases=1, dataset_format="brats2023", seed=4, shape=(24, 28, 20), test_cases=3)
    good, missing, damaged = sorted(p for p in data.iterdir() if p.is_dir())[:3]
    next(missing.glob("*-t1c.nii.gz")).unlink()
    t2w = next(damaged.glob("*-t2w.nii.gz"))
    t2w.write_bytes(t2w.read_bytes()[:300])
    out = tmp_path / "out"
    code = main(["infer", "brats_unet3d", "--input", str(data), "--output-dir", str(out), "--ckpt", str(brats_ckpt),
                 *_cli_overrides()])
    lines = _error_lines(capsys.readouterr().err)
    assert code == 2
    _check_case_lines(lines, {missing.name: f"{missing}: case {missing.name} has no t1ce file (brats2023 layout)",
                              damaged.name: f"{t2w}: truncated or damaged NIfTI file ("})
    assert lines[-1].startswith("monai-app: error: 2 of 4 case(s) failed (listed above"), lines[-1]
    written = sorted(p.name for p in out.glob("*.nii.gz"))
    assert written == sorted(f"{p.name}.nii.gz" for p in data.iterdir() if p not in (missing, damaged))
    _check_predictions(out, {good.name: next(good.glob("*-t2f.nii.gz"))})
    _no_partial_files(out)


def test_2d_corrupt_images_are_reported_and_odd_photo_modes_are_segmented(tmp_path):
    """Carvana: grayscale, RGBA, 16-bit, CMYK and palette photos are read as RGB and segmented at their size;
    truncated, foreign and empty files are reported; no Kaggle submission is written while cases are missing."""
    ckpt = _checkpoint(CARVANA, tmp_path / "model.pt", features=[8, 16, 16, 32, 32, 8])
    inputs, out = tmp_path / "test", tmp_path / "out"
    inputs.mkdir()
    rgb = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    photos = {"rgb.jpg": Image.fromarray(rgb), "gray.png": Image.fromarray(rgb[..., 0]),
              "rgba.png": Image.fromarray(rgb).convert("RGBA"), "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
              "deep.png": Image.fromarray(rgb[..., 1].astype(np.uint16) * 257),
              "palette.gif": Image.fromarray(rgb).convert("P")}
    for name, img in photos.items():
        img.save(inputs / name)
    jpeg, gif = (inputs / "rgb.jpg").read_bytes(), (inputs / "palette.gif").read_bytes()
    (inputs / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (inputs / "cut_gif.gif").write_bytes(gif[: len(gif) // 2])
    (inputs / "notes.png").write_text("not a picture")
    (inputs / "nothing.jpg").write_bytes(b"")
    proc = _bundle_run(CARVANA, input=inputs, output_dir=out, ckpt_path=ckpt, num_workers=0, **TINY_2D)
    lines = _error_lines(proc.stderr)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    _check_case_lines(lines, {"cut": "cut.jpg: truncated or damaged JPEG file (image file is truncated",
                              "cut_gif": "cut_gif.gif: truncated or damaged GIF file (",
                              "notes": "notes.png: not a PNG file, or a damaged one (cannot identify image file",
                              "nothing": "nothing.jpg: empty file (0 bytes)"})
    assert lines[-1].startswith("error: 4 of 10 case(s) failed"), lines[-1]
    for name in photos:
        mask = Image.open(out / f"{Path(name).stem}.png")
        assert mask.mode == "P" and mask.size == (60, 40), name
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{Path(n).stem}.png" for n in photos] + ["inference_settings.json"])  # no submission.csv
    _no_partial_files(out)


def test_output_folder_under_a_file_fails_before_inference(brats_ckpt, good_volumes, tmp_path):
    blocker = tmp_path / "results.txt"
    blocker.write_text("a file where a folder was meant to be")
    out = blocker / "predictions"
    proc = _bundle_run(BRATS, input=good_volumes[0], output_dir=out, ckpt_path=brats_ckpt, num_workers=0,
                       **BRATS_TINY)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert _error_lines(proc.stderr) == [f"error: {out}: output folder is not writable ({blocker} is a file, not a "
                                         "folder)"]
    assert "case(s) to segment" not in proc.stdout  # stopped before even listing the inputs


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into a read-only folder")
def test_read_only_output_folder_fails_before_inference(brats_ckpt, good_volumes, tmp_path, capsys):
    from monai_app.cli import main

    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o500)
    try:
        code = main(["infer", "brats_unet3d", "--input", str(good_volumes[0]), "--output-dir", str(out),
                     "--ckpt", str(brats_ckpt), *_cli_overrides()])
    finally:
        out.chmod(0o700)
    assert code == 2
    assert _error_lines(capsys.readouterr().err) == [f"monai-app: error: {out}: output folder is not writable "
                                                     "(Permission denied)"]
    assert list(out.iterdir()) == []


def test_full_disk_stops_the_run_and_leaves_no_partial_file(brats_ckpt, good_volumes, tmp_path, monkeypatch,
                                                             capsys):
    """The second write fails with ENOSPC after writing half a file: the first case stays, the second leaves
    nothing (not even its temporary file), and the run stops with one line naming the file."""
    from monai_app.cli import main

    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for name, src in zip(("case_a", "case_b"), good_volumes):
        (inputs / f"{name}.nii.gz").symlink_to(src)
    real_save, calls = nib.save, []

    def save_until_full(img, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) == 1:
            return real_save(img, filename, *args, **kwargs)
        Path(filename).write_bytes(b"\x1f\x8b half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filename))

    monkeypatch.setattr(nib, "save", save_until_full)
    code = main(["infer", "brats_unet3d", "--input", str(inputs), "--output-dir", str(out), "--ckpt", str(brats_ckpt),
                 *_cli_overrides()])
    assert code == 2
    assert _error_lines(capsys.readouterr().err) == [
        f"monai-app: error: {out}/case_b.nii.gz: no space left on device; nothing was written for case case_b; "
        "stopped after 1 case(s) were written: rerun with --skip_existing true once this is fixed"]
    assert sorted(p.name for p in out.iterdir()) == ["case_a.nii.gz", "inference_settings.json"]
    _no_partial_files(out)
    _check_predictions(out, {"case_a": good_volumes[0]})


def test_a_failing_write_of_one_case_is_reported_and_the_others_written(brats_ckpt, good_volumes, tmp_path,
                                                                         monkeypatch, capsys):
    """A failure after inference (here a writer refusing one case's array) is that case's failure, not the run's."""
    from monai_app.cli import main
    from monai_app.transforms.common import WriteCased

    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for name, src in zip(("case_a", "case_b"), good_volumes):
        (inputs / f"{name}.nii.gz").symlink_to(src)
    real_call = WriteCased.__call__

    def refuse_case_a(self, data):
        if data["case_id"] == "case_a":
            raise ValueError("shape mismatch between prediction (3, 2, 2) and image (4, 4)")
        return real_call(self, data)

    monkeypatch.setattr(WriteCased, "__call__", refuse_case_a)
    code = main(["infer", "brats_unet3d", "--input", str(inputs), "--output-dir", str(out), "--ckpt", str(brats_ckpt),
                 *_cli_overrides()])
    lines = _error_lines(capsys.readouterr().err)
    assert code == 2
    _check_case_lines(lines, {"case_a": f"{inputs / 'case_a.nii.gz'}: could not be segmented (WriteCased: shape "
                                        "mismatch between prediction"})
    assert lines[-1].startswith("monai-app: error: 1 of 2 case(s) failed"), lines
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["case_b.nii.gz"]
    _no_partial_files(out)


def test_input_listing_marks_a_missing_listed_file_and_refuses_two_inputs_of_one_name(good_volumes, tmp_path):
    """A file listed in dataset.json but missing is that case's failure; two inputs named alike (``a.nii.gz`` and
    ``a.nrrd``) would write one output over the other, so the run is refused before it starts."""
    import json
    import re

    from monai_app.datasets.brats_inputs import find_inputs
    from monai_app.errors import DatasetError

    root = good_volumes[0].parent.parent
    meta = json.loads((root / "dataset.json").read_text())
    copy = tmp_path / root.name
    (copy / "imagesTs").mkdir(parents=True)
    (copy / "dataset.json").write_text(json.dumps({**meta, "test": meta["test"] + ["./imagesTs/BRATS_999.nii.gz"]}))
    for src in good_volumes:
        (copy / "imagesTs" / src.name).symlink_to(src)
    cases = {c["case_id"]: c for c in find_inputs(copy)}
    assert cases["BRATS_999"]["input_error"] == f"{copy / 'imagesTs/BRATS_999.nii.gz'}: listed input file does not exist"
    assert all("input_error" not in cases[p.name.removesuffix(".nii.gz")] for p in good_volumes)

    twins = tmp_path / "twins"
    twins.mkdir()
    (twins / "a.nii.gz").symlink_to(good_volumes[0])
    (twins / "a.nrrd").write_bytes(b"NRRD0004\n")
    with pytest.raises(DatasetError, match=re.escape(f"{twins}: two inputs are named 'a' (a.nii.gz, a.nrrd)")):
        find_inputs(twins)


def test_the_private_evaluator_iteration_is_still_what_monai_runs():
    """Pins the one private API ``SkipFailedCases`` relies on (:func:`monai_app.engine.failsafe.evaluator_iteration`,
    checked with monai 1.6.1 and pytorch-ignite 0.5.x): MONAI's ``SupervisedEvaluator._iteration(engine, batch)`` is
    the iteration the evaluator runs without an ``iteration_update``, and returns the image, label and prediction."""
    from monai.engines import SupervisedEvaluator
    from monai.utils import CommonKeys

    from monai_app.engine.failsafe import SkipFailedCases, evaluator_iteration

    where = "monai_app.engine.failsafe.evaluator_iteration calls it: find MONAI's per-iteration function again"
    assert callable(getattr(SupervisedEvaluator, "_iteration", None)), \
        f"monai's SupervisedEvaluator._iteration is gone; {where}"
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 2, 1)
    batch = {"image": torch.rand(1, 3, 4, 4), "label": torch.zeros(1, 1, 4, 4)}
    plain = SupervisedEvaluator(device="cpu", val_data_loader=[batch], network=net)
    assert getattr(plain, "_process_function", None) == plain._iteration, \
        f"SupervisedEvaluator no longer runs _iteration when given no iteration_update; {where}"
    guard = SkipFailedCases()
    guarded = SupervisedEvaluator(device="cpu", val_data_loader=[batch], network=net, iteration_update=guard)
    output = evaluator_iteration(guarded, batch)  # decollated: one dict per case
    assert isinstance(output, list) and len(output) == 1 and isinstance(output[0], dict), \
        f"SupervisedEvaluator._iteration(engine, batch) no longer returns the cases' outputs; {where}"
    assert {CommonKeys.IMAGE, CommonKeys.LABEL, CommonKeys.PRED} <= set(output[0]), \
        f"SupervisedEvaluator._iteration(engine, batch) no longer returns image, label and pred; {where}"
    with torch.no_grad():
        expected = net(batch["image"])[0]
    assert torch.allclose(output[0][CommonKeys.PRED], expected), f"_iteration no longer runs the network; {where}"
    guarded.run()  # and the evaluator runs through SkipFailedCases, which calls it
    assert guard.done == ["?"] and not guard.failures
