"""Synthetic BraTS datasets written in exactly the on-disk layouts that :mod:`monai_app.datasets.brats` reads.

Each case is a skull-stripped brain phantom (an ellipsoid of white/grey-matter texture with a bias field and noise,
zero outside) holding one glioma: edema around a tumour core made of an enhancing rim and a necrotic centre (or, in
about one case in four, a core with no enhancing part). Every tissue has its own intensity signature across FLAIR,
T1, T1 with contrast and T2, so a network can learn it. Sizes, voxel spacings, axis flips and origins vary per case
so that resampling and orientation code is exercised. Generation is deterministic for a given seed.

BraTS 2023-2025 layouts name their cases by sub-challenge (``BraTS-<code>-00000-000``): MET cases hold 3-12 small
metastases of weaker contrast instead of a glioma; GLI, MEN, SSA and GoAT cases hold the glioma phantom. Post-treatment
scans (``resection_cavity``) add a CSF-like resection cavity beside the tumour in three cases of four; BraTS-PED
2024-2025 cases (``brats2024ped``) add a cystic component to the core in three cases of four. The tissue itself is
drawn by :mod:`monai_app.synthetic.brats_tissue`.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from monai_app.datasets.brats import CHANNELS, FORMATS, BratsFormat
from monai_app.errors import DatasetError, UserInputError
from monai_app.files import atomic_path, atomic_write_text
from monai_app.synthetic import brats_tissue
from monai_app.synthetic.brats_tissue import CODES, ENHANCING

logger = logging.getLogger(__name__)

SPACINGS = (1.0, 1.0, 1.1, 1.25)
# Normal-tissue intensity (white matter, grey matter) per channel of CHANNELS.
TISSUE = {"flair": (350.0, 450.0), "t1": (600.0, 420.0), "t1ce": (580.0, 430.0), "t2": (300.0, 480.0)}
# Multiplier of the local normal-tissue intensity per channel for the tissue codes of brats_tissue.CODES: edema,
# necrosis, enhancing tumour, cyst (fluid, T2-bright, not quite dark on FLAIR), resection cavity (CSF: dark on T1, T1c
# and FLAIR, bright on T2).
CONTRAST = {"flair": (1.6, 1.2, 1.3, 1.1, 0.3), "t1": (0.85, 0.6, 0.9, 0.55, 0.35),
            "t1ce": (0.9, 0.6, 2.0, 0.6, 0.35), "t2": (1.7, 1.9, 1.4, 2.3, 2.2)}
MET_CONTRAST = 0.7  # metastases: tumour contrast 0.7 times the glioma phantom's
SUBCHALLENGES = ("GLI", "MEN", "MET", "SSA", "GoAT")  # brats2023 case-id codes; brats2024ped writes PED
MIN_SIDE = 16


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_args(out_dir: Path, cases: int, test_cases: int, dataset_format: str, seed: int,
                shape: tuple[int, int, int]) -> tuple[BratsFormat, tuple[int, int, int]]:
    """Validate the arguments of :func:`write_brats`; return the format and the shape as plain ints."""
    if dataset_format not in FORMATS:
        raise DatasetError(f"unknown BraTS dataset_format {dataset_format!r}; choose one of {sorted(FORMATS)}")
    for name, value, low in (("cases", cases, 1), ("test_cases", test_cases, 0), ("seed", seed, 0)):
        if not _is_int(value) or value < low:
            raise UserInputError(f"{name} must be an integer >= {low}, got {value!r}")
    try:
        dims = tuple(shape)
    except TypeError:
        dims = ()
    if len(dims) != 3 or not all(_is_int(d) and d >= MIN_SIDE for d in dims):
        raise UserInputError(f"shape must be three integers >= {MIN_SIDE} (X, Y, Z voxels), got {shape!r}")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserInputError(f"{out_dir}: out_dir exists and is not a folder")
    return FORMATS[dataset_format], tuple(int(d) for d in dims)


def _check_subchallenge(fmt: BratsFormat, subchallenge: str | None, resection_cavity: bool) -> str | None:
    """The sub-challenge code of the case ids (``GLI`` by default for ``brats2023``, ``PED`` for ``brats2024ped``,
    None for the older layouts); a :class:`UserInputError` for a code or a cavity the layout does not have."""
    if resection_cavity and fmt.name != "brats2023":
        raise UserInputError(f"resection_cavity: only the brats2023 layout (BraTS 2024-2025 post-treatment) has a "
                             f"resection-cavity label, not {fmt.name}")
    if fmt.name == "brats2023":
        if subchallenge not in (None, *SUBCHALLENGES):
            raise UserInputError(f"subchallenge must be one of {', '.join(SUBCHALLENGES)} for brats2023, got "
                                 f"{subchallenge!r} (BraTS-PED 2024-2025: dataset_format brats2024ped)")
        return subchallenge or "GLI"
    if fmt.name == "brats2024ped":
        if subchallenge not in (None, "PED"):
            raise UserInputError(f"brats2024ped cases are BraTS-PED cases; subchallenge {subchallenge!r} is not PED")
        return "PED"
    if subchallenge is not None:
        raise UserInputError(f"subchallenge applies to the brats2023 and brats2024ped layouts, not {fmt.name}")
    return None


def _case_ids(fmt: BratsFormat, cases: int, test_cases: int, code: str | None = None) -> list[str]:
    """Case ids in the layout's naming, training cases first, then test cases; ``code``: the sub-challenge of
    BraTS 2023-2025 ids."""
    total = cases + test_cases
    if fmt.name == "msd":  # test ids continue the numbering, as in Task01 (BRATS_485 ... follow BRATS_484)
        width = max(3, len(str(total)))
        return [f"BRATS_{i:0{width}d}" for i in range(1, total + 1)]
    if fmt.name == "brats2021":  # the validation release restarts at 001
        width = max(3, len(str(max(cases, test_cases))))
        return ([f"BraTS20_Training_{i:0{width}d}" for i in range(1, cases + 1)]
                + [f"BraTS20_Validation_{i:0{width}d}" for i in range(1, test_cases + 1)])
    return [f"BraTS-{code or 'GLI'}-{i:05d}-000" for i in range(total)]


def _geometry(rng: np.random.Generator, shape: tuple[int, int, int], force_flip: bool) -> tuple[tuple, np.ndarray]:
    """Per-case volume size (0.85-1.15 x ``shape``) and an axis-aligned affine: spacing, flips, non-zero origin."""
    dims = tuple(int(round(s * rng.uniform(0.85, 1.15))) for s in shape)
    spacing = rng.choice(SPACINGS, size=3)
    flips = rng.random(3) < 0.3
    if force_flip and not flips.any():
        flips[rng.integers(3)] = True
    signs = np.where(flips, -1.0, 1.0)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(signs * spacing)
    affine[:3, 3] = -signs * (np.array(dims) - 1) * spacing / 2 + rng.uniform(-20.0, 20.0, 3)
    return dims, affine


def _bias_field(rng: np.random.Generator, dims: tuple) -> np.ndarray:
    """A smooth multiplicative bias field (random quadratic polynomial) within 1 +/- 0.15."""
    x, y, z = (np.linspace(-1.0, 1.0, d, dtype=np.float32).reshape([-1 if a == i else 1 for a in range(3)])
               for i, d in enumerate(dims))
    terms = (x, y, z, x * x, y * y, z * z, x * y, x * z, y * z)
    field = sum(np.float32(c) * t for c, t in zip(rng.uniform(-1.0, 1.0, len(terms)), terms))
    field = field - field.mean()
    return (1.0 + 0.15 * field / (np.abs(field).max() + 1e-6)).astype(np.float32)


def _images(rng: np.random.Generator, brain: np.ndarray, white: np.ndarray, tissue: np.ndarray,
            contrast: float = 1.0) -> list[np.ndarray]:
    """The four channels (:data:`CHANNELS` order), float32, exactly 0 outside ``brain``; ``contrast`` scales every
    tissue's departure from normal tissue."""
    dims = brain.shape
    present = [k for k in CODES if k <= ENHANCING or (tissue == k).any()]  # always the three tumour tissues
    soft = [ndimage.gaussian_filter((tissue == k).astype(np.float32), 0.7) for k in present]
    strength = rng.uniform(0.85, 1.15) * contrast
    channels = []
    for name in CHANNELS:
        wm, gm = TISSUE[name]
        normal = np.float32(gm) + np.float32(wm - gm) * white
        factors = [CONTRAST[name][k - 1] for k in present]
        factor = 1.0 + sum(np.float32(strength * (f - 1.0)) * s for f, s in zip(factors, soft))
        image = normal * factor * _bias_field(rng, dims) * np.float32(rng.uniform(0.8, 1.25))
        image += rng.standard_normal(dims, dtype=np.float32) * np.float32(0.02 * gm)
        channels.append(np.where(brain, np.maximum(image, 1.0), 0.0).astype(np.float32))
    return channels


