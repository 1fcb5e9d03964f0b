"""A synthetic Carvana Image Masking dataset written in exactly the Kaggle on-disk layout.

Every car is photographed on a turntable in a light studio: ``views`` images per car (``<car_id>_01.jpg`` ...), the
view index turning the car so its silhouette goes from front to side to rear. A car is a rounded body in its own
colour (the same in all its views), a darker cabin glass, dark tyres with silver hubs and lamps; all of that is car
(mask 1). The soft shadow it casts on the floor, the wall/floor seam and the background are not (mask 0). Some
views place or scale the car so that it crosses the image border, as large cars do in the real photos. Generation
is deterministic for a given seed. Files: ``train/<car_id>_<NN>.jpg``, ``train_masks/<car_id>_<NN>_mask.gif``,
``train_masks.csv``, ``test/<car_id>_<NN>.jpg``, ``sample_submission.csv`` and ``metadata.csv``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import numbers
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from monai_app.datasets.rle import rle_encode
from monai_app.errors import UserInputError
from monai_app.files import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

MIN_SIDE = 16
CAR_COLOURS = ((196, 28, 36), (28, 62, 150), (32, 32, 36), (150, 153, 160), (96, 99, 106), (38, 98, 62),
               (226, 176, 40), (112, 22, 32), (22, 36, 72), (196, 198, 204), (168, 118, 70))
MODELS = (("Acura", "TL", ("Base", "SE")), ("Audi", "A4", ("2.0T", "Premium")), ("BMW", "3 Series", ("328i", "335i")),
          ("Chevrolet", "Malibu", ("LS", "LT")), ("Ford", "Fusion", ("SE", "Titanium")), ("Honda", "Civic", ("EX",)),
          ("Jeep", "Grand Cherokee", ("Laredo", "Limited")), ("Toyota", "Camry", ("LE", "SE", "XLE")))
# Materials drawn on the map; 0 is studio background, everything else is car.
BODY, WINDOW, TYRE, HUB, HEADLAMP, TAILLAMP, TRIM = range(1, 8)
FIXED_COLOURS = {WINDOW: (38, 42, 52), TYRE: (26, 26, 28), HUB: (150, 151, 156), HEADLAMP: (230, 230, 222),
                 TAILLAMP: (165, 24, 30)}


@dataclass(frozen=True)
class _Car:
    """The per-car constants, shared by all its views (lengths relative to the car's side length)."""

    colour: tuple[int, int, int]
    height: float  # roof height
    width: float  # track width
    belt: float  # beltline height as a fraction of the roof height
    wheel: float  # tyre radius as a fraction of the roof height
    roof: tuple[float, float]  # rear and front end of the roof in a side view (0 = rear bumper, 1 = front)


@dataclass(frozen=True)
class _View:
    """Where one photograph puts the car: centre x, ground y, side length (pixels) and turntable angle."""

    cx: float
    ground: float
    length: float
    angle: float


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_args(root: Path, cars: int, views: int, test_cars: int, size: tuple[int, int],
                seed: int) -> tuple[int, int]:
    """Validate the arguments of :func:`write_carvana`; return (H, W) as plain ints."""
    if root.exists() and not root.is_dir():
        raise UserInputError(f"{root}: out exists and is not a folder")
    for name, value, low, high in (("cars", cars, 1, 10**6), ("views", views, 1, 99),
                                   ("test_cars", test_cars, 0, 10**6), ("seed", seed, 0, 2**63)):
        if not _is_int(value) or not low <= value <= high:
            raise UserInputError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    dims = tuple(size) if isinstance(size, (tuple, list)) else ()
    if len(dims) != 2 or not all(_is_int(d) and d >= MIN_SIDE for d in dims):
        raise UserInputError(f"size must be two integers >= {MIN_SIDE} (H, W), got {size!r}")
    return int(dims[0]), int(dims[1])


def _car_ids(seed: int, count: int) -> list[str]:
    """``count`` unique 12-hex-digit car ids, deterministic for ``seed``."""
    rng, ids = random.Random(seed), []
    while len(ids) < count:
        car_id = f"{rng.getrandbits(48):012x}"
        if car_id not in ids:
            ids.append(car_id)
    return ids


def _make_car(seed: int, index: int) -> _Car:
    rng = np.random.default_rng([seed, index])
    rear = rng.uniform(0.22, 0.32)
    return _Car(colour=CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))], height=rng.uniform(0.30, 0.38),
                width=rng.uniform(0.40, 0.46), belt=rng.uniform(0.52, 0.60), wheel=rng.uniform(0.18, 0.22),
                roof=(rear, rear + rng.uniform(0.34, 0.44)))


