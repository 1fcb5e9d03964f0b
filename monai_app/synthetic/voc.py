"""A synthetic Pascal VOC 2012 segmentation dataset written in exactly the real ``VOCdevkit/VOC2012`` layout.

Every image is a background scene (a room, a field, a lake or a street: class 0, with clutter) holding one to three
objects of the 20 classes, drawn far to near so that they occlude each other. Every class has its own shape, colours and
texture (an aeroplane is a grey cross, a bus a long yellow box with windows, a cow white with black patches, ...).
Classes are dealt in a seeded cycle, so even small datasets show most of them. As in the real annotations, a void
band (255) runs along every object's outline and an occasional small "difficult" object is void as a whole. Image
sizes vary from 0.7 to 1.0 of ``size`` per side. Generation is deterministic for a given seed; see :func:`write_voc`.
"""

from __future__ import annotations

import logging
import numbers
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from monai_app.datasets.voc import CLASSES, IGNORE, PALETTE
from monai_app.errors import UserInputError
from monai_app.files import atomic_path, atomic_write_text
from monai_app.datasets.images import write_label_png

logger = logging.getLogger(__name__)

MIN_SIDE = 16
BLACK, WHITE, DARK_GLASS = (25, 25, 28), (240, 240, 235), (45, 55, 70)
# Per class: main colour, texture (kind, period as a fraction of the object's size, amplitude), and parts drawn in a
# unit box (x right, y down, about -1..1): (primitive, coordinates, colour or None for the main colour[, width]).
LOOKS: dict[str, tuple[tuple[int, int, int], tuple[str, float, float], tuple]] = {
    "aeroplane": ((175, 180, 190), ("smooth", 1, 0), (
        ("poly", (-0.15, 0, 0.25, 0, -0.1, -0.9, -0.35, -0.9), None),
        ("poly", (-0.15, 0, 0.25, 0, -0.1, 0.9, -0.35, 0.9), None),
        ("poly", (-1, 0, -0.75, 0, -0.95, -0.4, -1.05, -0.4), None), ("ellipse", (-1, -0.15, 1, 0.15), None),
        ("ellipse", (0.62, -0.08, 0.86, 0.08), DARK_GLASS))),
    "bicycle": ((200, 30, 40), ("smooth", 1, 0), (
        ("ring", (-1, 0.1, -0.2, 0.9), BLACK, 0.09), ("ring", (0.2, 0.1, 1, 0.9), BLACK, 0.09),
        ("line", (-0.6, 0.5, -0.1, -0.1, 0.4, -0.1, 0.6, 0.5, 0, 0.5, -0.6, 0.5), None, 0.08),
        ("line", (-0.1, -0.1, -0.15, -0.35, 0, -0.35), BLACK, 0.08),
        ("line", (0.4, -0.1, 0.45, -0.4, 0.6, -0.4), BLACK, 0.07))),
    "bird": ((40, 90, 175), ("noise", 1, 20), (
        ("poly", (-0.45, 0, -1, -0.2, -1, 0.2), None), ("ellipse", (-0.5, -0.25, 0.5, 0.3), None),
        ("ellipse", (0.35, -0.5, 0.75, -0.1), None), ("poly", (0.72, -0.36, 1, -0.28, 0.72, -0.22), (240, 150, 20)),
        ("poly", (-0.3, -0.1, 0.2, -0.1, -0.2, -0.9), (20, 50, 110)),
        ("line", (0, 0.25, 0, 0.6), (240, 150, 20), 0.06))),
    "boat": ((150, 40, 30), ("hstripes", 0.15, 25), (
        ("line", (0, 0.35, 0, -1), (110, 80, 50), 0.05), ("poly", (0.05, -0.95, 0.05, 0.3, 0.75, 0.3), WHITE),
        ("poly", (-0.05, -0.8, -0.05, 0.3, -0.55, 0.3), WHITE),
        ("poly", (-1, 0.35, 1, 0.35, 0.75, 0.8, -0.75, 0.8), None))),
    "bottle": ((30, 130, 60), ("vstripes", 0.3, 35), (
        ("rect", (-0.3, -0.2, 0.3, 1), None), ("poly", (-0.3, -0.2, 0.3, -0.2, 0.12, -0.55, -0.12, -0.55), None),
        ("rect", (-0.12, -0.85, 0.12, -0.55), None), ("rect", (-0.14, -1, 0.14, -0.85), (200, 170, 40)),
        ("rect", (-0.3, 0.2, 0.3, 0.55), (235, 225, 200)))),
    "bus": ((235, 190, 25), ("smooth", 1, 0), (
        ("rrect", (-1.3, -0.5, 1.3, 0.55), None),
        *(("rect", (x, -0.35, x + 0.25, 0), DARK_GLASS) for x in (-1.15, -0.8, -0.45, -0.1, 0.25, 0.6)),
        ("rect", (0.95, -0.35, 1.15, 0.45), DARK_GLASS), ("ellipse", (-1, 0.35, -0.6, 0.75), BLACK),
        ("ellipse", (0.55, 0.35, 0.95, 0.75), BLACK))),
    "car": ((205, 25, 30), ("smooth", 1, 0), (
        ("rrect", (-1, -0.05, 1, 0.45), None), ("poly", (-0.55, 0, -0.3, -0.45, 0.35, -0.45, 0.6, 0), None),
        ("poly", (-0.45, -0.08, -0.27, -0.38, 0.3, -0.38, 0.5, -0.08), DARK_GLASS),
        ("ellipse", (-0.75, 0.25, -0.35, 0.65), BLACK), ("ellipse", (0.35, 0.25, 0.75, 0.65), BLACK),
        ("ellipse", (0.85, 0.05, 0.98, 0.15), (250, 230, 120)))),
    "cat": ((225, 140, 50), ("vstripes", 0.2, 45), (
        ("line", (-0.85, 0.3, -1, -0.2, -0.85, -0.5), None, 0.1), ("ellipse", (-0.9, -0.1, 0.5, 0.6), None),
        ("ellipse", (0.3, -0.55, 0.9, 0.05), None), ("poly", (0.35, -0.4, 0.42, -0.85, 0.55, -0.48), None),
        ("poly", (0.65, -0.48, 0.78, -0.85, 0.85, -0.4), None), ("ellipse", (0.45, -0.35, 0.55, -0.25), (90, 200, 60)),
        ("ellipse", (0.65, -0.35, 0.75, -0.25), (90, 200, 60)))),
    "chair": ((125, 75, 35), ("hstripes", 0.08, 20), (
        ("rect", (-0.6, -1, -0.4, 0.1), None), ("rect", (-0.6, -1, 0.1, -0.8), None),
        ("rect", (-0.6, 0, 0.6, 0.15), None),
        ("line", (-0.52, 0.15, -0.52, 1), None, 0.09), ("line", (0.52, 0.15, 0.52, 1), None, 0.09))),
    "cow": ((235, 235, 225), ("spots", 0.35, -200), (
        *(("rect", (x, 0.3, x + 0.15, 0.9), None) for x in (-0.7, -0.4, 0.2, 0.45)),
        ("rrect", (-0.8, -0.3, 0.65, 0.35), None), ("ellipse", (0.55, -0.45, 0.95, -0.05), None),
        ("line", (0.6, -0.42, 0.55, -0.6), WHITE, 0.05), ("line", (0.9, -0.42, 0.95, -0.6), WHITE, 0.05),
        ("ellipse", (-0.05, 0.25, 0.25, 0.45), (230, 150, 160)))),
    "diningtable": ((195, 145, 95), ("hstripes", 0.06, 18), (
        *(("rect", (x, -0.12, x + 0.12, 0.8), (150, 105, 65)) for x in (-0.9, 0.78)),
        ("poly", (-0.8, -0.6, 0.8, -0.6, 1, -0.25, -1, -0.25), None), ("rect", (-1, -0.25, 1, -0.12), (150, 105, 65)),
        ("ellipse", (-0.25, -0.52, 0.25, -0.34), WHITE))),
    "dog": ((115, 75, 45), ("noise", 1, 28), (
        ("line", (-0.8, 0.05, -1, -0.35), None, 0.08),
        *(("rect", (x, 0.3, x + 0.15, 0.85), None) for x in (-0.65, 0.2)),
        ("ellipse", (-0.8, -0.15, 0.45, 0.45), None), ("ellipse", (0.3, -0.6, 0.85, -0.05), None),
        ("ellipse", (0.7, -0.35, 1, -0.1), (170, 130, 95)), ("ellipse", (0.28, -0.55, 0.45, 0.05), (70, 45, 25)))),
    "horse": ((105, 55, 25), ("smooth", 1, 0), (
        *(("rect", (x, 0.1, x + 0.1, 1), None) for x in (-0.6, -0.35, 0.15, 0.35)),
        ("line", (-0.7, -0.2, -0.9, 0.4), BLACK, 0.08), ("ellipse", (-0.75, -0.35, 0.5, 0.2), None),
        ("poly", (0.3, -0.2, 0.5, -0.25, 0.75, -0.85, 0.55, -0.9), None),
        ("poly", (0.55, -0.95, 0.75, -0.85, 1, -0.55, 0.9, -0.48), None),
        ("line", (0.3, -0.3, 0.58, -0.9), BLACK, 0.05))),
    "motorbike": ((200, 200, 210), ("smooth", 1, 0), (
        ("ellipse", (-1, 0.2, -0.4, 0.8), BLACK), ("ellipse", (0.4, 0.2, 1, 0.8), BLACK),
        ("ellipse", (-0.8, 0.4, -0.6, 0.6), (150, 150, 160)), ("ellipse", (0.6, 0.4, 0.8, 0.6), (150, 150, 160)),
        ("poly", (-0.6, 0.45, -0.2, -0.1, 0.5, -0.1, 0.7, 0.45), None),
        ("ellipse", (-0.1, -0.3, 0.4, 0), (230, 100, 20)),
        ("rect", (-0.55, -0.2, -0.05, -0.05), BLACK), ("line", (0.45, -0.1, 0.6, -0.5, 0.4, -0.6), BLACK, 0.06))),
    "person": ((225, 110, 160), ("noise", 1, 12), (
        ("rect", (-0.3, 0.45, -0.05, 1), (50, 60, 110)), ("rect", (0.05, 0.45, 0.3, 1), (50, 60, 110)),
        ("rrect", (-0.35, -0.45, 0.35, 0.55), None), ("ellipse", (-0.22, -0.95, 0.22, -0.48), (235, 185, 150)),
        ("ellipse", (-0.24, -0.98, 0.24, -0.8), (70, 45, 30)))),
    "pottedplant": ((50, 150, 45), ("noise", 1, 40), (
        ("ellipse", (-0.8, -0.6, 0.1, 0.35), None), ("ellipse", (-0.1, -1, 0.7, 0.2), None),
        ("ellipse", (-0.5, -0.9, 0.4, 0), (35, 115, 35)), ("ellipse", (0.1, -0.4, 0.9, 0.4), (70, 170, 55)),
        ("poly", (-0.4, 0.3, 0.4, 0.3, 0.3, 1, -0.3, 1), (165, 85, 45)))),
    "sheep": ((230, 225, 200), ("spots", 0.08, -45), (
        *(("rect", (x, 0.3, x + 0.1, 0.85), BLACK) for x in (-0.6, -0.25, 0.1, 0.35)),
        ("ellipse", (-0.9, -0.4, -0.1, 0.3), None), ("ellipse", (-0.5, -0.5, 0.3, 0.2), None),
        ("ellipse", (-0.2, -0.35, 0.6, 0.35), None), ("ellipse", (-0.7, -0.1, 0.3, 0.45), None),
        ("ellipse", (0.45, -0.45, 0.85, 0), (30, 30, 30)))),
    "sofa": ((110, 45, 120), ("checker", 0.15, 25), (
        ("rect", (-0.95, -0.6, 0.95, 0.05), None), ("rect", (-1, 0, 1, 0.6), None),
        ("rrect", (-1.1, -0.25, -0.75, 0.6), None), ("rrect", (0.75, -0.25, 1.1, 0.6), None),
        ("rect", (-0.95, 0.6, -0.8, 0.75), BLACK), ("rect", (0.8, 0.6, 0.95, 0.75), BLACK))),
    "train": ((70, 85, 120), ("smooth", 1, 0), (
        ("poly", (-1.6, -0.45, 1, -0.45, 1.35, 0, 1, 0.4, -1.6, 0.4), None),
        ("rect", (-1.6, 0.1, 1.2, 0.2), (200, 30, 30)),
        *(("rect", (x, -0.3, x + 0.3, -0.05), DARK_GLASS) for x in (-1.45, -1.05, -0.65, -0.25, 0.15, 0.55)),
        *(("ellipse", (x, 0.3, x + 0.25, 0.55), BLACK) for x in (-1.4, -1.1, 0.4, 0.7)),
        ("line", (-0.2, -0.45, 0, -0.8, 0.2, -0.45), BLACK, 0.04))),
    "tvmonitor": ((25, 25, 30), ("hstripes", 0.05, 20), (
        ("rect", (-0.1, 0.45, 0.1, 0.7), None), ("rect", (-0.4, 0.7, 0.4, 0.8), None),
        ("rect", (-0.9, -0.7, 0.9, 0.5), None), ("rect", (-0.78, -0.6, 0.78, 0.38), (100, 170, 235)))),
}
# Background scenes: (upper colour, lower colour, lower texture).
SCENES = (((215, 200, 170), (140, 95, 60), ("hstripes", 0.03, 14)),  # a room: wall over a wooden floor
          ((150, 185, 225), (115, 140, 75), ("noise", 1, 18)),  # a field under the sky
          ((170, 195, 220), (70, 100, 125), ("hstripes", 0.02, 20)),  # a lake
          ((190, 190, 195), (120, 118, 115), ("noise", 1, 10)))  # a street

