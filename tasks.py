"""Verifiable tasks: problems with exact integer answers, the prompt, the answer extractor, the reward.

The paper trains and evaluates on math benchmarks. Here every problem is generated offline from a
seed, so training and evaluation need no download. Five families (how often the default model,
SmolLM2-135M-Instruct, gets each right with two worked examples: docs/tasks.md, "Choosing the default task"):

    word  "Tom has 3 apples. Tom buys 5 more apples. How many apples does Tom have now?"  (good RL target)
    add2  "What is 47 + 38?"                                                          (good RL target)
    abc   "What is 12 + 7 - 5?"                                                       (harder stretch)
    add1  "What is 7 + 1?"   mul1  "What is 6 * 7?"                                   (easy controls)

and two candidates with headroom, whose test split holds out the arithmetic itself (see FACT_KEYS;
surveyed with studies/survey_tasks.py --configs headroom):

    word2 "Tom has 23 apples. Tom buys 14 more apples and then gives away 9 apples. How many apples
          does Tom have now?"                            (two steps; knobs lo=1, hi=30: numbers lo..hi)
    mul2  "What is 12 * 7?"   (two digits times one digit, 2..9; knobs lo=10, hi=99: the two-digit factor)

Users with GSM8K-style data (JSONL, `answer` ending in `#### N`) load it with load_jsonl().
Training, evaluation and sample.py share ONE prompt (prompt_ids), ONE extractor (extract_answer)
and ONE reward (group_reward: reward() of each answer, or the group's for a set-level family).
The set-level family `distinct` ("name an animal, then pick a number from 1 to 9 that no other
answer picks") has no right answer: its reward depends on the whole group (see CATEGORIES).

    $ python tasks.py --task word --n 5 --seed 0 --split train --shots 2

Decisions the paper does not make (each marked `# choice:` where the code makes it):
1. Split: a question is a test question iff a blake2b hash of its text is odd. The split is a
   function of the text alone, so train and test never share a question, in any process, for any
   seed or difficulty knob. About half of every family is test. The families in FACT_KEYS hash
   their arithmetic fact instead of the text, so train and test never share a fact either: with
   small numbers (`word` up to 9 has 126 facts) every held-out question of a text-split family
   reuses a fact the training pool holds, only worded differently.
2. The default model needs worked examples (zero-shot it rarely writes the asked-for answer line),
   so messages() puts `shots` solved train problems of the same family before the question. They
   depend on the question alone, never on a run's seed: a problem is asked the same way in
   training, in evaluation and in sample.py.
3. Answers are never negative in the generated families.
"""
import hashlib
import inspect
import itertools
import json
import math
import random
import re
from dataclasses import dataclass

from metrics import set_credit

SPLITS = ("train", "test")
INSTRUCTION = "End with a final line of the form 'Answer: N', where N is the number."
SYSTEM = "You solve math problems."  # a one-line system message (see messages(system=...))
# choice: the project's default task is `word` with numbers up to 9: of the tasks measured with
# GRPO's own rollouts (docs/tasks.md, "Choosing the default task") it gives the most groups with mixed
# rewards. Training, evaluation and sample.py all start from these knobs.
DEFAULT_TASK = "word"
DEFAULT_KNOBS = {"word": {"hi": 9}}


@dataclass(frozen=True)
class Problem:
    question: str
    answer: int
    task: str = ""  # the family that made it ("gsm8k" for load_jsonl, "" when built by hand)


def answer_line(answer):
    """The final line the worked examples end with, and the model is asked to end with."""
    return f"Answer: {answer}"


# -----------------------------------------------------------------------------
# The families. Each has `axes(**knobs)`: the choices for each parameter, and `render(*params)`:
# (question, answer, worked line), or None when the parameters are not allowed (negative answer).
# Difficulty knobs are the keyword arguments of `axes`, passed through make_problems(**knobs).

