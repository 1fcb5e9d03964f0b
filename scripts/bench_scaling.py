"""How brats_unet3d's inference and training times grow: with the volume's size, the number of cases in a folder,
and the training set's size with and without caching.

    python scripts/bench_scaling.py [--quick] [--device cpu|cuda] [--repeats 2] [--workdir DIR]

1. Inference versus volume size (128^3 ... 256 x 256 x 192): the bundle's inference.json components stage by
   stage (as ``bench_inference.py`` runs them), at its defaults and at its previous defaults (overlap 0.5, Gaussian).
2. Inference over a folder of N cases with the whole bundle workflow (DataLoader, SupervisedEvaluator), DataLoader
   ``num_workers`` 0 versus 2: with workers, reading and preprocessing the next case can overlap the current case's
   sliding window; on 2 cores they compete for the same cores instead.
3. Training epochs over N cases with train.json's real loader: no cache, the default disk cache, the RAM cache.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer

from bench_common import base_parser, describe_machine, finish, med, parse, spread, table, write_brats_case
from bench_pipelines import PREVIOUS, PREVIOUS_TEXT, load_network, project_pipeline, run_workflow, warm_up
from bench_training import workflow as training_workflow


def size_table(work: Path, sizes: list[tuple[int, ...]], net, ckpt: Path, device: str, repeats: int) -> None:
    """Inference time per stage versus the volume's size, defaults and previous defaults, rounds interleaved."""
    configs = {"defaults": {}, "previous defaults": PREVIOUS}
    cases = {s: write_brats_case(work / "data", s)[0] for s in sizes}
    pipes = {(s, c): project_pipeline(c, cases[s], work / "sizes" / c, ckpt, net, device, o)
             for s in sizes for c, o in configs.items()}
    times: dict[tuple, list[dict]] = {k: [] for k in pipes}
    mem: dict[tuple, float] = {}
    for _ in range(repeats):
        for (s, c), p in pipes.items():
            t, gb = p.run({"image": str(cases[s]), "case_id": cases[s].name[: -len(".nii.gz")]})
            times[(s, c)].append(t)
            mem[(s, c)] = max(mem.get((s, c), 0.0), gb)
    rows = []
    for (s, c), ts in times.items():
        voxels = s[0] * s[1] * s[2] / 1e6
        total = med([t["total"] for t in ts])
        rows.append(["x".join(map(str, s)), c, f"{voxels:.1f}", spread([t["read"] + t["preprocess"] for t in ts]),
                     spread([t["sliding window"] for t in ts]), spread([t["postprocess"] + t["write"] for t in ts]),
                     spread([t["total"] for t in ts]), f"{total / voxels:.2f}", f"{mem[(s, c)]:.2f}"])
    table("Inference versus volume size (one case, 4 channels, staged bundle components)",
          ["size", "settings", "Mvoxels", "read + preprocess (s)", "sliding window (s)", "post + write (s)",
           "total (s)", "s per Mvoxel", "peak RSS (GB)"], rows,
          f"median (min-max) of {repeats} round(s); {PREVIOUS_TEXT}.")


def folder_table(work: Path, shape: tuple[int, ...], counts: list[int], ckpt: Path, device: str,
                 repeats: int) -> None:
    """Whole-workflow inference over folders of N cases, DataLoader num_workers 0 versus 2."""
    rows, results = [], {}
    folders = {}
    for n in counts:
        folder = work / "data" / f"folder_{n}_{'x'.join(map(str, shape))}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            src = write_brats_case(work / "data", shape, seed=100 + i)[0]
            if not (folder / src.name).exists():
                (folder / src.name).unlink(missing_ok=True)  # a dangling link
                (folder / src.name).symlink_to(src.resolve())
        folders[n] = folder
    for _ in range(repeats):
        for n in counts:
            for workers in (0, 2):
                times, gb = run_workflow(folders[n], work / "folder_out", ckpt, device, {"num_workers": workers})
                results.setdefault((n, workers), []).append((times["total"], gb))
    for (n, workers), runs in results.items():
        secs = [r[0] for r in runs]
        rows.append([n, workers, spread(secs), f"{med(secs) / n:.2f}", f"{max(r[1] for r in runs):.2f}"])
    table(f"Inference over a folder of N cases ({'x'.join(map(str, shape))} x 4), whole bundle workflow, defaults",
          ["cases", "num_workers", "total (s)", "per case (s)", "peak RSS, main process (GB)"], rows,
          f"median (min-max) of {repeats} round(s); total: the whole run, set-up included. Peak RSS: the main "
          "process's high-water mark (the workers' memory is not included).")