Place = tuple[float, float, float, int]  # centre x, centre y, half-size (pixels), 1 or -1 (mirrored)


def _part(draw: ImageDraw.ImageDraw, part: tuple, fill: int | tuple, place: Place) -> None:
    """Draw one part of a :data:`LOOKS` entry, placed and scaled into the image."""
    kind, coords, _, *width = part
    cx, cy, s, flip = place
    points = [(cx + flip * s * x, cy + s * y) for x, y in zip(coords[::2], coords[1::2])]
    line = max(1, round(width[0] * s)) if width else 1
    if kind == "poly":
        draw.polygon(points, fill=fill)
    elif kind == "line":
        draw.line(points, fill=fill, width=line, joint="curve")
    else:
        (x0, y0), (x1, y1) = points
        box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        if kind == "ellipse":
            draw.ellipse(box, fill=fill)
        elif kind == "ring":
            draw.ellipse(box, outline=fill, width=line)
        elif kind == "rrect":
            draw.rounded_rectangle(box, radius=int(0.25 * min(box[2] - box[0], box[3] - box[1])), fill=fill)
        else:
            draw.rectangle(box, fill=fill)


def _texture(rng: np.random.Generator, kind: str, period: float, hw: tuple[int, int]) -> np.ndarray:
    """A float32 (H, W) pattern of about -1..1 (``spots``: 0 or 1) with ``period`` pixels."""
    if kind == "noise":
        return rng.standard_normal(hw, dtype=np.float32)
    if kind == "smooth":
        return np.zeros(hw, np.float32)
    period = max(2.0, period)
    y, x = (np.arange(n, dtype=np.float32) + rng.uniform(0, period) for n in hw)
    if kind == "hstripes":
        return np.broadcast_to(np.sin(2 * np.pi * y / period)[:, None], hw)
    if kind == "vstripes":
        return np.broadcast_to(np.sin(2 * np.pi * x / period)[None, :], hw)
    if kind == "checker":
        return np.sign(np.sin(np.pi * y / period)[:, None] * np.sin(np.pi * x / period)[None, :])
    coarse = rng.standard_normal((int(hw[0] / period) + 2, int(hw[1] / period) + 2)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(coarse).resize(hw[::-1], Image.Resampling.BILINEAR))
    return (smooth > 0.5).astype(np.float32)  # spots