NAMES = ("Tom", "Anna", "Ben", "Maria", "Sam", "Lily", "Omar", "Mia", "Jack", "Sofia", "Leo", "Emma")
THINGS = (("apple", "apples"), ("book", "books"), ("marble", "marbles"), ("pencil", "pencils"),
          ("cookie", "cookies"), ("sticker", "stickers"), ("coin", "coins"), ("shell", "shells"),
          ("card", "cards"), ("balloon", "balloons"), ("stamp", "stamps"), ("flower", "flowers"))
VERBS = (("buys", +1), ("gets", +1), ("finds", +1), ("loses", -1), ("gives away", -1), ("sells", -1))
VERBS_OF = {sign: tuple(word for word, s in VERBS if s == sign) for sign in (+1, -1)}  # for word2


def _numbers(lo, hi):
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
        raise ValueError(f"number range must satisfy 0 <= lo <= hi (integers), got lo={lo!r}, hi={hi!r}")
    return range(lo, hi + 1)


def _word_axes(lo=1, hi=20):
    nums = _numbers(lo, hi)
    return [NAMES, THINGS, VERBS, nums, nums]


def _noun(thing, x):
    """The noun for x things: "1 apple", "2 apples"."""
    return thing[0] if x == 1 else thing[1]


def _word_render(name, thing, verb, a, b):
    word, sign = verb
    if sign < 0 and b > a:
        return None  # choice: one cannot give away more than one has, so answers are >= 0
    more, op, c = (" more", "+", a + b) if sign > 0 else ("", "-", a - b)
    question = (f"{name} has {a} {_noun(thing, a)}. {name} {word} {b}{more} {_noun(thing, b)}. "
                f"How many {thing[1]} does {name} have now?")
    return question, c, f"{name} has {a} {_noun(thing, a)} and {word} {b}{more}, so {a} {op} {b} = {c}."


def _word2_axes(lo=1, hi=30):
    nums = _numbers(lo, hi)
    return [nums, (+1, -1), nums, (+1, -1), nums]


def _word2_wording(a, s1, b, s2, c):
    """(name, thing, verb of step 1, verb of step 2), drawn from the numbers and signs alone."""
    # choice: the wording is a function of the arithmetic, one question per (a, s1, b, s2, c): with
    # names, things and verbs as free axes there would be 1,296 times as many questions (89 million
    # at hi=30), too many for question_count to list, and held-out facts need no reworded copies
    seed = stable_seed("word2-wording", a, s1, b, s2, c)
    seed, name = divmod(seed, len(NAMES))
    seed, thing = divmod(seed, len(THINGS))
    seed, v1 = divmod(seed, len(VERBS_OF[s1]))
    v2 = seed % len(VERBS_OF[s2])
    return NAMES[name], THINGS[thing], VERBS_OF[s1][v1], VERBS_OF[s2][v2]


def _word2_render(a, s1, b, s2, c):
    mid = a + s1 * b
    end = mid + s2 * c
    if mid < 0 or end < 0:
        return None  # choice: one cannot give away more than one has, at either step
    name, thing, verb1, verb2 = _word2_wording(a, s1, b, s2, c)
    more = lambda s: " more" if s > 0 else ""
    op = lambda s: "+" if s > 0 else "-"
    question = (f"{name} has {a} {_noun(thing, a)}. {name} {verb1} {b}{more(s1)} {_noun(thing, b)} and "
                f"then {verb2} {c}{more(s2)} {_noun(thing, c)}. How many {thing[1]} does {name} have now?")
    worked = (f"{name} has {a} {_noun(thing, a)}, {verb1} {b}{more(s1)} and then {verb2} {c}{more(s2)}, "
              f"so {a} {op(s1)} {b} = {mid} and {mid} {op(s2)} {c} = {end}.")
    return question, end, worked