def _make_view(rng: np.random.Generator, car: _Car, view: int, views: int, hw: tuple[int, int]) -> _View:
    """Turntable angle from the view index; every fourth view (and one in ten others) crosses the image border."""
    height, width = hw
    angle = 2 * math.pi * view / views + rng.uniform(-0.08, 0.08)
    ground = height * rng.uniform(0.74, 0.84)
    if view % 4 == 1 or rng.random() < 0.1:
        length = width * rng.uniform(0.80, 1.10)
        apparent = length * (abs(math.sin(angle)) + car.width * abs(math.cos(angle)))
        visible = apparent * rng.uniform(0.6, 0.9)  # the part left inside the frame
        cx = visible - apparent / 2 if rng.random() < 0.5 else width - visible + apparent / 2
    else:
        length = width * rng.uniform(0.50, 0.68)
        cx = width * (0.5 + rng.uniform(-0.06, 0.06))
    length = min(length, 0.95 * ground / car.height)  # the roof stays below the top edge
    return _View(cx=cx, ground=ground, length=length, angle=angle)


def _frame(car: _Car, view: _View) -> tuple[float, float, float, float]:
    """(x0, apparent width, roof height, sideness |sin|) of a view; u in [0, 1] maps to x0 + u * width."""
    side = abs(math.sin(view.angle))
    width = view.length * (side + car.width * abs(math.cos(view.angle)))
    return view.cx - width / 2, width, car.height * view.length, side


def _draw_car(draw: ImageDraw.ImageDraw, car: _Car, view: _View) -> None:
    """Draw the car's materials (far tyres, body, cabin, glass, near tyres, lamps) in painter's order."""
    x0, w, h, side = _frame(car, view)
    facing = 1.0 if math.sin(view.angle) >= 0 else -1.0  # +1: the front is on the right

    def x(u: float) -> float:
        return x0 + w * (u if facing > 0 else 1.0 - u)

    g, r = view.ground, car.wheel * h
    rx = r * (0.35 + 0.65 * side)
    near = [side * a + (1 - side) * b for a, b in ((0.17, 0.12), (0.83, 0.88))]
    if 0.25 < side < 0.92:  # oblique: the far tyres peek out from behind the body
        shift = 0.2 * (1 - side) * (1 if math.cos(view.angle) > 0 else -1)
        for u in near:
            _wheel(draw, x(u + shift), g - r - 0.04 * h, 0.85 * rx, 0.85 * r)
    belt = g - car.belt * h
    draw.rounded_rectangle(_box(x0, belt, x0 + w, g - 0.1 * h), radius=max(1, int(0.2 * car.belt * h)), fill=BODY)
    draw.rectangle(_box(x0 + 0.02 * w, g - 0.22 * h, x0 + 0.98 * w, g - 0.12 * h), fill=TRIM)
    bottom = [side * a + (1 - side) * b for a, b in ((0.09, 0.06), (0.92, 0.94))]
    top = [side * a + (1 - side) * b for a, b in ((car.roof[0], 0.17), (car.roof[1], 0.83))]
    draw.polygon(_cabin([x(u) for u in bottom], [x(u) for u in top], belt + 0.02 * h, g - h), fill=BODY)
    inset = [(bottom[0] + 0.04, bottom[1] - 0.04), (top[0] + 0.03, top[1] - 0.03)]
    glass = _cabin([x(u) for u in inset[0]], [x(u) for u in inset[1]], belt - 0.03 * h, g - 0.92 * h)
    draw.polygon(glass, fill=WINDOW)
    if side > 0.5:  # B-pillar
        draw.line([(x(0.5 * (inset[0][0] + inset[0][1])), belt), (x(0.5 * (inset[1][0] + inset[1][1])), g - 0.95 * h)],
                  fill=BODY, width=max(1, int(0.03 * w)))
    for u in near:
        _wheel(draw, x(u), g - r, rx, r)
    _lamps(draw, x, car, view, belt)


def _box(a: float, b: float, c: float, d: float) -> list[float]:
    """A PIL box with non-decreasing corners even for a degenerate (zero-sized) shape."""
    return [min(a, c), min(b, d), max(a, c), max(b, d)]


def _cabin(bottom: list[float], top: list[float], y_bottom: float, y_top: float) -> list[tuple[float, float]]:
    """A trapezoid with chamfered roof corners: the greenhouse outline."""
    cut = 0.18 * (y_bottom - y_top)
    return [(bottom[0], y_bottom), (top[0] - (top[0] - bottom[0]) * 0.2, y_top + cut), (top[0] + 0.5 * cut, y_top),
            (top[1] - 0.5 * cut, y_top), (top[1] + (bottom[1] - top[1]) * 0.2, y_top + cut), (bottom[1], y_bottom)]


