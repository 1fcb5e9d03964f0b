"""A synthetic Clothing Co-Parsing (CCP) dataset in exactly the real on-disk layout (:mod:`monai_app.datasets.ccp`).

Every photo shows one standing person before a plain or patterned backdrop (``null``): skin, hair, and a random
outfit (a top, a dress or rarely underwear; trousers, shorts, leggings or a skirt; often a coat; shoes; sometimes
socks, a hat, a scarf or tie; a few accessories). Each garment is drawn as one of the fine tags of its group (a
blouse, a t-shirt or a sweater for a top, ...), whose id in the real label list is its ``groundtruth`` value, so the
59 -> 14 grouping is exercised. Colours and textures (denim, knit, stripes, checks, dots) follow the garment's kind.
Generation is deterministic for a given seed.
"""

from __future__ import annotations

import logging
import numbers
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from monai_app.errors import UserInputError
from monai_app.files import atomic_path

logger = logging.getLogger(__name__)

# The 59 tags of the real label_list.mat, in its order (their index is the value in "groundtruth").
LABEL_NAMES = (
    "null", "accessories", "bag", "belt", "blazer", "blouse", "bodysuit", "boots", "bra", "bracelet", "cape",
    "cardigan", "clogs", "coat", "dress", "earrings", "flats", "glasses", "gloves", "hair", "hat", "heels", "hoodie",
    "intimate", "jacket", "jeans", "jumper", "leggings", "loafers", "necklace", "panties", "pants", "pumps", "purse",
    "ring", "romper", "sandals", "scarf", "shirt", "shoes", "shorts", "skin", "skirt", "sneakers", "socks",
    "stockings", "suit", "sunglasses", "sweater", "sweatshirt", "swimwear", "t-shirt", "tie", "tights", "top", "vest",
    "wallet", "watch", "wedges")
TAG = {name: i for i, name in enumerate(LABEL_NAMES)}
# The fine tags drawn for each kind of garment, and the colours of each kind.
TOPS = ("blouse", "shirt", "t-shirt", "top", "sweater", "sweatshirt", "jumper", "bodysuit")
BOTTOMS = ("jeans", "pants", "shorts", "leggings")
COATS = ("coat", "jacket", "blazer", "cardigan", "hoodie", "vest", "cape", "suit")
SHOES = ("shoes", "boots", "heels", "sneakers", "flats", "sandals", "pumps", "loafers", "wedges", "clogs")
SOCKS = ("socks", "tights", "stockings")
UNDERWEAR = ("bra", "intimate", "swimwear", "panties")
ACCESSORIES = ("bag", "purse", "belt", "necklace", "glasses", "sunglasses", "bracelet", "watch", "earrings", "gloves",
               "wallet", "ring", "accessories")
COLOURS = {
    "top": ((238, 236, 230), (245, 215, 220), (170, 200, 235), (240, 210, 90), (200, 40, 50), (150, 150, 155)),
    "bottom": ((35, 40, 70), (25, 25, 28), (55, 80, 130), (185, 165, 120), (110, 110, 115)),
    "dress": ((190, 30, 45), (30, 45, 100), (235, 150, 175), (60, 120, 80), (245, 240, 225)),
    "skirt": ((20, 20, 22), (160, 30, 40), (200, 180, 150), (80, 60, 110)),
    "coat": ((28, 28, 30), (190, 150, 100), (95, 95, 100), (85, 95, 50), (30, 35, 60), (100, 30, 45)),
    "shoes": ((15, 15, 15), (95, 55, 30), (235, 235, 235), (170, 25, 35), (180, 140, 100)),
    "socks": ((20, 20, 20), (90, 90, 95), (235, 235, 235), (120, 85, 70)),
    "hat": ((25, 25, 25), (215, 195, 150), (150, 30, 40), (100, 110, 120)),
    "accessory": ((205, 170, 60), (190, 190, 200), (105, 60, 35), (20, 20, 20), (175, 30, 50)),
    "neckwear": ((190, 40, 40), (220, 170, 40), (120, 120, 125), (40, 60, 120)),
    "underwear": ((20, 20, 20), (245, 245, 245), (235, 160, 180), (170, 20, 40)),
    "skin": ((240, 205, 175), (225, 180, 145), (195, 145, 105), (145, 100, 70), (100, 70, 50)),
    "hair": ((25, 20, 18), (70, 45, 30), (125, 85, 50), (205, 170, 105), (150, 65, 35)),
}
KIND = {**{t: "top" for t in TOPS}, **{t: "bottom" for t in BOTTOMS}, "dress": "dress", "romper": "dress",
        "skirt": "skirt", **{t: "coat" for t in COATS}, **{t: "shoes" for t in SHOES}, **{t: "socks" for t in SOCKS},
        "hat": "hat", **{t: "accessory" for t in ACCESSORIES}, "scarf": "neckwear", "tie": "neckwear",
        **{t: "underwear" for t in UNDERWEAR}, "skin": "skin", "hair": "hair"}
