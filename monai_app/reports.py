"""A run folder -> one visual report: ``report.html`` (self-contained) and ``report.md`` (+ ``report_files/``).

The report shows, in order: headline metrics, training and validation curves (from ``tb/``), the metric tables, a
per-case strip plot, the worst and best cases with their pictures (``eval/cases/``), the configuration and data
split, and the versions and hardware. Whatever the run lacks yet (curves, evaluation) is said in the page.
"""

from __future__ import annotations

import base64
import csv
import datetime
import html
import io
import json
import math
import os
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from monai_app.config import bundles_dir
from monai_app.errors import UserInputError
from monai_app.files import atomic_path, atomic_write_text
from monai_app.metrics.tables import STATS, summarise

NO_PICTURES = "No picture of this case: run evaluation again to get pictures (eval/cases/)."
CSS = """body{font:14px/1.45 system-ui,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;border-bottom:2px solid #36c}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}td,th{border:1px solid #ccc;padding:2px 7px}
th{background:#eef2f8}td.n{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even){background:#f7f7f7}
figure{display:inline-block;margin:.4em 1em .4em 0;vertical-align:top}figcaption{font-size:12px;color:#555}
img{max-width:min(100%,960px);border:1px solid #ddd}pre{background:#f5f5f5;padding:.6em;overflow-x:auto;font-size:12px}
.note{background:#fff6dd;border-left:4px solid #e0a800;padding:.4em .8em}"""


def _fmt(v) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e12 else f"{v:.4g}"


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _read_csv(path: Path) -> tuple[list[str], list[str], np.ndarray] | None:
    """``(columns, row names, float values)`` of a CSV whose first column names the rows; None if it is missing."""
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        header, *rows = list(csv.reader(f))

    def num(x: str) -> float:
        try:
            return float(x)
        except ValueError:
            return math.nan

    return header[1:], [r[0] for r in rows], np.array([[num(x) for x in r[1:]] for r in rows], float).reshape(
        len(rows), len(header) - 1)


def read_scalars(tb_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar tag of all TensorBoard event files in ``tb_dir`` merged by step: ``{tag: (steps, values)}``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    merged: dict[str, dict[int, float]] = {}
    for path in sorted(tb_dir.glob("events.out.tfevents.*")) if tb_dir.is_dir() else []:
        if path.stat().st_size == 0:
            continue
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 1, "tensors": 1})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            merged.setdefault(tag, {}).update({e.step: e.value for e in acc.Scalars(tag)})
    return {t: (np.array(sorted(d)), np.array([d[s] for s in sorted(d)])) for t, d in merged.items() if d}


def key_metric(columns: list[str], values: np.ndarray) -> tuple[str, np.ndarray]:
    """The metric cases are ranked by: ``miou``, else ``dice``, else the mean of the ``dice_*`` columns (BraTS)."""
    for name in ("miou", "dice"):
        if name in columns:
            return name, values[:, columns.index(name)]
    dice = [i for i, c in enumerate(columns) if c.startswith("dice_")]
    if dice:
        with np.errstate(all="ignore"):
            return "mean of " + "/".join(columns[i] for i in dice), np.nanmean(values[:, dice], axis=1)
    return columns[0], values[:, 0]


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buffer.getvalue()


