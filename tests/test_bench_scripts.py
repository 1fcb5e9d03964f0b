"""Smoke test of the benchmarks: each ``scripts/bench_*.py --quick`` runs to the end and prints its tables.

Speed is never asserted (timings depend on the machine and its load); BENCHMARKS.md holds the measured numbers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.mark.slow
@pytest.mark.parametrize("script, args, header", [
    ("bench_inference.py", [], "| pipeline | read | preprocess | sliding window | postprocess | write | total |"),
    ("bench_training.py", ["--bundles", "brats_unet3d", "carvana_unet2d", "voc_unet2d"],
     "| data | dataset build (s) | cache (GB) | step (s) | it/s |"),
    ("bench_scaling.py", [], "| size | settings | Mvoxels |"),
    ("bench_scoring.py", [], "| case | project brats2021 | project brats2023 | BraTS-2023-Metrics |"),
    ("bench_lesions.py", [], "| recipe | epochs | lesion-wise Dice WT / TC / ET |"),
    ("bench_amp_training.py", ["--threads", "1"], "| threads | batch x num_samples | float32 CPU s/step |"),
])
def test_bench_script_quick(script: str, args: list[str], header: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPTS / script), "--quick", "--workdir", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{script} --quick failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert header in proc.stdout, proc.stdout[-3000:]
    if script == "bench_training.py":
        assert all(f"### {b} training step" in proc.stdout for b in args[1:]), proc.stdout[-3000:]
    assert "# machine:" in proc.stdout
