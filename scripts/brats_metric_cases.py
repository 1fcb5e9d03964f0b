"""Small synthetic BraTS label maps that exercise the edge cases of the official BraTS scoring tools.

This module needs only numpy and nibabel: it is imported by ``scripts/make_brats_metric_fixtures.py`` in the
virtual environments of the two official reference implementations and may be imported by the project's tests,
so it must never import ``monai_app``, torch, scipy or pandas.

Every case is a (reference, prediction) pair of uint8 label maps written as gzip NIfTI files::

    <out_dir>/reference/<case_id>-seg.nii.gz    reference (ground truth), BraTS naming
    <out_dir>/prediction/<case_id>.nii.gz       prediction

so that the BraTS 2025 matcher (5 digits - 3 digits in the file name) pairs them. Lesions are ellipsoids whose
surface is deformed by a random low-order polynomial of the direction (fixed seeds), so their surfaces are not
trivially symmetric. Only elementwise ``+ - * / sqrt`` are used on the voxel grid (all correctly rounded in IEEE
arithmetic) and the random numbers come from ``numpy.random.default_rng(seed).uniform``, whose stream numpy keeps
stable, so the same label maps come out under numpy 1.x and 2.x.

Label formats:

* ``brats2023``: 1 NETC (necrosis), 2 SNFH (edema), 3 ET, optional 4 RC (resection cavity; in no tumour region).
  WT = {1, 2, 3}, TC = {1, 3}, ET = {3}.
* ``brats2024ped``: 1 ET, 2 NETC, 3 CC (cystic component), 4 ED (edema). WT = {1, 2, 3, 4}, TC = {1, 2, 3}, ET = {1}.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

#: Shape of every label map except the MET case (voxels, x y z).
SHAPE: tuple[int, int, int] = (80, 80, 64)
#: Shape of the MET case, which needs room for twelve well-separated lesion sites.
MET_SHAPE: tuple[int, int, int] = (96, 96, 64)
#: Note attached to the anisotropic case.
SPACING_NOTE = "official values are not in millimetres here"

# brats2023 labels
NETC, SNFH, ET, RC = 1, 2, 3, 4
# brats2024ped labels
PED_ET, PED_NETC, PED_CC, PED_ED = 1, 2, 3, 4


@dataclass
class Case:
    """One synthetic case: a reference and a prediction label map with their metadata.

    Attributes:
        case_id: BraTS-style id, e.g. ``BraTS-GLI-00001-000``.
        subchallenge: ``GLI``, ``MET``, ``MEN``, ``PED`` or ``SSA``.
        label_format: ``brats2023`` or ``brats2024ped``.
        spacing: Voxel size in millimetres (x, y, z), also the diagonal of the affine.
        description: What the case tests.
        reference: Reference label map, uint8, shape (x, y, z).
        prediction: Prediction label map, uint8, same shape.
        extra: Further metadata copied into the case dict (e.g. ``spacing_note``).
    """

    case_id: str
    subchallenge: str
    label_format: str
    spacing: tuple[float, float, float]
    description: str
    reference: np.ndarray
    prediction: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """Return the JSON-serialisable metadata of the case (no arrays).

        Returns:
            A dict with ``case_id``, ``subchallenge``, ``label_format``, ``spacing``, ``description``, the relative
            paths ``reference`` and ``prediction`` (relative to the output folder) and any ``extra`` keys.
        """
        meta: dict[str, Any] = {
            "case_id": self.case_id,
            "subchallenge": self.subchallenge,
            "label_format": self.label_format,
            "spacing": [float(s) for s in self.spacing],
            "description": self.description,
            "reference": reference_relpath(self.case_id),
            "prediction": prediction_relpath(self.case_id),
        }
        meta.update(self.extra)
        return meta


def reference_relpath(case_id: str) -> str:
    """Return the path of a case's reference file relative to the output folder.

    Args:
        case_id: BraTS-style case id.

    Returns:
        ``reference/<case_id>-seg.nii.gz``.
    """
    return f"reference/{case_id}-seg.nii.gz"


def prediction_relpath(case_id: str) -> str:
    """Return the path of a case's prediction file relative to the output folder.

    Args:
        case_id: BraTS-style case id.

    Returns:
        ``prediction/<case_id>.nii.gz``.
    """
    return f"prediction/{case_id}.nii.gz"


# ----------------------------------------------------------------------------------------------------------------
# geometry helpers (numpy only)
# ----------------------------------------------------------------------------------------------------------------


def _unit(vec: np.ndarray) -> tuple[float, float, float]:
    """Normalise a 3-vector to unit length (Python floats).

    Args:
        vec: Array of three numbers, not all zero.

    Returns:
        The unit vector as a tuple of floats.
    """
    x, y, z = (float(v) for v in vec)
    norm = (x * x + y * y + z * z) ** 0.5
    return x / norm, y / norm, z / norm


def blob(shape: tuple[int, int, int], center: tuple[float, float, float], radii: tuple[float, float, float],
         seed: int, noise: float = 0.12) -> np.ndarray:
    """Return a boolean ellipsoid whose radius is deformed by a random low-order function of the direction.

    The surface is ``rho <= 1 + noise * f(u)`` with ``rho`` the ellipsoidal radius, ``u`` the unit direction in
    normalised coordinates and ``f`` a sum of four random products of two or three direction cosines (each term
    bounded by 1 in magnitude, the sum by about 1).

    Args:
        shape: Volume shape (x, y, z).
        center: Centre in voxel coordinates.
        radii: Semi-axes in voxels.
        seed: Seed of the deformation (same seed, same shape).
        noise: Relative amplitude of the deformation (0 gives a plain ellipsoid).

    Returns:
        Boolean array of ``shape``.
    """
    rng = np.random.default_rng(seed)
    coeffs = rng.uniform(-1.0, 1.0, size=4) / 2.0
    vecs = [_unit(rng.uniform(-1.0, 1.0, size=3)) for _ in range(10)]
    ix, iy, iz = np.indices(shape, dtype=np.float64)
    dx = (ix - center[0]) / radii[0]
    dy = (iy - center[1]) / radii[1]
    dz = (iz - center[2]) / radii[2]
    rho = np.sqrt(dx * dx + dy * dy + dz * dz)
    safe = np.where(rho > 0.0, rho, 1.0)
    ux, uy, uz = dx / safe, dy / safe, dz / safe

    def dot(v: tuple[float, float, float]) -> np.ndarray:
        return ux * v[0] + uy * v[1] + uz * v[2]

    f = (coeffs[0] * dot(vecs[0]) * dot(vecs[1])
         + coeffs[1] * dot(vecs[2]) * dot(vecs[3])
         + coeffs[2] * dot(vecs[4]) * dot(vecs[5]) * dot(vecs[6])
         + coeffs[3] * dot(vecs[7]) * dot(vecs[8]) * dot(vecs[9]))
    return rho <= 1.0 + noise * f


def dilate_box(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """Dilate a boolean mask with the 3x3x3 box (26-neighbourhood), numpy only.

    Args:
        mask: Boolean 3-D array.
        iterations: Number of dilations.

    Returns:
        The dilated mask (a new array).
    """
    out = mask.astype(bool)
    for _ in range(iterations):
        padded = np.pad(out, 1)
        acc = np.zeros_like(out)
        sx, sy, sz = out.shape
        for ox in range(3):
            for oy in range(3):
                for oz in range(3):
                    acc |= padded[ox:ox + sx, oy:oy + sy, oz:oz + sz]
        out = acc
    return out


def tumour(shape: tuple[int, int, int], center: tuple[float, float, float], radii: tuple[float, float, float],
           seed: int, *, tc_frac: float = 0.6, netc_frac: float = 0.32, with_et: bool = True,
           with_netc: bool = True, noise: float = 0.12) -> np.ndarray:
    """Return a nested glioma-like tumour in brats2023 labels: NETC core, ET rim, SNFH shell.

    Args:
        shape: Volume shape.
        center: Centre in voxels.
        radii: Semi-axes of the whole tumour (edema) in voxels.
        seed: Base seed; the three nested surfaces use ``seed``, ``seed + 1`` and ``seed + 2``.
        tc_frac: Tumour core semi-axes as a fraction of ``radii``.
        netc_frac: Necrosis semi-axes as a fraction of ``radii``.
        with_et: If False, the whole tumour core is NETC (no label 3).
        with_netc: If False, the tumour core is ET only.
        noise: Surface deformation amplitude.

    Returns:
        uint8 label map with labels 0-3.
    """
    wt = blob(shape, center, radii, seed, noise)
    core_radii = tuple(r * tc_frac for r in radii)
    tc = blob(shape, center, core_radii, seed + 1, noise) & wt  # type: ignore[arg-type]
    netc_radii = tuple(r * netc_frac for r in radii)
    netc = blob(shape, center, netc_radii, seed + 2, noise) & tc  # type: ignore[arg-type]
    lab = np.zeros(shape, np.uint8)
    lab[wt] = SNFH
    lab[tc] = ET if with_et else NETC
    if with_netc or not with_et:
        lab[netc] = NETC
    return lab


def paste(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Copy the non-zero labels of ``src`` into ``dst`` (in place) and return ``dst``.

    Args:
        dst: Label map to write into.
        src: Label map whose non-zero voxels win.

    Returns:
        ``dst``.
    """
    dst[src > 0] = src[src > 0]
    return dst


