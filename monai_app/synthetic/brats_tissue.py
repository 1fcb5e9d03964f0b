"""Tissue of the synthetic BraTS phantoms (:mod:`monai_app.synthetic.brats`): the brain, and the lesions placed in it.

Tissue codes (the MSD label numbers for the first three; :mod:`monai_app.synthetic.brats` maps them to a layout's
numbers and gives each its intensity signature): :data:`EDEMA`, :data:`NECROSIS`, :data:`ENHANCING`, :data:`CYST`
(the cystic component of paediatric tumours, BraTS-PED), :data:`CAVITY` (the resection cavity of post-treatment
scans). One glioma per case (:func:`glioma`), or 3-12 small metastases (:func:`metastases`); a cystic component
(:func:`cystic_component`) or a resection cavity (:func:`resection_cavity`) can be added to a case's tissue.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

EDEMA, NECROSIS, ENHANCING, CYST, CAVITY = 1, 2, 3, 4, 5
CODES = (EDEMA, NECROSIS, ENHANCING, CYST, CAVITY)


def _upsampler(size: int, coarse: int) -> np.ndarray:
    """A (size, coarse) matrix that interpolates a coarse axis onto ``size`` voxels with a smooth Gaussian kernel."""
    u = np.linspace(0.0, coarse - 1.0, size)[:, None]
    weights = np.exp(-0.5 * ((u - np.arange(coarse)[None, :]) / 0.6) ** 2)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def smooth_noise(rng: np.random.Generator, dims: tuple[int, ...], cell: float) -> np.ndarray:
    """Zero-mean, unit-variance noise smooth over about ``cell`` voxels: white noise on a coarse grid, upsampled one
    axis at a time (separable, so milliseconds where ``ndimage.zoom`` takes a quarter second)."""
    field = rng.standard_normal(tuple(max(2, int(round(d / cell))) + 1 for d in dims), dtype=np.float32)
    for axis, size in enumerate(dims):
        field = np.moveaxis(np.tensordot(_upsampler(size, field.shape[axis]), field, axes=(1, axis)), 0, axis)
    return ((field - field.mean()) / (field.std() + 1e-6)).astype(np.float32)


def ellipsoid_radius(dims: tuple[int, ...], centre: np.ndarray, semi: np.ndarray) -> np.ndarray:
    """Normalised ellipsoid radius of every voxel: below 1 inside the ellipsoid (``centre``, ``semi`` axes)."""
    grid = np.ogrid[tuple(slice(0, d) for d in dims)]
    return np.sqrt(sum(((g - c) / s) ** 2 for g, c, s in zip(grid, centre, semi))).astype(np.float32)


def ball_point(rng: np.random.Generator) -> np.ndarray:
    """A point drawn uniformly in the unit ball."""
    v = rng.standard_normal(3)
    return v / (np.linalg.norm(v) + 1e-12) * rng.random() ** (1 / 3)


def brain_phantom(rng: np.random.Generator, dims: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Brain mask (a slightly irregular ellipsoid over ~70-80 % of each axis), its centre and semi-axes, and the
    white-matter fraction of every voxel (smoothed noise through a steep sigmoid)."""
    size = np.array(dims, dtype=float)
    centre = (size - 1) / 2 + rng.uniform(-0.02, 0.02, 3) * size
    semi = size * rng.uniform(0.35, 0.40, 3)
    surface = 1.0 + 0.04 * np.clip(smooth_noise(rng, dims, 12.0), -2.5, 2.5)
    brain = ellipsoid_radius(dims, centre, semi) < surface
    white = 1.0 / (1.0 + np.exp(-4.0 * smooth_noise(rng, dims, 6.0)))
    return brain, centre, semi, white.astype(np.float32)


def blob(rng: np.random.Generator, dims: tuple, centre: np.ndarray, radius: float) -> np.ndarray:
    """An irregular blob: an ellipsoid of mean radius ``radius`` whose surface is pushed by smooth noise."""
    semi = radius * rng.uniform(0.8, 1.2, 3)
    rough = np.clip(smooth_noise(rng, dims, max(2.0, 0.7 * radius)), -2.5, 2.5)
    return ellipsoid_radius(dims, centre, semi) < 1.0 + 0.2 * rough


def glioma(rng: np.random.Generator, brain: np.ndarray, centre: np.ndarray, semi: np.ndarray,
            enhancing: bool) -> np.ndarray:
    """Tissue codes (0, EDEMA, NECROSIS, ENHANCING) of one glioma at a random place inside ``brain``."""
    dims, min_semi = np.array(brain.shape), float(semi.min())
    # whole-tumour radius 25-50 % of the brain's smallest semi-axis: 1-6 % of the brain volume, as in BraTS
    radius = max(2.5, rng.uniform(0.25, 0.50) * min_semi)
    at = centre + ball_point(rng) * max(0.0, 0.85 - radius / min_semi) * semi
    if not brain[tuple(np.clip(np.round(at).astype(int), 0, dims - 1))]:
        at = centre
    reach = 1.8 * radius + 3  # the blobs never reach further: 1.2 x radius, surface pushed out by at most 50 %
    lo = np.maximum(np.floor(at - reach).astype(int), 0)
    box = tuple(slice(a, b) for a, b in zip(lo, np.minimum(np.ceil(at + reach).astype(int) + 1, dims)))
    tissue = np.zeros(brain.shape, dtype=np.uint8)
    tissue[box] = _glioma_tissue(rng, brain[box], at - lo, radius, enhancing)
    return tissue


