"""Running a bundle: a MONAI ``ConfigWorkflow`` for one of its runs (training, evaluating, inference), with the
metadata, logging file and bundle root passed explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from monai_app.config import bundle_path
from monai_app.errors import UserInputError

RUN_FILES = {"training": ["train.json"], "evaluating": ["train.json", "evaluate.json"], "inference": ["inference.json"]}


WORKFLOW_TYPES = {"training": "train", "evaluating": "train", "inference": "infer"}


def make_workflow(bundle: str | os.PathLike, run_id: str, overrides: Mapping[str, Any] | None = None):
    """A MONAI ``ConfigWorkflow`` for one of ``training``, ``evaluating``, ``inference`` of a bundle.

    The metadata, logging file and bundle root are passed explicitly: with several config files MONAI would
    otherwise look for them beside the first file only.
    """
    from monai.bundle import ConfigWorkflow

    if run_id not in RUN_FILES:
        raise UserInputError(f"unknown run {run_id!r}; choose one of {sorted(RUN_FILES)}")
    root = bundle_path(bundle)
    configs = [str(root / "configs" / f) for f in RUN_FILES[run_id]]
    overrides = dict(overrides or {})
    if overrides.get("tracking") and "save_execute_config" not in overrides and overrides.get("output_dir"):
        # MONAI 1.6.1 builds its default artifact path by appending to output_dir's text, which only works when that
        # is a `$` expression; name the file so the executed config is logged as an artifact
        overrides["save_execute_config"] = os.path.join(str(overrides["output_dir"]), f"{run_id}_config.json")
    return ConfigWorkflow(
        config_file=configs if len(configs) > 1 else configs[0], meta_file=str(root / "configs" / "metadata.json"),
        logging_file=str(root / "configs" / "logging.conf"), workflow_type=WORKFLOW_TYPES[run_id], run_id=run_id,
        **{"bundle_root": str(root), **overrides},
    )


def run_bundle(bundle: str | os.PathLike, run_id: str, overrides: Mapping[str, Any] | None = None):
    """Initialise, run and finalise a bundle workflow; returns the workflow (its ``parser`` holds the settings)."""
    workflow = make_workflow(bundle, run_id, overrides)
    workflow.initialize()
    try:
        workflow.run()
    finally:
        workflow.finalize()
    return workflow

