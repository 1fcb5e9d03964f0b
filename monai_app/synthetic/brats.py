"""Synthetic BraTS datasets written in exactly the on-disk layouts that :mod:`monai_app.datasets.brats` reads.

Each case is a skull-stripped brain phantom (an ellipsoid of white/grey-matter texture with a bias field and noise,
zero outside) holding one glioma: edema around a tumour core made of an enhancing rim and a necrotic centre (or, in
about one case in four, a core with no enhancing part). Every tissue has its own intensity signature across FLAIR,
T1, T1 with contrast and T2, so a network can learn it. Sizes, voxel spacings, axis flips and origins vary per case
so that resampling and orientation code is exercised. Generation is deterministic for a given seed.
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

logger = logging.getLogger(__name__)

SPACINGS = (1.0, 1.0, 1.1, 1.25)
# Normal-tissue intensity (white matter, grey matter) per channel of CHANNELS.
TISSUE = {"flair": (350.0, 450.0), "t1": (600.0, 420.0), "t1ce": (580.0, 430.0), "t2": (300.0, 480.0)}
# Multiplier of the local normal-tissue intensity for (edema, necrosis, enhancing) per channel.
CONTRAST = {"flair": (1.6, 1.2, 1.3), "t1": (0.85, 0.6, 0.9), "t1ce": (0.9, 0.6, 2.0), "t2": (1.7, 1.9, 1.4)}
# Internal tissue codes (the MSD numbers); mapped to the layout's label numbers when written.
EDEMA, NECROSIS, ENHANCING = 1, 2, 3
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


def _case_ids(fmt: BratsFormat, cases: int, test_cases: int) -> list[str]:
    """Case ids in the layout's naming, training cases first, then test cases."""
    total = cases + test_cases
    if fmt.name == "msd":  # test ids continue the numbering, as in Task01 (BRATS_485 ... follow BRATS_484)
        width = max(3, len(str(total)))
        return [f"BRATS_{i:0{width}d}" for i in range(1, total + 1)]
    if fmt.name == "brats2021":  # the validation release restarts at 001
        width = max(3, len(str(max(cases, test_cases))))
        return ([f"BraTS20_Training_{i:0{width}d}" for i in range(1, cases + 1)]
                + [f"BraTS20_Validation_{i:0{width}d}" for i in range(1, test_cases + 1)])
    return [f"BraTS-GLI-{i:05d}-000" for i in range(total)]


def _upsampler(size: int, coarse: int) -> np.ndarray:
    """A (size, coarse) matrix that interpolates a coarse axis onto ``size`` voxels with a smooth Gaussian kernel."""
    u = np.linspace(0.0, coarse - 1.0, size)[:, None]
    weights = np.exp(-0.5 * ((u - np.arange(coarse)[None, :]) / 0.6) ** 2)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, dims: tuple[int, ...], cell: float) -> np.ndarray:
    """Zero-mean, unit-variance noise smooth over about ``cell`` voxels: white noise on a coarse grid, upsampled one
    axis at a time (separable, so milliseconds where ``ndimage.zoom`` takes a quarter second)."""
    field = rng.standard_normal(tuple(max(2, int(round(d / cell))) + 1 for d in dims), dtype=np.float32)
    for axis, size in enumerate(dims):
        field = np.moveaxis(np.tensordot(_upsampler(size, field.shape[axis]), field, axes=(1, axis)), 0, axis)
    return ((field - field.mean()) / (field.std() + 1e-6)).astype(np.float32)


def _ellipsoid_radius(dims: tuple[int, ...], centre: np.ndarray, semi: np.ndarray) -> np.ndarray:
    """Normalised ellipsoid radius of every voxel: below 1 inside the ellipsoid (``centre``, ``semi`` axes)."""
    grid = np.ogrid[tuple(slice(0, d) for d in dims)]
    return np.sqrt(sum(((g - c) / s) ** 2 for g, c, s in zip(grid, centre, semi))).astype(np.float32)


def _ball_point(rng: np.random.Generator) -> np.ndarray:
    """A point drawn uniformly in the unit ball."""
    v = rng.standard_normal(3)
    return v / (np.linalg.norm(v) + 1e-12) * rng.random() ** (1 / 3)


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


