"""The evaluation metrics: exact, per problem, in pure Python (no torch, no numpy).

Every metric is a function of the counts of ONE problem: n answers sampled, c of them correct, a
subset size k, a threshold tau (maj_at_k reads the n extracted answers instead). evaluate.py
scores each problem's answers, keeps the counts in its JSON, and turns them into a table with
summarize(): the metric per problem, then the mean over problems with a standard error (mean_se).
experiments/studies/report.py recomputes the numbers of docs/results.md from the same stored counts with these functions.

    from bridgekit.metrics import g_pass_at_k, summarize
    g_pass_at_k(16, 8, 4, 0.5)                         # 0.7153846153846154
    summarize(per_problem, n=8, ks=[1, 8], taus=["1/2", "1"])   # {metric: {"mean", "se"}}

The definitions (C(a, b) is the binomial coefficient, 0 when b > a):

    mean_accuracy(n, c)        c / n  (= pass@1)
    pass_at_k(n, c, k)         1 - C(n-c, k) / C(n, k)                       (Chen et al. 2021)
    g_pass_at_k(n, c, k, tau)  sum_{j=m}^{min(c,k)} C(c,j) C(n-c,k-j) / C(n,k), m = ceil(tau*k)
                               (G-Pass@k_tau, Liu et al. 2024, arXiv 2412.13147)
    mg_pass_at_k(n, c, k)      (2/k) sum_{i=ceil(k/2)+1}^{k} G-Pass with threshold m = i
    maj_at_k(answers, gold, k) expected majority-vote score of a random k-subset
    all_correct(n, c)          1 if every answer is right

All of them read "a uniformly random k-subset of the n samples". With Bridge the answers of one
width group are exchangeable but dependent (each attended to the others while it was written), so
for k < width a random k-subset is not "a Bridge run at width k": it is k answers of a run at the
larger width. evaluate.py therefore keeps (width, groups, n, k) next to every number, and the
headline set metric is G-Pass@n_tau at width n (one whole Bridge set per problem). The per-problem
value keeps that dependence inside one problem, and problems are independent, so the standard
error over problems needs no correction for it.

Where this file departs from the reference implementations (the human-eval pass@k of Chen et al.
and the GPassK code of Liu et al.), on purpose:
1. k > n raises ValueError: the human-eval pass@k silently returns 1.0 for k > n (its shortcut
   "fewer than k wrong answers" always holds), the GPassK reference returns 0.0.
2. tau must lie in (0, 1]; GPassK also accepts tau = 0 (its max(ceil(tau*k), 1) then gives
   pass@k). Use pass_at_k for that.
3. ceil(tau * k) is computed on rationals, never floats: 0.28 * 25 = 7.000000000000001 in
   floating point would give a threshold of 8 instead of 7.
Every count is summed exactly with Python integers; the one division at the end is an int / int
true division, which Python rounds correctly, so results are exact to the last float bit.
"""
import math
import numbers
import statistics
from collections import Counter
from fractions import Fraction


def _integer(x, name):
    # bool is an int subclass, but True samples is a bug, not a count
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {x!r}")
    return int(x)


def _check(n, c, k=None):
    """Validate the counts of one problem and return them as plain ints."""
    n, c = _integer(n, "n"), _integer(c, "c")
    if n < 1:
        raise ValueError(f"n (the number of samples) must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c (the number correct) must be in [0, n={n}], got {c}")
    if k is None:
        return n, c
    k = _integer(k, "k")
    if not 1 <= k <= n:
        # Raise where the references answer silently (human-eval pass@k 1.0, GPassK 0.0):
        # a k-subset of fewer than k answers does not exist, so any number would be made up
        raise ValueError(f"k must be in [1, n={n}], got {k}")
    return n, c, k


def mean_accuracy(n, c):
    """Fraction of the n answers that are right; equals pass_at_k(n, c, 1)."""
    n, c = _check(n, c)
    return c / n


