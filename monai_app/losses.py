"""Losses of multi-class (softmax) segmentation in which some reference pixels are ignored.

- :class:`TverskyCrossEntropyLoss`: ``lambda * Tversky + (1 - lambda) * cross-entropy`` (the Pascal VOC seed's loss),
  built on MONAI's :class:`~monai.losses.TverskyLoss` and :func:`torch.nn.functional.cross_entropy`. Pixels whose
  reference is ``ignore_index`` (VOC's 255 boundaries, CamVid's void when it is ignored) or any id outside
  ``[0, C)`` count in neither term.
- :func:`class_weights_from_frequency`: inverse-frequency class weights for the cross-entropy term (rare classes).

The class is deliberately not named like any MONAI class: MONAI resolves a short ``_target_`` name across every
module whose name starts with ``monai``, ``monai_app`` included.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.losses import TverskyLoss
from monai.utils import convert_to_tensor
from torch.nn.modules.loss import _Loss

__all__ = ["TverskyCrossEntropyLoss", "class_weights_from_frequency"]

_CE_IGNORE = -100  # the id that ignored pixels get before F.cross_entropy (its default ignore_index)


def _target_ids(target: torch.Tensor, input: torch.Tensor) -> torch.Tensor:
    """(B, 1, *S) or (B, *S) class ids, float or integer -> (B, *S) long; shapes are checked against ``input``."""
    if target.ndim == input.ndim and target.shape[1] == 1:
        target = target[:, 0]
    if target.ndim != input.ndim - 1 or target.shape[0] != input.shape[0] or target.shape[1:] != input.shape[2:]:
        raise ValueError(f"target must be (B, 1, *S) or (B, *S) class ids matching input (B, C, *S) = "
                         f"{tuple(input.shape)} in batch and spatial size, got shape {tuple(target.shape)}")
    return target.round().long() if target.is_floating_point() else target.long()


class TverskyCrossEntropyLoss(_Loss):
    """``lambda_tversky * Tversky + (1 - lambda_tversky) * cross-entropy`` of softmax segmentation, with ignored pixels.

    Tversky term: the soft counts of each class ``c`` over an image's pixels, with ``p`` the softmax probability of
    ``c`` and ``g`` the one-hot reference, are ``TP = sum(p * g)``, ``FP = sum(p * (1 - g))``,
    ``FN = sum((1 - p) * g)``; the Tversky index is ``TI = (TP + smooth_nr) / (TP + alpha * FP + beta * FN +
    smooth_dr)`` and the term is ``1 - TI`` averaged over the classes and the images (``batch=False``), or over the
    classes of counts summed over the whole batch (``batch=True``), exactly as :class:`~monai.losses.TverskyLoss`
    computes it. ``alpha = beta = 0.5`` is the soft Dice loss; ``beta > alpha`` weighs missed pixels more.

    Cross-entropy term: the mean of ``-log p(reference class)`` over the non-ignored pixels of the batch
    (:func:`torch.nn.functional.cross_entropy`); with ``class_weights`` it is the ``weight``-weighted mean.

    Ignored pixels (reference ``ignore_index``, or any id outside ``[0, C)``) count nowhere: cross-entropy leaves them
    out, and for the Tversky term both the one-hot reference and the probabilities are zeroed there, so they add
    neither a false positive nor a false negative; their gradient is exactly 0. An image with no valid pixel is left
    out of the Tversky average; if no pixel of the batch is valid the loss is a zero that keeps the graph.

    In a bundle config the seed's setting is called ``lambda`` (a Python keyword, so not a valid argument name); it
    is passed as ``lambda_tversky``, e.g. ``{"_target_": "monai_app.losses.TverskyCrossEntropyLoss",
    "lambda_tversky": "@lambda", "alpha": 0.3, "beta": 0.7}``.

    Args:
        lambda_tversky: the weight of the Tversky term, in ``[0, 1]``; cross-entropy gets ``1 - lambda_tversky``.
            A term whose weight is 0 is not computed.
        alpha: the Tversky weight of false positives.
        beta: the Tversky weight of false negatives.
        ignore_index: the reference id of ignored pixels (255 in VOC); may also be a class id in ``[0, C)``, whose
            pixels are then ignored. ``None``: nothing is ignored, and a reference id outside ``[0, C)`` is an error.
        include_background: whether channel 0 counts in the Tversky term (cross-entropy always uses every class).
        smooth_nr: added to the Tversky numerator.
        smooth_dr: added to the Tversky denominator.
        batch: sum the Tversky counts over the batch before the index (one index per class) instead of per image.
        class_weights: optional per-class weights, ``C`` of them, of the cross-entropy term only (the Tversky term is
            unweighted), e.g. from :func:`class_weights_from_frequency` for rare classes.
    """

    def __init__(
        self,
        lambda_tversky: float = 0.75,
        alpha: float = 0.5,
        beta: float = 0.5,
        ignore_index: int | None = 255,
        include_background: bool = True,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(reduction="mean")
        if not 0.0 <= lambda_tversky <= 1.0:
            raise ValueError(f"lambda_tversky must be in [0, 1], got {lambda_tversky}")
        self.lambda_tversky = float(lambda_tversky)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.tversky = TverskyLoss(include_background=include_background, softmax=False, to_onehot_y=False,
                                   alpha=alpha, beta=beta, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch)
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32).flatten()
        self.class_weights: torch.Tensor | None
        self.register_buffer("class_weights", weights)  # moves with .to(device)

    def _valid(self, ids: torch.Tensor, num_classes: int) -> torch.Tensor:
        """(B, *S) bool: the pixels that count; raises when nothing is ignored yet an id is outside the classes."""
        in_range = (ids >= 0) & (ids < num_classes)
        if self.ignore_index is None:
            if not bool(in_range.all()):
                raise ValueError(f"target ids must be in [0, {num_classes}) when ignore_index is None, got ids in "
                                 f"[{int(ids.min())}, {int(ids.max())}]")
            return in_range
        return in_range & (ids != self.ignore_index)

    def _cross_entropy(self, logits: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean (or ``class_weights``-weighted mean) cross-entropy over the valid pixels."""
        weight = self.class_weights
        if weight is not None:
            if weight.numel() != logits.shape[1]:
                raise ValueError(f"class_weights has {weight.numel()} values for {logits.shape[1]} classes")
            weight = weight.to(logits)
        return F.cross_entropy(logits, torch.where(valid, ids, _CE_IGNORE), weight=weight, ignore_index=_CE_IGNORE)

    def _tversky(self, logits: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """MONAI's Tversky loss of the softmax probabilities, with probabilities and one-hot zeroed where ignored."""
        mask = valid.unsqueeze(1).to(logits.dtype)
        onehot = F.one_hot(torch.where(valid, ids, 0), logits.shape[1]).movedim(-1, 1).to(logits.dtype) * mask
        probs = torch.softmax(logits, dim=1) * mask
        keep = valid.flatten(1).any(1)  # an image with no valid pixel would only dilute the per-image mean
        if not bool(keep.all()):
            probs, onehot = probs[keep], onehot[keep]
        return self.tversky(probs, onehot)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The combined loss of a batch.

        Args:
            input: (B, C, *S) logits, C > 1 classes, S the 2-D or 3-D spatial size.
            target: (B, 1, *S) or (B, *S) class ids, float or integer (rounded).

        Returns:
            A scalar tensor.

        Raises:
            ValueError: when ``target`` does not match ``input`` in batch or spatial size, ``input`` has fewer than 2
                channels, ``class_weights`` does not have C values, or (``ignore_index=None``) an id is out of range.
        """
        input = convert_to_tensor(input, track_meta=False)
        target = convert_to_tensor(target, track_meta=False)
        if input.ndim < 3 or input.shape[1] < 2:
            raise ValueError(f"input must be (B, C, *S) logits with C > 1 classes, got shape {tuple(input.shape)}")
        logits = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
        ids = _target_ids(target, logits).to(logits.device)
        valid = self._valid(ids, logits.shape[1])
        if not bool(valid.any()):
            return (logits * 0).sum()
        loss = logits.new_zeros(())
        if self.lambda_tversky > 0:
            loss = loss + self.lambda_tversky * self._tversky(logits, ids, valid)
        if self.lambda_tversky < 1:
            loss = loss + (1.0 - self.lambda_tversky) * self._cross_entropy(logits, ids, valid)
        return loss


def class_weights_from_frequency(
    pixel_counts: Sequence[int], power: float = 0.5, max_weight: float = 10.0
) -> list[float]:
    """Inverse-frequency class weights, e.g. ``class_weights`` of :class:`TverskyCrossEntropyLoss` for rare classes.

    Each class with pixels gets ``frequency ** -power``, normalised to mean 1 over the classes with pixels, then
    clipped at ``max_weight`` (so after clipping the mean can be below 1). A class with no pixels gets 1.0.
    ``power=0.5`` is the square-root damping; ``power=1`` is plain inverse frequency; ``power=0`` gives all ones.

    Args:
        pixel_counts: the number of training pixels of each class (ignored pixels not counted).
        power: the exponent of the inverse frequency, >= 0.
        max_weight: the largest weight, > 0.

    Returns:
        One weight per class.

    Example:
        ``class_weights_from_frequency([900, 100, 0])`` -> ``[0.5, 1.5, 1.0]`` (sqrt(9) = 3 times the weight).
    """
    counts = [float(c) for c in pixel_counts]
    if any(c < 0 for c in counts):
        raise ValueError(f"pixel_counts must be >= 0, got {list(pixel_counts)}")
    if power < 0 or max_weight <= 0:
        raise ValueError(f"power must be >= 0 and max_weight > 0, got power={power}, max_weight={max_weight}")
    total = sum(counts)
    raw = {k: (c / total) ** -power for k, c in enumerate(counts) if c > 0}
    mean = sum(raw.values()) / len(raw) if raw else 1.0
    return [min(raw[k] / mean, max_weight) if k in raw else 1.0 for k in range(len(counts))]