def _curve_figures(scalars: dict) -> list[tuple]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = sorted((t for t in scalars if t.startswith("train/")), key=lambda t: t != "train/loss")
    val = [t for t in scalars if t not in train]
    overall = [t for t in val if not t.startswith(("val_iou_", "val_dice_"))] if len(val) > 8 else val
    groups = [("training", train, "epoch"),
              ("validation", overall, "epoch"), ("validation_per_class", [t for t in val if t not in overall], "epoch")]
    figures = []
    for name, tags, xlabel in groups:
        if not tags:
            continue
        fig, axes = plt.subplots(1, len(tags) if name == "training" else 1, figsize=(11, 3.4), squeeze=False)
        for i, tag in enumerate(tags):
            ax = axes[0, i if name == "training" else 0]
            steps, values = scalars[tag]
            ax.plot(steps, values, marker="." if len(steps) < 40 else None, label=tag)
            if tag == "train/lr" and (values > 0).all() and values.max() > 10 * values.min():
                ax.set_yscale("log")
            ax.set_title(tag if name == "training" else name.replace("_", " "))
            ax.set_xlabel("iteration" if tag == "train/loss" else xlabel if name == "training" else "epoch")
            ax.grid(alpha=0.3)
        if name != "training":
            axes[0, 0].legend(fontsize=7, ncol=max(1, len(tags) // 8), loc="center left", bbox_to_anchor=(1, 0.5))
        caption = f"{name.replace('_', ' ')} curves from tb/: {', '.join(tags)}"
        figures.append(("img", f"curves_{name}.png", _png(fig), caption))
    return figures


def _strip_figure(columns: list[str], values: np.ndarray, title: str, unit: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = [v[np.isfinite(v)] for v in values.T]
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.32 * len(columns)))
    ax.boxplot(data, orientation="horizontal", tick_labels=columns, showfliers=False, widths=0.6)
    rng = np.random.default_rng(0)
    for i, v in enumerate(data, start=1):
        ax.scatter(v, i + rng.uniform(-0.18, 0.18, v.size), s=12, alpha=0.6, color="tab:blue", zorder=3)
    ax.invert_yaxis()
    ax.set(title=title, xlabel=unit)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _bundle_name(run: Path, settings: dict) -> str:
    known = {p.name for p in bundles_dir().iterdir() if (p / "configs").is_dir()} if bundles_dir().is_dir() else set()
    words = [w for a in settings.get("argv", []) for w in str(a).replace("\\", "/").split("/")]
    return next((w for w in words if w in known), settings.get("bundle", "unknown bundle"))


def _header(run: Path, settings: dict, table, summary: dict) -> list[tuple]:
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    blocks = [("h1", f"Run report: {_bundle_name(run, settings)}"), ("p", f"Run folder: {run.resolve()}"),
              ("p", f"Report written {now}.")]
    if table is None:
        return blocks + [("note", "Evaluation is missing: there is no eval/per_case.csv yet. Run evaluation "
                                  "(monai-app evaluate BUNDLE --output-dir RUN_DIR) to get metrics and pictures.")]
    columns, cases, values = table
    name, key = key_metric(columns, values)
    rows = [[f"{name} (key metric)", _fmt(float(np.nanmean(key)) if np.isfinite(key).any() else None)]]
    rows += [[c, _fmt(summary[c]["mean"])] for c in columns if c in ("pixel_accuracy", "dice_model_size")
             or c.startswith("dice_") and len(columns) <= 8 or c.rsplit("_", 1)[-1] in ("wt", "tc", "et")
             and c.startswith(("dice_", "lesion_dice_", "lesion_hd95_"))]
    scores = _read_json(run / "eval" / "dataset_scores.json") or {}
    rows += [[f"{k} (dataset level, dataset_scores.json)", _fmt(scores[k])] for k in ("miou", "mean_dice")
             if k in scores]
    return blocks + [("h2", f"Headline metrics ({len(cases)} evaluated cases, mean per case)"),
                     ("table", ["metric", "value"], rows)]


def _metric_blocks(run: Path, table, summary: dict) -> list[tuple]:
    columns, cases, values = table
    blocks = [("h2", "Metrics per case column (NaN left out)"),
              ("table", ["metric", *STATS], [[c, *(_fmt(summary[c][s]) for s in STATS)] for c in columns])]
    classes = _read_csv(run / "eval" / "class_scores.csv")
    if classes is not None:
        blocks += [("h2", "Per-class scores over the whole evaluation set (class_scores.csv)"),
                   ("table", ["class", *classes[0]], [[n, *map(_fmt, r)] for n, r in zip(classes[1], classes[2])])]
    if (run / "eval" / "confusion_matrix.png").is_file():
        blocks.append(("img", "confusion_matrix.png", (run / "eval" / "confusion_matrix.png").read_bytes(),
                       "confusion matrix (eval/confusion_matrix.png)"))
    blocks.append(("h2", "Per-case scores"))
    distance = [i for i, c in enumerate(columns) if c.startswith(("hd", "lesion_hd"))]
    counts = [i for i, c in enumerate(columns) if c.startswith(("lesion_tp_", "lesion_fp_", "lesion_fn_"))]
    unit = [i for i in range(len(columns)) if i not in distance + counts]
    for idx, title, axis in ((unit, "overlap scores", "score (0-1)"), (distance, "surface distances", "mm"),
                             (counts, "lesions: true positives, false positives, missed", "lesions per case")):
        if idx:
            blocks.append(("img", f"per_case_{axis.split()[0]}.png",
                           _strip_figure([columns[i] for i in idx], values[:, idx], title, axis),
                           f"{title}: one point per case over a box plot"))
    return blocks


def _case_blocks(run: Path, table) -> list[tuple]:
    columns, cases, values = table
    name, key = key_metric(columns, values)
    order = [i for i in np.argsort(np.where(np.isfinite(key), key, np.inf), kind="stable") if np.isfinite(key[i])]
    n_worst = min(3, (len(order) + 1) // 2)
    blocks = [("h2", f"Worst and best cases by {name}"),
              ("p", "Pictures: image | reference | prediction" + ("; rows: axial, coronal and sagittal slices through "
                    "the tumour centre; edema green, core red, enhancing yellow." if "dice_wt" in columns else "."))]
    for title, picked in (("Worst", order[:n_worst]), ("Best", order[::-1][: min(3, len(order) - n_worst)])):
        blocks.append(("h3", f"{title} {len(picked)}"))
        for i in picked:
            caption = f"{cases[i]}: {name} {_fmt(float(key[i]))}"
            picture = run / "eval" / "cases" / f"{cases[i]}.png"
            blocks.append(("img", f"case_{cases[i]}.png", picture.read_bytes(), caption) if picture.is_file()
                          else ("note", f"{caption}. {NO_PICTURES}"))
    return blocks


def _postprocessing_blocks(run: Path) -> list[tuple]:
    """The post-processing ``monai-app postprocess`` chose (``postprocessing.json``): its rules and the validation
    scores before and after them."""
    record = _read_json(run / "postprocessing.json")
    if not isinstance(record, dict) or not record.get("table"):
        return []
    kinds = [k[: -len("_before")] for k in record["table"][0] if k.endswith("_before")]
    rows = [[r["region"], *(_fmt(r.get(f"{k}_{w}")) for k in kinds for w in ("before", "after"))]
            for r in record["table"]]
    return [("h2", "Post-processing chosen on validation cases (postprocessing.json)"),
            ("p", f"Rules: {record.get('description', json.dumps(record.get('rules')))}. Chosen to raise the "
                  f"{record.get('metric', 'score')} on {record.get('n_validation_cases', '?')} validation cases; "
                  "evaluation and inference apply it (postprocessing_rules: auto)."),
            ("table", ["region", *(f"{k} {w}" for k in kinds for w in ("before", "after"))], rows)]


def _config_blocks(run: Path, settings: dict) -> list[tuple]:
    show = lambda v: v if isinstance(v, str) else " ".join(map(str, v)) if isinstance(v, list) and all(
        isinstance(x, str) for x in v) else json.dumps(v)
    blocks = [("h2", "Configuration"), ("h3", "Training (settings.json)")]
    blocks += [("table", ["setting", "value"], [[k, show(v)] for k, v in settings.items()], False)] if settings else [
        ("note", "settings.json is missing.")]
    evaluation = _read_json(run / "eval" / "settings.json")
    if evaluation is not None:
        diff = [[k, show(v)] for k, v in evaluation.items() if settings.get(k) != v]
        blocks += [("h3", "Evaluation (eval/settings.json): settings that differ from training"),
                   ("table", ["setting", "value"], diff, False)]
    split = _read_json(run / "split.json")
    blocks.append(("h2", "Data split (split.json)"))
    if split is None:
        return blocks + [("note", "split.json is missing.")]
    parts = {k: v for k, v in split.items() if isinstance(v, list)}
    blocks.append(("table", ["split", "cases"], [[k, str(len(v))] for k, v in parts.items()]))
    return blocks + [("details", f"case ids of the {k} split", ", ".join(map(str, v))) for k, v in parts.items()]


def _environment_blocks(settings: dict) -> list[tuple]:
    import torch

    trained = settings.get("versions", {})
    packages = {"python": None, "torch": "torch", "monai": "monai", "ignite": "pytorch-ignite", "numpy": "numpy",
                "nibabel": "nibabel", "SimpleITK": "SimpleITK"}
    version = lambda p: platform.python_version() if p is None else metadata.version(p)
    rows = [[k, version(p), str(trained.get(k, ""))] for k, p in packages.items()]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU only)"
    rows += [["platform", platform.platform(), ""], ["CPU count", str(os.cpu_count()), ""],
             ["CUDA device", gpu, str((settings.get("hardware") or {}).get("gpu") or "")]]
    return [("h2", "Versions and hardware"), ("table", ["", "this report", "training (settings.json)"], rows, False)]


def _html(blocks: list[tuple]) -> str:
    out = []
    for kind, *a in blocks:
        if kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in a[0])
            num = _num if len(a) < 3 or a[2] else lambda c: ""
            body = "".join("<tr>" + "".join(f"<td{num(c)}>{html.escape(c)}</td>" for c in r) + "</tr>" for r in a[1])
            out.append(f"<table><tr>{head}</tr>{body}</table>")
        elif kind == "img":
            data = base64.b64encode(a[1]).decode()
            out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(a[2])}">'
                       f"<figcaption>{html.escape(a[2])}</figcaption></figure>")
        elif kind == "details":
            out.append(f"<details><summary>{html.escape(a[0])}</summary><pre>{html.escape(a[1])}</pre></details>")
        else:
            tag, cls = ("p", ' class="note"') if kind == "note" else (kind, "")
            out.append(f"<{tag}{cls}>{html.escape(a[0])}</{tag}>")
    title = html.escape(blocks[0][1])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")


