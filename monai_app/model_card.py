"""The model card of a packaged run (``docs/README.md`` of ``monai-app package``): what a run folder records, read
once, and the card written from it in the section names of the bundles' own cards (the MONAI Model Zoo template).

:func:`read_run` reads a run folder (``settings.json``, ``split.json``, ``eval/summary.json``, the best-metric and
epoch count in ``models/last.pt``, training time from the TensorBoard events) and refuses, in one line naming the
folder, a run without an evaluation or a best checkpoint. :func:`model_card` writes the card: the bundle card's
overview, references and licence kept, the data, training, performance, system and limitation sections filled from
the run.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monai_app.engine.checkpoints import BEST, LAST, read_checkpoint
from monai_app.errors import UserInputError

KEPT = ("Model Overview", "References", "License")  # sections of the bundle's card copied as they are
NOT_SETTINGS = ("argv", "versions", "hardware", "dataset_dir", "output_dir", "cache_dir")  # paths and provenance


@dataclass
class RunRecord:
    """What a run folder records, as the package and its card use it."""

    path: Path
    ckpt: Path
    settings: dict
    summary: dict
    split: dict = field(default_factory=dict)
    eval_settings: dict = field(default_factory=dict)
    best: dict | None = None  # {"value", "epoch"} of the validation key metric (last.pt)
    epochs: int | None = None  # epochs trained (last.pt)
    training_seconds: float | None = None


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserInputError(f"{path}: not valid JSON or unreadable ({exc})") from exc


def _training_seconds(tb_dir: Path) -> float | None:
    """Wall time of training from the TensorBoard event files: first to last event of each, summed (a resumed run
    writes one file per session)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    total = None
    for path in sorted(tb_dir.glob("events.out.tfevents.*")) if tb_dir.is_dir() else []:
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 1, "tensors": 1})
        acc.Reload()
        times = [e.wall_time for tag in acc.Tags().get("scalars", []) for e in acc.Scalars(tag)]
        if times:
            total = (total or 0.0) + max(times) - min(times)
    return total


def _last_state(path: Path) -> tuple[dict | None, int | None]:
    """The best validation metric and the epochs trained, as ``last.pt`` keeps them (None where it does not)."""
    if not path.is_file():
        return None, None
    state = read_checkpoint(path)
    trainer = state.get("trainer", {}) if isinstance(state, dict) else {}
    length = int(trainer.get("epoch_length") or 0)
    best = state.get("best_metric") if isinstance(state, dict) else None
    return (best if best and best.get("epoch") else None), (int(trainer.get("iteration", 0)) // length
                                                             if length else None)


def read_run(run_dir: str | os.PathLike, ckpt: str | os.PathLike | None = None) -> RunRecord:
    """The record of a finished run: trained (``settings.json``, a best checkpoint) and evaluated
    (``eval/summary.json``).

    Args:
        run_dir: the run folder (``output_dir`` of training and evaluation).
        ckpt: the checkpoint to package instead of ``run_dir/models/model.pt`` (e.g. ``models/last.pt``).

    Raises:
        UserInputError: one line naming the folder and every file it lacks, and how to make them.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise UserInputError(f"{run}: run folder does not exist")
    weights = Path(ckpt) if ckpt else run / "models" / BEST
    needed = [("training settings (settings.json)", run / "settings.json", "train with `monai-app train`"),
              ("evaluation (eval/summary.json)", run / "eval" / "summary.json",
               f"evaluate first: `monai-app evaluate BUNDLE --dataset-dir DATA --output-dir {run}`"),
              (f"best checkpoint ({weights if ckpt else 'models/' + BEST})", weights,
               "training writes it at its first validation" + ("" if ckpt else "; or pass --ckpt " +
                                                                 str(run / "models" / LAST)))]
    missing = [(what, fix) for what, path, fix in needed if not path.is_file()]
    if missing:
        raise UserInputError(f"{run}: cannot be packaged: no {', no '.join(w for w, _ in missing)} "
                             f"({'; '.join(f for _, f in missing)})")
    best, epochs = _last_state(run / "models" / LAST)
    optional = {name: _json(run / name) if (run / name).is_file() else {} for name in ("split.json",
                                                                                      "eval/settings.json")}
    return RunRecord(path=run, ckpt=weights, settings=_json(run / "settings.json"),
                     summary=_json(run / "eval" / "summary.json"), split=optional["split.json"],
                     eval_settings=optional["eval/settings.json"], best=best, epochs=epochs,
                     training_seconds=_training_seconds(run / "tb"))


def metric_means(summary: dict) -> dict[str, float]:
    """The mean of each column of ``summary.json`` that has one (rounded to 4 decimals)."""
    return {name: round(float(stats["mean"]), 4) for name, stats in summary.items()
            if isinstance(stats, dict) and isinstance(stats.get("mean"), (int, float)) and math.isfinite(stats["mean"])}


def headline(summary: dict) -> tuple[str, float] | None:
    """The run's key score: ``miou``, else ``dice``, else the mean of the ``dice_*`` columns (BraTS regions)."""
    means = metric_means(summary)
    for name in ("miou", "dice"):
        if name in means:
            return name, means[name]
    regions = [v for k, v in means.items() if re.fullmatch(r"dice_[a-z]+", k)]
    return ("mean Dice of " + "/".join(k[5:].upper() for k in means if re.fullmatch(r"dice_[a-z]+", k)),
            round(sum(regions) / len(regions), 4)) if regions else None


