"""``monai-app postprocess``: choose lesion post-processing on a run's validation cases and save it as
``<run>/postprocessing.json``, which evaluation and inference then apply (``postprocessing_rules: auto``).

The bundle's own evaluation config runs on the validation split, with any saved rules off and its tables in a
temporary folder (a normal evaluation's ``eval/`` is left as it is); :class:`CaseCollector` keeps each case's
binarised region masks, reference and voxel size, and :func:`monai_app.metrics.postprocessing.search_postprocessing`
chooses the rules.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai_app.config import POSTPROCESSING_FILE
from monai_app.datasets.splits import FOLDS_FILE, SPLIT_FILE
from monai_app.errors import UserInputError
from monai_app.files import atomic_write_text
from monai_app.metrics.brats import image_spacing
from monai_app.metrics.postprocessing import crop_case, describe_rules, search_postprocessing
from monai_app.workflow import make_workflow

logger = logging.getLogger(__name__)

MIN_CASES = 2
FEW_CASES = 10  # below this, a warning: post-processing chosen on a handful of cases tends to fit them only


class CaseCollector:
    """An evaluator handler keeping every case as ``(pred, ref, spacing, case_id)``: bool WT / TC / ET masks of the
    prediction after the evaluation's post-processing and of the reference, cut to their labelled box."""

    def __init__(self, pred_key: str = "pred", label_key: str = "label", case_key: str = "case_id") -> None:
        self.pred_key, self.label_key, self.case_key = pred_key, label_key, case_key
        self.cases: list[tuple] = []

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine) -> None:
        outputs, batch = engine.state.output, engine.state.batch
        outputs = outputs if isinstance(outputs, list) else [outputs]
        batch = batch if isinstance(batch, list) else [batch] * len(outputs)
        for item, source in zip(outputs, batch):
            pred, ref = item[self.pred_key], item[self.label_key]
            spacing = image_spacing(pred)
            case_id = source.get(self.case_key) if isinstance(source, Mapping) else None
            masks = crop_case(pred[:3].detach().cpu().numpy(), ref[:3].detach().cpu().numpy())
            self.cases.append((*masks, spacing, str(case_id or f"case_{len(self.cases):04d}")))


def fold_runs(run: Path) -> list[Path]:
    """The fold runs of a folds root (``fold_<f>/`` folders with a split, next to ``folds.json``), else ``[run]``."""
    if (run / SPLIT_FILE).is_file() or not (run / FOLDS_FILE).is_file():
        return [run]
    folds = sorted((p for p in run.glob("fold_*") if (p / SPLIT_FILE).is_file()), key=lambda p: p.name)
    if not folds:
        raise UserInputError(f"{run}: a folds folder (it holds {FOLDS_FILE}) with no trained fold_<f>/ run in it")
    return folds


def _collect(bundle: str | os.PathLike, overrides: Mapping[str, Any], run: Path, collector: CaseCollector) -> str:
    """Evaluate ``run``'s best checkpoint on its validation split, without rules, into ``collector``; returns the
    checkpoint."""
    with tempfile.TemporaryDirectory(prefix=".postprocess_eval_", dir=run) as tmp:
        workflow = make_workflow(bundle, "evaluating", {**overrides, "output_dir": str(run), "eval_split": "validation",
                                                        "postprocessing_rules": "none", "eval_dir": tmp})
        workflow.initialize()
        try:
            parser = workflow.parser
            n = len(parser.get_parsed_content("validate#dataset#data"))
            if n < MIN_CASES:
                raise UserInputError(f"{run / SPLIT_FILE}: the validation split has {n} case(s); choosing "
                                     f"post-processing needs at least {MIN_CASES} (train with a larger --val_fraction)")
            collector.attach(parser.get_parsed_content("evaluator"))
            workflow.run()
            return str(parser.get_parsed_content("ckpt_path"))
        finally:
            workflow.finalize()


def run_postprocess(bundle: str | os.PathLike, overrides: Mapping[str, Any], scoring: str = "brats2023") -> dict:
    """Choose the post-processing of a run on its validation cases and write ``<output_dir>/postprocessing.json``.

    For a folds root (``monai-app train --folds``), every fold's best checkpoint segments its own validation fold and
    the rules are chosen on all of them together (out-of-fold predictions, as nnU-Net does); they are written to the
    root, where an ensemble of the folds (``--ckpt ROOT``) and the root's evaluation find them.

    Args:
        bundle: the bundle (``brats_unet3d``).
        overrides: the evaluation's config overrides; ``output_dir`` (the run folder or folds root) is required.
        scoring: the convention scored (``brats2023``: the 2023 lesion-wise Dice).

    Returns:
        The record written.

    Raises:
        UserInputError: no run folder, or fewer than 2 validation cases.
    """
    run = Path(str(overrides.get("output_dir") or ""))
    if not overrides.get("output_dir") or not run.is_dir():
        raise UserInputError(f"{run}: no run folder (pass --output-dir, the folder `monai-app train` wrote)")
    collector = CaseCollector()
    runs = fold_runs(run)
    ckpts = [_collect(bundle, overrides, r, collector) for r in runs]
    logger.info("searching post-processing rules on %d validation case(s)", len(collector.cases))
    if len(collector.cases) < FEW_CASES:
        logger.warning("%d validation cases are few to choose post-processing on: rules that fit them may not fit "
                       "other cases (BENCHMARKS.md §6); `monai-app train --folds all` and `monai-app postprocess` on "
                       "the folds folder choose them on every training case, out of fold", len(collector.cases))
    result = search_postprocessing(collector.cases, scoring=scoring, progress=logger.info)
    record = {"rules": result["rules"], "description": describe_rules(result["rules"]), "metric": result["metric"],
              "scoring": scoring, "n_validation_cases": result["n_cases"],
              "validation_cases": [c[3] for c in collector.cases], "checkpoint": ckpts[0] if len(ckpts) == 1 else ckpts,
              "score_before": result["before"], "score_after": result["after"], "table": result["table"],
              "candidates": result["candidates"]}
    atomic_write_text(run / POSTPROCESSING_FILE, json.dumps(record, indent=1) + "\n")
    if (run / "settings.json").is_file() or (run / "eval").is_dir():
        from monai_app.reports import write_report

        write_report(run)
    return record
