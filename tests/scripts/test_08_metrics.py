"""Properties of the evaluation metrics (metrics.py), each checked against brute force.

The brute force lists every k-subset of n <= 10 samples with itertools.combinations and averages
in exact Fractions; the metrics must agree with it to float rounding. The reference numbers are
the worked example of the GPassK authors (Liu et al. 2024, arXiv 2412.13147; their `gpassk`
metric for HF `evaluate`, whose docstring prints them): one problem with n = 16 answers of which
c = 8 are right, G-Pass@k_tau for k = 4, 8 and tau = 0.25, 0.5, 0.75, 1.0, and mG-Pass@4, @8,
rounded to 6 digits. pass@k(10, 3, 4) = 1 - C(7,4)/C(10,4) = 1 - 35/210 is worked by hand.
metrics.py must stay pure Python: importing it must not load torch.
"""
import math
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from itertools import combinations
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from bridgekit.metrics import (all_correct, g_pass_at_k, maj_at_k, mean_accuracy, mg_pass_at_k, pass_at_k,
                     threshold)


# ---- brute force: average a score over all k-subsets, exactly --------------------------------

def subset_mean(items, k, score):
    subsets = list(combinations(items, k))
    return sum(Fraction(score(s)) for s in subsets) / len(subsets)


def outcomes(n, c):
    return [True] * c + [False] * (n - c)  # which samples are right; order does not matter


def brute_at_least(n, c, k, m):
    return subset_mean(outcomes(n, c), k, lambda s: sum(s) >= m)


def brute_majority(answers, gold, k):
    def score(subset):
        votes = Counter(a for a in subset if a is not None)
        if not votes:
            return 0
        top = max(votes.values())
        tied = [a for a, v in votes.items() if v == top]
        return Fraction(1, len(tied)) if gold in tied else 0
    return subset_mean(answers, k, score)


@st.composite
def counts(draw, max_n=10):
    """(n, c, k) with 1 <= k <= n <= max_n and 0 <= c <= n."""
    n = draw(st.integers(1, max_n))
    return n, draw(st.integers(0, n)), draw(st.integers(1, n))


percent = st.integers(1, 100)  # tau = p / 100, given to the metric as a float


# ---- agreement with brute force --------------------------------------------------------------

@given(counts())
def test_pass_at_k_equals_subset_enumeration(nck):
    n, c, k = nck
    assert pass_at_k(n, c, k) == pytest.approx(float(brute_at_least(n, c, k, 1)), abs=1e-12)


@given(counts(), percent)
def test_g_pass_equals_subset_enumeration_with_exact_threshold(nck, p):
    n, c, k = nck
    m = math.ceil(Fraction(p, 100) * k)  # exact rational ceiling
    assert g_pass_at_k(n, c, k, p / 100) == pytest.approx(float(brute_at_least(n, c, k, m)), abs=1e-12)


@given(counts())
def test_mg_pass_equals_subset_enumeration(nck):
    n, c, k = nck
    hits = sum(brute_at_least(n, c, k, i) for i in range(math.ceil(k / 2) + 1, k + 1))
    assert mg_pass_at_k(n, c, k) == pytest.approx(float(Fraction(2, k) * hits), abs=1e-12)


@given(st.lists(st.sampled_from([0, 1, 2, 3, None]), min_size=1, max_size=9),
       st.sampled_from([0, 1, 2]), st.data())
def test_maj_at_k_equals_subset_enumeration_with_ties_and_missing(answers, gold, data):
    k = data.draw(st.integers(1, len(answers)))
    expected = float(brute_majority(answers, gold, k))
    assert maj_at_k(answers, gold, k) == pytest.approx(expected, abs=1e-12)


# ---- pass@k ----------------------------------------------------------------------------------

@given(counts())
def test_pass_at_1_is_the_fraction_correct(nck):
    n, c, _ = nck
    assert pass_at_k(n, c, 1) == pytest.approx(c / n) == mean_accuracy(n, c)