def epoch_table(work: Path, shape: tuple[int, ...], counts: list[int], device: str, small: dict) -> None:
    """Training epochs over N cases with train.json's loader (ThreadDataLoader, num_workers 0 here): no cache, the
    default disk cache (written during epoch 1), and the RAM cache (cache_rate 1.0, built before epoch 1)."""
    rows = []
    caches = {"none": lambda: {"cache_dir": ""},
              "disk (default)": lambda: {"cache_dir": tempfile.mkdtemp(prefix="epochs_cache_", dir=work)},
              "RAM (cache_rate 1.0)": lambda: {"cache_rate": 1.0}}
    for n in counts:
        pairs = [write_brats_case(work / "data", shape, seed=100 + i) for i in range(n)]
        items = [{"case_id": p[0].name[:-7], "image": str(p[0]), "label": str(p[1])} for p in pairs]
        for cache, overrides in caches.items():
            settings = overrides()
            wf = training_workflow("brats_unet3d", {
                "datalists": {"train": items, "validation": [], "test": []}, "label_format": "msd",
                "output_dir": str(work / "run_epochs"), "device": device, "train#dataset#progress": False,
                "num_workers": 0, **settings, **small})
            p = wf.parser
            start = time.perf_counter()
            loader = p.get_parsed_content("train#dataloader")
            build = time.perf_counter() - start
            trainer = SupervisedTrainer(device=torch.device(device), max_epochs=2, train_data_loader=loader,
                                        network=p.get_parsed_content("network"), loss_function=p.get_parsed_content(
                                            "loss"), optimizer=p.get_parsed_content("optimizer"))
            marks = [time.perf_counter()]
            trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: marks.append(time.perf_counter()))
            trainer.run()
            epochs = [b - a for a, b in zip(marks[:-1], marks[1:])]
            rows.append([n, cache, f"{build:.1f}", f"{epochs[0]:.1f}", f"{epochs[1]:.1f}",
                         f"{epochs[1] / len(loader):.2f}"])
            if "cache_dir" in settings and settings["cache_dir"]:
                shutil.rmtree(settings["cache_dir"], ignore_errors=True)
    table(f"Training epochs versus dataset size ({'x'.join(map(str, shape))} x 4 cases, batch_size 2)",
          ["cases", "cache", "cache build (s)", "epoch 1 (s)", "epoch 2 (s)", "epoch 2 per step (s)"], rows,
          "One run each (epochs are sequential, not interleaved); ThreadDataLoader with num_workers 0 (the default "
          "on <= 2 cores). The disk cache is written during epoch 1; the RAM cache is built before it.")


def main() -> None:
    args = parse(base_parser(__doc__))
    quick = args.quick
    repeats = args.repeats or (1 if quick else 2)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_scaling_"))
    print(describe_machine(args.device))
    work.mkdir(parents=True, exist_ok=True)
    net, ckpt = load_network(None, args.device, work)
    warm_up(net, (1, 4), (64, 64, 64), args.device)
    sizes = [(64, 64, 48), (96, 96, 64)] if quick else [(128, 128, 128), (240, 240, 155), (256, 256, 192)]
    size_table(work, sizes, net, ckpt, args.device, repeats)
    shape = (64, 64, 48) if quick else (240, 240, 155)
    folder_table(work, shape, [1, 2] if quick else [1, 3], ckpt, args.device, 1)
    small = {"roi_size": [32, 32, 32], "channels": [8, 16, 32, 64, 128]} if quick else {}
    epoch_table(work, shape, [2] if quick else [2, 6], args.device, small)
    finish()


if __name__ == "__main__":
    main()
