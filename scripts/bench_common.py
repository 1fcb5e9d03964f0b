"""Shared helpers of the ``bench_*.py`` scripts: the machine's description, timing summaries, peak memory, Markdown
tables, one BraTS-size synthetic case, and a bundle's own training step.

Not a library: the benchmarks import it from ``scripts/`` (``python scripts/bench_x.py`` puts this folder on the
path). Every number the benchmarks print is a median with its spread (min-max) over repeated runs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# BraTS 2018-2021 files: 240 x 240 x 155 voxels of 1 mm, x and y flipped (LPS-like storage), so Orientationd works.
BRATS_SHAPE = (240, 240, 155)
BRATS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])


def base_parser(doc: str | None) -> argparse.ArgumentParser:
    """The flags every benchmark takes: ``--quick``, ``--device``, ``--repeats``, ``--workdir``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one repeat: a smoke test (< 60 s)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats of the main comparisons")
    parser.add_argument("--workdir", default=None, help="where synthetic data is written (default: a temp folder)")
    return parser


def parse(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the command line; ``--quick`` also runs torch on one thread, so the smoke test stays quick on a busy
    machine (its numbers are not benchmarks)."""
    args = parser.parse_args()
    if args.quick:
        import torch

        torch.set_num_threads(1)
    return args


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device: str = "cpu") -> str:
    """One comment block: date, hardware, versions, threads and the load average when the run started."""
    import monai
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = ""
    try:
        kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
                 .split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else "none used"
    load = _load()
    return "\n".join([
        f"# date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"# machine: {cpu_model()}, {cores} cores available{mem}; GPU: {gpu}",
        f"# versions: python {platform.python_version()}, torch {torch.__version__}, monai {monai.__version__}; "
        f"torch threads {torch.get_num_threads()}",
        f"# load average at start (1/5/15 min): {load}",
    ])


def _load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


_STARTED = time.perf_counter()


def finish() -> None:
    """The last comment line of a benchmark: load average at the end and the script's own wall time."""
    print(f"\n# load average at end (1/5/15 min): {_load()}; this script ran {time.perf_counter() - _STARTED:.0f} s",
          flush=True)


def sync(device: str) -> None:
    """Wait for queued GPU work, so wall-clock times are right on CUDA; a no-op on CPU."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def clock(fn: Callable[[], object], device: str = "cpu") -> tuple[float, object]:
    """(seconds, result) of one call of ``fn``."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def med(times: Sequence[float]) -> float:
    return statistics.median(times) if times else float("nan")


def spread(times: Sequence[float], unit: str = "s", digits: int = 2) -> str:
    """``median (min-max)`` of a list of timings; just the value for one run."""
    if not times:
        return "n/a"
    if len(times) == 1:
        return f"{times[0]:.{digits}f}"
    return f"{med(times):.{digits}f} ({min(times):.{digits}f}-{max(times):.{digits}f})"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]], note: str = "") -> str:
    """A Markdown table under a ``### title`` line (and an optional note); printed and returned."""
    lines = [f"\n### {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    if note:
        lines += ["", note]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def _status_kb(pid: int | str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _pss_kb(pid: int | str) -> int:
    """Proportional set size: resident pages, those shared with other processes (forked workers) divided among
    them; the resident size where the kernel does not say."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return _status_kb(pid, "VmRSS")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            kids += [int(p) for p in path.read_text().split()]
        except (OSError, ValueError):
            pass
    return kids + [g for k in kids for g in _children(k)]


class PeakMemory:
    """Peak memory (GB) during a ``with`` block: ``own_gb`` of this process, and with ``children=True`` also
    ``tree_gb``, this process plus its child processes (DataLoader workers).

    ``own_gb`` is the kernel's exact high-water mark of resident memory (``VmHWM``, reset on entry by writing ``5``
    to ``/proc/self/clear_refs``). ``tree_gb`` is sampled every 100 ms as the sum of proportional set sizes (pages
    shared by forked workers counted once), or ``own_gb`` if that is larger; sampling costs CPU time (the kernel
    walks each process's pages), so timed runs leave it off. ``nan`` off Linux.
    """

    def __init__(self, children: bool = False, interval: float = 0.1) -> None:
        self.children, self.interval = children, interval
        self.own_gb, self.tree_gb = float("nan"), float("nan")
        self._stop, self._peak_tree, self._thread = threading.Event(), 0, None

    def _sample(self) -> None:
        pid = os.getpid()
        while not self._stop.is_set():
            self._peak_tree = max(self._peak_tree, sum(_pss_kb(p) for p in [pid, *_children(pid)]))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        if self.children:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        own = _status_kb("self", "VmHWM")
        if own:
            self.own_gb = own / 2**20
            self.tree_gb = max(self._peak_tree, own) / 2**20


def write_brats_case(out_dir: str | os.PathLike, shape: Sequence[int] = BRATS_SHAPE, seed: int = 900
                     ) -> tuple[Path, Path]:
    """Write one synthetic case shaped like BraTS (``shape`` x 4 float32 channels, 1 mm voxels, BraTS's axis flips)
    as ``<X>x<Y>x<Z>/imagesTr/BRATS_<seed>.nii.gz`` and its label as ``.../labelsTr/...`` (MSD numbers);
    returns both paths. An existing pair is reused, so benchmarks sharing a ``--workdir`` write each case once.

    The phantom is :mod:`monai_app.synthetic.brats`'s (brain ellipsoid over 70-80 % of each axis, zero outside,
    one glioma), at exactly ``shape`` and 1 mm rather than the per-case jittered geometry of ``write_brats``.
    """
    from monai_app.synthetic import brats as synth
    from monai_app.synthetic import brats_tissue

    root = Path(out_dir) / "x".join(str(int(s)) for s in shape)  # a sub-folder per size: quick runs never mix
    name = f"BRATS_{seed:03d}"
    image_path, label_path = root / "imagesTr" / f"{name}.nii.gz", root / "labelsTr" / f"{name}.nii.gz"
    if image_path.is_file() and label_path.is_file():
        return image_path, label_path
    rng = np.random.default_rng([seed, 0])
    dims = tuple(int(s) for s in shape)
    brain, centre, semi, white = brats_tissue.brain_phantom(rng, dims)
    tissue = brats_tissue.glioma(rng, brain, centre, semi, enhancing=True)
    channels = synth._images(rng, brain, white, tissue)
    synth._save(np.stack(channels, axis=-1), BRATS_AFFINE, image_path)
    synth._save(tissue, BRATS_AFFINE, label_path)
    return image_path, label_path


def bundle_trainer(parser, device: str, loader, epoch_length: int):
    """MONAI's ``SupervisedTrainer`` for one epoch of ``epoch_length`` steps over ``loader``, with the bundle's own
    network, optimizer, loss, training post-processing and training inferer (brats_unet3d's runs the forward pass
    in bf16 on the CPU when ``amp`` is on), parsed from ``parser``, and MONAI's engine ``amp`` on CUDA only, as the
    bundle's ``train#trainer`` has them; its handlers are left out (they act per epoch, or write one scalar per
    step)."""
    import torch
    from monai.engines import SupervisedTrainer
    from monai.inferers import SimpleInferer

    from monai_app.config import cuda_amp

    train = parser["train"]
    return SupervisedTrainer(
        device=torch.device(device), max_epochs=1, epoch_length=epoch_length, train_data_loader=loader,
        network=parser.get_parsed_content("network"), optimizer=parser.get_parsed_content("optimizer"),
        loss_function=parser.get_parsed_content("loss"),
        postprocessing=parser.get_parsed_content("train#postprocessing") if "postprocessing" in train else None,
        inferer=parser.get_parsed_content("train#inferer") if "inferer" in train else SimpleInferer(),
        amp=cuda_amp(parser.get_parsed_content("amp"), device))


def dice(a, b) -> list[float]:
    """Dice per channel of two (C, ...) binary masks (torch or numpy); 1.0 where both are empty."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    out = []
    for x, y in zip(a, b):
        total = int(x.sum()) + int(y.sum())
        out.append(1.0 if total == 0 else 2.0 * int(np.logical_and(x, y).sum()) / total)
    return out
