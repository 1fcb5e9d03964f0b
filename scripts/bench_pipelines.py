"""The inference pipelines ``bench_inference.py`` and ``bench_scaling.py`` time, and the sliding-window variants.

- :func:`reference_pipeline`: plain MONAI as its tutorials write inference (dict transforms, MONAI's sliding-window
  defaults, ``Invertd``, ``SaveImaged``).
- :func:`project_pipeline`: brats_unet3d's own inference.json components, parsed by MONAI's ``ConfigWorkflow`` with
  overrides (so the benchmark always runs the config as it is), split into timed stages; :func:`run_workflow` runs
  the whole bundle workflow (DataLoader, ``SupervisedEvaluator``, handlers).
- :func:`variants`: one change at a time of the sliding-window stage (batch, overlap, blending, crop, bf16,
  channels-last, threads, ``torch.compile``), run by :func:`run_variant` on an already preprocessed volume.
- Outputs are compared as BraTS regions (WT / TC / ET) of the label map they imply.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import decollate_batch, list_data_collate
from monai.inferers import SlidingWindowInferer
from monai.transforms import (Activationsd, AsDiscreted, Compose, EnsureChannelFirstd, Invertd, LoadImaged,
                              NormalizeIntensityd, Orientationd, SaveImaged, Spacingd)

from bench_common import PeakMemory, clock, dice

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "brats_unet3d"
# The defaults brats_unet3d had before BENCHMARKS.md's changes (overlap 0.5, Gaussian blending), as ConfigWorkflow
# overrides: measured beside the current defaults so the gain stays visible.
PREVIOUS = {"overlap": 0.5, "sw_mode": "gaussian"}
PREVIOUS_TEXT = "previous defaults: overlap 0.5, gaussian"
# The plain-MONAI reference's sliding-window settings (MONAI's defaults), as overrides of the bundle.
REFERENCE_SETTINGS = {"sw_batch_size": 1, "overlap": 0.25, "sw_mode": "constant"}
# --quick: a small network and window, so the smoke test takes seconds
QUICK = {"roi_size": [32, 32, 32], "channels": [8, 16, 32, 64, 128]}


@dataclass
class Pipeline:
    """One way of segmenting a case, split into the stages that are timed."""

    name: str
    read: Callable[[dict], dict]
    preprocess: Callable[[dict], dict]
    inferer: Callable
    network: torch.nn.Module
    post: Callable[[dict], dict]
    write: Callable[[dict], object]
    output_file: Callable[[str], Path]
    device: str = "cpu"
    amp: bool = False  # the bundle's ``amp`` (on by default on CUDA): autocast in the sliding-window stage

    def infer(self, d: dict, inferer: Callable | None = None, network: torch.nn.Module | None = None,
              autocast: bool = False) -> dict:
        """The sliding-window stage as the evaluator runs it: collate, to device, no_grad, decollate."""
        inputs = list_data_collate([d])["image"].to(self.device)
        kind = "cuda" if str(self.device).startswith("cuda") else "cpu"
        dtype = torch.float16 if kind == "cuda" else torch.bfloat16
        ctx = torch.autocast(kind, dtype=dtype) if autocast else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            pred = (inferer or self.inferer)(inputs, network or self.network)
        pred = pred.float()
        return {**d, "pred": decollate_batch(pred, detach=True)[0]}

    def run(self, item: dict) -> tuple[dict[str, float], float]:
        """Segment one case, writing its output; per-stage seconds and the peak RSS (GB) of this process (on CUDA
        also ``times["gpu_gb"]``, the peak of GPU memory allocated by torch)."""
        times = {}
        cuda = str(self.device).startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        with PeakMemory() as mem:
            times["read"], d = clock(lambda: self.read(dict(item)), self.device)
            times["preprocess"], d = clock(lambda: self.preprocess(d), self.device)
            times["sliding window"], d = clock(lambda: self.infer(d, autocast=self.amp), self.device)
            times["postprocess"], d = clock(lambda: self.post(d), self.device)
            times["write"], _ = clock(lambda: self.write(d), self.device)
        times["total"] = sum(times.values())
        if cuda:
            times["gpu_gb"] = torch.cuda.max_memory_allocated() / 2**30
        return times, mem.own_gb


def load_network(ckpt: str | None, device: str, work: Path, overrides: dict | None = None
                 ) -> tuple[torch.nn.Module, Path]:
    """The bundle's network (``network_def`` of inference.json, with ``overrides``) with ``ckpt``'s weights, or
    seeded random ones saved as ``work/random_model.pt``; returns it (eval mode) and the checkpoint the workflow
    loads."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    for key, value in {**({"ckpt_path": str(ckpt)} if ckpt else {}), **(overrides or {})}.items():
        parser[key] = value  # ckpt_path: network_def takes its output channels from the checkpoint
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def", instantiate=True)
    if ckpt:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        net.load_state_dict(state.get("model", state))  # a bare state_dict or {"model": ...}
        path = Path(ckpt)
    else:
        path = work / "random_model.pt"
        work.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
    return net.to(device).eval(), path


