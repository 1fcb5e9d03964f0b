"""One module per on-disk dataset format: find cases, build MONAI datalists, label conventions, synthetic writers.

:data:`REGISTRY` names the dataset module of each bundle: the one whose ``cases_to_check(root, dataset_format,
result, **options)`` and ``check_case(case, result)`` ``monai-app validate`` and the check before training run.
Adding a dataset adds its module and one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class DatasetEntry:
    """A bundle's dataset: the module that checks it, the ``dataset_format`` values it accepts, what it is.

    Attributes:
        module_name: the module carrying ``cases_to_check`` and ``check_case`` (imported when first used).
        formats: the ``dataset_format`` values the bundle may name (``auto`` first).
        description: the dataset in a few words.
    """

    module_name: str
    formats: tuple[str, ...]
    description: str

    @property
    def module(self) -> ModuleType:
        """The checking module, imported on first use (so listing the registry imports no dataset code)."""
        return importlib.import_module(self.module_name)


REGISTRY: dict[str, DatasetEntry] = {
    "brats_unet3d": DatasetEntry("monai_app.datasets.brats_checks",
                                 ("auto", "msd", "brats2021", "brats2023", "brats2024ped"),
                                 "BraTS brain-tumour MRI (MSD Task01, BraTS 2018-2021, 2023-2025 and PED layouts)"),
    "carvana_unet2d": DatasetEntry("monai_app.datasets.carvana", ("auto", "gif", "csv"),
                                   "Carvana car photos with GIF or run-length (CSV) masks"),
    "camvid_unet2d": DatasetEntry("monai_app.datasets.camvid", ("auto", "seed", "segnet"),
                                  "CamVid street scenes (seed or SegNet layout)"),
    "voc_unet2d": DatasetEntry("monai_app.datasets.voc", ("auto",), "Pascal VOC 2012 semantic segmentation"),
    "ccp_unet2d": DatasetEntry("monai_app.datasets.ccp", ("auto",), "Clothing Co-Parsing pixel-level annotations"),
}
