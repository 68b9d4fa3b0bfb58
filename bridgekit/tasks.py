"""Verifiable tasks: the splits, the problems, the one prompt, the one answer extractor, the one reward.

The paper trains and evaluates on math benchmarks. Here every problem is generated offline from a
seed by a family of families.py (word, add2, abc, add1, mul1, word2, mul2, distinct), so training
and evaluation need no download; GSM8K-style data (JSONL, `answer` ending in `#### N`) loads with
load_jsonl(). Training, evaluation and sample.py share ONE prompt (prompt_ids), ONE extractor
(extract_answer) and ONE reward (group_reward: reward() of each answer, or the group's for a
set-level family).

    $ python -m bridgekit.tasks --task word --n 5 --seed 0 --split train --shots 2

Decisions the paper does not make (each marked `# choice:` where the code makes it):
1. Split: a question is a test question iff a blake2b hash of its text is odd. The split is a
   function of the text alone, so train and test never share a question, in any process, for any
   seed or difficulty. About half of every family is test. The families in FACT_KEYS hash their
   arithmetic fact instead of the text, so train and test never share a fact either: with small
   numbers (`word` up to 9 has 126 facts) every held-out question of a text-split family reuses
   a fact the training pool holds, only worded differently.
2. The default model needs worked examples (zero-shot it rarely writes the asked-for answer line),
   so messages() puts `shots` solved train problems of the same family before the question. They
   depend on the question alone, never on a run's seed: a problem is asked the same way in
   training, in evaluation and in sample.py.
"""
import inspect
import itertools
import json
import math
import random
import re
from dataclasses import dataclass

# the families, and the project's one seed derivation (stable_seed), which their wording uses too
from bridgekit.families import FACT_KEYS, SET_TASKS, TASKS, answer_line, stable_seed
from bridgekit.metrics import set_credit

SPLITS = ("train", "test")
INSTRUCTION = "End with a final line of the form 'Answer: N', where N is the number."
SYSTEM = "You solve math problems."  # a one-line system message (see messages(system=...))
# choice: the default task is `word` with numbers up to 9: GRPO learns only from a group whose
# answers get different rewards, and at the default model's accuracy this task gives the most
# such groups (docs/tasks.md). Training, evaluation and sample.py all start from it.
DEFAULT_TASK = "word"
DEFAULT_DIFFICULTY = {"word": {"hi": 9}}


@dataclass(frozen=True)
class Problem:
    """One problem: the question as asked, its exact integer answer, the family that made it."""
    question: str
    answer: int
    task: str = ""  # the family that made it ("gsm8k" for load_jsonl, "" when built by hand)


# -----------------------------------------------------------------------------
# Drawing distinct problems from one split

def split_of(question):
    """'test' or 'train' for a question text, the same in every process."""
    # A cryptographic hash, not zlib.crc32: CRC bits are linear in the input bits, so a
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


def _axes(task, difficulty):
    axes_fn = TASKS[task][0]
    try:
        inspect.signature(axes_fn).bind(**difficulty)
    except TypeError:
        valid = ", ".join(inspect.signature(axes_fn).parameters)
        raise ValueError(f"task {task!r} takes the difficulty settings {valid}; got {sorted(difficulty)}") from None
    return axes_fn(**difficulty)


def _every(task, split, difficulty):
    """All (question, answer, worked) of one split, in a fixed order (enumerates the whole space)."""
    render = TASKS[task][1]
    for params in itertools.product(*_axes(task, difficulty)):
        item = render(*params)
        if item is not None and _split(task, params, item[0]) == split:
            yield item


def question_count(task, split, **difficulty):
    """How many distinct questions `task` has in `split` (enumerates: about 1 s for `word`)."""
    _check_task(task, split)
    return sum(1 for _ in _every(task, split, difficulty))


def _sample(task, n, rng, split, difficulty, exclude=()):
    """n distinct (question, answer, worked) of one split, none of them in `exclude`."""
    axes, render = _axes(task, difficulty), TASKS[task][1]
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
        rest = [item for item in _every(task, split, difficulty) if item[0] not in seen]
        if len(out) + len(rest) < n:
            raise ValueError(f"task {task!r} has only {len(out) + len(rest)} distinct questions "
                             f"in the {split!r} split (at this difficulty); asked for {n}")
        out += rng.sample(rest, n - len(out))
    return out


def make_problems(task, n, *, seed=0, split="train", **difficulty):
    """n distinct problems of `task` from `split`, the same for the same arguments in any process.

    difficulty: the keyword arguments of the family's axes, e.g. make_problems("add2", 10, lo=100, hi=999).
    """
    _check_task(task, split)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    rng = random.Random(stable_seed("problems", task, split, seed))
    return [Problem(q, a, task) for q, a, _ in _sample(task, n, rng, split, difficulty)]


# -----------------------------------------------------------------------------
# The prompt

# The most worked examples a prompt takes: 64 are ~70 tokens each, ~5,000 in all, most of the default
# model's 8,192-token context (more could never fit, and building them takes long before that shows)
MAX_SHOTS = 64


def check_shots(shots):
    """A ValueError (one line) unless `shots` is an integer in [0, MAX_SHOTS]."""
    if isinstance(shots, bool) or not isinstance(shots, int) or not 0 <= shots <= MAX_SHOTS:
        raise ValueError(f"shots must be an integer in [0, {MAX_SHOTS}], got {shots!r}")


def messages(problem, *, shots=2, system=SYSTEM):
    """The chat for one problem: `shots` solved train problems of its family, then the question.

    Each user turn is the question plus INSTRUCTION; each worked answer is one line of working
    and then answer_line(). The examples come from the train split at the family's default
    difficulty (train facts, for the families in FACT_KEYS), never include the problem itself, and
    depend only on (problem, shots).
    system: the system message the chat starts with; None (or '') leaves the chat template to add
    its default one (SmolLM2's makes the prompt 11 tokens longer than SYSTEM does).
    """
    check_shots(shots)
    # choice: problems of no known family (GSM8K files, hand-made) get `word` examples, which
    # are word problems too and teach the answer format
    task = problem.task if problem.task in TASKS else "word"
    # choice: the examples are drawn from the question alone, with a fixed seed (the trailing 0),
    # never a run's: a problem is asked the same way by every command and every run
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
    ignore it and score a cut answer by its text: an answer line written before the cut counts.
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
    if not record["question"].strip():
        raise ValueError(f"{where}: the question is empty")
    gold = re.search(r"####\s*(\S+)\s*$", record["answer"])
    number = gold and _NUMBER.fullmatch(gold[1].rstrip("."))
    value = number and _value(number)
    if value is None:  # no "#### N", N not a number, or N not an integer
        raise ValueError(f"{where}: the answer must end with '#### N', N an integer")
    return Problem(record["question"], value, DATA_TASK)


DATA_TASK = "gsm8k"  # the task name of the problems load_jsonl reads (scored per answer, `word` examples)


def load_jsonl(path):
    """Problems from a GSM8K-style JSONL file: one {"question", "answer": "... #### N"} per line.

    Blank lines are skipped; a malformed record, or a question asked twice (an evaluation would count
    it twice), is a ValueError naming the file and the line.
    """
    problems, lines = [], {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                problems.append(_parse_record(line, f"{path}, line {i}"))
                if (first := lines.setdefault(problems[-1].question.strip(), i)) != i:
                    raise ValueError(f"{path}, line {i}: the question of line {first} again")
    return problems


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
    from bridgekit.cli import Parser
    parser = Parser(prog="python -m bridgekit.tasks", description="Print generated problems with their chat messages and answers.")
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
