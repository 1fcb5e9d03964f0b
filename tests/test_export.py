"""``monai-app export``: TorchScript and ONNX exports of every bundle, checked against PyTorch, and inference from
the TorchScript file giving the same label maps as inference from the checkpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CAMVID_SAMPLES, REPO, bundle_run, needs_camvid
from monai_app.errors import UserInputError
from monai_app.export import _parser, export_bundle, format_export

FEATURES = [8, 16, 16, 32, 32, 8]
SMALL = {"brats_unet3d": {"channels": [8, 16, 32], "roi_size": [32, 32, 32]},  # small networks, small check inputs
         "carvana_unet2d": {"features": FEATURES, "image_size": 64},
         "camvid_unet2d": {"features": FEATURES, "image_size": 64},
         "voc_unet2d": {"features": FEATURES, "image_size": 64},
         "ccp_unet2d": {"features": FEATURES, "roi_size": [64, 48]}}
STATIC = {"ccp_unet2d"}  # exported with dynamic_spatial=False: an ONNX model of the checked size only


def _checkpoint(bundle: str, path, seed: int = 0):
    """A checkpoint as training writes it (a plain state_dict) of a freshly initialised small network."""
    torch.manual_seed(seed)
    net = _parser(REPO / "bundles" / bundle, SMALL[bundle]).get_parsed_content("network_def")
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.parametrize("bundle", list(SMALL))
def test_export_writes_torchscript_and_onnx_that_agree_with_pytorch(bundle, tmp_path):
    import onnxruntime
    from monai.data import load_net_with_metadata

    ckpt = _checkpoint(bundle, tmp_path / "model.pt")
    result = export_bundle(bundle, ckpt, overrides=SMALL[bundle], dynamic_spatial=bundle not in STATIC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json", "model.onnx", "model.pt", "model.ts"]
    saved = json.loads((tmp_path / "export.json").read_text())
    assert saved == json.loads(json.dumps(result))
    channels = 4 if bundle == "brats_unet3d" else 3
    roi = SMALL[bundle].get("roi_size", [64, 64])
    assert saved["input_shape"] == [1, channels, *roi]  # channels from metadata.json, spatial size the inferer's
    assert saved["max_abs_diff_allowed"] == pytest.approx(1e-4 * max(1.0, saved["max_abs_output"]))
    assert {"monai", "torch", "onnx", "onnxruntime"} <= set(saved["versions"])
    # batch axis dynamic; spatial axes too where metadata.json says "16*n" (2-D), checked one step larger
    dynamic = bundle not in STATIC and bundle != "brats_unet3d"
    assert saved["onnx_dynamic_axes"] == {"0": "batch", **({"2": "multiple of 16", "3": "multiple of 16"} if dynamic
                                                             else {})}
    assert saved["onnx_checked_shapes"] == [[1, channels, *roi], [2, channels, *[n + 16 * dynamic for n in roi]]]
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    sizes = [f"size{a}" for a in range(2, 2 + len(roi))] if dynamic else roi
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("image", ["batch", channels, *sizes])]
    for fmt in ("torchscript", "onnx"):
        assert saved["exports"][fmt]["max_abs_diff"] <= saved["max_abs_diff_allowed"]
        assert saved["exports"][fmt]["size_mb"] > 0
    net, meta, extra = load_net_with_metadata(str(tmp_path / "model.ts"), more_extra_files=("inference.json",))
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == channels  # MONAI embeds the bundle's
    assert "network_def" in json.loads(extra["inference.json"])  # metadata and inference config
    table = format_export(result)
    assert "torchscript" in table and "onnx" in table and str(tmp_path / "model.ts") in table


def test_a_checkpoint_of_another_bundle_is_named_in_a_clear_error(tmp_path):
    ckpt = _checkpoint("camvid_unet2d", tmp_path / "camvid.pt")
    with pytest.raises(UserInputError, match=r"camvid\.pt: does not fit this bundle's network.*another bundle"):
        export_bundle("brats_unet3d", ckpt, overrides=SMALL["brats_unet3d"])
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserInputError, match=r"broken\.pt: not a PyTorch checkpoint"):
        export_bundle("camvid_unet2d", tmp_path / "broken.pt")
    assert not list(tmp_path.glob("model.*"))  # nothing half-written


def _onnx_exporter_fails(monkeypatch):
    """``onnx_export`` writes part of its file, then fails with a long, multi-line error (as torch.onnx does)."""
    import monai.bundle

    def broken(filepath, **kwargs):
        Path(filepath).write_bytes(b"half an ONNX model")
        raise RuntimeError("Unsupported operator aten::frobnicate\n\nFull traceback of the exporter:\n...")

    monkeypatch.setattr(monai.bundle, "onnx_export", broken)
    return r"onnx export of \S*model\.pt failed \(RuntimeError: Unsupported operator aten::frobnicate\)"


def _onnx_check_fails(monkeypatch):
    """The ONNX model is written but its outputs differ from PyTorch's (a wrong export)."""
    def wrong(path, *args):
        Path(path).write_bytes(b"a wrong ONNX model")
        return 0.5

    monkeypatch.setattr("monai_app.export._export_onnx", wrong)
    return r"onnx export of \S*model\.pt differs from PyTorch by 0\.5 \(limit [0-9.e-]+\)"


