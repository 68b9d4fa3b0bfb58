"""Evaluate one model setting on held-out problems at several widths, with exact metrics.

    python evaluate.py                                        # default model, 200 test problems, widths 1 2 4 8
    python evaluate.py --bridge bridge.safetensors --out bridge.json
    python evaluate.py --bridge bridge.safetensors --no-bridge --out base.json   # its base model
    python evaluate.py --model runs/full --problems 50 --n 4 --widths 1 4 --out full.json
    python evaluate.py --plot base.json bridge.json --out widths.png             # needs matplotlib

The width sweep: at width w every problem gets n answers, drawn as n/w groups of w interdependent
answers (sample.py), many groups per sample() call. Each answer is scored by tasks.reward, the one
extractor that training uses too. Per problem and width the JSON keeps the number right and the
extracted answers; every reported number is a metric below, computed per problem from those and
averaged over problems by summarize(), with a standard error over problems. The file also records
the protocol (model, checkpoint, task, seeds, sampling settings, commit). Timing sits under its own
key "timing": everything else is the same for the same arguments. The layout:

    {"format", "protocol": {...}, "problems": [{"question", "answer"}], "timing": {...},
     "results": [{"width", "groups", "n", "summary": {metric: {"mean", "se"}},
                  "per_problem": [{"gold", "correct", "answers", "lengths", "truncated", "answer_line"}]}]}

The metrics are pure functions of the counts for ONE problem (n answers sampled, c of them correct,
a subset size k, a threshold tau). Definitions follow anchors.md section 3:

    mean_accuracy(n, c)        c / n  (= pass@1)
    pass_at_k(n, c, k)         1 - C(n-c, k) / C(n, k)                       (Chen et al. 2021)
    g_pass_at_k(n, c, k, tau)  sum_{j=m}^{min(c,k)} C(c,j) C(n-c,k-j) / C(n,k), m = ceil(tau*k)
    mg_pass_at_k(n, c, k)      (2/k) sum_{i=ceil(k/2)+1}^{k} G-Pass with threshold m = i
    maj_at_k(answers, gold, k) expected majority-vote score of a random k-subset
    all_correct(n, c)          1 if every answer is right

All of them read "a uniformly random k-subset of the n samples". With Bridge the samples of one
width group are exchangeable but dependent, so for k < width this is not "a Bridge run at width
k" (anchors.md 3.5): the JSON keeps (width, groups, n, k) next to every number, and the
headline set metric is G-Pass@n_tau at width n (one Bridge set per problem).

Where this file departs from the reference implementations, on purpose:
1. k > n raises ValueError (the human-eval pass@k silently returns 1.0, GPassK returns 0.0).
2. tau must lie in (0, 1]; GPassK also accepts tau = 0 (which gives pass@k). Use pass_at_k.
3. ceil(tau * k) is computed on rationals, never floats: 0.28 * 25 = 7.000000000000001 in
   floating point would give a threshold of 8 instead of 7.
Every count is summed exactly with Python integers; the one division at the end is an int / int
true division, which Python rounds correctly, so results are exact to the last float bit.
"""
import json
import math
import numbers
import statistics
import subprocess
import sys
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import tasks


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
        # choice: raise instead of the reference's silent 1.0 / 0.0 (anchors.md 3.2, 3.3)
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
        # choice: limit_denominator, not Fraction(str(tau)): str(1/11) = "0.09090909090909091" is
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
    Rules (anchors.md 3.4 lists the alternatives; these are the recommended ones):
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
# one width: per-problem records -> summary (pure; the command and the tests both use it)

FORMAT = "bridge-ref-eval/1"  # marks a result file, so --plot can refuse anything else
LABELS = {"accuracy": "mean accuracy", "all_correct": "all correct", "answer_line": "has answer line",
          "length": "answer length (tokens)", "truncated": "truncated"}


def mean_se(values):
    """{"mean", "se"} of per-problem values; se is None for a single problem."""
    # choice: the standard error over problems, sample std (ddof 1) / sqrt(#problems). Problems are
    # independent (Bridge never mixes rows of different prompts); the dependence inside a width
    # group stays inside one problem's value, so this needs no correction for it (anchors.md 3.5)
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


def has_answer_line(text):
    """Whether the reply has an "Answer: ..." line holding a number: the format the prompt asks for."""
    # the extractor's own patterns, so "has an answer line" means what extract_answer() reads
    return any(tasks._NUMBER.search(rest) for rest in tasks._ANSWER_LINE.findall(text))