def _jitter(rng: np.random.Generator, colour: tuple, spread: float) -> np.ndarray:
    return np.asarray(colour, dtype=np.float32) + rng.uniform(-spread, spread, 3).astype(np.float32)


def _background(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """A scene of class 0: an upper part (wall or sky) over a textured lower part (floor, field, water, road), with
    a few muted shapes (furniture, rocks, windows) in it; float32 (H, W, 3)."""
    h, w = hw
    upper, lower, (kind, period, amplitude) = SCENES[rng.integers(len(SCENES))]
    horizon = int(h * rng.uniform(0.35, 0.65))
    image = np.empty((h, w, 3), np.float32)
    t = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None, None]
    image[:horizon] = _jitter(rng, upper, 20) * (1.05 - 0.15 * t)
    image[horizon:] = _jitter(rng, lower, 20)
    image[horizon:] += amplitude * _texture(rng, kind, period * h, (h - horizon, w))[..., None]
    clutter = Image.new("RGB", (w, h))
    mask = Image.new("L", (w, h))
    for _ in range(int(rng.integers(1, 4))):
        x, y = w * rng.uniform(0, 1), h * rng.uniform(0, 1)
        rx, ry = w * rng.uniform(0.04, 0.15), h * rng.uniform(0.04, 0.15)
        shape = "ellipse" if rng.random() < 0.5 else "rectangle"
        colour = tuple(int(c) for c in _jitter(rng, (120, 115, 110), 50))
        for draw, fill in ((ImageDraw.Draw(clutter), colour), (ImageDraw.Draw(mask), 255)):
            getattr(draw, shape)([x - rx, y - ry, x + rx, y + ry], fill=fill)
    inside = np.asarray(mask) > 0
    image[inside] = np.asarray(clutter, dtype=np.float32)[inside]
    return image + 6 * rng.standard_normal((h, w, 1), dtype=np.float32)


