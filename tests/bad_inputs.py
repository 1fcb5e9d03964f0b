"""The bad inputs a user can hand to training, each as a function that damages a copy of a clean synthetic dataset
and returns the fragment the one-line error must contain (used by test_bad_input.py and scripts/bad_input_table.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
from PIL import Image


def clean_datasets(out: Path) -> dict[str, Path]:
    """Small clean datasets in the real layouts, written once and copied for each damage."""
    from monai_app.synthetic.brats import write_brats
    from monai_app.synthetic.camvid import write_camvid
    from monai_app.synthetic.carvana import write_carvana
    from monai_app.synthetic.ccp import write_ccp
    from monai_app.synthetic.voc import write_voc

    roots = {"msd": out / "Task01_BrainTumour", "brats2021": out / "BraTS2021", "carvana": out / "carvana",
             "camvid": out / "CamVid", "voc": out / "VOCdevkit_root", "ccp": out / "clothing-co-parsing"}
    write_brats(roots["msd"], cases=3, dataset_format="msd", shape=(24, 24, 16), seed=1, test_cases=0)
    write_brats(roots["brats2021"], cases=3, dataset_format="brats2021", shape=(24, 24, 16), seed=2, test_cases=0)
    write_carvana(roots["carvana"], cars=2, views=2, test_cars=1, size=(32, 48))
    write_camvid(roots["camvid"], train=3, val=1, test=1, size=(24, 32))
    write_voc(roots["voc"], train=3, val=2, size=(30, 40))
    write_ccp(roots["ccp"], pixel_level=3, image_level=1, size=(48, 32))
    return roots


def _resave(path: Path, edit: Callable, affine_scale: float = 1.0) -> None:
    img = nib.load(path)
    arr = np.asarray(img.dataobj)
    affine = img.affine.copy()
    affine[:3, :3] *= affine_scale
    nib.save(nib.Nifti1Image(edit(arr.astype(np.float32 if arr.dtype.kind == "f" else arr.dtype)), affine), path)


def _set(value, index):
    def edit(arr):
        arr[index] = value
        return arr
    return edit


def _msd(root: Path, i: int = 0, part: str = "imagesTr") -> Path:
    return sorted((root / part).glob("*.nii.gz"))[i]


def _modality(root: Path, suffix: str, i: int = 0) -> Path:
    return sorted(root.rglob(f"*{suffix}.nii.gz"))[i]


# name -> (bundle, clean dataset, damage(root) -> the fragment the message names)
def _missing_dir(root):
    shutil.rmtree(root)
    return f"{root}: dataset_dir does not exist or is not a folder"


def _empty_dir(root):
    shutil.rmtree(root)
    root.mkdir()
    return f"{root}: not a BraTS dataset: no dataset.json (MSD Task01) and no"


def _no_dataset_json(root):
    (root / "dataset.json").unlink()
    return f"{root}: not a BraTS dataset: no dataset.json"


def _bad_dataset_json(root):
    (root / "dataset.json").write_text('{"training": [ {"image": ')
    return f"{root / 'dataset.json'}: not valid JSON"


def _listed_file_missing(root):
    path = _msd(root)
    path.unlink()
    return f"{path}: does not exist"


def _truncated_nifti(root):
    path = _msd(root)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return f"{path}: cannot be read as NIfTI"


def _not_nifti(root):
    path = _msd(root)
    path.write_text("this is not an image\n")
    return f"{path}: cannot be read as NIfTI"


def _three_modalities(root):
    path = _msd(root)
    _resave(path, lambda a: a[..., :3])
    return f"{path}: expected a 4-D image with 4 modalities"


def _three_d_image(root):
    path = _msd(root)
    _resave(path, lambda a: a[..., 0])
    return f"{path}: expected a 4-D image with 4 modalities"


def _label_shape(root):
    path = _msd(root, part="labelsTr")
    _resave(path, lambda a: a[:-2])
    return f"{path}: label shape"


def _label_affine(root):
    path = _msd(root, part="labelsTr")
    _resave(path, lambda a: a, affine_scale=2.0)
    return f"{path}: label affine differs from the image's"


def _label_value(root):
    path = _msd(root, part="labelsTr")
    _resave(path, _set(4, (0, 0, 0)))
    return f"{path}: label values [4] are not msd labels [0, 1, 2, 3]"


def _nan_voxels(root):
    path = _msd(root)
    _resave(path, _set(np.nan, (1, 1, 1, 0)))
    return f"{path}: 1 NaN or infinite voxel(s)"


def _all_zero(root):
    path = _msd(root)
    _resave(path, lambda a: a * 0)
    return f"{path}: every voxel is 0"


def _modality_shape(root):
    path = _modality(root, "_t1")
    _resave(path, lambda a: a[:-1])
    return f"{path}: shape"


def _modality_affine(root):
    path = _modality(root, "_t2")
    _resave(path, lambda a: a, affine_scale=2.0)
    return f"{path}: affine differs from the FLAIR's"


def _carvana_mask_size(root):
    path = sorted((root / "train_masks").glob("*.gif"))[0]
    img = Image.new("P", (48, 30))
    img.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    img.save(path)
    return f"{path}: label size 48x30 differs from the photo's 48x32"


def _carvana_bad_gif(root):
    path = sorted((root / "train_masks").glob("*.gif"))[0]
    path.write_bytes(path.read_bytes()[:30])
    return f"{path}: cannot be read"


def _voc_bad_png(root):
    path = sorted(root.rglob("SegmentationClass/*.png"))[0]
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    return f"{path}: cannot be read"


def _camvid_bad_photo(root):
    path = sorted(root.rglob("images_prepped_train/*.png"))[0] if list(root.rglob("images_prepped_train")) else \
        sorted((root / "train").glob("*.png"))[0]
    path.write_bytes(path.read_bytes()[:60])
    return f"{path}: cannot be read as an image"


def _ccp_bad_mat(root):
    path = sorted((root / "annotations" / "pixel-level").glob("*.mat"))[0]
    path.write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 10)
    return f"{path}: cannot read the pixel-level annotation"


DAMAGES: dict[str, tuple[str, str, Callable[[Path], str]]] = {
    "missing dataset_dir": ("brats_unet3d", "msd", _missing_dir),
    "empty dataset_dir": ("brats_unet3d", "msd", _empty_dir),
    "no dataset.json": ("brats_unet3d", "msd", _no_dataset_json),
    "malformed dataset.json": ("brats_unet3d", "msd", _bad_dataset_json),
    "a listed file is missing": ("brats_unet3d", "msd", _listed_file_missing),
    "truncated .nii.gz": ("brats_unet3d", "msd", _truncated_nifti),
    "not NIfTI, NIfTI name": ("brats_unet3d", "msd", _not_nifti),
    "3 modalities": ("brats_unet3d", "msd", _three_modalities),
    "3-D image, 4-D expected": ("brats_unet3d", "msd", _three_d_image),
    "label shape differs": ("brats_unet3d", "msd", _label_shape),
    "label affine differs": ("brats_unet3d", "msd", _label_affine),
    "label value 4 in MSD": ("brats_unet3d", "msd", _label_value),
    "NaN voxels": ("brats_unet3d", "msd", _nan_voxels),
    "all-zero volume": ("brats_unet3d", "msd", _all_zero),
    "modality shapes differ": ("brats_unet3d", "brats2021", _modality_shape),
    "modality affines differ": ("brats_unet3d", "brats2021", _modality_affine),
    "mask size differs": ("carvana_unet2d", "carvana", _carvana_mask_size),
    "unreadable GIF": ("carvana_unet2d", "carvana", _carvana_bad_gif),
    "unreadable PNG": ("voc_unet2d", "voc", _voc_bad_png),
    "corrupted photo": ("camvid_unet2d", "camvid", _camvid_bad_photo),
    "unreadable MAT": ("ccp_unet2d", "ccp", _ccp_bad_mat),
}


def damaged(name: str, clean: dict[str, Path], tmp: Path) -> tuple[str, Path, str]:
    """A damaged copy of the clean dataset for ``name``: (bundle, dataset folder, expected message fragment)."""
    bundle, base, damage = DAMAGES[name]
    root = tmp / clean[base].name
    shutil.copytree(clean[base], root)
    return bundle, root, damage(root)