def _shift(center: tuple[float, float, float], by: tuple[float, float, float]) -> tuple[float, float, float]:
    return center[0] + by[0], center[1] + by[1], center[2] + by[2]


def _scale(radii: tuple[float, float, float], factor: float) -> tuple[float, float, float]:
    return radii[0] * factor, radii[1] * factor, radii[2] * factor


# ----------------------------------------------------------------------------------------------------------------
# the cases
# ----------------------------------------------------------------------------------------------------------------


def _case_partial_overlap() -> tuple[np.ndarray, np.ndarray]:
    c, r = (40.0, 40.0, 32.0), (16.0, 14.0, 12.0)
    ref = tumour(SHAPE, c, r, seed=101)
    pred = tumour(SHAPE, _shift(c, (3.0, -2.0, 1.0)), _scale(r, 0.88), seed=111)
    return ref, pred


def _case_missed_and_fp() -> tuple[np.ndarray, np.ndarray]:
    ca, ra = (24.0, 26.0, 22.0), (12.0, 11.0, 10.0)
    cb, rb = (56.0, 54.0, 42.0), (10.0, 9.0, 8.0)
    ref = tumour(SHAPE, ca, ra, seed=201)
    paste(ref, tumour(SHAPE, cb, rb, seed=204))
    pred = tumour(SHAPE, _shift(ca, (1.0, 1.0, 0.0)), _scale(ra, 1.05), seed=211)
    paste(pred, tumour(SHAPE, (64.0, 14.0, 50.0), (5.0, 5.0, 4.5), seed=214, tc_frac=0.65))
    return ref, pred


