"""Regenerate tests/fixtures/brats_metrics/: synthetic BraTS cases scored by the two official reference tools.

The official tools cannot be installed beside the project (their numpy/pandas pins conflict), so each runs from
its own virtual environment and this script drives both:

* BraTS 2025 (``BraTS-evaluation`` + ``panoptica``): the console scripts ``brats-evaluate`` (one run per bundled
  config: gli, mets, MenPre, ped) and ``brats-parse-metrics seg``, exactly as a participant would run them; the
  values are read back from the CSV that ``brats-parse-metrics seg`` writes.
* BraTS 2023 lesion-wise metrics (github.com/rachitsaluja/BraTS-2023-Metrics): ``get_LesionWiseResults`` from its
  ``metrics.py``, called by this same script in ``--worker-brats2023`` mode under the 2023 venv's Python.

Run it with any Python that has numpy and nibabel (either venv will do), from the repository root::

    /work/venvs/brats-eval/bin/python scripts/make_brats_metric_fixtures.py --out tests/fixtures/brats_metrics \\
        --brats2023-repo /work/.mirror/rachitsaluja+BraTS-2023-Metrics/repo

It writes the label maps (``reference/``, ``prediction/``), ``expected.json`` and ``README.md`` into ``--out``.
Rerunning it gives byte-identical files. No code of either reference repository is copied here; they are only
imported or executed from their own environments.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Any

SCRIPT_DIR = Path(__file__).resolve().parent
if str(SCRIPT_DIR) not in sys.path:
    sys.path.insert(0, str(SCRIPT_DIR))

import brats_metric_cases  # numpy + nibabel only; found through the sys.path line above

DEFAULT_BRATS2025_PYTHON = Path("/work/venvs/brats-eval/bin/python")
DEFAULT_BRATS2023_PYTHON = Path("/work/venvs/brats2023-metrics/bin/python")
DEFAULT_BRATS2023_REPO = Path("/work/.mirror/rachitsaluja+BraTS-2023-Metrics/repo")
EXPECTED_BRATS2023_COMMIT = "43c905242b2eecf421d4ab2da7af8ece9777d322"

#: BraTS 2025 bundled config of each sub-challenge.
CONFIG_2025: dict[str, str] = {"GLI": "gli", "SSA": "gli", "MET": "mets", "MEN": "MenPre", "PED": "ped"}
#: Groups of each bundled config, in the order they are written to expected.json (wt, tc, et first).
GROUPS_2025: dict[str, tuple[str, ...]] = {
    "gli": ("wt", "tc", "et", "netc", "snfh", "rc"),
    "mets": ("wt", "tc", "et", "rc"),
    "MenPre": ("wt", "tc", "et"),
    "ped": ("wt", "tc", "et", "netc", "cc", "ed"),
}
#: expected.json key -> column prefix in the CSV of ``brats-parse-metrics seg`` (suffix ``_<group>``).
COLUMNS_2025: dict[str, str] = {
    "dice": "global_dsc", "hd95": "global_hd95", "lesion_dice": "lesionwise_dsc_mean",
    "lesion_hd95": "lesionwise_hd95_mean", "tp": "all_instance_tp", "fp": "all_instance_fp",
    "fn": "all_instance_fn",
}
#: challenge_name passed to the 2023 code for each sub-challenge.
CHALLENGE_2023: dict[str, str] = {s: f"BraTS-{s}" for s in ("GLI", "SSA", "MET", "MEN", "PED")}
#: expected.json key -> column of the DataFrame returned by the 2023 ``get_LesionWiseResults``.
COLUMNS_2023: dict[str, str] = {
    "dice": "Legacy_Dice", "hd95": "Legacy_HD95", "lesion_dice": "LesionWise_Score_Dice",
    "lesion_hd95": "LesionWise_Score_HD95", "tp": "Num_TP", "fp": "Num_FP", "fn": "Num_FN",
}
#: brats2024ped label -> label of the 2023 code (1 NCR, 2 ED, 3 ET): ET 1->3, NETC 2->1, CC 3->1, ED 4->2.
PED_TO_2023: dict[int, int] = {0: 0, 1: 3, 2: 1, 3: 1, 4: 2}
COUNT_KEYS = ("tp", "fp", "fn")
#: Added to the anisotropic case next to its ``spacing_note``: what each tool does with the spacing (as observed).
SPACING_DETAIL = (
    "BraTS 2025: global_dsc/global_hd95 ignore the NIfTI spacing (voxel units, equal to BraTS-GLI-00001-000) while "
    "lesionwise_hd95_mean uses it (mm). BraTS 2023: Legacy_HD95 and lesion-wise HD95 use the prediction's zooms "
    "(mm) and lesion volumes for the size threshold are in mm^3, but the lesion dilation counts voxels.")

#: How the two venvs were made (also printed when one is missing).
PIP_2025 = ("python3.11 -m venv /work/venvs/brats-eval && "
            "/work/venvs/brats-eval/bin/pip install BraTS-evaluation==0.0.10 panoptica==2.1.7")
PIP_2023 = ("python3.11 -m venv /work/venvs/brats2023-metrics && /work/venvs/brats2023-metrics/bin/pip install "
            "numpy==1.24.3 pandas==1.5.3 scipy==1.11.1 nibabel==5.1.0 connected-components-3d==3.12.1")

#: Packages whose versions are recorded for each environment (distribution names).
ENV_PACKAGES: dict[str, tuple[str, ...]] = {
    "brats2025": ("BraTS-evaluation", "panoptica", "numpy", "pandas", "scipy", "nibabel", "connected-components-3d",
                  "SimpleITK", "scikit-image"),
    "brats2023": ("numpy", "pandas", "scipy", "nibabel", "connected-components-3d"),
}


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------


def _fail(message: str) -> None:
    """Print an error and exit with status 2.

    Args:
        message: What is wrong and how to fix it.
    """
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    """Run a command, failing loudly with its output if it exits non-zero.

    Args:
        cmd: Command and arguments.
        cwd: Working directory.

    Returns:
        The command's standard output.
    """
    proc = subprocess.run(cmd, check=False, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        _fail(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def _package_versions(python: Path, packages: tuple[str, ...]) -> dict[str, str]:
    """Ask an interpreter for its Python version and the versions of some installed distributions.

    Args:
        python: Interpreter of a virtual environment.
        packages: Distribution names.

    Returns:
        ``{"python": ..., <package>: <version or "not installed">}``.
    """
    code = ("import json, sys, importlib.metadata as m\n"
            "out = {'python': sys.version.split()[0]}\n"
            f"for p in {list(packages)!r}:\n"
            "    try:\n        out[p] = m.version(p)\n"
            "    except m.PackageNotFoundError:\n        out[p] = 'not installed'\n"
            "print(json.dumps(out))\n")
    return json.loads(_run([str(python), "-c", code]))


def _check_python(python: Path, what: str, hint: str) -> None:
    """Exit with a clear message if a venv interpreter is missing.

    Args:
        python: Path of the interpreter.
        what: Name of the environment, for the message.
        hint: How to create it.
    """
    if not python.is_file() or not os.access(python, os.X_OK):
        _fail(f"{what} interpreter not found: {python}\n  create it with: {hint}")


def _is_bare_git_dir(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and not (path / "metrics.py").exists()


def prepare_brats2023_repo(repo: Path, commit: str | None, workdir: Path) -> tuple[Path, str]:
    """Locate ``metrics.py`` of the BraTS 2023 repository and its commit.

    ``repo`` may be a bare git directory (``metrics.py`` and ``surface_distance/`` are then extracted from HEAD with
    ``git archive`` into ``workdir``), a git work tree, or a plain extracted folder (then ``commit`` is required).

    Args:
        repo: Path given on the command line.
        commit: Commit given on the command line, or None to detect it with git.
        workdir: Scratch folder for an extraction.

    Returns:
        The folder holding ``metrics.py`` and ``surface_distance/``, and the full commit hash.
    """
    if not repo.exists():
        _fail(f"--brats2023-repo not found: {repo}")
    if _is_bare_git_dir(repo):
        head = _run(["git", "--git-dir", str(repo), "rev-parse", "HEAD"]).strip()
        tar_path = workdir / "brats2023.tar"
        with open(tar_path, "wb") as fh:
            proc = subprocess.run(["git", "--git-dir", str(repo), "archive", "--format=tar", head], check=False,
                                  stdout=fh)
        if proc.returncode != 0:
            _fail(f"git archive failed in {repo}")
        src = workdir / "brats2023-src"
        with tarfile.open(tar_path) as tar:
            tar.extractall(src, filter="data")
        if commit and commit != head:
            _fail(f"--brats2023-commit {commit} but {repo} is at {head}")
        return src, head
    if not (repo / "metrics.py").is_file() or not (repo / "surface_distance").is_dir():
        _fail(f"{repo} holds no metrics.py and surface_distance/ (expected BraTS-2023-Metrics)")
    if commit is None:
        top = subprocess.run(["git", "-C", str(repo), "rev-parse", "--show-toplevel"], check=False, capture_output=True,
                             text=True)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != repo.resolve():
            _fail(f"{repo} is not the top of a git work tree, so its commit is unknown: pass --brats2023-commit")
        commit = _run(["git", "-C", str(repo), "rev-parse", "HEAD"]).strip()
    return repo, commit


def _float(text: str) -> float:
    """Parse a CSV cell written by pandas: empty means NaN; ``inf`` and ``nan`` are kept.

    Args:
        text: Cell text.

    Returns:
        The float value.
    """
    return math.nan if text.strip() == "" else float(text)


def _as_count(value: float) -> int | float:
    """Turn an instance count into an int (kept as float if it is NaN or not integral).

    Args:
        value: Count as read back.

    Returns:
        ``int(value)`` when it is a whole number, else ``value``.
    """
    return int(value) if math.isfinite(value) and float(value).is_integer() else value


# ----------------------------------------------------------------------------------------------------------------
# BraTS 2025 (BraTS-evaluation + panoptica), through its console scripts
# ----------------------------------------------------------------------------------------------------------------


def run_brats2025(python: Path, fixtures: Path, cases: list[dict[str, Any]], workdir: Path) -> dict[str, dict]:
    """Score every case with ``brats-evaluate`` and ``brats-parse-metrics seg`` of the 2025 package.

    Cases are grouped by bundled config; each group's files are copied into its own ``ref/`` and ``pred/`` folders
    (the CLI scores every reference file of a folder with one config).

    Args:
        python: Interpreter of the BraTS-evaluation venv (the console scripts sit beside it).
        fixtures: Folder holding the case files.
        cases: Case metadata from :func:`brats_metric_cases.make_cases`.
        workdir: Scratch folder.

    Returns:
        ``{case_id: {group: {dice, hd95, lesion_dice, lesion_hd95, tp, fp, fn}}}``.
    """
    bindir = python.parent
    evaluate, parse = bindir / "brats-evaluate", bindir / "brats-parse-metrics"
    for tool in (evaluate, parse):
        if not tool.is_file():
            _fail(f"{tool} not found: is BraTS-evaluation installed in {bindir.parent}?")
    results: dict[str, dict] = {}
    for config in sorted({CONFIG_2025[c["subchallenge"]] for c in cases}):
        group_cases = [c for c in cases if CONFIG_2025[c["subchallenge"]] == config]
        ref_dir, pred_dir = workdir / f"2025-{config}" / "ref", workdir / f"2025-{config}" / "pred"
        ref_dir.mkdir(parents=True)
        pred_dir.mkdir(parents=True)
        for c in group_cases:
            shutil.copy(fixtures / c["reference"], ref_dir / Path(c["reference"]).name)
            shutil.copy(fixtures / c["prediction"], pred_dir / Path(c["prediction"]).name)
        summary, table = workdir / f"2025-{config}.json", workdir / f"2025-{config}.csv"
        _run([str(evaluate), "--ref_path", str(ref_dir), "--pred_path", str(pred_dir), "--config", config,
              "--summary_json", str(summary)])
        _run([str(parse), "seg", "--json_path", str(summary), "--output_csv_path", str(table)])
        with open(summary) as fh:
            missing = json.load(fh).get("missings", [])
        if missing:
            _fail(f"brats-evaluate found no prediction for {missing}")
        with open(table, newline="") as fh:
            rows = {row["subject_id"]: row for row in csv.DictReader(fh)}
        for c in group_cases:
            row = rows.get(Path(c["reference"]).name)
            if row is None:
                _fail(f"{c['case_id']}: no row in {table} (evaluation error? see {summary})")
            per_group: dict[str, dict[str, Any]] = {}
            for group in GROUPS_2025[config]:
                values: dict[str, Any] = {}
                for key, prefix in COLUMNS_2025.items():
                    column = f"{prefix}_{group}"
                    if column not in row:
                        _fail(f"{c['case_id']}: column {column} missing from {table}")
                    value = _float(row[column])
                    values[key] = _as_count(value) if key in COUNT_KEYS else value
                per_group[group] = values
            results[c["case_id"]] = per_group
    return results


# ----------------------------------------------------------------------------------------------------------------
# BraTS 2023 lesion-wise metrics, through a worker process in its own venv
# ----------------------------------------------------------------------------------------------------------------


def run_brats2023(python: Path, repo_src: Path, fixtures: Path, cases: list[dict[str, Any]],
                  workdir: Path) -> dict[str, dict]:
    """Score every case with ``get_LesionWiseResults`` of the 2023 code, in a worker under its venv's Python.

    Args:
        python: Interpreter of the brats2023-metrics venv.
        repo_src: Folder holding the 2023 ``metrics.py`` and ``surface_distance/``.
        fixtures: Folder holding the case files.
        cases: Case metadata.
        workdir: Scratch folder.

    Returns:
        ``{case_id: {"wt"|"tc"|"et": {dice, hd95, lesion_dice, lesion_hd95, tp, fp, fn}}}``.
    """
    cases_json, result_json = workdir / "cases.json", workdir / "brats2023-results.json"
    cases_json.write_text(json.dumps(cases))
    _run([str(python), str(Path(__file__).resolve()), "--worker-brats2023", "--cases-json", str(cases_json),
          "--out", str(fixtures), "--brats2023-repo", str(repo_src), "--result-json", str(result_json),
          "--scratch", str(workdir / "2023-scratch")])
    return json.loads(result_json.read_text())


def worker_brats2023(cases_json: Path, fixtures: Path, repo_src: Path, result_json: Path, scratch: Path) -> None:
    """Worker mode (runs inside the 2023 venv): call ``get_LesionWiseResults`` on every case.

    PED cases (brats2024ped labels) are remapped to the 2023 code's numbering first (``PED_TO_2023``), so that
    its hard-coded WT {1,2,3}, TC {1,3} and ET {3} are the PED regions WT {1,2,3,4}, TC {1,2,3} and ET {1}.

    Args:
        cases_json: Case metadata written by the parent process.
        fixtures: Folder holding the case files.
        repo_src: Folder holding the 2023 ``metrics.py`` and ``surface_distance/``.
        result_json: Where to write the results.
        scratch: Scratch folder for remapped PED files.
    """
    import nibabel as nib
    import numpy as np

    warnings.simplefilter("ignore")  # DataFrame.append (pandas 1.x) and scipy.ndimage.filters deprecations
    sys.path.insert(0, str(repo_src))
    metrics = importlib.import_module("metrics")
    if Path(metrics.__file__).resolve().parent != repo_src.resolve():
        _fail(f"imported {metrics.__file__}, not the 2023 metrics.py in {repo_src}")
    lut = np.zeros(256, np.uint8)
    for src, dst in PED_TO_2023.items():
        lut[src] = dst
    scratch.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for case in json.loads(cases_json.read_text()):
        ref, pred = fixtures / case["reference"], fixtures / case["prediction"]
        if case["label_format"] == "brats2024ped":
            paths = []
            for path in (ref, pred):
                img = nib.load(str(path))
                arr = np.asanyarray(img.dataobj).astype(np.uint8)
                out = scratch / path.name
                nib.save(nib.Nifti1Image(lut[arr], img.affine, img.header), str(out))
                paths.append(out)
            ref, pred = paths
        df = metrics.get_LesionWiseResults(str(pred), str(ref), CHALLENGE_2023[case["subchallenge"]])
        per_region: dict[str, dict[str, Any]] = {}
        for _, row in df.iterrows():
            values: dict[str, Any] = {}
            for key, column in COLUMNS_2023.items():
                value = float(row[column])
                values[key] = _as_count(value) if key in COUNT_KEYS else value
            per_region[str(row["Labels"]).lower()] = values
        results[case["case_id"]] = {k: per_region[k] for k in ("wt", "tc", "et")}
    result_json.write_text(json.dumps(results))


# ----------------------------------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------------------------------


def dump_json(obj: Any, indent: int = 0) -> str:
    """Serialise to JSON with one line per innermost dict or list (readable diffs); NaN/inf as ``NaN``/``Infinity``.

    Args:
        obj: JSON-serialisable object (dicts, lists, str, int, float, bool, None).
        indent: Current indentation level (internal).

    Returns:
        The JSON text; ``json.loads`` gives back ``obj``.
    """
    def flat(o: Any) -> bool:
        values = o.values() if isinstance(o, dict) else o
        return not any(isinstance(v, (dict, list)) for v in values)

    if isinstance(obj, (dict, list)) and (not obj or flat(obj)):
        return json.dumps(obj, allow_nan=True)
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(k)}: {dump_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        items = [f"{inner}{dump_json(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, allow_nan=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}"
    return str(value)


def summary_lines(expected: dict[str, Any]) -> list[str]:
    """Return one compact line per case and convention (dice/hd95/lesion dice/lesion hd95/tp/fp/fn per region).

    Args:
        expected: The expected.json content.

    Returns:
        Text lines.
    """
    lines = []
    for case in expected["cases"]:
        for conv in ("brats2023", "brats2025"):
            parts = []
            for region, v in case[conv].items():
                parts.append(f"{region} {_fmt(v['dice'])}/{_fmt(v['hd95'])}/{_fmt(v['lesion_dice'])}/"
                             f"{_fmt(v['lesion_hd95'])}/{v['tp']},{v['fp']},{v['fn']}")
            lines.append(f"{case['case_id']} {conv}: " + "  ".join(parts))
    return lines


README_HEAD = """\
# BraTS scoring fixtures (official reference values)

