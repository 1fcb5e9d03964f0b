"""Dictionary transforms MONAI lacks that any volume bundle can use: N4 bias-field correction (SimpleITK), image
checks with clear errors, masking outside the image, cropping to a compact copy, removing small regions channel by
channel, and writing one file per case atomically.

Class names are deliberately not MONAI's (MONAI resolves short ``_target_`` names across every module whose name
starts with ``monai``, ``monai_app`` included); configs name them by full dotted path.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RemoveSmallObjects

from monai_app.errors import DatasetError
from monai_app.files import atomic_path

logger = logging.getLogger(__name__)


def source_name(img: torch.Tensor) -> str:
    """The file an image came from, for error messages."""
    meta = getattr(img, "meta", {}) or {}
    name = meta.get("filename_or_obj", "<in-memory image>")
    return str(name[0] if isinstance(name, (list, tuple)) and name else name)


def meta_like(data: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``data`` carrying ``like``'s metadata and transform history when ``like`` is a MetaTensor."""
    if isinstance(like, MetaTensor):
        return MetaTensor(data, meta=like.meta, applied_operations=like.applied_operations)
    return data


def n4_bias_field_correct(image: np.ndarray, spacing: Sequence[float] | None = None, shrink: int = 4,
                          iterations: Sequence[int] = (50, 50, 30)) -> np.ndarray:
    """SimpleITK's N4 bias-field correction of one 3-D MRI volume, fitted on a shrunk copy inside the
    non-zero (brain) mask and applied at full resolution; zeros stay zero."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(image, dtype=np.float32))
    if spacing is not None:
        img.SetSpacing([float(s) for s in spacing][::-1])
    mask = sitk.Cast(img > 0, sitk.sitkUInt8)
    if not np.any(sitk.GetArrayViewFromImage(mask)):
        return np.asarray(image, dtype=np.float32)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([int(i) for i in iterations])
    shrink_factors = [max(1, min(shrink, s // 8)) for s in img.GetSize()]
    corrector.Execute(sitk.Shrink(img, shrink_factors), sitk.Shrink(mask, shrink_factors))
    log_bias = corrector.GetLogBiasFieldAsImage(img)
    corrected = sitk.GetArrayFromImage(img / sitk.Exp(log_bias))
    return np.where(sitk.GetArrayViewFromImage(mask) > 0, corrected, 0).astype(np.float32)


class N4BiasFieldCorrectiond(MapTransform):
    """Apply :func:`n4_bias_field_correct` to every channel of the images under ``keys`` (channel-first).

    N4 takes seconds per channel at BraTS size: with a CacheDataset it runs once per case. Off by default in the
    bundles; switch it on with ``--n4 true`` for data with visible intensity inhomogeneity.
    """

    def __init__(self, keys: KeysCollection, enabled: bool = True, shrink: int = 4,
                 iterations: Sequence[int] = (50, 50, 30), allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.enabled, self.shrink, self.iterations = enabled, shrink, tuple(iterations)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if not self.enabled:
            return d
        for key in self.key_iterator(d):
            img = d[key]
            spacing = img.pixdim.tolist() if isinstance(img, MetaTensor) else None
            array = np.asarray(img.detach().cpu() if isinstance(img, torch.Tensor) else img)
            out = np.stack([n4_bias_field_correct(c, spacing, self.shrink, self.iterations) for c in array])
            d[key] = meta_like(torch.as_tensor(out), img) if isinstance(img, torch.Tensor) else out
        return d


class CheckImaged(MapTransform):
    """Refuse an image (channel-first, after ``EnsureChannelFirstd``) that a network cannot segment: other than
    ``spatial_dims``-D, another channel count than ``channels``, or NaN / infinite voxels. The
    :class:`DatasetError` names the file and what was found (inference reports it for that case and goes on).

    Args:
        keys: the image keys.
        channels: the channel count the network takes (BraTS: 4 modalities).
        spatial_dims: 3 for volumes.
        channel_names: the channels' names, for the message (``FLAIR, T1, T1 with contrast, T2``).
    """

    def __init__(self, keys: KeysCollection, channels: int, spatial_dims: int = 3,
                 channel_names: Sequence[str] = (), allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.channels, self.spatial_dims, self.channel_names = int(channels), int(spatial_dims), list(channel_names)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            channels, spatial = img.shape[0], tuple(img.shape[1:])
            names = f" ({', '.join(self.channel_names)})" if self.channel_names else ""
            expected = f"{self.channels} channels{names}"
            if len(spatial) != self.spatial_dims:
                raise DatasetError(f"{source_name(img)}: a {len(spatial)}-D image of shape {spatial} with {channels} "
                                   f"channel(s); expected a {self.spatial_dims}-D volume with {expected}")
            if channels != self.channels:
                found = f"a single {self.spatial_dims}-D volume of shape {spatial}" if channels == 1 else \
                    f"{channels} channels"
                raise DatasetError(f"{source_name(img)}: {found}; expected {expected}, e.g. a "
                                   f"{self.spatial_dims + 1}-D file with the channels last")
            plain = torch.as_tensor(img)
            # one reduction first (NaN / inf propagate through a sum); count the voxels only when it fails
            bad = int((~torch.isfinite(plain)).sum()) if plain.is_floating_point() and not torch.isfinite(
                plain.sum()) else 0
            if bad:
                raise DatasetError(f"{source_name(img)}: {bad} voxel(s) are NaN or infinite; replace them (e.g. with "
                                   "0) and run this case again")
        return d


class MaskOutsideImaged(MapTransform):
    """Zero predictions where every channel of the image is zero: outside the brain of skull-stripped MRI.

    Models trained on patches may fire on the empty background of a whole volume; this removes such false
    positives at no cost. ``enabled=False`` makes it a no-op (the ``mask_outside_brain`` config key).
    """

    def __init__(self, keys: KeysCollection, image_key: str = "image", enabled: bool = True,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key, self.enabled = image_key, enabled

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if not self.enabled:
            return d
        inside = (d[self.image_key] != 0).any(dim=0, keepdim=True)
        for key in self.key_iterator(d):
            d[key] = d[key] * inside.to(device=d[key].device, dtype=d[key].dtype)
        return d


class Compactd(MapTransform):
    """Give each array its own memory when it is a view of a larger one (a crop is a view of the whole volume).

    Before a cache: ``CacheDataset`` would otherwise keep the whole uncropped volume alive in RAM, and
    ``torch.save`` (``PersistentDataset``) writes a view's whole storage: a BraTS case cropped to the brain took
    161 MB on disk instead of 113 MB.
    """

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            if isinstance(img, torch.Tensor) and img.untyped_storage().nbytes() > img.numel() * img.element_size():
                d[key] = img.clone(memory_format=torch.contiguous_format)
        return d


class RemoveSmallRegionsd(MapTransform):
    """Remove connected components smaller than ``min_size`` voxels from each channel on its own, with MONAI's
    ``RemoveSmallObjects``; a no-op (no labelling pass) when ``min_size`` is 0.

    Channels are handled one at a time because MONAI labels a multi-channel array as a whole, so a small island
    in the tumour core would stay connected to the whole-tumour channel that contains it and never be removed.
    """

    def __init__(self, keys: KeysCollection, min_size: int = 0, connectivity: int = 1,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.remove = RemoveSmallObjects(min_size=int(min_size), connectivity=connectivity) if min_size > 0 else None

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.remove is None:
            return d
        for key in self.key_iterator(d):
            img = d[key]
            kept = torch.cat([torch.as_tensor(self.remove(img[i : i + 1])) for i in range(img.shape[0])])
            d[key] = meta_like(kept.to(device=img.device, dtype=img.dtype), img)
        return d


class WriteCased(MapTransform):
    """Write ``data[key]`` (channel-first, with its geometry in the MetaTensor) to ``<output_dir>/<case_id><ext>``.

    Unlike ``SaveImaged`` the name is exactly the case id (no postfix or sub-folder), and the file appears
    atomically: it is written under a temporary name and renamed, so an interrupted run never leaves half a file.
    The writer is MONAI's for the extension (NibabelWriter for NIfTI, PILWriter for PNG).

    Args:
        keys: the keys to write (each to ``output_dir``).
        output_dir: the folder of the files.
        extension: ``.nii.gz``, ``.nii`` or ``.png``.
        case_key: the key holding the case id.
        output_dtype: the type the data is cast to before writing.
        scaled_dtype: NIfTI only: store the data as this integer type with NIfTI's ``scl_slope`` / ``scl_inter``
            (nibabel sets them from the data's range), which every NIfTI reader turns back into floats: probability
            maps in 2 bytes a voxel with ``numpy.int16`` (NIfTI has no float16), within 1e-4 of the floats.
        allow_missing_keys: skip keys that are not in the data.
    """

    def __init__(self, keys: KeysCollection, output_dir: str, extension: str = ".nii.gz", case_key: str = "case_id",
                 output_dtype: type = np.uint8, scaled_dtype: type | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir, self.extension = output_dir, extension
        self.case_key, self.output_dtype, self.scaled_dtype = case_key, output_dtype, scaled_dtype

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        from monai.data.image_writer import resolve_writer

        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            writer = resolve_writer(self.extension.lstrip("."))[0](output_dtype=self.output_dtype)
            writer.set_data_array(img.detach().cpu(), channel_dim=0)
            writer.set_metadata(dict(getattr(img, "meta", {})), resample=False)
            target = f"{self.output_dir}/{d[self.case_key]}{self.extension}"
            with atomic_path(target) as tmp:
                writer.write(str(tmp), verbose=False, **self._header())
            logger.debug("wrote %s", target)
        return d

    def _header(self) -> dict:
        """The NIfTI header that stores the data as ``scaled_dtype`` (nibabel scales it on saving), if any."""
        if self.scaled_dtype is None:
            return {}
        import nibabel as nib

        header = nib.Nifti1Header()
        header.set_data_dtype(self.scaled_dtype)
        return {"header": header}

