"""Kaggle run-length encoding of binary masks (Carvana's ``train_masks.csv`` and ``submission.csv``).

Runs are ``start length`` pairs, space-separated, with 1-indexed starts over the mask flattened row-major (left to
right, then top to bottom) at its original (H, W) size.
"""

from __future__ import annotations

import numpy as np


def rle_encode(mask: np.ndarray) -> str:
    """Encode a 2-D mask (non-zero = foreground) as Kaggle RLE; an empty mask gives ``""``."""
    flat = np.asarray(mask).reshape(-1) != 0
    padded = np.concatenate([[False], flat, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1]) + 1  # 1-indexed positions where runs start and end
    starts, ends = edges[0::2], edges[1::2]
    return " ".join(f"{s} {e - s}" for s, e in zip(starts, ends))


def rle_decode(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode Kaggle RLE to a uint8 (H, W) mask of 0 and 1.

    Raises:
        ValueError: the text is not pairs of positive integers, or a run falls outside ``shape``.
    """
    size = int(shape[0]) * int(shape[1])
    mask = np.zeros(size, dtype=np.uint8)
    text = str(rle).strip() if rle is not None else ""
    if not text or text.lower() == "nan":
        return mask.reshape(shape)
    try:
        numbers = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise ValueError(f"RLE must be space-separated integers, got {text[:40]!r}") from None
    if numbers.size % 2:
        raise ValueError(f"RLE needs 'start length' pairs, got an odd count ({numbers.size}) of numbers")
    starts, lengths = numbers[0::2], numbers[1::2]
    if (starts < 1).any() or (lengths < 1).any() or (starts - 1 + lengths > size).any():
        raise ValueError(f"RLE runs fall outside a {shape[0]}x{shape[1]} mask (starts are 1-indexed)")
    for start, length in zip(starts - 1, lengths):
        mask[start : start + length] = 1
    return mask.reshape(shape)