Generated by `scripts/make_brats_metric_fixtures.py` (this file too: edit the template there, not here).
Synthetic label maps (`scripts/brats_metric_cases.py`, numpy + nibabel only, fixed seeds) scored by the two
official BraTS reference implementations, so that `monai_app`'s own, independent implementation can be tested
against them. Nothing here was computed by `monai_app`.

## Files

* `reference/<case_id>-seg.nii.gz`: reference (ground truth) label map, uint8, gzip NIfTI, affine
  `diag(sx, sy, sz, 1)` (1 mm isotropic except case 13).
* `prediction/<case_id>.nii.gz`: prediction label map, same grid.
* `expected.json`: per case, `brats2023` (WT/TC/ET of the 2023 lesion-wise code) and `brats2025` (every group of
  the case's BraTS 2025 config), each region as `{dice, hd95, lesion_dice, lesion_hd95, tp, fp, fn}`:

  | key | brats2023 (`get_LesionWiseResults` column) | brats2025 (`brats-parse-metrics seg` column) |
  | --- | --- | --- |
  | dice | `Legacy_Dice` | `global_dsc_K` |
  | hd95 | `Legacy_HD95` (the 2023 code turns inf into 374) | `global_hd95_K` (the parser turns inf into 373) |
  | lesion_dice | `LesionWise_Score_Dice` | `lesionwise_dsc_mean_K` |
  | lesion_hd95 | `LesionWise_Score_HD95` | `lesionwise_hd95_mean_K` (may be `Infinity` or `NaN`) |
  | tp / fp / fn | `Num_TP` / `Num_FP` / `Num_FN` | `all_instance_tp_K` / `all_instance_fp_K` / `all_instance_fn_K` |

  Values are exactly as the tools report them (NaN and infinity written as JSON `NaN` / `Infinity`); counts are
  written as integers. Sub-challenge -> 2025 config: GLI and SSA `gli` (wt tc et netc snfh rc), MET `mets`
  (wt tc et rc), MEN `MenPre` (wt tc et), PED `ped` (wt tc et netc cc ed); 2023 `challenge_name` is
  `BraTS-<sub-challenge>`.

Label formats: `brats2023` = 1 NETC, 2 SNFH (edema), 3 ET, optional 4 RC (in no tumour region);
`brats2024ped` = 1 ET, 2 NETC, 3 CC, 4 ED (WT {1,2,3,4}, TC {1,2,3}, ET {1}).

**PED and the 2023 code.** The 2023 `metrics.py` hard-codes 1 NCR, 2 ED, 3 ET (WT {1,2,3}, TC {1,3}, ET {3},
label 4 ignored). Before calling it on the PED case, both maps are remapped ET 1->3, NETC 2->1, CC 3->1, ED 4->2,
so its WT/TC/ET are the PED regions. The BraTS 2025 `ped` config takes the PED labels as they are.

## Regenerate

From the repository root (about a minute):

```
{command}
```

The 2025 values come from the console scripts, run once per config on folders holding that config's cases:
`brats-evaluate --ref_path R --pred_path P --config CFG --summary_json S` then
`brats-parse-metrics seg --json_path S --output_csv_path C`; the script reads `C` back. The 2023 values come from
`get_LesionWiseResults(pred_file, gt_file, challenge_name)`, called by the same script in `--worker-brats2023`
mode under the 2023 venv's Python. `--brats2023-repo` may be the bare git snapshot (extracted with `git archive`
into a temporary folder), a work tree, or an extracted copy (then pass `--brats2023-commit`). Rerunning gives
byte-identical files.