# ------------------------------------------------------------------------------------------------ the card
def _sections(card: str) -> tuple[str, dict[str, str]]:
    """The text before the first ``## `` heading and each ``## `` section by name (code blocks are not split)."""
    head, sections, name, fenced = [], {}, None, False
    for line in card.splitlines():
        fenced ^= line.startswith("```")
        if line.startswith("## ") and not fenced:
            name = line[3:].strip().strip("*")
            sections[name] = []
        (sections[name] if name else head).append(line)
    return "\n".join(head).strip(), {k: "\n".join(v[1:]).strip() for k, v in sections.items()}


def _unlink_repository(text: str) -> str:
    """Links into the repository (``../../...``) as plain text: the package holds no such files."""
    return re.sub(r"\[([^\]]+)\]\((?:\.\./){2,}[^)]*\)", r"\1", text)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(_value(c) for c in row) + " |" for row in rows])


def _data(meta: dict, run: RunRecord) -> str:
    s, parts = run.settings, {k: v for k, v in run.split.items() if isinstance(v, list)}
    where = f"`{Path(str(s.get('dataset_dir', '?'))).name}`" + (
        f" (format `{s['dataset_format']}`)" if s.get("dataset_format") else "")
    split = (f"The run's split (`split.json`, seed {run.split.get('seed', s.get('seed', '?'))}), ids per part (a "
             "case, a photo, or for Carvana a car with all its views):\n\n" +
             _table(["part", "ids"], [[k, len(v)] for k, v in parts.items()])) if parts else \
        "The run folder has no `split.json`; the split is not recorded here."
    evaluated = max((v.get("n", 0) for v in run.summary.values() if isinstance(v, dict)), default=0)
    layouts = "\n".join(f"- {layout}" for layout in meta.get("data_layouts", []))
    return (f"Source: {meta.get('data_source', 'not stated')}. Terms: [`data_license.txt`](data_license.txt).\n\n"
            f"These weights were trained on the dataset folder {where}.\n\n{split}\n\nThe held-out evaluation "
            f"scored the `{run.eval_settings.get('eval_split', 'test')}` part: {evaluated} case(s) or image(s)."
            + (f"\n\nLayouts the bundle reads:\n{layouts}" if layouts else ""))


def _training(run: RunRecord, carried: dict) -> str:
    # a file of the packaging machine (e.g. ccp's grouping_file) by its name: its folder means nothing to the receiver
    shown = lambda v: Path(v).name if isinstance(v, str) and os.path.isabs(v) else v
    rows = [[k, shown(v)] for k, v in run.settings.items() if k not in NOT_SETTINGS]
    lines = ["The run's settings (`settings.json` of the run):", "", _table(["key", "value"], rows), ""]
    if run.epochs is not None:
        lines.append(f"- Epochs trained: {run.epochs} (`models/last.pt`).")
    if run.best:
        lines.append(f"- Best validation key metric: {run.best['value']:.4f} at epoch {run.best['epoch']}; those "
                     "weights are `models/model.pt`.")
    if run.training_seconds is not None:
        lines.append(f"- Training time: {run.training_seconds / 60:.1f} min (TensorBoard event times).")
    if carried:
        lines.append("- The packaged configs carry the run's settings: " +
                     ", ".join(f"`{k}` {_value(v)}" for k, v in carried.items()) + ".")
    return "\n".join(lines)


def _performance(run: RunRecord, exports: dict) -> str:
    rows = [[name, *[stats.get(k) if stats.get(k) is not None else "n/a" for k in
                     ("mean", "median", "std", "min", "max", "n")]]
            for name, stats in run.summary.items() if isinstance(stats, dict)]
    text = (f"Held-out evaluation of `models/model.pt` on the `{run.eval_settings.get('eval_split', 'test')}` part "
            "(`eval/summary.json` of the run; `n` counts the cases with a value; `configs/metadata.json`'s "
            "`eval_metrics` holds the means):\n\n" + _table(["metric", "mean", "median", "std", "min", "max", "n"],
                                                           rows))
    checked = [f"{fmt} {e['max_abs_diff']:.2g}" for fmt, e in exports.get("exports", {}).items()]
    if checked:
        shape = "x".join(map(str, exports["input_shape"]))
        text += (f"\n\nThe exports were run on a random input of shape {shape} and compared with PyTorch: largest "
                 f"absolute difference {', '.join(checked)}.")
    return text


