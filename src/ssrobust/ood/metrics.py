"""OOD detection metrics: AUROC, AUPR-In/Out, FPR at 95% TPR in both conventions, ROC points.

Scores are *anomaly* scores, higher = more anomalous. Every key of :func:`metrics` names its
positive class, because the literature uses both:

* ``fpr_at_95_tpr_in`` (**the standard FPR95** of ODIN, Outlier Exposure, energy-based OOD and
  OpenOOD): in-distribution is positive; a sample is *accepted* as in-distribution when ``score <=
  threshold``; the value is the fraction of OOD samples accepted at the lowest threshold that
  accepts at least 95% of the in-distribution samples.
* ``fpr_at_95_tpr_out``: OOD is positive; a sample is *flagged* when ``score >= threshold``; the
  fraction of in-distribution samples flagged at the highest threshold that flags at least 95% of
  the OOD samples. This is what results of schema version 1 stored as ``fpr95``.
* ``auroc_out_pos``: area under the ROC curve with OOD positive (TPR = OOD flagged, FPR =
  in-distribution flagged), linear between the tie-grouped points; ``P(s_out > s_in) + 1/2
  P(s_out = s_in)``, as sklearn. Swapping the positive class (and negating the scores) gives the
  same number, so it is also the AUROC of the in-positive convention.
* ``aupr_in_pos``: average precision with in-distribution positive (scores negated);
  ``aupr_out_pos``: with OOD positive. Average precision is the step-wise ``sum_k (R_k - R_{k-1})
  P_k`` over the distinct thresholds (no interpolation), ``sklearn.metrics.average_precision_score``.

Thresholds run over the distinct score values, so tied samples are always flagged (or accepted)
together, never split by their order in the input. Both FPRs take the conservative threshold (the
first one reaching 95% recall); Hendrycks et al.'s code instead takes the ROC point whose recall is
*nearest* to 95%, which can report the FPR of a threshold reaching slightly less than 95%.

All values are fractions in [0, 1]. Computations are in float64 numpy.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

METRIC_KEYS = ("auroc_out_pos", "aupr_in_pos", "aupr_out_pos", "fpr_at_95_tpr_in",
               "fpr_at_95_tpr_out")
# Keys of results written before schema version 2 and the current key with the same value.
# Schema 1 had no in-positive FPR95, so an upgraded record lacks ``fpr_at_95_tpr_in``.
LEGACY_KEYS = {"auroc": "auroc_out_pos", "aupr_in": "aupr_in_pos", "aupr_out": "aupr_out_pos",
               "fpr95": "fpr_at_95_tpr_out"}


def _as_scores(a: Any, what: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(a, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{what} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or infinite scores")
    return arr


def _tie_grouped_counts(pos: np.ndarray, neg: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true/false positives at each distinct threshold, from the highest score down.

    Returns ``(tps, fps, thresholds)``: at threshold ``thresholds[k]`` (flag ``score >= it``),
    ``tps[k]`` positives and ``fps[k]`` negatives are flagged.
    """
    scores = np.concatenate([pos, neg])
    is_pos = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    order = np.argsort(-scores, kind="stable")
    scores, is_pos = scores[order], is_pos[order]
    # Last index of each run of equal scores: one ROC point per distinct value.
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(is_pos)[last]
    fps = (last + 1) - tps
    return tps, fps, scores[last]