def _glioma_tissue(rng: np.random.Generator, brain: np.ndarray, at: np.ndarray, radius: float,
                   enhancing: bool) -> np.ndarray:
    """Tissue codes of a glioma centred at ``at`` (voxels of the box ``brain``); edema and core are never empty."""
    r_core = max(1.5, radius * rng.uniform(0.5, 0.75))
    whole = blob(rng, brain.shape, at, radius) & brain
    core = blob(rng, brain.shape, at + ball_point(rng) * 0.3 * (radius - r_core), r_core) & whole
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


def _box(at: np.ndarray, reach: float, dims: np.ndarray) -> tuple[np.ndarray, tuple[slice, ...]]:
    """The corner and the slices of the box of half-side ``reach`` around ``at``, clipped to the volume."""
    lo = np.maximum(np.floor(at - reach).astype(int), 0)
    return lo, tuple(slice(a, b) for a, b in zip(lo, np.minimum(np.ceil(at + reach).astype(int) + 1, dims)))


def metastases(rng: np.random.Generator, brain: np.ndarray, centre: np.ndarray, semi: np.ndarray) -> np.ndarray:
    """Tissue codes of 3-12 small metastases scattered in ``brain`` (BraTS-MET): each an enhancing nodule or rim with
    a necrotic centre when it is large enough, in a halo of edema 1.3-2 times its radius; each placed where no
    other lesion is yet (up to 100 tries in all)."""
    dims, min_semi = np.array(brain.shape), float(semi.min())
    tissue = np.zeros(brain.shape, dtype=np.uint8)
    wanted, tries = int(rng.integers(3, 13)), 0
    while wanted and tries < 100:
        tries += 1
        radius = max(1.5, rng.uniform(0.05, 0.15) * min_semi)
        at = centre + ball_point(rng) * 0.8 * semi
        halo = radius * rng.uniform(1.3, 2.0)
        lo, box = _box(at, 1.3 * halo + 2, dims)
        if not brain[tuple(np.clip(np.round(at).astype(int), 0, dims - 1))] or tissue[box].any():
            continue
        tissue[box] = _metastasis(rng, brain[box], at - lo, radius, halo)
        wanted -= 1
    return tissue


def _metastasis(rng: np.random.Generator, brain: np.ndarray, at: np.ndarray, radius: float,
                halo: float) -> np.ndarray:
    """Tissue codes of one metastasis centred at ``at`` (voxels of the box ``brain``): one connected lesion of edema
    and enhancing tumour, never empty; necrosis inside a one-voxel enhancing rim when the nodule is large enough."""
    centre = tuple(np.clip(np.round(at).astype(int), 0, np.array(brain.shape) - 1))
    core = blob(rng, brain.shape, at, radius) & brain
    core[centre] = True
    edema = (blob(rng, brain.shape, at, halo) | ndimage.binary_dilation(core)) & brain
    parts, _ = ndimage.label(edema)
    edema = parts == parts[centre]  # no island of a rough surface apart from the lesion
    core &= edema
    tissue = np.where(edema, EDEMA, 0).astype(np.uint8)
    tissue[core] = ENHANCING
    tissue[core & (ndimage.distance_transform_edt(core) > 1.5)] = NECROSIS
    return tissue


def _largest_lesion(tissue: np.ndarray, codes: tuple[int, ...]) -> tuple[np.ndarray, float] | None:
    """Centre and equivalent-ball radius of the largest connected lesion made of ``codes``, or None."""
    components, n = ndimage.label(np.isin(tissue, codes))
    if n == 0:
        return None
    sizes = np.bincount(components.ravel())[1:]
    largest = int(np.argmax(sizes)) + 1
    centre = np.argwhere(components == largest).mean(axis=0)
    return centre, float((3 * sizes[largest - 1] / (4 * np.pi)) ** (1 / 3))


def cystic_component(rng: np.random.Generator, tissue: np.ndarray) -> None:
    """Turn part of the largest tumour's core and edema into a fluid cyst (:data:`CYST`), in place, as in paediatric
    tumours (BraTS-PED CC): a ball of 50-80 % of the core's radius off the core's centre; enhancing tumour and some
    necrosis are kept."""
    found = _largest_lesion(tissue, (NECROSIS, ENHANCING))
    if found is None:
        return
    centre, radius = found
    r = max(1.5, radius * rng.uniform(0.5, 0.8))
    ball = ellipsoid_radius(tissue.shape, centre + ball_point(rng) * 0.6 * radius, r * rng.uniform(0.8, 1.2, 3)) < 1
    cyst = ball & np.isin(tissue, (EDEMA, NECROSIS))
    if not ((tissue == NECROSIS) & ~cyst).any():
        cyst &= tissue != NECROSIS
    tissue[cyst] = CYST


def resection_cavity(rng: np.random.Generator, brain: np.ndarray, tissue: np.ndarray) -> None:
    """Add a resection cavity (:data:`CAVITY`) beside the largest tumour, in place, as in post-treatment scans: a
    CSF-filled ball of 0.6-1 times the tumour's radius, centred about one radius from it, inside the brain. It takes
    normal tissue and edema, never the core or the edema next to it; no cavity when none of 10 places fits."""
    found = _largest_lesion(tissue, (EDEMA, NECROSIS, ENHANCING))
    if found is None:
        return
    centre, radius = found
    keep = ndimage.binary_dilation(np.isin(tissue, (NECROSIS, ENHANCING)), iterations=2)
    r = max(2.0, radius * rng.uniform(0.6, 1.0))
    for _ in range(10):
        direction = rng.standard_normal(3)
        at = centre + direction / (np.linalg.norm(direction) + 1e-12) * (radius + 0.3 * r)
        cavity = (ellipsoid_radius(tissue.shape, at, r * rng.uniform(0.8, 1.2, 3)) < 1) & brain & ~keep
        if cavity.sum() >= 8:
            tissue[cavity] = CAVITY
            return
