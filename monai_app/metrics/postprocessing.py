"""Lesion post-processing of BraTS region masks, chosen on validation cases (nnU-Net's ``determine_postprocessing``,
BraTS style).

- :func:`apply_postprocessing`: remove lesions (26-connected components) below a minimum volume per region, and
  relabel enhancing tumour as non-enhancing core when a case's whole predicted ET volume is below a threshold (what
  several BraTS winners did against false ET in cases without enhancing tumour).
- :func:`search_postprocessing`: greedy search of those rules on validation predictions; a candidate is kept only
  if it raises the mean lesion-wise Dice over WT, TC and ET.
- :func:`load_rules` / :func:`check_rules`: a ``postprocessing.json`` read and checked, with one-line errors.

Region channels are WT, TC, ET (a fourth, the resection cavity, is left as it is). Volumes are in mm^3.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from monai_app.errors import UserInputError
from monai_app.metrics.brats import SCORERS, check_scoring, rule_options
from monai_app.metrics.lesions import crop_box, lesions

logger = logging.getLogger(__name__)

REGION_NAMES = ("wt", "tc", "et")
SIZE_CANDIDATES = (0, 10, 25, 50, 100, 250, 500, 1000)
"""Minimum lesion volumes (mm^3) the search tries per region."""
ET_CANDIDATES = (0, 50, 100, 250, 500, 1000, 2000)
"""ET-to-NETC thresholds (mm^3) the search tries."""
CROP_MARGIN = 5
"""Voxels kept around a case's labelled box: the largest 2023 dilation (3) and a border, as the scorers crop."""


def no_rules() -> dict:
    """The rules that change nothing."""
    return {"min_lesion_mm3": dict.fromkeys(REGION_NAMES, 0.0), "et_to_netc_below_mm3": 0.0}


def check_rules(rules: Mapping, source: str = "postprocessing rules") -> dict:
    """``rules`` completed with zeros and checked: ``min_lesion_mm3`` maps wt / tc / et to volumes >= 0 and
    ``et_to_netc_below_mm3`` is a volume >= 0 (other keys, such as ``source``, are kept).

    Raises:
        UserInputError: naming ``source`` and the bad entry.
    """
    def volume(value, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UserInputError(f"{source}: {where} must be a volume in mm^3 >= 0, got {value!r}")
        return float(value)

    if not isinstance(rules, Mapping):
        raise UserInputError(f"{source}: the rules must be an object, got {type(rules).__name__}")
    sizes = rules.get("min_lesion_mm3", {})
    if not isinstance(sizes, Mapping) or set(sizes) - set(REGION_NAMES):
        raise UserInputError(f"{source}: min_lesion_mm3 must map some of {', '.join(REGION_NAMES)} to volumes, "
                             f"got {sizes!r}")
    return {**rules, "min_lesion_mm3": {r: volume(sizes.get(r, 0), f"min_lesion_mm3.{r}") for r in REGION_NAMES},
            "et_to_netc_below_mm3": volume(rules.get("et_to_netc_below_mm3", 0), "et_to_netc_below_mm3")}


def is_active(rules: Mapping | None) -> bool:
    """Whether ``rules`` change anything."""
    return bool(rules) and (any(v > 0 for v in rules["min_lesion_mm3"].values()) or rules["et_to_netc_below_mm3"] > 0)


def load_rules(path: str | os.PathLike | None) -> dict | None:
    """The checked rules of a ``postprocessing.json`` (its ``rules`` object, with ``source``: the file), or None
    for no file.

    Raises:
        UserInputError: the file is missing, not JSON, or its rules are invalid.
    """
    if not path:
        return None
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: postprocessing rules file does not exist")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path}: not a valid postprocessing.json ({exc})") from None
    if not isinstance(record, Mapping) or "rules" not in record:
        raise UserInputError(f"{path}: not a postprocessing.json (no 'rules' object; `monai-app postprocess` "
                             "writes one)")
    return {**check_rules(record["rules"], str(path)), "source": str(path)}


def apply_postprocessing(regions: np.ndarray, rules: Mapping | None, spacing: Sequence[float]) -> np.ndarray:
    """Region masks after the rules: a new bool array of the shape of ``regions`` (C, X, Y, Z).

    Lesions below ``min_lesion_mm3`` are removed region by region, WT first: a removed WT lesion clears WT, TC and
    ET there; a removed TC lesion clears TC and ET (the voxels stay oedema); a removed ET lesion clears ET (they
    stay core, NETC). Then, when the case's ET volume is above 0 and below ``et_to_netc_below_mm3``, all ET becomes
    NETC (ET cleared, its voxels added to TC and WT). Channels after the third are untouched.
    """
    out = np.array(regions, dtype=bool, copy=True)
    if not is_active(rules):
        return out
    voxel = float(np.prod(spacing))
    for c, name in enumerate(REGION_NAMES):
        limit = rules["min_lesion_mm3"][name]
        if limit <= 0 or not out[c].any():
            continue
        labels, _ = lesions(out[c])
        small = np.bincount(labels.ravel()) * voxel < limit
        small[0] = False
        out[c:3, small[labels]] = False
    et_volume = np.count_nonzero(out[2]) * voxel
    if 0 < et_volume < rules["et_to_netc_below_mm3"]:
        out[0] |= out[2]
        out[1] |= out[2]
        out[2] = False
    return out