def _make_case(seed: int, index: int, shape: tuple[int, int, int], code: str | None = None, cyst: bool = False,
               cavity: bool = False) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """One phantom: (channels, tissue codes, affine). Case 0 has a flipped axis; cases 1, 5, 9, ... (one in four)
    have no enhancing tumour. ``code`` ``MET``: metastases in place of the glioma, at weaker contrast. ``cyst`` adds
    a cystic component, except to cases 3, 7, 11, ...; ``cavity`` a resection cavity, except to cases 2, 6, 10, ...
    (both drawn from their own random stream, so the rest of the case stays as without them)."""
    rng = np.random.default_rng([seed, index])
    dims, affine = _geometry(rng, shape, force_flip=index == 0)
    brain, centre, semi, white = brats_tissue.brain_phantom(rng, dims)
    if code == "MET":
        tissue = brats_tissue.metastases(rng, brain, centre, semi)
    else:
        tissue = brats_tissue.glioma(rng, brain, centre, semi, enhancing=index % 4 != 1)
    extra = np.random.default_rng([seed, index, 1])
    if cyst and index % 4 != 3:
        brats_tissue.cystic_component(extra, tissue)
    if cavity and index % 4 != 2:
        brats_tissue.resection_cavity(extra, brain, tissue)
    contrast = MET_CONTRAST if code == "MET" else 1.0
    return _images(rng, brain, white, tissue, contrast), tissue, affine


