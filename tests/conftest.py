"""Shared fixtures: small synthetic datasets written once per test session with the real writers."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# Real VOC and CamVid files carry research-use terms and stay outside the repository: tests that read them look in
# $MONAI_APP_SAMPLES (default: `../shared/samples` beside the clone) and skip when the folder is absent.
SAMPLES = Path(os.environ.get("MONAI_APP_SAMPLES") or REPO.parent / "shared" / "samples")
VOC_SAMPLES = SAMPLES / "VOCdevkit"
CAMVID_SAMPLES = SAMPLES / "camvid_dataset1"
# Real Clothing Co-Parsing files (Apache-2.0), copied into the repository: tests/samples/README.md
CCP_SAMPLES = REPO / "tests" / "samples" / "ccp"
BRATS_BUNDLE = REPO / "bundles" / "brats_unet3d"

torch.set_num_threads(max(1, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _no_stale_log_streams():
    """A bundle's logging.conf points the root logger at the sys.stdout of the test that ran it, pytest's capture,
    closed once that test ends: a later in-process command would log "--- Logging error ---" tracebacks before it
    loads its own (MONAI's engine loggers keep such handlers too). They are dropped before each test."""
    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values()
                                      if isinstance(v, logging.Logger))]
    for logger in loggers:
        for handler in list(logger.handlers):
            if getattr(getattr(handler, "stream", None), "closed", False):
                logger.removeHandler(handler)


def needs(folder: Path) -> pytest.MarkDecorator:
    """Skip a test unless the real sample folder ``folder`` (under :data:`SAMPLES`) exists."""
    return pytest.mark.skipif(not folder.is_dir(), reason=f"no real samples at {folder} (set MONAI_APP_SAMPLES)")


needs_voc = needs(VOC_SAMPLES)
needs_camvid = needs(CAMVID_SAMPLES)


def bundle_run(run_id: str, config_file: str, cwd: Path = REPO, **overrides) -> subprocess.CompletedProcess:
    """Run ``python -m monai.bundle run`` in a subprocess, as users do; fail with its output when it fails."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", config_file]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def tb_tags(tb_dir: Path, pattern: str = "events.out.tfevents.*") -> tuple[set[str], set[str]]:
    """The scalar and image tags of the TensorBoard events files in ``tb_dir`` (those matching ``pattern``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {"scalars": set(), "images": set()}
    for events in tb_dir.glob(pattern):
        acc = EventAccumulator(str(events), size_guidance={"images": 0})
        acc.Reload()
        for kind in tags:
            tags[kind] |= set(acc.Tags()[kind])
    return tags["scalars"], tags["images"]


@pytest.fixture(scope="session")
def msd_tiny(tmp_path_factory) -> Path:
    """A 6-case MSD Task01 dataset (plus 1 unlabelled case) with small, non-cubic, non-identity-affine volumes."""
    from monai_app.synthetic.brats import write_brats

    out = tmp_path_factory.mktemp("msd") / "Task01_BrainTumour"
    write_brats(out, cases=6, dataset_format="msd", seed=3, shape=(48, 44, 40), test_cases=1)
    return out