TEXTURES = {"jeans": ("denim",), "shorts": ("denim", "plain"), "sweater": ("knit",), "jumper": ("knit",),
            "cardigan": ("knit",), "shirt": ("plain", "check", "stripes"), "t-shirt": ("plain", "stripes"),
            "blouse": ("plain", "dots"), "dress": ("plain", "dots", "stripes"), "skirt": ("plain", "pleats"),
            "coat": ("plain", "check"), "blazer": ("plain", "check"), "scarf": ("check", "stripes", "knit"),
            "hair": ("hair",), "skin": ("skin",), "tights": ("plain",), "pants": ("plain", "check")}
MIN_SIDE = 32


class _Figure:
    """The fine-tag label map of one standing person; shapes are given in units of the person's height (x from the
    body's axis, y from the top of the head) and drawn back to front."""

    def __init__(self, hw: tuple[int, int], cx: float, top: float, tall: float) -> None:
        self.label = Image.new("L", (hw[1], hw[0]), TAG["null"])
        self._draw = ImageDraw.Draw(self.label)
        self.cx, self.top, self.tall = cx, top, tall

    def _xy(self, points) -> list[tuple[float, float]]:
        return [(self.cx + x * self.tall, self.top + y * self.tall) for x, y in points]

    def poly(self, tag: str, *points: tuple[float, float], mirror: bool = False) -> None:
        """A polygon (and its mirror image across the body's axis)."""
        for sign in (1, -1) if mirror else (1,):
            self._draw.polygon(self._xy([(sign * x, y) for x, y in points]), fill=TAG[tag])

    def oval(self, tag: str, x: float, y: float, rx: float, ry: float, mirror: bool = False) -> None:
        for sign in (1, -1) if mirror else (1,):
            (x0, y0), (x1, y1) = self._xy([(sign * x - rx, y - ry), (sign * x + rx, y + ry)])
            self._draw.ellipse([x0, y0, max(x0, x1), max(y0, y1)], fill=TAG[tag])

    def limb(self, tag: str, a: tuple[float, float], b: tuple[float, float], width: float,
             mirror: bool = False) -> None:
        """A thick segment from ``a`` to ``b`` with a round end at ``b``."""
        for sign in (1, -1) if mirror else (1,):
            (x0, y0), (x1, y1) = self._xy([(sign * a[0], a[1]), (sign * b[0], b[1])])
            self._draw.line([(x0, y0), (x1, y1)], fill=TAG[tag], width=max(1, round(width * self.tall)))
            self.oval(tag, sign * b[0], b[1], width / 2, width / 2)