def _save(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Write one NIfTI file atomically, with the affine as both qform and sform (scanner) and mm units."""
    image = nib.Nifti1Image(array, affine)
    image.header.set_data_dtype(array.dtype)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(image, tmp)


def _write_case(root: Path, fmt: BratsFormat, case: str, channels: list[np.ndarray], label: np.ndarray | None,
                affine: np.ndarray) -> None:
    """Write one case in ``fmt``'s layout; ``label`` None for a test case."""
    if fmt.name == "msd":
        part = "Tr" if label is not None else "Ts"
        _save(np.stack(channels, axis=-1), affine, root / f"images{part}" / f"{case}.nii.gz")
        if label is not None:
            _save(label, affine, root / "labelsTr" / f"{case}.nii.gz")
        return
    folder = root / case
    for suffix, channel in zip(fmt.suffixes, channels):
        _save(channel, affine, folder / f"{case}{suffix}.nii.gz")
    if label is not None:
        _save(label, affine, folder / f"{case}{fmt.suffixes[4]}.nii.gz")


def _write_dataset_json(root: Path, train_ids: list[str], test_ids: list[str], seed: int) -> None:
    """The MSD Task01 ``dataset.json``: the real keys in the real order, training and test lists shuffled."""
    order = np.random.default_rng(seed)
    meta = {
        "name": "BRATS",
        "description": "Synthetic gliomas segmentation tumour and oedema in on brain images (monai_app phantom)",
        "reference": "Synthetic phantom written by monai_app.synthetic.brats in the MSD Task01 layout",
        "licence": "Apache-2.0 (synthetic data, no patient images)",
        "release": f"synthetic, seed {seed}",
        "tensorImageSize": "4D",
        "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
        "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
        "numTraining": len(train_ids),
        "numTest": len(test_ids),
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"}
                     for c in order.permutation(train_ids).tolist()],
        "test": [f"./imagesTs/{c}.nii.gz" for c in order.permutation(test_ids).tolist()],
    }
    atomic_write_text(root / "dataset.json", json.dumps(meta, indent=4) + "\n")


