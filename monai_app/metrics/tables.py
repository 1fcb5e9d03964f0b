"""Per-case metric tables: ``per_case.csv`` (one row per case) and ``summary.json`` (statistics per column).

These are the ``eval/`` outputs of the bundle contract (see ``docs/ARCHITECTURE.md``); every scorer writes them here.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import numbers
import os
from pathlib import Path

import numpy as np

from monai_app.files import atomic_write_text

logger = logging.getLogger(__name__)

STATS = ("mean", "median", "std", "min", "max", "n")


def _as_float(value: object) -> float:
    """``value`` as a float; NaN for a missing or non-numeric value."""
    if isinstance(value, numbers.Real):
        return float(value)
    return math.nan


def summarise(rows: list[dict], columns: list[str]) -> dict:
    """Statistics of each column over the rows, ignoring NaN (and infinite) values.

    Args:
        rows: one dict per case.
        columns: the keys to summarise.

    Returns:
        ``{column: {"mean", "median", "std", "min", "max", "n"}}`` where ``std`` is the population standard
        deviation (ddof=0) and ``n`` the number of finite values; the statistics are ``None`` when ``n`` is 0
        (JSON has no NaN).
    """
    summary = {}
    for column in columns:
        values = np.array([_as_float(row.get(column)) for row in rows], dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            summary[column] = {**{k: None for k in STATS[:-1]}, "n": 0}
            continue
        summary[column] = {
            "mean": float(np.mean(values)),
            "median": float(np.median(values)),
            "std": float(np.std(values, ddof=0)),
            "min": float(np.min(values)),
            "max": float(np.max(values)),
            "n": int(values.size),
        }
    return summary


def _cell(value: object) -> str:
    """A CSV cell: floats with 6 significant digits (NaN as ``nan``), anything else as ``str``."""
    if value is None:
        return "nan"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(value)


def write_metric_tables(rows: list[dict], out_dir: str | os.PathLike, columns: list[str] | None = None) -> dict:
    """Write ``out_dir/per_case.csv`` and ``out_dir/summary.json`` atomically.

    Args:
        rows: one dict per case, each with a ``case_id`` key and one value per metric column.
        out_dir: folder to write into (created if missing).
        columns: metric columns in output order; defaults to the keys of the first row except ``case_id``.

    Returns:
        The summary, as written to ``summary.json`` (see :func:`summarise`).

    Raises:
        ValueError: a row has no ``case_id``.
    """
    out = Path(out_dir)
    if columns is None:
        columns = [k for k in rows[0] if k != "case_id"] if rows else []
    if any("case_id" not in row for row in rows):
        raise ValueError("every metric row needs a 'case_id'")
    ordered = sorted(rows, key=lambda r: str(r["case_id"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["case_id", *columns])
    for row in ordered:
        writer.writerow([str(row["case_id"]), *(_cell(row.get(c, math.nan)) for c in columns)])
    summary = summarise(ordered, columns)
    atomic_write_text(out / "per_case.csv", buffer.getvalue())
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    logger.info("wrote %s and %s (%d cases)", out / "per_case.csv", out / "summary.json", len(ordered))
    return summary
