"""Lesion-aware patch sampling: every connected lesion of a case gets its own share of the training crops.

BraTS 2023-2025 score each lesion separately (a missed 30-voxel metastasis costs as much as a missed glioma), but a
crop centred on a random tumour voxel almost always lands in the largest lesion. :class:`LabelLesionsd` labels the
connected components of the whole-tumour channel once per case (26-connectivity, the 2023 rule's), and MONAI's
``ClassesToIndicesd`` + ``RandCropByLabelClassesd`` then draw a crop centre from one component, each present
component equally likely (:func:`lesion_crop_ratios`); ``OneOf`` mixes these crops with the usual tumour/background
crops (:func:`crop_weights`). brats_unet3d's train.json wires them (``patch_sampling: lesion``).

Class names are deliberately not MONAI's; configs name them by full dotted path.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from scipy import ndimage

from monai_app.errors import UserInputError
from monai_app.transforms.common import meta_like

MAX_LESIONS = 63  # components beyond this are merged into the last one (they share one crop share)


def label_lesions(mask: np.ndarray, max_lesions: int = MAX_LESIONS) -> np.ndarray:
    """The connected components of a binary mask: 0 background, 1..``max_lesions`` the components in scan order,
    those beyond ``max_lesions`` merged into the last. Voxels touching by a face, an edge or a corner connect
    (26-connectivity in 3-D, as the BraTS 2023 lesion-wise rule counts lesions)."""
    mask = np.asarray(mask) > 0
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    components, _ = ndimage.label(mask, structure=structure)
    return np.minimum(components, max_lesions).astype(np.uint8 if max_lesions < 256 else np.int32)


class LabelLesionsd(MapTransform):
    """Write the lesions of a region label as a one-channel component map, for ``RandCropByLabelClassesd``.

    Deterministic: a training config places it before the first random transform, so the cache keeps its result.

    Args:
        keys: the region label (channel-first, binary channels; brats_unet3d's ``label``).
        output_key: where the component map goes (same spatial shape and metadata, one channel).
        channel: the label channel whose components are the lesions (0: whole tumour after
            ``BratsLabelToRegionsd``).
        max_lesions: components beyond this are merged into the last one.
        allow_missing_keys: leave a dict without ``keys`` unchanged.
    """

    def __init__(self, keys: KeysCollection = "label", output_key: str = "lesions", channel: int = 0,
                 max_lesions: int = MAX_LESIONS, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if not 0 < max_lesions < 2**31:
            raise ValueError(f"max_lesions must be positive, got {max_lesions}")
        self.output_key, self.channel, self.max_lesions = output_key, channel, max_lesions

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[key]
            mask = (label[self.channel] > 0).detach().cpu().numpy() if isinstance(label, torch.Tensor) \
                else np.asarray(label[self.channel]) > 0
            components = torch.from_numpy(label_lesions(mask, self.max_lesions)[None])
            d[self.output_key] = meta_like(components, label) if isinstance(label, torch.Tensor) else components.numpy()
        return d


def lesion_crop_ratios(background: float = 1.0, max_lesions: int = MAX_LESIONS) -> list[float]:
    """``RandCropByLabelClassesd``'s ``ratios`` over a :class:`LabelLesionsd` map: ``background`` for class 0, 1 for
    every lesion (absent ones get 0 from MONAI), so each present lesion is equally likely.

    Raises:
        UserInputError: ``background`` is negative.
    """
    if not float(background) >= 0:
        raise UserInputError(f"--lesion_background_ratio {background!r}: expected a number >= 0")
    return [float(background)] + [1.0] * max_lesions


def crop_weights(lesion_crop_weight: float) -> list[float]:
    """``OneOf``'s weights of [lesion crops, tumour/background crops] for one case's patches.

    Raises:
        UserInputError: ``lesion_crop_weight`` is not a number from 0 to 1.
    """
    try:
        weight = float(lesion_crop_weight)
    except (TypeError, ValueError):
        weight = float("nan")
    if not 0.0 <= weight <= 1.0:
        raise UserInputError(f"--lesion_crop_weight {lesion_crop_weight!r}: expected a number from 0 to 1 (the share "
                             "of cases whose patches are centred on one lesion each)")
    return [weight, 1.0 - weight]