def _word2_fact(a, s1, b, s2, c):
    # choice: the fact is the sorted signed terms, not the (a, op1, b, op2, c) tuple itself: the
    # tuple's order of terms does not change the sum, so "23 + 14 - 9", "14 + 23 - 9" and
    # "23 - 9 + 14" are one fact and land in one split. Coarser than the tuple, so no tuple is
    # shared either. The one-step facts inside (23 + 14) are not held out: each occurs in
    # dozens of two-step facts of both splits.
    return tuple(sorted((a, s1 * b, s2 * c)))


def _pair_axes(lo, hi):
    nums = _numbers(lo, hi)
    return [nums, nums]


def _add2_axes(lo=10, hi=99):
    return _pair_axes(lo, hi)


def _add1_axes(lo=1, hi=9):
    return _pair_axes(lo, hi)


def _mul1_axes(lo=1, hi=9):
    return _pair_axes(lo, hi)


def _mul2_axes(lo=10, hi=99):
    if not (isinstance(lo, int) and isinstance(hi, int) and 10 <= lo <= hi <= 99):
        raise ValueError(f"mul2: the two-digit factor needs 10 <= lo <= hi <= 99 (integers), got lo={lo!r}, hi={hi!r}")
    return [range(lo, hi + 1), range(2, 10)]


def _mul2_render(a, b):
    tens, units = a - a % 10, a % 10
    if units == 0:
        return f"What is {a} * {b}?", a * b, f"{a} * {b} = {a * b}."
    # choice: the worked line splits the two-digit factor into tens and units, the one procedure a
    # model can reuse on products it never saw (the test split holds out every product)
    return (f"What is {a} * {b}?", a * b,
            f"{a} * {b} = {tens} * {b} + {units} * {b} = {tens * b} + {units * b} = {a * b}.")


def _mul2_fact(a, b):
    # choice: one question per product (the two-digit factor always first), so the pair is the fact;
    # with both orders a training prompt's worked example could be its own product reversed
    return (a, b)


def _add_render(a, b):
    return f"What is {a} + {b}?", a + b, f"{a} + {b} = {a + b}."


def _mul_render(a, b):
    return f"What is {a} * {b}?", a * b, f"{a} * {b} = {a * b}."


def _abc_axes(lo=1, hi=20):
    nums = _numbers(lo, hi)
    return [nums, nums, nums]


def _abc_render(a, b, c):
    if c > a + b:
        return None  # choice: keep answers >= 0 (removes 1,140 of the 8,000 default triples)
    s = a + b
    return f"What is {a} + {b} - {c}?", s - c, f"{a} + {b} = {s}, and {s} - {c} = {s - c}."


# `distinct`, the set-level family: no answer is right or wrong alone. Each of the W answers to one
# prompt names something (which makes the rows diverge BEFORE they pick: rows with identical
# histories draw their next token from the same distribution, so no coordination is possible
# while they are identical), then picks a whole number from 1 to K; an answer scores 1 if its
# number is in range and no sibling picked the same number (group_reward). A Problem's `answer`
# holds K. Rows answering independently can expect at most metrics.independent_ceiling(K, W).
CATEGORIES = (("an animal", ("A fox", "An owl", "A horse")), ("a color", ("Blue", "Green", "Purple")),
              ("a fruit", ("A pear", "A plum", "A mango")), ("a country", ("Chile", "Norway", "Kenya")),
              ("a city", ("Paris", "Lima", "Oslo")), ("a tool", ("A hammer", "A saw", "A wrench")),
              ("a musical instrument", ("A violin", "A drum", "A flute")),
              ("a sport", ("Tennis", "Rowing", "Judo")), ("a flower", ("A rose", "A tulip", "A daisy")),
              ("a tree", ("An oak", "A birch", "A maple")), ("a bird", ("A robin", "A crow", "A swan")),
              ("a vegetable", ("A carrot", "A leek", "A pea")), ("a drink", ("Tea", "Milk", "Lemonade")),
              ("a dessert", ("A pie", "A cake", "A tart")), ("a job", ("A baker", "A nurse", "A pilot")),
              ("a vehicle", ("A bus", "A tram", "A truck")), ("a metal", ("Iron", "Copper", "Zinc")),
              ("an insect", ("An ant", "A bee", "A moth")), ("a shape", ("A circle", "A square", "A star")),
              ("a fish", ("A trout", "A cod", "A carp")), ("a board game", ("Chess", "Go", "Checkers")),
              ("a planet", ("Mars", "Venus", "Saturn")), ("a river", ("The Nile", "The Rhine", "The Amazon")),
              ("a piece of furniture", ("A chair", "A table", "A bed")))
