"""Training throughput of the bundles' real training step, fed from memory versus from their real data pipelines.

    python scripts/bench_training.py [--quick] [--device cpu|cuda] [--repeats 3] [--workdir DIR]

One step is MONAI's ``SupervisedTrainer`` iteration with each bundle's own network, loss, optimizer and training
post-processing, parsed from its ``train.json`` by MONAI's ``ConfigWorkflow`` (handlers left out: they act per
epoch, or write one scalar per step). It is fed by
  - pre-made batches already in memory (the compute bound), or
  - the bundle's own train transforms over synthetic cases, through the dataset and loader of each row:
    the default (the deterministic transforms cached on disk by
    ``monai_app.engine.data_loading.DiskCacheDataset``, MONAI's
    ``PersistentDataset``, read by a ``ThreadDataLoader`` with ``num_workers`` 0 on <= 2 cores), the previous
    default (no cache, ``DataLoader`` with 2 worker processes), no cache without workers, and ``CacheDataset``
    (``cache_rate`` 1.0, in RAM) with workers or with ``ThreadDataLoader``.
brats_unet3d: BraTS-size cases (240 x 240 x 155 x 4), 64^3 patches, batch_size 2 and 4 (x num_samples 2 patches),
float32: the settings of BENCHMARKS.md §2, measured before bundle 0.5.0 (one patch per case, bf16 on CPUs with
native bf16: scripts/bench_amp_training.py).
carvana_unet2d: full-size (1280 x 1918) synthetic photographs resized to 256^2, its default batch_size 8.
voc_unet2d (only with --bundles ... voc_unet2d; not in `make bench`): synthetic VOC 2012 (500 x 375 JPEG photos,
palette PNG labels) at 256^2, batch_size 8; its default (no cache, ThreadDataLoader) against the previous
default (DataLoader with 2 worker processes). camvid_unet2d and ccp_unet2d share its loader settings.
Per step: the time between steps (median, min-max) and the part of it spent waiting for the loader. Each row
starts its loader again every round (1 warm-up step, then timed steps); rounds are interleaved across rows.
"""

from __future__ import annotations

import atexit
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Events
from monai.data import CacheDataset, PersistentDataset

from bench_common import (base_parser, bundle_trainer, describe_machine, finish, med, parse, spread, table,
                          write_brats_case)

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def workflow(bundle: str, overrides: dict):
    """The bundle's training ConfigWorkflow with ``overrides``, initialised (nothing is trained yet)."""
    from monai_app.workflow import make_workflow

    wf = make_workflow(bundle, "training", overrides)
    wf.initialize()
    logging.disable(logging.INFO)  # the workflow's logging config turns INFO on; keep the tables readable
    return wf


def _scratch(work: Path, prefix: str) -> str:
    """A new folder under ``work``, removed when the script ends."""
    path = tempfile.mkdtemp(prefix=prefix, dir=work)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def loader_rows(bundle: str, work: Path, grid: str) -> dict[str, dict]:
    """Row name -> overrides of the dataset and loader; ``grid`` "full", "2d" (the defaults, the previous defaults
    and the RAM cache) or "defaults" (the first two). Disk caches go to a new scratch folder per row, so their
    build is timed."""
    disk = lambda: {"cache_dir": _scratch(work, f"cache_{bundle}_")}  # noqa: E731
    loader = {"train#dataloader#_target_": "DataLoader"}
    rows = {"defaults: disk cache + ThreadDataLoader (num_workers 0)": {**disk(), "num_workers": 0},
            "previous defaults: no cache, DataLoader num_workers 2": {"cache_dir": "", "num_workers": 2, **loader}}
    if grid == "defaults":
        return rows
    if grid == "full":
        rows["no cache, ThreadDataLoader (num_workers 0)"] = {"cache_dir": "", "num_workers": 0}
        rows["CacheDataset (cache_rate 1.0), DataLoader num_workers 2"] = {"cache_rate": 1.0, "num_workers": 2, **loader}
    rows["CacheDataset (cache_rate 1.0) + ThreadDataLoader (num_workers 0)"] = {"cache_rate": 1.0, "num_workers": 0}
    return rows


