"""BraTS brain-tumour MRI on disk: the MSD Task01 layout and the BraTS 2018-2021 and 2023-2025 challenge layouts.

Every layout is brought to one channel order, :data:`CHANNELS` (FLAIR, T1, T1 with contrast, T2: the MSD order),
and one set of regions, :data:`REGIONS` (whole tumour, tumour core, enhancing tumour). The layouts label the same
tissues with different numbers; :class:`BratsFormat` holds each convention (:data:`FORMATS`): ``msd``,
``brats2021``, ``brats2023`` (BraTS 2023-2025 GLI, MEN, MET, SSA, GoAT, with the resection cavity of post-treatment
scans) and ``brats2024ped`` (BraTS-PED 2024-2025). Inference inputs are listed by
:mod:`monai_app.datasets.brats_inputs`; whether a training learns the resection cavity is
:mod:`monai_app.datasets.brats_cavity`'s decision.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from monai_app.datasets.splits import check_fold, folds_test_split, load_or_make_fold_split, load_or_make_split
from monai_app.errors import DatasetError

logger = logging.getLogger(__name__)

CHANNELS = ("flair", "t1", "t1ce", "t2")
REGIONS = ("wt", "tc", "et")
NIFTI_RE = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)


@dataclass(frozen=True)
class BratsFormat:
    """One layout's label numbers and modality file suffixes.

    Attributes:
        name: ``msd``, ``brats2021``, ``brats2023`` or ``brats2024ped``.
        edema: label of peritumoral edema (SNFH, PED: ED).
        necrosis: label of the necrotic / non-enhancing tumour core (NETC).
        enhancing: label of the enhancing tumour (ET).
        suffixes: file-name suffix of each channel of :data:`CHANNELS`, then of the segmentation (per-modality
            layouts only).
        cystic: label of the cystic component (CC, BraTS-PED 2024-2025: part of the tumour core), if the layout
            has one.
        cavity: label of the resection cavity (RC, BraTS 2024-2025 post-treatment glioma and MET 2025), which is
            not tumour: outside WT, TC and ET. Accepted wherever it is present; cases without it are valid too.
        groups: the label groups the challenge scores besides WT, TC and ET, as ``{name: labels}``.
    """

    name: str
    edema: int
    necrosis: int
    enhancing: int
    suffixes: tuple[str, ...] = ()
    cystic: int | None = None
    cavity: int | None = None
    groups: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @property
    def labels(self) -> tuple[int, ...]:
        """The label values a reference segmentation may hold."""
        extra = tuple(v for v in (self.cystic, self.cavity) if v is not None)
        return tuple(sorted((0, self.edema, self.necrosis, self.enhancing, *extra)))

    def unknown_labels(self, values) -> list[int | float]:
        """The values among ``values`` that are not labels of this format, compared exactly (2.5 is not 2)."""
        unknown = sorted({float(v) for v in values} - {float(v) for v in self.labels})
        return [int(v) if v.is_integer() else v for v in unknown]

    @property
    def core(self) -> list[int]:
        """Labels of the tumour core: necrosis / non-enhancing core, enhancing tumour, and a cystic component."""
        return sorted(v for v in (self.necrosis, self.enhancing, self.cystic) if v is not None)

    @property
    def regions(self) -> list[list[int]]:
        """Label sets of WT, TC and ET, in :data:`REGIONS` order (the resection cavity is in none of them)."""
        return [sorted([self.edema, *self.core]), self.core, [self.enhancing]]

    def scored_groups(self) -> dict[str, list[int]]:
        """``{name: labels}`` of every region the challenge scores: WT, TC, ET, then the layout's label groups."""
        return {**dict(zip(REGIONS, self.regions)), **{name: list(labels) for name, labels in self.groups}}


