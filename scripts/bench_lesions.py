"""Issue 18's quality table: brats_unet3d's recipe against a plain-MONAI script, and each lesion feature on its own
and all together, at equal training time, scored on held-out synthetic cases (BENCHMARKS.md §6).

For each dataset (``met``: ``monai-app synth brats --format brats2023 --subchallenge MET``, 3-12 small metastases
per case with weaker contrast; ``glioma``: the MSD-layout phantoms, one tumour per case, every fourth case without
enhancing tumour), 32 labelled cases (seed 11) are split once (seed 0): 20 training, 4 validation, 8 held-out test
cases. Every training arm gets the same budget of ``--minutes`` of CPU time of its own process on one thread
(``OMP_NUM_THREADS=1``; ``--max_minutes/--budget_clock cpu`` for the bundle, ``--minutes/--clock cpu`` for
``scripts/baseline_brats_monai.py``), ``--parallel`` arms at a time. Each row then segments the 8 test cases (one
thread, timed) and ``monai_app.metrics.folders.score_folders`` scores them under the BraTS 2023 lesion-wise rule,
which also gives the whole-volume Dice. Stages are resumable: a finished training or scoring is not redone.
Arms named ``*_0.4`` (and the loss, learning-rate, one-patch and bf16 trials) re-run bundle 0.4.0's recipe as it was
measured (``RECIPE_0_4``); the others train with the current defaults.

    python scripts/bench_lesions.py --work /tmp/bench18 [--minutes 10] [--datasets met glioma] [--parallel 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from bench_common import describe_machine, finish, table

HERE = Path(__file__).resolve().parent
PY = sys.executable
APP = [str(Path(PY).with_name("monai-app"))]
DATASETS = {
    "met": (["--format", "brats2023", "--subchallenge", "MET"], "met"),
    "glioma": (["--format", "msd"], "glioma/Task01_BrainTumour"),
}
BASELINE = "baseline"
# bundle 0.4.0's recipe, as it was measured: 2 patches per loaded case (4 per step), float32 on the CPU, and a
# 55-epoch cosine schedule (what 10 CPU-minutes held on one thread of the machine of BENCHMARKS.md §6)
RECIPE_0_4 = {"num_samples": 2, "amp": "false", "max_epochs": 55}
ARMS = {  # training arm: bundle overrides (on top of --epochs), or the baseline script's learning rate
    "baseline": {BASELINE: 1e-4},
    "baseline_lr1e-3": {BASELINE: 1e-3},
    "recipe": {},  # this bundle's defaults (0.5.0): one patch per loaded case, bf16 on a CPU with native bf16
    "recipe_seed1": {"seed": 1},
    "lesion_sampling": {"patch_sampling": "lesion"},
    "lesion_val": {"val_metric": "lesion_dice"},
    "all": {"patch_sampling": "lesion", "val_metric": "lesion_dice"},
    # what was tried on the 0.4.0 recipe against false ET in cases without enhancing tumour (§6.2)
    "recipe_0.4": RECIPE_0_4,
    "lesion_sampling_0.4": {**RECIPE_0_4, "patch_sampling": "lesion"},
    "lesion_val_0.4": {**RECIPE_0_4, "val_metric": "lesion_dice"},
    "all_0.4": {**RECIPE_0_4, "patch_sampling": "lesion", "val_metric": "lesion_dice"},
    "bce": {**RECIPE_0_4, "loss#gamma": 0},
    "bce5": {**RECIPE_0_4, "loss#gamma": 0, "loss#lambda_focal": 5},
    "lr5e-3": {**RECIPE_0_4, "learning_rate": 0.005},
    "samples1": {**RECIPE_0_4, "num_samples": 1, "max_epochs": 100},
    "bf16": {**RECIPE_0_4, "amp": "true", "max_epochs": 100},
}
ROWS = [  # (row, training arm, tta, post-processing)
    ("plain MONAI (scripts/baseline_brats_monai.py, Adam 1e-4)", "baseline", False, False),
    ("plain MONAI, Adam 1e-3", "baseline_lr1e-3", False, False),
    ("bundle 0.4.0 recipe", "recipe_0.4", False, False),
    ("0.4.0 + lesion-aware sampling", "lesion_sampling_0.4", False, False),
    ("0.4.0 + lesion-wise validation metric", "lesion_val_0.4", False, False),
    ("0.4.0 + TTA (8 flips)", "recipe_0.4", True, False),
    ("0.4.0 + post-processing", "recipe_0.4", False, True),
    ("0.4.0, all four", "all_0.4", True, True),
    ("0.4.0 + Dice + BCE (focal gamma 0)", "bce", False, False),
    ("0.4.0 + Dice + 5 x BCE", "bce5", False, False),
    ("0.4.0 + learning rate 5e-3", "lr5e-3", False, False),
    ("0.4.0 + one patch per case (2 per step), 100-epoch schedule", "samples1", False, False),
    ("0.4.0 + bf16 training, 100-epoch schedule", "bf16", False, False),
    ("recipe (0.5.0 defaults)", "recipe", False, False),
    ("recipe, seed 1", "recipe_seed1", False, False),
    ("+ lesion-aware sampling", "lesion_sampling", False, False),
    ("+ lesion-wise validation metric", "lesion_val", False, False),
    ("+ TTA (8 flips)", "recipe", True, False),
    ("+ post-processing", "recipe", False, True),
    ("all four", "all", True, True),
]
SHORT = {"met": ["baseline", "baseline_lr1e-3", "recipe_0.4", "lesion_sampling_0.4", "lesion_val_0.4", "all_0.4",
                 "recipe", "lesion_sampling", "lesion_val", "all"],
         "glioma": ["baseline", "baseline_lr1e-3", "recipe_0.4", "recipe", "recipe_seed1", "all", "all_0.4", "bce",
                    "bce5", "lr5e-3", "samples1", "bf16"]}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def prepare(work: Path, name: str, cases: int = 32, shape: tuple[int, ...] = ()) -> tuple[Path, Path]:
    """The dataset and its saved split (``work/<name>/split/split.json``), made once."""
    synth_args, sub = DATASETS[name]
    root = work / name
    data = root / "data" / sub
    if not data.is_dir():
        size = ["--shape", *map(str, shape)] if shape else []
        subprocess.run([*APP, "synth", "brats", "--out", str(data), *synth_args, "--cases", str(cases), "--test-cases",
                        "0", "--seed", "11", *size], check=True)
    split_dir = root / "split"
    if not (split_dir / "split.json").is_file():
        from monai_app.datasets.brats import make_datalists

        make_datalists(data, split_dir, seed=0, val_fraction=0.125, test_fraction=0.25)
    return data, split_dir / "split.json"


def train_command(arm: str, data: Path, split: Path, run: Path, minutes: float, epochs: int) -> list[str]:
    if BASELINE in ARMS[arm]:
        return [PY, str(HERE / "baseline_brats_monai.py"), "--dataset-dir", str(data), "--split", str(split),
                "--out", str(run), "--minutes", str(minutes), "--clock", "cpu", "--lr", str(ARMS[arm][BASELINE])]
    overrides = [x for k, v in ARMS[arm].items() for x in (f"--{k}", str(v))]
    return [*APP, "train", "brats_unet3d", "--dataset-dir", str(data), "--output-dir", str(run), "--max-epochs",
            str(epochs), "--val_interval", "2", "--num_workers", "0", "--cache_rate", "1.0", "--max_minutes",
            str(minutes), "--budget_clock", "cpu", *overrides]


def trained(arm: str, run: Path) -> bool:
    return (run / ("baseline.json" if BASELINE in ARMS[arm] else "models/model.pt")).is_file() and \
        not (run / "training.running").exists()


def train_all(jobs: list[tuple[str, list[str], Path]], parallel: int) -> None:
    """Run the training commands, ``parallel`` at a time, each on one thread, logging to ``<run>.log``."""
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < parallel:
            name, cmd, run = pending.pop(0)
            run.mkdir(parents=True, exist_ok=True)
            (run / "training.running").touch()
            log = open(run.with_suffix(".log"), "w")
            print(f"# training {name}: {' '.join(cmd)}", flush=True)
            running.append((name, run, log, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                             env={**os.environ, **ONE_THREAD})))
        time.sleep(5)
        for job in [j for j in running if j[3].poll() is not None]:
            running.remove(job)
            name, run, log, proc = job
            log.close()
            if proc.returncode != 0:
                raise SystemExit(f"training {name} failed ({proc.returncode}); see {run.with_suffix('.log')}")
            (run / "training.running").unlink()


def link_cases(data: Path, ids: list[str], where: Path, fmt: str) -> tuple[Path, Path]:
    """Folders of the test cases' inputs and references (symbolic links) for ``monai-app infer`` and ``score``."""
    inputs, refs = where / "test_input", where / "test_ref"
    for folder in (inputs, refs):
        folder.mkdir(parents=True, exist_ok=True)
    for case in ids:
        if fmt == "msd":
            pairs = [(data / "imagesTr" / f"{case}.nii.gz", inputs), (data / "labelsTr" / f"{case}.nii.gz", refs)]
        else:
            pairs = [(data / case, inputs), (data / case, refs)]
        for src, folder in pairs:
            if not (folder / src.name).exists():
                (folder / src.name).symlink_to(src.resolve())
    return inputs, refs