## Environments (outside the repository)

* BraTS 2025: `/work/venvs/brats-eval`, Python 3.11:
  `{pip2025}`
  (resolved: {env2025}).
* BraTS 2023: `/work/venvs/brats2023-metrics`, Python 3.11, plus the repository
  github.com/rachitsaluja/BraTS-2023-Metrics at commit `{commit}` (`metrics.py` sha256 `{metrics_sha}`):
  `{pip2023}`
  (resolved: {env2023}). These are the repository's `requirements.txt` pins except pandas, pinned there to 1.3.4,
  which has no Python 3.11 wheel; 1.5.3 is the last 1.x release (the code needs `DataFrame.append`, gone in
  pandas 2, and `np.Inf`/`np.NaN`, gone in numpy 2).

## Cases

| # | case_id | sub-challenge | labels | spacing (mm) | what it tests |
| --- | --- | --- | --- | --- | --- |
"""

README_TAIL = """
## Behaviour of the official tools worth knowing (seen on these cases)

* **Spacing (case 13 vs case 1, same voxels, z spacing 2.5 mm).** BraTS 2025/panoptica reads the NIfTI zooms and
  uses them for the per-lesion metrics (`lesionwise_hd95_mean` is in mm and differs from case 1), but its *global*
  metrics are computed without spacing: `global_hd95` of case 13 equals case 1's, i.e. it is in voxels. The 2023
  code uses the zooms of the prediction file for HD95 (mm) and for the lesion volumes compared with its size
  threshold (mm^3), while its dilation (lesion merging and the search for overlapping predictions) counts voxels.
  The two tools are therefore neither consistent with each other nor fully in millimetres on anisotropic data.
