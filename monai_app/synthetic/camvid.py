"""A synthetic CamVid (11 classes + void) street-scene dataset written in exactly the real on-disk layouts.

Every image is a street seen from a car: sky over buildings with windows along the horizon, a road with lane
markings running to a vanishing point, paved sidewalks, a fence, trees, poles carrying signs, cars, pedestrians and
bicyclists, and a few void patches, drawn far to near so that they occlude each other. Every class has its own
colour range and texture; each image its own brightness and tint. The label is drawn with the same primitives as the
image. Generation is deterministic for a given seed. Layouts: see :func:`write_camvid`. Images are RGB PNG, labels
mode "L" PNG with values 0-11 (:data:`CLASSES`).
"""

from __future__ import annotations

import logging
import numbers
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from monai_app.errors import DatasetError, UserInputError
from monai_app.files import atomic_path

logger = logging.getLogger(__name__)

CLASSES = ("sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian", "bicyclist",
           "void")
SKY, BUILDING, POLE, ROAD, SIDEWALK, TREE, SIGN, FENCE, CAR, PEDESTRIAN, BICYCLIST, VOID = range(len(CLASSES))
# (image folder, label folder) of the train, val and test splits; None: the layout has no such split.
LAYOUTS = {"seed": (("images_prepped_train", "annotations_prepped_train"),
                    ("images_prepped_test", "annotations_prepped_test"), None),
           "segnet": (("train", "trainannot"), ("val", "valannot"), ("test", "testannot"))}
# The real sequences: (name, frame-number format, first frame); frames are 30 apart (1 Hz at 30 fps).
SEQUENCES = (("0001TP", "{:06d}", 6690), ("0006R0", "f{:05d}", 930), ("0016E5", "{:05d}", 390),
             ("Seq05VD", "f{:05d}", 0))
# Per-class standard deviation of the pixel noise (the texture a network can pick up besides colour).
NOISE = np.array([2, 5, 3, 6, 8, 22, 3, 6, 4, 7, 7, 10], dtype=np.float32)
FACADES = ((150, 86, 66), (188, 170, 140), (122, 122, 128), (170, 150, 110), (105, 80, 70))
SIGN_COLOURS = ((205, 30, 30), (30, 70, 190), (230, 200, 40), (235, 235, 235))
MIN_SIDE = 16
Colour = Sequence[float] | np.ndarray  # RGB, clipped to 0-255 when drawn


class _Scene:
    """An RGB image and its label map, drawn together: every shape goes to both unless its class is None."""

    def __init__(self, sky: np.ndarray) -> None:
        self.image = Image.fromarray(sky)
        self.label = Image.new("L", self.image.size, SKY)
        self.height, self.width = sky.shape[:2]
        self._rgb, self._lab = ImageDraw.Draw(self.image), ImageDraw.Draw(self.label)

    def draw(self, kind: str, xy: Sequence, cls: int | None, colour: Colour, **kwargs: object) -> None:
        """``ImageDraw.<kind>(xy, fill=...)`` on the image (``colour``) and, unless ``cls`` is None, on the label."""
        colour = tuple(int(np.clip(c, 0, 255)) for c in colour)
        getattr(self._rgb, kind)(xy, fill=colour, **kwargs)
        if cls is not None:
            getattr(self._lab, kind)(xy, fill=cls, **kwargs)

    def box(self, cls: int | None, colour: Colour, x0: float, y0: float, x1: float, y1: float) -> None:
        self.draw("rectangle", [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], cls, colour)

    def blob(self, cls: int | None, colour: Colour, cx: float, cy: float, rx: float, ry: float) -> None:
        self.draw("ellipse", [cx - abs(rx), cy - abs(ry), cx + abs(rx), cy + abs(ry)], cls, colour)


def _jitter(rng: np.random.Generator, colour: Colour, spread: float = 15.0) -> np.ndarray:
    return np.asarray(colour, dtype=float) + rng.uniform(-spread, spread, 3)


