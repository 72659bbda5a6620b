"""padlib.stats: every interval, test and correction, checked against hand computation and scipy, with the two
rules the module states (zero variance, direction) tested on both sides."""
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from padlib.errors import PadlibError
from padlib.stats import (
    bootstrap_ci,
    direction,
    holm_adjust,
    interval_sign,
    paired_t,
    spearman,
    t_critical,
    t_interval,
    t_test,
    wilson_interval,
)


def test_t_test_matches_the_textbook_interval_and_scipy_p():
    v = np.array([0.01, 0.03, -0.005, 0.02, 0.015])
    r = t_test(v)
    half = scipy_stats.t.ppf(0.975, 4) * v.std(ddof=1) / math.sqrt(5)
    assert (r.low, r.high) == pytest.approx((v.mean() - half, v.mean() + half))
    assert r.p == pytest.approx(scipy_stats.ttest_1samp(v, 0).pvalue) and r.n == 5
    assert t_interval(v) == pytest.approx((r.low, r.high))
    assert t_test(v, 0.9).high < r.high  # a narrower interval at lower coverage


def test_zero_variance_is_known_exactly_on_both_sides():
    up = t_test([0.02, 0.02, 0.02])
    assert (up.low, up.high, up.p) == (0.02, 0.02, 0.0)
    none = t_test([0.0, 0.0, 0.0])
    assert (none.low, none.high, none.p) == (0.0, 0.0, 1.0)
    assert direction(up.low, up.high, up.mean) == "up" and direction(none.low, none.high, none.mean) == "flat"
    down = t_test([-0.5] * 4)
    assert direction(down.low, down.high, down.mean) == "down"


def test_too_few_values_give_no_interval_and_nans_are_dropped():
    one = t_test([0.3])
    assert one.mean == 0.3 and math.isnan(one.low) and math.isnan(one.p)
    assert direction(one.low, one.high, one.mean) == "unknown"
    assert t_test([1.0, float("nan"), 3.0]).n == 2
    assert math.isnan(t_test([]).mean)


def test_paired_t_is_the_test_of_the_differences_and_matches_ttest_rel():
    a, b = np.array([0.8, 0.82, 0.79, 0.85]), np.array([0.78, 0.8, 0.8, 0.81])
    assert paired_t(a, b).p == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    with pytest.raises(PadlibError, match="one shape"):
        paired_t(a, b[:3])


def test_direction_rule_on_both_sides_of_zero_and_of_the_floor():
    assert direction(0.01, 0.05, 0.03) == "up" and direction(-0.05, -0.01, -0.03) == "down"
    assert direction(-0.01, 0.05, 0.02) == "flat"
    assert direction(0.001, 0.005, 0.003, floor=0.01) == "small"   # resolved, below the floor
    assert direction(0.001, 0.03, 0.015, floor=0.01) == "up"       # resolved, past the floor
    assert direction(float("nan"), 0.1, 0.0) == "unknown"
    signs = interval_sign([0.1, -0.3, -0.1, 0.0, 0.0, float("nan")], [0.2, -0.1, 0.1, 0.0, 0.0, 1.0],
                          [0.15, -0.2, 0.0, 0.0, 0.0, 0.5])
    assert signs.tolist() == [1, -1, 0, 0, 0, 0]
    assert interval_sign([0.2], [0.2]).tolist() == [1]  # zero width: the sign of its value


def test_bootstrap_covers_the_mean_pairs_columns_and_is_seeded():
    rng = np.random.default_rng(3)
    v = rng.normal(1.0, 1.0, 200)
    lo, hi = bootstrap_ci(v, 2000, seed=0)
    se = v.std(ddof=1) / math.sqrt(len(v))
    assert lo < v.mean() < hi and (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert bootstrap_ci(v, 500, seed=1) == bootstrap_ci(v, 500, seed=1)
    both = np.stack([v, v + 5], 1)  # the same rows resampled for both columns: the intervals shift by exactly 5
    (lo1, lo2), (hi1, hi2) = bootstrap_ci(both, 500, seed=2)
    assert lo2 - lo1 == pytest.approx(5) and hi2 - hi1 == pytest.approx(5)
    assert bootstrap_ci(np.full(10, 0.5), 100) == (0.5, 0.5)
    assert all(math.isnan(x) for x in bootstrap_ci([1.0], 100))
    with pytest.raises(PadlibError, match="between 0 and 1"):
        bootstrap_ci(v, 100, ci=95)


def test_bootstrap_of_a_statistic_resamples_units_jointly():
    num = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    lo, hi = bootstrap_ci((num, num * 2), 500, seed=0, statistic=lambda a, b, axis=-1: b.mean(axis) / a.mean(axis))
    assert lo == pytest.approx(2.0) and hi == pytest.approx(2.0)  # paired units: the ratio never moves


def test_wilson_matches_the_formula_and_handles_empty():
    k, n, z = 7, 20, scipy_stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson_interval(k, n) == pytest.approx((centre - half, centre + half))
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)


def test_spearman_is_scipys_and_nan_where_undefined():
    a, b = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    assert spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a, b).statistic)
    assert math.isnan(spearman([1, 2], [1, 2])) and math.isnan(spearman([1, 2, 3], [1, 1, 1]))