def _case_et_empty_reference() -> tuple[np.ndarray, np.ndarray]:
    c, r = (40.0, 38.0, 32.0), (15.0, 13.0, 11.0)
    ref = tumour(SHAPE, c, r, seed=301, with_et=False)
    pred = tumour(SHAPE, _shift(c, (1.0, 0.0, -1.0)), _scale(r, 0.95), seed=311)
    return ref, pred


def _case_et_empty_both() -> tuple[np.ndarray, np.ndarray]:
    c, r = (38.0, 42.0, 30.0), (14.0, 15.0, 11.0)
    ref = tumour(SHAPE, c, r, seed=401, with_et=False)
    pred = tumour(SHAPE, _shift(c, (-2.0, 1.0, 1.0)), _scale(r, 1.04), seed=411, with_et=False)
    return ref, pred


def _case_empty_prediction() -> tuple[np.ndarray, np.ndarray]:
    ref = tumour(SHAPE, (42.0, 38.0, 32.0), (15.0, 14.0, 12.0), seed=501)
    return ref, np.zeros(SHAPE, np.uint8)


def _et_half(shape: tuple[int, int, int], center: tuple[float, float, float], radii: tuple[float, float, float],
             seed: int, et_side: int) -> np.ndarray:
    """Tumour whose ET occupies only one x half of the core (x >= cx + 2 or x <= cx - 2), the rest NETC."""
    lab = tumour(shape, center, radii, seed, with_et=False)
    ix = np.indices(shape)[0]
    half = ix >= center[0] + 2 if et_side > 0 else ix <= center[0] - 2
    lab[(lab == NETC) & half] = ET
    return lab


