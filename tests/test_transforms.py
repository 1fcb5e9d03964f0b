"""The package's own transforms: region masks back to labels, post-processing, atomic case writing, N4."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor, NibabelWriter

from monai_app.datasets.brats import FORMATS
from monai_app.transforms.brats import BratsLabelToRegionsd, BratsRegionsToLabeld, BratsSplitCavityd
from monai_app.transforms.common import MaskOutsideImaged, N4BiasFieldCorrectiond, RemoveSmallRegionsd, WriteCased, n4_bias_field_correct

AFFINE = np.array([[-1.0, 0, 0, 10.0], [0, 1.2, 0, -20.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]])


# --- BratsRegionsToLabeld ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_regions_to_label_inverts_label_to_regions(fmt):
    """Every label comes back, the resection cavity through its own channel; the PED cystic component, which no
    region tells from the rest of the core, comes back as NETC."""
    spec = FORMATS[fmt]
    values = np.array(spec.labels)
    label = np.random.default_rng(0).choice(values, size=(1, 6, 5, 4)).astype(np.uint8)
    label.flat[: len(values)] = values  # every label value present
    to_regions = BratsLabelToRegionsd("label", dataset_format=fmt, cavity=spec.cavity is not None)
    regions = to_regions({"label": torch.as_tensor(label)})["label"]
    back = BratsRegionsToLabeld("label", dataset_format=fmt)({"label": regions})["label"]
    expected = np.where(label == spec.cystic, spec.necrosis, label) if spec.cystic else label
    assert regions.shape[0] == (4 if spec.cavity else 3)
    assert back.shape == (1, 6, 5, 4) and back.dtype == torch.uint8
    assert np.array_equal(np.asarray(back), expected)


def test_the_cavity_channel_is_written_where_no_tumour_is():
    """RC and WT both on: tumour wins (the cavity is outside every tumour region); RC alone: label 4."""
    regions = torch.zeros(4, 3, 1, 1)
    regions[:, 0] = torch.tensor([1.0, 1.0, 0.0, 1.0])[:, None, None]  # core and cavity: the core
    regions[3, 1] = 1  # cavity alone
    out = BratsRegionsToLabeld("pred", dataset_format="brats2023")({"pred": regions})["pred"]
    assert out[0, :, 0, 0].tolist() == [1, 4, 0]
    for fmt in ("msd", "brats2024ped"):  # no cavity label to write: left out
        out = BratsRegionsToLabeld("pred", dataset_format=fmt)({"pred": regions})["pred"]
        assert out[0, :, 0, 0].tolist() == [FORMATS[fmt].necrosis, 0, 0]


def test_the_cavity_channel_is_set_apart_for_scoring():
    pred, label = torch.rand(4, 2, 2, 2), torch.rand(4, 2, 2, 2)
    out = BratsSplitCavityd(["pred", "label"])({"pred": pred, "label": label})
    assert out["pred"].shape[0] == out["label"].shape[0] == 3 and out["pred_rc"].shape == (1, 2, 2, 2)
    assert torch.equal(out["pred_rc"][0], pred[3]) and torch.equal(out["label"], label[:3])
    three = BratsSplitCavityd("pred")({"pred": pred[:3]})
    assert set(three) == {"pred"} and three["pred"].shape[0] == 3


def test_regions_to_label_keeps_geometry():
    regions = MetaTensor(torch.zeros(3, 2, 2, 2), affine=torch.as_tensor(AFFINE))
    regions[:, 0, 0, 0] = 1  # WT, TC and ET: enhancing
    out = BratsRegionsToLabeld("pred", dataset_format="brats2021")({"pred": regions})["pred"]
    assert isinstance(out, MetaTensor) and np.allclose(out.affine, AFFINE)
    assert out[0, 0, 0, 0] == 4 and out.sum() == 4


# --- MaskOutsideImaged ---------------------------------------------------------------------------------------------

def _image_and_pred() -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.tensor([[[0.0, 0.0], [5.0, 0.0]],   # channel 0
                          [[0.0, 3.0], [0.0, 0.0]]])  # channel 1: voxel [1, 1] is zero in both
    pred = torch.tensor([[[1.0, 1.0], [1.0, 1.0]],
                         [[1.0, 0.0], [1.0, 1.0]]])
    return image[..., None], pred[..., None]  # (C, 2, 2, 1)


def test_mask_outside_image_zeroes_where_every_channel_is_zero():
    image, pred = _image_and_pred()
    out = MaskOutsideImaged("pred", image_key="image")({"image": image, "pred": pred})
    expected = torch.tensor([[[0.0, 1.0], [1.0, 0.0]],
                             [[0.0, 0.0], [1.0, 0.0]]])[..., None]
    assert torch.equal(out["pred"], expected)
    assert torch.equal(out["image"], image)


def test_mask_outside_image_disabled_is_a_no_op():
    image, pred = _image_and_pred()
    out = MaskOutsideImaged("pred", image_key="image", enabled=False)({"image": image, "pred": pred})
    assert torch.equal(out["pred"], _image_and_pred()[1])


# --- RemoveSmallRegionsd -------------------------------------------------------------------------------------------

def test_remove_small_regions_per_channel():
    pred = torch.zeros(2, 10, 10, 10)
    pred[0, 1:4, 1:4, 1:4] = 1  # a 27-voxel cube
    pred[0, 8, 8, 7:9] = 1      # an isolated 2-voxel blob
    pred[1, 6:9, 1:4, 5:8] = 1  # another cube, elsewhere
    pred[1, 1, 8, 1:3] = 1      # another 2-voxel blob
    out = RemoveSmallRegionsd("pred", min_size=5)({"pred": pred})["pred"]
    expected = torch.zeros(2, 10, 10, 10)
    expected[0, 1:4, 1:4, 1:4] = 1
    expected[1, 6:9, 1:4, 5:8] = 1
    assert out.shape == pred.shape and torch.equal(torch.as_tensor(out).float(), expected)



def test_remove_small_regions_channels_are_independent():
    """Nested WT/TC/ET masks: a 3-voxel island present in all three channels is small in each and must go."""
    pred = torch.zeros(3, 10, 10, 10)
    pred[:, 1:4, 1:4, 1:4] = 1  # a 27-voxel tumour in every region
    pred[:, 8, 8, 6:9] = 1      # a 3-voxel false positive in every region
    out = RemoveSmallRegionsd("pred", min_size=5)({"pred": pred})["pred"]
    assert torch.as_tensor(out).sum(dim=(1, 2, 3)).tolist() == [27.0, 27.0, 27.0]


def test_remove_small_regions_min_size_zero_is_a_no_op():
    pred = torch.zeros(1, 6, 6, 6)
    pred[0, 2, 2, 2] = 1  # a single voxel
    out = RemoveSmallRegionsd("pred", min_size=0)({"pred": pred})["pred"]
    assert torch.equal(out, pred)


# --- WriteCased ----------------------------------------------------------------------------------------------------

def _prediction() -> MetaTensor:
    data = torch.zeros(1, 4, 5, 6)
    data[0, 1, 2, 3], data[0, 2, 2, 2], data[0, 3, 4, 5] = 1, 2, 4
    return MetaTensor(data, affine=torch.as_tensor(AFFINE))


def test_write_case_names_file_by_case_id_with_geometry(tmp_path):
    out_dir = tmp_path / "predictions"
    WriteCased("pred", output_dir=str(out_dir))({"pred": _prediction(), "case_id": "BraTS-GLI-00001-000"})
    assert [p.name for p in out_dir.iterdir()] == ["BraTS-GLI-00001-000.nii.gz"]  # no temporary file left
    written = nib.load(out_dir / "BraTS-GLI-00001-000.nii.gz")
    assert written.shape == (4, 5, 6) and written.get_data_dtype() == np.uint8
    assert np.allclose(written.affine, AFFINE)
    data = np.asanyarray(written.dataobj)
    assert data[1, 2, 3] == 1 and data[2, 2, 2] == 2 and data[3, 4, 5] == 4 and data.sum() == 7


def _failing_write(self, filename, *args, **kwargs):
    with open(filename, "wb") as f:  # half a file, then the disk fills up
        f.write(b"\x1f\x8b\x08\x00partial")
    raise OSError("No space left on device")


def test_write_case_failure_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(NibabelWriter, "write", _failing_write)
    with pytest.raises(OSError, match="No space left"):
        WriteCased("pred", output_dir=str(tmp_path))({"pred": _prediction(), "case_id": "BRATS_485"})
    assert list(tmp_path.iterdir()) == []


def test_write_case_failure_keeps_the_previous_output(tmp_path, monkeypatch):
    WriteCased("pred", output_dir=str(tmp_path))({"pred": _prediction(), "case_id": "BRATS_485"})
    before = (tmp_path / "BRATS_485.nii.gz").read_bytes()
    monkeypatch.setattr(NibabelWriter, "write", _failing_write)
    with pytest.raises(OSError):
        WriteCased("pred", output_dir=str(tmp_path))({"pred": _prediction() * 0, "case_id": "BRATS_485"})
    assert [p.name for p in tmp_path.iterdir()] == ["BRATS_485.nii.gz"]
    assert (tmp_path / "BRATS_485.nii.gz").read_bytes() == before


# --- N4 bias-field correction --------------------------------------------------------------------------------------

def _biased_sphere(n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Constant 100 inside a sphere, times a linear bias from 0.7 to 1.3 along the first axis; 0 outside."""
    grid = np.mgrid[0:n, 0:n, 0:n].astype(np.float32)
    sphere = ((grid - (n - 1) / 2) ** 2).sum(axis=0) <= 12 ** 2
    bias = 0.7 + 0.6 * grid[0] / (n - 1)
    return np.where(sphere, 100.0 * bias, 0.0).astype(np.float32), sphere