def all_correct(n, c):
    """1.0 if all n answers are right, else 0.0 (averaged: the share of problems solved by every sample)."""
    n, c = _check(n, c)
    return 1.0 if c == n else 0.0


def pass_at_k(n, c, k):
    """Unbiased pass@k: the probability that a random k-subset of the n samples holds >= 1 right answer."""
    n, c, k = _check(n, c, k)
    # math.comb(a, b) is 0 when b > a: fewer than k wrong answers means every subset passes.
    # note: one int / int division, so pass_at_k(10, 3, 1) is 0.3 and not 1.0 - 0.7 = 0.30000000000000004
    total = math.comb(n, k)
    return (total - math.comb(n - c, k)) / total


def threshold(tau, k):
    """The number of right answers G-Pass@k_tau asks for: m = max(ceil(tau * k), 1), computed exactly.

    tau may be a Fraction, an int, a str ("0.28", "7/25", read exactly) or a float. A float is
    read as the nearest fraction with denominator <= 10**6, Fraction(tau).limit_denominator(10**6),
    so 0.28 means 7/25 (not the double 0.28000000000000002665) and 1/11 means 1/11:
    threshold(0.28, 25) == 7 and threshold(1/11, 11) == 1. A float that is no such fraction
    (0.123456789) moves by less than 1e-12, which changes ceil(tau*k) only if tau*k sits that
    close to an integer.
    tau outside (0, 1] is a ValueError (the GPassK reference allows tau = 0; we do not).
    """
    k = _integer(k, "k")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    tau = _rational(tau)
    if not 0 < tau <= 1:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    # paper (GPassK): max(ceil(tau*k), 1); the max only matters for tau = 0, which we refuse
    return max(math.ceil(tau * k), 1)


def _rational(tau):
    if isinstance(tau, bool):
        raise ValueError(f"tau must be a number in (0, 1], got {tau!r}")
    if isinstance(tau, Fraction):
        return tau
    try:
        if isinstance(tau, str):
            return Fraction(tau)
        # limit_denominator, not Fraction(str(tau)): str(1/11) = "0.09090909090909091" is
        # a little above 1/11, so the decimal route would ask for 2 right answers out of 11
        return Fraction(tau).limit_denominator(10**6)
    except (ValueError, ZeroDivisionError, TypeError, OverflowError):  # nan, inf, "abc", None
        raise ValueError(f"tau must be a number in (0, 1], got {tau!r}") from None


def _at_least(n, c, k, m):
    """Number of k-subsets of n samples (c right) holding at least m right answers (an exact int)."""
    return sum(math.comb(c, j) * math.comb(n - c, k - j) for j in range(m, min(c, k) + 1))


def g_pass_at_k(n, c, k, tau):
    """G-Pass@k_tau: the probability that a random k-subset holds at least ceil(tau*k) right answers.

    The hypergeometric survival function. tau -> small gives pass@k, tau = 1 gives C(c,k)/C(n,k).
    See threshold() for how tau is read and which values are refused.
    """
    n, c, k = _check(n, c, k)
    return _at_least(n, c, k, threshold(tau, k)) / math.comb(n, k)


