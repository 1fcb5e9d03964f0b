"""The plain-MONAI baseline that brats_unet3d's recipe is measured against (issue 18, BENCHMARKS.md §6).

What a careful user writes by adapting MONAI's tutorials (the spleen segmentation tutorial's loop and transforms,
with the BraTS tutorial's multi-channel labels) to BraTS, with no monai-app recipe in it: foreground crop, per-channel
instance normalisation of the non-zero voxels, positive/negative patch sampling (``RandCropByPosNegLabeld``, 4
patches of 64^3 per volume), flips and intensity jitter, MONAI's ``UNet`` (16..256 channels, 2 residual units,
instance norm), Adam (lr 1e-4, the tutorials'; ``--lr``), Dice + cross-entropy on sigmoid outputs (``DiceCELoss``), the
tutorial's training loop, validation by sliding window every ``--val-interval`` epochs keeping the best mean Dice.

Only the listing of the dataset's files and the label numbers come from monai-app (``find_cases``, ``FORMATS``), so
both read the same cases; the split is the bundle run's ``split.json``. Training stops after the first epoch that
ends past ``--minutes`` of CPU time of this process (``--clock cpu``, the measure used to compare recipes on a shared
machine) or of wall-clock time; then the best weights segment the split's test cases, written as label maps
``<case_id>.nii.gz`` in the dataset's own numbering and the input's geometry, for ``monai-app score``:

    python scripts/baseline_brats_monai.py --dataset-dir D --split RUN/split.json --out OUT --minutes 10
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import CacheDataset, DataLoader, Dataset, decollate_batch
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks.layers import Norm
from monai.networks.nets import UNet
from monai.transforms import (
    Activations, AsDiscrete, Compose, ConvertToMultiChannelBasedOnBratsClassesd, CropForegroundd, EnsureChannelFirstd,
    EnsureTyped, Invertd, LoadImaged, MapLabelValued, NormalizeIntensityd, Orientationd, RandCropByPosNegLabeld,
    RandFlipd, RandScaleIntensityd, RandShiftIntensityd, Spacingd, SpatialPadd,
)
from monai.utils import set_determinism

from monai_app.datasets.brats import find_cases, get_format, resolve_format

ROI = (64, 64, 64)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
# MONAI's ConvertToMultiChannelBasedOnBratsClasses reads 1 = necrosis, 2 = oedema, et_label = enhancing (channels
# TC, WT, ET): each layout's labels are mapped onto that first.
TO_BRATS2021 = {"msd": ([1, 2, 3], [2, 1, 4], 4), "brats2021": ([], [], 4), "brats2023": ([4], [0], 3)}


def transforms(fmt: str, train: bool) -> Compose:
    """The tutorial's transforms: load, channel-first, RAS, 1 mm, (labels to TC/WT/ET), normalise, (crop, augment)."""
    keys = ["image", "label"] if train else ["image"]
    orig, target, et = TO_BRATS2021[fmt]
    xs = [LoadImaged(keys), EnsureChannelFirstd(keys), Orientationd(keys, axcodes="RAS"),
          Spacingd(keys, pixdim=(1.0, 1.0, 1.0), mode=("bilinear", "nearest")[:len(keys)])]
    if train:
        xs += [MapLabelValued("label", orig, target)] if orig else []
        xs += [ConvertToMultiChannelBasedOnBratsClassesd("label", et_label=et), CropForegroundd(keys, "image"),
               SpatialPadd(keys, ROI)]
    xs += [NormalizeIntensityd("image", nonzero=True, channel_wise=True), EnsureTyped(keys)]
    return Compose(xs)


def augmentation() -> list:
    keys = ["image", "label"]
    return [RandCropByPosNegLabeld(keys, "label", ROI, pos=1, neg=1, num_samples=4, image_key="image",
                                   image_threshold=0),
            *(RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(3)),
            RandScaleIntensityd("image", factors=0.1, prob=1.0), RandShiftIntensityd("image", offsets=0.1, prob=1.0)]


def validate(model, loader, device) -> float:
    """Mean Dice over TC, WT, ET of the validation cases (sliding window, sigmoid > 0.5)."""
    metric, post = DiceMetric(include_background=True, reduction="mean"), Compose([Activations(sigmoid=True),
                                                                                  AsDiscrete(threshold=0.5)])
    model.eval()
    with torch.no_grad():
        for batch in loader:
            out = sliding_window_inference(batch["image"].to(device), ROI, 4, model, overlap=0.25)
            metric(y_pred=[post(o) for o in decollate_batch(out)], y=decollate_batch(batch["label"].to(device)))
    return float(metric.aggregate().item())