DISTINCT_TEMPLATES = (
    "First name {cat}. Then pick a whole number from 1 to {k}. Several answers to this are written "
    "at once, and each should pick a number that no other answer picks.",
    "Name {cat}, then choose a whole number between 1 and {k}. The answers written together should "
    "all choose different numbers.",
    "Write down {cat} and then a whole number from 1 to {k}; every answer in the group must pick "
    "its own number, different from the others.",
)


def _distinct_axes(hi=9):
    if not (isinstance(hi, int) and 2 <= hi <= 9):
        raise ValueError(f"distinct: hi must be an integer 2..9 (one digit per number), got {hi!r}")
    return [CATEGORIES, range(len(DISTINCT_TEMPLATES)), [hi]]


def _distinct_render(category, template, k):
    cat, examples = category
    question = DISTINCT_TEMPLATES[template].format(cat=cat, k=k)
    # the worked reply: an example of the category, then a number that depends on the question only
    pick = stable_seed("distinct-example", question) % k + 1
    return question, k, f"{examples[template]}.\n{answer_line(pick)}"


TASKS = {  # name -> (axes, render)
    "word": (_word_axes, _word_render),
    "add2": (_add2_axes, _add_render),
    "abc": (_abc_axes, _abc_render),
    "add1": (_add1_axes, _add_render),
    "mul1": (_mul1_axes, _mul_render),
    "distinct": (_distinct_axes, _distinct_render),
    "word2": (_word2_axes, _word2_render),
    "mul2": (_mul2_axes, _mul2_render),
}
SET_TASKS = {"distinct"}  # families scored as a group (group_reward), not answer by answer
# Families whose split is decided by the arithmetic fact, not the question text: name -> fact(*params),
# a tuple of ints. The other families keep the text split, so their questions and splits never change.
FACT_KEYS = {"word2": _word2_fact, "mul2": _mul2_fact}


# -----------------------------------------------------------------------------
# Drawing distinct problems from one split

def stable_seed(*parts):
    """A 64-bit seed from any parts (ints, strings), the same in every process and on every machine.

    The one seed derivation of the project: the split, the problems, the worked examples, and every
    torch.Generator of training and evaluation (torch takes seeds up to 2**64 - 1).
    """
    # note: never Python's hash() of a str, which is salted per process
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def split_of(question):
    """'test' or 'train' for a question text, the same in every process."""
    # choice: a cryptographic hash, not zlib.crc32: CRC bits are linear in the input bits, so a
    # crc split of "What is 47 + 38?" would follow a pattern in the digits (a biased test set)
    return "test" if stable_seed("split", question) % 2 else "train"


def split_of_fact(task, fact):
    """'test' or 'train' for a fact (FACT_KEYS) of a fact-split family, the same in every process."""
    # choice: the family's name is hashed with the fact, so two families' splits are independent
    return split_of(f"{task} fact {fact}")


def _split(task, params, question):
    """The split of one rendered problem: by its fact for the families in FACT_KEYS, else by its text."""
    fact = FACT_KEYS.get(task)
    return split_of(question) if fact is None else split_of_fact(task, fact(*params))


def _check_task(task, split):
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


def _axes(task, knobs):
    axes_fn = TASKS[task][0]
    try:
        inspect.signature(axes_fn).bind(**knobs)
    except TypeError:
        valid = ", ".join(inspect.signature(axes_fn).parameters)
        raise ValueError(f"task {task!r} takes the knobs {valid}; got {sorted(knobs)}") from None
    return axes_fn(**knobs)