def segment(run: Path, inputs: Path, out: Path, tta: bool, pp: bool, data: Path) -> float:
    """Bundle inference of the test cases (one thread); seconds per case."""
    import torch

    from monai_app.workflow import run_bundle

    torch.set_num_threads(1)
    if pp and not (run / "postprocessing.json").is_file():
        subprocess.run([*APP, "postprocess", "brats_unet3d", "--output-dir", str(run), "--dataset-dir", str(data)],
                       check=True, env={**os.environ, **ONE_THREAD})
    n = len(list(inputs.iterdir()))
    start = time.perf_counter()
    run_bundle("brats_unet3d", "inference", {"input": str(inputs), "output_dir": str(out), "tta": tta,
                                             "ckpt_path": str(run / "models" / "model.pt"), "num_workers": 0,
                                             "postprocessing_rules": "auto" if pp else "none"})
    return (time.perf_counter() - start) / n


def score(pred: Path, refs: Path, out: Path, fmt: str) -> list[dict]:
    from monai_app.metrics.folders import score_folders

    if not (out / "per_case.csv").is_file():
        score_folders(pred, refs, dataset_format=fmt, out_dir=out, scoring="brats2023")
    with open(out / "per_case.csv") as f:
        return list(csv.DictReader(f))


def mean(rows: list[dict], column: str, keep=lambda r: True) -> float:
    values = [float(r[column]) for r in rows if keep(r) and r.get(column) not in (None, "", "nan")]
    values = [v for v in values if math.isfinite(v)]
    return sum(values) / len(values) if values else math.nan


