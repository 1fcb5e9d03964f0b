"""The TensorBoard picture a user looks at after each validation."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from monai_app.visualize import REGION_COLOURS, region_panel


def _case():
    image = np.zeros((4, 30, 20, 10), np.float32)
    image[:, 5:25, 3:17] = 1.0
    regions = np.zeros((3, 30, 20, 10), np.float32)
    regions[0, 10:20, 5:15, 6] = 1  # whole tumour on slice 6 only
    regions[1, 12:18, 7:13, 6] = 1  # core
    regions[2, 14:16, 9:11, 6] = 1  # enhancing
    return image, regions


def test_panel_shows_image_reference_and_prediction_side_by_side_enlarged():
    image, label = _case()
    pred = np.zeros_like(label)
    panel = region_panel(image, label, pred, min_height=60)
    assert panel.dtype == np.uint8 and panel.shape[2] == 3
    # each (30 x 20) axial slice is shown anterior-up as a 20-high, 30-wide tile, enlarged 3x to reach 60 rows
    assert panel.shape == (60, 3 * 30 * 3, 3)


def test_panel_is_drawn_on_the_slice_with_tumour_in_the_region_colours():
    image, label = _case()
    panel = region_panel(image, label, label, min_height=30).astype(float)
    width = panel.shape[1] // 3
    plain, reference, prediction = panel[:, :width], panel[:, width : 2 * width], panel[:, 2 * width :]
    assert np.array_equal(reference, prediction)
    assert not np.array_equal(plain, reference)
    for colour in REGION_COLOURS:  # edema, core and enhancing each visible: a pixel halfway to its colour exists
        expected = 0.5 * 255 + 0.5 * colour  # on bright brain (gray 255) with alpha 0.5
        assert np.isclose(reference, expected, atol=1.5).all(axis=-1).any(), colour


def test_time_budget_stops_after_the_epoch_that_spends_it_and_validates_the_last_weights():
    from ignite.engine import Engine

    from monai_app.engine.handlers import TimeBudget

    trainer = Engine(lambda engine, batch: time.sleep(0.02))
    validated = []

    class Validator:  # the part of MONAI's evaluator TimeBudget uses
        state = SimpleNamespace(epoch=0)

        def run(self, epoch):
            self.state.epoch = epoch
            validated.append(epoch)

    validator = Validator()
    TimeBudget(minutes=0.05 / 60, clock="wall", validator=validator).attach(trainer)  # 50 ms: spent in epoch 1
    trainer.run(range(3), max_epochs=10)
    assert trainer.state.epoch == 1, "training went on past the budget"
    assert validated == [1], "the final weights were not validated"

    untimed = Engine(lambda engine, batch: None)
    TimeBudget(minutes=None).attach(untimed)
    untimed.run(range(2), max_epochs=3)
    assert untimed.state.epoch == 3


def test_time_budget_rejects_an_unknown_clock():
    from monai_app.engine.handlers import TimeBudget
    from monai_app.errors import UserInputError

    with pytest.raises(UserInputError, match="budget_clock"):
        TimeBudget(minutes=1, clock="gpu")