def _body(fig: _Figure, rng: np.random.Generator, look: dict) -> None:
    """Long hair behind, bare legs, socks, shoes and the lower garment."""
    g, lower, low = look["geometry"], look["lower"], look["socks"]
    if look["long_hair"]:
        fig.poly("hair", (0, 0.05), (0.06, 0.05), (0.075, look["long_hair"]), (0, look["long_hair"]), mirror=True)
    fig.limb("skin", (0.045, 0.5), (g["foot"], 0.93), 0.055, mirror=True)
    if low:
        tag, y0 = low
        fig.limb(tag, (0.045 + (g["foot"] - 0.045) * (y0 - 0.5) / 0.43, y0), (g["foot"], 0.935), 0.057, mirror=True)
    shoe = look["shoes"]
    if shoe == "boots":
        fig.limb(shoe, (g["foot"], rng.uniform(0.78, 0.84)), (g["foot"], 0.93), 0.05, mirror=True)
    fig.oval(shoe, g["foot"] + 0.015, 0.955, 0.035 if shoe != "heels" else 0.028, 0.025, mirror=True)
    if lower in BOTTOMS:
        cuff, width = (0.6, 0.075) if lower == "shorts" else (0.925, 0.06 if lower != "leggings" else 0.05)
        fig.poly(lower, (0, 0.42), (g["waist"], 0.42), (g["hip"], 0.53), (0, 0.53), mirror=True)
        fig.limb(lower, (0.045, 0.5), (0.045 + (g["foot"] - 0.045) * (cuff - 0.5) / 0.43, cuff), width, mirror=True)
    elif lower in ("skirt", "dress", "romper"):
        (hem, flare) = look["hem"]
        fig.poly(lower, (0, 0.42), (g["waist"], 0.42), (g["hip"] + flare, hem), (0, hem), mirror=True)


def _torso(fig: _Figure, rng: np.random.Generator, look: dict) -> None:
    """Neck, arms, the top (or underwear), a coat, and what is worn round the neck."""
    g, top, sleeve = look["geometry"], look["top"], look["sleeve"]
    fig.poly("skin", (-0.02, 0.1), (0.02, 0.1), (0.025, 0.18), (-0.025, 0.18))
    if top in UNDERWEAR:
        fig.poly("skin", (0, 0.165), (g["shoulder"], 0.165), (g["hip"], 0.52), (0, 0.52), mirror=True)
        y0, y1 = (0.44, 0.53) if top == "panties" else (0.2, 0.29) if top != "swimwear" else (0.2, 0.52)
        fig.poly(top, (0, y0), (g["waist"] + 0.01, y0), (g["waist"] + 0.01, y1), (0, y1), mirror=True)
    else:
        fig.poly(top, (0, 0.165), (0.03, 0.16), (g["shoulder"], 0.17), (g["waist"] + 0.01, 0.47), (0, 0.47),
                 mirror=True)
    fig.limb("skin", (g["shoulder"] - 0.02, 0.19), g["elbow"], 0.038, mirror=True)
    fig.limb("skin", g["elbow"], g["wrist"], 0.03, mirror=True)
    fig.oval("skin", g["wrist"][0] + 0.005, g["wrist"][1] + 0.025, 0.02, 0.028, mirror=True)
    if sleeve and top not in UNDERWEAR:
        fig.limb(top, (g["shoulder"] - 0.02, 0.19), g["elbow"], 0.05, mirror=True)
        if sleeve == "long":
            fig.limb(top, g["elbow"], g["wrist"], 0.042, mirror=True)
    if look["coat"]:
        _coat(fig, look["coat"], g, rng)
    if look["neck"] == "scarf":
        fig.oval("scarf", 0, 0.165, 0.06, 0.025)
        fig.limb("scarf", (0.025, 0.17), (0.035, rng.uniform(0.3, 0.42)), 0.035)
    elif look["neck"] == "tie":
        fig.poly("tie", (-0.01, 0.165), (0.01, 0.165), (0.018, 0.36), (0, 0.385), (-0.018, 0.36))


def _coat(fig: _Figure, coat: str, g: dict, rng: np.random.Generator) -> None:
    """An open coat: two front panels (wider for a cape) and, but for a vest or cape, sleeves over the arms."""
    hem = {"coat": 0.75, "cape": 0.62, "vest": 0.46}.get(coat, 0.55) + rng.uniform(-0.04, 0.05)
    if coat == "hoodie":
        fig.oval("hoodie", 0, 0.15, 0.07, 0.035)
    edge, out = rng.uniform(0.025, 0.06), g["shoulder"] + (0.08 if coat == "cape" else 0.005)
    fig.poly(coat, (0.02, 0.16), (out, 0.165), (g["hip"] + (0.1 if coat == "cape" else 0.03), hem), (edge, hem),
             mirror=True)
    if coat not in ("vest", "cape"):
        fig.limb(coat, (g["shoulder"] - 0.015, 0.19), g["elbow"], 0.055, mirror=True)
        fig.limb(coat, g["elbow"], g["wrist"], 0.046, mirror=True)