def _cv(values: np.ndarray) -> float:
    return float(values.std() / values.mean())


def test_n4_flattens_a_linear_bias():
    image, sphere = _biased_sphere()
    assert _cv(image[sphere]) > 0.09  # the bias itself: about 0.10
    corrected = n4_bias_field_correct(image, shrink=2, iterations=(20, 20))
    assert corrected.shape == image.shape and corrected.dtype == np.float32
    assert _cv(corrected[sphere]) <= _cv(image[sphere]) / 2
    assert (corrected[~sphere] == 0).all() and (corrected[sphere] > 0).all()


def test_n4_transform_corrects_each_channel_and_keeps_geometry():
    image, sphere = _biased_sphere()
    stacked = MetaTensor(torch.as_tensor(np.stack([image, 2 * image[::-1]])), affine=torch.as_tensor(AFFINE))
    out = N4BiasFieldCorrectiond("image", shrink=2, iterations=(20, 20))({"image": stacked})["image"]
    assert out.shape == (2, 32, 32, 32) and isinstance(out, MetaTensor) and np.allclose(out.affine, AFFINE)
    flipped = sphere[::-1]
    assert _cv(np.asarray(out[0])[sphere]) <= _cv(image[sphere]) / 2
    assert _cv(np.asarray(out[1])[flipped]) <= _cv(image[sphere]) / 2
    assert (np.asarray(out[0])[~sphere] == 0).all() and (np.asarray(out[1])[~flipped] == 0).all()


def test_n4_disabled_returns_data_unchanged():
    image, _ = _biased_sphere(8)
    data = {"image": torch.as_tensor(image[None]), "label": torch.ones(1, 8, 8, 8)}
    out = N4BiasFieldCorrectiond("image", enabled=False)(data)
    assert out["image"] is data["image"] and out["label"] is data["label"]
    assert torch.equal(out["image"], torch.as_tensor(image[None]))