def _case_et_disjoint() -> tuple[np.ndarray, np.ndarray]:
    c, r = (40.0, 40.0, 32.0), (15.0, 14.0, 12.0)
    ref = _et_half(SHAPE, c, r, seed=601, et_side=+1)
    pred = _et_half(SHAPE, _shift(c, (1.0, -1.0, 0.0)), _scale(r, 0.97), seed=611, et_side=-1)
    return ref, pred


def _case_resection_cavity() -> tuple[np.ndarray, np.ndarray]:
    c, r = (34.0, 40.0, 32.0), (13.0, 12.0, 11.0)
    ref = tumour(SHAPE, c, r, seed=701)
    cavity = blob(SHAPE, (c[0] + 17.0, c[1], c[2]), (8.0, 7.0, 7.0), seed=705)
    ref[cavity & (ref == 0)] = RC
    pred = tumour(SHAPE, _shift(c, (1.0, 1.0, 0.0)), _scale(r, 0.95), seed=711)
    cavity_p = blob(SHAPE, (c[0] + 19.0, c[1] + 3.0, c[2] + 1.0), (7.5, 7.0, 6.5), seed=715)
    pred[cavity_p & (pred == 0)] = RC
    return ref, pred


def _ped_tumour(shape: tuple[int, int, int], center: tuple[float, float, float], radii: tuple[float, float, float],
                seed: int) -> np.ndarray:
    """Paediatric tumour in brats2024ped labels: ED shell, NETC core with an ET part and a cyst (CC)."""
    wt = blob(shape, center, radii, seed)
    tc = blob(shape, center, _scale(radii, 0.62), seed + 1) & wt
    et = blob(shape, _shift(center, (radii[0] * 0.35, 0.0, 0.0)), _scale(radii, 0.33), seed + 2) & tc
    cc = blob(shape, _shift(center, (-radii[0] * 0.25, radii[1] * 0.1, 0.0)), _scale(radii, 0.2), seed + 3) & tc
    lab = np.zeros(shape, np.uint8)
    lab[wt] = PED_ED
    lab[tc] = PED_NETC
    lab[et] = PED_ET
    lab[cc & ~et] = PED_CC
    return lab


def _case_ped() -> tuple[np.ndarray, np.ndarray]:
    c, r = (40.0, 40.0, 32.0), (17.0, 15.0, 13.0)
    ref = _ped_tumour(SHAPE, c, r, seed=801)
    pred = _ped_tumour(SHAPE, _shift(c, (2.0, -1.0, 1.0)), _scale(r, 0.93), seed=811)
    return ref, pred


def _met_lesion(shape: tuple[int, int, int], center: tuple[float, float, float], radius: float, seed: int,
                edema: bool) -> np.ndarray:
    """Small metastasis in brats2023 labels: ET, a NETC core from radius 3, an optional thin SNFH shell."""
    lab = np.zeros(shape, np.uint8)
    if edema:
        lab[blob(shape, center, (radius + 1.5,) * 3, seed + 2, noise=0.1)] = SNFH
    lab[blob(shape, center, (radius,) * 3, seed, noise=0.1)] = ET
    if radius >= 3.0:
        lab[blob(shape, center, (radius * 0.4,) * 3, seed + 1, noise=0.1)] = NETC
    return lab