def _head(fig: _Figure, rng: np.random.Generator, look: dict) -> None:
    """Accessories over the body, then hair, face, hat, glasses and earrings."""
    g, items = look["geometry"], look["accessories"]
    wx, wy = g["wrist"]
    for item in items:
        if item == "belt" and look["lower"] in (*BOTTOMS, "skirt"):
            fig.poly(item, (0, 0.42), (g["waist"] + 0.005, 0.42), (g["waist"] + 0.008, 0.445), (0, 0.445), mirror=True)
        elif item == "necklace":
            fig.limb(item, (0.035, 0.17), (0, 0.23), 0.008, mirror=True)
        elif item in ("bag", "purse"):
            fig.limb(item, (g["shoulder"] - 0.04, 0.17), (wx + 0.035, 0.43), 0.01)
            fig.poly(item, (wx, 0.42), (wx + 0.09, 0.42), (wx + 0.1, 0.54), (wx - 0.01, 0.54))
        elif item in ("bracelet", "watch"):
            fig.limb(item, (wx - 0.001, wy - 0.012), (wx, wy), 0.036)
        elif item in ("gloves", "wallet", "ring"):
            size = {"gloves": (0.023, 0.03), "wallet": (0.03, 0.018), "ring": (0.008, 0.008)}[item]
            fig.oval(item, wx + 0.005, wy + 0.025, *size, mirror=item == "gloves")
    if look["bun"]:
        fig.oval("hair", 0, -0.005, 0.03, 0.025)
    fig.oval("hair", 0, 0.06, 0.05, 0.062)
    fig.oval("skin", 0, 0.075, 0.041, 0.054)
    if look["hat"]:
        fig.oval("hat", 0, 0.018, 0.05, 0.032)
        fig.oval("hat", 0, 0.038, 0.085, 0.012)
    if "accessories" in items:
        fig.limb("accessories", (-0.045, 0.04), (0.045, 0.04), 0.012)
    for item in (i for i in items if i in ("glasses", "sunglasses")):
        fig.oval(item, 0.018, 0.068, 0.016, 0.011, mirror=True)
    if "earrings" in items:
        fig.oval("earrings", 0.043, 0.092, 0.007, 0.01, mirror=True)


def _look(rng: np.random.Generator) -> dict:
    """A random outfit (fine tag names) and body proportions, in units of the person's height."""
    pick = lambda names: str(rng.choice(names))  # noqa: E731
    shoulder, foot, arm = rng.uniform(0.1, 0.125), rng.uniform(0.03, 0.09), rng.uniform(0.0, 0.05)
    geometry = {"shoulder": shoulder, "waist": rng.uniform(0.068, 0.085), "hip": rng.uniform(0.085, 0.105),
                "foot": foot, "elbow": (shoulder + 0.02, 0.33), "wrist": (shoulder + 0.02 + arm, 0.47)}
    roll = rng.random()
    lower = pick(("dress", "dress", "romper")) if roll < 0.25 else "skirt" if roll < 0.45 else pick(BOTTOMS)
    top = lower if lower in ("dress", "romper") else pick(UNDERWEAR) if rng.random() < 0.1 else pick(TOPS)
    lower = None if top == "panties" else lower
    bare_legs = lower in (None, "skirt", "dress", "romper", "shorts")
    socks = pick(SOCKS if bare_legs else ("socks",)) if rng.random() < (0.6 if bare_legs else 0.25) else None
    neckwear = ("scarf", "tie") if top in ("shirt", "blouse") else ("scarf",)
    return {"geometry": geometry, "lower": lower, "top": top, "sleeve": pick((None, "short", "long", "long")),
            "hem": (0.58, 0.06) if lower == "romper" else (rng.uniform(0.58, 0.8), rng.uniform(0.01, 0.07)),
            "socks": (socks, {"socks": 0.85, "stockings": 0.62, "tights": 0.5}[socks]) if socks else None,
            "coat": pick(COATS) if rng.random() < 0.5 or top in UNDERWEAR else None, "shoes": pick(SHOES),
            "hat": rng.random() < 0.3, "neck": pick(neckwear) if rng.random() < 0.35 else None,
            "accessories": [str(a) for a in rng.choice(ACCESSORIES, int(rng.integers(1, 4)), replace=False)],
            "long_hair": float(rng.choice((0, rng.uniform(0.22, 0.4)))), "bun": rng.random() < 0.15}


