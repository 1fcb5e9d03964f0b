"""brats_unet3d's training step on the CPU in float32 against bfloat16 autocast (``amp``), CPU time per step.

    python scripts/bench_amp_training.py [--quick] [--repeats 3] [--threads 1 2]

One step is MONAI's ``SupervisedTrainer`` iteration with the bundle's own network, loss, optimizer, training
post-processing and training inferer (``bench_common.bundle_trainer``, as ``bench_training.py``), parsed from
``configs/train.json`` with ``--amp false`` and ``--amp true`` (on the CPU ``amp`` wraps the forward pass in
``torch.autocast("cpu", dtype=torch.bfloat16)``; loss and weights stay float32). Batches are made in memory
(random intensities, a random label), so only compute is timed: ``batch_size`` x ``num_samples`` patches of 64^3
(2 x 1, the default since bundle 0.5.0, and 2 x 2, the earlier default). Per row: the median CPU time of the
process per step (``time.process_time``, all threads), min-max over rounds, and the speed-up of bf16. bf16 is fast
only where oneDNN runs it natively (AVX512-BF16 or AMX; the header says whether this CPU does).
"""

from __future__ import annotations

import logging
import tempfile
import time

import torch
from ignite.engine import Events

from monai_app.config import cpu_has_native_bf16
from monai_app.workflow import make_workflow

from bench_common import base_parser, bundle_trainer, describe_machine, finish, med, parse, spread, table


def step_seconds(amp: bool, patches: int, roi: int, channels: list[int], steps: int) -> list[float]:
    """CPU seconds of each of ``steps`` training steps (after one warm-up step) at ``amp``."""
    overrides = {"device": "cpu", "amp": amp, "roi_size": [roi] * 3, "channels": channels,
                 "output_dir": tempfile.mkdtemp(prefix="bench_amp_"), "label_format": "msd",
                 "datalists": {"train": [], "validation": [], "test": []}}
    p = make_workflow("brats_unet3d", "training", overrides).parser
    torch.manual_seed(0)
    batch = {"image": torch.randn(patches, 4, roi, roi, roi),
             "label": (torch.rand(patches, 3, roi, roi, roi) > 0.9).float()}
    trainer = bundle_trainer(p, "cpu", [batch] * (steps + 1), steps + 1)
    trainer.logger.setLevel(logging.WARNING)
    marks: list[float] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: marks.append(time.process_time()))
    trainer.run()
    return [b - a for a, b in zip(marks[:-1], marks[1:])]


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads per row (default 1 2)")
    args = parse(parser)
    logging.getLogger("monai_app").setLevel(logging.WARNING)
    rounds, steps = (1, 1) if args.quick else (args.repeats or 3, 3)
    roi, channels = (32, [8, 16, 32, 64]) if args.quick else (64, [16, 32, 64, 128, 256])
    print(describe_machine("cpu"))
    print(f"# native bf16 on this CPU (oneDNN): {cpu_has_native_bf16()}")
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for patches, label in ((2, "2 x 1 (default)"), (4, "2 x 2 (before 0.5.0)")):
            times = {amp: [] for amp in (False, True)}
            for _ in range(rounds):  # rounds interleaved, so a load change hits both
                for amp in (False, True):
                    times[amp] += step_seconds(amp, patches, roi, channels, steps)
            rows.append([str(threads), label, spread(times[False]), spread(times[True]),
                         f"{med(times[False]) / med(times[True]):.2f}x"])
    table(f"brats_unet3d training step on the CPU, patches of {roi}^3, {rounds} rounds x {steps} steps",
          ["threads", "batch x num_samples", "float32 CPU s/step", "bf16 (amp) CPU s/step", "bf16 speed-up"], rows)
    finish()


if __name__ == "__main__":
    main()