def write_brats(out_dir: str | os.PathLike, cases: int = 8, dataset_format: str = "msd", seed: int = 0,
                shape: tuple[int, int, int] = (96, 96, 64), test_cases: int = 2, progress: bool = False,
                subchallenge: str | None = None, resection_cavity: bool = False) -> list[str]:
    """Write a synthetic BraTS dataset in exactly the real on-disk layout of `dataset_format`; return the case ids
    written (training then test).

    Args:
        out_dir: folder to write into (created; files of the same names are replaced).
        cases: number of labelled training cases (>= 1).
        dataset_format: ``msd`` (Task01_BrainTumour), ``brats2021``, ``brats2023`` or ``brats2024ped`` (BraTS-PED
            2024-2025: ids ``BraTS-PED-...``, every PED label, a cystic component in three cases of four); label
            numbers follow :data:`monai_app.datasets.brats.FORMATS`.
        seed: non-negative seed; the same seed and shape give identical files in every layout (up to label numbers,
            and the tissue the options below add).
        shape: nominal volume size (X, Y, Z), each >= 16; every case draws its own size within 0.85-1.15 of it.
        test_cases: number of unlabelled cases (MSD ``imagesTs``; per-modality layouts: folders without a seg file).
        progress: show a progress bar over cases.
        subchallenge: ``brats2023`` only: the case-id code, one of :data:`SUBCHALLENGES` (default ``GLI``); ``MET``
            writes 3-12 small metastases per case instead of a glioma.
        resection_cavity: ``brats2023`` only: post-treatment scans, a resection cavity (label 4) beside the tumour in
            three cases of four.

    Returns:
        The case ids, training cases first.

    Raises:
        UserInputError: an argument is out of range, an option the layout does not have, or ``out_dir`` is a file
            (``DatasetError`` for an unknown format).
    """
    root = Path(out_dir)
    fmt, dims = _check_args(root, cases, test_cases, dataset_format, seed, shape)
    code = _check_subchallenge(fmt, subchallenge, bool(resection_cavity))
    ids = _case_ids(fmt, cases, test_cases, code)
    lut = np.array([0, fmt.edema, fmt.necrosis, fmt.enhancing, fmt.cystic or fmt.necrosis, fmt.cavity or 0],
                   dtype=np.uint8)  # indexed by brats_tissue's codes
    indices = range(len(ids))
    for index in tqdm(indices, desc="synthetic BraTS", unit="case") if progress else indices:
        channels, tissue, affine = _make_case(seed, index, dims, code, cyst=fmt.cystic is not None,
                                              cavity=bool(resection_cavity))
        _write_case(root, fmt, ids[index], channels, lut[tissue] if index < cases else None, affine)
    if fmt.name == "msd":  # written last: an interrupted run leaves no dataset.json, so it is not taken for a dataset
        _write_dataset_json(root, ids[:cases], ids[cases:], seed)
    kind = f"{code}{' post-treatment' if resection_cavity else ''} " if code else ""
    logger.info("%s: wrote %d training and %d test synthetic BraTS %scases (%s layout)", root, cases, test_cases,
                kind, fmt.name)
    return ids