def et_free(refs: Path, fmt: str) -> set[str]:
    """Test cases whose reference has no enhancing tumour."""
    from monai_app.datasets.brats import get_format

    label = get_format(fmt).enhancing
    files = [p for p in refs.rglob("*.nii.gz") if fmt == "msd" or p.name.endswith("-seg.nii.gz")]
    return {p.name.replace("-seg.nii.gz", "").replace(".nii.gz", "") for p in files
            if not np.any(np.asarray(nib.load(p).dataobj) == label)}


def row_cells(name: str, rows: list[dict], seconds: float, epochs: str, free: set[str]) -> list[str]:
    def case(r):
        return r.get("case_id") or r.get("case") or ""

    cells = [name, epochs]
    cells += [" / ".join(f"{mean(rows, f'lesion_dice_{r}'):.3f}" for r in ("wt", "tc", "et"))]
    cells += [" / ".join(f"{mean(rows, f'lesion_hd95_{r}'):.1f}" for r in ("wt", "tc", "et"))]
    cells += [" / ".join(f"{mean(rows, f'dice_{r}'):.3f}" for r in ("wt", "tc", "et"))]
    fn = sum(float(r["lesion_fn_wt"]) for r in rows)
    tp = sum(float(r["lesion_tp_wt"]) for r in rows)
    fp = sum(float(r["lesion_fp_wt"]) for r in rows)
    cells += [f"{fn:.0f} of {tp + fn:.0f} / {fp:.0f}"]
    if free:
        cells += [f"{mean(rows, 'lesion_dice_et', lambda r: case(r) in free):.3f} ({len(free)})"]
    return cells + [f"{seconds:.2f}"]


