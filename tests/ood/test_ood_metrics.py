"""OOD metrics against hand-computed values (ties included), brute force, and sklearn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssrobust.ood.metrics import (METRIC_KEYS, auroc, average_precision, fpr_at_tpr, metrics,
                                  roc_curve, roc_points, upgrade_metrics)

# A small case with a three-way tie at 0.4 (one OOD, two in-distribution samples).
S_IN = [0.1, 0.4, 0.4, 0.8]
S_OUT = [0.4, 0.9, 0.2]


def test_hand_computed_with_ties() -> None:
    m = metrics(S_IN, S_OUT)
    # AUROC = P(out > in) + 1/2 P(out = in): out 0.4 -> 1 + .5 + .5 = 2, out 0.9 -> 4, out 0.2 -> 1.
    assert m["auroc_out_pos"] == pytest.approx(7 / 12)
    # Descending thresholds (OOD positive, P = 3): 0.9 -> tp 1 fp 0 (R 1/3, P 1); 0.8 -> tp 1 fp 1;
    # 0.4 -> tp 2 fp 3 (R 2/3, P 2/5); 0.2 -> tp 3 fp 3 (R 1, P 1/2); 0.1 adds no recall.
    assert m["aupr_out_pos"] == pytest.approx((1 + 0.4 + 0.5) / 3)
    # In positive on negated scores (P = 4): -0.1 -> tp 1 (R 1/4, P 1); -0.2 -> fp 1;
    # -0.4 -> tp 3 fp 2 (R 3/4, P 3/5); -0.8 -> tp 4 fp 2 (R 1, P 2/3).
    assert m["aupr_in_pos"] == pytest.approx(0.25 + 0.5 * 0.6 + 0.25 * 2 / 3)
    # OOD positive: 95% of 3 OOD samples needs all 3: threshold 0.2 flags in-samples 0.8, 0.4, 0.4.
    assert m["fpr_at_95_tpr_out"] == pytest.approx(0.75)
    # In positive: 95% of 4 in-samples needs all 4: accepting score <= 0.8 accepts OOD 0.4, 0.2.
    assert m["fpr_at_95_tpr_in"] == pytest.approx(2 / 3)


def test_fpr95_does_not_break_ties() -> None:
    s_in = [1.0, 1.0, 1.0, 1.0, 0.0]
    # 18 OOD at 5 and 2 tied with four in-distribution samples at 1: reaching 19/20 needs the
    # threshold 1, which flags all four tied in-distribution samples.
    assert fpr_at_tpr(s_in, [5.0] * 18 + [1.0] * 2, positive="out") == pytest.approx(4 / 5)
    # With 19 OOD samples at 5, threshold 5 already detects 95% and flags nothing.
    assert fpr_at_tpr(s_in, [5.0] * 19 + [1.0], positive="out") == 0.0
    # The result must not depend on the input order of tied samples.
    assert fpr_at_tpr(s_in[::-1], ([1.0] * 2 + [5.0] * 18), positive="out") == pytest.approx(4 / 5)
    # In positive: 19 of 20 in-samples tied at 1 with 3 of 5 OOD samples: accepting 95% of them
    # needs score <= 1, which accepts all three tied OOD samples, whatever their input order.
    s_in20, s_out5 = [0.0] + [1.0] * 19, [1.0, 1.0, 1.0, 4.0, 4.0]
    assert fpr_at_tpr(s_in20, s_out5, positive="in") == pytest.approx(3 / 5)
    assert fpr_at_tpr(s_in20[::-1], s_out5[::-1], positive="in") == pytest.approx(3 / 5)


def test_all_tied_gives_chance() -> None:
    m = metrics([2.0, 2.0, 2.0], [2.0, 2.0])
    assert m["auroc_out_pos"] == pytest.approx(0.5)
    assert m["aupr_out_pos"] == pytest.approx(2 / 5)
    assert m["aupr_in_pos"] == pytest.approx(3 / 5)
    assert m["fpr_at_95_tpr_out"] == 1.0 and m["fpr_at_95_tpr_in"] == 1.0


def test_perfect_and_reversed() -> None:
    perfect = metrics([0.0, 1.0, 2.0], [3.0, 4.0])
    assert perfect == {"auroc_out_pos": 1.0, "aupr_in_pos": 1.0, "aupr_out_pos": 1.0,
                       "fpr_at_95_tpr_in": 0.0, "fpr_at_95_tpr_out": 0.0}
    reversed_ = metrics([3.0, 4.0], [0.0, 1.0, 2.0])
    assert reversed_["auroc_out_pos"] == 0.0
    assert reversed_["fpr_at_95_tpr_out"] == 1.0 and reversed_["fpr_at_95_tpr_in"] == 1.0


def test_accepts_tensors_and_rejects_bad_input() -> None:
    assert metrics(torch.tensor(S_IN), torch.tensor(S_OUT)) == metrics(S_IN, S_OUT)
    with pytest.raises(ValueError):
        metrics([], [1.0])
    with pytest.raises(ValueError):
        metrics([float("nan")], [1.0])
    with pytest.raises(ValueError, match="positive must be 'in' or 'out'"):
        fpr_at_tpr([0.0], [1.0], positive="ood")
    with pytest.raises(TypeError):  # the positive class is never implied
        fpr_at_tpr([0.0], [1.0])


def _brute_force(s_in: np.ndarray, s_out: np.ndarray) -> tuple[float, float, float]:
    """AUROC by all pairs, and both FPR95s by scanning every distinct threshold directly."""
    diff = s_out[:, None] - s_in[None, :]
    au = float(np.mean((diff > 0) + 0.5 * (diff == 0)))
    best_out = best_in = 1.0
    for t in np.unique(np.r_[s_in, s_out]):
        if np.mean(s_out >= t) >= 0.95:  # flag score >= t; 95% of OOD flagged
            best_out = min(best_out, float(np.mean(s_in >= t)))
        if np.mean(s_in <= t) >= 0.95:  # accept score <= t; 95% of in-distribution accepted
            best_in = min(best_in, float(np.mean(s_out <= t)))
    return au, best_out, best_in


@pytest.mark.parametrize("seed", range(5))
def test_against_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    s_in = rng.integers(0, 12, size=37).astype(float)  # few distinct values: many ties
    s_out = rng.integers(3, 15, size=41).astype(float)
    au, fpr_out, fpr_in = _brute_force(s_in, s_out)
    assert auroc(s_in, s_out) == pytest.approx(au, abs=1e-12)
    assert fpr_at_tpr(s_in, s_out, positive="out") == pytest.approx(fpr_out, abs=1e-12)
    assert fpr_at_tpr(s_in, s_out, positive="in") == pytest.approx(fpr_in, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_against_sklearn(seed: int) -> None:
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(100 + seed)
    s_in = np.round(rng.normal(0.0, 1.0, size=200), 1)  # rounding makes ties
    s_out = np.round(rng.normal(0.8, 1.0, size=150), 1)
    y = np.r_[np.zeros(s_in.size), np.ones(s_out.size)]
    s = np.r_[s_in, s_out]
    m = metrics(s_in, s_out)
    assert m["auroc_out_pos"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    # The same AUROC with in-distribution positive and confidences (negated anomaly scores).
    assert m["auroc_out_pos"] == pytest.approx(skm.roc_auc_score(1 - y, -s), abs=1e-12)
    assert m["aupr_out_pos"] == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert m["aupr_in_pos"] == pytest.approx(skm.average_precision_score(1 - y, -s), abs=1e-12)
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    ours_fpr, ours_tpr, _ = roc_curve(s_in, s_out)
    np.testing.assert_allclose(ours_fpr, fpr)
    np.testing.assert_allclose(ours_tpr, tpr)
    # sklearn's ROC points give the same FPR95s: OOD positive on the anomaly scores, and
    # in-distribution positive on the confidences (the OpenOOD / OE / energy computation).
    assert m["fpr_at_95_tpr_out"] == pytest.approx(fpr[np.argmax(tpr >= 0.95)])
    fpr_in, tpr_in, _ = skm.roc_curve(1 - y, -s, drop_intermediate=False)
    assert m["fpr_at_95_tpr_in"] == pytest.approx(fpr_in[np.argmax(tpr_in >= 0.95)])


def test_average_precision_direction() -> None:
    assert average_precision([3.0, 4.0], [0.0, 1.0]) == 1.0
    # Positive ranked last of three: precision 1/3 at recall 1.
    assert average_precision([0.0], [1.0, 2.0]) == pytest.approx(1 / 3)


def test_roc_points_grid() -> None:
    rng = np.random.default_rng(7)
    s_in, s_out = rng.normal(0, 1, 300), rng.normal(1, 1, 300)
    pts = roc_points(s_in, s_out, num=101)
    fpr, tpr = np.array(pts["fpr"]), np.array(pts["tpr"])
    assert fpr.shape == tpr.shape == (101,)
    assert fpr[0] == 0.0 and fpr[-1] == 1.0 and tpr[-1] == 1.0
    assert np.all(np.diff(tpr) >= 0)
    # Trapezoid area on the grid is close to the exact AUROC (the grid is 0.01 wide).
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(s_in, s_out), abs=0.01)
    # Perfect separation: TPR is 1 already at FPR 0 (top of the vertical segment).
    assert roc_points([0.0, 1.0], [2.0, 3.0], num=5)["tpr"] == [1.0] * 5


# The conventions differ: in-distribution scores 0..19, OOD 5.5 and four scores above 19.
CONV_IN = [float(v) for v in range(20)]
CONV_OUT = [5.5, 25.0, 26.0, 27.0, 28.0]


def test_fpr95_conventions_hand_computed() -> None:
    """FPR95 in the literature's convention (ID positive) vs the OOD-positive one, by hand.

    ID positive: accepting 95% of the 20 in-distribution images (19) needs score <= 18, which
    accepts one OOD image of five (5.5): 1/5. OOD positive: flagging 95% of 5 OOD images needs all
    5, i.e. score >= 5.5, which flags the in-distribution images 6..19: 14/20.
    """
    m = metrics(CONV_IN, CONV_OUT)
    assert m["fpr_at_95_tpr_in"] == pytest.approx(1 / 5)
    assert m["fpr_at_95_tpr_out"] == pytest.approx(14 / 20)
    assert tuple(m) == METRIC_KEYS


def test_fpr95_conventions_match_sklearn_roc_curve() -> None:
    skm = pytest.importorskip("sklearn.metrics")
    y_out = np.r_[np.zeros(len(CONV_IN)), np.ones(len(CONV_OUT))]
    s = np.r_[CONV_IN, CONV_OUT]
    m = metrics(CONV_IN, CONV_OUT)
    # OpenOOD / OE / energy: in-distribution positive, confidence = -anomaly score.
    fpr, tpr, _ = skm.roc_curve(1 - y_out, -s)
    assert m["fpr_at_95_tpr_in"] == pytest.approx(fpr[np.argmax(tpr >= 0.95)])
    fpr, tpr, _ = skm.roc_curve(y_out, s)
    assert m["fpr_at_95_tpr_out"] == pytest.approx(fpr[np.argmax(tpr >= 0.95)])


def test_upgrade_metrics_maps_schema1_keys() -> None:
    old = {"auroc": 0.9, "aupr_in": 0.8, "aupr_out": 0.7, "fpr95": 0.3}
    assert upgrade_metrics(old) == {"auroc_out_pos": 0.9, "aupr_in_pos": 0.8, "aupr_out_pos": 0.7,
                                    "fpr_at_95_tpr_in": None, "fpr_at_95_tpr_out": 0.3}
    current = metrics(CONV_IN, CONV_OUT)
    assert upgrade_metrics(current) == current
