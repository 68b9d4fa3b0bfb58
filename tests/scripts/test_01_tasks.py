"""Guarantees of tasks.py: reproducible problems, a clean train/test split (by the arithmetic fact
where the family says so), prompts that never leak the question or a test problem, and one answer
extractor that is lenient and never raises."""
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from bridgekit import tasks
from bridgekit.tasks import (INSTRUCTION, TASKS, Problem, answer_line, extract_answer, load_jsonl,
                   make_problems, messages, question_count, reward, split_of)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments" / "studies"))  # survey_tasks (it finds benchkit in experiments/bench/)
ALL_TASKS = sorted(TASKS)
ANSWER_TASKS = sorted(set(TASKS) - tasks.SET_TASKS)  # one right answer per problem


def with_commas(x):
    return f"{x:,}"


# ---- extract_answer and reward -------------------------------------------------------------------

numbers = st.integers(-10**9, 10**9)
writes = st.sampled_from([str, with_commas])  # "1234567" or "1,234,567"
prose = st.text(alphabet="abcxyz ,:;!?\n", max_size=30)  # surrounding text without digits


@given(numbers, writes, prose, st.sampled_from(["Answer: {}", "answer:{}", "**Answer:** {}",
                                                "Answer: ${}$", "Answer: {}.", "  ANSWER :  {} ",
                                                "Final answer: **{}**", "Answer: 3 + 4 = {}"]))
def test_answer_line_round_trips_any_integer(x, write, text, form):
    assert extract_answer(f"{text}\n{form.format(write(x))}\n{text}") == x


@given(numbers, writes, prose)
def test_last_number_round_trips_without_an_answer_line(x, write, text):
    assert extract_answer(f"I think 12 and 7 matter.{text} So the total is {write(x)}. {text}") == x


@given(numbers, st.integers(0, 10**6), prose)
def test_answer_line_wins_over_later_numbers(x, later, text):
    assert extract_answer(f"Answer: {x}\n{text} (I counted {later} things, {later}.5 per box)") == x


@given(st.text())
def test_any_text_gives_none_or_an_int_and_never_raises(text):
    got = extract_answer(text)
    assert got is None or type(got) is int


def test_huge_and_odd_texts_never_raise():
    for text in ["9" * 100_000, "1 " * 100_000, "Answer: " + "7" * 10_000, "-" * 10_000, "\x00\ud800é",
                 "Answer:\n" * 10_000]:
        got = extract_answer(text)
        assert got is None or type(got) is int


@pytest.mark.parametrize("text, value", [
    ("", None), ("no numbers here", None), ("Answer: none", None),
    ("-12", -12), ("x = -12", -12), ("(-3)", -3), ("\u22127", -7),    # a minus sign
    ("5-3", 3), ("12 + 7 - 5", 5), ("x-3", 3),                          # subtraction, not a sign
    ("1,234", 1234), ("12,34", 34), ("1,2345", 2345),                   # commas only in threes
    ("8.0", 8), ("so 8.00.", 8), ("Answer: 8.5", None), ("it is 8.5", None),  # decimals
    ("Answer: 7\nAnswer: 9", 9), ("Answer: none\nso 4", 4), ("Answer: 8\nso 99 more", 8),
    ("Answer: $1,000$", 1000), ("Answer: -3.", -3), ("answer : 12 .", 12),
])
def test_extractor_documented_rules(text, value):
    assert extract_answer(text) == value


GAINS, LOSSES = ("buys", "gets", "finds"), ("loses", "gives away", "sells")


def story_terms(question):
    """The signed numbers of a word problem, in order: "has 23 .. buys 14 .. sells 9" -> [23, 14, -9]."""
    start = int(re.search(r" has (\d+) ", question)[1])
    steps = re.findall(rf"\b({'|'.join(GAINS + LOSSES)}) (\d+)", question)
    assert len(steps) == len(re.findall(r"\d+", question)) - 1  # every later number has its verb
    return [start] + [int(n) if verb in GAINS else -int(n) for verb, n in steps]