def test_holm_is_step_down_monotone_and_counts_nan_as_one():
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert np.allclose(holm_adjust([0.01, 0.04, 0.03, 0.5, float("nan")]), [0.05, 0.12, 0.12, 1.0, 1.0])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_t_critical_degrees_of_freedom():
    assert t_critical(5) == pytest.approx(scipy_stats.t.ppf(0.975, 4))
    assert t_critical(1) == 0.0 and t_critical(float("nan")) == 0.0


def test_differences_that_are_zero_up_to_rounding_count_as_no_change():
    d = (np.array([0.7, 0.6, 0.8]) - np.array([0.6, 0.5, 0.7])) - (np.array([0.11, 0.12, 0.13]) - np.array([0.01, 0.02, 0.03]))
    r = t_test(d)
    assert (r.mean, r.low, r.high, r.p) == (0.0, 0.0, 0.0, 1.0) and direction(r.low, r.high, r.mean) == "flat"
    tiny = t_test([1e-9, 1e-9 + 1e-22, 1e-9])  # equal up to rounding and not zero: a resolved, tiny effect
    assert tiny.p == 0.0 and direction(tiny.low, tiny.high, tiny.mean) == "up"


def test_bootstrap_totals_resamples_units_deterministically_and_keeps_the_statistics_grid():
    from padlib.stats import bootstrap_totals

    rng = np.random.default_rng(3)
    sums, counts = rng.integers(0, 5, (40, 6)).astype(float), np.full((40, 6), 2.0)
    per_unit = np.stack([sums, counts], 1)

    def first_above(tot):  # the first bin whose mean is above 1 (a grid statistic), infinite when none
        with np.errstate(invalid="ignore"):
            above = tot[:, 0] / tot[:, 1] > 1.0
        return np.where(above.any(1), np.argmax(above, 1) * 8.0, np.inf)

    a = bootstrap_totals(per_unit, first_above, n_boot=300, seed=1)
    assert a == bootstrap_totals(per_unit, first_above, n_boot=300, seed=1)
    assert all(v % 8 == 0 for v in a) and a[0] <= a[1]
    assert bootstrap_totals(per_unit[:, :, :1] * 0, first_above, n_boot=50) == (np.inf, np.inf)
    assert all(np.isnan(bootstrap_totals(per_unit[:1], first_above)))
    # the mean of a plain column: close to the t interval of the same units
    lo, hi = bootstrap_totals(np.stack([sums[:, 0], counts[:, 0] / 2], 1), lambda t: t[:, 0] / t[:, 1], n_boot=2000)
    assert lo < sums[:, 0].mean() < hi and hi - lo < 1.5


def test_bootstrap_totals_resamples_whole_clusters_and_reads_several_statistics_off_the_same_resamples():
    from padlib.stats import bootstrap_totals

    rng = np.random.default_rng(4)
    rows = rng.integers(0, 9, (30, 2, 5)).astype(float)  # 30 tiles: (sums, counts) per bin
    rows[:, 1] += 1
    image = np.repeat(np.arange(6), 5)  # 6 images of 5 tiles each

    def mean_bin0(tot):
        return tot[:, 0, 0] / tot[:, 1, 0]

    # clusters: the same as summing each image's tiles first and resampling images
    per_image = np.stack([rows[image == i].sum(0) for i in range(6)])
    clustered = bootstrap_totals(rows, mean_bin0, n_boot=400, seed=2, clusters=image)
    assert clustered == bootstrap_totals(per_image, mean_bin0, n_boot=400, seed=2)
    # labels need not be sorted or numbers: only which rows go together counts
    shuffled = rng.permutation(30)
    names = np.array([f"img{i}" for i in image])
    assert clustered == bootstrap_totals(rows[shuffled], mean_bin0, n_boot=400, seed=2, clusters=names[shuffled])
    # resampling the tiles as if independent gives another interval: the error clustering fixes
    tiles = bootstrap_totals(rows, mean_bin0, n_boot=400, seed=2)
    assert tiles != clustered
    # a single cluster: no interval over clusters is possible, however many rows it holds
    assert all(np.isnan(bootstrap_totals(rows, mean_bin0, clusters=np.zeros(30))))
    with pytest.raises(PadlibError, match=r"clusters needs one label per row of per_unit \(30\)"):
        bootstrap_totals(rows, mean_bin0, clusters=image[:-1])

    # k statistics at once: each column's interval as if read alone (the same seeded resamples), NaN columns apart
    def three(tot):
        with np.errstate(invalid="ignore"):
            return np.stack([mean_bin0(tot), tot[:, 0, 1] / tot[:, 1, 1], np.full(len(tot), np.nan)], 1)

    low, high = bootstrap_totals(rows, three, n_boot=400, seed=2, clusters=image)
    assert low.shape == high.shape == (3,)
    assert (low[0], high[0]) == clustered
    assert (low[1], high[1]) == bootstrap_totals(rows, lambda t: t[:, 0, 1] / t[:, 1, 1], n_boot=400, seed=2,
                                                 clusters=image)
    assert np.isnan(low[2]) and np.isnan(high[2])
    low, high = bootstrap_totals(rows[:5], three, clusters=image[:5])  # one image: every column NaN
    assert np.isnan(low).all() and np.isnan(high).all() and low.shape == (3,)