def _every(task, split, knobs):
    """All (question, answer, worked) of one split, in a fixed order (enumerates the whole space)."""
    render = TASKS[task][1]
    for params in itertools.product(*_axes(task, knobs)):
        item = render(*params)
        if item is not None and _split(task, params, item[0]) == split:
            yield item


def question_count(task, split, **knobs):
    """How many distinct questions `task` has in `split` (enumerates: about 1 s for `word`)."""
    _check_task(task, split)
    return sum(1 for _ in _every(task, split, knobs))


def _sample(task, n, rng, split, knobs, exclude=()):
    """n distinct (question, answer, worked) of one split, none of them in `exclude`."""
    axes, render = _axes(task, knobs), TASKS[task][1]
    seen, out = set(exclude), []
    # Rejection sampling: uniform over the allowed parameter tuples, fast while the split has room.
    # The budget is ~8x the expected number of draws (about 2.6 per problem for `word`), and never
    # more than a few passes over the whole space, where listing it all is cheaper.
    space = math.prod(len(axis) for axis in axes)
    for _ in range(min(20 * n + 200, 3 * space) if n <= space else 0):
        if len(out) == n:
            break
        params = [rng.choice(axis) for axis in axes]
        item = render(*params)
        if item is None or item[0] in seen or _split(task, params, item[0]) != split:
            continue
        seen.add(item[0])
        out.append(item)
    if len(out) < n:  # the split is nearly used up: finish from the full list, which is exact
        rest = [item for item in _every(task, split, knobs) if item[0] not in seen]
        if len(out) + len(rest) < n:
            raise ValueError(f"task {task!r} has only {len(out) + len(rest)} distinct questions "
                             f"in the {split!r} split (with these knobs); asked for {n}")
        out += rng.sample(rest, n - len(out))
    return out


def make_problems(task, n, *, seed=0, split="train", **knobs):
    """n distinct problems of `task` from `split`, the same for the same arguments in any process.

    knobs: the family's difficulty knobs, e.g. make_problems("add2", 10, lo=100, hi=999).
    """
    _check_task(task, split)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    rng = random.Random(stable_seed("problems", task, split, seed))
    return [Problem(q, a, task) for q, a, _ in _sample(task, n, rng, split, knobs)]


# -----------------------------------------------------------------------------
# The prompt

def messages(problem, *, shots=2, system=SYSTEM):
    """The chat for one problem: `shots` solved train problems of its family, then the question.

    Each user turn is the question plus INSTRUCTION; each worked answer is one line of working
    and then answer_line(). The examples come from the train split with default knobs (train facts,
    for the families in FACT_KEYS), never include the problem itself, and depend only on
    (problem, shots).
    system: the system message the chat starts with; None (or '') leaves the chat template to add
    its default one (SmolLM2's makes the prompt 11 tokens longer than SYSTEM does).
    """
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 0:
        raise ValueError(f"shots must be a non-negative integer, got {shots!r}")
    # choice: problems of no known family (GSM8K files, hand-made) get `word` examples, which
    # are word problems too and teach the answer format
    task = problem.task if problem.task in TASKS else "word"
    # choice: the examples are drawn from the question alone (the trailing 0 is the seed every
    # earlier run used, so prompts made before this rule are unchanged)
    rng = random.Random(stable_seed("shots", task, problem.question, 0))
    chat = [{"role": "system", "content": system}] if system else []
    for question, answer, worked in _sample(task, shots, rng, "train", {}, exclude={problem.question}):
        chat.append({"role": "user", "content": f"{question} {INSTRUCTION}"})
        reply = worked if task in SET_TASKS else f"{worked}\n{answer_line(answer)}"  # a set task's example picks its own number
        chat.append({"role": "assistant", "content": reply})
    chat.append({"role": "user", "content": f"{problem.question} {INSTRUCTION}"})
    return chat


