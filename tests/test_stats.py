"""Seed statistics (ssrobust.stats) against scipy."""

from __future__ import annotations

import pytest

from ssrobust.stats import interval, paired_difference, t_cdf, t_quantile

stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 19, 60, 1000])
@pytest.mark.parametrize("p", [0.0005, 0.025, 0.3, 0.5, 0.9, 0.975, 0.995])
def test_t_quantile_and_cdf_match_scipy(df, p):
    assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9, abs=1e-9)
    x = stats.t.ppf(p, df)
    assert t_cdf(x, df) == pytest.approx(p, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("values", [[0.71, 0.74], [1.0, 2.0, 3.5, 2.0], [0.5, 0.51, 0.49, 0.52, 0.55, 0.47]])
def test_interval_matches_scipy_t_interval(values):
    got = interval(values)
    mean, sem = stats.tmean(values), stats.sem(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
    assert (got.mean, got.n) == (pytest.approx(mean), len(values))
    assert got.sd == pytest.approx(stats.tstd(values))
    assert (got.low, got.high) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))


def test_one_value_has_no_spread_and_bad_input_is_refused():
    one = interval([0.7])
    assert (one.mean, one.sd, one.low, one.high, one.n) == (0.7, None, None, None, 1)
    with pytest.raises(ValueError, match="at least one"):
        interval([])
    with pytest.raises(ValueError, match="0 < p < 1"):
        t_quantile(1.0, 3)


def test_paired_difference_pairs_by_seed_like_scipy_paired_t():
    arm = {0: 0.80, 1: 0.74, 2: 0.79, 5: 0.5}  # seed 5 has no baseline partner: left out
    base = {0: 0.70, 1: 0.71, 2: 0.72, 3: 0.9}
    d = paired_difference(arm, base)
    diffs = [0.10, 0.03, 0.07]
    low, high = stats.t.interval(0.95, 2, loc=sum(diffs) / 3, scale=stats.sem(diffs))
    assert d.n == 3 and d.mean == pytest.approx(sum(diffs) / 3)
    assert (d.low, d.high) == (pytest.approx(low), pytest.approx(high))
    # the paired t statistic's p-value agrees with scipy's ttest_rel
    assert stats.ttest_rel([0.80, 0.74, 0.79], [0.70, 0.71, 0.72]).pvalue == pytest.approx(
        2 * (1 - t_cdf(d.mean / (d.sd / 3 ** 0.5), 2)))
    assert paired_difference({0: 1.0}, {1: 1.0}) is None