def _paint(rng: np.random.Generator, image: np.ndarray, index: np.ndarray, cls: int, place: Place, k: int) -> None:
    """Draw object ``k`` (class ``cls``) over ``image`` and write ``k`` where it shows into ``index``."""
    h, w = index.shape
    colour, (kind, period, amplitude), parts = LOOKS[CLASSES[cls]]
    layer, mask = Image.new("RGB", (w, h)), Image.new("L", (w, h))
    rgb, lab = ImageDraw.Draw(layer), ImageDraw.Draw(mask)
    main = _jitter(rng, colour, 15)
    for part in parts:
        fill = main if part[2] is None else _jitter(rng, part[2], 8)
        _part(rgb, part, tuple(int(c) for c in np.clip(fill, 0, 255)), place)
        _part(lab, part, 255, place)
    inside = np.asarray(mask) > 0
    pixels = np.asarray(layer, dtype=np.float32)
    pixels += amplitude * _texture(rng, kind, period * place[2], (h, w))[..., None]
    image[inside] = pixels[inside] + 5 * rng.standard_normal((int(inside.sum()), 1), dtype=np.float32)
    index[inside] = k


def _objects(rng: np.random.Generator, classes: tuple[int, ...], hw: tuple[int, int]) -> list[tuple]:
    """``(cls, place, difficult)`` of the objects of one image in painter's order (far, i.e. higher up, first)."""
    h, w = hw
    objects = [(cls, (w * rng.uniform(0.2, 0.8), h * rng.uniform(0.3, 0.7), min(hw) * rng.uniform(0.2, 0.36),
                      int(rng.choice((-1, 1)))), False) for cls in classes]
    if rng.random() < 0.3:  # a small far object, annotated as void as a whole
        objects.append((int(rng.integers(1, len(CLASSES))), (w * rng.uniform(0.1, 0.9), h * rng.uniform(0.2, 0.5),
                                                             min(hw) * rng.uniform(0.05, 0.09), 1), True))
    return sorted(objects, key=lambda o: o[1][1] + o[1][2])