def prompt_ids(tokenizer, problem, *, shots=2, system=SYSTEM):
    """The token ids of a problem's prompt: messages() through the chat template.

    The one renderer of a task prompt: training, evaluation and sample.py all call it, so a problem
    is asked exactly the same way everywhere.
    """
    return tokenizer.encode_chat(messages(problem, shots=shots, system=system))


# -----------------------------------------------------------------------------
# Answer extraction and reward

# A number: optional minus, ASCII digits with optional thousands commas, optional decimals.
# A '-' is a minus sign only when glued to the digits and not preceded by a letter, digit or
# closing bracket: "-12" and "x = -12" are -12, but "5-3" is 5 then 3 (a subtraction).
_NUMBER = re.compile(r"(?:(?<![\w)\]])(?P<sign>[-\u2212]))?"
                     r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.(?P<frac>[0-9]+))?")
# An answer line: "Answer: 8", "answer : 8.", "**Answer:** 8", "> Final answer: $8$", ...
_ANSWER_LINE = re.compile(r"^[ \t>#*_]*(?:final[ \t]+)?answer[ \t*_]*[:\uff1a](?P<rest>.*)$",
                          re.IGNORECASE | re.MULTILINE)


def _value(match):
    """The integer a _NUMBER match stands for, or None ("8.5", or too many digits for int())."""
    if match["frac"] and match["frac"].strip("0"):
        return None  # choice: "8.5" is not an integer answer; "8.0" and "8.00" are 8
    try:
        value = int(match["int"].replace(",", ""))
    except ValueError:  # more digits than sys.get_int_max_str_digits() allows
        return None
    return -value if match["sign"] else value


def extract_answer(text):
    """The integer answer in a model's reply, or None. The one extractor for training and evaluation.

    1. If some line has the form "Answer: ...", holding a number, the last such line decides,
       and its LAST number is the answer ("Answer: 3 + 5 = 8" -> 8). The line may be decorated:
       any case, "Final answer", spaces, '#', '>', '*' or '_' around the word "Answer", '$' or
       '**' around the number, a trailing period.
    2. Otherwise the last number anywhere in the text.
    Numbers: ASCII digits; "1,234" -> 1234 (commas only in groups of three); "-12" -> -12, but a
    '-' right after a letter, digit or ')' is subtraction ("5-3" -> 3). "8.0" -> 8, while a
    number with a non-zero fraction ("8.5") makes the answer None: the reply's answer is not an
    integer (no fall back to an earlier number). None when there is no number. Never raises on
    any string.
    """
    for line in reversed(_ANSWER_LINE.findall(text)):
        numbers = list(_NUMBER.finditer(line))
        if numbers:
            return _value(numbers[-1])
    last = None
    for last in _NUMBER.finditer(text):
        pass
    return None if last is None else _value(last)


def has_answer_line(text):
    """Whether the reply has an "Answer: ..." line holding a number: the format the prompt asks for.

    The extractor's own patterns, so "has an answer line" means what extract_answer() reads first.
    """
    return any(_NUMBER.search(rest) for rest in _ANSWER_LINE.findall(text))


def reward(text, problem):
    """1.0 if the reply's extracted answer equals the problem's answer, else 0.0 (one answer alone)."""
    if problem.task in SET_TASKS:
        raise ValueError(f"task {problem.task!r} scores a group of answers together: use group_reward")
    return 1.0 if extract_answer(text) == problem.answer else 0.0


def set_choice(text, problem):
    """A `distinct` reply's number if it is valid, else None: its last "Answer: N" line holds a whole
    number N in 1..K (K = problem.answer). No answer line, a number out of range or not whole: None."""
    for line in reversed(_ANSWER_LINE.findall(text)):
        numbers = list(_NUMBER.finditer(line))
        if numbers:
            value = _value(numbers[-1])
            return value if value is not None and 1 <= value <= problem.answer else None
    return None


