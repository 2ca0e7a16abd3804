"""featviz.text.slug and featviz.stats.median: the one file-name rule and the one summary median."""

from __future__ import annotations

import math

from featviz.stats import median
from featviz.text import slug


def test_slug_is_safe_lower_case_and_unique():
    assert slug("../../etc/passwd") == "etc-passwd"
    assert slug("Joint", ["joint", "joint-2"]) == "joint-3"
    assert slug("", ["model"]) == "model-2"
    assert slug("tv:0.05+jitter:2") == "tv-0-05-jitter-2"
    assert slug("***", fallback="x") == "x"
    long = "a" * 39 + "-b"
    assert slug(long) == "a" * 39 and slug(long, [slug(long)]) == "a" * 39 + "-2"


def test_median_skips_missing_and_non_finite_values():
    assert median([3.0, None, 1.0, math.nan, 2.0, math.inf]) == 2.0
    assert median([1, 2, 3, 4]) == 2.5
    assert median([None, math.nan]) is None
    assert median(iter([])) is None
