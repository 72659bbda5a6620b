"""Every interval, test and correction padlib reports, written once, on scipy where scipy does it.

Two rules hold everywhere, so that no table and no sentence can disagree about them:

* **Zero variance.** Values that are all equal, up to rounding (a measure at its ceiling in every seed, say), are known exactly:
  their t-interval has zero width at the mean, and a test of the mean against 0 gives p = 0 when the mean is not 0
  and p = 1 when it is (0 up to rounding counts as 0). (scipy returns NaN there, with a precision warning.)
* **Direction.** An interval says *up* when it lies above 0, *down* below 0, *flat* when it straddles 0; a
  zero-width interval says the sign of its mean (0: flat). With an effect-size ``floor``, a resolved direction
  whose mean is smaller than the floor is *small*. NaN bounds say *unknown*. :func:`direction` and
  :func:`interval_sign` are that rule, for one interval and for arrays of them.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as _scipy

from .errors import PadlibError, check_type

__all__ = ["RatioTest", "TTest", "bootstrap_ci", "bootstrap_test", "bootstrap_totals", "cluster_ratio_bootstrap",
           "detectable_effect", "direction",
           "equivalence_excludes", "holm_adjust", "bh_adjust", "empirical_p", "welch_t", "interval_p",
           "interval_sign", "paired_t", "resolvable_effect", "spearman",
           "t_critical", "t_interval", "t_test", "wilson_interval"]


class TTest(NamedTuple):
    """A one-sample t-test of the mean against 0 (for paired data: of the differences) with its interval."""
    mean: float
    low: float
    high: float
    p: float
    n: int


def t_test(values, level: float = 0.95) -> TTest:
    """Mean, two-sided ``level`` t-interval and two-sided p of ``values`` against 0 (``scipy.stats.ttest_1samp``).

    NaNs are dropped. Fewer than two values: no interval and no p (NaN). Zero variance: see the module's rule.
    """
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return TTest(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    mean = float(v.mean())
    if n < 2:
        return TTest(mean, float("nan"), float("nan"), float("nan"), n)
    rounding = 1e-12 * max(1.0, float(np.abs(v).max()))
    if np.ptp(v) <= rounding:  # equal up to rounding: known exactly (the module's rule)
        if abs(mean) <= rounding:
            return TTest(0.0, 0.0, 0.0, 1.0, n)
        return TTest(mean, mean, mean, 0.0, n)
    res = _scipy.ttest_1samp(v, 0.0)
    ci = res.confidence_interval(level)
    return TTest(mean, float(ci.low), float(ci.high), float(res.pvalue), n)


def t_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` t-interval of the mean of ``values`` (:func:`t_test`'s low and high)."""
    r = t_test(values, level)
    return r.low, r.high


def paired_t(a, b, level: float = 0.95) -> TTest:
    """Paired t-test of ``a - b`` (``scipy.stats.ttest_rel`` is the same test); pairs with a NaN are dropped."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise PadlibError(f"paired_t needs two arrays of one shape, got {a.shape} and {b.shape}")
    return t_test(a - b, level)


def t_critical(n, level: float = 0.95) -> float:
    """Two-sided critical value of Student's t for a mean of ``n`` values (n - 1 degrees of freedom); 0 when n < 2."""
    if n is None or not np.isfinite(n) or n < 2:
        return 0.0
    return float(_scipy.t.ppf(0.5 + level / 2, int(n) - 1))


def bootstrap_ci(values, n_boot: int = 1000, seed: int = 0, ci: float = 0.95, statistic=None):
    """Percentile bootstrap interval (``scipy.stats.bootstrap``), resampling the independent unit.

    * 1-D ``values``: the interval of the mean, ``(low, high)``.
    * 2-D ``values`` ``(n, k)``: rows resampled together, intervals of the k column means (arrays of k lows and
      highs), so columns measured on one unit (two axes of one kernel, one image under two conditions) stay paired.
    * ``statistic``: ``values`` is a tuple of arrays paired along their last axis (the unit, e.g. images) and
      ``statistic(*arrays, axis=-1)`` computes the estimate (vectorised over leading resample dimensions).

    Resample the independent unit: images, not crops of one photograph. Fewer than two units: NaN.
    """
    if not 0 < ci < 1:
        raise PadlibError(f"ci is the coverage of the interval, between 0 and 1 (e.g. 0.95), got {ci}")
    if statistic is not None:
        arrays = tuple(np.asarray(a, dtype=float) for a in values)
        n = arrays[0].shape[-1]
        if any(a.shape[-1] != n for a in arrays):
            raise PadlibError("bootstrap_ci: the arrays must share their last axis (the resampled unit)")
        if n < 2:
            return float("nan"), float("nan")

        def on_units(idx, axis=-1):  # resample unit indices, then take the same units from every array
            idx = np.asarray(idx, dtype=int)
            return statistic(*[a[..., idx] for a in arrays], axis=-1)

        return _percentile_bootstrap((np.arange(n),), on_units, n_boot, seed, ci, paired=False, axis=-1)
    v = np.asarray(values, dtype=float)
    if v.ndim not in (1, 2):
        raise PadlibError(f"bootstrap_ci takes 1-D or 2-D values, got shape {v.shape}")
    if len(v) < 2:
        nan = float("nan") if v.ndim == 1 else np.full(v.shape[1], np.nan)
        return nan, nan
    return _percentile_bootstrap((v,), np.mean, n_boot, seed, ci, paired=False, axis=0)