#: (radius, has edema) of the ten MET reference lesions; lesions 1 and 6 are missed by the prediction.
MET_LESIONS: list[tuple[float, bool]] = [
    (1.9, False), (2.1, False), (2.4, False), (2.8, False), (3.2, True),
    (3.6, True), (4.0, False), (4.4, False), (2.2, False), (3.0, False),
]
MET_MISSED: tuple[int, ...] = (1, 6)
#: Twelve well-separated sites; the first ten hold the reference lesions, the last two the false positives.
MET_SITES: list[tuple[float, float, float]] = [
    (x, y, z) for z in (18.0, 46.0) for y in (26.0, 70.0) for x in (18.0, 48.0, 78.0)
]


def _case_met() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(909)
    ref = np.zeros(MET_SHAPE, np.uint8)
    pred = np.zeros(MET_SHAPE, np.uint8)
    for i, (radius, edema) in enumerate(MET_LESIONS):
        jitter = rng.uniform(-2.0, 2.0, size=3)
        site = _shift(MET_SITES[i], (float(jitter[0]), float(jitter[1]), float(jitter[2])))
        paste(ref, _met_lesion(MET_SHAPE, site, radius, seed=9000 + 10 * i, edema=edema))
        resize = float(rng.uniform(0.85, 1.15))
        move = rng.uniform(-1.0, 1.0, size=3)
        if i not in MET_MISSED:
            paste(pred, _met_lesion(MET_SHAPE, _shift(site, (float(move[0]), float(move[1]), float(move[2]))),
                                    radius * resize, seed=9500 + 10 * i, edema=edema))
    for j, radius in enumerate((1.8, 2.5)):
        fp = blob(MET_SHAPE, MET_SITES[10 + j], (radius,) * 3, seed=9900 + j, noise=0.1)
        pred[fp] = ET
    return ref, pred


def _case_men() -> tuple[np.ndarray, np.ndarray]:
    c, r = (40.0, 40.0, 32.0), (14.0, 12.0, 10.0)
    ref = tumour(SHAPE, c, r, seed=1001, tc_frac=0.8, netc_frac=0.25)
    pred = tumour(SHAPE, _shift(c, (-1.0, 2.0, 0.0)), _scale(r, 1.06), seed=1011, tc_frac=0.78, netc_frac=0.2)
    return ref, pred


#: Gap in voxels (along y) between the two whole-tumour components of case 11.
CLOSE_GAP = 3


def _case_close_components() -> tuple[np.ndarray, np.ndarray]:
    ra, rb = (10.0, 9.0, 9.0), (9.0, 8.0, 8.0)
    ca = (40.0, 20.0, 32.0)
    cb = (40.0, 20.0 + ra[1] + rb[1] + CLOSE_GAP + 1.0, 32.0)
    a = tumour(SHAPE, ca, ra, seed=1101, noise=0.03)
    b = tumour(SHAPE, cb, rb, seed=1104, noise=0.03)
    ref = paste(a.copy(), b)
    span = (cb[1] + rb[1]) - (ca[1] - ra[1])
    cp = (40.5, (ca[1] - ra[1]) + span / 2.0, 32.0)
    pred = tumour(SHAPE, cp, (9.5, span / 2.0 + 0.5, 8.5), seed=1111, tc_frac=0.6, netc_frac=0.3)
    return ref, pred


#: Centres of the three small lesions of case 12.
SMALL_SITES: list[tuple[float, float, float]] = [(20.0, 20.0, 16.0), (58.0, 24.0, 40.0), (30.0, 60.0, 48.0)]


def _case_only_small_lesions() -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros(SHAPE, np.uint8)
    for k, site in enumerate(SMALL_SITES):
        wt = blob(SHAPE, site, (2.2, 2.2, 2.2), seed=1201 + k, noise=0.1)
        et = blob(SHAPE, site, (1.3, 1.3, 1.3), seed=1211 + k, noise=0.1)
        ref[wt] = SNFH
        ref[et & wt] = ET
    return ref, np.zeros(SHAPE, np.uint8)