def reference_pipeline(net: torch.nn.Module, out_dir: Path, device: str, roi: tuple[int, ...]) -> Pipeline:
    """Plain MONAI, written the way its tutorials write inference, with MONAI's sliding-window defaults."""
    pre = Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image"),
                   Orientationd("image", axcodes="RAS", labels=None),
                   Spacingd("image", pixdim=(1.0, 1.0, 1.0), mode="bilinear"),
                   NormalizeIntensityd("image", nonzero=True, channel_wise=True)])
    post = Compose([Activationsd("pred", sigmoid=True), AsDiscreted("pred", threshold=0.5),
                    Invertd("pred", transform=pre, orig_keys="image", nearest_interp=True)])
    save = SaveImaged("pred", output_dir=str(out_dir), output_postfix="seg", output_dtype=np.uint8,
                      separate_folder=False, resample=False, print_log=False)
    inferer = SlidingWindowInferer(roi_size=roi, sw_batch_size=1, overlap=0.25)  # MONAI's defaults
    return Pipeline("reference (plain MONAI, sw 1, overlap 0.25, constant)", Compose(pre.transforms[:2]),
                    Compose(pre.transforms[2:]), inferer, net, post, save,
                    lambda case: out_dir / f"{case}_seg.nii.gz", device)


def crop_overrides() -> dict:
    """inference.json's preprocessing with ``CropForegroundd`` (the bounding box of the non-zero voxels: the brain
    of a skull-stripped scan) after ``Spacingd``, so the sliding window never runs over the empty air around the
    brain. ``Invertd`` in the postprocessing pads the prediction back to the input's size."""
    config = json.loads((BUNDLE / "configs" / "inference.json").read_text())
    transforms = copy.deepcopy(config["preprocessing"]["transforms"])
    at = next(i for i, t in enumerate(transforms) if t["_target_"] == "Spacingd") + 1
    transforms.insert(at, {"_target_": "CropForegroundd", "keys": "image", "source_key": "image",
                           "allow_smaller": True})
    return {"preprocessing#transforms": transforms}


def project_workflow(image: Path, out_dir: Path, ckpt: Path, device: str, overrides: dict):
    """brats_unet3d's inference ConfigWorkflow for one input file, initialised."""
    from monai_app.workflow import make_workflow

    wf = make_workflow("brats_unet3d", "inference", {"input": str(image), "output_dir": str(out_dir),
                                                     "ckpt_path": str(ckpt), "device": device, **overrides})
    wf.initialize()
    logging.disable(logging.INFO)  # the workflow's logging config turns INFO on; keep the tables readable
    return wf


def project_pipeline(name: str, image: Path, out_dir: Path, ckpt: Path, net: torch.nn.Module, device: str,
                     overrides: dict) -> Pipeline:
    """The bundle's own components (parsed from inference.json with ``overrides``), run stage by stage."""
    parser = project_workflow(image, out_dir, ckpt, device, overrides).parser
    pre, post = parser.get_parsed_content("preprocessing"), parser.get_parsed_content("postprocessing")
    return Pipeline(name, Compose(pre.transforms[:2]), Compose(pre.transforms[2:]),
                    parser.get_parsed_content("inferer"), net, Compose(post.transforms[:-1]), post.transforms[-1],
                    lambda case: out_dir / f"{case}.nii.gz", device, bool(parser.get_parsed_content("amp")))


def run_workflow(image: Path, out_dir: Path, ckpt: Path, device: str, overrides: dict,
                 children: bool = False) -> tuple[dict, float]:
    """({"total": seconds[, "gpu_gb"]}, peak GB) of one whole bundle inference run, set-up (parsing the config,
    building the network, loading the checkpoint) included. Peak memory of this process alone, or with
    ``children`` of it and its DataLoader workers (sampled: that costs CPU time, so not for timed runs)."""
    cuda = str(device).startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with PeakMemory(children=children) as mem:
        seconds, _ = clock(lambda: _run(project_workflow(image, out_dir, ckpt, device, overrides)), device)
    gpu = {"gpu_gb": torch.cuda.max_memory_allocated() / 2**30} if cuda else {}
    return {"total": seconds, **gpu}, mem.tree_gb if children else mem.own_gb


def _run(wf) -> None:
    try:
        wf.run()
    finally:
        wf.finalize()


def label_regions(label: np.ndarray) -> np.ndarray:
    """WT / TC / ET masks (3, ...) of an MSD-numbered label map."""
    return np.stack([label > 0, label >= 2, label == 3])


