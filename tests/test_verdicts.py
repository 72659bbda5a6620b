"""The four verdicts: one rule from an interval, planted on each side of every boundary."""
import math

import pytest

from padlib.chapters.findings import (CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, SUPPORTED, VERDICTS, judge,
                                      judge_all, legend_markdown)
from padlib.errors import PadlibError
from padlib.stats import detectable_effect, equivalence_excludes


def test_judge_reads_the_interval_against_the_claimed_direction_and_size():
    assert judge(0.003, 0.013, 0.0123) == SUPPORTED             # resolves the claimed direction, though smaller
    assert judge(-0.013, -0.003, 0.0123) == CONTRADICTED        # resolves the opposite direction
    assert judge(-0.010, 0.008, 0.0123) == CONTRADICTED         # whole interval short of the claimed effect
    assert judge(-0.010, 0.0125, 0.0123) == INCONCLUSIVE        # reaches the claimed effect: cannot tell
    assert judge(-0.02, -0.01, -0.05) == SUPPORTED              # a claimed decrease
    assert judge(-0.06, 0.01, -0.05) == INCONCLUSIVE
    assert judge(-0.04, 0.01, -0.05) == CONTRADICTED


def test_judge_needs_the_adjusted_p_below_alpha_when_given():
    assert judge(0.003, 0.013, 0.01, p=0.0496) == SUPPORTED
    assert judge(0.003, 0.013, 0.01, p=0.0504) == INCONCLUSIVE
    assert judge(-0.013, -0.003, 0.001, p=0.2) == CONTRADICTED  # not significant, but short of the claim anyway
    with pytest.raises(PadlibError, match="non-zero claimed"):
        judge(0.1, 0.2, 0.0)
    with pytest.raises(PadlibError, match="finite interval"):
        judge(math.nan, 0.2, 0.1)


def test_judge_all_needs_every_unit_and_one_counterexample_contradicts():
    assert judge_all([SUPPORTED] * 4) == SUPPORTED
    assert judge_all([SUPPORTED] * 3 + [INCONCLUSIVE]) == INCONCLUSIVE
    assert judge_all([SUPPORTED] * 3 + [CONTRADICTED]) == CONTRADICTED
    assert judge_all([NOT_TESTABLE, SUPPORTED]) == SUPPORTED
    assert judge_all([NOT_TESTABLE]) == NOT_TESTABLE and judge_all([]) == NOT_TESTABLE
    with pytest.raises(PadlibError, match="verdict must be one of"):
        judge_all(["holds"])


def test_equivalence_and_detectable_effect():
    assert equivalence_excludes(-0.01, 0.011, 0.012) and not equivalence_excludes(-0.01, 0.012, 0.012)
    assert equivalence_excludes(-0.011, 0.01, -0.012) and not equivalence_excludes(-0.013, 0.01, -0.012)
    assert not equivalence_excludes(-1, 1, 0.0)
    # a normal interval of half-width 1.96 SE: the detectable effect is (1.96 + 0.84) SE
    assert detectable_effect(-1.96, 1.96) == pytest.approx(1.959964 + 0.841621, rel=1e-4)
    # with n: t quantiles on 4 degrees of freedom, (t_.975 + t_.8) / t_.975 half-widths; a Holm step asks for more
    assert detectable_effect(-1, 1, n=5) == pytest.approx((2.776445 + 0.940965) / 2.776445, rel=1e-5)
    assert detectable_effect(-1, 1, n=20, alpha=0.025) > detectable_effect(-1, 1, n=20)
    assert math.isnan(detectable_effect(math.nan, 1))


def test_the_legend_defines_each_word_once():
    legend = legend_markdown().splitlines()
    assert [line.split("**")[1] for line in legend] == list(VERDICTS)