def build_cases() -> list[Case]:
    """Build all cases in memory (deterministic).

    Returns:
        The cases, in the order they are documented.

    Raises:
        AssertionError: If a built case does not have the property it is meant to test.
    """
    cases: list[Case] = []
    iso = (1.0, 1.0, 1.0)

    def add(num: int, sub: str, fmt: str, desc: str, pair: tuple[np.ndarray, np.ndarray],
            spacing: tuple[float, float, float] = iso, **extra: Any) -> None:
        ref, pred = pair
        cases.append(Case(f"BraTS-{sub}-{num:05d}-000", sub, fmt, spacing, desc, ref.astype(np.uint8),
                          pred.astype(np.uint8), dict(extra)))

    partial = _case_partial_overlap()
    add(1, "GLI", "brats2023", "partial overlap: one tumour; prediction shifted by (3,-2,1) voxels and shrunk to 0.88",
        partial)
    add(2, "GLI", "brats2023", "missed lesion + false positive: two reference tumours; prediction finds the first "
        "(slightly larger) and adds a small spurious tumour far away", _case_missed_and_fp())
    add(3, "GLI", "brats2023", "ET empty in the reference only (core all NETC); prediction has an ET rim",
        _case_et_empty_reference())
    add(4, "GLI", "brats2023", "ET empty in reference and prediction (labels 1 and 2 only)", _case_et_empty_both())
    add(5, "GLI", "brats2023", "empty prediction (all zeros) against a full tumour", _case_empty_prediction())
    add(6, "GLI", "brats2023", "predicted ET disjoint from the reference ET (opposite x halves of the core); WT and TC "
        "overlap", _case_et_disjoint())
    add(7, "GLI", "brats2023", "resection cavity (label 4) next to the tumour in both maps, partly overlapping",
        _case_resection_cavity())
    add(20, "PED", "brats2024ped", "paediatric labels (1 ET, 2 NETC, 3 CC, 4 ED), all four present in both maps; "
        "prediction shifted and shrunk", _case_ped())
    add(10, "MET", "brats2023", "ten small metastases (about 30 to 560 voxels of WT, three under 50); prediction "
        "misses two (one under 50 voxels), adds two small ET-only false positives and re-sizes the rest by 0.85-1.15",
        _case_met())
    add(30, "MEN", "brats2023", "one meningioma-like lesion (mostly ET), dilation 1 in the 2023 rule", _case_men())
    add(11, "GLI", "brats2023", f"two reference tumours {CLOSE_GAP} voxels apart (merged by the 2023 dilation rule); "
        "prediction is one elongated tumour covering both", _case_close_components())
    add(12, "GLI", "brats2023", "reference holds only three small lesions (each at most 50 voxels), prediction empty",
        _case_only_small_lesions())
    add(13, "GLI", "brats2023", "same voxel arrays as BraTS-GLI-00001-000 at 1 x 1 x 2.5 mm spacing "
        "(affine diag(1, 1, 2.5))", partial, spacing=(1.0, 1.0, 2.5), spacing_note=SPACING_NOTE)
    _check(cases)
    return cases


