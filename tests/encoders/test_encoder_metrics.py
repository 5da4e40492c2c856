"""Metrics against values computed by hand on tiny arrays; void and invalid pixels are ignored."""

from __future__ import annotations

import math

import pytest
import torch

from ssrobust.encoders import (AccuracyMeter, DepthMeter, SegmentationMeter, accuracy, depth_metrics,
                               mean_iou, miou_from_confusion)

V = 255
# Non-void pixels (target -> prediction): 0->0, 0->1, 1->1, 1->2, 2->2; the void pixel predicts 0.
TARGET = torch.tensor([[[0, 0, 1], [1, V, 2]]])
PRED = torch.tensor([[[0, 1, 1], [2, 0, 2]]])


def test_accuracy_from_ids_and_logits():
    assert accuracy(torch.tensor([1, 0, 2, 2]), torch.tensor([1, 1, 2, 0])) == 0.5
    logits = torch.tensor([[0.1, 0.9], [2.0, -1.0], [0.0, 3.0]])
    assert accuracy(logits, torch.tensor([1, 1, 1])) == pytest.approx(2 / 3)
    meter = AccuracyMeter()
    meter.update(torch.tensor([1, 0]), torch.tensor([1, 1]))
    meter.update(torch.tensor([2]), torch.tensor([2]))
    assert meter.compute() == {"accuracy": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="same non-empty shape"):
        accuracy(torch.tensor([1, 2]), torch.tensor([1, 2, 3]))


def test_miou_by_hand_ignores_void():
    # class 0: TP 1, FP 0 (the void pixel's 0 does not count), FN 1 -> 1/2
    # class 1: TP 1, FP 1, FN 1 -> 1/3;  class 2: TP 1, FP 1, FN 0 -> 1/2
    meter = SegmentationMeter(num_classes=3, void=V)
    meter.update(PRED, TARGET)
    out = meter.compute()
    assert out["per_class_iou"] == pytest.approx([1 / 2, 1 / 3, 1 / 2])
    assert out["miou"] == pytest.approx(4 / 9)
    assert out["pixel_accuracy"] == pytest.approx(3 / 5)
    assert mean_iou(PRED, TARGET, 3, V) == pytest.approx(4 / 9)


def test_classes_absent_from_target_and_prediction_are_left_out():
    out = SegmentationMeter(num_classes=4, void=V)
    out.update(PRED, TARGET)
    res = out.compute()
    assert res["per_class_iou"][3] is None
    assert res["miou"] == pytest.approx(4 / 9)  # not (4/3 + 0) / 4 and not (4/3 + 1) / 4


def test_a_class_only_predicted_counts_as_zero():
    # class 0: TP 1, FN 1 -> 1/2; class 3: predicted once, never in the target -> 0
    assert mean_iou(torch.tensor([[0, 3]]), torch.tensor([[0, 0]]), 4, V) == pytest.approx(1 / 4)


def test_miou_accumulates_one_confusion_over_batches():
    a, b = SegmentationMeter(3, V), SegmentationMeter(3, V)
    a.update(PRED[:, :1], TARGET[:, :1])
    a.update(PRED[:, 1:], TARGET[:, 1:])
    b.update(PRED, TARGET)
    assert torch.equal(a.confusion, b.confusion)
    conf = torch.tensor([[5, 0], [0, 0]])
    assert miou_from_confusion(conf) == (1.0, [1.0, None])


def test_segmentation_errors():
    with pytest.raises(ValueError, match="class 7; expected 0..2 or the void label 255"):
        SegmentationMeter(3, V).update(PRED, torch.tensor([[[0, 0, 7], [1, V, 2]]]))
    with pytest.raises(ValueError, match="void label outside"):
        SegmentationMeter(3, void=1)
    with pytest.raises(ValueError, match="every pixel is void"):
        meter = SegmentationMeter(3, V)
        meter.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), V))
        meter.compute()


# valid pixels: (g, p) = (2, 2.5), (1, 1), (4, 3), (3, 3.9); a 0 and a NaN target are invalid
DEPTH_T = torch.tensor([[[2.0, 1.0, 0.0], [4.0, math.nan, 3.0]]])
DEPTH_P = torch.tensor([[[2.5, 1.0, 9.0], [3.0, 9.0, 3.9]]])


def test_depth_metrics_by_hand_over_valid_pixels():
    out = depth_metrics(DEPTH_P, DEPTH_T)
    assert out["rmse"] == pytest.approx(math.sqrt((0.25 + 0 + 1 + 0.81) / 4))
    assert out["absrel"] == pytest.approx((0.5 / 2 + 0 + 1 / 4 + 0.9 / 3) / 4)
    # ratios 1.25 (not < 1.25), 1, 4/3, 1.3 -> one of four
    assert out["delta1"] == pytest.approx(1 / 4)


def test_depth_mask_excludes_more_pixels():
    mask = torch.ones(1, 2, 3, dtype=torch.bool)
    mask[0, 1, 0] = False  # drop (g, p) = (4, 3)
    out = depth_metrics(DEPTH_P, DEPTH_T, mask)
    assert out["rmse"] == pytest.approx(math.sqrt((0.25 + 0 + 0.81) / 3))
    assert out["absrel"] == pytest.approx((0.25 + 0 + 0.3) / 3)
    assert out["delta1"] == pytest.approx(1 / 3)


def test_depth_meter_pools_pixels_and_handles_bad_predictions():
    meter = DepthMeter()
    meter.update(DEPTH_P[:, :1], DEPTH_T[:, :1])
    meter.update(DEPTH_P[:, 1:], DEPTH_T[:, 1:])
    assert meter.compute() == pytest.approx(depth_metrics(DEPTH_P, DEPTH_T))
    out = depth_metrics(torch.tensor([[-1.0]]), torch.tensor([[1.0]]))
    assert out == pytest.approx({"rmse": 2.0, "absrel": 2.0, "delta1": 0.0})
    with pytest.raises(ValueError, match="no valid target pixel"):
        depth_metrics(torch.ones(1, 2), torch.tensor([[0.0, math.inf]]))