BOOTSTRAP_ELEMENTS = 2 ** 23  # resampled values held at once (64 MB of float64); same intervals in batches


def _percentile_bootstrap(data, statistic, n_boot, seed, ci, paired, axis):
    # scipy resamples all n_boot at once by default: (n_boot, n) values, 800 MB at 100,000 images; in batches the
    # resamples (and so the interval) are the same, drawn from the same generator in the same order
    per_resample = max(int(np.size(d)) for d in data)
    batch = max(1, BOOTSTRAP_ELEMENTS // max(per_resample, 1)) if per_resample * int(n_boot) > BOOTSTRAP_ELEMENTS \
        else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _scipy.DegenerateDataWarning)  # constant values: a zero-width interval
        res = _scipy.bootstrap(data, statistic, n_resamples=int(n_boot), confidence_level=ci, method="percentile",
                               rng=np.random.default_rng(seed), vectorized=True, axis=axis, paired=paired,
                               batch=batch)
    lo, hi = res.confidence_interval
    if np.ndim(lo) == 0:
        return float(lo), float(hi)
    return np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)


class RatioTest(NamedTuple):
    """A ratio of sums over clusters, its cluster-bootstrap interval and its two-sided bootstrap p against a null."""
    estimate: float
    low: float
    high: float
    p: float
    clusters: int