FORMATS = {
    # MSD dataset.json: 1 edema, 2 non-enhancing tumour, 3 enhancing tumour (MONAI's BraTS converter is wrong here).
    "msd": BratsFormat("msd", edema=1, necrosis=2, enhancing=3),
    # BraTS 2018-2021: 1 NCR/NET, 2 edema, 4 enhancing (no 3).
    "brats2021": BratsFormat("brats2021", edema=2, necrosis=1, enhancing=4,
                             suffixes=("_flair", "_t1", "_t1ce", "_t2", "_seg")),
    # BraTS 2023-2025 GLI, MEN, MET, SSA, GoAT: 1 NETC, 2 SNFH (edema), 3 ET, and from 2024 4 RC (resection cavity)
    # in post-treatment glioma and MET 2025; t2f = FLAIR, t1n = T1, t1c = T1 with contrast, t2w = T2.
    "brats2023": BratsFormat("brats2023", edema=2, necrosis=1, enhancing=3, cavity=4,
                             suffixes=("-t2f", "-t1n", "-t1c", "-t2w", "-seg"),
                             groups=(("netc", (1,)), ("snfh", (2,)), ("rc", (4,)))),
    # BraTS-PED 2024-2025: 1 ET, 2 NETC, 3 CC (cystic component), 4 ED; TC = {1, 2, 3}, WT = {1, 2, 3, 4}.
    "brats2024ped": BratsFormat("brats2024ped", edema=4, necrosis=2, enhancing=1, cystic=3,
                                suffixes=("-t2f", "-t1n", "-t1c", "-t2w", "-seg"),
                                groups=(("netc", (2,)), ("cc", (3,)), ("ed", (4,)))),
}

SUBCHALLENGE_RE = re.compile(r"BraTS-([A-Za-z]+)-\d{5}-\d{3}")
"""A BraTS 2023-2025 case id, ``BraTS-<CODE>-<5 digits>-<3 digits>``; group 1 is the sub-challenge code."""


def subchallenge(case_id: str) -> str | None:
    """The sub-challenge code (``GLI``, ``MEN``, ``MET``, ``PED``, ``SSA``, ``GoAT``...) in a BraTS 2023-2025 case
    id or file name, else None."""
    match = SUBCHALLENGE_RE.search(case_id)
    return match.group(1) if match else None


def get_format(name: str) -> BratsFormat:
    """Return the :class:`BratsFormat` called ``name``; a clear error for an unknown name."""
    try:
        return FORMATS[name]
    except KeyError:
        raise DatasetError(f"unknown BraTS dataset_format {name!r}; choose one of {sorted(FORMATS)} "
                           "or 'auto'") from None


def visible(path: Path) -> bool:
    """False for macOS '._*' companions and other hidden or '_'-prefixed files shipped in some archives."""
    return not path.name.startswith((".", "_"))