def _sky(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """A vertical gradient from blue-grey at the top to a hazy horizon (uint8 H x W x 3)."""
    t = np.linspace(0.0, 1.0, hw[0])[:, None, None]
    top, low = _jitter(rng, (110, 150, 205), 20), _jitter(rng, (200, 210, 222), 15)
    return np.broadcast_to((1 - t) * top + t * low, (*hw, 3)).clip(0, 255).astype(np.uint8)


def _buildings(scene: _Scene, rng: np.random.Generator, horizon: float) -> None:
    """A row of facades of random width and height along the horizon, with a grid of windows (image only)."""
    w, h = scene.width, scene.height
    x = -rng.uniform(0, 0.1) * w
    while x < w:
        bw, top = w * rng.uniform(0.1, 0.28), horizon - h * rng.uniform(0.1, 0.42)
        if rng.random() < 0.2:  # a gap that shows the sky
            x += bw * 0.5
            continue
        facade = _jitter(rng, FACADES[rng.integers(len(FACADES))])
        scene.box(BUILDING, facade, x, top, x + bw, h)
        step = max(3.0, bw / rng.uniform(4, 7))
        glass = facade * rng.uniform(0.3, 0.5)
        for wx in np.arange(x + step * 0.3, x + bw - step * 0.6, step):
            for wy in np.arange(top + step * 0.4, horizon + 0.3 * (h - horizon), step * 1.2):
                scene.box(None, glass, wx, wy, wx + step * 0.45, wy + step * 0.55)
        x += bw


def _tree(scene: _Scene, rng: np.random.Generator, cx: float, base: float, size: float) -> None:
    """A trunk and a crown of overlapping green blobs."""
    scene.box(TREE, _jitter(rng, (85, 60, 40), 10), cx - size * 0.06, base - size, cx + size * 0.06, base)
    for _ in range(int(rng.integers(3, 6))):
        scene.blob(TREE, _jitter(rng, (60, 115, 45), 20), cx + size * rng.uniform(-0.35, 0.35),
                   base - size * rng.uniform(0.9, 1.3), size * rng.uniform(0.25, 0.45), size * rng.uniform(0.2, 0.4))


def _ground(scene: _Scene, rng: np.random.Generator, horizon: float, vx: float) -> dict[str, float]:
    """Sidewalks and the road (with curbs and a dashed centre line); returns the road geometry."""
    w, h = scene.width, scene.height
    top, bottom, centre = w * rng.uniform(0.02, 0.05), w * rng.uniform(0.35, 0.6), vx + w * rng.uniform(-0.1, 0.1)
    for sign in (-1, 1):
        outer_y = h * rng.uniform(0.6, 0.9)
        edge = 0.0 if sign < 0 else float(w)
        scene.draw("polygon", [(vx + sign * 2.5 * top, horizon), (edge, outer_y), (edge, h), (centre, h),
                               (vx, horizon)], SIDEWALK, _jitter(rng, (165, 150, 132), 12))
        for t in np.linspace(0.1, 1.0, 7) ** 1.5:  # paving joints, closer together towards the horizon
            y = horizon + t * (h - horizon)
            reach = min(1.0, (y - horizon) / (outer_y - horizon))  # where the joint meets the outer edge
            outer = vx + sign * 2.5 * top + reach * (edge - vx - sign * 2.5 * top)
            scene.draw("line", [(vx + sign * top, y), (outer, y)], None, (120, 110, 100), width=1)
    geometry = {"horizon": horizon, "vx": vx, "top": top, "bottom": bottom, "centre": centre, "height": h}
    left, right = [(vx - top, horizon), (centre - bottom, h)], [(vx + top, horizon), (centre + bottom, h)]
    scene.draw("polygon", left + right[::-1], ROAD, _jitter(rng, (88, 86, 94), 10))
    curb = max(1, int(w / 200))
    for line in (left, right):
        scene.draw("line", line, None, (60, 58, 62), width=curb)
    for t0 in np.arange(rng.uniform(0.0, 0.2), 1.0, 0.2):  # dashes of the centre line
        ys = [horizon + t * (h - horizon) for t in (t0, t0 + 0.1)]
        scene.draw("line", [(vx + (centre - vx) * (y - horizon) / (h - horizon), y) for y in ys], ROAD,
                   (225, 225, 215), width=max(1, int(w / 160 * (t0 + 0.1))))
    return geometry


def _across(road: dict[str, float], t: float, u: float) -> tuple[float, float]:
    """(x, y) at depth ``t`` (0 horizon, 1 bottom edge) and ``u`` across the road (-1 left edge, 1 right edge)."""
    y = road["horizon"] + t * (road["height"] - road["horizon"])
    half = road["top"] + (road["bottom"] - road["top"]) * t
    return road["vx"] + (road["centre"] - road["vx"]) * t + u * half, y


def _fence(scene: _Scene, rng: np.random.Generator, road: dict[str, float]) -> None:
    """A striped fence band along one side of the street, taller nearer the camera."""
    side, (t0, t1) = rng.choice((-1, 1)), sorted(rng.uniform(0.05, 0.9, 2))
    u = side * rng.uniform(1.4, 2.2)
    (xa, ya), (xb, yb) = _across(road, t0, u), _across(road, t1 + 0.1, u)
    tall = scene.height * rng.uniform(0.15, 0.3)
    wood = _jitter(rng, (140, 112, 80), 20)
    scene.draw("polygon", [(xa, ya), (xb, yb), (xb, yb - tall * (t1 + 0.1)), (xa, ya - tall * t0)], FENCE, wood)
    for f in np.linspace(0.0, 1.0, int(rng.integers(6, 14))):
        x, y = xa + f * (xb - xa), ya + f * (yb - ya)
        scene.draw("line", [(x, y), (x, y - tall * (t0 + f * (t1 + 0.1 - t0)))], None, wood * 0.55,
                   width=max(1, int(scene.width / 250)))


def _pole(scene: _Scene, rng: np.random.Generator, road: dict[str, float], t: float, side: int) -> None:
    """A grey pole on the sidewalk carrying a sign (a coloured plate or disc) near its top."""
    x, y = _across(road, t, side * rng.uniform(1.1, 1.5))
    tall, half = scene.height * (0.25 + 0.45 * t), max(0.5, scene.width * 0.006 * t)
    scene.box(POLE, _jitter(rng, (95, 95, 100), 10), x - half, y - tall, x + half, y)
    plate, colour = scene.width * rng.uniform(0.02, 0.05) * (0.4 + t), SIGN_COLOURS[rng.integers(len(SIGN_COLOURS))]
    sy = y - tall * rng.uniform(0.75, 0.95)
    if rng.random() < 0.5:
        scene.box(SIGN, _jitter(rng, colour, 10), x - plate, sy - plate * 0.7, x + plate, sy + plate * 0.7)
    else:
        scene.blob(SIGN, _jitter(rng, colour, 10), x, sy, plate * 0.8, plate * 0.8)


def _car(scene: _Scene, rng: np.random.Generator, road: dict[str, float], t: float, u: float) -> None:
    """A car seen from behind: a body box, a narrower cabin with dark glass, tyres and tail lamps."""
    x, y = _across(road, t, u)
    cw = scene.width * 0.3 * (0.15 + t)
    ch, paint = cw * rng.uniform(0.7, 0.9), _jitter(rng, (rng.integers(20, 230, 3)), 5)
    dark = (30, 30, 32)
    for wx in (x - cw * 0.4, x + cw * 0.4):
        scene.box(CAR, dark, wx - cw * 0.08, y - ch * 0.15, wx + cw * 0.08, y)
    scene.draw("rounded_rectangle", [x - cw / 2, y - ch * 0.6, x + cw / 2, y - ch * 0.1], CAR, paint,
               radius=max(1, int(cw * 0.08)))
    scene.draw("polygon", [(x - cw * 0.45, y - ch * 0.58), (x - cw * 0.33, y - ch), (x + cw * 0.33, y - ch),
                           (x + cw * 0.45, y - ch * 0.58)], CAR, paint)
    scene.draw("polygon", [(x - cw * 0.38, y - ch * 0.62), (x - cw * 0.3, y - ch * 0.93),
                           (x + cw * 0.3, y - ch * 0.93), (x + cw * 0.38, y - ch * 0.62)], CAR, (45, 55, 70))
    for lx in (x - cw * 0.4, x + cw * 0.4):
        scene.box(CAR, (190, 25, 30), lx - cw * 0.06, y - ch * 0.5, lx + cw * 0.06, y - ch * 0.42)


def _person(scene: _Scene, rng: np.random.Generator, x: float, y: float, tall: float, cls: int) -> None:
    """An upright figure (legs, torso, head); a bicyclist (``cls`` BICYCLIST) also gets a bicycle under it."""
    clothes, limb = _jitter(rng, rng.integers(30, 200, 3), 5), max(1, int(tall * 0.08))
    if cls == BICYCLIST:
        r = tall * 0.2
        for wx in (x - r * 1.2, x + r * 1.2):
            scene.draw("arc", [wx - r, y - 2 * r, wx + r, y], cls, (25, 25, 25), start=0, end=360, width=limb)
        scene.draw("line", [(x - r * 1.2, y - r), (x, y - r), (x + r * 1.2, y - r)], cls, (180, 30, 30), width=limb)
        y -= r
    for dx in (-0.06, 0.06):
        scene.draw("line", [(x + dx * tall, y), (x + dx * tall * 0.5, y - tall * 0.45)], cls, clothes * 0.5,
                   width=limb)
    scene.box(cls, clothes, x - tall * 0.11, y - tall * 0.8, x + tall * 0.11, y - tall * 0.42)
    scene.blob(cls, _jitter(rng, (200, 160, 130), 25), x, y - tall * 0.89, tall * 0.08, tall * 0.1)


def _void(scene: _Scene, rng: np.random.Generator) -> None:
    """A few unlabelled patches (odd dark polygons) and, sometimes, the ego car's bonnet along the bottom."""
    w, h = scene.width, scene.height
    for _ in range(int(rng.integers(1, 4))):
        cx, cy, r = w * rng.uniform(0, 1), h * rng.uniform(0.3, 1), w * rng.uniform(0.01, 0.04)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 5))
        scene.draw("polygon", [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles], VOID,
                   rng.integers(0, 60, 3))
    if rng.random() < 0.35:
        scene.draw("chord", [-0.1 * w, h * rng.uniform(0.9, 0.96), 1.1 * w, h * 1.2], VOID, (20, 20, 24),
                   start=180, end=360)


