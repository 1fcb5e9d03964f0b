"""Training-step time of candidate 3D networks for brats_unet3d on this machine (the table in the model card).

    python scripts/bench_brats_networks.py [--batch 2] [--repeats 5] [--device cpu]

One step = forward + DiceFocalLoss + backward + AdamW update on random 4-channel 64^3 patches. Prints the median
and spread of `repeats` timed steps after one warm-up step, with parameter counts.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from monai.losses import DiceFocalLoss
from monai.networks.nets import DynUNet, SegResNet, UNet


def candidates() -> dict[str, torch.nn.Module]:
    return {
        "UNet 16-256, 2 res units (default)": UNet(3, 4, 3, (16, 32, 64, 128, 256), (2, 2, 2, 2), num_res_units=2,
                                                   norm="instance"),
        "UNet 16-256, 1 res unit": UNet(3, 4, 3, (16, 32, 64, 128, 256), (2, 2, 2, 2), num_res_units=1,
                                        norm="instance"),
        "UNet 32-320, 2 res units": UNet(3, 4, 3, (32, 64, 128, 256, 320), (2, 2, 2, 2), num_res_units=2,
                                         norm="instance"),
        "DynUNet 32-320 (nnU-Net-like)": DynUNet(3, 4, 3, [3] * 5, [1, 2, 2, 2, 2], [2, 2, 2, 2],
                                                 filters=[32, 64, 128, 256, 320], norm_name="instance"),
        "SegResNet 16": SegResNet(3, 16, 4, 3, blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1)),
    }


def step_times(net: torch.nn.Module, batch: int, repeats: int, device: str) -> list[float]:
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    loss_fn = DiceFocalLoss(sigmoid=True, batch=True)
    x = torch.randn(batch, 4, 64, 64, 64, device=device)
    y = (torch.rand(batch, 3, 64, 64, 64, device=device) > 0.9).float()
    times = []
    for i in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    hw = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"# training step, batch {args.batch} x 4 x 64^3, {args.device} ({hw}), torch {torch.__version__}")
    print(f"| network | parameters | step median (s) | min-max (s) |\n|---|---|---|---|")
    for name, net in candidates().items():
        times = step_times(net, args.batch, args.repeats, args.device)
        params = sum(p.numel() for p in net.parameters()) / 1e6
        print(f"| {name} | {params:.2f} M | {statistics.median(times):.2f} | {min(times):.2f}-{max(times):.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
