"""monai-app: MONAI bundles for brain-tumour (3D) and natural-image (2D) segmentation."""

from __future__ import annotations

__version__ = "0.1.0"