def _wheel(draw: ImageDraw.ImageDraw, cx: float, cy: float, rx: float, ry: float) -> None:
    draw.ellipse(_box(cx - rx, cy - ry, cx + rx, cy + ry), fill=TYRE)
    draw.ellipse(_box(cx - 0.55 * rx, cy - 0.55 * ry, cx + 0.55 * rx, cy + 0.55 * ry), fill=HUB)


def _lamps(draw: ImageDraw.ImageDraw, x: Callable[[float], float], car: _Car, view: _View, belt: float) -> None:
    """Head and tail lamps at the ends in side views; a pair across the visible front (or rear) face otherwise."""
    _, w, h, side = _frame(car, view)
    front = math.cos(view.angle)
    face = car.width * abs(front) / (side + car.width * abs(front))  # share of the width that is the end face
    y0, y1 = belt + 0.05 * h, belt + 0.13 * h
    if face < 0.25:
        for u, lamp in ((0.965, HEADLAMP), (0.035, TAILLAMP)):
            draw.ellipse(_box(x(u) - 0.03 * w, y0, x(u) + 0.03 * w, y1), fill=lamp)
    if face > 0.15:
        start, lamp = (1.0 - face, HEADLAMP) if front > 0 else (0.0, TAILLAMP)
        for u in (start + 0.14 * face, start + 0.86 * face):
            draw.ellipse(_box(x(u) - 0.07 * face * w, y0, x(u) + 0.07 * face * w, y1), fill=lamp)


