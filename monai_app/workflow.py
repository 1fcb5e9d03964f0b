"""Running a bundle: a MONAI ``ConfigWorkflow`` for one of its runs (training, evaluating, inference), with the
metadata, logging file and bundle root passed explicitly."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_app.config import bundle_path
from monai_app.errors import TrainingStopped, UserInputError, message, user_error

logger = logging.getLogger(__name__)

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



def fold_numbers(bundle: str | os.PathLike, folds: Sequence[str | int], num_folds: Any = None,
                 option: str = "--folds") -> list[int]:
    """The folds ``--folds`` names: ``all`` (0 to ``num_folds`` - 1, the bundle's ``num_folds`` by default) or
    numbers, in the order given and without repeats.

    Raises:
        UserInputError: the bundle has no folds (no ``num_folds`` key), or a fold is no number from 0 to
            ``num_folds`` - 1.
    """
    from monai.bundle import ConfigParser

    default = ConfigParser.load_config_file(str(bundle_path(bundle) / "configs" / RUN_FILES["training"][0]))
    if "num_folds" not in default:
        raise UserInputError(f"{option}: bundle {Path(str(bundle)).name} has no cross-validation folds (only "
                             "brats_unet3d has)")
    try:
        count = int(str(default["num_folds"] if num_folds is None else num_folds))
        names = [str(f).strip().lower() for f in folds]
        chosen = list(range(count)) if names == ["all"] else [int(f) for f in names]
    except ValueError:
        raise UserInputError(f"{option} {' '.join(map(str, folds))}: give 'all' or fold numbers such as 0 2") from None
    bad = [f for f in chosen if not 0 <= f < count]
    if bad or not chosen:
        raise UserInputError(f"{option} {' '.join(map(str, folds))}: folds go from 0 to {count - 1} (num_folds is "
                             f"{count})")
    return list(dict.fromkeys(chosen))


def fold_dir(output_dir: str | os.PathLike, fold: int) -> str:
    """The run folder of fold ``fold`` under a folds root: ``<output_dir>/fold_<fold>``."""
    return os.path.join(str(output_dir), f"fold_{fold}")


def run_folds(bundle: str | os.PathLike, run_id: str, overrides: Mapping[str, Any], folds: Sequence[int]) -> list:
    """Run ``run_id`` (``training`` or ``evaluating``) for each fold, one after another, each in
    ``<output_dir>/fold_<f>`` with ``fold`` set; each resumes as any run does (a finished fold is not retrained).
    Returns the workflows.

    Raises:
        UserInputError: no ``output_dir``; or a fold failed on a user mistake (the message names the fold and its
            folder, and the later folds are not run).
        TrainingStopped: a fold's training stopped (a signal, a NaN loss), named the same way.
    """
    root = overrides.get("output_dir")
    if not root:
        raise UserInputError("--folds: pass --output-dir, the folder that holds the fold runs (fold_0, fold_1, ...)")
    workflows = []
    for number, fold in enumerate(folds, 1):
        out = fold_dir(root, fold)
        logger.info("fold %d (%d of %d): %s", fold, number, len(folds), out)
        try:
            workflows.append(run_bundle(bundle, run_id, {**overrides, "fold": fold, "output_dir": out}))
        except Exception as exc:
            problem = user_error(exc)
            if problem is None:
                logger.error("fold %d (%s) failed; the later folds were not run", fold, out)
                raise
            kind = TrainingStopped if isinstance(problem, TrainingStopped) else UserInputError
            raise kind(f"fold {fold} ({out}): {message(problem)}") from exc
    return workflows
