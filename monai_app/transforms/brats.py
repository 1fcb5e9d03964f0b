"""BraTS label conventions both ways: :func:`brats_region_masks` and two dictionary transforms MONAI lacks, from a
label map in a dataset format's own numbers to the three region masks (whole tumour, tumour core, enhancing
tumour) and back. The transforms any bundle can use (N4 bias-field correction, image checks, ...) are in
:mod:`monai_app.transforms.common`.

Class names are deliberately not MONAI's (MONAI resolves short ``_target_`` names across every module whose name
starts with ``monai``, ``monai_app`` included); configs name them by full dotted path.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from monai_app.datasets.brats import BratsFormat, get_format
from monai_app.errors import DatasetError
from monai_app.transforms.common import meta_like, source_name

logger = logging.getLogger(__name__)


def brats_region_masks(label: torch.Tensor, fmt: BratsFormat) -> torch.Tensor:
    """Bool masks (3, ...) of whole tumour, tumour core and enhancing tumour of a label map (...) numbered as in
    ``fmt``: the one place the BraTS regions are computed, for training, evaluation and folder scoring alike."""
    return torch.stack([torch.isin(label, torch.tensor(r, device=label.device)) for r in fmt.regions])


class BratsLabelToRegionsd(MapTransform):
    """Turn a BraTS label map (1, H, W, D) into float region masks (3, H, W, D): whole tumour, tumour core,
    enhancing tumour, using the label numbers of the dataset's own format.

    MONAI's ``ConvertToMultiChannelBasedOnBratsClasses`` hard-codes the 2018-2021 numbers and is wrong for the MSD
    Task01 labels; this transform takes the format. Output is float32 (``DiceLoss(squared_pred=True)`` fails on
    bool). Label values outside the format's set raise :class:`DatasetError` naming the file.
    """

    def __init__(self, keys: KeysCollection, dataset_format: str, check_values: bool = True,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.fmt = get_format(dataset_format)
        self.check_values = check_values

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[key]
            if self.check_values:
                bad = self.fmt.unknown_labels(torch.unique(label).tolist())
                if bad:
                    raise DatasetError(f"{source_name(label)}: label values {bad} are not in the {self.fmt.name} "
                                       f"label set {list(self.fmt.labels)} (wrong dataset_format?)")
            plain = label.as_tensor() if isinstance(label, MetaTensor) else torch.as_tensor(label)
            d[key] = meta_like(brats_region_masks(plain[0], self.fmt).to(torch.float32), label)
        return d


class BratsRegionsToLabeld(MapTransform):
    """Turn binary region masks (3, ...) - WT, TC, ET - into one label map (1, ...) in a format's numbers.

    Nesting is enforced the way the labels are defined: ET wins over the rest of the core, the core over edema.
    """

    def __init__(self, keys: KeysCollection, dataset_format: str, dtype: torch.dtype = torch.uint8,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.fmt = get_format(dataset_format)
        self.dtype = dtype

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            regions = d[key]
            wt, tc, et = (regions[i] > 0.5 for i in range(3))
            label = torch.zeros(regions.shape[1:], dtype=self.dtype, device=regions.device)
            label[wt] = self.fmt.edema
            label[tc] = self.fmt.necrosis
            label[et] = self.fmt.enhancing
            d[key] = meta_like(label[None], regions)
        return d