def nested_regions(regions: np.ndarray) -> np.ndarray:
    """Read 3 region channels (WT, TC, ET) as the label map they imply (ET over TC over WT), back as regions."""
    label = np.zeros(regions.shape[1:], np.uint8)
    for value, channel in ((1, 0), (2, 1), (3, 2)):
        label[regions[channel] > 0] = value
    return label_regions(label)


def output_regions(path: Path) -> np.ndarray:
    """Regions of a written output: a label map (the project's) or channels last (SaveImaged's region masks)."""
    data = np.asanyarray(nib.load(str(path)).dataobj)
    return label_regions(data) if data.ndim == 3 else nested_regions(np.moveaxis(data.reshape(*data.shape[:3], -1),
                                                                                  -1, 0))


def score(regions: np.ndarray, ref: np.ndarray, brain: np.ndarray, truth: np.ndarray | None) -> str:
    """``WT / TC / ET`` Dice against the reference's output inside the brain (and against the truth)."""
    text = " / ".join(f"{v:.4f}" for v in dice(regions & brain, ref & brain))
    if truth is not None:
        text += " (truth " + " / ".join(f"{v:.3f}" for v in dice(regions & brain, truth)) + ")"
    return text


class _Counted(torch.nn.Module):
    """Wrap a network: count the windows it sees; optionally feed it channels-last inputs."""

    def __init__(self, net: torch.nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        self.net, self.channels_last, self.windows = net, channels_last, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.windows += x.shape[0]
        return self.net(x.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else x)


def variants(net: torch.nn.Module, roi: tuple[int, ...], compile_net: bool) -> list[dict]:
    """The sliding-window variants, each a change of one thing from the bundle's defaults."""
    def swi(**kw):
        return SlidingWindowInferer(**{"roi_size": roi, "sw_batch_size": 4, "overlap": 0.25, "mode": "constant", **kw})

    channels_last = copy.deepcopy(net).to(memory_format=torch.channels_last_3d)
    out = [{"name": "defaults: sw_batch_size 4, overlap 0.25, constant", "inferer": swi()},
           {"name": "sw_batch_size 2", "inferer": swi(sw_batch_size=2)},
           {"name": "overlap 0.5", "inferer": swi(overlap=0.5)},
           {"name": "gaussian blending", "inferer": swi(mode="gaussian")},
           {"name": "overlap 0.5, gaussian (previous defaults)", "inferer": swi(overlap=0.5, mode="gaussian")},
           {"name": "CropForegroundd first (brain's bounding box)", "inferer": swi(), "crop": True},
           {"name": "bf16 autocast (CPU) / fp16 (CUDA)", "inferer": swi(), "autocast": True},
           {"name": "channels_last_3d", "inferer": swi(), "net": channels_last, "channels_last": True},
           {"name": "torch.set_num_threads(1)", "inferer": swi(), "threads": 1}]
    if compile_net:
        out.append({"name": "torch.compile (default mode)", "inferer": swi(), "compile": True})
    return out


def warm_up(model: torch.nn.Module, batches: tuple[int, ...], roi: tuple[int, ...], device: str,
            autocast: bool = False) -> None:
    """One untimed forward pass per batch size: oneDNN builds its kernels for each new shape on first use."""
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    ctx = torch.autocast(kind, dtype=torch.float16 if kind == "cuda" else torch.bfloat16) if autocast else \
        contextlib.nullcontext()
    with torch.no_grad(), ctx:
        for b in batches:
            model(torch.zeros((b, 4, *roi), device=device))


def run_variant(p: Pipeline, d: dict, v: dict, net: torch.nn.Module) -> tuple[float, int, np.ndarray, str]:
    """(seconds of the sliding window, windows, label map regions, note) of one variant on preprocessed ``d``."""
    note, threads = "", torch.get_num_threads()
    model = v.get("net", net)
    if v.get("compile"):
        model = v.setdefault("compiled", torch.compile(model))
    counted = _Counted(model, v.get("channels_last", False))
    torch.set_num_threads(v.get("threads", threads))
    try:
        if v.get("compile") and "compile_s" not in v:  # compiles for this batch shape
            v["compile_s"], _ = clock(lambda: warm_up(counted, (v["inferer"].sw_batch_size,), v["inferer"].roi_size,
                                                      p.device), p.device)
        warm_up(counted, (v["inferer"].sw_batch_size,), v["inferer"].roi_size, p.device, v.get("autocast", False))
        counted.windows = 0
        seconds, out = clock(lambda: p.infer(d, v["inferer"], counted, v.get("autocast", False)), p.device)
    finally:
        torch.set_num_threads(threads)
    if "compile_s" in v:
        note = f"compile: {v['compile_s']:.1f} s (first batch of windows)"
    label = np.asarray(p.post(out)["pred"].cpu())[0]
    return seconds, counted.windows, label_regions(label), note