def train(args, cases: dict, fmt: str, out: Path, device: torch.device) -> dict:
    """The tutorial's loop, stopped by the time budget; returns what it did."""
    pre = transforms(fmt, train=True)
    train_ds = CacheDataset(cases["train"], Compose([*pre.transforms, *augmentation()]), cache_rate=1.0,
                            num_workers=0)
    val_ds = CacheDataset(cases["validation"], pre, cache_rate=1.0, num_workers=0)
    train_loader = DataLoader(train_ds, batch_size=2, shuffle=True, num_workers=0)
    val_loader = DataLoader(val_ds, batch_size=1, num_workers=0)
    model = UNet(3, 4, 3, (16, 32, 64, 128, 256), (2, 2, 2, 2), num_res_units=2, norm=Norm.INSTANCE).to(device)
    loss_fn, optimizer = DiceCELoss(sigmoid=True), torch.optim.Adam(model.parameters(), args.lr)
    clock, start, best, epoch, history = CLOCKS[args.clock], CLOCKS[args.clock](), -1.0, 0, []
    while True:
        epoch += 1
        model.train()
        for batch in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(batch["image"].to(device)), batch["label"].to(device))
            loss.backward()
            optimizer.step()
        spent = clock() - start
        last = spent >= 60 * args.minutes
        if epoch % args.val_interval == 0 or last:
            dice = validate(model, val_loader, device)
            history.append((epoch, dice))
            if dice > best:
                best = dice
                torch.save(model.state_dict(), out / "best_metric_model.pth")
            logging.info("epoch %d: loss %.4f, val mean Dice %.4f (best %.4f), %.1f min", epoch, loss.item(), dice,
                         best, spent / 60)
        if last:
            return {"epochs": epoch, "best_val_dice": best, "minutes": spent / 60, "clock": args.clock,
                    "validations": history}


def segment(args, cases: list[dict], fmt: str, out: Path, device: torch.device) -> float:
    """Write the test cases' label maps in the input's geometry; returns seconds per case."""
    pre = transforms(fmt, train=False)
    post = Compose([Activations(sigmoid=True), AsDiscrete(threshold=0.5)])
    invert = Invertd("pred", pre, orig_keys="image", nearest_interp=True, to_tensor=True)
    labels = get_format(fmt)
    model = UNet(3, 4, 3, (16, 32, 64, 128, 256), (2, 2, 2, 2), num_res_units=2, norm=Norm.INSTANCE).to(device)
    model.load_state_dict(torch.load(out / "best_metric_model.pth", map_location=device, weights_only=True))
    model.eval()
    (out / "predictions").mkdir(exist_ok=True)
    start = time.perf_counter()
    with torch.no_grad():
        for item in Dataset(cases, pre):
            logits = sliding_window_inference(item["image"][None].to(device), ROI, 4, model, overlap=0.25)[0]
            item["pred"] = post(logits)
            tc, wt, et = (invert(item)["pred"].cpu().numpy() > 0.5)
            label = np.zeros(wt.shape, np.uint8)
            label[wt], label[tc], label[et] = labels.edema, labels.necrosis, labels.enhancing
            nib.save(nib.Nifti1Image(label, item["image"].meta["original_affine"]),
                     out / "predictions" / f"{item['case_id']}.nii.gz")
    return (time.perf_counter() - start) / max(1, len(cases))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-dir", required=True)
    parser.add_argument("--split", required=True, help="a split.json (train / validation / test case ids)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--val-interval", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam's learning rate (default 1e-4, the tutorials')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    set_determinism(args.seed)
    out, device = Path(args.out), torch.device(args.device)
    out.mkdir(parents=True, exist_ok=True)
    fmt = resolve_format(args.dataset_dir)
    by_id = {c["case_id"]: c for c in find_cases(args.dataset_dir, fmt)}
    split = json.loads(Path(args.split).read_text())
    cases = {part: [by_id[i] for i in split[part]] for part in ("train", "validation", "test")}
    record = train(args, cases, fmt, out, device)
    record["seconds_per_case"] = segment(args, [{k: c[k] for k in ("case_id", "image")} for c in cases["test"]],
                                         fmt, out, device)
    record.update(torch_threads=torch.get_num_threads(), n_test=len(cases["test"]), lr=args.lr)
    (out / "baseline.json").write_text(json.dumps(record, indent=1) + "\n")
    logging.info("done: %s", record)


if __name__ == "__main__":
    main()