class Stepper:
    """One row: the bundle's components parsed once (so a cache is built once), a fresh trainer per round."""

    def __init__(self, bundle: str, overrides: dict, device: str, in_memory: list | None = None) -> None:
        self.wf = workflow(bundle, {"device": device, "train#dataset#progress": False, **overrides})
        self.device, self.in_memory = device, in_memory
        self.build_s, self.step_s, self.wait_s = 0.0, [], []
        start = time.perf_counter()
        self.loader = in_memory if in_memory is not None else self.wf.parser.get_parsed_content("train#dataloader")
        dataset = getattr(self.loader, "dataset", None)
        if isinstance(dataset, PersistentDataset):  # fill the disk cache now (as the first epoch does), timed
            for item in {json.dumps(i, sort_keys=True): i for i in dataset.data}.values():
                dataset._cachecheck(item)
        self.build_s = time.perf_counter() - start if in_memory is None else 0.0
        self.cache = _cache_size(dataset)

    def run(self, steps: int) -> None:
        """One warm-up step, then ``steps`` timed ones; records step times and waits for the loader."""
        trainer = bundle_trainer(self.wf.parser, self.device, self.loader, steps + 1)
        marks: dict[str, list[float]] = {"get": [], "got": [], "done": []}
        for event, key in ((Events.GET_BATCH_STARTED, "get"), (Events.GET_BATCH_COMPLETED, "got"),
                           (Events.ITERATION_COMPLETED, "done")):
            trainer.add_event_handler(event, lambda _, k=key: marks[k].append(time.perf_counter()))
        trainer.run()
        done = marks["done"]
        self.step_s += [b - a for a, b in zip(done[:-1], done[1:])]
        self.wait_s += [b - a for a, b in zip(marks["get"][1:], marks["got"][1:])]


def _nbytes(obj) -> int:
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    return sum(_nbytes(v) for v in obj) if isinstance(obj, (list, tuple)) else 0


def _cache_size(dataset) -> str:
    """What a dataset caches: GB of tensors in RAM (CacheDataset) or of files on disk (PersistentDataset)."""
    if isinstance(dataset, CacheDataset) and getattr(dataset, "_cache", None):
        return f"{_nbytes(dataset._cache) / 2**30:.2f} RAM"
    if isinstance(dataset, PersistentDataset) and dataset.cache_dir is not None:
        return f"{sum(f.stat().st_size for f in Path(dataset.cache_dir).glob('*')) / 2**30:.2f} disk"
    return "-"


def brats_datalist(work: Path, shape: tuple[int, ...], distinct: int, entries: int) -> list[dict]:
    """``entries`` training items cycling over ``distinct`` synthetic BraTS-size cases (written once; an epoch sees
    each case several times, so a disk cache holds ``distinct`` files)."""
    pairs = [write_brats_case(work / "data", shape, seed=100 + i) for i in range(distinct)]
    return [{"case_id": f"case_{i % distinct:03d}", "image": str(pairs[i % distinct][0]),
             "label": str(pairs[i % distinct][1])} for i in range(entries)]


def carvana_datalist(work: Path, size: tuple[int, int], views: int, entries: int) -> list[dict]:
    """``entries`` training items cycling over a synthetic Carvana folder (Kaggle layout, written once) of one car
    photographed ``views`` times."""
    from monai_app.datasets.carvana import find_cases
    from monai_app.synthetic.carvana import write_carvana

    root = work / "data" / f"carvana_{size[0]}x{size[1]}_{views}"
    if not (root / "train_masks.csv").is_file():
        write_carvana(root, cars=1, views=views, test_cars=0, size=size)
    cases = find_cases(root)
    return [dict(cases[i % len(cases)]) for i in range(entries)]


def voc_datalist(work: Path, images: int, entries: int) -> list[dict]:
    """``entries`` training items cycling over a synthetic VOC 2012 folder (the real layout, written once) of
    ``images`` training photos of 500 x 375."""
    from monai_app.datasets.voc import find_cases
    from monai_app.synthetic.voc import write_voc

    root = work / "data" / f"voc_{images}"
    if not (root / "VOCdevkit").is_dir():
        write_voc(root, train=images, val=2, seed=1)
    cases = find_cases(root, "train")
    return [dict(cases[i % len(cases)]) for i in range(entries)]


def in_memory_batches(bundle: str, overrides: dict, device: str, count: int) -> list:
    """``count`` batches from the bundle's real loader, kept in memory (the same tensors fed again and again)."""
    loader = workflow(bundle, {"device": device, **overrides, "num_workers": 0}).parser.get_parsed_content(
        "train#dataloader")
    first = [batch for _, batch in zip(range(2), loader)]
    return [first[i % len(first)] for i in range(count)]