def find_files(root: str | os.PathLike, pattern: str) -> list[Path]:
    """Visible files matching ``pattern`` anywhere below ``root``, following symbolic links to folders (a dataset
    assembled from links to case folders is common on shared machines; ``Path.rglob`` does not enter them before
    Python 3.13), each real folder visited once."""
    found, seen = [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        found += [Path(folder) / f for f in fnmatch.filter(files, pattern) if visible(Path(f))]
    return found


def _stem(path: Path) -> str:
    return NIFTI_RE.sub("", path.name)


def challenge_format(folders: Sequence[Path], where: str | os.PathLike) -> str:
    """The label convention of BraTS 2023-2025 case folders (``-t2f`` file names), told by their case ids:
    ``brats2024ped`` when every folder is a ``BraTS-PED-...`` case, else ``brats2023``.

    BraTS-PED 2023 used the glioma numbers: its folders need ``dataset_format`` ``brats2023`` given explicitly.

    Raises:
        DatasetError: some folders are BraTS-PED cases and others are not (their label numbers differ).
    """
    ped = [f for f in folders if subchallenge(Path(f).name) == "PED"]
    if not ped:
        return "brats2023"
    if len(ped) == len(folders):
        return "brats2024ped"
    other = next(Path(f).name for f in folders if f not in ped)
    raise DatasetError(
        f"{where}: {len(ped)} of {len(folders)} case folders are BraTS-PED cases (e.g. {Path(ped[0]).name}) and "
        f"the others are not (e.g. {other}); their label numbers differ: keep them in separate folders, or pass "
        "dataset_format brats2024ped (PED 2024-2025 labels) or brats2023 (glioma labels, also BraTS-PED 2023)"
    )


def detect_format(dataset_dir: str | os.PathLike) -> str:
    """Name the layout of ``dataset_dir``, as downloaded.

    - a ``dataset.json``: ``msd`` (MSD Task01_BrainTumour);
    - ``*-t2f.nii[.gz]`` files: ``brats2023`` (BraTS 2023-2025 GLI, MEN, MET, SSA, GoAT; label 4, the resection
      cavity, accepted), or ``brats2024ped`` when every case folder is a ``BraTS-PED-...`` case (BraTS-PED 2024-2025
      labels: 1 ET, 2 NETC, 3 CC, 4 ED). BraTS-PED 2023 data used the glioma numbers: pass ``brats2023`` for it;
    - ``*_flair.nii[.gz]`` files: ``brats2021`` (BraTS 2018-2021).

    Raises:
        DatasetError: the folder is missing, of no known layout, or mixes BraTS-PED and other case folders.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset_dir does not exist or is not a folder")
    if (root / "dataset.json").is_file():
        return "msd"
    folders = case_folders(root, FORMATS["brats2023"])
    if folders:
        return challenge_format(folders, root)
    if find_files(root, f"*{FORMATS['brats2021'].suffixes[0]}.nii*"):
        return "brats2021"
    raise DatasetError(
        f"{root}: not a BraTS dataset: no dataset.json (MSD Task01) and no '*_flair.nii[.gz]' (BraTS 2018-2021) or "
        "'*-t2f.nii[.gz]' (BraTS 2023-2025) files below it"
    )


def msd_cases(root: Path, part: str) -> list[dict]:
    """The ``training`` (``part`` ``train``) or ``test`` entries of an MSD ``dataset.json`` as datalist items, in
    file order, whether or not their files exist.

    Raises:
        DatasetError: ``dataset.json`` is unreadable, lacks the list, or an entry is malformed.
    """
    meta_path = root / "dataset.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{meta_path}: cannot be read ({getattr(e, 'strerror', None) or e})") from None
    except json.JSONDecodeError as e:
        raise DatasetError(f"{meta_path}: not valid JSON ({e})") from None
    key = "training" if part == "train" else "test"
    if not isinstance(meta, dict) or not isinstance(meta.get(key), list):
        raise DatasetError(f"{meta_path}: no '{key}' list (is this the MSD Task01_BrainTumour dataset.json?)")
    cases = []
    for i, entry in enumerate(meta[key]):
        image = entry.get("image") if isinstance(entry, dict) else entry
        if not isinstance(image, str) or (isinstance(entry, dict) and not isinstance(entry.get("label", ""), str)):
            raise DatasetError(f"{meta_path}: '{key}' entry {i} is not an image path or an "
                               f"{{\"image\": path, \"label\": path}} object: {json.dumps(entry)[:80]}")
        item = {"case_id": _stem(Path(image)), "image": str(root / image)}
        if isinstance(entry, dict) and "label" in entry:
            item["label"] = str(root / entry["label"])
        cases.append(item)
    return cases


def _modality_file(folder: Path, case: str, suffix: str) -> Path | None:
    """The file of one modality: ``<case><suffix>.nii[.gz]``, else any visible file ending in ``<suffix>``."""
    for ext in (".nii.gz", ".nii"):
        if (folder / f"{case}{suffix}{ext}").is_file():
            return folder / f"{case}{suffix}{ext}"
    found = sorted(p for p in folder.iterdir() if visible(p) and re.search(re.escape(suffix) + r"\.nii(\.gz)?$",
                                                                             p.name, re.IGNORECASE))
    return found[0] if found else None


def per_modality_case(folder: Path, fmt: BratsFormat) -> dict:
    """One case folder of a per-modality layout as ``{case_id, image: [4 paths], label?}``."""
    case = folder.name
    images = [_modality_file(folder, case, s) for s in fmt.suffixes[:4]]
    missing = [c for c, p in zip(CHANNELS, images) if p is None]
    if missing:
        raise DatasetError(f"{folder}: case {case} has no {', '.join(missing)} file ({fmt.name} layout)")
    item = {"case_id": case, "image": [str(p) for p in images]}
    seg = _modality_file(folder, case, fmt.suffixes[4])
    if seg is None:  # one BraTS 2020 case ships a misnamed segmentation; accept any remaining '*seg*' NIfTI
        taken = set(images)
        seg = next((p for p in sorted(folder.iterdir()) if p not in taken and visible(p) and NIFTI_RE.search(p.name)
                    and "seg" in p.name.lower()), None)
    if seg is not None:
        item["label"] = str(seg)
    return item


def case_folders(root: str | os.PathLike, fmt: BratsFormat) -> list[Path]:
    """The case folders of a per-modality layout below ``root``: those holding a FLAIR file, sorted."""
    return sorted({p.parent for p in find_files(root, f"*{fmt.suffixes[0]}.nii*")})


def find_cases(dataset_dir: str | os.PathLike, dataset_format: str = "auto", part: str = "train") -> list[dict]:
    """List the cases of a BraTS dataset folder as MONAI datalist items, sorted by case id.

    Args:
        dataset_dir: the dataset as downloaded (``Task01_BrainTumour/``, ``MICCAI_BraTS2020_TrainingData/``,
            ``BraTS2024-PED-Challenge-TrainingData/``, ...).
        dataset_format: ``msd``, ``brats2021``, ``brats2023``, ``brats2024ped`` or ``auto`` (:func:`detect_format`).
        part: ``train`` (labelled cases) or ``test`` (MSD ``imagesTs``; for per-modality layouts, the cases
            without a segmentation).

    Returns:
        Items ``{"case_id": str, "image": path or [flair, t1, t1ce, t2 paths], "label": path}`` (no label for test).

    Raises:
        DatasetError: the folder is missing, of no known layout, or a listed file does not exist.
    """
    root = Path(dataset_dir)
    fmt = get_format(detect_format(root) if dataset_format == "auto" else dataset_format)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset_dir does not exist or is not a folder")
    if fmt.name == "msd":
        cases = msd_cases(root, part)
    else:
        cases = [per_modality_case(f, fmt) for f in case_folders(root, fmt)]
        cases = [c for c in cases if ("label" in c) == (part == "train")]
    missing = [p for c in cases for p in ([*c["image"]] if isinstance(c["image"], list) else [c["image"]])
               + ([c["label"]] if "label" in c else []) if not Path(p).is_file()]
    if missing:
        raise DatasetError(f"{root}: {len(missing)} listed file(s) do not exist, e.g. {missing[0]}")
    ids = [c["case_id"] for c in cases]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{root}: case ids are not unique ({len(ids) - len(set(ids))} duplicates)")
    if part == "train" and not cases:
        raise DatasetError(f"{root}: no labelled cases found ({fmt.name} layout)")
    logger.info("%s: %d %s cases (%s layout)", root, len(cases), part, fmt.name)
    return sorted(cases, key=lambda c: c["case_id"])


def resolve_format(dataset_dir: str | os.PathLike, dataset_format: str = "auto") -> str:
    """``dataset_format`` itself, or the detected layout when it is ``auto``."""
    return detect_format(dataset_dir) if dataset_format == "auto" else get_format(dataset_format).name


def make_datalists(
    dataset_dir: str | os.PathLike, output_dir: str | os.PathLike, dataset_format: str = "auto", seed: int = 0,
    val_fraction: float = 0.1, test_fraction: float = 0.1, fold: int | None = None, num_folds: int = 5,
) -> dict[str, list[dict]]:
    """Datalists ``{"train", "validation", "test"}`` of the labelled cases, split with ``seed`` and saved in
    ``output_dir/split.json`` (reused when it exists, so evaluation scores what training held out).

    With ``fold`` (0 to ``num_folds`` - 1), the cases are split once into a test part and ``num_folds`` folds saved
    as ``folds.json`` in ``output_dir``'s parent (``runs/brats`` for ``runs/brats/fold_0``), and fold ``fold``
    validates while the others train (:func:`monai_app.datasets.splits.load_or_make_fold_split`). Without it, a
    folds root (``folds.json`` and no ``split.json`` in ``output_dir``) gives its test cases, to evaluate an ensemble
    of the folds.

    Raises:
        UserInputError: ``fold`` is not a whole number from 0 to ``num_folds`` - 1.
    """
    fold = check_fold(fold, num_folds)
    cases = find_cases(dataset_dir, dataset_format, "train")
    ids = [c["case_id"] for c in cases]
    if fold is not None:
        split = load_or_make_fold_split(ids, output_dir, fold, seed, int(num_folds), test_fraction)
    else:
        split = folds_test_split(ids, output_dir) or load_or_make_split(ids, output_dir, seed, val_fraction,
                                                                        test_fraction)
    by_id = {c["case_id"]: c for c in cases}
    return {part: [by_id[i] for i in ids] for part, ids in split.items()}
