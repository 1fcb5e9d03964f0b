"""Test-time mirroring (brats_unet3d ``tta``): Dice, HD95 and time of the held-out evaluation with and without it,
for a trained run, on this machine.

Evaluates the run's best checkpoint on its own test split once per variant (each into a scratch copy of the run
folder, so the run's eval/ is left alone) and prints one table:

    python scripts/bench_tta.py --run demo/run --dataset-dir demo/Task01_BrainTumour [--device cuda]
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from bench_common import base_parser, describe_machine, finish, parse, table

from monai_app.datasets.brats import find_cases
from monai_app.workflow import run_bundle

VARIANTS = {"none": False, "x": [0], "all (8 flips)": True}
CARRIED = ("channels", "roi_size", "pixdim", "dataset_format", "resection_cavity")


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--run", required=True, help="a trained and split run folder (models/model.pt, split.json)")
    parser.add_argument("--dataset-dir", required=True, help="the dataset the run was trained on")
    parser.add_argument("--unseen", action="store_true", help="--dataset-dir holds cases the run never saw (e.g. "
                        "`monai-app synth brats --seed 7`): evaluate every labelled case, not the run's test split")
    args = parse(parser)
    run = Path(args.run)
    settings = json.loads((run / "settings.json").read_text())
    carried = {k: settings[k] for k in CARRIED if k in settings}
    print(describe_machine(args.device))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, tta in VARIANTS.items():
            out = Path(args.workdir or tmp) / f"tta_{len(rows)}"
            out.mkdir(parents=True, exist_ok=True)
            for kept in ("split.json", "resection_cavity.json", "settings.json"):
                if (run / kept).is_file():
                    shutil.copy(run / kept, out / kept)
            if args.unseen:
                ids = [c["case_id"] for c in find_cases(args.dataset_dir)]
                (out / "split.json").write_text(json.dumps({"train": [], "validation": [], "test": ids}))
            start = time.perf_counter()
            overrides = {**carried, "dataset_dir": args.dataset_dir, "output_dir": str(out), "tta": tta,
                         "ckpt_path": str(run / "models" / "model.pt"), "device": args.device, "metrics": "brats2021"}
            run_bundle("brats_unet3d", "evaluating", overrides)
            seconds = time.perf_counter() - start
            summary = json.loads((out / "eval" / "summary.json").read_text())
            n = summary["dice_wt"]["n"]
            dice = " / ".join(f"{summary[f'dice_{r}']['mean']:.4f}" for r in ("wt", "tc", "et"))
            hd95 = " / ".join(f"{summary[f'hd95_{r}']['mean']:.2f}" for r in ("wt", "tc", "et"))
            passes = 2 ** (len(tta) if isinstance(tta, list) else 3 if tta else 0)
            rows.append([name, passes, n, f"{seconds:.1f}", f"{seconds / n:.2f}", dice, hd95])
    table(f"Held-out evaluation of {run} with and without test-time mirroring ({args.device})",
          ["tta", "passes", "cases", "evaluation (s, with start-up)", "s per case", "Dice WT / TC / ET",
           "HD95 WT / TC / ET (mm)"], rows)
    finish()


if __name__ == "__main__":
    main()