def solve(question):
    """An independent solver for the generated families, to check their answers."""
    if question.startswith("What is "):
        a, *rest = question.removeprefix("What is ").removesuffix("?").split()
        value = int(a)
        for op, b in zip(rest[::2], rest[1::2]):
            value = {"+": value + int(b), "-": value - int(b), "*": value * int(b)}[op]
        return value
    return sum(story_terms(question))


def fact_of(task, question):
    """The arithmetic fact of a fact-split family's question, read from its text (as documented in
    tasks.py: word2's sorted signed terms, mul2's ordered pair)."""
    if task == "word2":
        return tuple(sorted(story_terms(question)))
    a, b = re.fullmatch(r"What is (\d+) \* (\d+)\?", question).groups()
    return int(a), int(b)


def split_of_problem(problem):
    """The split a problem must come from: by its fact for the fact-split families, else by its text."""
    if problem.task in tasks.FACT_KEYS:
        return tasks.split_of_fact(problem.task, fact_of(problem.task, problem.question))
    return split_of(problem.question)


@pytest.mark.parametrize("task", ANSWER_TASKS)
def test_answers_are_right_and_the_gold_in_the_worked_example_format_earns_reward_one(task):
    for problem in make_problems(task, 30, seed=3, split="test"):
        assert problem.answer == solve(problem.question)
        assert reward(f"some working\n{answer_line(problem.answer)}", problem) == 1.0
        assert reward(answer_line(problem.answer + 1), problem) == 0.0
    # the worked examples in the prompt are right too, and end with exactly that line
    for user, assistant in zip(*[iter(messages(make_problems(task, 1, seed=5)[0], shots=4, system=None)[:-1])] * 2):
        question = user["content"].removesuffix(" " + INSTRUCTION)
        gold = Problem(question, solve(question), task)
        assert reward(assistant["content"], gold) == 1.0
        assert assistant["content"].splitlines()[-1] == answer_line(gold.answer)


def test_reward_is_zero_for_missing_or_wrong_answers():
    p = Problem("What is 2 + 2?", 4, "add1")
    assert reward("", p) == reward("I don't know", p) == reward("Answer: 5", p) == 0.0
    assert reward("2 + 2 = 4.\nAnswer: 4", p) == 1.0


# ---- make_problems --------------------------------------------------------------------------------

@given(st.sampled_from(ALL_TASKS), st.integers(0, 10**6), st.sampled_from(tasks.SPLITS))
def test_same_seed_same_problems_and_distinct_within_a_call(task, seed, split):
    a = make_problems(task, 15, seed=seed, split=split)
    assert a == make_problems(task, 15, seed=seed, split=split)
    assert len({p.question for p in a}) == 15
    assert all(split_of_problem(p) == split and p.task == task for p in a)


def test_same_seed_same_problems_in_another_process():
    code = ("from bridgekit.tasks import make_problems; "
            "print([(p.question, p.answer) for t in ('word', 'add2', 'abc', 'word2', 'mul2') "
            "for p in make_problems(t, 5, seed=7, split='test')])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONHASHSEED": "123"}).stdout
    here = [(p.question, p.answer) for t in ("word", "add2", "abc", "word2", "mul2")
            for p in make_problems(t, 5, seed=7, split="test")]
    assert out.strip() == str(here)


@pytest.mark.parametrize("task", ALL_TASKS)
def test_different_seeds_give_different_problems(task):
    assert make_problems(task, 10, seed=0) != make_problems(task, 10, seed=1)


@pytest.mark.parametrize("task", ALL_TASKS)
def test_train_and_test_never_share_a_question(task):
    n = 500 if task not in ("add1", "mul1", "mul2", "distinct") else min(question_count(task, s) for s in tasks.SPLITS)
    train = {p.question for p in make_problems(task, n, split="train")}
    test = {p.question for p in make_problems(task, n, split="test")}
    assert len(train) == len(test) == n and not train & test


