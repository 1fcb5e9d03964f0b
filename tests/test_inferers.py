"""bf16 autocast of brats_unet3d's sliding window on the CPU (``--amp true --device cpu``)."""

from __future__ import annotations

import torch
from monai.inferers import SlidingWindowInferer

from monai_app.engine.inferers import AutocastInferer, cpu_has_native_bf16
from monai_app.workflow import make_workflow


class _Recorder(torch.nn.Module):
    """A 1x1x1 convolution that records whether it ran under CPU autocast, and in which dtype."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(4, 3, 1)
        self.seen: list[tuple[bool, torch.dtype]] = []

    def forward(self, x):
        out = self.conv(x)
        self.seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
        return out


def test_amp_on_the_cpu_runs_the_windows_in_bf16_and_returns_float32():
    x = torch.randn(1, 4, 20, 20, 20)
    window = SlidingWindowInferer(roi_size=(16, 16, 16), sw_batch_size=2, overlap=0.25)
    net = _Recorder()
    with torch.no_grad():
        plain = AutocastInferer(window, amp=False, device="cpu")(x, net)
        assert net.seen and all(s == (False, torch.float32) for s in net.seen)
        net.seen.clear()
        bf16 = AutocastInferer(window, amp=True, device="cpu")(x, net)
    assert net.seen and all(s == (True, torch.bfloat16) for s in net.seen)
    assert bf16.dtype == torch.float32 and bf16.shape == plain.shape
    assert torch.allclose(bf16, plain, atol=0.05, rtol=0.02)  # bf16 keeps ~3 significant digits
    assert not AutocastInferer(window, amp=True, device="cuda:0").enabled  # CUDA: the evaluator's own fp16 amp
    assert AutocastInferer(window, amp=True, device="cpu").overlap == 0.25  # the wrapped inferer's settings show


def test_inference_config_wires_amp_to_the_cpu_autocast(msd_tiny, tmp_path):
    def parsed(**overrides):
        workflow = make_workflow("brats_unet3d", "inference", {"input": str(msd_tiny / "imagesTs"),
                                                               "output_dir": str(tmp_path), **overrides})
        return workflow.parser

    on = parsed(amp=True, device="cpu")
    assert on.get_parsed_content("inferer").enabled
    assert on.get_parsed_content("evaluator").amp is False  # MONAI's CUDA-only autocast stays off on the CPU
    assert not parsed(amp=False, device="cpu").get_parsed_content("inferer").enabled
    # default: bf16 where this CPU runs it natively, float32 where it would be emulated
    assert parsed(device="cpu").get_parsed_content("inferer").enabled == cpu_has_native_bf16()


def test_switches_typed_on_the_command_line_are_booleans(msd_tiny, tmp_path):
    """``python -m monai.bundle run ... --amp false`` hands configs the string 'false' (Python finds it true):
    every switch goes through ``monai_app.config.flag``."""
    import pytest

    from monai_app.errors import UserInputError
    from monai_app.dataset_check import check_before_training
    from monai_app.config import flag

    assert [flag(v) for v in ("false", "False", "0", "no", "off", False, 0)] == [False] * 7
    assert [flag(v) for v in ("true", "TRUE", "1", "yes", "on", True, 1)] == [True] * 7
    with pytest.raises(UserInputError, match="--amp: expected true or false, got 'maybe'"):
        flag("maybe", "amp")
    off = {"amp": "false", "n4": "false", "mask_outside_brain": "false"}
    train = make_workflow("brats_unet3d", "training", {"dataset_dir": str(msd_tiny), "output_dir": str(tmp_path),
                                                       **off}).parser
    assert train.get_parsed_content("train#trainer").amp is False
    assert train.get_parsed_content("validate#evaluator").amp is False
    assert not next(t for t in train.get_parsed_content("load_transforms")
                    if type(t).__name__ == "N4BiasFieldCorrectiond").enabled
    infer = make_workflow("brats_unet3d", "inference", {"input": str(msd_tiny / "imagesTs"),
                                                        "output_dir": str(tmp_path), **off}).parser
    assert not next(t for t in infer.get_parsed_content("postprocessing").transforms
                    if type(t).__name__ == "MaskOutsideImaged").enabled
    assert not infer.get_parsed_content("inferer").enabled
    check_before_training("brats_unet3d", tmp_path / "no_such_dataset", "auto", tmp_path, "false")  # skipped


class _Skewed(torch.nn.Module):
    """A network that is not mirror-symmetric: each output voxel adds its neighbour along X."""

    def forward(self, x):
        return x[:, :3] + torch.roll(x[:, :3], 1, dims=2)


def test_mirroring_averages_the_probabilities_of_every_flip():
    from monai_app.engine.inferers import MirrorInferer

    x = torch.randn(1, 4, 8, 6, 5)
    net, plain = _Skewed(), lambda inputs, network: network(inputs)
    tta = MirrorInferer(plain, axes=[0, 1, 2])
    assert len(tta.flips) == 8
    expected = torch.stack([torch.flip(torch.sigmoid(net(torch.flip(x, d))), d) for d in
                            ([], [2], [3], [4], [2, 3], [2, 4], [3, 4], [2, 3, 4])]).mean(0)
    torch.testing.assert_close(torch.sigmoid(tta(x, net)), expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(torch.sigmoid(net(x)), expected)  # mirroring changed the skewed network's output
    assert MirrorInferer(plain, axes=[])(x, net) is not None and len(MirrorInferer(plain).flips) == 1


def test_tta_switch_values():
    import pytest

    from monai_app.config import tta_axes
    from monai_app.errors import UserInputError

    assert tta_axes(False) == [] and tta_axes("false") == [] and tta_axes(True) == [0, 1, 2]
    assert tta_axes("all") == [0, 1, 2] and tta_axes([0, 2]) == [0, 2] and tta_axes("[1]") == [1]
    for bad in ("maybe", [0, 0], [3], "[x]"):
        with pytest.raises(UserInputError, match="tta"):
            tta_axes(bad)


def test_amp_on_the_cpu_trains_in_bf16_with_float32_weights_and_loss(msd_tiny, tmp_path):
    """``monai-app train ... --amp true`` on the CPU: the training forward pass and the validation windows run under
    bf16 autocast (MONAI's trainer only autocasts on CUDA), while the loss and the weights stay float32."""
    from monai.losses import DiceFocalLoss

    def parsed(**overrides):
        return make_workflow("brats_unet3d", "training", {"dataset_dir": str(msd_tiny), "output_dir": str(tmp_path),
                                                          **overrides}).parser

    on = parsed(amp=True, device="cpu")
    assert on.get_parsed_content("train#trainer").amp is False  # MONAI's CUDA-only autocast stays off on the CPU
    assert on.get_parsed_content("validate#evaluator").amp is False
    assert on.get_parsed_content("validate#inferer").inferer.enabled  # under the TTA mirror, around the windows
    inferer = on.get_parsed_content("train#inferer")
    assert inferer.enabled
    net = _Recorder()
    out = inferer(torch.randn(2, 4, 8, 8, 8), net)
    loss = DiceFocalLoss(sigmoid=True, batch=True)(out, (torch.rand(2, 3, 8, 8, 8) > 0.5).float())
    loss.backward()
    assert net.seen == [(True, torch.bfloat16)]
    assert out.dtype == loss.dtype == net.conv.weight.grad.dtype == torch.float32
    off = parsed(amp=False, device="cpu")
    assert not off.get_parsed_content("train#inferer").enabled
    assert not off.get_parsed_content("validate#inferer").inferer.enabled
    assert parsed(device="cpu").get_parsed_content("train#inferer").enabled == cpu_has_native_bf16()  # the default


def test_amp_defaults_to_bf16_only_on_cpus_that_run_it_natively(monkeypatch):
    from monai_app import config

    for native in (True, False):
        monkeypatch.setattr(config, "cpu_has_native_bf16", lambda: native)
        assert config.default_amp("cpu") is native
        assert config.default_amp("cuda:1") is True  # float16 autocast on every GPU