def group_reward(texts, problem, finished=None, credit="answer"):
    """The rewards of one prompt's group of answers, in order. The one reward of training and evaluation.

    Answer-by-answer families: reward() of each text. `distinct`: by default 1.0 for an answer whose
    set_choice is not None and appears once in the group, else 0.0 (an invalid answer takes no
    number from its siblings); credit="team" or "difference" credits the set's outcome to its
    rows instead (metrics.set_credit). finished: per text, whether it ended with an end token; a
    set-level family scores an answer cut at max_new_tokens 0. # choice: answer-by-answer families
    ignore it and score a cut answer by its text, as every committed study did.
    """
    if problem.task not in SET_TASKS:
        if credit != "answer":
            raise ValueError(f"credit {credit!r} pays a set for its outcome: task {problem.task!r} scores answer by answer")
        return [reward(t, problem) for t in texts]
    finished = [True] * len(texts) if finished is None else finished
    choices = [set_choice(t, problem) if done else None for t, done in zip(texts, finished, strict=True)]
    return set_credit(choices, credit)


# -----------------------------------------------------------------------------
# GSM8K-style files

def _parse_record(line, where):
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object with 'question' and 'answer'")
    for key in ("question", "answer"):
        if not isinstance(record.get(key), str):
            raise ValueError(f"{where}: missing or non-string key {key!r}")
    gold = re.search(r"####\s*(\S+)\s*$", record["answer"])
    number = gold and _NUMBER.fullmatch(gold[1].rstrip("."))
    value = number and _value(number)
    if value is None:  # no "#### N", N not a number, or N not an integer
        raise ValueError(f"{where}: the answer must end with '#### N', N an integer")
    return Problem(record["question"], value, DATA_TASK)


DATA_TASK = "gsm8k"  # the task name of the problems load_jsonl reads (scored per answer, `word` examples)


def load_jsonl(path):
    """Problems from a GSM8K-style JSONL file: one {"question", "answer": "... #### N"} per line.

    Blank lines are skipped; a malformed record is a ValueError naming the file and the line.
    """
    with open(path, encoding="utf-8") as f:
        return [_parse_record(line, f"{path}, line {i}") for i, line in enumerate(f, 1) if line.strip()]


def file_problems(path, n=None):
    """The first n problems (all with None) of a load_jsonl file: what --data gives the training
    scripts and evaluate.py. A file that is missing, unreadable or empty is a one-line ValueError."""
    try:
        problems = load_jsonl(path)
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as e:
        raise ValueError(f"--data {path}: cannot be read as a JSONL file ({e.__class__.__name__})") from None
    if not problems:
        raise ValueError(f"--data {path}: no problems in it")
    return problems[:n]


# -----------------------------------------------------------------------------
# CLI: show exactly what the model is asked

def main(argv=None):
    from cli import Parser
    parser = Parser(prog="tasks.py", description="Print generated problems with their chat messages and answers.")
    parser.add_argument("--task", default="word", help=f"task family: {', '.join(TASKS)} (default word)")
    parser.add_argument("--n", type=int, default=5, help="how many problems (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the problems (default 0)")
    parser.add_argument("--split", default="train", help="train or test (default train)")
    parser.add_argument("--shots", type=int, default=2,
                        help="worked examples before each question (default 2)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be >= 1, got {args.n}")
    try:
        problems = make_problems(args.task, args.n, seed=args.seed, split=args.split)
        chats = [messages(p, shots=args.shots) for p in problems]
    except ValueError as e:
        parser.error(str(e))
    for i, (problem, chat) in enumerate(zip(problems, chats), 1):
        print(f"=== problem {i}/{len(problems)} (task {args.task}, split {args.split}, seed {args.seed})")
        for turn in chat:
            print(f"{turn['role']}: {turn['content']}")  # verbatim, newlines included
        print(f"--> answer: {problem.answer}\n")


if __name__ == "__main__":
    main()