def evaluate(work: Path, name: str, data: Path, split: Path, arms: list[str], minutes: float) -> str:
    from monai_app.datasets.brats import resolve_format

    fmt = resolve_format(data)
    ids = json.loads(split.read_text())["test"]
    inputs, refs = link_cases(data, ids, work / name, fmt)
    free = et_free(refs, fmt) if name == "glioma" else set()
    out_rows = []
    for row, arm, tta, pp in ROWS:
        if arm not in arms:
            continue
        run = work / name / arm
        slug = f"{arm}{'_tta' if tta else ''}{'_pp' if pp else ''}"
        pred, timing = work / name / "pred" / slug, work / name / "pred" / f"{slug}.json"
        if BASELINE in ARMS[arm]:
            record = json.loads((run / "baseline.json").read_text())
            pred, seconds, epochs = run / "predictions", record["seconds_per_case"], str(record["epochs"])
        else:
            if not timing.is_file():
                seconds = segment(run, inputs, pred, tta, pp, data)
                timing.write_text(json.dumps({"seconds_per_case": seconds}))
            seconds = json.loads(timing.read_text())["seconds_per_case"]
            epochs = str(last_epoch(run))
        rows = score(pred, refs, work / name / "scores" / slug, fmt)
        out_rows.append(row_cells(row, rows, seconds, epochs, free))
    headers = ["recipe", "epochs", "lesion-wise Dice WT / TC / ET", "lesion-wise HD95 WT / TC / ET (mm)",
               "Dice WT / TC / ET", "WT lesions missed / false positives"]
    headers += ["ET lesion-wise Dice on ET-free cases (n)"] if free else []
    return table(f"{name}: {len(ids)} held-out cases, {minutes:g} CPU-min of training per arm",
                 headers + ["inference s/case (1 thread)"], out_rows)


def last_epoch(run: Path) -> int:
    import torch

    state = torch.load(run / "models" / "last.pt", map_location="cpu", weights_only=True)
    return int(state["trainer"]["iteration"]) // int(state["trainer"]["epoch_length"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", "--workdir", dest="work", required=True, help="where datasets, runs, predictions "
                        "and scores go")
    parser.add_argument("--minutes", type=float, default=10.0, help="CPU minutes of training per arm (default 10)")
    parser.add_argument("--epochs", type=int, default=160, help="the bundle's max_epochs (its cosine schedule's "
                        "length), chosen to end near the budget on one thread of the machine of BENCHMARKS.md §6 "
                        "(default 160: 143 epochs in 10 CPU-minutes with the 0.5.0 defaults); arms may set their own")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), help="train only these (default: each "
                        "dataset's arms of BENCHMARKS.md §6)")
    parser.add_argument("--parallel", type=int, default=2, help="training arms at a time (default 2)")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 16 small MET cases, 0.15 CPU-minutes "
                        "and 2 epochs per arm, three arms (its numbers are not benchmarks)")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.epochs, args.datasets, args.parallel = 0.15, 2, ["met"], 1
        args.arms = args.arms or ["baseline", "recipe", "all"]
    work = Path(args.work)
    print(describe_machine("cpu"))
    small = {"cases": 16, "shape": (48, 48, 32)} if args.quick else {}
    prepared = {name: prepare(work, name, **small) for name in args.datasets}
    arms = {name: args.arms or SHORT[name] for name in args.datasets}
    jobs = []
    for name, (data, split) in prepared.items():
        for arm in arms[name]:
            run = work / name / arm
            if not trained(arm, run):
                run.mkdir(parents=True, exist_ok=True)
                shutil.copy(split, run / "split.json")
                jobs.append((f"{name}/{arm}", train_command(arm, data, split, run, args.minutes, args.epochs), run))
    train_all(jobs, args.parallel)
    if not args.train_only:
        for name, (data, split) in prepared.items():
            evaluate(work, name, data, split, arms[name], args.minutes)
    finish()


if __name__ == "__main__":
    main()