@pytest.mark.parametrize("task", ["add1", "mul1"])
def test_a_whole_split_can_be_drawn_and_one_more_is_a_clear_error(task):
    size = question_count(task, "test")
    everything = make_problems(task, size, split="test")
    assert len({p.question for p in everything}) == size
    assert question_count(task, "train") + size == 81  # 9 x 9 pairs, split between the two
    with pytest.raises(ValueError, match=rf"'{task}' has only {size} .* 'test' split"):
        make_problems(task, size + 1, split="test")


def test_answers_are_never_negative_and_the_difficulty_changes_the_range():
    assert all(p.answer >= 0 for p in make_problems("word", 300) + make_problems("abc", 300))
    big = make_problems("add2", 50, lo=100, hi=999)
    assert all(200 <= p.answer <= 1998 for p in big)
    for p in make_problems("word2", 300, hi=12):  # never below zero, after either step
        terms = story_terms(p.question)
        assert min(itertools.accumulate(terms)) >= 0 and max(map(abs, terms)) <= 12
    assert all(20 <= fact_of("mul2", p.question)[0] <= 29 for p in make_problems("mul2", 30, lo=20, hi=29))


# ---- the split: pinned for the text-split families, by fact for the others ------------------------

def test_text_split_families_keep_their_questions_and_splits():
    """Committed studies depend on these: computed before the fact-level split existed."""
    assert [p.question for p in make_problems("word", 2, seed=0, split="train", hi=9)] == [
        "Leo has 6 cookies. Leo finds 3 more cookies. How many cookies does Leo have now?",
        "Emma has 5 cookies. Emma buys 4 more cookies. How many cookies does Emma have now?"]
    assert [p.question for p in make_problems("word", 2, seed=0, split="test", hi=9)] == [
        "Mia has 9 books. Mia sells 4 books. How many books does Mia have now?",
        "Maria has 8 cookies. Maria gets 9 more cookies. How many cookies does Maria have now?"]
    assert [p.question for p in make_problems("add2", 2, seed=0, split="train")] == ["What is 60 + 66?", "What is 97 + 65?"]
    assert [p.question for p in make_problems("add2", 2, seed=0, split="test")] == ["What is 68 + 75?", "What is 35 + 65?"]
    assert {q: split_of(q) for q in ("What is 60 + 66?", "What is 68 + 75?", "What is 10 + 10?",
                                     "Mia has 9 books. Mia sells 4 books. How many books does Mia have now?")} == {
        "What is 60 + 66?": "train", "What is 68 + 75?": "test", "What is 10 + 10?": "train",
        "Mia has 9 books. Mia sells 4 books. How many books does Mia have now?": "test"}
    assert [question_count("add2", s) for s in tasks.SPLITS] == [4016, 4084]
    assert [question_count("word", s, hi=9) for s in tasks.SPLITS] == [27155, 27277]
    # and the worked examples of a prompt
    chat = messages(make_problems("word", 1, seed=0, split="test", hi=9)[0], system=None)
    assert [t["content"].removesuffix(" " + INSTRUCTION) for t in chat[:-1:2]] == [
        "Jack has 17 apples. Jack loses 8 apples. How many apples does Jack have now?",
        "Leo has 11 flowers. Leo gives away 4 flowers. How many flowers does Leo have now?"]


def every_fact(task, lo, hi):
    """Every allowed fact of a fact-split family with numbers lo..hi, and how many questions ask them."""
    if task == "mul2":
        facts = [(a, b) for a in range(lo, hi + 1) for b in range(2, 10)]
        return set(facts), len(facts)
    nums, signs = range(lo, hi + 1), (1, -1)
    stories = [(a, s1 * b, s2 * c) for a, s1, b, s2, c in itertools.product(nums, signs, nums, signs, nums)
               if a + s1 * b >= 0 and a + s1 * b + s2 * c >= 0]
    return {tuple(sorted(t)) for t in stories}, len(stories)  # one question per story


