"""featviz.stats: summaries, bootstrap CIs (percentile and BCa), ratio of means, paired and
unpaired tests, Holm, censored thresholds and exponents — checked against scipy and hand values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from featviz import stats as S

ROWS = np.array([[1.0, 0.52, 0.26, 0.12], [1.1, 0.47, 0.24, 0.13], [0.9, 0.5, 0.22, 0.11],
                 [1.05, 0.55, 0.27, 0.14], [0.95, 0.45, 0.25, 0.1]])
X = [1, 2, 4, 8]


# ---------------------------------------------------------------------- summaries
def test_summaries_keep_their_behaviour():
    assert S.finite([1, None, float("nan"), float("inf"), 2.5]) == [1.0, 2.5]
    assert S.median([3, None, 1, 2]) == 2.0 and S.median([None]) is None
    mean, std = S.mean_std([1, 2, 3, 4, None])
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5 / 3))  # sample std (n - 1)
    assert S.mean_std([7.0]) == (7.0, 0.0) and S.mean_std([]) == (None, None)


def test_loglog_slope():
    x = np.array([1.0, 2, 4, 8, 16])
    assert S.loglog_slope(x, 3 * x ** 2) == pytest.approx(2.0)
    assert S.loglog_slope([1, 2, 4, 8], [1, 0.5, -1, float("nan")]) == pytest.approx(-1.0)  # dropped
    assert math.isnan(S.loglog_slope([1, 2], [1, 0]))
    assert math.isnan(S.loglog_slope([2, 2], [1, 3]))


def test_summarize_is_mean_sample_std_and_ci():
    out = S.summarize(v for v in [1.0, 2.0, None, 4.0])
    assert out["mean"] == pytest.approx(7 / 3) and out["std"] == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert out["n"] == 3 and out["level"] == 0.95 and 1.0 <= out["low"] < out["mean"] < out["high"] <= 4.0
    assert S.summarize([5.0]) == {"mean": 5.0, "std": 0.0, "n": 1, "low": 5.0, "high": 5.0, "level": 0.95}
    assert S.summarize([])["mean"] is None and S.summarize([])["low"] is None


# ---------------------------------------------------------------------- bootstrap
def test_percentile_bootstrap_numbers_are_stable():
    """The percentile bootstrap gives the numbers the studies shipped with (same resampling stream)."""
    out = S.bootstrap(ROWS, S.slope_of_mean(X))
    assert out["method"] == "percentile" and out["draws"] == 2000 and out["level"] == 0.9
    assert out["value"] == pytest.approx(-1.0182486688841914, abs=1e-12)
    assert out["low"] == pytest.approx(-1.0382692845787995, abs=1e-12)
    assert out["high"] == pytest.approx(-1.0005538183541434, abs=1e-12)
    out = S.bootstrap(ROWS, S.slope_of_mean(X), draws=500, level=0.95, seed=7)
    assert (out["low"], out["high"]) == pytest.approx((-1.0415043249502365, -0.9977393775875253), abs=1e-12)


def test_bootstrap_one_seed_and_determinism():
    one = S.bootstrap(ROWS[:1], S.slope_of_mean(X), method="bca")
    assert one["low"] == one["value"] == one["high"] and one["draws"] == 0
    a = S.bootstrap(ROWS, S.slope_of_mean(X), seed=3, method="bca")
    assert a == S.bootstrap(ROWS, S.slope_of_mean(X), seed=3, method="bca")
    assert a != S.bootstrap(ROWS, S.slope_of_mean(X), seed=4, method="bca")
    with pytest.raises(ValueError):
        S.bootstrap(ROWS, np.mean, method="studentized")
    with pytest.raises(ValueError):
        S.bootstrap(ROWS, np.mean, level=1.0)


def test_bca_matches_scipy():
    sample = np.random.default_rng(11).lognormal(0, 1, 25)  # skewed: BCa differs from percentile
    ref = sps.bootstrap((sample,), np.mean, method="BCa", n_resamples=40000, confidence_level=0.9,
                        random_state=np.random.default_rng(1)).confidence_interval
    width = ref.high - ref.low
    ours = S.bootstrap(sample, np.mean, draws=40000, level=0.9, method="bca", seed=5)
    assert ours["low"] == pytest.approx(ref.low, abs=0.025 * width)
    assert ours["high"] == pytest.approx(ref.high, abs=0.025 * width)
    plain = S.bootstrap(sample, np.mean, draws=40000, level=0.9, seed=5)
    assert abs(plain["high"] - ref.high) > 0.05 * width  # the check can tell the two methods apart


def test_bca_on_a_constant_sample_is_the_value():
    out = S.bootstrap(np.full(6, 2.0), np.mean, method="bca")
    assert out["low"] == out["high"] == 2.0


# ---------------------------------------------------------------------- means and ratios
def test_ratio_is_a_ratio_of_means():
    out = S.ratio_of_means([2.0, 2.0], [1.0, 4.0])
    assert out["value"] == pytest.approx(0.8)  # a mean of per-seed ratios would be 1.25
    assert out["paired"] is True and out["n"] == 2 and out["level"] == 0.95


def test_ratio_pairs_missing_and_undefined():
    out = S.ratio_of_means([1.0, None, 3.0, 5.0], [1.0, 2.0, float("nan"), 1.0])
    assert out["n"] == 2 and out["value"] == pytest.approx(3.0)
    out = S.ratio_of_means([1.0, None, 3.0, 5.0], [1.0, 2.0, float("nan"), 1.0], paired=False)
    assert (out["n_a"], out["n_b"]) == (3, 3) and out["value"] == pytest.approx(3.0 / (4 / 3))
    assert S.ratio_of_means([1.0, 2.0], [0.0, 0.0])["value"] is None
    assert S.ratio_of_means([], [])["value"] is None
    with pytest.raises(ValueError):
        S.ratio_of_means([1.0], [1.0, 2.0])


def test_paired_ratio_ci_is_tighter_than_unpaired_when_seeds_share_noise():
    rng = np.random.default_rng(0)
    b = rng.lognormal(0, 0.5, 8)
    a = 1.5 * b * rng.lognormal(0, 0.05, 8)  # seed effects shared by both arms
    p = S.ratio_of_means(a, b, draws=4000)
    u = S.ratio_of_means(a, b, paired=False, draws=4000)
    assert p["value"] == u["value"]
    assert p["high"] - p["low"] < 0.5 * (u["high"] - u["low"])
    assert 1.35 < p["low"] < p["value"] < p["high"] < 1.65


@pytest.mark.parametrize("paired", [True, False])
def test_ratio_ci_covers_the_truth(paired):
    """Seeded simulation: the 90 % BCa interval of mean(a)/mean(b) from 10 seeds covers the true
    ratio of means in roughly 90 % of experiments."""
    rng = np.random.default_rng(2024)
    truth = 1.5 * math.exp(0.2 ** 2 / 2)  # E[a] / E[b] for a = 1.5 b exp(N(0, 0.2²))
    hits, runs = 0, 200
    for i in range(runs):
        b = rng.lognormal(0, 0.4, 10)
        a = 1.5 * (b if paired else rng.lognormal(0, 0.4, 10)) * rng.lognormal(0, 0.2, 10)
        out = S.ratio_of_means(a, b, paired=paired, level=0.9, draws=1000, seed=i)
        hits += out["low"] <= truth <= out["high"]
    assert 0.8 <= hits / runs <= 0.97


def test_mean_ci_and_paired_difference():
    v = [1.0, 2.0, 3.0, 4.0, 10.0]
    out = S.mean_ci(v)
    assert out["value"] == 4.0 and out["n"] == 5 and 1.0 <= out["low"] < 4.0 < out["high"] <= 10.0
    assert S.mean_ci(v, method="percentile", seed=1) == S.mean_ci(v, method="percentile", seed=1)
    assert S.mean_ci([None])["value"] is None
    d = S.paired_difference([3.0, 5.0, None, 9.0], [1.0, 2.0, 0.0, 4.0])
    assert d["value"] == pytest.approx(10 / 3) and d["n"] == 3 and 2.0 <= d["low"] <= d["high"] <= 5.0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.1, 10), min_size=2, max_size=8), st.floats(1e-3, 1e3),
       st.sampled_from(["percentile", "bca"]), st.booleans())
def test_ratio_invariant_to_common_scaling(values, c, method, paired):
    a = np.array(values)
    b = a[::-1] + 0.5
    base = S.ratio_of_means(a, b, paired=paired, method=method, draws=300)
    scaled = S.ratio_of_means(c * a, c * b, paired=paired, method=method, draws=300)
    for key in ("value", "low", "high"):
        assert scaled[key] == pytest.approx(base[key], rel=1e-9)


# ---------------------------------------------------------------------- tests
@pytest.mark.parametrize("k,n", [(5, 5), (0, 5), (3, 10), (9, 12), (6, 12), (1, 1)])
def test_sign_test_matches_binomtest(k, n):
    diffs = [1.0] * k + [-2.0] * (n - k) + [0.0, 0.0]  # the ties are dropped
    out = S.sign_test(diffs)
    assert (out["n"], out["positive"], out["negative"], out["ties"]) == (n, k, n - k, 2)
    assert out["p"] == pytest.approx(sps.binomtest(k, n, 0.5).pvalue, rel=1e-12)


def test_sign_test_with_only_ties_is_undefined():
    assert S.sign_test([0.0, 0.0])["p"] is None


def test_paired_test_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1, 1, 9), rng.normal(0.5, 1, 9)
    out = S.paired_test(a, b)
    ref = sps.ttest_rel(a, b)
    assert out["n"] == 9 and out["mean_difference"] == pytest.approx(np.mean(a - b))
    assert out["t"] == pytest.approx(ref.statistic) and out["p_t"] == pytest.approx(ref.pvalue)
    assert out["p_sign"] == pytest.approx(sps.binomtest(int(np.sum(a > b)), 9).pvalue)
    perm = sps.permutation_test((a - b,), np.mean, permutation_type="samples", n_resamples=np.inf)
    assert out["p_permutation"] == pytest.approx(perm.pvalue)  # exact: all 2^9 sign flips


def test_paired_permutation_exact_by_hand():
    # differences 1, 2, 3: of the 8 sign patterns only +++ and --- reach |sum| = 6
    assert S.paired_test([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])["p_permutation"] == pytest.approx(0.25)
    five = S.paired_test([2, 3, 4, 5, 6], [1, 1, 1, 1, 1])
    assert five["p_permutation"] == pytest.approx(2 / 32) and five["p_sign"] == pytest.approx(0.0625)
    assert five["positive"] == 5 and five["negative"] == 0
    same = S.paired_test([1.0, 2.0], [1.0, 2.0])
    assert same["t"] is None and same["p_sign"] is None and same["p_permutation"] == 1.0


def test_paired_permutation_monte_carlo_is_seeded_and_close_to_exact():
    d = np.random.default_rng(3).normal(0.4, 1, 17)
    exact = S.paired_test(d, np.zeros(17), exact_limit=17)["p_permutation"]
    mc = S.paired_test(d, np.zeros(17), seed=1)
    assert mc["p_permutation"] == S.paired_test(d, np.zeros(17), seed=1)["p_permutation"]
    assert mc["p_permutation"] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20000))


def test_unpaired_test_matches_scipy_and_hand_values():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 6), rng.normal(1, 2, 7)
    out = S.unpaired_test(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert (out["n_a"], out["n_b"]) == (6, 7)
    assert out["t"] == pytest.approx(ref.statistic) and out["p_welch"] == pytest.approx(ref.pvalue)
    # splits of {1, 2, 3, 4} into two pairs: mean differences -2, -1, 0, 0, 1, 2; |d| ≥ 2 twice in 6
    hand = S.unpaired_test([1.0, 2.0], [3.0, 4.0])
    assert hand["p_permutation"] == pytest.approx(1 / 3) and hand["mean_difference"] == -2.0
    assert S.unpaired_test([1.0], [2.0, 3.0])["p_welch"] is None
    assert S.unpaired_test([], [2.0])["p_permutation"] is None


def test_unpaired_permutation_monte_carlo_close_to_exact():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 8), rng.normal(0.8, 1, 8)
    exact = S.unpaired_test(a, b)["p_permutation"]  # C(16, 8) = 12870 splits
    mc = S.unpaired_test(a, b, exact_limit=100, seed=2)["p_permutation"]
    assert mc == S.unpaired_test(a, b, exact_limit=100, seed=2)["p_permutation"]
    assert mc == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20000) + 1e-4)


# ---------------------------------------------------------------------- Holm
def test_holm_textbook():
    # sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 → 0.06 (monotone)
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = S.holm({"a": 0.01, "b": 0.04, "c": None, "d": 0.03, "e": float("nan"), "f": 0.005})
    assert list(out) == ["a", "b", "c", "d", "e", "f"] and out["c"] is None and math.isnan(out["e"])
    assert [out[k] for k in "abdf"] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert S.holm([0.5, 0.6]) == [1.0, 1.0] and S.holm([]) == []
    with pytest.raises(ValueError):
        S.holm([0.2, 1.5])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_properties(ps):
    adj = S.holm(ps)
    for p, q in zip(ps, adj):
        assert p <= q <= 1.0
        assert q <= min(1.0, len(ps) * p) + 1e-15
    for (p1, q1), (p2, q2) in itertools.combinations(zip(ps, adj), 2):
        if p1 <= p2:
            assert q1 <= q2
        if p1 == p2:
            assert q1 == q2


# ---------------------------------------------------------------------- censored thresholds
def test_threshold_interior_and_on_a_point():
    out = S.threshold([1, 10, 100], [1.0, 0.1, 0.01], 0.05)
    assert out["censored"] is None and out["value"] == pytest.approx(20.0)  # log-log line, slope -1
    assert (out["low"], out["high"]) == (10.0, 100.0)
    out = S.threshold([1, 10, 100], [1.0, 0.1, 0.01], 0.1)
    assert out["value"] == pytest.approx(10.0) and (out["low"], out["high"]) == (1.0, 10.0)


def test_threshold_censored_is_never_a_number():
    left = S.threshold([1, 10, 100], [0.01, 0.001, 0.0001], 0.05)
    assert left == {"value": None, "low": None, "high": 1.0, "censored": "left"}
    right = S.threshold([1, 10, 100], [1.0, 0.5, 0.2], 0.05)
    assert right == {"value": None, "low": 100.0, "high": None, "censored": "right"}


def test_threshold_first_crossing_cliff_and_gaps():
    wiggly = S.threshold([1, 2, 4, 8], [1.0, 0.01, 0.5, 0.001], 0.1)  # first crossing wins
    assert (wiggly["low"], wiggly["high"]) == (1.0, 2.0) and 1.0 < wiggly["value"] < 2.0
    cliff = S.threshold([1000, 2000, 4000], [0.5, 2.9e-2, 1e-13], 1e-3)
    assert (cliff["low"], cliff["high"]) == (2000.0, 4000.0) and 2000 < cliff["value"] < 4000
    zero = S.threshold([1, 2], [1.0, 0.0], 0.5)
    assert zero["censored"] is None and 1.0 <= zero["value"] <= 2.0
    gap = S.threshold([1, 2, 4], [1.0, None, 0.01], 0.1)  # a missing point is skipped
    assert (gap["low"], gap["high"]) == (1.0, 4.0)
    for x, y in [([2, 1], [1.0, 0.1]), ([0, 1], [1.0, 0.1]), ([1, 2], [1.0])]:
        with pytest.raises(ValueError):
            S.threshold(x, y, 0.5)


def test_fit_exponent_uses_only_uncensored_points():
    d = [4, 6, 8, 12]
    curve = [{"value": 2 * 4 ** 3, "low": 100, "high": 200, "censored": None}, 2 * 6 ** 3, None,
             {"value": None, "low": 1e9, "high": None, "censored": "right"}]
    out = S.fit_exponent(d, curve)
    assert out["value"] == pytest.approx(3.0) and out["used"] == [4.0, 6.0]
    assert out["censored"] == [8.0, 12.0] and out["low"] is None and out["high"] is None
    assert out["reason"] is None
    few = S.fit_exponent(d, [128.0, None, None, {"value": None, "low": None, "high": 5.0, "censored": "left"}])
    assert few["value"] is None and "uncensored" in few["reason"] and few["used"] == [4.0]


def test_fit_exponent_per_seed_bootstrap():
    rng = np.random.default_rng(6)
    d = np.array([4.0, 6, 8, 12])
    table = (2 * d ** 3 * rng.lognormal(0, 0.1, (6, 4))).tolist()
    table[2][3] = None  # one seed censored at d = 12: that d is not used at all
    out = S.fit_exponent(d, table, draws=1000)
    assert out["used"] == [4.0, 6.0, 8.0] and out["censored"] == [12.0]
    assert out["low"] <= out["value"] <= out["high"] and 2.5 < out["value"] < 3.5
    assert out == S.fit_exponent(d, table, draws=1000)
    assert out["value"] == pytest.approx(S.loglog_slope(d[:3], np.exp(np.log(np.array(
        [row[:3] for row in table], dtype=float)).mean(0))))


def test_interval_text_formats_an_estimate_and_degrades_to_its_value_or_a_dash():
    from featviz.stats import interval_text

    assert interval_text({"value": 1.2345, "low": 1.1, "high": 1.45678}) == "1.23 [1.1, 1.46]"
    assert interval_text({"value": 0.99098, "low": 0.98852, "high": 0.99346}, ".2f") == "0.99 [0.99, 0.99]"
    assert interval_text({"value": 2.0, "low": None, "high": 3.0}, ".2f") == "2.00"
    assert interval_text({"value": None}) == interval_text(None) == "–"


def test_mean_std_text_formats_a_spread_entry_and_degrades_to_its_mean_or_a_dash():
    from featviz.stats import mean_std_text

    assert mean_std_text({"mean": 0.12345, "std": 0.0123}) == "0.123 ± 0.012"
    assert mean_std_text({"mean": 0.319, "std": 0.0412}, ".1f", ".1f", 100) == "31.9 ± 4.1"
    assert mean_std_text({"mean": 0.5, "std": None}, ".3f") == "0.500"
    assert mean_std_text({"mean": None, "std": 0.1}) == mean_std_text(None) == "–"