def _studio(rng: np.random.Generator, hw: tuple[int, int], view: _View, roof: float) -> np.ndarray:
    """Light grey studio background (float32 H x W x 3): wall and floor gradients, a seam line, a colour tint."""
    height, width = hw
    y = np.arange(height, dtype=np.float32)[:, None]
    xs = (np.arange(width, dtype=np.float32)[None, :] / width - 0.5) ** 2
    seam = int(view.ground - rng.uniform(0.3, 0.5) * roof)
    base = np.float32(rng.uniform(222.0, 240.0))
    wall = base - 14.0 * y / height - 20.0 * xs
    floor = base - 10.0 - 8.0 * (1.0 - y / height) - 16.0 * xs
    grey = np.where(y < seam, wall, floor)
    grey[max(0, seam - 1):max(0, seam + 1 + height // 500)] -= 28.0  # the wall/floor seam
    tint = rng.uniform(-3.0, 3.0, 3).astype(np.float32)
    return grey[..., None] + tint


def _shadow(hw: tuple[int, int], x0: float, w: float, ground: float, roof: float) -> np.ndarray:
    """Soft floor shadow under the car (float32 H x W in [0, 1]); it is not part of the mask."""
    height, width = hw
    layer = Image.new("L", (width, height), 0)
    ImageDraw.Draw(layer).ellipse(_box(x0 - 0.04 * w, ground - 0.06 * roof, x0 + 1.04 * w, ground + 0.05 * roof),
                                  fill=255)
    layer = layer.filter(ImageFilter.GaussianBlur(max(1.0, 0.04 * roof)))
    return np.asarray(layer, dtype=np.float32) / 255.0


def _paint(rng: np.random.Generator, material: np.ndarray, car: _Car, view: _View) -> np.ndarray:
    """The RGB photograph (uint8) of a material map: studio, shadow, shaded car paint and glass, sensor noise."""
    hw = material.shape
    x0, w, roof, _ = _frame(car, view)
    image = _studio(rng, hw, view, roof) * (1.0 - 0.5 * _shadow(hw, x0, w, view.ground, roof))[..., None]
    lut = np.zeros((8, 3), dtype=np.float32)
    lut[BODY], lut[TRIM] = car.colour, 0.45 * np.asarray(car.colour) + 12.0
    lut[list(FIXED_COLOURS)] = list(FIXED_COLOURS.values())
    y = np.arange(hw[0], dtype=np.float32)[:, None]
    depth = np.clip((y - (view.ground - roof)) / max(roof, 1.0), 0.0, 1.0)  # 0 at the roof, 1 on the ground
    shade = 1.15 - 0.4 * depth
    belt = 1.0 - car.belt
    gloss = 70.0 * np.exp(-(((depth - belt - 0.03) / 0.035) ** 2)) + 25.0 * (depth < belt)
    paint = lut[material] * shade[..., None]
    paint += np.where((material == BODY) | (material == WINDOW), gloss, 0.0)[..., None]
    image = np.where((material > 0)[..., None], paint, image)
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(3.0)
    return np.clip(image, 0.0, 255.0).astype(np.uint8)


def _render(seed: int, car_index: int, view_index: int, views: int, hw: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """One photograph of car ``car_index``: (RGB uint8 H x W x 3, mask uint8 H x W of 0 and 1)."""
    car = _make_car(seed, car_index)
    rng = np.random.default_rng([seed, car_index, view_index + 1])
    view = _make_view(rng, car, view_index, views, hw)
    canvas = Image.new("L", (hw[1], hw[0]), 0)
    _draw_car(ImageDraw.Draw(canvas), car, view)
    material = np.asarray(canvas)
    return _paint(rng, material, car, view), (material > 0).astype(np.uint8)


def _save_mask(mask: np.ndarray, path: Path) -> None:
    """A mode "P" GIF whose pixel values are exactly 0 and 1 (palette: 0 black, 1 white), as in train_masks/."""
    image = Image.fromarray(mask).convert("P")
    image.putpalette([0, 0, 0, 255, 255, 255])
    with atomic_path(path) as tmp:
        image.save(tmp, format="GIF", optimize=False)


def _csv(header: list[str], rows: list[list[str]]) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *rows])
    return text.getvalue()


def _metadata_rows(seed: int, car_ids: list[str]) -> list[list[str]]:
    """Made-up but plausible ``id,year,make,model,trim1,trim2`` rows, sorted by car id."""
    rng = random.Random(f"metadata-{seed}")
    rows = []
    for car_id in car_ids:
        make, model, trims = MODELS[rng.randrange(len(MODELS))]
        trim1 = rng.choice(trims)
        trim2 = rng.choice(("", "w/Tech", "w/Sport", "Sedan", "4dr"))
        rows.append([car_id, str(rng.randint(2004, 2016)), make, model, trim1, trim2])
    return sorted(rows)


def write_carvana(out: str | os.PathLike, cars: int = 4, views: int = 16, test_cars: int = 1,
                  size: tuple[int, int] = (1280, 1918), seed: int = 0, progress: bool = False) -> list[str]:
    """Write a synthetic Carvana dataset in exactly the Kaggle layout; return the sorted training image ids.

    Args:
        out: folder to write into (created; files of the same names are replaced).
        cars: number of training cars (>= 1), each photographed ``views`` times with a mask.
        views: turntable views per car, 1-99 (``<car_id>_01`` ... ``<car_id>_<views>``).
        test_cars: number of unlabelled cars under ``test/`` (listed in ``sample_submission.csv``).
        size: image size (H, W), each >= 16; the real photographs are 1280 x 1918.
        seed: non-negative seed; the same arguments give identical files.
        progress: show a progress bar over images.

    Returns:
        The training image ids (``"<car_id>_<NN>"``), sorted.

    Raises:
        UserInputError: an argument is out of range or ``out`` is a file.
    """
    root = Path(out)
    hw = _check_args(root, cars, views, test_cars, size, seed)
    car_ids = _car_ids(seed, cars + test_cars)
    jobs = [(c, v) for c in range(len(car_ids)) for v in range(views)]
    masks, tests = [], []
    for car, view in tqdm(jobs, desc="synthetic Carvana", unit="image") if progress else jobs:
        name = f"{car_ids[car]}_{view + 1:02d}"
        image, mask = _render(seed, car, view, views, hw)
        with atomic_path(root / ("train" if car < cars else "test") / f"{name}.jpg") as tmp:
            Image.fromarray(image).save(tmp, format="JPEG", quality=90)
        if car < cars:
            _save_mask(mask, root / "train_masks" / f"{name}_mask.gif")
            masks.append([f"{name}.jpg", rle_encode(mask)])
        else:
            tests.append([f"{name}.jpg", "1 1"])
    atomic_write_text(root / "train_masks.csv", _csv(["img", "rle_mask"], sorted(masks)))
    atomic_write_text(root / "sample_submission.csv", _csv(["img", "rle_mask"], sorted(tests)))
    atomic_write_text(root / "metadata.csv", _csv(["id", "year", "make", "model", "trim1", "trim2"],
                                                  _metadata_rows(seed, car_ids)))
    logger.info("%s: wrote %d training and %d test synthetic Carvana images (%d views per car)", root, len(masks),
                len(tests), views)
    return sorted(row[0][:-4] for row in masks)
