"""bf16 inference on the CPU: ``amp`` for the sliding window where MONAI's evaluator only autocasts on CUDA.

``SupervisedEvaluator(amp=True)`` runs the network under ``torch.autocast("cuda")``, which does nothing for CPU
tensors, so ``--amp true --device cpu`` used to be silently ignored. ``AutocastInferer`` wraps brats_unet3d's
sliding-window inferer in ``torch.autocast("cpu", dtype=torch.bfloat16)`` when ``amp`` is on and the device is the
CPU: 1.6x faster on a CPU with native bf16 (AVX512-BF16 or AMX), Dice against fp32 >= 0.998 per region
(BENCHMARKS.md Tables 1.2 and 1.5). The windows' outputs are still blended in float32 (MONAI accumulates in the
input's dtype), and the result is returned as float32.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from monai.inferers import Inferer

logger = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX); without it bf16 is emulated and slower."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class AutocastInferer(Inferer):
    """Run ``inferer`` under bf16 autocast on the CPU when ``amp`` is on and ``device`` is a CPU; else unchanged
    (on CUDA the evaluator's own ``amp`` autocasts to fp16)."""

    def __init__(self, inferer: Inferer, amp: bool, device: str | torch.device) -> None:
        super().__init__()
        self.inferer = inferer
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

    def __getattr__(self, name: str) -> Any:  # roi_size, sw_batch_size, overlap... of the wrapped inferer
        if name == "inferer":
            raise AttributeError(name)
        return getattr(self.inferer, name)