def mg_pass_at_k(n, c, k):
    """mG-Pass@k = (2/k) * sum_{i=ceil(k/2)+1}^{k} G-Pass@k with threshold i.

    paper (GPassK): a Riemann sum of 2 * integral_{0.5}^{1} G-Pass@k_tau dtau, with integer
    thresholds i passed directly (no float tau). For k = 1 the sum is empty, so mG-Pass@1 = 0.
    """
    n, c, k = _check(n, c, k)
    hits = sum(_at_least(n, c, k, i) for i in range((k + 1) // 2 + 1, k + 1))  # (k+1)//2 = ceil(k/2)
    return 2 * hits / (k * math.comb(n, k))


def maj_at_k(answers, gold, k):
    """maj@k: the expected score of a majority vote over a uniformly random k-subset of the answers.

    answers: the n extracted answers of one problem (None = no answer could be extracted).
    Rules (each a choice: maj@k is also met as a vote over the first k answers, over bootstrap
    subsets, or with a fixed tie-break; these rules make it exact and free of the answers' order):
    - the expectation is exact, over all C(n, k) subsets (not the first k, not a bootstrap);
    - missing answers do not vote; a subset whose answers are all missing scores 0;
    - ties split the credit: 1/t if gold is one of the t most frequent answers (the
      expectation over a random tie-break), else 0.
    Computed from the answer counts, never by listing subsets: for every number x of gold
    votes, a dynamic program over the other answers counts the ways to pick their votes
    (each at most x) by (votes used, answers tied with gold).
    """
    n = len(answers)
    if n < 1:
        raise ValueError("answers must hold at least one answer")
    k = _integer(k, "k")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, n={n}], got {k}")
    gold = _integer(gold, "gold")
    counts = Counter(a for a in answers if a is not None)
    g = counts.pop(gold, 0)
    missing = n - g - sum(counts.values())
    total = Fraction(0)
    for x in range(1, min(g, k) + 1):  # x gold votes in the subset
        ways = _other_votes(list(counts.values()), x, k - x)
        for (used, tied), w in ways.items():
            total += Fraction(math.comb(g, x) * w * math.comb(missing, k - x - used), 1 + tied)
    return float(total / math.comb(n, k))


def _other_votes(others, x, room):
    """{(votes used, answers with exactly x votes): ways} over the non-gold answers, each at most x votes."""
    ways = {(0, 0): 1}
    for count in others:
        step = {}
        for (used, tied), w in ways.items():
            for y in range(min(count, x, room - used) + 1):
                key = (used + y, tied + (y == x))
                step[key] = step.get(key, 0) + w * math.comb(count, y)
        ways = step
    return ways

# -----------------------------------------------------------------------------
# one width: per-problem records -> summary over problems


def mean_se(values):
    """{"mean", "se"} of per-problem values; se is None for a single problem."""
    # choice: the standard error over problems, sample std (ddof 1) / sqrt(#problems). Problems are
    # independent (Bridge never mixes rows of different prompts); the dependence between the
    # answers of one width group stays inside one problem's value, so this needs no correction
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "se": se}


def summarize(per_problem, n, ks, taus):
    """{metric: {"mean", "se"}} over problems, from one width's stored per-problem records.

    Each record: gold (the answer), correct (how many of the n answers are right), answers (the n
    extracted answers, None = none), lengths (n token counts), truncated and answer_line (counts).
    """
    for p in per_problem:
        if len(p["answers"]) != n or len(p["lengths"]) != n:
            raise ValueError(f"a per-problem record holds {len(p['answers'])} answers, expected n={n}")
    c = [p["correct"] for p in per_problem]
    rows = {"accuracy": [mean_accuracy(n, x) for x in c]}
    rows.update({f"pass@{k}": [pass_at_k(n, x, k) for x in c] for k in ks})
    rows.update({f"maj@{k}": [maj_at_k(p["answers"], p["gold"], k) for p in per_problem] for k in ks})
    # choice: G-Pass with k = n, all n answers of a problem (at width n: one whole Bridge set)
    rows.update({f"G-Pass@{n}_{_rational(tau)}": [g_pass_at_k(n, x, n, tau) for x in c] for tau in taus})
    rows[f"mG-Pass@{n}"] = [mg_pass_at_k(n, x, n) for x in c]
    rows["all_correct"] = [all_correct(n, x) for x in c]
    rows["answer_line"] = [p["answer_line"] / n for p in per_problem]
    rows["length"] = [statistics.fmean(p["lengths"]) for p in per_problem]
    rows["truncated"] = [p["truncated"] / n for p in per_problem]
    return {name: mean_se(values) for name, values in rows.items()}


# -----------------------------------------------------------------------------
# the set-level task (`distinct` in tasks.py): scores of a whole group, and the independent ceiling

def distinct_scores(choices):
    """Per answer of one group: 1 if its choice is valid (not None) and no sibling made the same one."""
    counts = Counter(c for c in choices if c is not None)
    return [int(c is not None and counts[c] == 1) for c in choices]