def roc_curve(scores_in: Any, scores_out: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` with OOD positive; starts at ``(0, 0)`` with threshold ``+inf``."""
    pos, neg = _as_scores(scores_out, "scores_out"), _as_scores(scores_in, "scores_in")
    tps, fps, thr = _tie_grouped_counts(pos, neg)
    return np.r_[0.0, fps / neg.size], np.r_[0.0, tps / pos.size], np.r_[np.inf, thr]


def auroc(scores_in: Any, scores_out: Any) -> float:
    """Area under the ROC curve, OOD positive (ties count one half); the same with ID positive."""
    fpr, tpr, _ = roc_curve(scores_in, scores_out)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def average_precision(scores_pos: Any, scores_neg: Any) -> float:
    """Average precision ``sum_k (R_k - R_{k-1}) P_k`` with the first argument positive."""
    pos, neg = _as_scores(scores_pos, "positive scores"), _as_scores(scores_neg, "negative scores")
    tps, fps, _ = _tie_grouped_counts(pos, neg)
    precision = tps / (tps + fps)
    recall = tps / pos.size
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _fpr_at_recall(pos: np.ndarray, neg: np.ndarray, level: float) -> float:
    """Fraction of ``neg`` flagged at the highest threshold flagging at least ``level`` of ``pos``
    (flag ``score >= threshold``; higher = more positive)."""
    tps, fps, _ = _tie_grouped_counts(pos, neg)
    # Integer comparison avoids 19/20 vs 0.95 rounding: need tps >= ceil(level * P).
    needed = np.ceil(level * pos.size - 1e-9)
    k = int(np.argmax(tps >= needed))  # tps is non-decreasing and reaches P, so k exists
    return float(fps[k] / neg.size)


def fpr_at_tpr(scores_in: Any, scores_out: Any, tpr_level: float = 0.95, *,
               positive: str) -> float:
    """FPR at ``tpr_level`` TPR for anomaly scores, with the positive class named explicitly.

    ``positive="in"`` (the literature's FPR95): the fraction of OOD samples accepted (``score <=
    t``) at the lowest ``t`` accepting at least ``tpr_level`` of the in-distribution samples.
    ``positive="out"``: the fraction of in-distribution samples flagged (``score >= t``) at the
    highest ``t`` flagging at least ``tpr_level`` of the OOD samples.
    """
    if not 0.0 < tpr_level <= 1.0:
        raise ValueError(f"tpr_level must be in (0, 1], got {tpr_level}")
    s_in, s_out = _as_scores(scores_in, "scores_in"), _as_scores(scores_out, "scores_out")
    if positive == "in":  # accepting score <= t is flagging -score >= -t as in-distribution
        return _fpr_at_recall(-s_in, -s_out, tpr_level)
    if positive == "out":
        return _fpr_at_recall(s_out, s_in, tpr_level)
    raise ValueError(f"positive must be 'in' or 'out', got {positive!r}")


def metrics(scores_in: Any, scores_out: Any) -> dict[str, float]:
    """The :data:`METRIC_KEYS` for anomaly scores (higher = more anomalous); see the module doc.

    Args:
        scores_in: in-distribution scores ``[N_in]`` (tensor, array or list).
        scores_out: OOD scores ``[N_out]``.
    """
    s_in, s_out = _as_scores(scores_in, "scores_in"), _as_scores(scores_out, "scores_out")
    return {
        "auroc_out_pos": auroc(s_in, s_out),
        "aupr_in_pos": average_precision(-s_in, -s_out),
        "aupr_out_pos": average_precision(s_out, s_in),
        "fpr_at_95_tpr_in": fpr_at_tpr(s_in, s_out, 0.95, positive="in"),
        "fpr_at_95_tpr_out": fpr_at_tpr(s_in, s_out, 0.95, positive="out"),
    }


def upgrade_metrics(record: Mapping[str, Any]) -> dict[str, float | None]:
    """A metrics dict in the current keys, from a current or a schema-1 record.

    Schema-1 keys (:data:`LEGACY_KEYS`: ``auroc``, ``aupr_in``, ``aupr_out``, ``fpr95``) are
    renamed to the current key with the same meaning; a metric the record does not hold (e.g.
    ``fpr_at_95_tpr_in``, which schema 1 never computed) is ``None``, never estimated.
    """
    out: dict[str, float | None] = {k: record.get(k) for k in METRIC_KEYS}
    for old, new in LEGACY_KEYS.items():
        if out[new] is None and record.get(old) is not None:
            out[new] = record[old]
    return out


def is_legacy(record: Mapping[str, Any]) -> bool:
    """Whether a metrics dict uses the schema-1 keys (it then lacks ``fpr_at_95_tpr_in``)."""
    return any(k in record for k in LEGACY_KEYS) and "fpr_at_95_tpr_in" not in record


def roc_points(scores_in: Any, scores_out: Any, num: int = 101) -> dict[str, list[float]]:
    """The ROC curve (OOD positive) on a regular FPR grid of ``num`` points, for plots and JSON.

    TPR at each grid FPR is read off the piecewise-linear ROC curve; on a vertical segment (several
    OOD samples gained at the same FPR) the upper end is used. Values are rounded to 5 decimals.
    """
    fpr, tpr, _ = roc_curve(scores_in, scores_out)
    grid = np.linspace(0.0, 1.0, num)
    # Keep the last (highest-TPR) point of each run of equal FPR, so interpolation takes the top.
    keep = np.r_[np.diff(fpr) > 0, True]
    # fpr[0] = 0, so the kept points still start at FPR 0 and strictly increase.
    tpr_grid = np.interp(grid, fpr[keep], tpr[keep])
    return {"fpr": [round(float(v), 5) for v in grid], "tpr": [round(float(v), 5) for v in tpr_grid]}