@pytest.mark.parametrize("task, lo, hi", [("word2", 1, 7), ("word2", 0, 4), ("mul2", 10, 99), ("mul2", 40, 55)])
def test_fact_split_families_share_no_fact_between_train_and_test(task, lo, hi):
    facts, questions = every_fact(task, lo, hi)
    drawn = {}
    for split in tasks.SPLITS:  # each whole split, as the independent parser reads it
        problems = make_problems(task, question_count(task, split, lo=lo, hi=hi), split=split, lo=lo, hi=hi)
        assert all(split_of_problem(p) == split and p.answer == solve(p.question) for p in problems)
        drawn[split] = {fact_of(task, p.question) for p in problems}
        assert len({p.question for p in problems}) == len(problems)
    assert not drawn["train"] & drawn["test"]
    assert drawn["train"] | drawn["test"] == facts
    assert sum(question_count(task, s, lo=lo, hi=hi) for s in tasks.SPLITS) == questions
    assert 0.3 < len(drawn["test"]) / len(facts) < 0.7  # about half the facts are held out


def whole_split_facts(task, split, **difficulty):
    """The facts of every question of one split of a fact-split family."""
    return {fact_of(task, p.question) for p in make_problems(task, question_count(task, split, **difficulty),
                                                             split=split, **difficulty)}


@pytest.mark.parametrize("task, small, large", [("word2", 5, 10), ("mul2", 20, 99)])
def test_a_facts_split_does_not_depend_on_the_difficulty(task, small, large):
    held_out = whole_split_facts(task, "test", hi=small)
    assert held_out <= whole_split_facts(task, "test", hi=large)
    assert not held_out & whole_split_facts(task, "train", hi=large)


@pytest.mark.parametrize("call, words", [
    (lambda: make_problems("nope", 3), ["nope", "word", "add2", "abc", "add1", "mul1"]),
    (lambda: make_problems("word", 3, split="dev"), ["dev", "train", "test"]),
    (lambda: make_problems("add2", 10**6), ["add2", "train"]),
    (lambda: make_problems("word", -1), ["n"]),
    (lambda: make_problems("add2", 3, hi=5), ["lo", "hi"]),
    (lambda: make_problems("add2", 3, size=5), ["lo", "hi"]),
    (lambda: messages(Problem("q", 1, "add1"), shots=-1), ["shots"]),
    (lambda: make_problems("word2", 3, lo=5, hi=4), ["lo", "hi"]),
    (lambda: make_problems("word2", 3, hi=-1), ["lo", "hi"]),
    (lambda: make_problems("word2", 3, size=5), ["word2", "lo", "hi"]),
    (lambda: make_problems("mul2", 3, hi=100), ["mul2", "10 <= lo <= hi <= 99"]),
    (lambda: make_problems("mul2", 3, lo=5), ["mul2", "10 <= lo <= hi <= 99"]),
    (lambda: make_problems("mul2", 3, hi=9.5), ["mul2", "integers"]),
    (lambda: make_problems("mul2", 400, lo=10, hi=99), ["mul2", "train"]),
])
def test_bad_requests_raise_value_error_naming_the_problem(call, words):
    with pytest.raises(ValueError) as e:
        call()
    assert all(w in str(e.value) for w in words) and "\n" not in str(e.value)


# ---- messages ------------------------------------------------------------------------------------

