"""Tests of :mod:`monai_app.losses`: the Tversky + cross-entropy loss with ignored pixels, and class weights."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from monai.bundle import ConfigParser
from monai.losses import TverskyLoss

from monai_app.losses import TverskyCrossEntropyLoss, class_weights_from_frequency

LN3 = math.log(3.0)


def _tiny() -> tuple[torch.Tensor, torch.Tensor]:
    """B=1, C=2, 2x2: logits (ln3, 0) give p = (0.75, 0.25), logits (0, ln3) give p = (0.25, 0.75).

    pixel  target  p(class 0)  p(class 1)
      a      0       0.75        0.25      (right)
      b      1       0.25        0.75      (right)
      c      1       0.75        0.25      (wrong)
      d      1       0.25        0.75      (right)
    """
    logits = torch.tensor([[[[LN3, 0.0], [LN3, 0.0]], [[0.0, LN3], [0.0, LN3]]]], dtype=torch.float64)
    target = torch.tensor([[[[0, 1], [1, 1]]]], dtype=torch.float64)  # (B, 1, H, W) float ids, as MONAI gives
    return logits, target


def test_hand_computed_value():
    logits, target = _tiny()
    # class 0 (reference: a): TP = 0.75; FP = p0 at b, c, d = 0.25 + 0.75 + 0.25 = 1.25; FN = 1 - p0 at a = 0.25
    #   TI0 = 0.75 / (0.75 + 0.3 * 1.25 + 0.7 * 0.25) = 0.75 / 1.3
    # class 1 (reference: b, c, d): TP = 0.75 + 0.25 + 0.75 = 1.75; FP = p1 at a = 0.25;
    #   FN = (1 - p1) at b, c, d = 0.25 + 0.75 + 0.25 = 1.25; TI1 = 1.75 / (1.75 + 0.3 * 0.25 + 0.7 * 1.25) = 1.75 / 2.7
    tversky = ((1 - 0.75 / 1.3) + (1 - 1.75 / 2.7)) / 2  # = 0.3874644...
    # cross-entropy: mean of -log p(true) = (-log 0.75 * 3 - log 0.25) / 4 = 0.5623351...
    ce = (3 * -math.log(0.75) - math.log(0.25)) / 4
    expected = 0.75 * tversky + 0.25 * ce
    assert expected == pytest.approx(0.4311821, abs=1e-7)

    loss_fn = TverskyCrossEntropyLoss(lambda_tversky=0.75, alpha=0.3, beta=0.7, smooth_nr=0.0, smooth_dr=0.0)
    assert loss_fn(logits, target).item() == pytest.approx(expected, abs=1e-6)
    pure_tversky = TverskyCrossEntropyLoss(lambda_tversky=1.0, alpha=0.3, beta=0.7, smooth_nr=0.0, smooth_dr=0.0)
    assert pure_tversky(logits, target).item() == pytest.approx(tversky, abs=1e-6)
    assert TverskyCrossEntropyLoss(lambda_tversky=0.0)(logits, target).item() == pytest.approx(ce, abs=1e-6)


@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("batch", [False, True])
def test_pure_terms_equal_monai_and_torch(include_background, batch):
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5, 6, dtype=torch.float64)
    target = torch.randint(0, 4, (3, 1, 5, 6)).float()
    kwargs = {"alpha": 0.3, "beta": 0.7, "include_background": include_background, "batch": batch}
    ours = TverskyCrossEntropyLoss(lambda_tversky=1.0, **kwargs)(logits, target)
    monai = TverskyLoss(softmax=True, to_onehot_y=True, **kwargs)(logits, target)
    torch.testing.assert_close(ours, monai, rtol=0, atol=1e-12)

    ce = TverskyCrossEntropyLoss(lambda_tversky=0.0, **kwargs)(logits, target)
    torch.testing.assert_close(ce, F.cross_entropy(logits, target[:, 0].long()), rtol=0, atol=1e-12)

    mixed = TverskyCrossEntropyLoss(lambda_tversky=0.4, **kwargs)(logits, target)
    torch.testing.assert_close(mixed, 0.4 * monai + 0.6 * ce, rtol=0, atol=1e-12)


def _padded_with_ignored(batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 4x3 valid image, and the same with two more columns of 255 whose logits are confidently wrong."""
    torch.manual_seed(1)
    valid_logits = torch.randn(batch_size, 3, 4, 3, dtype=torch.float64)
    valid_target = torch.randint(0, 3, (batch_size, 4, 3))
    wrong = torch.full((batch_size, 3, 4, 2), -20.0, dtype=torch.float64)
    wrong[:, 1] = 20.0  # confident class 1 ...
    ignored = torch.full((batch_size, 4, 2), 255)  # ... where nothing counts
    logits = torch.cat([valid_logits, wrong], dim=-1).requires_grad_(True)
    target = torch.cat([valid_target, ignored], dim=-1)
    return logits, target, valid_logits, valid_target