def cluster_ratio_bootstrap(numerator, denominator, null: float = 0.0, n_boot: int = 10000, seed: int = 0,
                            ci: float = 0.95) -> RatioTest:
    """``sum(numerator) / sum(denominator)`` over clusters (one value of each per cluster: per layer, the PANs
    and the filters), with a percentile interval that resamples whole clusters, so that units sharing a cluster
    (the filters of one layer, the sides of one filter) are never treated as independent.

    ``p``: the two-sided bootstrap p against ``null`` (twice the smaller share of resamples on either side of it,
    each counted with the estimate itself, so never below ``2 / (n_boot + 1)``); it falls below ``1 - ci`` when
    the interval excludes ``null``. Resamples whose denominator sums to 0 are dropped. Fewer than two clusters:
    NaN interval and p. A percentile bootstrap over few clusters understates the spread: say how many there are.
    """
    if not 0 < ci < 1:
        raise PadlibError(f"ci is the coverage of the interval, between 0 and 1 (e.g. 0.95), got {ci}")
    num, den = np.asarray(numerator, dtype=float).ravel(), np.asarray(denominator, dtype=float).ravel()
    if num.shape != den.shape:
        raise PadlibError(f"cluster_ratio_bootstrap needs one numerator and one denominator per cluster, got "
                          f"{num.shape} and {den.shape}")
    n = len(num)
    total = den.sum()
    estimate = float(num.sum() / total) if total else float("nan")
    if n < 2 or not np.isfinite(estimate):
        return RatioTest(estimate, float("nan"), float("nan"), float("nan"), n)
    idx = np.random.default_rng(seed).integers(0, n, size=(int(n_boot), n))
    d = den[idx].sum(axis=1)
    boot = num[idx].sum(axis=1)[d != 0] / d[d != 0]
    lo, hi = np.quantile(boot, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return RatioTest(estimate, float(lo), float(hi), _bootstrap_p(boot, null), n)


def _bootstrap_p(dist: np.ndarray, null: float = 0.0) -> float:
    """Two-sided bootstrap p of a resampled statistic against ``null``: twice the smaller share of resamples on
    either side of it, each counted with the estimate itself (never below 2 / (len + 1)), at most 1."""
    below, above = int(np.sum(dist <= null)), int(np.sum(dist >= null))
    return float(min(1.0, 2 * (min(below, above) + 1) / (len(dist) + 1)))


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson interval of a proportion ``k / n`` (``scipy.stats.binomtest(...).proportion_ci('wilson')``); NaN if n = 0."""
    k, n = int(round(k)), int(round(n))
    if n <= 0:
        return float("nan"), float("nan")
    ci = _scipy.binomtest(k, n).proportion_ci(level, method="wilson")
    return float(ci.low), float(ci.high)


def spearman(a, b) -> float:
    """Spearman rank correlation (``scipy.stats.spearmanr``); NaN with fewer than 3 pairs or a constant input."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(_scipy.spearmanr(a, b).statistic)


def holm_adjust(p) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (controls the family-wise error rate); NaN counts as 1."""
    p = np.nan_to_num(np.asarray(p, dtype=float), nan=1.0)
    order = np.argsort(p, kind="stable")
    adj = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (len(p) - rank) * p[i])
        adj[i] = min(1.0, running)
    return adj


def bh_adjust(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) of a family (controls the false discovery rate; scipy's
    ``false_discovery_control``); NaN counts as 1."""
    p = np.nan_to_num(np.asarray(p, dtype=float), nan=1.0)
    if not p.size:
        return p
    return _scipy.false_discovery_control(np.clip(p, 0.0, 1.0), method="bh")


def empirical_p(observed, null) -> np.ndarray:
    """Upper-tail p-value of each ``observed`` value against a sample of ``null`` values,
    ``(1 + #null >= observed) / (1 + n_null)`` (never 0: a finite null cannot resolve smaller)."""
    null = np.sort(np.asarray(null, dtype=float)[np.isfinite(null)])
    obs = np.asarray(observed, dtype=float)
    above = len(null) - np.searchsorted(null, obs, side="left")
    return (1.0 + above) / (1.0 + len(null))


def interval_sign(low, high, mean=None):
    """+1 where an interval lies above 0, -1 below, 0 where it straddles 0 or is unknown (the module's rule);
    arrays in, an integer array out. A zero-width interval (low == high) takes the sign of ``mean`` (or of low)."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    mean = low if mean is None else np.asarray(mean, dtype=float)
    zero_width = low == high
    up = (low > 0) | (zero_width & (mean > 0))
    down = (high < 0) | (zero_width & (mean < 0))
    return np.where(up, 1, np.where(down, -1, 0)).astype(int)


def direction(low: float, high: float, mean: float, floor: float = 0.0) -> str:
    """'up', 'down', 'small', 'flat' or 'unknown' for one interval of an effect (the module's rule)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "unknown"
    s = int(interval_sign(low, high, mean))
    if s == 0:
        return "flat"
    if abs(mean) < floor:
        return "small"
    return "up" if s > 0 else "down"


def resolvable_effect(paired: pd.DataFrame, per_seed: pd.DataFrame, value: str = "accuracy",
                      baseline: str = "zero", alpha: float = 0.05, power: float = 0.8) -> dict:
    """The smallest effect this budget resolves, from the seed-to-seed spread of the paired differences.

    ``sd``: the pooled within-scheme standard deviation of the per-seed differences to the baseline (each
    scheme's own mean removed); ``half_width``: the 95% interval half-width a paired mean of ``n`` seeds
    gets from it; ``mde``: the minimum detectable effect at ``power`` for a two-sided paired t-test at the
    first Holm step (alpha / number of schemes compared): (t_{1-alpha/2m} + t_{power}) * sd / sqrt(n).
    """
    check_type("paired", paired, pd.DataFrame)
    wide = per_seed.pivot_table(index="seed", columns="scheme", values=value)
    schemes = [s for s in paired["scheme"] if s in wide.columns]
    if baseline not in wide.columns or not schemes:
        raise PadlibError("resolvable_effect needs the baseline and at least one compared scheme in per_seed")
    diffs = [(wide[s] - wide[baseline]).dropna() for s in schemes]
    resid = np.concatenate([(d - d.mean()).to_numpy() for d in diffs])
    n = int(min(len(d) for d in diffs))
    dof = max(len(resid) - len(diffs), 1)
    sd = float(np.sqrt((resid ** 2).sum() / dof))
    m = len(schemes)
    half = t_critical(max(n, 2)) * sd / math.sqrt(n)
    mde = float((_scipy.t.ppf(1 - alpha / (2 * m), max(n - 1, 1)) + _scipy.t.ppf(power, max(n - 1, 1)))
                * sd / np.sqrt(n))
    return {"value": value, "sd": sd, "n_seeds": n, "n_schemes": m, "half_width": float(half), "mde": mde,
            "alpha": alpha, "power": power}


def detectable_effect(low: float, high: float, n: int | None = None, level: float = 0.95, power: float = 0.8,
                      alpha: float | None = None) -> float:
    """The smallest effect a design resolves at ``power``: (z_{1-alpha/2} + z_power) * SE, with the standard error
    read back from a two-sided ``level`` interval (t quantiles with ``n - 1`` degrees of freedom when ``n`` is
    given, normal ones otherwise). ``alpha`` defaults to ``1 - level``; a Holm family of m tests passes alpha / m
    (its first step). NaN for an interval that is not finite."""
    if not (np.isfinite(low) and np.isfinite(high)) or high < low:
        return float("nan")
    alpha = 1 - level if alpha is None else alpha
    if n is not None and n >= 2:
        q = lambda x: float(_scipy.t.ppf(x, n - 1))  # noqa: E731
    else:
        q = lambda x: float(_scipy.norm.ppf(x))  # noqa: E731
    se = (high - low) / (2 * q(1 - (1 - level) / 2))
    return float((q(1 - alpha / 2) + q(power)) * se)


def equivalence_excludes(low: float, high: float, claimed: float) -> bool:
    """Whether an interval excludes a claimed effect: a one-sided test at the interval's (1 - level) / 2 that the
    effect is smaller than ``claimed`` in the claimed direction (the two-one-sided-tests procedure, the side that
    matters for a directional claim). ``claimed`` is signed (its sign is the claimed direction); 0 excludes
    nothing. An interval at or past the claimed value in its direction does not exclude it."""
    if not (np.isfinite(low) and np.isfinite(high)) or claimed == 0 or not np.isfinite(claimed):
        return False
    return bool(high < claimed) if claimed > 0 else bool(low > claimed)


def interval_p(mean: float, low: float, high: float, n: int, null: float = 0.0, alternative: str = "two-sided",
               level: float = 0.95) -> float:
    """The p of a one-sample t-test of the mean against ``null``, read back from its two-sided ``level`` t-interval
    of ``n`` values (:func:`t_test`'s): SE = (high - low) / (2 t_{(1+level)/2, n-1}), t = (mean - null) / SE.

    ``alternative``: 'two-sided', 'less' (the effect is below ``null``) or 'greater'. With ``null`` = 0 and
    'two-sided' this is :func:`t_test`'s p; with a non-zero ``null`` it tests a minimum effect (is the effect
    beyond -sesoi?) or one side of an equivalence test. A one-sided p below (1 - level) / 2 is the interval lying
    wholly past ``null`` on that side. Zero-width interval (the module's rule): the mean is known, so p = 0 when it
    lies past ``null`` in the tested direction and 1 otherwise. NaN bounds or n < 2: NaN."""
    if alternative not in ("two-sided", "less", "greater"):
        raise PadlibError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")
    if not (np.isfinite(low) and np.isfinite(high) and np.isfinite(mean)) or n is None or n < 2 or high < low:
        return float("nan")
    d = mean - null
    if high == low:
        past = {"two-sided": d != 0, "less": d < 0, "greater": d > 0}[alternative]
        return 0.0 if past else 1.0
    t = d / ((high - low) / (2 * t_critical(n, level)))
    dist = _scipy.t(int(n) - 1)
    if alternative == "less":
        return float(dist.cdf(t))
    if alternative == "greater":
        return float(dist.sf(t))
    return float(min(1.0, 2 * dist.sf(abs(t))))


def bootstrap_test(arrays, statistic, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple:
    """Percentile bootstrap over the unit on the arrays' last axis (images), with a two-sided p that agrees with
    the interval: ``(estimate, low, high, p)``.

    ``statistic(*arrays, axis=-1)`` is vectorised over leading resample axes. The p is the smallest alpha whose
    percentile interval excludes 0: 2 * min(share of resamples <= 0, share >= 0), with the +1 of a Monte-Carlo
    p-value, so the 95% interval excludes 0 exactly when p < 0.05 (up to the resampling's grain, 2 / (n_boot + 1)).
    Fewer than two units: NaN interval and p."""
    arrays = tuple(np.asarray(a, dtype=float) for a in arrays)
    n = arrays[0].shape[-1]
    if any(a.shape[-1] != n for a in arrays):
        raise PadlibError("bootstrap_test: the arrays must share their last axis (the resampled unit)")
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = float(statistic(*arrays, axis=-1))
        if n < 2:
            return estimate, float("nan"), float("nan"), float("nan")
        idx = np.random.default_rng(seed).integers(0, n, size=(int(n_boot), n))
        batch = max(1, BOOTSTRAP_ELEMENTS // max(sum(a.size for a in arrays), 1))
        dist = np.concatenate([np.asarray(statistic(*[a[..., idx[s:s + batch]] for a in arrays], axis=-1),
                                          dtype=float).reshape(-1) for s in range(0, len(idx), batch)])
    dist = dist[np.isfinite(dist)]
    if not len(dist):
        return estimate, float("nan"), float("nan"), float("nan")
    low, high = (float(q) for q in np.quantile(dist, [(1 - level) / 2, (1 + level) / 2]))
    return estimate, low, high, _bootstrap_p(dist)


def bootstrap_totals(per_unit, statistic, n_boot: int = 1000, seed: int = 0, ci: float = 0.95,
                     chunk: int = 256, clusters=None) -> tuple:
    """Percentile interval of ``statistic`` over resamples of units (rows of ``per_unit``), drawn with replacement.

    ``per_unit`` (n, ...) holds additive per-unit totals (sums and counts side by side); each resample is the
    weighted total ``w @ per_unit`` with multinomial counts ``w`` (n_boot rows, ``chunk`` at a time, so memory does
    not grow with n_boot), and ``statistic`` maps totals (B, ...) to B values (infinite allowed: "not reached"), or
    to (B, k) values: k statistics read off the same resamples, returned as arrays of k lows and k highs.
    The bounds are resampled values themselves (the inverted-CDF quantile), so a statistic on a grid (a distance
    in whole pixels) keeps its grid; a statistic that is NaN in any resample has a NaN interval.

    ``clusters``: one label per row; rows that share a label are summed (their totals are additive) and the
    clusters are the resampled units, so rows that are not independent (tiles, crops of one photograph) go in or
    out of a resample together. Seeded numpy: the same numbers on every run. Fewer than two units (rows, or
    clusters when given): NaN, since no interval over the units is possible."""
    if not 0 < ci < 1:
        raise PadlibError(f"ci is the coverage of the interval, between 0 and 1 (e.g. 0.95), got {ci}")
    totals = np.asarray(per_unit, dtype=float)
    if clusters is not None:
        labels = np.asarray(clusters)
        if labels.shape != totals.shape[:1]:
            raise PadlibError(f"bootstrap_totals: clusters needs one label per row of per_unit ({totals.shape[0]}), "
                              f"got shape {labels.shape}")
        _, which = np.unique(labels, return_inverse=True)
        summed = np.zeros((int(which.max()) + 1 if len(which) else 0,) + totals.shape[1:])
        np.add.at(summed, which.ravel(), totals)
        totals = summed
    n = totals.shape[0]
    rng = np.random.default_rng(seed)
    flat = totals.reshape(n, -1)
    draws = []
    for s in range(0, int(n_boot) if n >= 2 else 1, chunk):
        if n < 2:  # one resample of the totals themselves: only the statistic's shape, no interval
            w = np.ones((1, n))
        else:
            w = rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, int(n_boot) - s)).astype(float)
        draws.append(np.asarray(statistic((w @ flat).reshape((len(w),) + totals.shape[1:])), dtype=float))
    dist = np.concatenate(draws)
    flat_dist = dist.reshape(len(dist), -1)
    gone = np.isnan(flat_dist).any(0) | (n < 2)
    low, high = np.quantile(np.where(gone, 0.0, flat_dist), [(1 - ci) / 2, (1 + ci) / 2], method="inverted_cdf",
                            axis=0)
    low, high = np.where(gone, np.nan, low), np.where(gone, np.nan, high)
    if dist.ndim == 1:
        return float(low[0]), float(high[0])
    return low.reshape(dist.shape[1:]), high.reshape(dist.shape[1:])


def welch_t(a, b, level: float = 0.95) -> TTest:
    """Welch's two-sample t-test of ``mean(a) - mean(b)`` (``scipy.stats.ttest_ind(equal_var=False)``) with its
    ``level`` interval; NaNs dropped; ``n`` is the smaller sample. Fewer than two values in either: NaN interval
    and p."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        mean = float(a.mean() - b.mean()) if len(a) and len(b) else float("nan")
        return TTest(mean, float("nan"), float("nan"), float("nan"), int(min(len(a), len(b))))
    res = _scipy.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(level)
    return TTest(float(a.mean() - b.mean()), float(ci.low), float(ci.high), float(res.pvalue), int(min(len(a), len(b))))
