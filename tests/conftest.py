"""Shared fixtures: small synthetic datasets written once per test session with the real writers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"
BRATS_BUNDLE = REPO / "bundles" / "brats_unet3d"

torch.set_num_threads(max(1, torch.get_num_threads()))


@pytest.fixture(scope="session")
def msd_tiny(tmp_path_factory) -> Path:
    """A 6-case MSD Task01 dataset (plus 1 unlabelled case) with small, non-cubic, non-identity-affine volumes."""
    from monai_app.datasets.brats_synth import write_brats

    out = tmp_path_factory.mktemp("msd") / "Task01_BrainTumour"
    write_brats(out, cases=6, dataset_format="msd", seed=3, shape=(48, 44, 40), test_cases=1)
    return out