def _street(scene: _Scene, rng: np.random.Generator, road: dict[str, float]) -> None:
    """Poles, trees, cars, pedestrians and bicyclists (at least one of each kind but trees), far ones first."""
    h, side = scene.height, lambda: float(rng.choice((-1, 1)))
    items = [(t, lambda t=t, s=side(): _pole(scene, rng, road, t, s))
             for t in rng.uniform(0.15, 0.9, rng.integers(1, 4))]
    for t in rng.uniform(0.2, 0.9, rng.integers(0, 3)):
        x, y = _across(road, t, side() * rng.uniform(1.5, 2.2))
        items.append((t, lambda x=x, y=y, t=t: _tree(scene, rng, x, y, h * (0.15 + 0.35 * t))))
    for t in rng.uniform(0.1, 0.8, rng.integers(1, 4)):
        items.append((t, lambda t=t, u=rng.uniform(-0.6, 0.6): _car(scene, rng, road, t, u)))
    for cls, (low, high), count in ((PEDESTRIAN, (1.15, 1.8), rng.integers(1, 4)), (BICYCLIST, (0.7, 0.9), 1)):
        for t in rng.uniform(0.2, 0.95, count):
            x, y = _across(road, t, side() * rng.uniform(low, high))
            items.append((t, lambda x=x, y=y, t=t, c=cls: _person(scene, rng, x, y, h * (0.06 + 0.4 * t), c)))
    for _, draw in sorted(items, key=lambda item: item[0]):
        draw()