@pytest.mark.parametrize("batch_size,batch", [(1, False), (3, True), (3, False)])
def test_ignored_pixels_change_nothing(batch_size, batch):
    logits, target, valid_logits, valid_target = _padded_with_ignored(batch_size)
    loss_fn = TverskyCrossEntropyLoss(alpha=0.3, beta=0.7, batch=batch)
    loss = loss_fn(logits, target)
    # same size per image, so per-image (batch=False) and batch-wide counts compare exactly too
    torch.testing.assert_close(loss, loss_fn(valid_logits, valid_target), rtol=0, atol=1e-12)

    loss.backward()
    assert torch.all(logits.grad[..., 3:] == 0)
    assert torch.any(logits.grad[..., :3] != 0)


def test_out_of_range_ids_are_ignored_like_ignore_index():
    logits, target, _, _ = _padded_with_ignored(2)
    loss_fn = TverskyCrossEntropyLoss()
    other = target.clone()
    other[0, :, 3:] = -1
    other[1, :, 3:] = 7
    torch.testing.assert_close(loss_fn(logits, other), loss_fn(logits, target), rtol=0, atol=0)


def test_ignore_index_none_refuses_out_of_range_ids():
    logits, target, _, _ = _padded_with_ignored()
    with pytest.raises(ValueError, match="ignore_index is None"):
        TverskyCrossEntropyLoss(ignore_index=None)(logits, target)


def test_fully_ignored_image_is_left_out_of_the_tversky_mean():
    logits, target, valid_logits, valid_target = _padded_with_ignored(2)
    target = target.clone()
    target[1] = 255
    loss_fn = TverskyCrossEntropyLoss(lambda_tversky=1.0)
    torch.testing.assert_close(loss_fn(logits, target), loss_fn(valid_logits[:1], valid_target[:1]), rtol=0, atol=1e-12)


def test_all_ignored_gives_zero_with_grad():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 1, 4, 4), 255.0)
    loss = TverskyCrossEntropyLoss()(logits, target)
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_target_layouts_and_dtypes_agree():
    torch.manual_seed(2)
    logits = torch.randn(2, 3, 6, 5)
    ids = torch.randint(0, 3, (2, 6, 5))
    ids[0, 0, :2] = 255
    loss_fn = TverskyCrossEntropyLoss()
    long_loss = loss_fn(logits, ids)
    float_loss = loss_fn(logits, ids[:, None].float())
    assert torch.isfinite(long_loss)
    torch.testing.assert_close(long_loss, float_loss, rtol=0, atol=0)


def test_3d_input():
    torch.manual_seed(3)
    logits = torch.randn(2, 3, 4, 5, 6, requires_grad=True)
    target = torch.randint(0, 3, (2, 1, 4, 5, 6)).float()
    target[0, 0, 0] = 255
    loss = TverskyCrossEntropyLoss(lambda_tversky=0.5)(logits, target)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.all(logits.grad[0, :, 0] == 0) and torch.any(logits.grad != 0)

    clean = torch.randint(0, 3, (2, 1, 4, 5, 6)).float()
    torch.testing.assert_close(TverskyCrossEntropyLoss(lambda_tversky=1.0)(logits, clean),
                               TverskyLoss(softmax=True, to_onehot_y=True)(logits, clean))