def _system(run: RunRecord, meta: dict) -> str:
    hw, v = run.settings.get("hardware", {}), run.settings.get("versions", {})
    gpu = hw.get("gpu") if hw.get("cuda") else "none (CUDA not available)"
    return (f"- Trained on: CPU {hw.get('cpu', 'not recorded')}, GPU {gpu}.\n"
            f"- Training software: Python {v.get('python', '?')}, MONAI {v.get('monai', '?')}, PyTorch "
            f"{v.get('torch', '?')}, monai-app {v.get('monai_app', '?')} (`settings.json`).\n"
            f"- Packaged and checked with MONAI {meta['monai_version']}, PyTorch {meta['pytorch_version']}, NumPy "
            f"{meta['numpy_version']}; `configs/metadata.json` lists the exact versions of every package it needs.")


def _commands(meta: dict) -> str:
    app = meta["required_packages_version"].get("monai-app", "VERSION")
    pins = " ".join(f'"{k}=={v}"' for k, v in meta["required_packages_version"].items() if k != "monai-app")
    return f"""The configs use the `monai-app` package (`$import monai_app...`), which is not on PyPI: install it
from the wheel that comes with this bundle or from the URL its publisher gives (the wheel is built from the
monai-app source with `python -m build`), after PyTorch, then, to match the versions this bundle was checked with,
the packages `metadata.json` lists:

```bash
pip install torch=={meta['pytorch_version']}
pip install monai_app-{app}-py3-none-any.whl
pip install "monai=={meta['monai_version']}" {pins}
```

From this folder (or from anywhere: the bundle root follows the `--config_file` path):

```bash
# segment a file or a folder with the trained weights (models/model.pt)
python -m monai.bundle run inference --config_file configs/inference.json --input INPUT --output_dir predictions
# the same with the TorchScript file
python -m monai.bundle run inference --config_file configs/inference.json --input INPUT --output_dir predictions \\
    --torchscript_path models/model.ts
# train again with this run's settings (configs/train.json carries them)
python -m monai.bundle run training --config_file configs/train.json --dataset_dir DATA --output_dir runs/new
```

From Python: `monai.bundle.create_workflow(config_file="configs/inference.json", workflow_type="infer",
bundle_root=".", input=INPUT, output_dir="predictions")`, then `.initialize()` and `.run()`."""


def _limitations(sections: dict, meta: dict, run: RunRecord) -> str:
    kept = [b for b in re.split(r"\n(?=- )", sections.get("Limitations", "")) if b.startswith("- ")
            and "trained weights are distributed" not in b.replace("\n", " ").lower()]
    evaluated = max((v.get("n", 0) for v in run.summary.values() if isinstance(v, dict)), default=0)
    own = [f"- {meta.get('intended_use', 'Research only. Not for clinical use.')}",
           (f"- The scores above come from one run, evaluated on {evaluated} held-out case(s) of one dataset folder; "
            "other data (other scanners, sites, cameras or protocols) may score differently."),
           ("- The weights only fit the network settings the configs carry (see Training configuration); other "
            "values of those keys cannot load them."),
           ("- The weights were learnt from data under the terms in [`data_license.txt`](data_license.txt); check "
            "that those terms allow sharing trained weights before publishing this bundle.")]
    return "\n".join(own + [b for b in kept if "research use only" not in b.lower()])


def model_card(source_card: str, meta: dict, run: RunRecord, exports: dict, carried: dict) -> str:
    """The packaged bundle's ``docs/README.md``.

    Args:
        source_card: the bundle's own ``docs/README.md`` (its title, authors, tags, overview, references and
            licence are kept).
        meta: the packaged ``metadata.json``.
        run: the run's record (:func:`read_run`).
        exports: what :func:`monai_app.export.export_bundle` returned for the packaged exports.
        carried: the run's settings written into the packaged configs.
    """
    head, sections = _sections(source_card)
    title, _, rest = head.partition("\n")
    score = headline(run.summary)
    intro = (f"Version {meta['version']}: trained weights of the run folder `{run.path.resolve().name}`" +
             (f", held-out {score[0]} {score[1]:.4f}" if score else "") + ".")
    blocks = [title, intro, rest, "## Model Overview", sections.get("Model Overview", ""),
              "## Data", _data(meta, run), "## Training configuration", _training(run, carried),
              "## Performance", _performance(run, exports), "## System Configuration", _system(run, meta),
              "## MONAI Bundle Commands", _commands(meta), "## Limitations", _limitations(sections, meta, run),
              "## References", sections.get("References", ""), "## License", sections.get("License", "")]
    text = _unlink_repository("\n\n".join(block.strip() for block in blocks if block.strip()))
    return "\n".join(line.rstrip() for line in text.splitlines()).strip() + "\n"