def _annotate(inst: np.ndarray, objects: list[tuple]) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """Class ids, instance ids (1..n, void 255 on outlines and difficult objects) and the XML objects
    ``(name, difficult, 1-based box)`` of the objects shown in ``inst`` (the painter's index map)."""
    r = max(1, round(2 * min(inst.shape) / 375))  # the real outlines are about 4 px wide at 375 x 500
    grown, shrunk = (np.asarray(Image.fromarray(inst).filter(f(2 * r + 1)))
                     for f in (ImageFilter.MaxFilter, ImageFilter.MinFilter))
    band = grown != shrunk
    shown = set(np.unique(inst[~band]).tolist()) - {0}
    class_lut, object_lut = np.zeros(256, np.uint8), np.zeros(256, np.uint8)
    annotations = []
    for k, (cls, _, difficult) in enumerate(objects, start=1):
        class_lut[k] = IGNORE if difficult else cls
        object_lut[k] = IGNORE if difficult else 0
        if k in shown:
            object_lut[k] = IGNORE if difficult else 1 + sum(not a[1] for a in annotations)
            rows, cols = np.nonzero(inst == k)
            box = (cols.min() + 1, rows.min() + 1, cols.max() + 1, rows.max() + 1)
            annotations.append((CLASSES[cls], difficult, tuple(int(v) for v in box)))
    labels, instances = class_lut[inst], object_lut[inst]
    labels[band], instances[band] = IGNORE, IGNORE
    return labels, instances, annotations