@pytest.mark.parametrize("target_shape", [(3, 4, 4), (2, 4, 5), (2, 1, 4, 5), (2, 2, 4, 4), (2, 4, 4, 1)])
def test_mismatched_shapes_raise(target_shape):
    with pytest.raises(ValueError, match="target must be"):
        TverskyCrossEntropyLoss()(torch.randn(2, 3, 4, 4), torch.zeros(target_shape))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="lambda_tversky"):
        TverskyCrossEntropyLoss(lambda_tversky=1.5)
    with pytest.raises(ValueError, match="C > 1"):
        TverskyCrossEntropyLoss()(torch.randn(2, 1, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="class_weights has 2 values"):
        TverskyCrossEntropyLoss(class_weights=[1.0, 2.0])(torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4))


def test_class_weights_change_only_cross_entropy():
    torch.manual_seed(4)
    logits = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 5, 5))
    target[:, 0] = 255
    weights = [0.5, 1.0, 4.0]

    def loss(lam, w=None):
        return TverskyCrossEntropyLoss(lambda_tversky=lam, class_weights=w)(logits, target)

    torch.testing.assert_close(loss(1.0, weights), loss(1.0), rtol=0, atol=0)
    valid_ce = torch.where(target == 255, -100, target)
    weighted_ce = F.cross_entropy(logits, valid_ce, weight=torch.tensor(weights, dtype=torch.float64))
    torch.testing.assert_close(loss(0.0, weights), weighted_ce, rtol=0, atol=1e-12)
    assert not torch.isclose(loss(0.0, weights), loss(0.0))
    torch.testing.assert_close(loss(0.75, weights) - loss(0.75), 0.25 * (loss(0.0, weights) - loss(0.0)),
                               rtol=0, atol=1e-12)


def test_class_weights_follow_the_module_device_and_dtype():
    loss_fn = TverskyCrossEntropyLoss(lambda_tversky=0.0, class_weights=[1.0, 2.0]).to(torch.float64)
    assert loss_fn.class_weights.dtype == torch.float64
    logits, target = _tiny()
    assert torch.isfinite(loss_fn(logits, target))


def test_class_weights_from_frequency():
    # frequencies 0.9 and 0.1 -> 0.9^-0.5 : 0.1^-0.5 = 1 : 3 -> mean 1 -> 0.5, 1.5; no pixels -> 1.0
    assert class_weights_from_frequency([900, 100, 0]) == pytest.approx([0.5, 1.5, 1.0])
    # power 1: 1 : 9 -> 0.2, 1.8, clipped at 1.5
    assert class_weights_from_frequency([900, 100], power=1.0, max_weight=1.5) == pytest.approx([0.2, 1.5])
    assert class_weights_from_frequency([5, 50, 500], power=0.0) == pytest.approx([1.0, 1.0, 1.0])
    assert class_weights_from_frequency([0, 0]) == [1.0, 1.0]
    with pytest.raises(ValueError):
        class_weights_from_frequency([-1, 2])


def test_better_predictions_give_lower_loss():
    torch.manual_seed(5)
    target = torch.randint(0, 4, (2, 1, 8, 8))
    target[:, :, 0] = 255
    perfect = 10.0 * F.one_hot(target[:, 0].clamp(max=3), 4).movedim(-1, 1).float()
    random = torch.randn(2, 4, 8, 8)
    loss_fn = TverskyCrossEntropyLoss()
    assert loss_fn(perfect, target) < 0.05 < loss_fn(random, target)


def test_bundle_config_instantiates():
    parser = ConfigParser({"lambda": 0.6, "loss": {"_target_": "TverskyCrossEntropyLoss", "lambda_tversky": "@lambda",
                                                   "alpha": 0.3, "beta": 0.7, "class_weights": [1.0, 2.0, 3.0]}})
    loss_fn = parser.get_parsed_content("loss")
    assert isinstance(loss_fn, TverskyCrossEntropyLoss) and loss_fn.lambda_tversky == 0.6