def score(problem, completions, tokenizer, keep_texts=False):
    """The per-problem record of one width, from the n completions (token ids, EOS included)."""
    texts = [tokenizer.decode(ids) for ids in completions]
    eos = set(tokenizer.eos_ids)
    record = dict(gold=problem.answer, correct=int(sum(tasks.reward(t, problem) for t in texts)),
                  answers=[tasks.extract_answer(t) for t in texts],
                  # choice: an answer's length counts every token it generated, its EOS included
                  lengths=[len(ids) for ids in completions],
                  truncated=sum(ids[-1] not in eos for ids in completions),  # no EOS in max_new_tokens
                  answer_line=sum(has_answer_line(t) for t in texts))
    if keep_texts:
        record["texts"] = texts
    return record

# -----------------------------------------------------------------------------
# the sweep: sampling, progress, protocol


def sample_width(model, tokenizer, prompts, width, args, progress):
    """n completions per prompt, as n/width groups of `width`; about --batch-rows rows per call."""
    import torch
    from sample import sample
    device = model.lm_head.weight.device
    groups = args.n // width
    # choice: a problem's n/width groups are never split across calls, and share one prefill
    per_call = max(1, args.batch_rows // args.n)
    out = [[] for _ in prompts]
    for start in range(0, len(prompts), per_call):
        batch = range(start, min(start + per_call, len(prompts)))
        # choice: every group samples from its own generator, seeded from (--seed, width, problem,
        # group) by the stable hash of tasks.py, so the answers do not depend on --batch-rows
        gens = [torch.Generator(device).manual_seed(tasks._stable_seed("evaluate", args.seed, width, p, g))
                for p in batch for g in range(groups)]
        rollout = sample(model, [prompts[p] for p in batch], tokenizer.eos_ids, width=width,
                         max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                         top_p=args.top_p, generator=gens, groups_per_prompt=groups)
        rows = rollout.completions()  # rows [i*n, (i+1)*n) are the n answers of the batch's problem i
        for i, p in enumerate(batch):
            out[p] += rows[i * args.n:(i + 1) * args.n]
        progress(len(batch) * args.n, f"width {width}")
    return out


def progress_line(total):
    """A function step(rows, what) that prints the answers done and an ETA on stderr."""
    start, done, clock = time.time(), 0, lambda s: f"{int(s) // 60}m{int(s) % 60:02d}s"

    def step(rows, what):
        nonlocal done
        done += rows
        elapsed = time.time() - start
        eta = elapsed * (total - done) / done  # as if every answer cost the same (wide ones cost less)
        end = "\r" if sys.stderr.isatty() and done < total else "\n"
        print(f"{what}: {done}/{total} answers, {clock(elapsed)} elapsed, ETA {clock(eta)}   ",
              end=end, file=sys.stderr, flush=True)
    return step


def git_commit():
    """HEAD of the repository this file is in, with '-dirty' if a tracked file changed; None outside git."""
    here = Path(__file__).resolve().parent
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=here, capture_output=True, text=True,
                                        check=True).stdout.strip()
        head = run("rev-parse", "HEAD")
        # choice: untracked files (result JSONs, figures) do not make the tree dirty
        dirty = run("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def machine(device):
    """The hardware in words: the GPU's name, or the CPU model and its core count."""
    import os
    import platform
    import torch
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def protocol(args, model, knobs):
    """Everything needed to rerun the evaluation and to read its numbers."""
    import torch
    return dict(model=args.model, model_dir=model.source, model_fingerprint=model.fingerprint(),
                bridge=args.bridge, bridge_config=model.bridge_config,
                bridge_on=model.bridge_config is not None and model.use_bridge,
                task=args.task, knobs=knobs, split=args.split, problems=args.problems,
                seeds=dict(problems=args.problem_seed, sampling=args.seed), widths=args.widths,
                n=args.n, ks=args.ks, taus=[str(t) for t in args.taus], shots=args.shots, system=args.system,
                temperature=args.temperature, top_p=args.top_p, top_k=0,
                max_new_tokens=args.max_new_tokens, batch_rows=args.batch_rows, dtype=args.dtype,
                device=args.device, git_commit=git_commit(), torch=torch.__version__)


def format_table(result, timing):
    """One width's summary as a markdown table (mean and standard error over problems)."""
    width, n, summary = result["width"], result["n"], result["summary"]
    lines = [f"\nwidth {width}: n = {n} answers per problem ({n // width} x {width}), "
             f"{len(result['per_problem'])} problems",
             "| metric | mean | ± se |", "|---|---|---|"]
    for name, v in summary.items():
        digits = 1 if name == "length" else 3
        se = "" if v["se"] is None else f"{v['se']:.{digits}f}"
        lines.append(f"| {LABELS.get(name, name)} | {v['mean']:.{digits}f} | {se} |")
    lines.append(f"| tokens/s | {timing['tokens_per_s']:.1f} | |")
    return "\n".join(lines)


def evaluate(args):
    """The sweep: load the model, sample every width, print a table per width; returns the result dict."""
    from model import load_model
    from sample import DTYPES
    knobs, problems = check_args(args)  # before the slow model load
    model, tokenizer = load_model(args.model, device=args.device, dtype=DTYPES[args.dtype],
                                  bridge=args.bridge)
    model.use_bridge = not args.no_bridge
    # the chat prompt exactly as sample.encode_prompts renders it, with worked examples first
    system = args.system or None  # the prompt training uses (train_*.py --system)
    prompts = [tokenizer.encode(tokenizer.chat(tasks.messages(p, shots=args.shots, seed=args.problem_seed,
                                                              system=system)),
                                add_special_tokens=False) for p in problems]
    out = dict(format=FORMAT, protocol=protocol(args, model, knobs),
               problems=[dict(question=p.question, answer=p.answer) for p in problems], results=[],
               timing=dict(started=time.strftime("%Y-%m-%d %H:%M:%S"), machine=machine(args.device), widths={}))
    progress = progress_line(len(args.widths) * len(problems) * args.n)
    t_all = time.time()
    for width in args.widths:
        t0 = time.time()
        completions = sample_width(model, tokenizer, prompts, width, args, progress)
        seconds = time.time() - t0
        per_problem = [score(p, c, tokenizer, args.save_texts) for p, c in zip(problems, completions)]
        result = dict(width=width, groups=args.n // width, n=args.n,
                      summary=summarize(per_problem, args.n, args.ks, args.taus), per_problem=per_problem)
        tokens = sum(sum(p["lengths"]) for p in per_problem)
        timing = dict(seconds=seconds, tokens=tokens, tokens_per_s=tokens / seconds)
        out["results"].append(result)
        out["timing"]["widths"][str(width)] = timing
        print(format_table(result, timing), flush=True)
    out["timing"]["total_seconds"] = time.time() - t_all
    return out

# -----------------------------------------------------------------------------
# plots


def read_result(path):
    """A result file written by this script; anything else is a one-line ValueError."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError):
        raise ValueError(f"{path}: not an evaluate.py result (not a JSON file)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not an evaluate.py result (no format {FORMAT!r})")
    return data


def label_of(protocol):
    """The checkpoint's name ('+ off' when loaded but switched off), else the model's, else 'base'."""
    if protocol["bridge"]:
        return Path(protocol["bridge"]).stem + ("" if protocol["bridge_on"] else " off")
    return Path(protocol["model"]).name if protocol["model"] else "base"


def plot(paths, out, labels=None):
    """Two panels: mean accuracy against width, and G-Pass@n_tau against tau (at the widest width)."""
    runs = [read_result(p) for p in paths]
    labels = labels or [label_of(run["protocol"]) for run in runs]
    if len(labels) != len(runs):
        raise ValueError(f"--labels: {len(labels)} labels for {len(runs)} files")
    try:
        import matplotlib
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for run, label in zip(runs, labels):
        res, n = run["results"], run["protocol"]["n"]
        acc = [r["summary"]["accuracy"] for r in res]
        left.errorbar([r["width"] for r in res], [a["mean"] for a in acc],
                      yerr=[a["se"] or 0 for a in acc], marker="o", capsize=3, label=label)
        # choice: G-Pass at the widest width, where k = n reads as "one Bridge set per problem"
        wide = max(res, key=lambda r: r["width"])
        taus = run["protocol"]["taus"]
        g = [wide["summary"][f"G-Pass@{n}_{t}"] for t in taus]
        right.errorbar([float(Fraction(t)) for t in taus], [x["mean"] for x in g],
                       yerr=[x["se"] or 0 for x in g], marker="o", capsize=3,
                       label=f"{label} (width {wide['width']}, n={n})")
    widths = sorted({r["width"] for run in runs for r in run["results"]})
    left.set_xscale("log", base=2)
    left.set_xticks(widths, [str(w) for w in widths])
    left.set(xlabel="width", ylabel="mean accuracy", title="accuracy against width")
    right.set(xlabel="tau", ylabel="G-Pass@n_tau", title="G-Pass@n_tau (± se over problems)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}", file=sys.stderr)

# -----------------------------------------------------------------------------
# command line


def tau(text):
    """A --taus value, read exactly: "1/8", "0.25", "1"."""
    try:
        return Fraction(text)
    except ZeroDivisionError:  # argparse turns only ValueError into its one-line error
        raise ValueError(text) from None


def parse_args(argv=None):
    p = tasks.Parser(prog="evaluate.py", description="Evaluate one model setting at several widths (or plot result files).")
    p.add_argument("--model", default=None, help="local HF-style directory or HF repo id (default: SmolLM2-135M-Instruct)")
    p.add_argument("--bridge", default=None, help="a Bridge / P-Match checkpoint made by save_bridge (default: none)")
    p.add_argument("--no-bridge", action="store_true", help="load --bridge but switch its blocks off (the base model)")
    p.add_argument("--task", default="word", help=f"task family: {', '.join(tasks.TASKS)} (default word)")
    p.add_argument("--lo", type=int, default=None, help="task knob: smallest number in a problem (default: the task's)")
    p.add_argument("--hi", type=int, default=None, help="task knob: largest number in a problem (default: as in training, tasks.DEFAULT_KNOBS)")
    p.add_argument("--split", default="test", help="train or test (default test)")
    p.add_argument("--problems", type=int, default=200, help="how many problems (default 200)")
    p.add_argument("--problem-seed", type=int, default=0, help="seed for the problems and their worked examples (default 0)")
    p.add_argument("--shots", type=int, default=2, help="worked examples before each question (default 2)")
    p.add_argument("--system", default=tasks.SYSTEM, help=f"system message, as in training; '' = the chat template's default (default {tasks.SYSTEM!r})")
    p.add_argument("--n", type=int, default=8, help="answers per problem at every width (default 8)")
    p.add_argument("--widths", type=int, nargs="+", default=None, help="widths to evaluate, each dividing n (default: those of 1 2 4 8 that divide n)")
    p.add_argument("--ks", type=int, nargs="+", default=None, help="k for pass@k and maj@k (default: those of 1 2 4 8 up to n)")
    p.add_argument("--taus", type=tau, nargs="+", default=[Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), Fraction(3, 4), Fraction(1)],
                   help="thresholds in (0, 1] for G-Pass@n_tau, read exactly (default 1/8 1/4 1/2 3/4 1)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass in (0, 1]; 1.0 = off (default 1.0)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="new tokens per answer at most (default 64)")
    p.add_argument("--batch-rows", type=int, default=64, help="rows (answers) per sample() call; a problem's n answers are never split (default 64)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed; each call's generator is derived from it (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="weights and activations (default fp32)")
    p.add_argument("--save-texts", action="store_true", help="also store every answer's text in the JSON")
    p.add_argument("--out", default=None, help="the JSON file to write (default results.json), or the figure with --plot (default evaluate.png)")
    p.add_argument("--plot", nargs="+", default=None, metavar="JSON", help="plot these result files instead of evaluating")
    p.add_argument("--labels", nargs="+", default=None, help="one legend label per --plot file (default: from the protocol)")
    return p.parse_args(argv)


def check_args(args):
    """Refuse bad input with one clear ValueError; fills in the default widths and ks; returns (knobs, problems)."""
    from sample import check_sampling
    n = args.n
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    args.widths = sorted(set(args.widths or [w for w in (1, 2, 4, 8) if n % w == 0]))
    args.ks = sorted(set(args.ks or [k for k in (1, 2, 4, 8) if k <= n]))
    for w in args.widths:
        if w < 1 or n % w:
            raise ValueError(f"--widths: {w} must be >= 1 and divide n={n} (n answers = n/width groups of width)")
    for k in args.ks:
        if not 1 <= k <= n:
            raise ValueError(f"--ks: k={k} must be in [1, n={n}]")
    for t in args.taus:
        try:
            threshold(t, n)
        except ValueError as e:
            raise ValueError(f"--taus: {e}") from None
    check_sampling(args.temperature, 0, args.top_p)
    for flag in ("problems", "max_new_tokens", "batch_rows"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.bridge is not None and not Path(args.bridge).is_file():
        raise FileNotFoundError(f"{args.bridge}: no such Bridge checkpoint")
    if not Path(args.out).resolve().parent.is_dir():
        raise FileNotFoundError(f"--out {args.out}: no such directory")
    # the same problem distribution as training: the task's DEFAULT_KNOBS, with --lo/--hi on top
    knobs = dict(tasks.DEFAULT_KNOBS.get(args.task, {}))
    knobs.update({k: v for k, v in (("lo", args.lo), ("hi", args.hi)) if v is not None})
    problems = tasks.make_problems(args.task, args.problems, seed=args.problem_seed, split=args.split, **knobs)
    tasks.messages(problems[0], shots=args.shots, seed=args.problem_seed)  # a bad --shots fails here
    return knobs, problems


def main(argv=None):
    args = parse_args(argv)
    if args.plot:
        return plot(args.plot, args.out or "evaluate.png", args.labels)
    args.out = args.out or "results.json"
    result = evaluate(args)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return result


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
