"""The set-level task `distinct`: its group reward, the exact ceiling of independent answers, and
how training, evaluation and the warm-up use them.

An answer names something, then picks a number 1..K; it scores 1 if the number is valid and no
sibling picked it. Answers drawn independently from one distribution can expect at most
metrics.independent_ceiling(K, W); the brute-force tests below enumerate every group.
"""
import itertools
import math
import random
from argparse import Namespace
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import evaluate
from bridgekit import metrics
from bridgekit import tasks
from bridgekit import train_args
import train_grpo
import train_sft
from bridgekit.tasks import Problem

P9 = Problem("Name an animal, then pick a whole number from 1 to 9.", 9, "distinct")


def brute_force(p, W):
    """(E[score of one answer], P(all W valid and distinct)) for W answers drawn i.i.d. from p, a
    list of probabilities over the values 1..K followed by one for an invalid answer (None)."""
    K = len(p) - 1
    outcomes = list(range(1, K + 1)) + [None]
    score, distinct = Fraction(0), Fraction(0)
    for group in itertools.product(range(K + 1), repeat=W):
        prob = math.prod((p[i] for i in group), start=Fraction(1))
        scores = metrics.distinct_scores([outcomes[i] for i in group])
        score += prob * scores[0]
        distinct += prob * all(scores)
    return score, distinct


def random_distribution(K, seed):
    rng = random.Random(seed)
    weights = [rng.randint(0, 6) ** rng.choice((1, 2, 3)) for _ in range(K + 1)]
    if not any(weights):
        weights[0] = 1
    return [Fraction(w, sum(weights)) for w in weights]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 10**6))
def test_no_independent_distribution_beats_the_ceiling(K, W, seed):
    per_answer, all_distinct = metrics.independent_ceiling(K, W)
    score, distinct = brute_force(random_distribution(K, seed), W)
    assert score <= per_answer and distinct <= all_distinct


@pytest.mark.parametrize("K,W", [(1, 1), (1, 3), (2, 2), (3, 2), (3, 5), (4, 3), (5, 4), (5, 5)])
def test_the_ceiling_is_attained_exactly(K, W):
    per_answer, all_distinct = metrics.independent_ceiling(K, W)
    uniform = [Fraction(1, K)] * K + [Fraction(0)]
    q = Fraction(1, max(K, W))  # 1/W on every value (the rest invalid) when K < W
    assert brute_force(uniform, W)[1] == all_distinct
    assert brute_force([q] * K + [1 - K * q], W)[0] == per_answer
    if K >= W:  # the closed forms
        assert per_answer == (1 - Fraction(1, K)) ** (W - 1)
        assert all_distinct == Fraction(math.factorial(K), math.factorial(K - W) * K ** W)
    else:
        assert all_distinct == 0


def test_the_ceiling_for_nine_values():
    assert [float(metrics.independent_ceiling(9, W)[0]) for W in (2, 4, 8)] == \
        pytest.approx([8 / 9, (8 / 9) ** 3, (8 / 9) ** 7])
    assert metrics.independent_ceiling(9, 4)[1] == Fraction(9 * 8 * 7 * 6, 9 ** 4)
    with pytest.raises(ValueError):
        metrics.independent_ceiling(0, 2)
    with pytest.raises(ValueError):
        metrics.independent_ceiling(9, 2.0)


def test_group_reward_scores_each_answer_against_its_siblings():
    texts = ["A fox.\nAnswer: 3", "An owl.\nAnswer: 3", "A cat.\nAnswer: 5", "A cod.\nAnswer: 12",
             "I cannot choose.", "A bee.\nAnswer: 7", "A yak.\nAnswer: 2.5", "A pig.\nAnswer: 0"]
    assert tasks.group_reward(texts, P9) == [0, 0, 1, 0, 0, 1, 0, 0]
    # an answer cut at max_new_tokens scores 0 and takes no number from its siblings
    assert tasks.group_reward(texts[:3], P9, finished=[True, False, True]) == [1, 0, 1]
    # the last answer line decides, decorated as the extractor allows
    assert tasks.group_reward(["Answer: 4\n**Answer:** 6", "Answer: 4"], P9) == [1, 1]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=6))
def test_group_reward_never_raises_and_agrees_with_the_metric(texts):
    rewards = tasks.group_reward(texts, P9)
    choices = [tasks.set_choice(t, P9) for t in texts]
    assert rewards == metrics.distinct_scores(choices)
    assert all(c is None or 1 <= c <= 9 for c in choices)


def test_one_answer_alone_has_no_reward_and_other_families_are_unchanged():
    with pytest.raises(ValueError, match="group_reward"):
        tasks.reward("Answer: 3", P9)
    word = tasks.make_problems("word", 1)[0]
    texts = [f"Answer: {word.answer}", "Answer: -1"]
    assert tasks.group_reward(texts, word) == [tasks.reward(t, word) for t in texts] == [1.0, 0.0]


def test_the_prompt_asks_for_a_name_first_and_its_examples_pick_valid_numbers():
    for problem in tasks.make_problems("distinct", 10, split="test"):
        chat = tasks.messages(problem, shots=2)
        assert problem.answer == 9 and ("1 to 9" in problem.question or "1 and 9" in problem.question)
        for turn in chat[2:-1:2]:  # the worked replies: a name, then an answer line
            name, line = turn["content"].splitlines()
            assert name and tasks.set_choice(line, problem) is not None


def test_grpo_and_the_warm_up_refuse_a_set_level_task_at_width_1():
    with pytest.raises(SystemExit) as e:  # a usage error (exit 2), found before any model loads
        train_grpo.parse_args(["--task", "distinct", "--width", "1", "--out", "x"])
    assert e.value.code == 2
    with pytest.raises(ValueError, match="width"):
        train_args.check_sft(train_sft.parse_args(["--task", "distinct", "--width", "1", "--out", "x"]))


def test_the_warm_up_keeps_finished_valid_answers_with_distinct_numbers():
    class Text:  # token ids stand for the characters of the text; 0 ends an answer
        def decode(self, ids):
            return "".join(chr(i) for i in ids if i)
    ids = lambda text, done=True: [ord(c) for c in text] + ([0] if done else [])
    answers = [ids("A\nAnswer: 3"), ids("B\nAnswer: 3"), ids("C\nAnswer: 4", done=False),
               ids("D\nAnswer: 10"), ids("E\nAnswer: 5"), ids("F\nAnswer: 4")]
    kept = train_sft.distinct_answers(answers, P9, Text(), {0})
    assert [Text().decode(a)[0] for a in kept] == ["A", "E", "F"]


def test_evaluation_scores_groups_at_their_width_and_pools_width_1():
    args = Namespace(n=4, widths=[1, 2, 4], ks=[1], taus=[])
    record = dict(gold=9, choices=[3, 3, 5, None], lengths=[4, 4, 4, 6], truncated=1, answer_line=3)
    at2 = evaluate.summary_of([record], 2, args)    # groups (3, 3) and (5, None)
    assert at2["set_score@2"]["mean"] == 0.25 and at2["all_distinct@2"]["mean"] == 0.0
    at1 = evaluate.summary_of([record], 1, args)    # the same answers as independent rows, pooled
    assert set(at1) >= {"set_score@2", "set_score@4", "all_distinct@2", "all_distinct@4", "valid"}
    assert at1["valid"]["mean"] == 0.75 and at1["length"]["mean"] == 4.5
    with pytest.raises(ValueError, match="divide"):
        metrics.set_summary([record], 4, 3)