CREDITS = ("answer", "team", "difference")


def set_credit(choices, credit="answer"):
    """The training reward of each answer of one `distinct` set, by how the set's outcome is credited.

    U = sum(distinct_scores(choices)), the number of answers that are valid and unique in the set.
    - "answer": the answer's own score (distinct_scores): 1 if valid and no sibling took its number.
    - "team": U / W to every row: each answer is paid the set's per-answer score.
    - "difference": U - U(the set without this answer): what the set loses without it. 1 for a
      unique valid answer, -1 for one of exactly two equal answers (without it the other one
      scores), 0 for an invalid answer or one of three or more equal ones.
    # choice: team and difference credit, besides the per-answer score, are the two standard ways
    to pay each member of a cooperative set for the set's outcome (a shared reward; Wolpert and
    Tumer's difference reward); train_grpo.py --credit picks one, the same for every arm.
    """
    if credit not in CREDITS:
        raise ValueError(f"credit must be one of {', '.join(CREDITS)}, got {credit!r}")
    own = distinct_scores(choices)
    if credit == "answer":
        return [float(s) for s in own]
    U = sum(own)
    if credit == "team":
        return [U / len(choices)] * len(choices)
    return [float(U - sum(distinct_scores(choices[:i] + choices[i + 1:]))) for i in range(len(choices))]


def independent_ceiling(K, W):
    """(per-answer score, all-distinct share): the most that answers drawn INDEPENDENTLY from one
    distribution can expect on a K-value `distinct` task in groups of W. Exact Fractions.

    Independent answers: the base model, RLVR only, P-Match, and Bridge weights at width 1 (every
    answer to a prompt has the same distribution: same prompt, no row index).
    - Per answer: an answer that picks value v (probability p_v) scores if none of the other W-1
      picks v: the expected score is sum_v p_v (1 - p_v)^(W-1), the rest of the probability being
      invalid answers (which score 0 and take nothing from the siblings). For K >= W the most is
      (1 - 1/K)^(W-1), at the uniform distribution. For K < W it is K/W (1 - 1/W)^(W-1), at 1/W on
      every value and the rest invalid: there, answering wrongly on purpose pays. Both are
      K q (1 - q)^(W-1) with q = 1/max(K, W); tests/scripts/test_08_metrics.py checks that no distribution
      beats it, by brute force over every group.
    - All distinct (every answer valid and no two equal): W! e_W(p), with e_W the elementary
      symmetric polynomial, at most C(K, W) W! / K^W = K! / ((K-W)! K^W) by Maclaurin's
      inequality (uniform attains it); 0 for K < W.
    """
    _integer(K, "K")
    _integer(W, "W")
    if K < 1 or W < 1:
        raise ValueError(f"K and W must be >= 1, got K={K}, W={W}")
    q = Fraction(1, max(K, W))
    per_answer = K * q * (1 - q) ** (W - 1)
    all_distinct = Fraction(math.perm(K, W), K ** W)  # math.perm is 0 when W > K
    return per_answer, all_distinct


def set_summary(per_problem, n, size):
    """{"set_score", "all_distinct", "valid"}: {"mean", "se"} over problems, with the n answers of each
    problem (its record's "choices", None = invalid) scored in consecutive groups of `size`.

    At a Bridge width W the n answers ARE n/W groups of W; at width 1 the same call pools n
    independent answers into pseudo-groups of `size` (what the independent ceiling is about).
    """
    _integer(size, "size")
    if size < 1 or n % size:
        raise ValueError(f"groups of {size} do not divide n={n}")
    rows = {"set_score": [], "all_distinct": [], "valid": []}
    for p in per_problem:
        choices = p["choices"]
        if len(choices) != n:
            raise ValueError(f"a per-problem record holds {len(choices)} choices, expected n={n}")
        groups = [choices[i:i + size] for i in range(0, n, size)]
        scores = [s for g in groups for s in distinct_scores(g)]
        rows["set_score"].append(sum(scores) / n)
        rows["all_distinct"].append(sum(all(distinct_scores(g)) for g in groups) / len(groups))
        rows["valid"].append(sum(c is not None for c in choices) / n)
    return {name: mean_se(values) for name, values in rows.items()}