@given(st.sampled_from(ALL_TASKS), st.integers(0, 4), st.integers(0, 1000), st.sampled_from(tasks.SPLITS))
def test_messages_are_shots_pairs_then_the_question_and_never_leak(task, shots, seed, split):
    problem = make_problems(task, 1, seed=seed, split=split)[0]
    chat = messages(problem, shots=shots, system=None)
    assert chat == messages(problem, shots=shots, system=None)  # the examples depend on the problem alone
    assert messages(problem, shots=shots) == [{"role": "system", "content": tasks.SYSTEM}] + chat
    assert len(chat) == 2 * shots + 1
    assert [t["role"] for t in chat] == ["user", "assistant"] * shots + ["user"]
    assert chat[-1]["content"] == f"{problem.question} {INSTRUCTION}"
    examples = [t["content"].removesuffix(" " + INSTRUCTION) for t in chat[:-1:2]]
    assert problem.question not in examples and len(set(examples)) == shots
    assert all(split_of_problem(Problem(q, 0, task)) == "train" for q in examples)  # so never a test problem (or fact)


def test_messages_work_for_loaded_and_hand_made_problems():
    chat = messages(Problem("Sam has 2 dogs and 3 cats. How many pets?", 5, "gsm8k"), shots=2, system=None)
    assert len(chat) == 5 and "Answer: " in chat[1]["content"]
    assert len(messages(Problem("What is 1 + 1?", 2), shots=0, system="")) == 1


# ---- load_jsonl ----------------------------------------------------------------------------------

def test_load_jsonl_reads_gsm8k_records_with_commas_and_signs(tmp_path):
    rows = [{"question": "How many?", "answer": "Work it out.\n#### 1,234"},
            {"question": "How cold?", "answer": "It drops.\n#### -12"},
            {"question": "How much?", "answer": "#### 7.0"}]
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n\n" + "\n".join(json.dumps(r) for r in rows[1:]) + "\n")
    assert load_jsonl(path) == [Problem("How many?", 1234, "gsm8k"), Problem("How cold?", -12, "gsm8k"),
                                Problem("How much?", 7, "gsm8k")]


@pytest.mark.parametrize("bad", ['{"question": "q", "answer": "#### 3"', '{"question": "q"}',
                                 '{"question": "q", "answer": "no marker"}', '[1, 2]',
                                 '{"question": "q", "answer": "#### 2.5"}'])
def test_load_jsonl_names_the_file_and_line_of_a_malformed_record(tmp_path, bad):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "ok", "answer": "#### 1"}\n\n' + bad + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 3"):
        load_jsonl(path)


# ---- CLI -----------------------------------------------------------------------------------------

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "bridgekit.tasks", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("task", ["add2", "word2", "mul2"])
def test_cli_prints_messages_and_answers(task):
    done = run_cli("--task", task, "--n", "3", "--seed", "0", "--shots", "1")
    assert done.returncode == 0, done.stderr
    for p in make_problems(task, 3, seed=0):
        assert f"{p.question} {INSTRUCTION}" in done.stdout and f"answer: {p.answer}" in done.stdout
    assert done.stdout.count("assistant: ") == 3


@pytest.mark.parametrize("args", [["--task", "nope"], ["--n", "0"], ["--task", "add1", "--n", "100"],
                                  ["--n", "x"], ["--split", "dev"], ["--shots", "-1"]])
def test_cli_bad_input_is_one_line_on_stderr_and_exit_2(args):
    done = run_cli(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


# ---- the task survey -----------------------------------------------------------------------------

def test_survey_default_run_is_unchanged_and_the_headroom_candidates_can_run():
    import survey_tasks
    assert survey_tasks.CONFIGS["default"] == [  # the rows of the committed experiments/results/tasks.md
        ("word", 20, 2, None), ("word", 20, 2, "short"), ("word", 9, 2, "short"), ("word", 20, 1, "short"),
        ("add2", None, 2, "short"), ("add2", None, 1, "short"), ("abc", 20, 2, "short"), ("abc", 9, 2, "short")]
    for task, hi, shots, system in survey_tasks.CONFIGS["headroom"]:
        assert task in tasks.FACT_KEYS and hi is not None  # the table prints `hi`, not a default
        assert question_count(task, "train", hi=hi) >= 8  # one rollout step's prompts
