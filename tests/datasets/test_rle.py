"""Kaggle RLE (Carvana masks and submissions): exact round trips, including runs that touch the borders."""

from __future__ import annotations

import numpy as np
import pytest

from monai_app.datasets.rle import rle_decode, rle_encode


def test_hand_computed_example_is_one_indexed_and_row_major():
    mask = np.array([[0, 1, 1],
                     [1, 0, 0]])
    # Row-major positions 1..6: 0 1 1 1 0 0 -> one run starting at 2 of length 3.
    assert rle_encode(mask) == "2 3"
    np.testing.assert_array_equal(rle_decode("2 3", (2, 3)), mask)


@pytest.mark.parametrize("case", ["random", "borders", "full", "empty", "single_first", "single_last"])
def test_round_trip_is_exact(case):
    rng = np.random.default_rng(0)
    mask = np.zeros((37, 53), dtype=np.uint8)
    if case == "random":
        mask = (rng.random((37, 53)) > 0.6).astype(np.uint8)
    elif case == "borders":  # runs that wrap from the end of one row into the next, and touch every edge
        mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = 1
    elif case == "full":
        mask[:] = 1
    elif case == "single_first":
        mask[0, 0] = 1
    elif case == "single_last":
        mask[-1, -1] = 1
    text = rle_encode(mask)
    np.testing.assert_array_equal(rle_decode(text, mask.shape), mask)
    if case == "full":
        assert text == f"1 {37 * 53}"
    if case == "empty":
        assert text == ""
    if case == "single_last":
        assert text == f"{37 * 53} 1"


def test_decode_accepts_missing_values():
    assert rle_decode("", (2, 2)).sum() == 0
    assert rle_decode(None, (2, 2)).sum() == 0


@pytest.mark.parametrize("text, problem", [("1 2 3", "odd"), ("a b", "integers"), ("0 2", "outside"),
                                           ("4 2", "outside"), ("1 0", "outside")])
def test_bad_rle_is_a_clear_error(text, problem):
    with pytest.raises(ValueError, match=problem):
        rle_decode(text, (1, 4))
