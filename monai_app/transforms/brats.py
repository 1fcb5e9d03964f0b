"""BraTS label conventions both ways: :func:`brats_region_masks` and dictionary transforms MONAI lacks, from a
label map in a dataset format's own numbers to the region masks (whole tumour, tumour core, enhancing tumour, and
optionally the resection cavity) and back, and :class:`BratsSplitCavityd`, which sets the cavity channel apart so
the tumour regions are scored alone, and :class:`BratsLesionPostprocessd`, the lesion post-processing chosen on
validation cases (:mod:`monai_app.metrics.postprocessing`). The transforms any bundle can use (N4 bias-field
correction, image checks, ...) are in :mod:`monai_app.transforms.common`.

Class names are deliberately not MONAI's (MONAI resolves short ``_target_`` names across every module whose name
starts with ``monai``, ``monai_app`` included); configs name them by full dotted path.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping

import os

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from monai_app.datasets.brats import BratsFormat, get_format
from monai_app.errors import DatasetError
from monai_app.metrics.brats import image_spacing
from monai_app.metrics.postprocessing import apply_postprocessing, check_rules, is_active, load_rules
from monai_app.transforms.common import meta_like, source_name

logger = logging.getLogger(__name__)


def brats_region_masks(label: torch.Tensor, fmt: BratsFormat, cavity: bool = False) -> torch.Tensor:
    """Bool masks (3, ...) of whole tumour, tumour core and enhancing tumour of a label map (...) numbered as in
    ``fmt``: the one place the BraTS regions are computed, for training, evaluation and folder scoring alike. With
    ``cavity``, a fourth mask (4, ...): the resection cavity (``fmt.cavity``), which is in none of the three.

    Raises:
        DatasetError: ``cavity`` for a format without a resection-cavity label.
    """
    regions = list(fmt.regions)
    if cavity:
        if fmt.cavity is None:
            raise DatasetError(f"{fmt.name} labels have no resection cavity: no cavity channel can be made")
        regions.append([fmt.cavity])
    return torch.stack([torch.isin(label, torch.tensor(r, device=label.device)) for r in regions])


class BratsLabelToRegionsd(MapTransform):
    """Turn a BraTS label map (1, H, W, D) into float region masks (3, H, W, D): whole tumour, tumour core,
    enhancing tumour, using the label numbers of the dataset's own format; with ``cavity``, (4, H, W, D): the
    resection cavity (RC, label 4 of ``brats2023``) as a fourth, not nested in the other three.

    MONAI's ``ConvertToMultiChannelBasedOnBratsClasses`` hard-codes the 2018-2021 numbers and is wrong for the MSD
    Task01 labels; this transform takes the format. Output is float32 (``DiceLoss(squared_pred=True)`` fails on
    bool). Label values outside the format's set raise :class:`DatasetError` naming the file.
    """

    def __init__(self, keys: KeysCollection, dataset_format: str, check_values: bool = True, cavity: bool = False,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.fmt = get_format(dataset_format)
        self.check_values = check_values
        self.cavity = bool(cavity)
        if self.cavity and self.fmt.cavity is None:
            raise DatasetError(f"{self.fmt.name} labels have no resection cavity: no cavity channel can be made")

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
            masks = brats_region_masks(plain[0], self.fmt, self.cavity)
            d[key] = meta_like(masks.to(torch.float32), label)
        return d


class BratsRegionsToLabeld(MapTransform):
    """Turn binary region masks - WT, TC, ET (3, ...), and RC (4, ...) from a network that learnt the resection
    cavity - into one label map (1, ...) in a format's numbers.

    Nesting is enforced the way the labels are defined: ET wins over the rest of the core, the core over edema. The
    cavity is written as ``fmt.cavity`` where RC is on and WT off (tumour wins); for a format without a cavity label
    the RC channel is left out. The channel count says whether there is an RC channel, so a 3-channel and a 4-channel
    network need no setting. A region-trained network cannot tell a cystic component (BraTS-PED CC) from the rest of
    the core: it is written as the core's label (NETC).
    """

    def __init__(self, keys: KeysCollection, dataset_format: str, dtype: torch.dtype = torch.uint8,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.fmt = get_format(dataset_format)
        self.dtype = dtype
        self._warned = False

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            regions = d[key]
            wt, tc, et = (regions[i] > 0.5 for i in range(3))
            label = torch.zeros(regions.shape[1:], dtype=self.dtype, device=regions.device)
            if regions.shape[0] > 3 and self.fmt.cavity is not None:
                label[regions[3] > 0.5] = self.fmt.cavity
            elif regions.shape[0] > 3 and not self._warned:
                self._warned = True
                logger.warning("%s labels have no resection cavity: the network's RC channel is not written",
                               self.fmt.name)
            label[wt] = self.fmt.edema
            label[tc] = self.fmt.necrosis
            label[et] = self.fmt.enhancing
            d[key] = meta_like(label[None], regions)
        return d


class BratsSplitCavityd(MapTransform):
    """Set the resection-cavity channel apart: a 4-channel region mask under ``key`` keeps WT, TC, ET, and its RC
    channel moves to ``<key><postfix>`` (1, ...); a 3-channel one is left as it is.

    Validation uses it after the round trip through the label map, so the Dice of WT, TC and ET (the key metric, the
    per-region columns, the panels) is computed as without a cavity channel, and RC is scored on its own keys.
    """

    def __init__(self, keys: KeysCollection, postfix: str = "_rc", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.postfix = postfix

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            if d[key].shape[0] > 3:
                d[f"{key}{self.postfix}"] = d[key][3:4]
                d[key] = d[key][:3]
        return d


class BratsLesionPostprocessd(MapTransform):
    """Apply lesion post-processing rules (``postprocessing.json``, chosen by ``monai-app postprocess``) to region
    masks (C, X, Y, Z): small lesions removed per region, small ET relabelled as NETC; see
    :func:`monai_app.metrics.postprocessing.apply_postprocessing`. A no-op without rules.

    The voxel size comes from the MetaTensor's affine (1 mm without one), so the volumes are in mm^3 of the space
    the masks are in (the model's ``pixdim`` where the bundles use it, before ``Invertd``).

    Args:
        keys: the region masks (``pred``).
        rules: a rules dict, the path of a ``postprocessing.json``, or None (nothing done).
    """

    def __init__(self, keys: KeysCollection, rules: dict | str | os.PathLike | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.rules = load_rules(rules) if isinstance(rules, (str, os.PathLike)) else check_rules(rules) if rules \
            else None

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if not is_active(self.rules):
            return d
        for key in self.key_iterator(d):
            regions = d[key]
            kept = apply_postprocessing(regions.detach().cpu().numpy() > 0.5, self.rules, image_spacing(regions))
            d[key] = meta_like(torch.from_numpy(kept).to(device=regions.device, dtype=regions.dtype), regions)
        return d