@pytest.mark.parametrize("failure", [_onnx_exporter_fails, _onnx_check_fails])
def test_a_failed_onnx_export_leaves_no_file_behind(failure, tmp_path, monkeypatch):
    ckpt = _checkpoint("carvana_unet2d", tmp_path / "model.pt")
    problem = failure(monkeypatch)
    with pytest.raises(RuntimeError) as info:
        export_bundle("carvana_unet2d", ckpt, out_dir=tmp_path / "out", overrides=SMALL["carvana_unet2d"])
    text = str(info.value)
    assert len(text.splitlines()) == 1 and re.fullmatch(problem + "; nothing was written", text), text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # no model.ts, no model.onnx, no temporaries


def _infer_both_ways(bundle: str, ckpt, tmp_path, cli: bool, **settings) -> list[str]:
    """Inference from the checkpoint (in this process, as ``monai-app infer`` runs it) and from its TorchScript export
    (with ``cli``: ``python -m monai.bundle run inference --torchscript_path``, as users run it); the names written."""
    from monai_app.workflow import run_bundle

    export_bundle(bundle, ckpt, formats=("torchscript",), overrides=SMALL[bundle])
    run_bundle(bundle, "inference", {"output_dir": str(tmp_path / "ckpt"), "ckpt_path": str(ckpt), **settings})
    if cli:
        bundle_run("inference", f"bundles/{bundle}/configs/inference.json", output_dir=tmp_path / "ts",
                   torchscript_path=tmp_path / "model.ts", **settings)
    else:
        run_bundle(bundle, "inference", {"output_dir": str(tmp_path / "ts"), "ckpt_path": str(tmp_path / "absent.pt"),
                                         "torchscript_path": str(tmp_path / "model.ts"), **settings})  # no checkpoint
    written = sorted(p.name for p in (tmp_path / "ckpt").iterdir() if p.suffix in (".gz", ".png"))
    assert written and written == sorted(p.name for p in (tmp_path / "ts").iterdir() if p.suffix in (".gz", ".png"))
    return written


def test_brats_inference_from_torchscript_writes_the_checkpoints_label_maps(msd_tiny, tmp_path):
    ckpt = _checkpoint("brats_unet3d", tmp_path / "model.pt", seed=3)
    for name in _infer_both_ways("brats_unet3d", ckpt, tmp_path, cli=True, input=str(msd_tiny / "imagesTs"),
                                 channels=[8, 16, 32], num_workers=0):
        a, b = nib.load(tmp_path / "ckpt" / name), nib.load(tmp_path / "ts" / name)
        np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
        np.testing.assert_allclose(a.affine, b.affine)


