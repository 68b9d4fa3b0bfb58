"""The generated problem families: exact integer answers, made offline from their parameters.

Each family in TASKS is a pair: `axes(**difficulty)` gives the choices of each parameter (the
keyword arguments, e.g. lo and hi, are the family's difficulty), and `render(*params)` gives
(question, answer, worked line), or None when the parameters are not allowed. tasks.py splits,
draws and asks them. How often the default model, SmolLM2-135M-Instruct, gets each right with two
worked examples: docs/tasks.md, "Choosing the default task".

    word  "Tom has 3 apples. Tom buys 5 more apples. How many apples does Tom have now?"  (good RL target)
    add2  "What is 47 + 38?"                                                          (good RL target)
    abc   "What is 12 + 7 - 5?"                                                       (harder stretch)
    add1  "What is 7 + 1?"   mul1  "What is 6 * 7?"                                   (easy controls)

Two families with headroom, whose test split holds out the arithmetic itself (FACT_KEYS; surveyed
with experiments/studies/survey_tasks.py --configs headroom):

    word2 "Tom has 23 apples. Tom buys 14 more apples and then gives away 9 apples. How many apples
          does Tom have now?"                       (two steps; lo=1, hi=30: the numbers lo..hi)
    mul2  "What is 12 * 7?"   (two digits times one digit, 2..9; lo=10, hi=99: the two-digit factor)

The set-level family `distinct` ("name an animal, then pick a number from 1 to 9 that no other
answer picks") has no right answer: its reward depends on the whole group (SET_TASKS).
A choice the paper does not make: answers are never negative in the generated families.
"""
import hashlib


def stable_seed(*parts):
    """A 64-bit seed from any parts (ints, strings), the same in every process and on every machine.

    The one seed derivation of the project: the split, the problems, the worked examples, and every
    torch.Generator of training and evaluation (torch takes seeds up to 2**64 - 1).
    """
    # note: never Python's hash() of a str, which is salted per process
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def answer_line(answer):
    """The final line the worked examples end with, and the model is asked to end with."""
    return f"Answer: {answer}"


# -----------------------------------------------------------------------------
# Word problems: `word` (one step) and `word2` (two steps)

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


# -----------------------------------------------------------------------------
# Arithmetic: `add2`, `add1`, `mul1`, `mul2`, `abc`

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


# -----------------------------------------------------------------------------
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


# -----------------------------------------------------------------------------
# The catalogue

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
# a tuple of ints. The other families are split by their question text (tasks.split_of).
FACT_KEYS = {"word2": _word2_fact, "mul2": _mul2_fact}