def _num(cell: str) -> str:
    """The class of a table cell holding a number (right-aligned)."""
    try:
        float(cell)
        return ' class="n"'
    except ValueError:
        return ' class="n"' if cell == "n/a" else ""


def _markdown(blocks: list[tuple], files: Path) -> str:
    out, cell = [], lambda c: c.replace("|", "\\|").replace("\n", " ")
    for kind, *a in blocks:
        if kind == "table":
            out.append("\n".join("| " + " | ".join(map(cell, r)) + " |" for r in [a[0], ["---"] * len(a[0]), *a[1]]))
        elif kind == "img":
            with atomic_path(files / a[0]) as tmp:
                tmp.write_bytes(a[1])
            out.append(f"![{a[2]}]({files.name}/{a[0]})")
        elif kind == "details":
            out.append(f"<details><summary>{html.escape(a[0])}</summary>\n\n{a[1]}\n\n</details>")
        else:
            out.append({"h1": "# ", "h2": "## ", "h3": "### ", "note": "> **Note:** "}.get(kind, "") + a[0])
    return "\n\n".join(out) + "\n"


def write_report(run_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``run_dir/report.html`` and ``run_dir/report.md`` (pictures in ``run_dir/report_files/``).

    Raises:
        UserInputError: ``run_dir`` is not a run folder (no settings.json, eval/ or tb/).
    """
    run = Path(run_dir)
    if not any((run / p).exists() for p in ("settings.json", "eval", "tb")):
        raise UserInputError(f"{run}: not a run folder (no settings.json, eval/ or tb/ in it)")
    settings = _read_json(run / "settings.json") or {}
    table = _read_csv(run / "eval" / "per_case.csv")
    table = table if table is not None and table[0] and len(table[1]) else None
    # the statistics evaluation wrote to summary.json, from the same per-case values
    summary = summarise([dict(zip(table[0], map(float, row))) for row in table[2]], table[0]) if table else {}
    blocks = _header(run, settings, table, summary) + [("h2", "Training and validation curves")]
    scalars = read_scalars(run / "tb")
    blocks += _curve_figures(scalars) if scalars else [("note", "No training curves: tb/ has no scalar events.")]
    blocks += _postprocessing_blocks(run)
    if table is not None:
        blocks += _metric_blocks(run, table, summary) + _case_blocks(run, table)
    blocks += _config_blocks(run, settings) + _environment_blocks(settings)
    files = run / "report_files"
    files.mkdir(exist_ok=True)
    written = {b[1] for b in blocks if b[0] == "img"}
    for stale in files.glob("*.png"):
        if stale.name not in written:
            stale.unlink()
    atomic_write_text(run / "report.md", _markdown(blocks, files))
    atomic_write_text(run / "report.html", _html(blocks))
    return run / "report.html", run / "report.md"
