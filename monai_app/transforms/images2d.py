"""Transforms for 2-D natural images that MONAI lacks: RGB conversion on load, hue shift, masks from Kaggle RLE,
and label PNG writing (class ids, palette or colour)."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform

from monai_app.datasets.images import colourise, write_label_png
from monai_app.datasets.rle import rle_decode
from monai_app.errors import DatasetError
from monai_app.files import atomic_path

logger = logging.getLogger(__name__)


def to_rgb(image):
    """``PILReader`` converter: any photo (grayscale, palette, RGBA, CMYK, 16-bit) as 8-bit RGB."""
    if image.mode == "I;16" or image.mode == "I":
        image = image.point(lambda v: v / 256).convert("L")
    return image if image.mode == "RGB" else image.convert("RGB")


class RandHueShiftd(RandomizableTransform, MapTransform):
    """Rotate the hue of RGB images (channel-first, values in [0, 1]) by a random fraction of the colour wheel.

    Args:
        keys: the RGB image keys.
        prob: probability of shifting.
        max_shift: largest shift as a fraction of the hue circle (0.05 = 18 degrees), drawn uniformly +-.
    """

    def __init__(self, keys: KeysCollection, prob: float = 0.5, max_shift: float = 0.05,
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.max_shift = max_shift
        self._shift = 0.0

    def randomize(self, data=None) -> None:
        super().randomize(None)
        self._shift = self.R.uniform(-self.max_shift, self.max_shift)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        from skimage.color import hsv2rgb, rgb2hsv

        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            img = d[key]
            hsv = rgb2hsv(np.moveaxis(np.clip(img.detach().cpu().numpy(), 0, 1), 0, -1))
            hsv[..., 0] = (hsv[..., 0] + self._shift) % 1.0
            rgb = torch.as_tensor(np.moveaxis(hsv2rgb(hsv), -1, 0), dtype=img.dtype, device=img.device)
            d[key] = img.clone().copy_(rgb) if isinstance(img, torch.Tensor) else rgb
        return d


class DecodeRLEd(MapTransform):
    """Make ``data[key]`` a (1, H, W) mask from the Kaggle RLE text in ``data[rle_key]``, at the size of the
    (channel-first) ``data[ref_key]`` image; items without RLE text are left as they are."""

    def __init__(self, keys: KeysCollection, rle_key: str = "rle", ref_key: str = "image") -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.rle_key, self.ref_key = rle_key, ref_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.rle_key not in d:
            return d
        ref = d[self.ref_key]
        try:
            mask = rle_decode(d[self.rle_key], tuple(ref.shape[1:]))
        except ValueError as e:
            raise DatasetError(f"{d.get('case_id', 'image')}: bad RLE mask in train_masks.csv: {e}") from None
        meta = {k: v for k, v in getattr(ref, "meta", {}).items() if k != "filename_or_obj"}
        for key in self.keys:
            d[key] = MetaTensor(torch.from_numpy(mask)[None].float(), meta=dict(meta))
        return d


class WriteLabelPNGd(MapTransform):
    """Write the (1, H, W) class ids in ``data[key]`` to ``<output_dir>/<case_id>.png`` (atomically).

    Args:
        keys: the prediction key.
        output_dir: folder of the label PNGs.
        palette: colours by class id.
        indexed: write the label PNG as a palette PNG (ids that viewers show in colour, as VOC's and Carvana's
            masks); else a grayscale PNG of raw ids (as CamVid's annotations).
        colour_dir: when given, also write an RGB picture of the labels there (same name), for people to look at.
        case_key: the data item that names the case.
    """

    def __init__(self, keys: KeysCollection, output_dir: str, palette: Sequence[Sequence[int]] | None = None,
                 indexed: bool = False, colour_dir: str | None = None, case_key: str = "case_id") -> None:
        super().__init__(keys)
        self.output_dir, self.palette, self.indexed = output_dir, palette, indexed
        self.colour_dir, self.case_key = colour_dir, case_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        from PIL import Image

        d = dict(data)
        for key in self.key_iterator(d):
            ids = np.asarray(torch.as_tensor(d[key]).detach().cpu()).reshape(d[key].shape[-2:]).round()
            name = f"{d[self.case_key]}.png"
            write_label_png(ids, Path(self.output_dir) / name, self.palette if self.indexed else None)
            if self.colour_dir and self.palette is not None:
                with atomic_path(Path(self.colour_dir) / name) as tmp:
                    Image.fromarray(colourise(ids, self.palette)).save(tmp, format="PNG")
            logger.debug("wrote %s", Path(self.output_dir) / name)
        return d


class RandBoxBlurd(RandomizableTransform, MapTransform):
    """Average (box) blur of 2-D images, with probability ``prob``: each pixel becomes the mean of its ``size`` x
    ``size`` neighbourhood (edges reflected), as the seed's "average blur" augmentation.

    MONAI's ``MeanFilter`` is not used: its kernel is all ones, so it sums the neighbourhood instead of averaging.
    """

    def __init__(self, keys: KeysCollection, prob: float = 0.2, size: int = 3,
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.size = size

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        import torch.nn.functional as F

        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        half = self.size // 2
        for key in self.key_iterator(d):
            img = d[key]
            padded = F.pad(torch.as_tensor(img, dtype=torch.float32)[None], (half, half, half, half), mode="reflect")
            blurred = F.avg_pool2d(padded, self.size, stride=1)[0]
            d[key] = img.clone().copy_(blurred) if isinstance(img, torch.Tensor) else blurred.numpy()
        return d