@given(counts())
def test_pass_at_k_is_monotone_in_k_and_in_c(nck):
    n, c, k = nck
    if k < n:
        assert pass_at_k(n, c, k + 1) >= pass_at_k(n, c, k)
    if c < n:
        assert pass_at_k(n, c + 1, k) >= pass_at_k(n, c, k)


@given(counts())
def test_pass_at_k_is_0_with_no_right_answer_and_1_with_all_right(nck):
    n, _, k = nck
    assert pass_at_k(n, 0, k) == 0.0
    assert pass_at_k(n, n, k) == 1.0


# ---- G-Pass@k_tau and mG-Pass ----------------------------------------------------------------

@given(counts(), percent, percent)
def test_g_pass_is_in_unit_interval_and_non_increasing_in_tau(nck, p, q):
    n, c, k = nck
    lo, hi = sorted((p, q))
    a, b = g_pass_at_k(n, c, k, lo / 100), g_pass_at_k(n, c, k, hi / 100)
    assert 0.0 <= b <= a <= 1.0


@given(counts(), st.integers(1, 10))
def test_g_pass_at_tau_at_most_1_over_k_equals_pass_at_k(nck, shrink):
    n, c, k = nck
    expected = pass_at_k(n, c, k)
    assert g_pass_at_k(n, c, k, Fraction(1, k)) == pytest.approx(expected, abs=1e-12)
    assert g_pass_at_k(n, c, k, Fraction(1, k * shrink)) == pytest.approx(expected, abs=1e-12)
    assert g_pass_at_k(n, c, k, 1 / k) == pytest.approx(expected, abs=1e-12)  # float 1/k too


@given(counts())
def test_g_pass_at_tau_1_is_the_chance_all_k_are_right(nck):
    n, c, k = nck
    assert g_pass_at_k(n, c, k, 1.0) == pytest.approx(math.comb(c, k) / math.comb(n, k), abs=1e-12)


@given(st.integers(1, 12), st.data(), percent)
def test_g_pass_with_n_equal_k_is_the_indicator_of_enough_right(n, data, p):
    c = data.draw(st.integers(0, n))
    need = math.ceil(Fraction(p, 100) * n)
    assert g_pass_at_k(n, c, n, p / 100) == (1.0 if c >= need else 0.0)


@given(counts())
def test_hypergeometric_probabilities_sum_to_one(nck):
    # P(exactly j right) = G(threshold j) - G(threshold j+1), summed over j = 0..k, must be 1
    n, c, k = nck
    at_least = [1.0] + [g_pass_at_k(n, c, k, Fraction(j, k)) for j in range(1, k + 1)] + [0.0]
    assert sum(at_least[j] - at_least[j + 1] for j in range(k + 1)) == pytest.approx(1.0)


@pytest.mark.parametrize("tau, k, m", [(0.28, 25, 7), (0.07, 100, 7), (0.14, 50, 7), (0.55, 100, 55),
                                       ("7/25", 25, 7), (1 / 11, 11, 1), (Fraction(1, 3), 3, 1),
                                       (1, 8, 8), (0.25, 4, 1)])
def test_threshold_is_the_exact_ceiling_where_floats_would_round_up(tau, k, m):
    assert threshold(tau, k) == m