@needs_camvid
def test_camvid_inference_from_torchscript_writes_the_checkpoints_pngs(tmp_path):
    ckpt = _checkpoint("camvid_unet2d", tmp_path / "model.pt", seed=5)
    for name in _infer_both_ways("camvid_unet2d", ckpt, tmp_path, cli=False, features=FEATURES, num_workers=0,
                                 input=str(CAMVID_SAMPLES / "images_prepped_test")):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "ckpt" / name)),
                                      np.asarray(Image.open(tmp_path / "ts" / name)))


def test_cli_export_prints_the_check_and_a_bad_torchscript_is_one_line(tmp_path, capsys):
    from monai_app.cli import main

    ckpt = _checkpoint("carvana_unet2d", tmp_path / "model.pt")
    assert main(["export", "carvana_unet2d", "--ckpt", str(ckpt), "--out-dir", str(tmp_path / "out"),
                 "--formats", "torchscript", "--features", "[8,16,16,32,32,8]"]) == 0
    out = capsys.readouterr().out
    assert "max |diff| vs PyTorch" in out and (tmp_path / "out" / "model.ts").is_file()
    frame = tmp_path / "photo.jpg"
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(frame)
    assert main(["infer", "carvana_unet2d", "--input", str(frame), "--output-dir", str(tmp_path / "pred"),
                 "--torchscript", str(ckpt), "--features", "[8,16,16,32,32,8]"]) == 2
    err = capsys.readouterr().err
    assert "model.pt: not a TorchScript file" in err and len(err.strip().splitlines()) == 1


def test_last_pt_exports_its_model_weights_and_another_network_size_is_one_line(tmp_path):
    """A training state (``last.pt``: weights under "model", beside the optimizer's...) exports as its weights do;
    weights of other network settings are refused in one line that says what to pass."""
    best = _checkpoint("carvana_unet2d", tmp_path / "model.pt", seed=4)
    state = {"model": torch.load(best, weights_only=True), "optimizer": {"state": {}, "param_groups": []},
             "trainer": {"iteration": 4, "epoch_length": 2}, "best_metric": {"value": 0.5, "epoch": 2}}
    torch.save(state, tmp_path / "last.pt")
    example = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    outputs = []
    for ckpt in (best, tmp_path / "last.pt"):
        export_bundle("carvana_unet2d", ckpt, out_dir=tmp_path / ckpt.stem, formats=("torchscript",),
                      overrides=SMALL["carvana_unet2d"])
        outputs.append(torch.jit.load(str(tmp_path / ckpt.stem / "model.ts"))(example))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    with pytest.raises(UserInputError) as info:
        export_bundle("carvana_unet2d", tmp_path / "last.pt", out_dir=tmp_path / "other",
                      overrides={"features": [16, 16, 32, 32, 64, 16], "image_size": 64})
    text = str(info.value)
    assert "\n" not in text and len(text) < 600, text
    assert re.match(r"\S*last\.pt: does not fit this bundle's network: it was trained with a different network .*"
                    r"\d+ of \d+ tensors differ in shape \(e\.g\. \S+: \[8, 3, 3, 3\] in the file, \[16, 3, 3, 3\] "
                    r"in the network\); pass the same network overrides as its training", text), text
    torch.save({"optimizer": {"state": {}}}, tmp_path / "optimizer.pt")
    with pytest.raises(UserInputError, match=r"optimizer\.pt: holds no network weights \(keys optimizer\); pass a "
                                             r"run's models/model\.pt .* or models/last\.pt"):
        export_bundle("carvana_unet2d", tmp_path / "optimizer.pt", overrides=SMALL["carvana_unet2d"])


def test_cli_export_failure_is_one_line_without_traceback(tmp_path, monkeypatch, capsys):
    from monai_app.cli import main

    ckpt = _checkpoint("carvana_unet2d", tmp_path / "model.pt")
    _onnx_exporter_fails(monkeypatch)
    assert main(["export", "carvana_unet2d", "--ckpt", str(ckpt), "--out-dir", str(tmp_path / "out"),
                 "--features", "[8,16,16,32,32,8]", "--image_size", "64"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("monai-app: error: onnx export of") and "aten::frobnicate" in err