def _brain(rng: np.random.Generator, dims: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Brain mask (a slightly irregular ellipsoid over ~70-80 % of each axis), its centre and semi-axes, and the
    white-matter fraction of every voxel (smoothed noise through a steep sigmoid)."""
    size = np.array(dims, dtype=float)
    centre = (size - 1) / 2 + rng.uniform(-0.02, 0.02, 3) * size
    semi = size * rng.uniform(0.35, 0.40, 3)
    surface = 1.0 + 0.04 * np.clip(_smooth_noise(rng, dims, 12.0), -2.5, 2.5)
    brain = _ellipsoid_radius(dims, centre, semi) < surface
    white = 1.0 / (1.0 + np.exp(-4.0 * _smooth_noise(rng, dims, 6.0)))
    return brain, centre, semi, white.astype(np.float32)


def _blob(rng: np.random.Generator, dims: tuple, centre: np.ndarray, radius: float) -> np.ndarray:
    """An irregular blob: an ellipsoid of mean radius ``radius`` whose surface is pushed by smooth noise."""
    semi = radius * rng.uniform(0.8, 1.2, 3)
    rough = np.clip(_smooth_noise(rng, dims, max(2.0, 0.7 * radius)), -2.5, 2.5)
    return _ellipsoid_radius(dims, centre, semi) < 1.0 + 0.2 * rough


def _tumour(rng: np.random.Generator, brain: np.ndarray, centre: np.ndarray, semi: np.ndarray,
            enhancing: bool) -> np.ndarray:
    """Tissue codes (0, EDEMA, NECROSIS, ENHANCING) of one glioma at a random place inside ``brain``."""
    dims, min_semi = np.array(brain.shape), float(semi.min())
    # whole-tumour radius 25-50 % of the brain's smallest semi-axis: 1-6 % of the brain volume, as in BraTS
    radius = max(2.5, rng.uniform(0.25, 0.50) * min_semi)
    at = centre + _ball_point(rng) * max(0.0, 0.85 - radius / min_semi) * semi
    if not brain[tuple(np.clip(np.round(at).astype(int), 0, dims - 1))]:
        at = centre
    reach = 1.8 * radius + 3  # the blobs never reach further: 1.2 x radius, surface pushed out by at most 50 %
    lo = np.maximum(np.floor(at - reach).astype(int), 0)
    box = tuple(slice(a, b) for a, b in zip(lo, np.minimum(np.ceil(at + reach).astype(int) + 1, dims)))
    tissue = np.zeros(brain.shape, dtype=np.uint8)
    tissue[box] = _tumour_tissue(rng, brain[box], at - lo, radius, enhancing)
    return tissue


def _tumour_tissue(rng: np.random.Generator, brain: np.ndarray, at: np.ndarray, radius: float,
                   enhancing: bool) -> np.ndarray:
    """Tissue codes of a glioma centred at ``at`` (voxels of the box ``brain``); edema and core are never empty."""
    r_core = max(1.5, radius * rng.uniform(0.5, 0.75))
    whole = _blob(rng, brain.shape, at, radius) & brain
    core = _blob(rng, brain.shape, at + _ball_point(rng) * 0.3 * (radius - r_core), r_core) & whole
    if not core.any():
        core[tuple(np.round(at).astype(int))] = True
    whole |= ndimage.binary_dilation(core) & brain  # a rim of edema around the core, always
    tissue = np.where(whole, EDEMA, 0).astype(np.uint8)
    tissue[core] = NECROSIS
    if enhancing:  # a shell 2-3 voxels thick; thinner when the core is too small to keep a necrotic centre
        depth = ndimage.distance_transform_edt(core)
        thickness = min(int(rng.integers(2, 4)), depth.max() - 1)
        if thickness >= 1:
            tissue[core & (depth <= thickness)] = ENHANCING
    return tissue


def _bias_field(rng: np.random.Generator, dims: tuple) -> np.ndarray:
    """A smooth multiplicative bias field (random quadratic polynomial) within 1 +/- 0.15."""
    x, y, z = (np.linspace(-1.0, 1.0, d, dtype=np.float32).reshape([-1 if a == i else 1 for a in range(3)])
               for i, d in enumerate(dims))
    terms = (x, y, z, x * x, y * y, z * z, x * y, x * z, y * z)
    field = sum(np.float32(c) * t for c, t in zip(rng.uniform(-1.0, 1.0, len(terms)), terms))
    field = field - field.mean()
    return (1.0 + 0.15 * field / (np.abs(field).max() + 1e-6)).astype(np.float32)


def _images(rng: np.random.Generator, brain: np.ndarray, white: np.ndarray, tissue: np.ndarray) -> list[np.ndarray]:
    """The four channels (:data:`CHANNELS` order), float32, exactly 0 outside ``brain``."""
    dims = brain.shape
    soft = [ndimage.gaussian_filter((tissue == k).astype(np.float32), 0.7) for k in (EDEMA, NECROSIS, ENHANCING)]
    strength = rng.uniform(0.85, 1.15)
    channels = []
    for name in CHANNELS:
        wm, gm = TISSUE[name]
        normal = np.float32(gm) + np.float32(wm - gm) * white
        factor = 1.0 + sum(np.float32(strength * (f - 1.0)) * s for f, s in zip(CONTRAST[name], soft))
        image = normal * factor * _bias_field(rng, dims) * np.float32(rng.uniform(0.8, 1.25))
        image += rng.standard_normal(dims, dtype=np.float32) * np.float32(0.02 * gm)
        channels.append(np.where(brain, np.maximum(image, 1.0), 0.0).astype(np.float32))
    return channels


def _make_case(seed: int, index: int, shape: tuple[int, int, int]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """One phantom: (channels, tissue codes, affine). Case 0 has a flipped axis; cases 1, 5, 9, ... (one in four)
    have no enhancing tumour."""
    rng = np.random.default_rng([seed, index])
    dims, affine = _geometry(rng, shape, force_flip=index == 0)
    brain, centre, semi, white = _brain(rng, dims)
    enhancing = index % 4 != 1
    tissue = _tumour(rng, brain, centre, semi, enhancing)
    return _images(rng, brain, white, tissue), tissue, affine


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
                shape: tuple[int, int, int] = (96, 96, 64), test_cases: int = 2, progress: bool = False) -> list[str]:
    """Write a synthetic BraTS dataset in exactly the real on-disk layout of `dataset_format`; return the case ids
    written (training then test).

    Args:
        out_dir: folder to write into (created; files of the same names are replaced).
        cases: number of labelled training cases (>= 1).
        dataset_format: ``msd`` (Task01_BrainTumour), ``brats2021`` or ``brats2023``; label numbers follow
            :data:`monai_app.datasets.brats.FORMATS`.
        seed: non-negative seed; the same seed and shape give identical files in every layout (up to label numbers).
        shape: nominal volume size (X, Y, Z), each >= 16; every case draws its own size within 0.85-1.15 of it.
        test_cases: number of unlabelled cases (MSD ``imagesTs``; per-modality layouts: folders without a seg file).
        progress: show a progress bar over cases.

    Returns:
        The case ids, training cases first.

    Raises:
        UserInputError: an argument is out of range or ``out_dir`` is a file (``DatasetError`` for an unknown format).
    """
    root = Path(out_dir)
    fmt, dims = _check_args(root, cases, test_cases, dataset_format, seed, shape)
    ids = _case_ids(fmt, cases, test_cases)
    lut = np.array([0, fmt.edema, fmt.necrosis, fmt.enhancing], dtype=np.uint8)
    indices = range(len(ids))
    for index in tqdm(indices, desc="synthetic BraTS", unit="case") if progress else indices:
        channels, tissue, affine = _make_case(seed, index, dims)
        _write_case(root, fmt, ids[index], channels, lut[tissue] if index < cases else None, affine)
    if fmt.name == "msd":  # written last: an interrupted run leaves no dataset.json, so it is not taken for a dataset
        _write_dataset_json(root, ids[:cases], ids[cases:], seed)
    logger.info("%s: wrote %d training and %d test synthetic BraTS cases (%s layout)", root, cases, test_cases,
                fmt.name)
    return ids