def _check(cases: list[Case]) -> None:
    """Assert the properties each case is built to have (guards against edits that silently break a case)."""
    by_id = {c.case_id: c for c in cases}
    assert len(by_id) == len(cases)
    assert len({c.case_id.split("-")[2] for c in cases}) == len(cases), "5-digit numbers must be distinct"
    for c in cases:
        assert c.reference.shape == c.prediction.shape
        allowed = {0, 1, 2, 3, 4} if (c.label_format == "brats2024ped" or c.case_id.endswith("00007-000")) else \
            {0, 1, 2, 3}
        assert set(np.unique(c.reference)) <= allowed and set(np.unique(c.prediction)) <= allowed, c.case_id
    assert not (by_id["BraTS-GLI-00003-000"].reference == ET).any()
    assert (by_id["BraTS-GLI-00003-000"].prediction == ET).any()
    assert not (by_id["BraTS-GLI-00004-000"].reference == ET).any()
    assert not (by_id["BraTS-GLI-00004-000"].prediction == ET).any()
    assert not by_id["BraTS-GLI-00005-000"].prediction.any()
    c6 = by_id["BraTS-GLI-00006-000"]
    assert (c6.reference == ET).any() and (c6.prediction == ET).any()
    assert not ((c6.reference == ET) & (c6.prediction == ET)).any()
    c7 = by_id["BraTS-GLI-00007-000"]
    assert ((c7.reference == RC) & (c7.prediction == RC)).any()
    assert ((c7.reference == RC) != (c7.prediction == RC)).any()
    c8 = by_id["BraTS-PED-00020-000"]
    for lab in (PED_ET, PED_NETC, PED_CC, PED_ED):
        assert (c8.reference == lab).any() and (c8.prediction == lab).any(), lab
    c11 = by_id["BraTS-GLI-00011-000"]
    wt = c11.reference > 0
    ys = np.nonzero(wt.any(axis=(0, 2)))[0]
    gap = [y for y in range(ys.min(), ys.max() + 1) if y not in set(ys.tolist())]
    assert 2 <= len(gap) <= 4, gap
    c12 = by_id["BraTS-GLI-00012-000"]
    assert not c12.prediction.any()
    total = 0
    for x, y, z in SMALL_SITES:
        box = c12.reference[int(x) - 6:int(x) + 7, int(y) - 6:int(y) + 7, int(z) - 6:int(z) + 7] > 0
        assert 0 < int(box.sum()) <= 50
        total += int(box.sum())
    assert total == int((c12.reference > 0).sum())


def affine_for(spacing: tuple[float, float, float]) -> np.ndarray:
    """Return the diagonal affine ``diag(sx, sy, sz, 1)`` used for every case.

    Args:
        spacing: Voxel size in millimetres.

    Returns:
        4x4 float64 affine.
    """
    return np.diag([float(spacing[0]), float(spacing[1]), float(spacing[2]), 1.0])


def save_label_map(arr: np.ndarray, spacing: tuple[float, float, float], path: Path) -> None:
    """Write a uint8 label map as gzip NIfTI with a diagonal affine (qform and sform code 1, units mm).

    Args:
        arr: Label map.
        spacing: Voxel size in millimetres.
        path: Output ``.nii.gz`` path; parent folders are created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.ascontiguousarray(arr, dtype=np.uint8), affine_for(spacing))
    img.header.set_data_dtype(np.uint8)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine_for(spacing), code=1)
    img.set_sform(affine_for(spacing), code=1)
    nib.save(img, str(path))


def make_cases(out_dir: str | Path) -> list[dict[str, Any]]:
    """Build every case and write its reference and prediction files under ``out_dir``.

    Files: ``<out_dir>/reference/<case_id>-seg.nii.gz`` and ``<out_dir>/prediction/<case_id>.nii.gz``.

    Args:
        out_dir: Output folder (created if missing).

    Returns:
        One dict per case with ``case_id``, ``subchallenge``, ``label_format``, ``spacing``, ``description``,
        ``reference`` and ``prediction`` (paths relative to ``out_dir``) and, for the anisotropic case,
        ``spacing_note``.
    """
    out = Path(out_dir)
    metas = []
    for case in build_cases():
        save_label_map(case.reference, case.spacing, out / reference_relpath(case.case_id))
        save_label_map(case.prediction, case.spacing, out / prediction_relpath(case.case_id))
        metas.append(case.metadata())
    return metas


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: write the cases into a folder and print their metadata as JSON.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder to write reference/ and prediction/ into")
    args = parser.parse_args(argv)
    print(json.dumps(make_cases(args.out_dir), indent=1))


if __name__ == "__main__":
    main()