def bench_rows(title: str, bundle: str, base: dict, rows: dict[str, dict], device: str, steps: int, rounds: int,
               note: str) -> None:
    """Measure every row of one table in rounds, the order rotated from round to round; print the table."""
    steppers = {"pre-made batches in memory (compute only)":
                Stepper(bundle, base, device, in_memory_batches(bundle, base, device, steps + 1))}
    steppers.update({name: Stepper(bundle, {**base, **o}, device) for name, o in rows.items()})
    order = list(steppers.values())
    for r in range(rounds):
        for s in order[r % len(order):] + order[: r % len(order)]:
            s.run(steps)
    compute = med(order[0].step_s)
    out = []
    for name, s in steppers.items():
        step = med(s.step_s)
        out.append([name, f"{s.build_s:.1f}" if s.build_s else "-", s.cache, spread(s.step_s), f"{1 / step:.2f}",
                    spread(s.wait_s), f"{100 * (step / compute - 1):+.0f} %"])
    table(title, ["data", "dataset build (s)", "cache (GB)", "step (s)", "it/s", "waiting for data (s/step)",
                  "vs in memory"], out,
          f"{note}; {rounds} rounds x {steps} timed steps per row, each round after a warm-up step. Waiting for data: "
          "time the trainer blocked on the loader; with workers on a saturated CPU the loader costs compute time "
          "instead, which only the 'vs in memory' column shows.")


BENCHED = ("brats_unet3d", "carvana_unet2d", "voc_unet2d")


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--bundles", nargs="+", choices=BENCHED, default=list(BENCHED[:2]),
                        help="the bundles to measure (default: brats_unet3d carvana_unet2d, as `make bench`)")
    args = parse(parser)
    quick = args.quick
    rounds, steps = (1, 2) if quick else (args.repeats or 3, 2)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_training_"))
    work.mkdir(parents=True, exist_ok=True)
    print(describe_machine(args.device))
    shape = (64, 64, 48) if quick else (240, 240, 155)
    small = {"roi_size": [32, 32, 32], "channels": [8, 16, 32, 64, 128]} if quick else {}
    for batch in ((2,) if quick else (2, 4)) if "brats_unet3d" in args.bundles else ():
        items = brats_datalist(work, shape, 2 if quick else 4, batch * (steps + 1))
        base = {"datalists": {"train": items, "validation": [], "test": []}, "label_format": "msd",
                "output_dir": str(work / "run_brats"), "batch_size": batch, "num_samples": 2,
                "amp": False, **small}
        bench_rows(f"brats_unet3d training step, batch_size {batch} (x num_samples 2 = {2 * batch} patches of "
                   f"{32 if quick else 64}^3), cases {'x'.join(map(str, shape))} x 4", "brats_unet3d", base,
                   loader_rows("brats_unet3d", work, "full" if batch == 2 else "defaults"), args.device, steps,
                   rounds, f"{len({i['image'] for i in items})} distinct synthetic cases, {len(items)} items")
    small2d = {"features": [8, 16, 32, 64, 128, 8], "image_size": 64} if quick else {}
    batch = 2 if quick else 8
    if "carvana_unet2d" in args.bundles:
        size = (320, 480) if quick else (1280, 1918)
        items = carvana_datalist(work, size, 4 if quick else 8, batch * (steps + 1))
        base = {"datalists": {"train": items, "validation": [], "test": []}, "output_dir": str(work / "run_carvana"),
                "batch_size": batch, **small2d}
        bench_rows(f"carvana_unet2d training step, {small2d.get('image_size', 256)}^2, batch_size {batch}, "
                   f"photographs {size[0]}x{size[1]}", "carvana_unet2d", base,
                   loader_rows("carvana_unet2d", work, "2d"), args.device, steps, min(rounds, 2),
                   "synthetic Carvana photographs" + " (quick: a small network)" * bool(small2d))
    if "voc_unet2d" in args.bundles:
        items = voc_datalist(work, 4 if quick else 16, batch * (steps + 1))
        base = {"datalists": {"train": items, "validation": [], "test": []}, "output_dir": str(work / "run_voc"),
                "batch_size": batch, **small2d}
        rows = {"defaults: ThreadDataLoader (num_workers 0)": {"num_workers": 0},
                "previous defaults: DataLoader num_workers 2": {"num_workers": 2,
                                                                "train#dataloader#_target_": "DataLoader"}}
        bench_rows(f"voc_unet2d training step, {small2d.get('image_size', 256)}^2, batch_size {batch}, photographs "
                   "500x375", "voc_unet2d", base, rows, args.device, steps, rounds,
                   f"{len({i['image'] for i in items})} synthetic VOC photographs (JPEG), no cache (its default)"
                   + " (quick: a small network)" * bool(small2d))
    finish()


if __name__ == "__main__":
    main()
