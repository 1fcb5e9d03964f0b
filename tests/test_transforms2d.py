"""2-D transforms: photos of any mode become RGB, hue shift, RLE masks, and label PNGs a user can open."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image

from monai_app.datasets.rle import rle_encode
from monai_app.errors import DatasetError
from monai_app.visualize import label_panel
from monai_app.datasets.images import colourise
from monai_app.transforms.images2d import DecodeRLEd, RandHueShiftd, WriteLabelPNGd, to_rgb


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "I;16", "RGB"])
def test_any_photo_mode_loads_as_8bit_rgb(mode, tmp_path):
    from monai.transforms import LoadImage

    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8))
    img = rgb.convert("L").convert("I;16") if mode == "I;16" else rgb.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    loaded = LoadImage(reader="PILReader", reverse_indexing=False, converter=to_rgb, image_only=True)(path)
    assert tuple(loaded.shape) == (5, 7, 3) and float(loaded.max()) <= 255


def test_hue_shift_changes_colour_not_brightness():
    rgb = torch.tensor([[[0.9]], [[0.2]], [[0.1]]]).repeat(1, 4, 4)  # an orange-red patch
    t = RandHueShiftd("image", prob=1.0, max_shift=0.2)
    t.set_random_state(0)
    out = t({"image": rgb})["image"]
    assert out.shape == rgb.shape and not torch.allclose(out, rgb, atol=1e-3)
    assert torch.allclose(out.max(0).values, rgb.max(0).values, atol=1e-5)  # HSV value (brightness) kept
    same = RandHueShiftd("image", prob=0.0)({"image": rgb})["image"]
    assert torch.equal(same, rgb)


def test_rle_mask_is_built_at_the_image_size():
    mask = np.zeros((4, 6), dtype=np.uint8)
    mask[1, 2:5] = 1
    mask[3, 5] = 1
    data = {"image": MetaTensor(torch.zeros(3, 4, 6)), "rle": rle_encode(mask), "case_id": "car_01"}
    out = DecodeRLEd("label")(data)
    assert tuple(out["label"].shape) == (1, 4, 6)
    np.testing.assert_array_equal(out["label"][0].numpy(), mask)
    assert "label" not in DecodeRLEd("label")({"image": data["image"]})  # GIF-labelled items pass through
    with pytest.raises(DatasetError, match="car_01: bad RLE"):
        DecodeRLEd("label")({**data, "rle": "1 999"})


def test_label_pngs_palette_raw_and_colour(tmp_path):
    palette = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]
    ids = torch.tensor([[[0, 1, 2], [2, 1, 0]]], dtype=torch.float32)
    WriteLabelPNGd("pred", str(tmp_path / "p"), palette, indexed=True)({"pred": ids, "case_id": "a"})
    WriteLabelPNGd("pred", str(tmp_path / "r"), palette, colour_dir=str(tmp_path / "c"))({"pred": ids, "case_id": "a"})
    indexed, raw, colour = (Image.open(tmp_path / d / "a.png") for d in ("p", "r", "c"))
    assert indexed.mode == "P" and indexed.getpalette()[:9] == [0, 0, 0, 255, 0, 0, 0, 255, 0]
    assert raw.mode == "L" and colour.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(indexed), ids[0].numpy())
    np.testing.assert_array_equal(np.asarray(raw), ids[0].numpy())
    np.testing.assert_array_equal(np.asarray(colour), colourise(ids[0].numpy(), palette))
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["a.png"]  # no temporary file left behind


def test_panel_shows_photo_reference_and_prediction_at_the_photo_size():
    image = np.zeros((3, 8, 8), dtype=np.float32)
    label = np.zeros((1, 16, 16))
    label[0, :8] = 1  # top half: class 1 at twice the photo's size
    pred = np.zeros((2, 16, 16))
    pred[1, 8:] = 1  # class 1 predicted in the bottom half (scores)
    panel = label_panel(image, label, pred, palette=[(0, 0, 0), (255, 255, 255)], min_height=8)
    assert panel.shape == (8, 28, 3) and panel.dtype == np.uint8  # three 8-pixel tiles, two 2-pixel gaps
    assert panel[0, 10:18].min() == 255 and panel[7, 10:18].max() == 0  # reference: top white
    assert panel[0, 20:].max() == 0 and panel[7, 20:].min() == 255  # prediction: bottom white
    assert (panel[:, 8:10] == 200).all() and (panel[:, 18:20] == 200).all()


def test_box_blur_averages_and_keeps_flat_images_flat():
    from monai_app.transforms.images2d import RandBoxBlurd

    spike = torch.zeros(3, 5, 5)
    spike[:, 2, 2] = 9.0
    out = RandBoxBlurd("image", prob=1.0)({"image": spike})["image"]
    assert torch.allclose(out[:, 1:4, 1:4], torch.ones(3, 3, 3)) and float(out.sum()) == pytest.approx(27.0)
    flat = torch.full((3, 6, 7), 0.4)
    assert torch.allclose(RandBoxBlurd("image", prob=1.0)({"image": flat})["image"], flat)  # edges not darkened


def test_panel_of_a_large_photo_is_thinned():
    panel = label_panel(np.zeros((3, 1280, 1918)), np.zeros((1, 1280, 1918)), np.zeros((1, 1280, 1918)),
                        palette=[(0, 0, 0), (255, 255, 255)])
    assert panel.shape == (320, 1440, 3)