def _render(seed: int, index: int, classes: tuple[int, ...], size: tuple[int, int]) -> tuple:
    """Image ``index``: (RGB uint8, class ids uint8, instance ids uint8, XML objects), at 0.7-1.0 of ``size``."""
    rng = np.random.default_rng([seed, index])
    hw = tuple(int(round(side * rng.uniform(0.7, 1.0))) for side in size)
    image, inst = _background(rng, hw), np.zeros(hw, np.uint8)
    objects = _objects(rng, classes, hw)
    for k, (cls, place, _) in enumerate(objects, start=1):
        _paint(rng, image, inst, cls, place, k)
    labels, instances, annotations = _annotate(inst, objects)
    image = image * np.float32(rng.uniform(0.8, 1.15)) + rng.uniform(-8, 8, 3).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), labels, instances, annotations


def _xml(stem: str, hw: tuple[int, int], annotations: list[tuple]) -> str:
    """A minimal VOC annotation: file name, size and one ``<object>`` (name, difficult, bndbox) per object."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text, ET.SubElement(root, "filename").text = "VOC2012", f"{stem}.jpg"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", hw[1]), ("height", hw[0]), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "1"
    for name, difficult, box in annotations:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text, ET.SubElement(obj, "difficult").text = name, str(int(difficult))
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ET.SubElement(bndbox, tag).text = str(value)
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="unicode") + "\n"


def _plan(seed: int, train: int, val: int) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """Per split, sorted ``(id, classes)``: unique real-style ids (``2008_000123``) and 1-3 classes per image dealt
    from a seeded cycle of the 20 classes (training images first), so that few images show many classes."""
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    while len(ids) < train + val:
        stem = f"{rng.integers(2007, 2012)}_{rng.integers(0, 9000):06d}"
        ids += [] if stem in ids else [stem]
    parts = {"train": sorted(ids[:train]), "val": sorted(ids[train:])}
    cycle, counts = rng.permutation(np.arange(1, len(CLASSES))), rng.integers(1, 4, train + val)
    starts = np.cumsum(counts) - counts
    classes = iter(tuple(int(cycle[(s + j) % len(cycle)]) for j in range(c)) for s, c in zip(starts, counts))
    return {name: [(stem, next(classes)) for stem in stems] for name, stems in parts.items()}


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_args(root: Path, train: int, val: int, size: tuple[int, int], seed: int) -> tuple[int, int]:
    """Validate the arguments of :func:`write_voc`; return (H, W) as plain ints."""
    if root.exists() and not root.is_dir():
        raise UserInputError(f"{root}: out exists and is not a folder")
    for name, value, low in (("train", train, 1), ("val", val, 0), ("seed", seed, 0)):
        if not _is_int(value) or value < low:
            raise UserInputError(f"{name} must be an integer >= {low}, got {value!r}")
    dims = tuple(size) if isinstance(size, (tuple, list)) else ()
    if len(dims) != 2 or not all(_is_int(d) and d >= MIN_SIDE for d in dims):
        raise UserInputError(f"size must be two integers >= {MIN_SIDE} (H, W), got {size!r}")
    return int(dims[0]), int(dims[1])


def write_voc(out: str | os.PathLike, train: int = 12, val: int = 6, size: tuple[int, int] = (375, 500), seed: int = 0,
              progress: bool = False) -> dict[str, list[str]]:
    """Write a synthetic Pascal VOC 2012 segmentation dataset to ``out/VOCdevkit/VOC2012``; return the ids per split.

    Args:
        out: folder to write into (created; files of the same names are replaced).
        train: number of images listed in ``train.txt`` (>= 1).
        val: number of images listed in ``val.txt``.
        size: the largest image size (H, W), each >= 16; every side is drawn from 0.7-1.0 of it (the real photos are
            at most 500 x 500, mostly 375 x 500).
        seed: non-negative seed; the same arguments give identical files.
        progress: show a progress bar over images.

    Returns:
        ``{"train": [...], "val": [...]}``: sorted ids such as ``2008_000123``.

    Raises:
        UserInputError: an argument is out of range.
    """
    root = Path(out)
    hw = _check_args(root, train, val, size, seed)
    voc = root / "VOCdevkit" / "VOC2012"
    plan = _plan(seed, train, val)
    jobs = [job for split in plan.values() for job in split]
    for index, (stem, classes) in enumerate(tqdm(jobs, desc="synthetic VOC", unit="image") if progress else jobs):
        image, labels, instances, annotations = _render(seed, index, classes, hw)
        with atomic_path(voc / "JPEGImages" / f"{stem}.jpg") as tmp:
            Image.fromarray(image).save(tmp, format="JPEG", quality=90)
        write_label_png(labels, voc / "SegmentationClass" / f"{stem}.png", PALETTE)
        write_label_png(instances, voc / "SegmentationObject" / f"{stem}.png", PALETTE)
        atomic_write_text(voc / "Annotations" / f"{stem}.xml", _xml(stem, labels.shape, annotations))
    ids = {name: [stem for stem, _ in split] for name, split in plan.items()}
    for name, stems in (*ids.items(), ("trainval", sorted(ids["train"] + ids["val"]))):
        atomic_write_text(voc / "ImageSets" / "Segmentation" / f"{name}.txt", "".join(f"{s}\n" for s in stems))
    logger.info("%s: wrote %d synthetic Pascal VOC images (%d train, %d val)", voc, len(jobs), train, val)
    return ids
