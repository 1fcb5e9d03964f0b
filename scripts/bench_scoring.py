"""Seconds per BraTS-size case (240 x 240 x 155, 1 mm) of `monai-app score` under each convention, side by side with
the challenge's own code, in one run.

Cases: a glioma (one tumour: edema, necrotic core, enhancing rim; the prediction shifted by a few voxels with a
false-positive blob) and a metastasis-like case (ten small lesions, two missed, two false positives). Each is
written as ``<id>-seg.nii.gz`` / ``<id>.nii.gz`` and scored from the files (reading included), as a user scores.

The official tools cannot live in the project's environment; give their virtual environments to time them too:
``--brats2025-python`` (pip install BraTS-evaluation==0.0.10: `brats_evaluation` on panoptica) and
``--brats2023-python`` with ``--brats2023-repo`` (a checkout of github.com/rachitsaluja/BraTS-2023-Metrics; its
``metrics.py`` needs numpy<2, pandas<2, scipy, nibabel, connected-components-3d). See
tests/fixtures/brats_metrics/README.md for how those environments were made.

    python scripts/bench_scoring.py --brats2025-python /work/venvs/brats-eval/bin/python \\
        --brats2023-python /work/venvs/brats2023-metrics/bin/python --brats2023-repo /tmp/BraTS-2023-Metrics
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np
from bench_common import BRATS_SHAPE, base_parser, clock, describe_machine, finish, parse, spread, table
from scipy import ndimage

from monai_app.metrics.folders import score_case

OFFICIAL_2025 = """
import json, sys, time
from importlib.resources import files
from panoptica import Panoptica_Evaluator
from brats_evaluation.evaluation import evaluate_single_exam
jobs, repeats = json.loads(sys.argv[1]), int(sys.argv[2])
out = {}
for case_id, pred, ref, config in jobs:
    evaluator = Panoptica_Evaluator.load_from_config(str(files("brats_evaluation").joinpath("configs",
                                                                                           f"config_{config}.yaml")))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        evaluate_single_exam(pred, ref, case_id, evaluator)
        times.append(time.perf_counter() - start)
    out[case_id] = times
print(json.dumps(out))
"""
OFFICIAL_2023 = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, sys.argv[3])
from metrics import get_LesionWiseResults
jobs, repeats = json.loads(sys.argv[1]), int(sys.argv[2])
out = {}
for case_id, pred, ref, config in jobs:
    times = []
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            get_LesionWiseResults(pred, ref, "BraTS-" + case_id.split("-")[1])
            times.append(time.perf_counter() - start)
    except Exception as e:  # its pandas code fails on some multi-lesion cases
        times = f"failed: {type(e).__name__}: {e}"
    out[case_id] = times
print(json.dumps(out))
"""


def _ball(shape, centre, radius, rng) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
    noise = ndimage.gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), 4) * radius * 0.8
    return dist + noise < radius


def glioma(rng, shape) -> tuple[np.ndarray, np.ndarray]:
    """One tumour in BraTS 2023 labels, and a prediction shifted by (3, -2, 1) voxels plus a false positive."""
    centre = np.array(shape) * [0.45, 0.55, 0.5]
    ref = np.zeros(shape, np.uint8)
    ref[_ball(shape, centre, min(shape) * 0.18, rng)] = 2
    ref[_ball(shape, centre, min(shape) * 0.10, rng)] = 3
    ref[_ball(shape, centre, min(shape) * 0.06, rng)] = 1
    pred = np.roll(ref, (3, -2, 1), axis=(0, 1, 2))
    pred[_ball(shape, np.array(shape) * [0.2, 0.2, 0.7], min(shape) * 0.03, rng)] = 2
    return ref, pred


def metastases(rng, shape) -> tuple[np.ndarray, np.ndarray]:
    """Ten small lesions (edema and enhancing tumour); the prediction misses two and adds two."""
    ref, pred = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    centres = rng.uniform(0.15, 0.85, (12, 3)) * np.array(shape)
    for i, centre in enumerate(centres):
        radius = rng.uniform(2.5, 7.0)
        target = ref if i < 10 else pred
        for label, scale in ((2, 1.6), (3, 1.0)):
            target[_ball(shape, centre, radius * scale, rng)] = label
            if 2 <= i < 10:
                pred[_ball(shape, centre + rng.normal(0, 1, 3), radius * scale * rng.uniform(0.8, 1.1), rng)] = label
    return ref, pred


def write_cases(folder: Path, shape) -> list[tuple[str, Path, Path, str]]:
    rng = np.random.default_rng(0)
    jobs = []
    for case_id, make, config in (("BraTS-GLI-00001-000", glioma, "gli"), ("BraTS-MET-00002-000", metastases,
                                                                           "mets")):
        ref, pred = make(rng, shape)
        for data, path in ((ref, folder / "ref" / f"{case_id}-seg.nii.gz"), (pred, folder / "pred" /
                                                                             f"{case_id}.nii.gz")):
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(data, np.eye(4)), path)
        jobs.append((case_id, folder / "pred" / f"{case_id}.nii.gz", folder / "ref" / f"{case_id}-seg.nii.gz",
                     config))
    return jobs


def official(python: str | None, code: str, jobs, repeats: int, *extra: str) -> dict[str, list[float] | str]:
    if not python:
        return {}
    payload = json.dumps([[c, str(p), str(r), cfg] for c, p, r, cfg in jobs])
    proc = subprocess.run([python, "-c", textwrap.dedent(code), payload, str(repeats), *extra], check=False,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        sys.exit(f"official tool failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--brats2025-python", help="python of a venv with BraTS-evaluation 0.0.10 (optional)")
    parser.add_argument("--brats2023-python", help="python of a venv that runs BraTS-2023-Metrics (optional)")
    parser.add_argument("--brats2023-repo", help="checkout of BraTS-2023-Metrics (with --brats2023-python)")
    args = parse(parser)
    repeats = args.repeats or (1 if args.quick else 3)
    shape = (96, 96, 64) if args.quick else BRATS_SHAPE
    print(describe_machine("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.workdir or tmp) / "scoring"
        jobs = write_cases(folder, shape)
        ours = {s: {c: [clock(partial(score_case, c, p, r, "brats2023", s))[0] for _ in range(repeats)]
                    for c, p, r, _ in jobs} for s in ("brats2021", "brats2023", "brats2025")}
        off25 = official(args.brats2025_python, OFFICIAL_2025, jobs, repeats)
        off23 = official(args.brats2023_python, OFFICIAL_2023, jobs, repeats, args.brats2023_repo or "") \
            if args.brats2023_repo else {}
    show = lambda t: t if isinstance(t, str) else spread(t)
    rows = [[case_id, *(spread(ours[s][case_id]) for s in ("brats2021", "brats2023")),
             show(off23.get(case_id, [])), spread(ours["brats2025"][case_id]), show(off25.get(case_id, []))]
            for case_id, *_ in jobs]
    table(f"Seconds per case, {'x'.join(map(str, shape))} voxels, reading included (median (min-max) of {repeats})",
          ["case", "project brats2021", "project brats2023", "BraTS-2023-Metrics", "project brats2025",
           "BraTS-evaluation 0.0.10"], rows,
          "n/a: that tool's environment was not given (--brats2023-python/--brats2023-repo, --brats2025-python).")
    finish()


if __name__ == "__main__":
    main()
