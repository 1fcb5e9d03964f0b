"""Folders of 2-D images (JPEG, PNG, GIF, ...): what the 2-D bundles share for finding images and inputs."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monai_app.errors import DatasetError
from monai_app.files import atomic_path, atomic_write_text, unfinished_cases

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")


def is_image(path: Path) -> bool:
    """True for a visible 2-D image file (macOS ``._*`` companions and hidden files are not images)."""
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith((".", "_"))


def images_in(folder: str | os.PathLike, what: str = "image folder") -> dict[str, Path]:
    """``{stem: path}`` of the images directly in ``folder``, sorted by name.

    Raises:
        DatasetError: the folder is missing, or two files share a stem (``a.png`` and ``a.jpg``).
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"{root}: {what} does not exist")
    found: dict[str, Path] = {}
    for path in sorted(p for p in root.iterdir() if is_image(p)):
        if path.stem in found:
            raise DatasetError(f"{path}: two images are named {path.stem!r} ({found[path.stem].name}, {path.name})")
        found[path.stem] = path
    return found


def find_images(input_path: str | os.PathLike, output_dir: str | os.PathLike | None = None,
                skip_existing: bool = False, extension: str = ".png") -> list[dict]:
    """Images to segment: one image file or a folder of them, as ``[{"case_id": stem, "image": path}]``.

    Args:
        input_path: the file or folder.
        output_dir: where predictions go; with ``skip_existing``, images whose output exists are left out.
        skip_existing: resume an interrupted run instead of redoing finished images.
        extension: the output file extension checked by ``skip_existing``.

    Raises:
        DatasetError: the path does not exist, is not an image, or the folder holds no image.
    """
    path = Path(input_path)
    if not path.exists():
        raise DatasetError(f"{path}: input does not exist")
    if path.is_file():
        if not is_image(path):
            raise DatasetError(f"{path}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)})")
        cases = [{"case_id": path.stem, "image": str(path)}]
    else:
        cases = [{"case_id": stem, "image": str(p)} for stem, p in images_in(path, "input folder").items()]
    if not cases:
        raise DatasetError(f"{path}: no images found ({', '.join(IMAGE_EXTENSIONS)})")
    if skip_existing and output_dir is not None:  # a bool: configs parse the switch (switches#skip_existing)
        cases = unfinished_cases(cases, output_dir, extension)
    logger.info("%s: %d image(s) to segment", path, len(cases))
    return cases


def save_split(output_dir: str | os.PathLike, split: dict, **extra) -> None:
    """Record the data split a run used as ``output_dir/split.json`` (ids per part, and how it was made)."""
    record = {**extra, **{part: [c["case_id"] for c in cases] for part, cases in split.items()}}
    atomic_write_text(Path(output_dir) / "split.json", json.dumps(record, indent=1) + "\n")


def colourise(ids: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 colours; ids beyond the palette are drawn white."""
    table = np.full((256, 3), 255, dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return table[np.clip(ids, 0, 255).astype(np.uint8)]


def write_label_png(ids: np.ndarray, path: str | Path, palette: Sequence[Sequence[int]] | None = None) -> None:
    """Write (H, W) class ids as a single-channel PNG, atomically: a palette PNG when ``palette`` is given (viewers
    show the colours, readers get the ids), else grayscale."""
    from PIL import Image

    img = Image.fromarray(np.asarray(ids, dtype=np.uint8), mode="L")
    if palette is not None:
        img = img.convert("P")
        img.putpalette([c for colour in palette for c in colour])
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")