def crop_case(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bool ``pred`` and ``ref`` (C, X, Y, Z) cut to the box of every labelled voxel of either plus
    :data:`CROP_MARGIN`: lesion volumes, components and scores stay the same."""
    pred, ref = np.asarray(pred) > 0.5, np.asarray(ref) > 0.5
    box = crop_box(pred[:3].any(0) | ref[:3].any(0), CROP_MARGIN)
    if box is None:
        box = (slice(0, 1),) * (pred.ndim - 1)
    return pred[(slice(None), *box)], ref[(slice(None), *box)]


class _Scorer:
    """Per-region scores of post-processed cases, remembered by mask content: a candidate that leaves a region of a
    case as it was costs no scoring."""

    def __init__(self, cases: Sequence, scoring: str) -> None:
        self.cases = [(*crop_case(p, r), tuple(map(float, s)), str(c)) for p, r, s, c in cases]
        self.scoring = check_scoring(scoring)
        self.key = "dice" if scoring == "brats2021" else "lesion_dice"
        self.cache: dict = {}

    def scores(self, rules: Mapping) -> list[dict[str, dict]]:
        """``[{region: scores}]`` of every case under ``rules``."""
        out = []
        for i, (pred, ref, spacing, case_id) in enumerate(self.cases):
            processed = apply_postprocessing(pred, rules, spacing)
            row = {}
            for c, name in enumerate(REGION_NAMES):
                key = (i, c, hashlib.sha1(np.packbits(processed[c]).tobytes()).hexdigest())
                if key not in self.cache:
                    self.cache[key] = SCORERS[self.scoring](processed[c], ref[c], spacing,
                                                            **rule_options(self.scoring, case_id))
                row[name] = self.cache[key]
            out.append(row)
        return out

    def matrix(self, rules: Mapping) -> np.ndarray:
        """The key score of every case (rows) and region (columns) under ``rules``."""
        return np.array([[row[r][self.key] for r in REGION_NAMES] for row in self.scores(rules)], dtype=float)

    def mean(self, rules: Mapping) -> float:
        """The mean over cases and regions of the key score (NaN left out)."""
        return _mean(self.matrix(rules))


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _better(score: float, than: float) -> bool:
    return math.isfinite(score) and (not math.isfinite(than) or score > than + 1e-9)


def leave_one_out_gain(base: np.ndarray, tried: Mapping[float, np.ndarray]) -> float:
    """How much a step's choice gains on cases it was not chosen on: for each case, the candidate the *other*
    cases would pick (none, unless one beats ``base`` on them) is applied to that case, and the case's change in
    its mean key score is summed. A rule that only fits the validation cases it was chosen on gains nothing here.

    Args:
        base: the key scores (cases x regions) under the rules so far.
        tried: per candidate value, its key scores (cases x regions).
    """
    gain = 0.0
    for i in range(base.shape[0]):
        others = np.arange(base.shape[0]) != i
        scores = {v: _mean(m[others]) for v, m in tried.items()}
        pick = max(scores, key=lambda v: (scores[v], -v), default=None)
        if pick is not None and _better(scores[pick], _mean(base[others])):
            change = _mean(tried[pick][i]) - _mean(base[i])
            gain += change if math.isfinite(change) else 0.0
    return gain


def _with(rules: Mapping, region: str | None, value: float) -> dict:
    """A copy of ``rules`` with one minimum size (``region``) or, for None, the ET-to-NETC threshold set."""
    new = {"min_lesion_mm3": dict(rules["min_lesion_mm3"]), "et_to_netc_below_mm3": rules["et_to_netc_below_mm3"]}
    if region is None:
        new["et_to_netc_below_mm3"] = float(value)
    else:
        new["min_lesion_mm3"][region] = float(value)
    return new


def search_postprocessing(cases: Sequence, scoring: str = "brats2023", sizes: Sequence[float] = SIZE_CANDIDATES,
                          et_thresholds: Sequence[float] = ET_CANDIDATES,
                          progress: Callable[[str], None] | None = None) -> dict:
    """Choose the rules on validation cases, greedily as nnU-Net: minimum lesion volumes for WT, then TC, then ET,
    then the ET-to-NETC threshold; for each, the candidate with the best mean lesion-wise Dice over the three
    regions and all cases, kept only if it is strictly better than the rules so far *and* its choice also gains on
    cases left out (:func:`leave_one_out_gain` > 0): with the few validation cases of one run, a threshold that only
    fits them is not kept.

    Args:
        cases: ``(pred, ref, spacing, case_id)`` per case: bool region masks (C, X, Y, Z), WT, TC, ET first; the
            voxel size in mm; the id (it names the sub-challenge, whose 2023 lesion rule applies).
        scoring: the convention scored (``brats2023`` by default; ``brats2021`` searches on whole-volume Dice).
        sizes, et_thresholds: the candidate volumes (mm^3).
        progress: called with one line per step.

    Returns:
        ``rules``, ``metric``, ``n_cases``, ``before`` / ``after`` (the mean key score), ``table`` (per region and
        mean: lesion-wise Dice and HD95 and whole-volume Dice, before and after) and ``candidates`` (every rule set
        tried with its score and whether it was kept).
    """
    scorer = _Scorer(cases, scoring)
    current = no_rules()
    best = baseline = scorer.mean(current)
    candidates = [{"step": "baseline", "value": 0.0, "score": best, "kept": True}]
    steps = [(r, sizes) for r in REGION_NAMES] + [(None, et_thresholds)]
    for region, values in steps:
        step = f"min_lesion_mm3.{region}" if region else "et_to_netc_below_mm3"
        matrices = {float(v): scorer.matrix(_with(current, region, v)) for v in values if v > 0}
        tried = [(_mean(m), v) for v, m in matrices.items()]
        pick = max(tried, key=lambda t: (t[0], -t[1]), default=(math.nan, 0.0))
        better = _better(pick[0], best)
        loo = leave_one_out_gain(scorer.matrix(current), matrices) if better else 0.0
        keep = better and loo > 0
        candidates += [{"step": step, "value": v, "score": s, "kept": keep and v == pick[1],
                        **({"leave_one_out_gain": loo} if v == pick[1] else {})} for s, v in tried]
        if keep:
            current, best = _with(current, region, pick[1]), pick[0]
        if progress:
            why = "kept " + _fmt(pick[1]) + " mm^3" if keep else "nothing better" if not better else \
                f"{_fmt(pick[1])} mm^3 better on all cases but not on cases left out (gain {loo:+.3f}): not kept"
            progress(f"{step}: {why} (mean {scorer.key} {best:.4f})")
    return {"rules": current, "metric": f"mean {scorer.key} over {', '.join(REGION_NAMES)} ({scoring})",
            "n_cases": len(scorer.cases), "before": baseline, "after": best,
            "table": _table(scorer.scores(no_rules()), scorer.scores(current)), "candidates": candidates}


def _fmt(value: float) -> str:
    return f"{value:g}"


def _table(before: list[dict], after: list[dict]) -> list[dict]:
    """Rows per region and their mean: ``{region, n, <kind>_before, <kind>_after}`` for the lesion-wise Dice and
    HD95 (where the convention has them) and the whole-volume Dice, each a mean over cases (NaN left out)."""
    kinds = [k for k in ("lesion_dice", "lesion_hd95", "dice") if k in before[0][REGION_NAMES[0]]] if before else []
    rows = []
    for region in (*REGION_NAMES, "mean"):
        names = REGION_NAMES if region == "mean" else (region,)
        row: dict = {"region": region, "n": len(before)}
        for kind in kinds:
            for when, scores in (("before", before), ("after", after)):
                values = [case[r][kind] for case in scores for r in names if math.isfinite(case[r][kind])]
                row[f"{kind}_{when}"] = float(np.mean(values)) if values else None
        rows.append(row)
    return rows


def format_table(record: Mapping) -> str:
    """The before / after table of a search (or of a ``postprocessing.json``) as aligned text."""
    table = record.get("table") or []
    if not table:
        return "(no table)"
    kinds = [k[: -len("_before")] for k in table[0] if k.endswith("_before")]
    head = ["region", *(f"{k} {w}" for k in kinds for w in ("before", "after"))]
    show = lambda v: "n/a" if v is None else f"{v:.4f}"
    rows = [[r["region"], *(show(r.get(f"{k}_{w}")) for k in kinds for w in ("before", "after"))] for r in table]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    return "\n".join("  ".join(str(x).rjust(w) for x, w in zip(line, widths)) for line in [head, *rows])


def describe_rules(rules: Mapping | None) -> str:
    """One line: what the rules do."""
    if not is_active(rules):
        return "no post-processing (every rule off)"
    parts = [f"remove {r.upper()} lesions < {_fmt(v)} mm^3" for r, v in rules["min_lesion_mm3"].items() if v > 0]
    if rules["et_to_netc_below_mm3"] > 0:
        parts.append(f"ET -> NETC when the case's ET < {_fmt(rules['et_to_netc_below_mm3'])} mm^3")
    return "; ".join(parts)