def collisions(choices, size):
    """Pair counts of one problem's answers in consecutive groups of `size`: ((equal, pairs) within
    a group, (equal, pairs) across groups), over the pairs of two VALID answers (None is left out).

    Answers that coordinate collide less often with their own siblings than with answers of other
    groups of the same question; independent answers collide equally often either way. Pool the
    counts over problems before dividing (collision_rate).
    """
    _integer(size, "size")
    if size < 1 or len(choices) % size:
        raise ValueError(f"groups of {size} do not divide {len(choices)} answers")
    within, across = [0, 0], [0, 0]
    for i in range(len(choices)):
        for j in range(i + 1, len(choices)):
            if choices[i] is None or choices[j] is None:
                continue
            counts = within if i // size == j // size else across
            counts[0] += choices[i] == choices[j]
            counts[1] += 1
    return tuple(within), tuple(across)


def collision_rate(per_problem, size):
    """(within, across): the pooled share of equal valid pairs over a results entry's problems
    (None where there is no such pair): equal numbers for `distinct` ("choices"), equal extracted
    answers (agreement) for the answer-by-answer tasks."""
    totals = [[0, 0], [0, 0]]
    for p in per_problem:
        for t, c in zip(totals, collisions(p["choices"] if "choices" in p else p["answers"], size)):
            t[0] += c[0]
            t[1] += c[1]
    return tuple(e / n if n else None for e, n in totals)


def answer_scores(record, size):
    """Per answer of one problem's stored record, its score: a `distinct` answer's within its set of
    `size` (records with "choices"), else 1 if the extracted answer is the gold one."""
    if "choices" in record:
        c = record["choices"]
        return [s for i in range(0, len(c), size) for s in distinct_scores(c[i:i + size])]
    return [int(a is not None and a == record["gold"]) for a in record["answers"]]


def paired_set_difference(per_problem_a, per_problem_b, size, groups=None):
    """{"mean", "se"} over problems of the mean per-answer score difference, set g of a minus set g
    of b, for results sampled with the same random numbers per row (evaluate.py --paths): the
    per-answer score in its set for `distinct`, accuracy for the answer-by-answer tasks.

    groups: which of a's sets to pair (default all); b holds exactly those sets, in order (the
    crossed path keeps only the even-numbered sets of its run).
    """
    _integer(size, "size")
    rows = []
    for pa, pb in zip(per_problem_a, per_problem_b, strict=True):
        sa, sb = answer_scores(pa, size), answer_scores(pb, size)
        a = [sa[i:i + size] for i in range(0, len(sa), size)]
        b = [sb[i:i + size] for i in range(0, len(sb), size)]
        a = a if groups is None else [a[g] for g in groups]
        if len(a) != len(b):
            raise ValueError(f"{len(a)} sets cannot be paired with {len(b)}")
        rows.append(sum(sum(x) - sum(y) for x, y in zip(a, b)) / (len(a) * size))
    return mean_se(rows)


def agreement(values, size):
    """Share of the consecutive groups of `size` in `values` (one problem's n answers, in the order
    they were sampled) whose members are all equal; None counts as a value that equals nothing.

    With the extracted numbers it is the share of groups that agree on one answer; with the texts,
    the share that are word for word the same. At a Bridge width W the groups are its own groups of
    W; at width 1 the same call pools independent answers into pseudo-groups of `size`.
    """
    _integer(size, "size")
    if size < 1 or len(values) % size:
        raise ValueError(f"groups of {size} do not divide {len(values)} answers")
    groups = [values[i:i + size] for i in range(0, len(values), size)]
    return sum(g[0] is not None and all(v == g[0] for v in g) for g in groups) / len(groups)