def _render(seed: int, index: int, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of a dataset: (RGB uint8 H x W x 3, labels uint8 H x W in 0-11)."""
    rng = np.random.default_rng([seed, index])
    height, width = hw
    scene = _Scene(_sky(rng, hw))
    horizon, vx = height * rng.uniform(0.38, 0.5), width * rng.uniform(0.4, 0.6)
    _buildings(scene, rng, horizon)
    for _ in range(int(rng.integers(0, 3))):  # trees in front of the buildings, beyond the sidewalk
        _tree(scene, rng, width * rng.uniform(0, 1), horizon + height * rng.uniform(0, 0.1),
              height * rng.uniform(0.15, 0.3))
    road = _ground(scene, rng, horizon, vx)
    _fence(scene, rng, road)
    _street(scene, rng, road)
    _void(scene, rng)
    label = np.asarray(scene.label, dtype=np.uint8)
    image = np.asarray(scene.image, dtype=np.float32)
    sigma = NOISE[label][..., None]
    image += sigma * (0.8 * rng.standard_normal((*hw, 1), dtype=np.float32)
                      + 0.35 * rng.standard_normal((*hw, 3), dtype=np.float32))
    image = image * np.float32(rng.uniform(0.65, 1.2)) + rng.uniform(-8, 8, 3).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), label


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_args(root: Path, layout: str, counts: dict[str, int], size: tuple[int, int], seed: int) -> tuple[int, int]:
    """Validate the arguments of :func:`write_camvid`; return (H, W) as plain ints."""
    if root.exists() and not root.is_dir():
        raise UserInputError(f"{root}: out exists and is not a folder")
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown CamVid layout {layout!r}; choose one of {sorted(LAYOUTS)}")
    for name, value in (*counts.items(), ("seed", seed)):
        if not _is_int(value) or value < (low := int(name == "train")):
            raise UserInputError(f"{name} must be an integer >= {low}, got {value!r}")
    dims = tuple(size) if isinstance(size, (tuple, list)) else ()
    if len(dims) != 2 or not all(_is_int(d) and d >= MIN_SIDE for d in dims):
        raise UserInputError(f"size must be two integers >= {MIN_SIDE} (H, W), got {size!r}")
    return int(dims[0]), int(dims[1])


def _names(counts: list[int]) -> list[list[tuple[str, int]]]:
    """Per split, sorted (file stem, render index) pairs; stems follow the real sequences, unique across splits."""
    stems = []
    for index in range(sum(counts)):
        step, which = divmod(index, len(SEQUENCES))
        seq, frame, first = SEQUENCES[which]
        stems.append((f"{seq}_{frame.format(first + 30 * step)}", index))
    ends = np.cumsum(counts).tolist()
    return [sorted(stems[end - count:end]) for count, end in zip(counts, ends)]


def write_camvid(out: str | os.PathLike, layout: str = "seed", train: int = 12, val: int = 4, test: int = 4,
                 size: tuple[int, int] = (360, 480), seed: int = 0, progress: bool = False) -> dict[str, list[str]]:
    """Write a synthetic CamVid dataset in exactly the real layout ``layout``; return the file stems of each split.

    Args:
        out: folder to write into (created; files of the same names are replaced).
        layout: ``seed`` (``images_prepped_train``/``annotations_prepped_train``; the ``val`` images go to
            ``images_prepped_test``/``annotations_prepped_test``, ``test`` is ignored) or ``segnet``
            (``train``/``trainannot``, ``val``/``valannot``, ``test``/``testannot``).
        train: number of training images (>= 1).
        val: number of validation images.
        test: number of test images (``segnet`` only).
        size: image size (H, W), each >= 16; the real images are 360 x 480.
        seed: non-negative seed; the same arguments give identical files.
        progress: show a progress bar over images.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``: sorted stems such as ``0001TP_006690``.

    Raises:
        DatasetError: unknown layout (a ``ValueError``); UserInputError: another argument is out of range.
    """
    counts = {"train": train, "val": val, "test": test}
    root = Path(out)
    hw = _check_args(root, layout, counts, size, seed)
    folders = LAYOUTS[layout]
    splits = _names([count if folders[k] else 0 for k, count in enumerate(counts.values())])
    jobs = [(folders[k], stem, index) for k, split in enumerate(splits) for stem, index in split]
    for (images, labels), stem, index in tqdm(jobs, desc="synthetic CamVid", unit="image") if progress else jobs:
        image, label = _render(seed, index, hw)
        for array, folder in ((image, images), (label, labels)):
            with atomic_path(root / folder / f"{stem}.png") as tmp:
                Image.fromarray(array).save(tmp, format="PNG")
    logger.info("%s: wrote %d synthetic CamVid images (%s layout)", root, len(jobs), layout)
    return {name: [stem for stem, _ in split] for name, split in zip(counts, splits)}