def _texture(rng: np.random.Generator, tag: str, hw: tuple[int, int], width: int) -> np.ndarray:
    """(H, W, 3) float32 fabric of ``tag``: its kind's colour and texture (periods scale with the photo's width)."""
    colour = np.asarray(COLOURS[KIND[tag]][rng.integers(len(COLOURS[KIND[tag]]))], np.float32) + rng.uniform(-12, 12, 3)
    kind = str(rng.choice(TEXTURES.get(tag, ("plain", "plain", "stripes"))))
    y, x = np.mgrid[: hw[0], : hw[1]].astype(np.float32)
    period = max(2.0, width * rng.uniform(0.012, 0.03))
    shade = np.ones(hw, np.float32)
    if kind in ("stripes", "check", "pleats"):
        bands = (y // period) % 2 if kind == "stripes" else (x // period) % 2
        shade -= (0.35 if kind != "pleats" else 0.15) * (bands + ((y // period) % 2 if kind == "check" else 0)) / 2
    elif kind == "dots":
        shade += 0.3 * (((x % period) < period / 2) & ((y % period) < period / 2))
    elif kind == "knit":
        shade += 0.12 * np.sin(2 * np.pi * x / period) * np.sin(2 * np.pi * y / (0.7 * period))
    texture = colour * shade[..., None]
    grain = {"denim": 14.0, "hair": 10.0, "skin": 2.0}.get(kind, 4.0)
    texture += grain * rng.standard_normal((*hw, 1), dtype=np.float32)
    if kind in ("denim", "hair"):  # vertical threads / strands
        texture += 2 * grain * rng.standard_normal((1, hw[1], 1), dtype=np.float32)
    return texture


def _backdrop(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """A wall (plain, tiled or striped) over a floor, with a few doors or panels; (H, W, 3) float32."""
    wall, floor = rng.uniform(60, 230, 3), rng.uniform(50, 200, 3)
    y, x = np.mgrid[: hw[0], : hw[1]].astype(np.float32)
    image = np.broadcast_to(wall * (1 - 0.25 * y / hw[0])[..., None], (*hw, 3)).copy()
    period = hw[1] * rng.uniform(0.05, 0.2)
    pattern = str(rng.choice(("plain", "tiles", "stripes")))
    if pattern != "plain":
        lines = ((x % period) < period * 0.08) | ((y % period) < period * 0.08 if pattern == "tiles" else False)
        image[lines] *= 0.8
    for _ in range(int(rng.integers(0, 4))):  # doors, panels, posts
        (x0, x1), y0 = np.sort(rng.uniform(0, 1, 2)) * hw[1], rng.uniform(0, 0.5) * hw[0]
        image[int(y0): int(hw[0] * 0.9), int(x0): int(min(x1, x0 + 0.3 * hw[1]))] = rng.uniform(30, 240, 3)
    horizon = int(hw[0] * rng.uniform(0.78, 0.9))
    image[horizon:] = floor + 6 * rng.standard_normal((hw[0] - horizon, hw[1], 1))
    return image + 3 * rng.standard_normal((*hw, 1), dtype=np.float32)


def _render(seed: int, index: int, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Photo ``index``: (RGB uint8 H x W x 3, fine tag ids uint8 H x W); H varies like the real photos."""
    rng = np.random.default_rng([seed, index])
    hw = (max(MIN_SIDE, round(hw[0] * rng.uniform(0.96, 1.05))), hw[1])
    tall = hw[0] * rng.uniform(0.8, 0.92)
    fig = _Figure(hw, hw[1] * rng.uniform(0.4, 0.6), rng.uniform(0.02, 0.98) * (hw[0] - tall), tall)
    look = _look(rng)
    for part in (_body, _torso, _head):
        part(fig, rng, look)
    label = np.asarray(fig.label, dtype=np.uint8)
    image = _backdrop(rng, hw)
    for tag in np.unique(label)[1:]:
        rows, cols = (np.flatnonzero((label == tag).any(axis)) for axis in (1, 0))
        box = np.s_[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
        mask = label[box] == tag
        image[box][mask] = _texture(rng, LABEL_NAMES[tag], mask.shape, hw[1])[mask]
    edges = np.zeros(hw, bool)
    edges[:, 1:] |= label[:, 1:] != label[:, :-1]
    edges[1:] |= label[1:] != label[:-1]
    image[edges] *= 0.75
    image = image * rng.uniform(0.8, 1.15) + rng.uniform(-10, 10, 3)
    return np.clip(image, 0, 255).astype(np.uint8), label


def _check_args(root: Path, pixel_level: int, image_level: int, size: tuple[int, int], seed: int) -> tuple[int, int]:
    """Validate the arguments of :func:`write_ccp`; return (H, W) as plain ints."""
    is_int = lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)  # noqa: E731
    if root.exists() and not root.is_dir():
        raise UserInputError(f"{root}: out exists and is not a folder")
    for name, value, low in (("pixel_level", pixel_level, 1), ("image_level", image_level, 0), ("seed", seed, 0)):
        if not is_int(value) or value < low:
            raise UserInputError(f"{name} must be an integer >= {low}, got {value!r}")
    if pixel_level + image_level > 9999:
        raise UserInputError(f"at most 9999 photos (4-digit names), got {pixel_level + image_level}")
    dims = tuple(size) if isinstance(size, (tuple, list)) else ()
    if len(dims) != 2 or not all(is_int(d) and d >= MIN_SIDE for d in dims):
        raise UserInputError(f"size must be two integers >= {MIN_SIDE} (H, W), got {size!r}")
    return int(dims[0]), int(dims[1])


def _savemat(path: Path, variable: str, value: np.ndarray) -> None:
    from scipy.io import savemat

    with atomic_path(path) as tmp:
        savemat(str(tmp), {variable: value}, do_compression=True)


def write_ccp(out: str | os.PathLike, pixel_level: int = 12, image_level: int = 4, size: tuple[int, int] = (832, 550),
              seed: int = 0, progress: bool = False) -> list[str]:
    """Write a synthetic CCP dataset in the real layout; return the ids of the pixel-level photos.

    Args:
        out: folder to write into (created; files of the same names are replaced).
        pixel_level: photos with a pixel-level annotation (ids ``0001``...), >= 1.
        image_level: photos with image-level tags only (the ids that follow, as the real ``1005``...).
        size: photo size (H, W), each >= 32; heights vary by -4..+5 % per photo (the real ones are 801-873 x 550).
        seed: non-negative seed; the same arguments give identical files.
        progress: show a progress bar over photos.

    Raises:
        UserInputError: an argument is out of range.
    """
    root = Path(out)
    hw = _check_args(root, pixel_level, image_level, size, seed)
    names = np.empty((1, len(LABEL_NAMES)), dtype=object)
    names[0, :] = LABEL_NAMES
    _savemat(root / "label_list.mat", "label_list", names)
    indices = range(1, pixel_level + image_level + 1)
    for index in tqdm(indices, desc="synthetic CCP", unit="photo") if progress else indices:
        image, label = _render(seed, index, hw)
        with atomic_path(root / "photos" / f"{index:04d}.jpg") as tmp:
            Image.fromarray(image).save(tmp, format="JPEG", quality=90)
        if index <= pixel_level:
            _savemat(root / "annotations" / "pixel-level" / f"{index:04d}.mat", "groundtruth", label)
        else:
            _savemat(root / "annotations" / "image-level" / f"{index:04d}.mat", "tags", np.unique(label)[None])
    logger.info("%s: wrote %d synthetic CCP photos (%d pixel-level, %d image-level)", root, len(indices), pixel_level,
                image_level)
    return [f"{i:04d}" for i in range(1, pixel_level + 1)]
