"""Inferers wrapped around the sliding window: bf16 on the CPU (:class:`AutocastInferer`) and test-time mirroring
(:class:`MirrorInferer`).

bf16 inference on the CPU: ``amp`` for the sliding window where MONAI's evaluator only autocasts on CUDA.

``SupervisedEvaluator(amp=True)`` runs the network under ``torch.autocast("cuda")``, which does nothing for CPU
tensors, so ``--amp true --device cpu`` used to be silently ignored. ``AutocastInferer`` wraps brats_unet3d's
sliding-window inferer in ``torch.autocast("cpu", dtype=torch.bfloat16)`` when ``amp`` is on and the device is the
CPU: 1.6x faster on a CPU with native bf16 (AVX512-BF16 or AMX), Dice against fp32 >= 0.998 per region
(BENCHMARKS.md Tables 1.2 and 1.5). The windows' outputs are still blended in float32 (MONAI accumulates in the
input's dtype), and the result is returned as float32.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from monai.inferers import Inferer

from monai_app.config import cpu_has_native_bf16

logger = logging.getLogger(__name__)


def mean_sigmoid_logits(outputs: Iterable[torch.Tensor]) -> torch.Tensor:
    """The logits of the mean sigmoid probability of several outputs, ``logit(mean_i sigmoid(out_i))``: averaged
    probabilities that the bundles' usual sigmoid and 0.5 threshold take unchanged (mirroring, ensembles)."""
    total, count = None, 0
    for out in outputs:
        prob = torch.sigmoid(out.float())
        total, count = (prob if total is None else total + prob), count + 1
    return torch.logit(total / count, eps=1e-6)


class _WrappingInferer(Inferer):
    """An inferer around another: what it does not have (roi_size, sw_batch_size, overlap...) is the wrapped one's."""

    def __init__(self, inferer: Inferer) -> None:
        super().__init__()
        self.inferer = inferer

    def __getattr__(self, name: str) -> Any:  # roi_size, sw_batch_size, overlap... of the wrapped inferer
        if name == "inferer":
            raise AttributeError(name)
        return getattr(self.inferer, name)


class AutocastInferer(_WrappingInferer):
    """Run ``inferer`` under bf16 autocast on the CPU when ``amp`` is on and ``device`` is a CPU; else unchanged
    (on CUDA the evaluator's own ``amp`` autocasts to fp16)."""

    def __init__(self, inferer: Inferer, amp: bool, device: str | torch.device) -> None:
        super().__init__(inferer)
        self.enabled = bool(amp) and torch.device(device).type == "cpu"
        if self.enabled and not cpu_has_native_bf16():
            logger.warning("amp on the CPU runs the network in bfloat16, which this CPU has no native support for "
                           "(AVX512-BF16 or AMX): expect it to be slower than float32; use --amp false")

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.enabled:
            return self.inferer(inputs, network, *args, **kwargs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = self.inferer(inputs, network, *args, **kwargs)
        return out.float() if isinstance(out, torch.Tensor) else out


class MirrorInferer(_WrappingInferer):
    """Test-time augmentation by mirroring, as nnU-Net does it: ``inferer`` runs on the input flipped along every
    subset of ``axes`` (8 passes for three axes), each output is flipped back, and the sigmoid probabilities are
    averaged before any threshold. The mean is returned as logits (``logit(mean probability)``), so the bundle's
    usual sigmoid and 0.5 threshold follow unchanged. With no axes it is ``inferer`` itself.

    Args:
        inferer: the inferer of one pass (the sliding window).
        axes: spatial axes to mirror (0, 1, 2 for X, Y, Z of a channel-first batch).
    """

    def __init__(self, inferer: Inferer, axes: Sequence[int] = ()) -> None:
        super().__init__(inferer)
        axes = tuple(int(a) for a in axes)
        self.flips = [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> Any:
        if len(self.flips) == 1:
            return self.inferer(inputs, network, *args, **kwargs)
        def flipped_back(axes: Sequence[int]) -> torch.Tensor:
            dims = [a + 2 for a in axes]  # batch and channel come first
            if not dims:
                return self.inferer(inputs, network, *args, **kwargs)
            return torch.flip(self.inferer(torch.flip(inputs, dims), network, *args, **kwargs), dims)

        return mean_sigmoid_logits(flipped_back(axes) for axes in self.flips)