* **Global HD95 without overlap (2025).** panoptica treats a region with no voxel in common between prediction and
  reference as an edge case and reports global HD95 = inf (373 after the parser) and global Dice 0, even when both
  are non-empty and close (case 6, ET); the 2023 code reports the real distance.
* **Empty regions (2025).** A region empty on both sides gives NaN Dice/HD95 and 0/0/0 counts (the parser only
  replaces inf of the *global* HD95); an empty prediction gives `lesionwise_hd95_mean` = Infinity, not 373.
* **Empty regions (2023).** Both empty: Dice 1, HD95 0, lesion-wise Dice 1 and HD95 0. One side empty: Dice 0 and
  HD95 374 (the code's own inf replacement, applied to its returned table). Reference lesions at or below the size
  threshold (50 voxels, 2 for MET) are dropped from the lesion-wise scores and from the TP/FN counts, so a
  reference made only of small lesions against an empty prediction scores lesion-wise Dice 1 / HD95 0 (case 12).
* **Matching.** 2023: reference components within the dilation distance (3 voxels; 1 for MEN and MET) are merged
  into one lesion, and every prediction component touching a *dilated* reference lesion is a TP for it
  (many-to-one): a predicted ET that does not overlap the reference ET at all but lies within 3 voxels is a TP with
  lesion Dice 0 (case 6). 2025: plain 26-connected components matched one-to-one (maximum bipartite matching on
  Dice > 1e-6), so one prediction blob covering two reference components leaves one of them a false negative
  (case 11), and a non-overlapping prediction is an FP plus an FN.
* **Lesion-wise means.** 2023: sum of per-lesion scores over reference lesions above the size threshold plus one
  0 (Dice) or 374 (HD95) per FP, divided by (lesions + FP); FN lesions score Dice 0 and HD95 374 (their HD95 to
  nothing is inf, replaced by 374). 2025 (`sq_dsc`, `sq_hd95`): the mean over *matched* (TP) instances only, so FN
  and FP do not lower it (case 2: wt 0.886 against 0.295 for 2023); with no TP it is 0 / Infinity.
* **MET in 2025.** The package also has `brats-parse-metrics mets` (lesion-size threshold 20, detection overlap
  0.1) for the MET ranking; these fixtures record the `seg` parser for every case, MET included.
* **HD95 definitions differ.** 2023 (DeepMind surface-distance): surface elements on voxel corners, weighted by
  surfel area, the larger of the two directed 95th percentiles. 2025 (panoptica): border voxels (mask minus its
  6-connected erosion), Euclidean distance transform, `numpy.percentile(..., 95)` (linear interpolation) of both
  directed distance sets pooled. The same masks therefore give slightly different HD95 (case 1 TC: 4.243 vs 4.359).
"""


def write_readme(path: Path, expected: dict[str, Any], command: str) -> None:
    """Write the fixture folder's README.md.

    Args:
        path: Output path.
        expected: The expected.json content (for the case table and versions).
        command: The command line that regenerates the folder.
    """
    versions = expected["versions"]

    def env(name: str) -> str:
        return ", ".join(f"{k} {v}" for k, v in versions[name].items())

    text = (README_HEAD.replace("{command}", command).replace("{pip2025}", PIP_2025).replace("{pip2023}", PIP_2023)
            .replace("{env2025}", env("brats2025_env")).replace("{env2023}", env("brats2023_env"))
            .replace("{commit}", versions["BraTS-2023-Metrics"])
            .replace("{metrics_sha}", versions["BraTS-2023-Metrics metrics.py sha256"]))
    for i, case in enumerate(expected["cases"], 1):
        spacing = " x ".join(_fmt(float(s)) for s in case["spacing"])
        text += (f"| {i} | `{case['case_id']}` | {case['subchallenge']} | {case['label_format']} | {spacing} | "
                 f"{case['description']} |\n")
    text += README_TAIL
    text += "\n## Values (dice/hd95/lesion_dice/lesion_hd95/tp,fp,fn per region)\n\n```\n"
    text += "\n".join(summary_lines(expected)) + "\n```\n"
    path.write_text(text)


def _clean_case_files(out: Path) -> None:
    """Remove the .nii.gz files this script owns under ``out`` (stale cases must not survive a rerun)."""
    for sub in ("reference", "prediction"):
        folder = out / sub
        if folder.is_dir():
            for f in folder.glob("*.nii.gz"):
                f.unlink()


def generate(args: argparse.Namespace) -> dict[str, Any]:
    """Build the cases, score them with both tools and write the fixture folder.

    Args:
        args: Parsed command-line arguments.

    Returns:
        The expected.json content.
    """
    _check_python(args.brats2025_python, "BraTS 2025 (BraTS-evaluation)", PIP_2025)
    _check_python(args.brats2023_python, "BraTS 2023 metrics", PIP_2023)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="brats-fixtures-") as tmp:
        workdir = Path(tmp)
        repo_src, commit = prepare_brats2023_repo(args.brats2023_repo, args.brats2023_commit, workdir)
        if commit != EXPECTED_BRATS2023_COMMIT:
            print(f"warning: BraTS-2023-Metrics at {commit}, fixtures were made with {EXPECTED_BRATS2023_COMMIT}",
                  file=sys.stderr)
        metrics_sha = hashlib.sha256((repo_src / "metrics.py").read_bytes()).hexdigest()
        _clean_case_files(out)
        cases = brats_metric_cases.make_cases(out)
        print(f"wrote {len(cases)} cases under {out}", file=sys.stderr)
        res2025 = run_brats2025(args.brats2025_python, out, cases, workdir)
        print("scored with BraTS 2025 (brats-evaluate + brats-parse-metrics seg)", file=sys.stderr)
        res2023 = run_brats2023(args.brats2023_python, repo_src, out, cases, workdir)
        print("scored with BraTS 2023 (get_LesionWiseResults)", file=sys.stderr)
    env2025 = _package_versions(args.brats2025_python, ENV_PACKAGES["brats2025"])
    env2023 = _package_versions(args.brats2023_python, ENV_PACKAGES["brats2023"])
    expected: dict[str, Any] = {
        "generated_by": "scripts/make_brats_metric_fixtures.py",
        "versions": {
            "BraTS-evaluation": env2025["BraTS-evaluation"],
            "panoptica": env2025["panoptica"],
            "BraTS-2023-Metrics": commit,
            "BraTS-2023-Metrics metrics.py sha256": metrics_sha,
            "brats2025_env": env2025,
            "brats2023_env": env2023,
        },
        "cases": [],
    }
    for case in cases:
        entry = dict(case)
        if "spacing_note" in entry:
            entry["spacing_detail"] = SPACING_DETAIL
        entry["brats2023"] = res2023[case["case_id"]]
        entry["brats2025"] = res2025[case["case_id"]]
        expected["cases"].append(entry)
    (out / "expected.json").write_text(dump_json(expected) + "\n")
    write_readme(out / "README.md", expected, args.command_line)
    return expected


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser.

    Returns:
        The argparse parser.
    """
    parser = argparse.ArgumentParser(
        description="Write synthetic BraTS label maps and the values the two official BraTS scoring tools give them "
                    "(tests/fixtures/brats_metrics/).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/brats_metrics"),
                        help="fixture folder to (re)write")
    parser.add_argument("--brats2023-repo", type=Path, default=DEFAULT_BRATS2023_REPO,
                        help="BraTS-2023-Metrics: bare git dir, work tree, or extracted copy (with metrics.py)")
    parser.add_argument("--brats2023-commit", default=None,
                        help="commit of --brats2023-repo when it is an extracted copy without git metadata")
    parser.add_argument("--brats2023-python", type=Path, default=DEFAULT_BRATS2023_PYTHON,
                        help="Python of the venv with numpy<2, pandas<2, scipy, nibabel, connected-components-3d")
    parser.add_argument("--brats2025-python", type=Path, default=DEFAULT_BRATS2025_PYTHON,
                        help="Python of the venv with BraTS-evaluation and panoptica (console scripts beside it)")
    parser.add_argument("--print-summary", action="store_true", help="print one line per case and convention")
    # internal worker mode, run under the 2023 venv by the script itself (hidden from --help)
    parser.add_argument("--worker-brats2023", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cases-json", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-json", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).
    """
    args = build_parser().parse_args(argv)
    if args.worker_brats2023:
        worker_brats2023(args.cases_json, args.out, args.brats2023_repo, args.result_json, args.scratch)
        return
    args.command_line = (f"{args.brats2025_python} scripts/make_brats_metric_fixtures.py --out {args.out} "
                         f"--brats2023-repo {args.brats2023_repo} --brats2023-python {args.brats2023_python} "
                         f"--brats2025-python {args.brats2025_python}")
    expected = generate(args)
    if args.print_summary:
        print("\n".join(summary_lines(expected)))


if __name__ == "__main__":
    main()