@given(percent, st.integers(1, 128))
def test_threshold_equals_integer_ceiling_for_every_percent(p, k):
    assert threshold(p / 100, k) == -(-p * k // 100)


@given(st.integers(1, 128), st.data())
def test_threshold_of_the_float_j_over_k_is_j(k, data):
    # str(1/11) = "0.09090909090909091" > 1/11: reading floats by their decimal repr would fail here
    j = data.draw(st.integers(1, k))
    assert threshold(j / k, k) == j


def test_reference_values_of_the_gpassk_example_n16_c8():
    table = {4: [0.961538, 0.715385, 0.284615, 0.038462, 0.161538],
             8: [0.994949, 0.690365, 0.065967, 0.0000777, 0.095183]}
    for k, row in table.items():
        got = [g_pass_at_k(16, 8, k, tau) for tau in (0.25, 0.5, 0.75, 1.0)] + [mg_pass_at_k(16, 8, k)]
        assert [round(x, 6) for x in got] == pytest.approx(row, abs=1e-6)
    assert pass_at_k(10, 3, 1) == 0.3
    assert round(pass_at_k(10, 3, 4), 6) == 0.833333


# ---- maj@k, all-correct ------------------------------------------------------------------------

def test_maj_at_k_hand_worked_examples():
    a = [5, 5, 3, None]  # gold 5
    # k=1: the four singletons score 1, 1, 0 (3 wins), 0 (no vote)                     -> 2/4
    # k=2: {5,5}=1 {5,3}=1/2 twice {5,None}=1 twice {3,None}=0                          -> 4/6
    # k=3: {5,5,3}=1 {5,5,None}=1 {5,3,None}=1/2 twice                                  -> 3/4
    # k=4: 5 has two votes against one                                                  -> 1
    assert [maj_at_k(a, 5, k) for k in (1, 2, 3, 4)] == pytest.approx([1 / 2, 2 / 3, 3 / 4, 1])
    # 1 against 2 with two missing, gold 1. k=4: a tie -> 1/2. k=2: {1,2}=1/2, {1,None}=1 twice,
    # the other three pairs 0 -> 2.5/6
    assert maj_at_k([1, 2, None, None], 1, 4) == 0.5
    assert maj_at_k([1, 2, None, None], 1, 2) == pytest.approx(5 / 12)


def test_maj_at_k_is_zero_when_all_answers_are_missing_or_gold_never_appears():
    assert maj_at_k([None, None, None], 4, 2) == 0.0
    assert maj_at_k([1, 2, 3, None], 4, 3) == 0.0


def test_maj_at_k_is_fast_from_counts_for_large_n():
    answers = [i % 7 for i in range(200)] + [None] * 56  # C(256, 64) subsets, far too many to list
    assert 0.0 < maj_at_k(answers, 0, 64) < 1.0


@given(counts())
def test_all_correct_is_one_only_when_every_answer_is_right(nck):
    n, c, _ = nck
    assert all_correct(n, c) == (1.0 if c == n else 0.0)


# ---- impossible input --------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: pass_at_k(4, 2, 5),        # k > n
    lambda: pass_at_k(4, 5, 2),        # c > n
    lambda: pass_at_k(4, -1, 2),       # c < 0
    lambda: pass_at_k(4, 2, 0),        # k < 1
    lambda: pass_at_k(0, 0, 1),        # n < 1
    lambda: pass_at_k(4.0, 2, 1),      # not an integer
    lambda: pass_at_k(4, 2, True),     # a bool is not a count
    lambda: g_pass_at_k(4, 2, 2, 0),   # tau = 0 (the reference allows it; we do not)
    lambda: g_pass_at_k(4, 2, 2, 1.5),
    lambda: g_pass_at_k(4, 2, 2, -0.5),
    lambda: g_pass_at_k(4, 2, 2, float("nan")),
    lambda: g_pass_at_k(4, 2, 2, "abc"),
    lambda: g_pass_at_k(4, 2, 5, 0.5),
    lambda: threshold(0.5, 0),
    lambda: mg_pass_at_k(4, 2, 5),
    lambda: mg_pass_at_k(4, 5, 2),
    lambda: maj_at_k([1, 2], 1, 3),
    lambda: maj_at_k([], 1, 1),
    lambda: maj_at_k([1, 2], 1, 0),
    lambda: maj_at_k([1, 2], None, 1),
    lambda: maj_at_k([1, 2], 1, 1.5),
    lambda: all_correct(3, 4),
    lambda: mean_accuracy(0, 0),
])
def test_impossible_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_importing_metrics_does_not_load_torch():
    root = Path(__file__).resolve().parents[2]
    code = "import sys; from bridgekit import metrics; assert 'torch' not in sys.modules, 'metrics imported torch'"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
