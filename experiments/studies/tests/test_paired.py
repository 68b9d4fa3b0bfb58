"""experiments/studies/paired.py: two arms compared paired by training seed, with the seed as the unit."""
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "experiments" / "studies"))  # the tools import each other from there
import paired  # noqa: E402


def arm(per_seed_means, problems=4):
    """{seed: per-problem values} whose mean over the problems is the given value."""
    return {s: [m] * problems for s, m in enumerate(per_seed_means)}


@pytest.mark.parametrize("df, value", [(1, 12.706205), (2, 4.302653), (4, 2.776445), (9, 2.262157), (30, 2.042272)])
def test_t_quantile_matches_the_tables(df, value):
    assert paired.t_quantile(0.975, df) == pytest.approx(value, abs=1e-6)
    assert paired.t_quantile(0.025, df) == pytest.approx(-value, abs=1e-6)
    assert paired.t_cdf(value, df) == pytest.approx(0.975, abs=1e-7)


def test_t_cdf_is_cauchy_at_one_degree_of_freedom():
    for t in (-3.0, -0.5, 0.0, 0.7, 10.0):
        assert paired.t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)


def test_known_answer_differences_1_2_3():
    c = paired.compare(arm([1, 2, 3]), arm([0, 0, 0]), arms=("A", "B"), width=4, metric="accuracy")
    assert c["arms"] == ["A", "B"] and c["width"] == 4 and c["metric"] == "accuracy"
    assert c["differences"] == [1, 2, 3] and c["mean"] == 2 and c["sd"] == 1
    half = 4.302653 / math.sqrt(3)
    assert c["interval"] == pytest.approx([2 - half, 2 + half], abs=1e-6)
    assert (c["wins"], c["ties"], c["losses"]) == (3, 0, 0)
    assert c["method"] == paired.METHOD and c["detectable_definition"] == paired.DETECTABLE


def test_seeds_that_disagree_give_an_interval_across_zero_and_a_tie_is_a_tie():
    c = paired.compare(arm([0.5, 0.4, 0.6, 0.7]), arm([0.4, 0.4, 0.7, 0.6]), arms=("A", "B"), width=1)
    lo, hi = c["interval"]
    assert lo < 0 < hi
    assert (c["wins"], c["ties"], c["losses"]) == (2, 1, 1)
    assert c["differences"][1] == 0


def test_seeds_are_paired_by_name_not_by_position():
    a = {0: [0.9], 5: [0.1], 7: [0.5]}
    b = {7: [0.5], 0: [0.8], 3: [0.0], 5: [0.3]}  # seed 3 has no partner and is left out
    c = paired.compare(a, b, arms=("A", "B"), width=2)
    assert c["seeds"] == [0, 5, 7]
    assert c["differences"] == pytest.approx([0.1, -0.2, 0.0])
    assert (c["wins"], c["ties"], c["losses"]) == (1, 1, 1)


def test_fewer_than_two_seeds_give_no_interval_and_no_crash():
    c = paired.compare({3: [1.0, 0.5]}, {3: [0.5, 0.5]}, arms=("A", "B"), width=8)
    assert c["differences"] == [0.25] and c["mean"] == 0.25 and c["wins"] == 1
    assert c["interval"] is None and c["sd"] is None and c["detectable"] is None


def test_se_over_problems_is_of_the_seed_averaged_per_problem_differences():
    a, b = {0: [1.0, 0.0, 1.0], 1: [1.0, 1.0, 0.0]}, {0: [0.0, 0.0, 1.0], 1: [1.0, 0.0, 0.0]}
    per_problem = [0.5, 0.5, 0.0]
    se = (sum((x - 1 / 3) ** 2 for x in per_problem) / 2) ** 0.5 / 3 ** 0.5
    assert paired.compare(a, b, arms=("A", "B"), width=1)["se_problems"] == pytest.approx(se)


def test_bad_input_is_a_one_line_error():
    with pytest.raises(ValueError, match="share no training seed"):
        paired.compare({0: [1.0]}, {1: [1.0]}, arms=("A", "B"), width=1)
    with pytest.raises(ValueError, match="same problems"):
        paired.compare({0: [1.0, 0.0]}, {0: [1.0]}, arms=("A", "B"), width=1)


@pytest.mark.parametrize("df, ncp", [(1, 16.334008870), (2, 5.653489266), (4, 3.761059554), (9, 3.149632886)])
def test_detectable_difference_is_the_80_percent_power_point_of_the_noncentral_t(df, ncp):
    """Reference noncentralities from scipy.stats.nct (two-sided test at level 0.05, both tails)."""
    assert paired.detectable_ncp(df, 0.05, 0.8) == pytest.approx(ncp, abs=1e-6)
    assert paired.t_test_power(0.0, df, 0.05) == pytest.approx(0.05, abs=1e-7)
    assert paired.detectable(2.0, df + 1) == pytest.approx(ncp * 2.0 / math.sqrt(df + 1), abs=1e-6)


def test_detectable_difference_tends_to_the_normal_one_with_many_seeds():
    """z_0.975 + z_0.8 = 1.959964 + 0.841621: the large-sample rule (the far tail adds nothing)."""
    assert paired.detectable_ncp(2000, 0.05, 0.8) == pytest.approx(2.801585, abs=2e-3)
